//! Raw event -> Trigger (SPEC §7). One function serves three triggers, told apart by shape.
//!
//! Strict on purpose: this is where a payload could turn a dry run into a live one. An
//! EventBridge-shaped event must be exactly what AWS sends; a manual payload has three known
//! fields; a duplicate key is refused at any depth (JSON parsers disagree about which copy wins,
//! so `{"dry_run": true, "dry_run": false}` would mean whatever the last reader thought).

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

pub(crate) const SCHEDULED_EVENT: &str = "Scheduled Event";
pub(crate) const STATE_CHANGE_EVENT: &str = "EC2 Instance State-change Notification";
const MANUAL_FIELDS: &str =
    "dry_run (bool), at (RFC 3339 date-time, dry run only), instance_ids (array of instance ids)";
/// The top-level fields of every EventBridge event, in the order AWS documents them.
const EVENT_FIELDS: [&str; 9] = [
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
];
const EVENT_FIELDS_TEXT: &str =
    "version, id, detail-type, source, account, time, region, resources, detail";
const EC2_STATES: [&str; 6] = [
    "pending",
    "running",
    "stopping",
    "stopped",
    "shutting-down",
    "terminated",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A full sweep of the function's region.
    Schedule,
    /// Judge one instance now. `state` is the reported state (the rule sends only `pending`).
    InstanceState {
        instance_id: String,
        state: String,
    },
    Manual(Manual),
}

/// A manual invocation's payload. `{}` is a plain sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manual {
    pub dry_run: bool,
    pub at: Option<DateTime<Utc>>,
    pub instance_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not valid JSON: {0}")]
    NotJson(String),
    #[error("the event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("duplicate key `{key}` {place}; each key may appear once")]
    DuplicateKey { key: String, place: String },
    #[error("unknown field `{field}` in the manual payload; accepted fields: {MANUAL_FIELDS}")]
    UnknownField { field: String },
    #[error("unknown field `{field}` in the manual payload; the only way to ask for a dry run is \"dry_run\": true (refused so that nothing runs live by mistake)")]
    DryRunMisspelt { field: String },
    #[error("{found} {place} asks for a dry run, but an EventBridge event (it has a detail-type) cannot; refused so that nothing runs live by mistake. For a dry run invoke with {{\"dry_run\": true}} and no detail-type")]
    DryRunInEvent { found: String, place: String },
    #[error("field `{field}` is not part of a {detail_type:?} event; AWS sends only {accepted}. A manual payload ({MANUAL_FIELDS}) has no detail-type")]
    UnknownEventField {
        field: String,
        detail_type: &'static str,
        accepted: &'static str,
    },
    #[error("field `{field}` is missing; a {detail_type:?} event from AWS always has {EVENT_FIELDS_TEXT}")]
    MissingField {
        field: String,
        detail_type: &'static str,
    },
    #[error("field `{field}` must be {expected}, got {got}")]
    WrongType {
        field: String,
        expected: &'static str,
        got: String,
    },
    #[error("field `{field}` value {value:?} is not accepted: {accepted}")]
    BadValue {
        field: String,
        value: String,
        accepted: String,
    },
    #[error("unsupported detail-type {0:?}; accepted: \"Scheduled Event\", \"EC2 Instance State-change Notification\", or a manual payload without detail-type")]
    UnsupportedEvent(String),
    #[error("`at` forecasts only in a dry run, and LIVEMODE is on: add \"dry_run\": true to the payload")]
    AtInLiveMode,
}

impl EventError {
    /// The Lambda `errorType`: a stable name callers can match on, never a Rust type path.
    pub(crate) fn error_type(&self) -> &'static str {
        match self {
            // The event is fine; it asks for something this configuration refuses.
            EventError::AtInLiveMode => "InvalidRequest",
            _ => "InvalidEvent",
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong(field: &str, expected: &'static str, got: &Value) -> EventError {
    EventError::WrongType {
        field: field.to_string(),
        expected,
        got: format!("{} ({})", type_name(got), truncate(&got.to_string())),
    }
}

fn bad(field: &str, value: &str, accepted: &str) -> EventError {
    EventError::BadValue {
        field: field.to_string(),
        value: truncate(value),
        accepted: accepted.to_string(),
    }
}

/// A value quoted in an error: 80 characters, then the ellipsis (`text::clip`, the one rule).
fn truncate(s: &str) -> String {
    crate::text::clip(s, 81)
}

/// Where in the document a path points, for a person: `at the top level`, `in detail.x[2]`.
fn place(path: &str) -> String {
    if path.is_empty() {
        "at the top level".into()
    } else {
        format!("in `{path}`")
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// EC2 instance ids: `i-` and 8 or 17 hex digits.
pub fn valid_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Does this text say "dry run", in any case or separator (`dryRun`, `DRY_RUN`, `dry-run`,
/// `"dry run"`, `is_dry.run`)? Letters and digits only, compared in lower case.
pub(crate) fn says_dry_run(text: &str) -> bool {
    let squeezed: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    squeezed.contains("dryrun")
}

/// The first key or string value anywhere in `v` that says "dry run", and where it is.
fn find_dry_run(v: &Value, path: &str) -> Option<(String, String)> {
    match v {
        Value::String(s) if says_dry_run(s) => {
            Some((format!("the value {:?}", truncate(s)), place(path)))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_dry_run(item, &format!("{path}[{i}]"))),
        Value::Object(obj) => find_dry_run_in(obj, path),
        _ => None,
    }
}

fn find_dry_run_in(obj: &Map<String, Value>, path: &str) -> Option<(String, String)> {
    obj.iter().find_map(|(k, item)| {
        if says_dry_run(k) {
            Some((format!("the key `{}`", truncate(k)), place(path)))
        } else {
            find_dry_run(item, &child(path, k))
        }
    })
}

impl Trigger {
    /// Parses an already-built `Value`. Duplicate keys are invisible here (the `Value` kept one
    /// copy); [`parse_event_bytes`] and [`EventPayload`] see them.
    pub(crate) fn parse(event: &Value) -> Result<Trigger, EventError> {
        let Value::Object(obj) = event else {
            return Err(EventError::NotAnObject(type_name(event)));
        };
        if obj.contains_key("detail-type") {
            parse_eventbridge(obj)
        } else {
            parse_manual(obj).map(Trigger::Manual)
        }
    }

    /// False only for a trigger that forces a dry run whatever LIVEMODE says.
    pub fn may_run_live(&self) -> bool {
        !matches!(self, Trigger::Manual(Manual { dry_run: true, .. }))
    }
}

/// The raw bytes of an invocation -> Trigger, refusing duplicate keys anywhere.
pub fn parse_event_bytes(bytes: &[u8]) -> Result<Trigger, EventError> {
    EventPayload::from_bytes(bytes).trigger()
}

/// Why `bytes` are not a JSON document, in words: what serde_json says, with the cases it words
/// for a parser's author (nesting, encoding, a byte-order mark) said for a person.
fn not_json(bytes: &[u8], err: &serde_json::Error) -> EventError {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return EventError::NotJson("the body is empty".into());
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return EventError::NotJson(
            "the body starts with a byte-order mark (EF BB BF); send the JSON without it".into(),
        );
    }
    if let Err(bad) = std::str::from_utf8(bytes) {
        return EventError::NotJson(format!(
            "the body is not valid UTF-8 (byte {} is not)",
            bad.valid_up_to()
        ));
    }
    let what = err.to_string();
    if what.starts_with("recursion limit exceeded") {
        return EventError::NotJson(format!(
            "arrays and objects are nested deeper than {MAX_DEPTH} levels ({what})"
        ));
    }
    // `"\ud800"` alone reads as "unexpected end of hex escape": serde_json expected the pair.
    if what.contains("surrogate") || what.starts_with("unexpected end of hex escape") {
        return EventError::NotJson(format!(
            "a string holds a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair) ({what})"
        ));
    }
    EventError::NotJson(what)
}

/// serde_json's own limit on nesting, which it enforces while reading (its recursion limit of
/// 128 refuses the 128th level).
const MAX_DEPTH: usize = 127;

fn parse_eventbridge(obj: &Map<String, Value>) -> Result<Trigger, EventError> {
    // Before anything else: a dry-run intent anywhere in an event shape must not go unnoticed,
    // and this error says more than "unknown field" would.
    if let Some((found, place)) = find_dry_run_in(obj, "") {
        return Err(EventError::DryRunInEvent { found, place });
    }
    let detail_type = match obj.get("detail-type") {
        Some(Value::String(dt)) if dt == SCHEDULED_EVENT => SCHEDULED_EVENT,
        Some(Value::String(dt)) if dt == STATE_CHANGE_EVENT => STATE_CHANGE_EVENT,
        Some(Value::String(dt)) => return Err(EventError::UnsupportedEvent(truncate(dt))),
        Some(other) => return Err(wrong("detail-type", "a string", other)),
        None => return Err(wrong("detail-type", "a string", &Value::Null)),
    };
    if let Some(field) = obj.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
        return Err(EventError::UnknownEventField {
            field: truncate(field),
            detail_type,
            accepted: EVENT_FIELDS_TEXT,
        });
    }
    if let Some(field) = EVENT_FIELDS.iter().find(|f| !obj.contains_key(**f)) {
        return Err(EventError::MissingField {
            field: field.to_string(),
            detail_type,
        });
    }
    let string = |field: &str| match &obj[field] {
        Value::String(s) => Ok(s.as_str()),
        other => Err(wrong(field, "a string", other)),
    };
    if string("version")? != "0" {
        return Err(bad(
            "version",
            string("version")?,
            "\"0\", the version of every EventBridge event",
        ));
    }
    let id = string("id")?;
    if !is_uuid(id) {
        return Err(bad(
            "id",
            id,
            "an event id, a UUID such as 53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        ));
    }
    let (source, want_source) = (string("source")?, expected_source(detail_type));
    if source != want_source {
        return Err(bad(
            "source",
            source,
            &format!("{want_source:?}, the source of every {detail_type:?} event"),
        ));
    }
    let account = string("account")?;
    if !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad("account", account, "a 12-digit AWS account id"));
    }
    let time = string("time")?;
    if DateTime::parse_from_rfc3339(time).is_err() {
        return Err(bad(
            "time",
            time,
            "an RFC 3339 date-time such as 2030-01-01T00:00:00Z",
        ));
    }
    let region = string("region")?;
    if !is_region(region) {
        return Err(bad(
            "region",
            region,
            "an AWS region name such as us-east-1",
        ));
    }
    match &obj["resources"] {
        Value::Array(items) => {
            for (n, item) in items.iter().enumerate() {
                let field = format!("resources[{n}]");
                match item {
                    Value::String(arn) if is_arn(arn) => {}
                    Value::String(other) => {
                        return Err(bad(
                            &field,
                            other,
                            "an ARN (arn:partition:service:region:account:resource)",
                        ))
                    }
                    other => return Err(wrong(&field, "an ARN string", other)),
                }
            }
        }
        other => return Err(wrong("resources", "an array of ARN strings", other)),
    }
    let detail = match &obj["detail"] {
        Value::Object(d) => d,
        other => return Err(wrong("detail", "an object", other)),
    };
    if detail_type == SCHEDULED_EVENT {
        return match detail.keys().next() {
            Some(field) => Err(EventError::UnknownEventField {
                field: format!("detail.{}", truncate(field)),
                detail_type,
                accepted: "an empty detail ({}) in a Scheduled Event",
            }),
            None => Ok(Trigger::Schedule),
        };
    }
    parse_state_detail(detail)
}

fn expected_source(detail_type: &str) -> &'static str {
    if detail_type == SCHEDULED_EVENT {
        "aws.events"
    } else {
        "aws.ec2"
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `us-east-1`, `us-gov-west-1`, `ap-southeast-4`: two letters, words, a number.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn is_arn(s: &str) -> bool {
    s.starts_with("arn:") && s.splitn(6, ':').count() == 6
}

fn parse_state_detail(detail: &Map<String, Value>) -> Result<Trigger, EventError> {
    if let Some(field) = detail
        .keys()
        .find(|k| !["instance-id", "state"].contains(&k.as_str()))
    {
        return Err(EventError::UnknownEventField {
            field: format!("detail.{}", truncate(field)),
            detail_type: STATE_CHANGE_EVENT,
            accepted: "instance-id and state in its detail",
        });
    }
    let instance_id = match detail.get("instance-id") {
        Some(Value::String(id)) if valid_instance_id(id) => id.clone(),
        Some(Value::String(id)) => {
            return Err(bad(
                "detail.instance-id",
                id,
                "an EC2 instance id (i- and 8 or 17 hex digits)",
            ))
        }
        Some(other) => return Err(wrong("detail.instance-id", "a string", other)),
        None => return Err(wrong("detail.instance-id", "a string", &Value::Null)),
    };
    let state = match detail.get("state") {
        Some(Value::String(s)) if EC2_STATES.contains(&s.as_str()) => s.clone(),
        Some(Value::String(s)) => {
            return Err(bad(
                "detail.state",
                s,
                &format!("an EC2 instance state: {}", EC2_STATES.join(", ")),
            ))
        }
        Some(other) => return Err(wrong("detail.state", "a string", other)),
        None => return Err(wrong("detail.state", "a string", &Value::Null)),
    };
    Ok(Trigger::InstanceState { instance_id, state })
}

fn parse_manual(obj: &Map<String, Value>) -> Result<Manual, EventError> {
    let mut manual = Manual::default();
    for (field, value) in obj {
        match field.as_str() {
            "dry_run" => match value {
                Value::Bool(b) => manual.dry_run = *b,
                other => return Err(wrong("dry_run", "a boolean (true or false)", other)),
            },
            "at" => match value {
                Value::String(s) => {
                    let at = DateTime::parse_from_rfc3339(s.trim()).map_err(|_| {
                        bad(
                            "at",
                            s,
                            "an RFC 3339 date-time with a time zone, e.g. 2030-01-01T00:00:00Z",
                        )
                    })?;
                    manual.at = Some(at.with_timezone(&Utc));
                }
                other => return Err(wrong("at", "an RFC 3339 date-time string", other)),
            },
            "instance_ids" => match value {
                Value::Array(items) => {
                    let mut ids = Vec::with_capacity(items.len());
                    for (n, item) in items.iter().enumerate() {
                        match item {
                            Value::String(id) if valid_instance_id(id) => ids.push(id.clone()),
                            Value::String(id) => {
                                return Err(bad(
                                    &format!("instance_ids[{n}]"),
                                    id,
                                    "an EC2 instance id (i- and 8 or 17 hex digits)",
                                ))
                            }
                            other => {
                                return Err(wrong(&format!("instance_ids[{n}]"), "a string", other))
                            }
                        }
                    }
                    ids.sort();
                    ids.dedup();
                    manual.instance_ids = Some(ids);
                }
                other => {
                    return Err(wrong(
                        "instance_ids",
                        "an array of instance id strings",
                        other,
                    ))
                }
            },
            _ if says_dry_run(field) => {
                return Err(EventError::DryRunMisspelt {
                    field: truncate(field),
                })
            }
            _ => {
                return Err(EventError::UnknownField {
                    field: truncate(field),
                })
            }
        }
    }
    Ok(manual)
}

// ---- Reading JSON with duplicate keys refused ----

/// A JSON document whose objects have no duplicate key, at any depth. Deserializing one that
/// has a duplicate fails with an error naming the key and where it is.
///
/// Under `lambda_runtime` that failure is answered by the runtime itself, with its own
/// `errorType`; the Lambda entry point takes [`EventPayload`] instead so that the handler
/// answers `InvalidEvent`.
#[derive(Debug, Clone, PartialEq)]
pub struct StrictEvent(pub Value);

impl<'de> Deserialize<'de> for StrictEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match EventPayload::deserialize(deserializer)?.0 {
            Ok(value) => Ok(StrictEvent(value)),
            Err(err) => Err(de::Error::custom(err)),
        }
    }
}

/// The Lambda's payload type: any well-formed JSON document deserializes (so the runtime never
/// answers for us), and a duplicate key is kept as the `EventError` that [`EventPayload::trigger`]
/// returns.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPayload(pub Result<Value, EventError>);

impl EventPayload {
    /// An invocation's bytes as the Lambda service sent them: anything that is not one
    /// well-formed JSON document (empty, not UTF-8, a byte-order mark, `NaN`, a number out of
    /// range, a lone surrogate, nesting too deep) is kept as the error [`EventPayload::trigger`]
    /// returns, so the handler answers `InvalidEvent`.
    pub fn from_bytes(bytes: &[u8]) -> EventPayload {
        match serde_json::from_slice::<EventPayload>(bytes) {
            Ok(payload) => payload,
            Err(err) => EventPayload(Err(not_json(bytes, &err))),
        }
    }

    pub(crate) fn trigger(&self) -> Result<Trigger, EventError> {
        match &self.0 {
            Ok(value) => Trigger::parse(value),
            Err(err) => Err(err.clone()),
        }
    }
}

impl<'de> Deserialize<'de> for EventPayload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let first = RefCell::new(None);
        let value = ValueSeed {
            path: String::new(),
            duplicate: &first,
        }
        .deserialize(deserializer)?;
        Ok(EventPayload(match first.into_inner() {
            Some(err) => Err(err),
            None => Ok(value),
        }))
    }
}

/// The Lambda's payload type: the invocation's bytes exactly as sent. The runtime's deserializer
/// answers a body it cannot read with its own `errorType` (a Rust type path), so the entry point
/// wraps every body with [`RawEvent::envelope`] before the runtime reads it, and the handler
/// parses the bytes with [`EventPayload::from_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RawEvent(pub Vec<u8>);

impl RawEvent {
    /// Any bytes as a JSON document that deserializes to `RawEvent` holding them unchanged.
    pub fn envelope(body: &[u8]) -> Vec<u8> {
        // An array of numbers never fails to serialize.
        serde_json::to_vec(body).unwrap_or_default()
    }
}

/// Builds a `Value` like serde_json does, recording the first duplicate key it meets and
/// reading on, so the document is consumed whole either way.
struct ValueSeed<'a> {
    path: String,
    duplicate: &'a RefCell<Option<EventError>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed {
            path: format!("{}[{}]", self.path, items.len()),
            duplicate: self.duplicate,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(ValueSeed {
                path: child(&self.path, &key),
                duplicate: self.duplicate,
            })?;
            if obj.contains_key(&key) {
                let mut first = self.duplicate.borrow_mut();
                if first.is_none() {
                    *first = Some(EventError::DuplicateKey {
                        key: truncate(&key),
                        place: place(&self.path),
                    });
                }
            } else {
                obj.insert(key, value);
            }
        }
        Ok(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schedule() -> Value {
        json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2030-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/ec2-reaper-schedule"],
            "detail": {}
        })
    }

    fn state_change() -> Value {
        json!({
            "version": "0",
            "id": "7bf73129-1428-4cd3-a780-95db273d1602",
            "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2",
            "account": "123456789012",
            "time": "2030-01-01T00:00:00Z",
            "region": "us-gov-west-1",
            "resources": ["arn:aws-us-gov:ec2:us-gov-west-1:123456789012:instance/i-0123456789abcdef0"],
            "detail": {"instance-id": "i-0123456789abcdef0", "state": "pending"}
        })
    }

    fn with(mut event: Value, path: &[&str], value: Value) -> Value {
        let mut at = &mut event;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        event
    }

    fn without(mut event: Value, key: &str) -> Value {
        event.as_object_mut().map(|o| o.remove(key));
        event
    }

    #[test]
    fn the_three_shapes() {
        assert_eq!(Trigger::parse(&schedule()), Ok(Trigger::Schedule));
        assert_eq!(
            Trigger::parse(&state_change()),
            Ok(Trigger::InstanceState {
                instance_id: "i-0123456789abcdef0".into(),
                state: "pending".into()
            })
        );
        assert_eq!(
            Trigger::parse(&json!({})),
            Ok(Trigger::Manual(Manual::default()))
        );
        let full = json!({"dry_run": true, "at": "2030-01-01T00:00:00+01:00", "instance_ids": ["i-0123456789abcdef0", "i-01234567"]});
        let Ok(Trigger::Manual(m)) = Trigger::parse(&full) else {
            panic!()
        };
        assert!(m.dry_run);
        assert_eq!(m.at.unwrap().to_rfc3339(), "2029-12-31T23:00:00+00:00");
        assert_eq!(m.instance_ids.unwrap().len(), 2);
    }

    #[test]
    fn the_fixture_files_parse_from_their_bytes() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
        let read = |name: &str| std::fs::read(format!("{dir}/{name}.json")).unwrap();
        assert_eq!(parse_event_bytes(&read("schedule")), Ok(Trigger::Schedule));
        assert!(matches!(
            parse_event_bytes(&read("instance-state-pending")),
            Ok(Trigger::InstanceState { .. })
        ));
        assert_eq!(
            parse_event_bytes(&read("manual-empty")),
            Ok(Trigger::Manual(Manual::default()))
        );
        assert!(!parse_event_bytes(&read("manual-dry-run"))
            .unwrap()
            .may_run_live());
        assert!(parse_event_bytes(&read("manual-bad-field")).is_err());
        assert!(parse_event_bytes(&read("manual-bad-type")).is_err());
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let cases = [
            (
                json!({"dryrun": true}),
                "unknown field `dryrun` in the manual payload; the only way to ask for a dry run is \"dry_run\": true",
            ),
            (
                json!({"limit": 3}),
                "unknown field `limit` in the manual payload",
            ),
            (
                json!({"dry_run": "yes"}),
                "field `dry_run` must be a boolean (true or false), got a string (\"yes\")",
            ),
            (
                json!({"at": 5}),
                "field `at` must be an RFC 3339 date-time string, got a number",
            ),
            (
                json!({"at": "tomorrow"}),
                "field `at` value \"tomorrow\" is not accepted",
            ),
            (
                json!({"instance_ids": "i-0123456789abcdef0"}),
                "field `instance_ids` must be an array",
            ),
            (
                json!({"instance_ids": ["i-0123456789abcdef0", 7]}),
                "field `instance_ids[1]` must be a string",
            ),
            (
                json!({"instance_ids": ["web-1"]}),
                "field `instance_ids[0]` value \"web-1\" is not accepted",
            ),
            (
                json!([1, 2]),
                "the event must be a JSON object, got an array",
            ),
            (json!("hello"), "got a string"),
            (
                json!({"detail-type": "AWS API Call via CloudTrail"}),
                "unsupported detail-type",
            ),
            (
                with(state_change(), &["detail"], json!({"state": "pending"})),
                "detail.instance-id",
            ),
            (
                with(state_change(), &["detail", "instance-id"], json!("i-x")),
                "field `detail.instance-id` value \"i-x\" is not accepted",
            ),
        ];
        for (event, fragment) in cases {
            let err = Trigger::parse(&event)
                .expect_err(&event.to_string())
                .to_string();
            assert!(err.contains(fragment), "{event}: {err}");
        }
    }

    /// Issue 10, finding 2: these ran a live sweep with LIVEMODE=true.
    #[test]
    fn a_dry_run_intent_in_an_event_shape_is_refused() {
        let cases = [
            (
                r#"{"detail-type":"Scheduled Event","dryRun":true}"#,
                "the key `dryRun` at the top level",
            ),
            (
                r#"{"detail-type":"Scheduled Event","dry-run":true}"#,
                "the key `dry-run` at the top level",
            ),
            (
                r#"{"detail-type":"Scheduled Event","DryRun":true}"#,
                "the key `DryRun` at the top level",
            ),
            (
                r#"{"detail-type":"Scheduled Event","DRY_RUN":true}"#,
                "the key `DRY_RUN` at the top level",
            ),
            (
                r#"{"detail-type":"Scheduled Event","dry run":true}"#,
                "the key `dry run` at the top level",
            ),
            (
                r#"{"detail-type":"Scheduled Event","detail":{"dry_run":true}}"#,
                "the key `dry_run` in `detail`",
            ),
            (
                r#"{"detail-type":"Scheduled Event","detail":{"options":{"isDryRun":1}}}"#,
                "the key `isDryRun` in `detail.options`",
            ),
            (
                r#"{"detail-type":"Scheduled Event","detail":{"mode":"dry-run"}}"#,
                "the value \"dry-run\" in `detail.mode`",
            ),
            (
                r#"{"detail-type":"Scheduled Event","resources":["dry run please"]}"#,
                "in `resources[0]`",
            ),
        ];
        for (text, fragment) in cases {
            let err = parse_event_bytes(text.as_bytes()).expect_err(text);
            assert!(
                matches!(err, EventError::DryRunInEvent { .. }),
                "{text}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(fragment), "{text}: {message}");
            assert!(
                message.contains("refused so that nothing runs live"),
                "{message}"
            );
            assert_eq!(err.error_type(), "InvalidEvent");
        }
        // The same keys in the full, real event shape.
        for key in [
            "dryRun",
            "dry-run",
            "DryRun",
            "dry_run",
            "at",
            "instance_ids",
        ] {
            let event = with(schedule(), &[key], json!(true));
            assert!(Trigger::parse(&event).is_err(), "{key}");
            let nested = with(state_change(), &["detail", key], json!(true));
            assert!(Trigger::parse(&nested).is_err(), "detail.{key}");
        }
    }

    /// Issue 10, finding 2: `{"dry_run":true,"dry_run":false}` ran live (the last copy won).
    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let cases = [
            (
                r#"{"dry_run":true,"dry_run":false}"#,
                "duplicate key `dry_run` at the top level",
            ),
            (
                r#"{"dry_run":false,"dry_run":true}"#,
                "duplicate key `dry_run` at the top level",
            ),
            (
                r#"{"detail-type":"Scheduled Event","detail-type":"Scheduled Event"}"#,
                "duplicate key `detail-type` at the top level",
            ),
            (
                r#"{"detail":{"state":"pending","state":"running"}}"#,
                "duplicate key `state` in `detail`",
            ),
            (
                r#"{"a":[{"b":{"c":1,"c":1}}]}"#,
                "duplicate key `c` in `a[0].b`",
            ),
        ];
        for (text, fragment) in cases {
            let err = parse_event_bytes(text.as_bytes()).expect_err(text);
            assert!(
                matches!(err, EventError::DuplicateKey { .. }),
                "{text}: {err:?}"
            );
            assert!(err.to_string().contains(fragment), "{text}: {err}");
            assert_eq!(err.error_type(), "InvalidEvent");
            let strict = serde_json::from_str::<StrictEvent>(text).expect_err(text);
            assert!(strict.to_string().contains(fragment), "{text}: {strict}");
            let payload: EventPayload = serde_json::from_str(text).unwrap();
            assert_eq!(payload.trigger(), Err(err));
        }
        // The same key in different objects is not a duplicate.
        let text = r#"{"a":{"k":1},"b":{"k":2},"k":[{"k":3},{"k":4}]}"#;
        assert_eq!(
            serde_json::from_str::<StrictEvent>(text).unwrap().0,
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn a_misspelt_dry_run_in_a_manual_payload_is_refused() {
        for key in [
            "dryRun",
            "dry-run",
            "DryRun",
            "DRY_RUN",
            "dry run",
            "Dry_Run",
            "dryrun",
            "is_dry_run",
        ] {
            let event = json!({ key: true });
            let err = Trigger::parse(&event).expect_err(key);
            assert_eq!(
                err,
                EventError::DryRunMisspelt {
                    field: key.to_string()
                }
            );
            assert!(err
                .to_string()
                .contains("the only way to ask for a dry run is \"dry_run\": true"));
        }
    }

    #[test]
    fn eventbridge_events_are_read_against_their_schema() {
        let cases = [
            (with(schedule(), &["extra"], json!(1)), "field `extra` is not part of a \"Scheduled Event\" event; AWS sends only version, id, detail-type"),
            (with(schedule(), &["source"], json!("aws.ec2")), "field `source` value \"aws.ec2\" is not accepted: \"aws.events\""),
            (with(state_change(), &["source"], json!("aws.events")), "field `source` value \"aws.events\" is not accepted: \"aws.ec2\""),
            (with(schedule(), &["source"], json!("my.app")), "field `source`"),
            (with(schedule(), &["detail"], json!({"x": 1})), "field `detail.x` is not part of a \"Scheduled Event\" event; AWS sends only an empty detail"),
            (with(schedule(), &["detail"], json!([])), "field `detail` must be an object"),
            (with(state_change(), &["detail", "extra"], json!("x")), "field `detail.extra` is not part of a \"EC2 Instance State-change Notification\" event"),
            (with(state_change(), &["detail", "state"], json!("booting")), "field `detail.state` value \"booting\" is not accepted: an EC2 instance state"),
            (without(schedule(), "source"), "field `source` is missing"),
            (without(schedule(), "detail"), "field `detail` is missing"),
            (without(state_change(), "resources"), "field `resources` is missing"),
            (with(schedule(), &["version"], json!("1")), "field `version` value \"1\""),
            (with(schedule(), &["version"], json!(0)), "field `version` must be a string"),
            (with(schedule(), &["id"], json!("abc")), "field `id` value \"abc\""),
            (with(schedule(), &["account"], json!("12345")), "field `account` value \"12345\" is not accepted: a 12-digit AWS account id"),
            (with(schedule(), &["time"], json!("yesterday")), "field `time` value \"yesterday\""),
            (with(schedule(), &["region"], json!("moon")), "field `region` value \"moon\""),
            (with(schedule(), &["resources"], json!("arn")), "field `resources` must be an array"),
            (with(schedule(), &["resources"], json!(["rule/x"])), "field `resources[0]` value \"rule/x\""),
            (with(schedule(), &["detail-type"], json!(7)), "field `detail-type` must be a string"),
        ];
        for (event, fragment) in cases {
            let err = Trigger::parse(&event).expect_err(&event.to_string());
            assert!(err.to_string().contains(fragment), "{event}\n{err}");
            assert_eq!(err.error_type(), "InvalidEvent");
        }
        for state in EC2_STATES {
            let event = with(state_change(), &["detail", "state"], json!(state));
            assert!(Trigger::parse(&event).is_ok(), "{state}");
        }
        let no_resources = with(schedule(), &["resources"], json!([]));
        assert_eq!(Trigger::parse(&no_resources), Ok(Trigger::Schedule));
    }

    #[test]
    fn error_types_are_names() {
        assert_eq!(EventError::AtInLiveMode.error_type(), "InvalidRequest");
        assert_eq!(EventError::NotAnObject("null").error_type(), "InvalidEvent");
        assert_eq!(
            parse_event_bytes(b"{").unwrap_err().error_type(),
            "InvalidEvent"
        );
    }

    /// Issue 19 item 4: each malformed body is an `InvalidEvent` whose message says what is
    /// wrong, and it survives the envelope the entry point puts around every body.
    #[test]
    fn every_malformed_body_is_an_invalid_event() {
        let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        let cases: [(&[u8], &str); 9] = [
            (b"", "the body is empty"),
            (b" \n", "the body is empty"),
            (b"dry_run please", "not valid JSON: expected value"),
            (
                b"{\"dry_run\": \"\xff\"}",
                "not valid UTF-8 (byte 13 is not)",
            ),
            (br#"{"dry_run": "\ud800"}"#, "lone UTF-16 surrogate"),
            (b"\xef\xbb\xbf{}", "byte-order mark"),
            (br#"{"dry_run": NaN}"#, "not valid JSON"),
            (br#"{"dry_run": 1e999999}"#, "number out of range"),
            (deep.as_bytes(), "nested deeper than 127 levels"),
        ];
        for (body, fragment) in cases {
            let raw: RawEvent = serde_json::from_slice(&RawEvent::envelope(body)).unwrap();
            assert_eq!(raw.0, body);
            let err = EventPayload::from_bytes(&raw.0).trigger().unwrap_err();
            assert_eq!(err.error_type(), "InvalidEvent", "{err}");
            assert!(
                err.to_string().contains(fragment),
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        // 127 levels are still read, 128 are not.
        let ok = format!("{{\"x\":{}{}}}", "[".repeat(126), "]".repeat(126));
        let read = EventPayload::from_bytes(ok.as_bytes()).trigger();
        assert!(
            matches!(read, Err(EventError::UnknownField { .. })),
            "{read:?}"
        );
    }

    #[test]
    fn strict_event_reads_what_serde_json_reads() {
        let text = r#"{"n":[1,-2,3.5,1e300,18446744073709551615,-9223372036854775808],"s":"\u00e9\n","b":[true,false,null],"o":{}}"#;
        assert_eq!(
            serde_json::from_str::<StrictEvent>(text).unwrap().0,
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn instance_ids() {
        assert!(valid_instance_id("i-0123456789abcdef0"));
        assert!(valid_instance_id("i-0123abcd"));
        assert!(!valid_instance_id("i-0123456789ABCDEF0"));
        assert!(!valid_instance_id("i-123"));
        assert!(!valid_instance_id("vol-0123456789abcdef0"));
    }

    /// Property tests. Named `fuzz_*` so `make fuzz` can select them and run them long;
    /// proptest's default config reads PROPTEST_CASES.
    mod properties {
        use super::*;
        use proptest::prelude::*;

        type Entries = Vec<(String, Node)>;

        /// A JSON tree whose objects may repeat a key (a `Value` cannot), rendered by hand.
        #[derive(Debug, Clone)]
        enum Node {
            Null,
            Bool(bool),
            Int(i64),
            Float(f64),
            Str(String),
            Arr(Vec<Node>),
            Obj(Vec<(String, Node)>),
        }

        impl Node {
            fn render(&self) -> String {
                let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
                match self {
                    Node::Null => "null".into(),
                    Node::Bool(b) => b.to_string(),
                    Node::Int(n) => n.to_string(),
                    Node::Float(f) => serde_json::to_string(f).unwrap_or_default(),
                    Node::Str(s) => quote(s),
                    Node::Arr(items) => format!(
                        "[{}]",
                        items.iter().map(Node::render).collect::<Vec<_>>().join(",")
                    ),
                    Node::Obj(entries) => format!(
                        "{{{}}}",
                        entries
                            .iter()
                            .map(|(k, v)| format!("{}:{}", quote(k), v.render()))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                }
            }

            fn from_value(v: &Value) -> Node {
                match v {
                    Value::Null => Node::Null,
                    Value::Bool(b) => Node::Bool(*b),
                    Value::Number(n) => n
                        .as_i64()
                        .map_or(Node::Float(n.as_f64().unwrap_or(0.0)), Node::Int),
                    Value::String(s) => Node::Str(s.clone()),
                    Value::Array(items) => Node::Arr(items.iter().map(Node::from_value).collect()),
                    Value::Object(o) => Node::Obj(
                        o.iter()
                            .map(|(k, v)| (k.clone(), Node::from_value(v)))
                            .collect(),
                    ),
                }
            }

            fn objects(&self) -> usize {
                match self {
                    Node::Arr(items) => items.iter().map(Node::objects).sum(),
                    Node::Obj(entries) => {
                        1 + entries.iter().map(|(_, v)| v.objects()).sum::<usize>()
                    }
                    _ => 0,
                }
            }

            /// Calls `f` on the `n`th object in document order (pre-order).
            fn with_object(&mut self, n: &mut usize, f: &mut dyn FnMut(&mut Entries)) -> bool {
                match self {
                    Node::Arr(items) => items.iter_mut().any(|item| item.with_object(n, f)),
                    Node::Obj(entries) => {
                        if *n == 0 {
                            f(entries);
                            return true;
                        }
                        *n -= 1;
                        entries.iter_mut().any(|(_, v)| v.with_object(n, f))
                    }
                    _ => false,
                }
            }

            /// Keeps the first of each key in every object.
            fn dedup(&mut self) {
                match self {
                    Node::Arr(items) => items.iter_mut().for_each(Node::dedup),
                    Node::Obj(entries) => {
                        let mut seen = std::collections::HashSet::new();
                        entries.retain(|(k, _)| seen.insert(k.clone()));
                        entries.iter_mut().for_each(|(_, v)| v.dedup());
                    }
                    _ => {}
                }
            }
        }

        fn key() -> impl Strategy<Value = String> {
            let mut known: Vec<&str> = EVENT_FIELDS.to_vec();
            known.extend(["dry_run", "at", "instance_ids", "instance-id", "state"]);
            prop_oneof![
                2 => "[a-zA-Z_ -]{0,8}",
                1 => prop::sample::select(known).prop_map(str::to_string),
            ]
        }

        fn node() -> impl Strategy<Value = Node> {
            let leaf = prop_oneof![
                Just(Node::Null),
                any::<bool>().prop_map(Node::Bool),
                any::<i64>().prop_map(Node::Int),
                (-1e9f64..1e9).prop_map(Node::Float),
                "\\PC{0,12}".prop_map(Node::Str),
                prop::sample::select(vec![
                    "Scheduled Event",
                    "EC2 Instance State-change Notification",
                    "aws.events",
                    "aws.ec2",
                    "pending",
                    "i-0123456789abcdef0",
                    "2030-01-01T00:00:00Z"
                ])
                .prop_map(|s| Node::Str(s.to_string())),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Node::Arr),
                    prop::collection::vec((key(), inner), 0..6).prop_map(Node::Obj),
                ]
            })
        }

        /// "dry run" in any case, with any separator, inside other words or not.
        fn spelling() -> impl Strategy<Value = String> {
            (
                prop::collection::vec(any::<bool>(), 6),
                prop::sample::select(vec!["", "_", "-", " ", ".", "__", "-_", ":", "/"]),
                prop::sample::select(vec!["", "is", "is_", "do-", "x", "force "]),
                prop::sample::select(vec!["", "s", "_mode", "Enabled", "-only", " please"]),
            )
                .prop_map(|(upper, sep, pre, post)| {
                    let letters: String = "dryrun"
                        .chars()
                        .zip(upper)
                        .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                        .collect();
                    format!("{pre}{}{sep}{}{post}", &letters[..3], &letters[3..])
                })
        }

        fn truthy() -> impl Strategy<Value = Node> {
            prop_oneof![
                Just(Node::Bool(true)),
                Just(Node::Str("true".into())),
                Just(Node::Int(1)),
                Just(Node::Str("yes".into())),
                Just(Node::Obj(vec![])),
                Just(Node::Arr(vec![Node::Bool(true)])),
                spelling().prop_map(Node::Str),
            ]
        }

        fn base() -> impl Strategy<Value = Node> {
            prop_oneof![
                Just(Node::from_value(&schedule())),
                Just(Node::from_value(&state_change())),
                Just(Node::Obj(vec![])),
                Just(Node::from_value(
                    &json!({"instance_ids": ["i-0123456789abcdef0"]})
                )),
                Just(Node::from_value(
                    &json!({"at": "2030-01-01T00:00:00Z", "instance_ids": []})
                )),
                prop::collection::vec((key(), node()), 0..6).prop_map(Node::Obj),
            ]
        }

        /// How the intent is written into the payload.
        #[derive(Debug, Clone)]
        enum Intent {
            /// `spelling: truthy` in the chosen object.
            Key(String, Node),
            /// `key: "dry run"` (a value that says it) in the chosen object.
            Value(String, String),
            /// The one real field, then a second copy of it saying the opposite.
            Duplicate { true_first: bool },
        }

        fn intent() -> impl Strategy<Value = Intent> {
            prop_oneof![
                4 => (spelling(), truthy()).prop_map(|(k, v)| Intent::Key(k, v)),
                1 => (key(), spelling()).prop_map(|(k, v)| Intent::Value(k, v)),
                1 => any::<bool>().prop_map(|true_first| Intent::Duplicate { true_first }),
            ]
        }

        proptest! {
            /// Issue 10, finding 2, as a property: whatever the payload, wherever and however
            /// it says "dry run", the result is an error or a trigger that forces a dry run.
            #[test]
            fn fuzz_dry_run_intent_never_runs_live(
                mut payload in base(),
                intent in intent(),
                which in any::<prop::sample::Index>(),
                position in any::<prop::sample::Index>(),
            ) {
                let mut n = which.index(payload.objects().max(1));
                let mut insert = |entries: &mut Entries| {
                    let at = position.index(entries.len() + 1);
                    match &intent {
                        Intent::Key(k, v) => entries.insert(at, (k.clone(), v.clone())),
                        Intent::Value(k, v) => entries.insert(at, (k.clone(), Node::Str(v.clone()))),
                        Intent::Duplicate { true_first } => {
                            entries.insert(at.min(entries.len()), ("dry_run".into(), Node::Bool(*true_first)));
                            entries.push(("dry_run".into(), Node::Bool(!*true_first)));
                        }
                    }
                };
                prop_assert!(payload.with_object(&mut n, &mut insert));
                let text = payload.render();
                match parse_event_bytes(text.as_bytes()) {
                    Ok(trigger) => prop_assert!(!trigger.may_run_live(), "{} -> {:?}", text, trigger),
                    Err(err) => {
                        prop_assert_eq!(err.error_type(), "InvalidEvent");
                        prop_assert!(!err.to_string().is_empty());
                    }
                }
            }

            #[test]
            fn fuzz_event_parsing_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = parse_event_bytes(&bytes);
            }

            /// Real events with one thing changed: no panic, and every error has a name and a
            /// message.
            #[test]
            fn fuzz_event_parsing_never_panics_on_near_events(
                mut payload in prop_oneof![Just(Node::from_value(&schedule())), Just(Node::from_value(&state_change())), base()],
                which in any::<prop::sample::Index>(),
                pick in any::<prop::sample::Index>(),
                change in 0u8..3,
                k in key(),
                v in node(),
            ) {
                let mut n = which.index(payload.objects().max(1));
                payload.with_object(&mut n, &mut |entries| {
                    let at = pick.index(entries.len().max(1));
                    match change {
                        0 if at < entries.len() => { entries.remove(at); }
                        1 if at < entries.len() => entries[at].1 = v.clone(),
                        _ => entries.push((k.clone(), v.clone())),
                    }
                });
                let text = payload.render();
                match parse_event_bytes(text.as_bytes()) {
                    Ok(_) => {}
                    Err(err) => {
                        prop_assert!(["InvalidEvent", "InvalidRequest"].contains(&err.error_type()));
                        prop_assert!(!err.to_string().is_empty());
                    }
                }
            }

            #[test]
            fn fuzz_duplicate_keys_are_refused_anywhere(
                mut payload in base(),
                which in any::<prop::sample::Index>(),
                pick in any::<prop::sample::Index>(),
                k in key(),
                v in node(),
            ) {
                payload.dedup();
                let mut v = v;
                v.dedup();
                let mut n = which.index(payload.objects().max(1));
                let mut duplicated = String::new();
                payload.with_object(&mut n, &mut |entries| {
                    if entries.is_empty() {
                        entries.push((k.clone(), v.clone()));
                    }
                    let (key, _) = entries[pick.index(entries.len())].clone();
                    entries.push((key.clone(), v.clone()));
                    duplicated = key;
                });
                let text = payload.render();
                let result = parse_event_bytes(text.as_bytes());
                prop_assert!(
                    matches!(&result, Err(EventError::DuplicateKey { key, .. }) if *key == truncate(&duplicated)),
                    "{} -> {:?}", text, result
                );
                prop_assert!(serde_json::from_str::<StrictEvent>(&text).is_err());
            }

            #[test]
            fn fuzz_strict_event_reads_what_serde_json_reads(mut payload in node()) {
                payload.dedup();
                let text = payload.render();
                let strict = serde_json::from_str::<StrictEvent>(&text).map(|s| s.0).map_err(|e| e.to_string());
                let plain = serde_json::from_str::<Value>(&text).map_err(|e| e.to_string());
                prop_assert_eq!(strict, plain);
            }
        }
    }
}

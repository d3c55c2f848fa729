//! Raw event JSON -> Trigger (SPEC §7). One function serves three triggers, told apart by shape.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub const SCHEDULED_EVENT: &str = "Scheduled Event";
pub const STATE_CHANGE_EVENT: &str = "EC2 Instance State-change Notification";
const MANUAL_FIELDS: &str =
    "dry_run (bool), at (RFC 3339 date-time, dry run only), instance_ids (array of instance ids)";

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
pub enum TriggerError {
    #[error("the event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("unknown field `{field}` in the manual payload; accepted fields: {MANUAL_FIELDS}")]
    UnknownField { field: String },
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
    #[error("field `{field}` belongs to a manual payload, not to an EventBridge event (it has a detail-type); send {{\"{field}\": ...}} without detail-type")]
    ManualFieldInEvent { field: String },
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

fn wrong(field: &str, expected: &'static str, got: &Value) -> TriggerError {
    TriggerError::WrongType {
        field: field.to_string(),
        expected,
        got: format!("{} ({})", type_name(got), truncate(&got.to_string())),
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
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

impl Trigger {
    pub fn parse(event: &Value) -> Result<Trigger, TriggerError> {
        let Value::Object(obj) = event else {
            return Err(TriggerError::NotAnObject(type_name(event)));
        };
        if obj.contains_key("detail-type") {
            // An event shape never carries the manual fields: a schedule fixture with
            // `"dry_run": true` pasted into it must not run a live sweep.
            if let Some(field) = ["dry_run", "at", "instance_ids"]
                .into_iter()
                .find(|f| obj.contains_key(*f))
            {
                return Err(TriggerError::ManualFieldInEvent {
                    field: field.to_string(),
                });
            }
        }
        match obj.get("detail-type") {
            None => parse_manual(obj).map(Trigger::Manual),
            Some(Value::String(dt)) if dt == SCHEDULED_EVENT => Ok(Trigger::Schedule),
            Some(Value::String(dt)) if dt == STATE_CHANGE_EVENT => parse_state_change(obj),
            Some(Value::String(dt)) => Err(TriggerError::UnsupportedEvent(dt.clone())),
            Some(other) => Err(wrong("detail-type", "a string", other)),
        }
    }
}

fn parse_state_change(obj: &Map<String, Value>) -> Result<Trigger, TriggerError> {
    let detail = match obj.get("detail") {
        Some(Value::Object(d)) => d,
        Some(other) => return Err(wrong("detail", "an object", other)),
        None => return Err(wrong("detail", "an object", &Value::Null)),
    };
    let instance_id = match detail.get("instance-id") {
        Some(Value::String(id)) if valid_instance_id(id) => id.clone(),
        Some(Value::String(id)) => {
            return Err(TriggerError::BadValue {
                field: "detail.instance-id".into(),
                value: id.clone(),
                accepted: "an EC2 instance id (i- and 8 or 17 hex digits)".into(),
            })
        }
        Some(other) => return Err(wrong("detail.instance-id", "a string", other)),
        None => return Err(wrong("detail.instance-id", "a string", &Value::Null)),
    };
    let state = match detail.get("state") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(wrong("detail.state", "a string", other)),
        None => return Err(wrong("detail.state", "a string", &Value::Null)),
    };
    Ok(Trigger::InstanceState { instance_id, state })
}

fn parse_manual(obj: &Map<String, Value>) -> Result<Manual, TriggerError> {
    let mut manual = Manual::default();
    for (field, value) in obj {
        match field.as_str() {
            "dry_run" => match value {
                Value::Bool(b) => manual.dry_run = *b,
                other => return Err(wrong("dry_run", "a boolean (true or false)", other)),
            },
            "at" => {
                match value {
                    Value::String(s) => {
                        let at = DateTime::parse_from_rfc3339(s.trim()).map_err(|_| TriggerError::BadValue {
                        field: "at".into(),
                        value: s.clone(),
                        accepted: "an RFC 3339 date-time with a time zone, e.g. 2030-01-01T00:00:00Z".into(),
                    })?;
                        manual.at = Some(at.with_timezone(&Utc));
                    }
                    other => return Err(wrong("at", "an RFC 3339 date-time string", other)),
                }
            }
            "instance_ids" => match value {
                Value::Array(items) => {
                    let mut ids = Vec::with_capacity(items.len());
                    for (n, item) in items.iter().enumerate() {
                        match item {
                            Value::String(id) if valid_instance_id(id) => ids.push(id.clone()),
                            Value::String(id) => {
                                return Err(TriggerError::BadValue {
                                    field: format!("instance_ids[{n}]"),
                                    value: id.clone(),
                                    accepted: "an EC2 instance id (i- and 8 or 17 hex digits)"
                                        .into(),
                                })
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
            _ => {
                return Err(TriggerError::UnknownField {
                    field: field.clone(),
                })
            }
        }
    }
    Ok(manual)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_three_shapes() {
        let schedule = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(Trigger::parse(&schedule), Ok(Trigger::Schedule));
        let state = json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
            "detail": {"instance-id": "i-0123456789abcdef0", "state": "pending"}});
        assert_eq!(
            Trigger::parse(&state),
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
    fn bad_payloads_name_the_field() {
        let cases = [
            (json!({"dryrun": true}), "unknown field `dryrun`"),
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
                json!({"detail-type": STATE_CHANGE_EVENT, "detail": {"state": "pending"}}),
                "detail.instance-id",
            ),
            (
                json!({"detail-type": STATE_CHANGE_EVENT, "detail": {"instance-id": "i-x", "state": "pending"}}),
                "detail.instance-id",
            ),
        ];
        for (event, fragment) in cases {
            let err = Trigger::parse(&event)
                .expect_err(&event.to_string())
                .to_string();
            assert!(err.contains(fragment), "{event}: {err}");
        }
    }

    #[test]
    fn instance_ids() {
        assert!(valid_instance_id("i-0123456789abcdef0"));
        assert!(valid_instance_id("i-0123abcd"));
        assert!(!valid_instance_id("i-0123456789ABCDEF0"));
        assert!(!valid_instance_id("i-123"));
        assert!(!valid_instance_id("vol-0123456789abcdef0"));
    }
}

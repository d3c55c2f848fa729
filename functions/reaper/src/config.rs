//! Environment -> Config (SPEC §9). A bad value is an error naming the variable, the value and
//! what is accepted; nothing falls back to a default silently.

use crate::policy::plan::{Cap, Caps};
use crate::policy::tags::{parse_duration, parse_lifetime, Lifetime};
use crate::policy::verdict::Rules;
use crate::policy::window::ActionWindow;
use chrono::TimeDelta;
use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}={value:?} is not accepted: {accepted}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub accepted: String,
}

/// The Slack incoming-webhook URL. A secret: never printed, logged or reported.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook(String);

impl Webhook {
    pub(crate) fn url(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Webhook(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// What LIVEMODE says; only `run::RunRequest` reads it to decide the run's mode.
    pub livemode: bool,
    pub slack_webhook: Option<Webhook>,
    /// A Secrets Manager secret whose string is the webhook URL, read on the first run that posts.
    pub slack_webhook_secret_arn: Option<String>,
    pub rules: Rules,
    pub caps: Caps,
    pub owner_tag: String,
    pub report_bucket: Option<String>,
    /// ACTION_WINDOW: terminations and stops only inside it; `None` is always.
    pub action_window: Option<ActionWindow>,
    /// NOTICE_FROM: the SES identity owner e-mails are sent from; `None` sends none.
    pub notice_from: Option<String>,
    /// Things worth telling the operator that are not errors (e.g. an unrecognised LIVEMODE).
    pub warnings: Vec<String>,
    /// ENROLMENT_NOTICE, ENROLLED_AT, DIGEST_AT (issue 18).
    pub notices: Notices,
    /// REAPER_STACK_ID: the stack that deployed this function; its creation time is when the
    /// reaper was enrolled here (unless ENROLLED_AT says otherwise).
    pub stack_id: Option<String>,
    /// ACTIONS_URL and LINK_KEY_ARN (docs/ACTIONS.md): keep buttons and links in owner notices.
    pub owner_actions: Option<OwnerActions>,
}

/// Where owners keep a machine (the reaper-actions Function URL) and the secret that signs the
/// buttons and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerActions {
    pub url: String,
    pub link_key_arn: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            livemode: false,
            slack_webhook: None,
            slack_webhook_secret_arn: None,
            rules: Rules::default(),
            caps: Caps::default(),
            owner_tag: "owner".into(),
            report_bucket: None,
            action_window: None,
            notice_from: None,
            warnings: Vec::new(),
            notices: Notices::default(),
            stack_id: None,
            owner_actions: None,
        }
    }
}

/// Every variable the reaper reads (SPEC §9), including those read by other parts of the code.
/// A variable whose name is close to one of these is almost certainly meant as it, so it is
/// reported rather than silently ignored.
pub const KNOWN_VARS: [&str; 20] = [
    "LIVEMODE",
    "SLACKWEBHOOK",
    "SLACKWEBHOOK_SECRET_ARN",
    "GRACE_PERIOD",
    "WARN_WINDOW",
    "MAX_TERMINATIONS",
    "MAX_STOPS",
    "SKIP_MANAGED",
    "OWNER_TAG",
    "REPORT_BUCKET",
    "MAX_LIFETIME",
    "ALLOW_INDEFINITE",
    "ACTION_WINDOW",
    "NOTICE_FROM",
    "ENROLMENT_NOTICE",
    "ENROLLED_AT",
    "DIGEST_AT",
    "REAPER_STACK_ID",
    "ACTIONS_URL",
    "LINK_KEY_ARN",
];

/// Every variable the owner-actions function (`reaper-actions`) reads.
pub const ACTIONS_VARS: [&str; 8] = [
    "LINK_KEY_ARN",
    "SLACK_SIGNING_SECRET_ARN",
    "ACTIONS_ROLE_NAME",
    "ADMIN_SLACK_IDS",
    "MAX_LIFETIME",
    "ALLOW_INDEFINITE",
    "OWNER_TAG",
    "REPORT_BUCKET",
];

/// Names the platform sets or reserves (Lambda's `AWS_*`, `LAMBDA_*`, `_HANDLER`, `_X_AMZN_*`):
/// never a misspelling of ours, whatever they happen to contain.
fn reserved(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("AWS_") || upper.starts_with("LAMBDA_") || upper.starts_with('_')
}

/// Levenshtein distance over bytes, ASCII-case-insensitive; stops counting past `limit`.
fn distance_within(a: &str, b: &str, limit: usize) -> Option<usize> {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(!ca.eq_ignore_ascii_case(cb));
            row[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        std::mem::swap(&mut prev, &mut row);
    }
    let d = prev[b.len()];
    (d <= limit).then_some(d)
}

/// The known variable `name` looks like a misspelling of, if any: within edit distance 2, or
/// with a known name as its prefix or suffix, compared case-insensitively.
pub fn near_miss(name: &str) -> Option<&'static str> {
    if KNOWN_VARS.contains(&name) || reserved(name) {
        return None;
    }
    let upper = name.to_ascii_uppercase();
    KNOWN_VARS
        .iter()
        .filter_map(|known| {
            let affix =
                upper.len() > known.len() && (upper.starts_with(known) || upper.ends_with(known));
            // A typo outranks an affix: MAX_STOPS_X (distance 2 from MAX_STOPS, and MAX_STOPS
            // as prefix) and the like still name the closest spelling first.
            let score = distance_within(&upper, known, 2).or(affix.then_some(3))?;
            Some((score, *known))
        })
        .min_by_key(|(score, _)| *score)
        .map(|(_, known)| known)
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        // Non-UTF-8 names cannot be ours; a non-UTF-8 value is kept (lossily) so a bad value
        // still fails with its variable named instead of reading as unset.
        Self::from_vars(
            std::env::vars_os().filter_map(|(k, v)| {
                Some((k.into_string().ok()?, v.to_string_lossy().into_owned()))
            }),
        )
    }

    /// The whole environment: the values of the known variables, and the names of all the
    /// others so that a near miss (`MAX_TERMINATION=0`) becomes a warning in every report.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: std::collections::BTreeMap<String, String> = vars.into_iter().collect();
        let mut cfg = Self::from_lookup(|name| vars.get(name).cloned())?;
        for name in vars.keys() {
            if let Some(known) = near_miss(name) {
                // The value is never shown: a misspelt SLACKWEBHOOK holds a secret.
                cfg.warnings.push(format!(
                    "environment variable {name} is not one the reaper reads, so it is ignored; did you mean {known}? (set {known} instead)"
                ));
            }
        }
        Ok(cfg)
    }

    /// `lookup` returns a variable's value, `None` when unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut cfg = Config::default();

        // One rule for every variable: a value is read exactly as set. Surrounding spaces or a
        // line break (a pasted value) are refused rather than trimmed, so `LIVEMODE=" true"` can
        // never go live by one reader and stay dry by another.
        for var in KNOWN_VARS {
            let Some(v) = lookup(var) else { continue };
            if v.trim() != v {
                let shown = if var == "SLACKWEBHOOK" {
                    format!("{}… (redacted)", v.chars().take(12).collect::<String>())
                } else {
                    v.clone()
                };
                return Err(ConfigError {
                    var,
                    value: shown,
                    accepted: "a value without surrounding spaces, tabs or line breaks (values are read exactly as set, never trimmed); remove them".into(),
                });
            }
        }

        match lookup("LIVEMODE") {
            Some(v) if v.eq_ignore_ascii_case("true") => cfg.livemode = true,
            Some(v) if v.is_empty() || v.eq_ignore_ascii_case("false") => {}
            None => {}
            // SPEC §4: anything but `true` is a dry run. It is the safe side, but never silent.
            Some(v) => cfg.warnings.push(format!(
                "LIVEMODE={v:?} is not `true`, so this is a dry run; set LIVEMODE to true or false"
            )),
        }

        if let Some(v) = lookup("SLACKWEBHOOK").filter(|v| !v.is_empty()) {
            cfg.slack_webhook = Some(parse_webhook(&v)?);
        }
        if let Some(v) = lookup("SLACKWEBHOOK_SECRET_ARN").filter(|v| !v.is_empty()) {
            if !valid_secret_arn(&v) {
                return Err(ConfigError {
                    var: "SLACKWEBHOOK_SECRET_ARN",
                    value: v,
                    accepted: "a Secrets Manager secret ARN, arn:<partition>:secretsmanager:<region>:<account>:secret:<name>, or empty".into(),
                });
            }
            if cfg.slack_webhook.is_some() {
                return Err(ConfigError {
                    var: "SLACKWEBHOOK_SECRET_ARN",
                    value: v,
                    accepted: "only one webhook source: leave SLACKWEBHOOK empty when the webhook is in Secrets Manager".into(),
                });
            }
            cfg.slack_webhook_secret_arn = Some(v);
        }

        if let Some(v) = lookup("GRACE_PERIOD") {
            cfg.rules.grace_period = duration("GRACE_PERIOD", &v)?;
        }
        if let Some(v) = lookup("WARN_WINDOW") {
            cfg.rules.warn_window = duration("WARN_WINDOW", &v)?;
            if cfg.rules.warn_window <= TimeDelta::zero() {
                cfg.warnings.push(format!(
                    "WARN_WINDOW={v:?} turns off every notice before an action: no owner is told before a termination, and a lifetime is stamped to end at once; set e.g. 1d to warn owners a day ahead"
                ));
            }
        }
        if let Some(v) = lookup("MAX_TERMINATIONS") {
            cfg.caps.terminations = cap("MAX_TERMINATIONS", &v)?;
        }
        if let Some(v) = lookup("MAX_STOPS") {
            cfg.caps.stops = cap("MAX_STOPS", &v)?;
        }
        if let Some(v) = lookup("SKIP_MANAGED") {
            cfg.rules.skip_managed = boolean("SKIP_MANAGED", &v)?;
        }
        if let Some(v) = lookup("OWNER_TAG") {
            let trimmed = v.trim();
            if trimmed.is_empty() || trimmed.chars().count() > 128 || trimmed != v {
                return Err(ConfigError {
                    var: "OWNER_TAG",
                    value: v,
                    accepted:
                        "a tag key of 1 to 128 characters without surrounding spaces, e.g. owner"
                            .into(),
                });
            }
            cfg.owner_tag = v;
        }
        if let Some(v) = lookup("REPORT_BUCKET").filter(|v| !v.is_empty()) {
            if let Err(rule) = check_bucket_name(&v) {
                return Err(ConfigError {
                    var: "REPORT_BUCKET",
                    value: v,
                    accepted: format!(
                        "an S3 bucket name, or empty for no S3 report; S3's naming rules: {rule}"
                    ),
                });
            }
            cfg.report_bucket = Some(v);
        }
        if let Some(v) = lookup("MAX_LIFETIME") {
            cfg.rules.max_lifetime = max_lifetime(&v)?;
        }
        let actions_url = lookup("ACTIONS_URL").filter(|v| !v.is_empty());
        let link_key = lookup("LINK_KEY_ARN").filter(|v| !v.is_empty());
        match (actions_url, link_key) {
            (None, None) => {}
            (Some(url), Some(arn)) => {
                let ok_url = url.starts_with("https://")
                    && url.len() > "https://".len()
                    && url.len() <= 2048
                    && !url.contains('#')
                    && !url.chars().any(char::is_whitespace);
                if !ok_url {
                    return Err(ConfigError {
                        var: "ACTIONS_URL",
                        value: url,
                        accepted: "the owner-actions function's https:// URL (its Function URL), without spaces or #".into(),
                    });
                }
                if !valid_secret_arn(&arn) {
                    return Err(ConfigError {
                        var: "LINK_KEY_ARN",
                        value: arn,
                        accepted: "a Secrets Manager secret ARN, arn:<partition>:secretsmanager:<region>:<account>:secret:<name>".into(),
                    });
                }
                cfg.owner_actions = Some(OwnerActions {
                    url,
                    link_key_arn: arn,
                });
            }
            (Some(url), None) => return Err(ConfigError {
                var: "ACTIONS_URL",
                value: url,
                accepted:
                    "a URL together with LINK_KEY_ARN (the key that signs its links), or neither"
                        .into(),
            }),
            (None, Some(arn)) => {
                return Err(ConfigError {
                    var: "LINK_KEY_ARN",
                    value: arn,
                    accepted:
                        "a secret ARN together with ACTIONS_URL (where the links point), or neither"
                            .into(),
                })
            }
        }
        if let Some(v) = lookup("ALLOW_INDEFINITE") {
            cfg.rules.allow_indefinite = boolean("ALLOW_INDEFINITE", &v)?;
        }
        if !cfg.rules.allow_indefinite && cfg.rules.max_lifetime.is_none() {
            cfg.warnings.push(
                "ALLOW_INDEFINITE=false without MAX_LIFETIME: instances tagged indefinite are treated as untagged (stopped, never terminated); set MAX_LIFETIME to enforce a bound instead".into(),
            );
        }
        if let Some(v) = lookup("ACTION_WINDOW").filter(|v| !v.is_empty()) {
            let window = ActionWindow::parse(&v).map_err(|e| ConfigError {
                var: "ACTION_WINDOW",
                accepted: e.to_string(),
                value: v,
            })?;
            cfg.warnings.extend(window.zone_warning());
            cfg.action_window = Some(window);
        }
        if let Some(v) = lookup("NOTICE_FROM").filter(|v| !v.is_empty()) {
            if !crate::policy::address::is_email(&v) {
                return Err(ConfigError {
                    var: "NOTICE_FROM",
                    value: v,
                    accepted: "an e-mail address verified in SES, local@domain.example (no spaces or display name), or empty for no owner e-mail".into(),
                });
            }
            cfg.notice_from = Some(v);
            // SPEC §8: an owner no channel reaches is told in the channel's message; with e-mail
            // alone there is none, so the notice gate never lets their instances go.
            if cfg.slack_webhook.is_none() && cfg.slack_webhook_secret_arn.is_none() {
                cfg.warnings.push(
                    "NOTICE_FROM without SLACKWEBHOOK or SLACKWEBHOOK_SECRET_ARN: only owners whose owner tag is an e-mail address can be told, so an instance whose owner tag is anything else (or missing) is never announced and its termination is deferred for good; set a Slack webhook to reach them in the channel".into(),
                );
            }
        }
        cfg.notices = Notices::from_lookup(&lookup, &mut cfg.warnings)?;
        cfg.stack_id = lookup("REAPER_STACK_ID").filter(|v| !v.trim().is_empty());
        Ok(cfg)
    }
}

fn duration(var: &'static str, v: &str) -> Result<TimeDelta, ConfigError> {
    parse_duration(v).map_err(|e| ConfigError {
        var,
        value: v.into(),
        accepted: format!(
            "a whole number and one unit: w, d, h or m (minutes), e.g. 15m or 1d ({})",
            e.reason
        ),
    })
}

/// `unlimited` or the lifetime grammar. Not `indefinite`: that is what ALLOW_INDEFINITE governs,
/// and not `0m`, which would make every instance due the moment it launched.
fn max_lifetime(v: &str) -> Result<Option<TimeDelta>, ConfigError> {
    if v == "unlimited" {
        return Ok(None);
    }
    let err = |why: String| ConfigError {
        var: "MAX_LIFETIME",
        value: v.into(),
        accepted: format!(
            "`unlimited` or a whole number and one unit: w, d, h or m (minutes), e.g. 90d ({why})"
        ),
    };
    match parse_lifetime(v) {
        Ok(Lifetime::For(d)) if d > TimeDelta::zero() => Ok(Some(d)),
        Ok(Lifetime::For(_)) => Err(err(
            "a bound of zero would terminate every instance at launch".into(),
        )),
        Ok(Lifetime::Indefinite) => Err(err("indefinite is not a bound; write unlimited".into())),
        Err(e) => Err(err(e.reason)),
    }
}

fn cap(var: &'static str, v: &str) -> Result<Cap, ConfigError> {
    v.parse().map_err(|accepted| ConfigError {
        var,
        value: v.into(),
        accepted,
    })
}

fn boolean(var: &'static str, v: &str) -> Result<bool, ConfigError> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ConfigError {
            var,
            value: v.into(),
            accepted: "true or false".into(),
        })
    }
}

/// `arn:<partition>:secretsmanager:<region>:<12 digits>:secret:<name>`.
fn valid_secret_arn(v: &str) -> bool {
    let parts: Vec<&str> = v.splitn(7, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "secretsmanager", region, account, "secret", name]
        if partition.starts_with("aws")
            && !region.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !name.is_empty())
}

/// The webhook URL as SLACKWEBHOOK or the secret holds it; the error never shows the secret part.
pub(crate) fn parse_webhook(v: &str) -> Result<Webhook, ConfigError> {
    let redacted = || {
        // Show only enough to recognise the value; the path of a webhook URL is the secret.
        let shown: String = v.chars().take(12).collect();
        format!("{shown}… (redacted)")
    };
    let err = |accepted: &str| ConfigError {
        var: "SLACKWEBHOOK",
        value: redacted(),
        accepted: accepted.into(),
    };
    let url = reqwest::Url::parse(v).map_err(|_| {
        err("an https:// URL (a Slack incoming webhook), or empty for no Slack message")
    })?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => Ok(Webhook(v.to_string())),
        // A local stand-in for Slack (tests, `make demo`) speaks plain HTTP on loopback only.
        "http" if loopback => Ok(Webhook(v.to_string())),
        _ => Err(err("an https:// URL (plain http only on 127.0.0.1/localhost), or empty for no Slack message")),
    }
}

/// S3's naming rules for general purpose buckets
/// (docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html). `Err` is the rule
/// the name breaks, in words an operator can act on.
pub(crate) fn check_bucket_name(name: &str) -> Result<(), &'static str> {
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return Err("a bucket name is 3 to 63 characters long");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
    {
        return Err("a bucket name has only lowercase letters, digits, dots (.) and hyphens (-)");
    }
    if !(b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric()) {
        return Err("a bucket name begins and ends with a letter or digit");
    }
    if name.contains("..") {
        return Err("a bucket name has no two adjacent dots");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("a bucket name is not formatted as an IP address (such as 192.168.5.4)");
    }
    const PREFIXES: [(&str, &str); 3] = [
        (
            "xn--",
            "a bucket name does not start with the prefix xn-- (reserved)",
        ),
        (
            "sthree-",
            "a bucket name does not start with the prefix sthree- (reserved)",
        ),
        (
            "amzn-s3-demo-",
            "a bucket name does not start with the prefix amzn-s3-demo- (reserved)",
        ),
    ];
    const SUFFIXES: [(&str, &str); 5] = [
        ("-s3alias", "a bucket name does not end with the suffix -s3alias (reserved for access point aliases)"),
        ("--ol-s3", "a bucket name does not end with the suffix --ol-s3 (reserved for Object Lambda access point aliases)"),
        (".mrap", "a bucket name does not end with the suffix .mrap (reserved for Multi-Region Access Points)"),
        ("--x-s3", "a bucket name does not end with the suffix --x-s3 (reserved for directory buckets)"),
        ("--table-s3", "a bucket name does not end with the suffix --table-s3 (reserved for S3 Tables)"),
    ];
    if let Some((_, rule)) = PREFIXES.iter().find(|(p, _)| name.starts_with(p)) {
        return Err(rule);
    }
    if let Some((_, rule)) = SUFFIXES.iter().find(|(x, _)| name.ends_with(x)) {
        return Err(rule);
    }
    Ok(())
}

/// The notice gate's settings (SPEC §5, §8, §9): how long an instance that predates the reaper
/// is told before it is stopped or terminated, since when the reaper is enrolled, and the hour
/// of the daily channel digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notices {
    /// ENROLMENT_NOTICE: at least this long between the first announcement to a pre-enrolment
    /// instance's owner and any stop or termination of it.
    pub enrolment_notice: TimeDelta,
    /// ENROLLED_AT: an explicit enrolment time (reaperctl, or to override the stack's creation
    /// time); `None` leaves it to the stack (REAPER_STACK_ID).
    pub enrolled_at: Option<chrono::DateTime<chrono::Utc>>,
    /// DIGEST_AT: the hour (0..=23) of the daily digest, in ACTION_WINDOW's zone when set, else
    /// UTC; the zone is resolved where the digest is sent.
    pub digest_hour: u8,
}

impl Default for Notices {
    fn default() -> Self {
        Self {
            enrolment_notice: TimeDelta::days(7),
            enrolled_at: None,
            digest_hour: 9,
        }
    }
}

impl Notices {
    fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let mut n = Notices::default();
        if let Some(v) = lookup("ENROLMENT_NOTICE") {
            n.enrolment_notice = duration("ENROLMENT_NOTICE", &v)?;
            if n.enrolment_notice <= TimeDelta::zero() {
                warnings.push(format!(
                    "ENROLMENT_NOTICE={v:?} lets the reaper stop or terminate machines that existed before it was enrolled as soon as WARN_WINDOW allows, with no extra notice to teams that did not know it was switched on; set e.g. 7d"
                ));
            }
        }
        if let Some(v) = lookup("ENROLLED_AT").filter(|v| !v.is_empty()) {
            let at = chrono::DateTime::parse_from_rfc3339(&v).map_err(|e| ConfigError {
                var: "ENROLLED_AT",
                value: v.clone(),
                accepted: format!(
                    "an RFC 3339 time with its offset, e.g. 2030-01-01T00:00:00Z, or empty to use the stack's creation time ({e})"
                ),
            })?;
            n.enrolled_at = Some(at.with_timezone(&chrono::Utc));
        }
        if let Some(v) = lookup("DIGEST_AT") {
            n.digest_hour = match v.as_bytes() {
                [a @ b'0'..=b'2', b @ b'0'..=b'9'] if (a - b'0') * 10 + (b - b'0') <= 23 => {
                    (a - b'0') * 10 + (b - b'0')
                }
                _ => {
                    return Err(ConfigError {
                        var: "DIGEST_AT",
                        value: v,
                        accepted: "an hour as two digits, 00 to 23 (in ACTION_WINDOW's time zone when set, else UTC), e.g. 09".into(),
                    })
                }
            };
        }
        Ok(n)
    }
}

#[cfg(test)]
mod notices_tests {
    use super::*;

    fn notices(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: std::collections::HashMap<&str, &str> = vars.iter().copied().collect();
        Config::from_lookup(|k| map.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn notice_settings_default_to_a_week_and_nine() {
        let c = notices(&[]).unwrap();
        assert_eq!(c.notices, Notices::default());
        assert_eq!(c.notices.enrolment_notice, TimeDelta::days(7));
        assert_eq!(c.notices.enrolled_at, None);
        assert_eq!(c.notices.digest_hour, 9);
    }

    #[test]
    fn notice_settings_are_read() {
        let c = notices(&[
            ("ENROLMENT_NOTICE", "2w"),
            ("ENROLLED_AT", "2030-01-01T01:00:00+01:00"),
            ("DIGEST_AT", "23"),
        ])
        .unwrap();
        assert_eq!(c.notices.enrolment_notice, TimeDelta::weeks(2));
        assert_eq!(
            c.notices.enrolled_at.map(|t| t.to_rfc3339()),
            Some("2030-01-01T00:00:00+00:00".into())
        );
        assert_eq!(c.notices.digest_hour, 23);
        assert_eq!(
            notices(&[("DIGEST_AT", "00")]).unwrap().notices.digest_hour,
            0
        );
        assert_eq!(
            notices(&[("ENROLLED_AT", "")]).unwrap().notices.enrolled_at,
            None
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn a_zero_enrolment_notice_is_allowed_but_warned() {
        let c = notices(&[("ENROLMENT_NOTICE", "0m")]).unwrap();
        assert_eq!(c.notices.enrolment_notice, TimeDelta::zero());
        assert!(
            c.warnings[0].starts_with("ENROLMENT_NOTICE=\"0m\" lets the reaper"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn bad_notice_settings_name_the_variable_value_and_what_is_accepted() {
        let cases = [
            ("ENROLMENT_NOTICE", "", "a whole number and one unit"),
            ("ENROLMENT_NOTICE", "7 days", "a whole number and one unit"),
            (
                "ENROLMENT_NOTICE",
                "indefinite",
                "a whole number and one unit",
            ),
            ("ENROLLED_AT", "2030-01-01", "an RFC 3339 time"),
            ("ENROLLED_AT", "yesterday", "an RFC 3339 time"),
            ("DIGEST_AT", "", "00 to 23"),
            ("DIGEST_AT", "9", "00 to 23"),
            ("DIGEST_AT", "24", "00 to 23"),
            ("DIGEST_AT", "09:00", "00 to 23"),
            ("DIGEST_AT", "-1", "00 to 23"),
        ];
        for (var, value, accepted) in cases {
            let err = notices(&[(var, value)]).unwrap_err();
            assert_eq!((err.var, err.value.as_str()), (var, value));
            assert!(err.accepted.contains(accepted), "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("{var}={value:?} is not accepted")),
                "{err}"
            );
        }
    }

    #[test]
    fn near_misses_of_notice_settings_are_named() {
        assert_eq!(near_miss("ENROLLMENT_NOTICE"), Some("ENROLMENT_NOTICE"));
        assert_eq!(near_miss("DIGEST_HOUR"), None);
        assert_eq!(near_miss("DIGESTAT"), Some("DIGEST_AT"));
    }
}

/// The owner-actions function's configuration (`reaper-actions`, issue 23), read as strictly as
/// the reaper's: every bad value names its variable, the value and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionsConfig {
    /// SLACK_SIGNING_SECRET_ARN: the Slack app's signing secret; without it Slack clicks are refused.
    pub slack_signing_secret_arn: Option<String>,
    /// LINK_KEY_ARN: the key that signs and checks button values and e-mail links.
    pub link_key_arn: String,
    /// ADMIN_SLACK_IDS: Slack users who may keep any instance.
    pub admin_slack_ids: Vec<String>,
    /// ACTIONS_ROLE_NAME: the role assumed in the instance's account is `<this>-<region>`
    /// (deploy_reaper.yaml's ActionsRoleName).
    pub actions_role_name: String,
    /// MAX_LIFETIME, ALLOW_INDEFINITE: the rules an extension keeps to (as the reaper's).
    pub rules: Rules,
    pub owner_tag: String,
    /// REPORT_BUCKET: the evidence bucket; each click becomes a record under `clicks/`
    /// (docs/EVIDENCE.md). Empty = the log line only.
    pub report_bucket: Option<String>,
}

impl ActionsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()))
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let secret_arn = |var: &'static str,
                          required: bool|
         -> Result<Option<String>, ConfigError> {
            match lookup(var).filter(|v| !v.is_empty()) {
                Some(v) if valid_secret_arn(&v) => Ok(Some(v)),
                Some(v) => Err(ConfigError {
                    var,
                    value: v,
                    accepted: "a Secrets Manager secret ARN, arn:<partition>:secretsmanager:<region>:<account>:secret:<name>".into(),
                }),
                None if required => Err(ConfigError {
                    var,
                    value: String::new(),
                    accepted: "a Secrets Manager secret ARN (required)".into(),
                }),
                None => Ok(None),
            }
        };
        let slack_signing_secret_arn = secret_arn("SLACK_SIGNING_SECRET_ARN", false)?;
        let link_key_arn = secret_arn("LINK_KEY_ARN", true)?.unwrap_or_default();
        let mut admin_slack_ids = Vec::new();
        if let Some(v) = lookup("ADMIN_SLACK_IDS").filter(|v| !v.is_empty()) {
            for id in v.split(',') {
                if !crate::policy::address::is_slack_member_id(id) {
                    return Err(ConfigError {
                        var: "ADMIN_SLACK_IDS",
                        value: v.clone(),
                        accepted: format!(
                            "comma-separated Slack member ids (U or W, then 8 or more upper-case letters and digits, one a digit); {id:?} is not one"
                        ),
                    });
                }
                admin_slack_ids.push(id.to_string());
            }
        }
        let actions_role_name = match lookup("ACTIONS_ROLE_NAME") {
            Some(v)
                if !v.is_empty()
                    && v.len() <= 40
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)) =>
            {
                v
            }
            v => {
                return Err(ConfigError {
                    var: "ACTIONS_ROLE_NAME",
                    value: v.unwrap_or_default(),
                    accepted: "an IAM role name (1-64 letters, digits and +=,.@_-; required)"
                        .into(),
                })
            }
        };
        // The extension rules and the owner tag, read exactly as the reaper reads them.
        let base = Config::from_lookup(|k| {
            matches!(
                k,
                "MAX_LIFETIME" | "ALLOW_INDEFINITE" | "OWNER_TAG" | "REPORT_BUCKET"
            )
            .then(|| lookup(k))
            .flatten()
        })?;
        Ok(Self {
            slack_signing_secret_arn,
            link_key_arn,
            admin_slack_ids,
            actions_role_name,
            rules: base.rules,
            owner_tag: base.owner_tag,
            report_bucket: base.report_bucket,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert!(!c.livemode);
        assert_eq!(c.rules.grace_period, TimeDelta::minutes(15));
        assert_eq!(c.rules.warn_window, TimeDelta::days(1));
        assert_eq!(c.caps.terminations, Cap::Limited(100));
        assert_eq!(c.caps.stops, Cap::Limited(200));
        assert!(c.rules.skip_managed);
        assert_eq!(c.owner_tag, "owner");
        assert_eq!(c.report_bucket, None);
        assert!(c.slack_webhook.is_none());
        assert!(c.warnings.is_empty());
        assert_eq!(c.rules.max_lifetime, None);
        assert!(c.rules.allow_indefinite);
        assert_eq!(c.action_window, None);
        assert_eq!(c.notice_from, None);
    }

    /// Only e-mail configured: owners known by name only can never be told, so their
    /// terminations wait for ever (SPEC §8). Said at start-up and in every report.
    #[test]
    fn e_mail_without_slack_warns_that_some_owners_cannot_be_told() {
        let c = cfg(&[("NOTICE_FROM", "reaper@example.com")]).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with("NOTICE_FROM without SLACKWEBHOOK")
                && c.warnings[0].contains("deferred for good"),
            "{}",
            c.warnings[0]
        );
        let c = cfg(&[
            ("NOTICE_FROM", "reaper@example.com"),
            (
                "SLACKWEBHOOK",
                "https://hooks.slack.com/services/T000/B000/XXXX",
            ),
        ])
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn owner_variables_parse() {
        let c = cfg(&[
            ("MAX_LIFETIME", "90d"),
            ("ALLOW_INDEFINITE", "false"),
            ("ACTION_WINDOW", "mon-fri 09:00-17:00 Europe/Berlin"),
            ("NOTICE_FROM", "reaper@example.com"),
            (
                "SLACKWEBHOOK_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hook-AbCdEf",
            ),
        ])
        .unwrap();
        assert_eq!(c.rules.max_lifetime, Some(TimeDelta::days(90)));
        assert!(!c.rules.allow_indefinite);
        assert_eq!(
            c.action_window.map(|w| w.to_string()).as_deref(),
            Some("Mon-Fri 09:00-17:00 Europe/Berlin")
        );
        assert_eq!(c.notice_from.as_deref(), Some("reaper@example.com"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        let c = cfg(&[
            ("MAX_LIFETIME", "unlimited"),
            ("ALLOW_INDEFINITE", "TRUE"),
            ("ACTION_WINDOW", ""),
            ("NOTICE_FROM", ""),
        ])
        .unwrap();
        assert_eq!(c.rules.max_lifetime, None);
        assert!(c.rules.allow_indefinite);
        assert_eq!(c.action_window, None);
        assert_eq!(c.notice_from, None);
        for ok in [
            "ops.reaper+aws@mail.example.co.uk",
            "a@b.co",
            "x@xn--bcher-kva.example",
        ] {
            assert!(cfg(&[("NOTICE_FROM", ok)]).is_ok(), "{ok}");
        }

        // Refusing indefinite with no bound to enforce instead stops those instances: say so.
        let c = cfg(&[("ALLOW_INDEFINITE", "false")]).unwrap();
        assert!(c.warnings[0].contains("ALLOW_INDEFINITE=false without MAX_LIFETIME"));
    }

    #[test]
    fn livemode_is_true_case_insensitively_and_nothing_else() {
        for v in ["true", "TRUE", "True", "tRuE"] {
            assert!(cfg(&[("LIVEMODE", v)]).unwrap().livemode, "{v}");
        }
        for v in ["", "false", "FALSE"] {
            let c = cfg(&[("LIVEMODE", v)]).unwrap();
            assert!(!c.livemode && c.warnings.is_empty(), "{v}");
        }
        for v in ["yes", "1", "on"] {
            let c = cfg(&[("LIVEMODE", v)]).unwrap();
            assert!(!c.livemode, "{v}");
            assert!(
                c.warnings[0].contains("is not `true`, so this is a dry run"),
                "{v}"
            );
        }
    }

    /// Issue 19 item 8: `WARN_WINDOW="1d "` was accepted where `MAX_TERMINATIONS="5 "` was
    /// refused. One rule now: no variable's value is trimmed; surrounding white space is refused,
    /// naming the variable, the value and what is accepted (a secret stays redacted).
    #[test]
    fn surrounding_white_space_is_refused_for_every_variable() {
        let good = [
            ("LIVEMODE", "true"),
            (
                "SLACKWEBHOOK",
                "https://hooks.slack.com/services/T/B/secret",
            ),
            (
                "SLACKWEBHOOK_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hook",
            ),
            ("GRACE_PERIOD", "15m"),
            ("WARN_WINDOW", "1d"),
            ("MAX_TERMINATIONS", "5"),
            ("MAX_STOPS", "5"),
            ("SKIP_MANAGED", "true"),
            ("OWNER_TAG", "owner"),
            ("REPORT_BUCKET", "reaper-reports"),
            ("MAX_LIFETIME", "90d"),
            ("ALLOW_INDEFINITE", "true"),
            ("ACTION_WINDOW", "mon-fri 09:00-17:00 UTC"),
            ("NOTICE_FROM", "reaper@example.com"),
            ("ENROLMENT_NOTICE", "7d"),
            ("ENROLLED_AT", "2030-01-01T00:00:00Z"),
            ("DIGEST_AT", "09"),
            (
                "REAPER_STACK_ID",
                "arn:aws:cloudformation:eu-west-1:123456789012:stack/ec2-reaper/0a1b",
            ),
            ("ACTIONS_URL", "https://abc.lambda-url.eu-west-1.on.aws/"),
            (
                "LINK_KEY_ARN",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:link",
            ),
        ];
        assert_eq!(good.len(), KNOWN_VARS.len());
        // These two are set together or not at all.
        let partner = |var: &str| match var {
            "ACTIONS_URL" => Some(good[good.len() - 1]),
            "LINK_KEY_ARN" => Some(good[good.len() - 2]),
            _ => None,
        };
        let cfg = |vars: &[(&str, &str)]| {
            let mut all = vars.to_vec();
            all.extend(partner(vars[0].0));
            cfg(&all)
        };
        for (var, value) in good {
            assert!(cfg(&[(var, value)]).is_ok(), "{var}={value}");
            for padded in [
                format!("{value} "),
                format!(" {value}"),
                format!("{value}\n"),
                "\t".into(),
            ] {
                let err = cfg(&[(var, &padded)]).unwrap_err();
                assert_eq!(err.var, var);
                assert!(err.accepted.contains("without surrounding spaces"), "{err}");
                assert!(err.to_string().starts_with(&format!("{var}=")), "{err}");
                if var == "SLACKWEBHOOK" {
                    assert!(!err.to_string().contains("secret"), "{err}");
                } else {
                    assert_eq!(err.value, padded);
                }
            }
        }
    }

    #[test]
    fn a_zero_warn_window_is_a_warning() {
        let c = cfg(&[("WARN_WINDOW", "0m")]).unwrap();
        assert!(
            c.warnings[0].starts_with("WARN_WINDOW=\"0m\" turns off every notice before an action"),
            "{:?}",
            c.warnings
        );
        assert!(cfg(&[("WARN_WINDOW", "1m")]).unwrap().warnings.is_empty());
    }

    /// `Etc/GMT+1` is UTC−1 (POSIX sign): accepted, with a warning saying so.
    #[test]
    fn an_etc_gmt_zone_is_a_warning_saying_which_way_it_goes() {
        let c = cfg(&[("ACTION_WINDOW", "mon-fri 09:00-17:00 Etc/GMT+1")]).unwrap();
        assert!(c.action_window.is_some());
        assert_eq!(
            c.warnings,
            ["ACTION_WINDOW time zone Etc/GMT+1 means UTC-1, not UTC+1: Etc/GMT names use the POSIX sign, the opposite of the usual one; for UTC+1 write Etc/GMT-1"]
        );
        let c = cfg(&[("ACTION_WINDOW", "mon-fri 09:00-17:00 Etc/GMT-10")]).unwrap();
        assert!(
            c.warnings[0].contains("Etc/GMT-10 means UTC+10, not UTC-10"),
            "{:?}",
            c.warnings
        );
        for zone in ["Etc/GMT", "Etc/GMT+0", "Etc/UTC", "Europe/Berlin"] {
            let c = cfg(&[("ACTION_WINDOW", &format!("mon-fri 09:00-17:00 {zone}"))]).unwrap();
            assert!(c.warnings.is_empty(), "{zone}: {:?}", c.warnings);
        }
    }

    #[test]
    fn every_variable_parses() {
        let c = cfg(&[
            ("GRACE_PERIOD", "0m"),
            ("WARN_WINDOW", "2w"),
            ("MAX_TERMINATIONS", "unlimited"),
            ("MAX_STOPS", "0"),
            ("SKIP_MANAGED", "FALSE"),
            ("OWNER_TAG", "team:owner"),
            ("REPORT_BUCKET", "my-reports.example"),
            (
                "SLACKWEBHOOK",
                "https://hooks.slack.com/services/T/B/secret",
            ),
        ])
        .unwrap();
        assert_eq!(c.rules.grace_period, TimeDelta::zero());
        assert_eq!(c.rules.warn_window, TimeDelta::weeks(2));
        assert_eq!(c.caps.terminations, Cap::Unlimited);
        assert_eq!(c.caps.stops, Cap::Limited(0));
        assert!(!c.rules.skip_managed);
        assert_eq!(c.owner_tag, "team:owner");
        assert_eq!(c.report_bucket.as_deref(), Some("my-reports.example"));
        assert!(
            !format!("{c:?}").contains("T/B/secret"),
            "the webhook never shows in Debug"
        );
        assert_eq!(
            c.slack_webhook.unwrap().url(),
            "https://hooks.slack.com/services/T/B/secret"
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:reaper/slack-AbCdEf";
        let secret = cfg(&[("SLACKWEBHOOK_SECRET_ARN", arn)]).unwrap();
        assert_eq!(secret.slack_webhook_secret_arn.as_deref(), Some(arn));
        let both = cfg(&[
            ("SLACKWEBHOOK_SECRET_ARN", arn),
            (
                "SLACKWEBHOOK",
                "https://hooks.slack.com/services/T/B/secret",
            ),
        ]);
        assert!(both
            .unwrap_err()
            .to_string()
            .contains("only one webhook source"));
        assert!(cfg(&[("SLACKWEBHOOK_SECRET_ARN", "slack-webhook")]).is_err());
        let local = cfg(&[("SLACKWEBHOOK", "http://127.0.0.1:9999/hook")]).unwrap();
        assert!(local.slack_webhook.is_some());
        assert_eq!(cfg(&[("REPORT_BUCKET", "")]).unwrap().report_bucket, None);
    }

    #[test]
    fn bad_values_name_variable_value_and_accepted_forms() {
        let cases = [
            ("GRACE_PERIOD", "15 minutes", "GRACE_PERIOD=\"15 minutes\" is not accepted: a whole number and one unit"),
            ("GRACE_PERIOD", "indefinite", "GRACE_PERIOD=\"indefinite\""),
            ("WARN_WINDOW", "", "WARN_WINDOW=\"\" is not accepted"),
            ("MAX_TERMINATIONS", "-1", "MAX_TERMINATIONS=\"-1\" is not accepted: a whole number of instances (0 or more) or `unlimited`"),
            ("MAX_STOPS", "Unlimited", "MAX_STOPS=\"Unlimited\""),
            ("MAX_STOPS", "99999999999999999999999", "MAX_STOPS="),
            ("SKIP_MANAGED", "no", "SKIP_MANAGED=\"no\" is not accepted: true or false"),
            ("OWNER_TAG", "", "OWNER_TAG=\"\" is not accepted"),
            ("REPORT_BUCKET", "My_Bucket", "REPORT_BUCKET=\"My_Bucket\" is not accepted: an S3 bucket name, or empty for no S3 report; S3's naming rules: a bucket name has only lowercase letters"),
            ("SLACKWEBHOOK", "http://hooks.slack.com/services/T/B/secret", "SLACKWEBHOOK="),
            ("SLACKWEBHOOK", "not a url", "an https:// URL"),
            ("MAX_LIFETIME", "", "MAX_LIFETIME=\"\" is not accepted: `unlimited` or a whole number and one unit"),
            ("MAX_LIFETIME", "indefinite", "indefinite is not a bound; write unlimited"),
            ("MAX_LIFETIME", "0m", "a bound of zero would terminate every instance"),
            ("MAX_LIFETIME", "90 days", "MAX_LIFETIME=\"90 days\" is not accepted"),
            ("MAX_LIFETIME", "Unlimited", "MAX_LIFETIME=\"Unlimited\""),
            ("ALLOW_INDEFINITE", "yes", "ALLOW_INDEFINITE=\"yes\" is not accepted: true or false"),
            ("ACTION_WINDOW", "Mon-Fri 9-17 Europe/Berlin", "ACTION_WINDOW=\"Mon-Fri 9-17 Europe/Berlin\" is not accepted: times \"9-17\""),
            ("ACTION_WINDOW", "Mon-Fri 09:00-17:00 CEST", "ACTION_WINDOW=\"Mon-Fri 09:00-17:00 CEST\" is not accepted: time zone \"CEST\" is not a known IANA time zone"),
            ("ACTION_WINDOW", "weekdays", "ACTION_WINDOW=\"weekdays\" is not accepted: value \"weekdays\" has 1 part(s)"),
            ("NOTICE_FROM", "reaper", "NOTICE_FROM=\"reaper\" is not accepted: an e-mail address"),
            ("NOTICE_FROM", "Reaper <reaper@example.com>", "no spaces or display name"),
            ("NOTICE_FROM", "reaper@localhost", "NOTICE_FROM="),
            ("NOTICE_FROM", " reaper@example.com", "NOTICE_FROM="),
            ("NOTICE_FROM", "reaper@example..com", "NOTICE_FROM="),
            ("NOTICE_FROM", "a@b@example.com", "NOTICE_FROM="),
            ("NOTICE_FROM", "reaper@example.com\n", "NOTICE_FROM="),
        ];
        for (var, value, fragment) in cases {
            let err = cfg(&[(var, value)]).expect_err(var);
            let text = err.to_string();
            assert!(text.contains(fragment), "{var}={value}: {text}");
            assert!(!text.contains('\n'), "one line: {text}");
            assert!(!text.contains("secret"), "webhook leaked: {text}");
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Issue 10, finding 5: `MAX_TERMINATION=0` was silently ignored and the cap stayed 100.
    #[test]
    fn a_misspelt_variable_is_a_warning_naming_the_known_one() {
        let c = Config::from_vars(vars(&[("MAX_TERMINATION", "0")])).unwrap();
        assert_eq!(c.caps.terminations, Cap::Limited(100));
        assert_eq!(
            c.warnings,
            vec!["environment variable MAX_TERMINATION is not one the reaper reads, so it is ignored; did you mean MAX_TERMINATIONS? (set MAX_TERMINATIONS instead)".to_string()]
        );
    }

    #[test]
    fn near_misses_by_distance_case_and_affix() {
        let cases = [
            ("MAX_TERMINATION", "MAX_TERMINATIONS"),
            ("MAX_TERMINATIONSS", "MAX_TERMINATIONS"),
            ("MAX_STOP", "MAX_STOPS"),
            ("MAXSTOPS", "MAX_STOPS"),
            ("LIVE_MODE", "LIVEMODE"),
            ("livemode", "LIVEMODE"),
            ("LiveMode", "LIVEMODE"),
            ("SLACK_WEBHOOK", "SLACKWEBHOOK"),
            ("SLACKWEBHOOK_URL", "SLACKWEBHOOK"),
            ("SLACKWEBHOOK_SECRET_ARM", "SLACKWEBHOOK_SECRET_ARN"),
            ("GRACE_PERIOD_MINUTES", "GRACE_PERIOD"),
            ("REAPER_REPORT_BUCKET", "REPORT_BUCKET"),
            ("WARN_WINDOWS", "WARN_WINDOW"),
            ("SKIP_MANAGE", "SKIP_MANAGED"),
            ("OWNERTAG", "OWNER_TAG"),
            ("MAX_LIFE_TIME", "MAX_LIFETIME"),
            ("ALLOW_INDEFINATE", "ALLOW_INDEFINITE"),
            ("ACTIONWINDOW", "ACTION_WINDOW"),
            ("NOTICE_FORM", "NOTICE_FROM"),
            ("report_bucket", "REPORT_BUCKET"),
        ];
        for (name, known) in cases {
            assert_eq!(near_miss(name), Some(known), "{name}");
        }
        for name in KNOWN_VARS {
            assert_eq!(near_miss(name), None, "{name} is known");
        }
        for name in ["MAX_TERMINATIONZZZ", "OWNER", "SLACK", "STOPS", "LIVE"] {
            assert_eq!(
                near_miss(name),
                None,
                "{name} is too far from every known name"
            );
        }
    }

    #[test]
    fn a_lambda_environment_gives_no_warning() {
        // What the Lambda service sets for a provided.al2023 function, plus the usual process
        // variables and the reaper's own settings.
        let lambda = vars(&[
            ("AWS_ACCESS_KEY", "x"),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_NAME", "ec2-reaper"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ec2-reaper"),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2030/01/01/[$LATEST]abc"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("AWS_SESSION_TOKEN", "x"),
            ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
            ("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000"),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
            ("LAMBDA_TASK_ROOT", "/var/task"),
            ("LANG", "en_US.UTF-8"),
            ("LD_LIBRARY_PATH", "/var/lang/lib:/lib64:/usr/lib64"),
            ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
            ("TZ", ":UTC"),
            ("_AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129"),
            ("_AWS_XRAY_DAEMON_PORT", "2000"),
            ("_HANDLER", "bootstrap"),
            (
                "_X_AMZN_TRACE_ID",
                "Root=1-00000000-000000000000000000000000",
            ),
            ("HOME", "/root"),
            ("HOSTNAME", "169.254.1.1"),
            ("PWD", "/var/task"),
            ("SHLVL", "0"),
            ("RUST_LOG", "info"),
            ("RUST_BACKTRACE", "1"),
            ("LIVEMODE", "true"),
            ("MAX_TERMINATIONS", "100"),
            ("MAX_STOPS", "200"),
            ("GRACE_PERIOD", "15m"),
            ("WARN_WINDOW", "1d"),
            ("SKIP_MANAGED", "true"),
            ("OWNER_TAG", "owner"),
            ("REPORT_BUCKET", "ec2-reaper-reports"),
            ("SLACKWEBHOOK", ""),
            (
                "SLACKWEBHOOK_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hook",
            ),
            ("MAX_LIFETIME", "unlimited"),
            ("ALLOW_INDEFINITE", "true"),
            ("ACTION_WINDOW", ""),
            ("NOTICE_FROM", ""),
        ]);
        let c = Config::from_vars(lambda).unwrap();
        assert!(c.livemode);
        assert_eq!(c.warnings, Vec::<String>::new());
    }

    #[test]
    fn a_near_miss_warning_never_shows_the_value() {
        let c = Config::from_vars(vars(&[(
            "SLACK_WEBHOOK",
            "https://hooks.slack.com/services/T/B/secret",
        )]))
        .unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("did you mean SLACKWEBHOOK?"));
        assert!(!c.warnings[0].contains("secret") && !c.warnings[0].contains("hooks"));
    }

    #[test]
    fn from_vars_reads_values_like_from_lookup() {
        let c = Config::from_vars(vars(&[("MAX_STOPS", "7"), ("LIVEMODE", "TRUE")])).unwrap();
        assert_eq!(c.caps.stops, Cap::Limited(7));
        assert!(c.livemode);
        let err = Config::from_vars(vars(&[("MAX_STOPS", "-7")])).unwrap_err();
        assert_eq!(err.var, "MAX_STOPS");
    }

    /// Issue 10, finding 5: `192.168.1.1` and `xn--bucket` passed the start-up check.
    #[test]
    fn bucket_names_follow_s3s_rules_and_the_error_names_the_rule() {
        let cases = [
            ("192.168.1.1", "not formatted as an IP address"),
            ("10.0.0.255", "not formatted as an IP address"),
            ("xn--bucket", "does not start with the prefix xn--"),
            ("sthree-reports", "does not start with the prefix sthree-"),
            (
                "amzn-s3-demo-bucket",
                "does not start with the prefix amzn-s3-demo-",
            ),
            ("reports-s3alias", "does not end with the suffix -s3alias"),
            ("reports--ol-s3", "does not end with the suffix --ol-s3"),
            ("reports.mrap", "does not end with the suffix .mrap"),
            ("reports--x-s3", "does not end with the suffix --x-s3"),
            (
                "reports--table-s3",
                "does not end with the suffix --table-s3",
            ),
            ("ab", "3 to 63 characters"),
            ("Reports", "only lowercase letters"),
            ("-reports", "begins and ends with a letter or digit"),
            ("my..reports", "no two adjacent dots"),
        ];
        for (name, rule) in cases {
            let err = cfg(&[("REPORT_BUCKET", name)]).expect_err(name);
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("REPORT_BUCKET={name:?} is not accepted")),
                "{text}"
            );
            assert!(text.contains(rule), "{name}: {text}");
        }
        for name in [
            "192.168.1.1.reports",
            "reports-192.168.1.1",
            "999.168.1.1x",
            "xn-bucket",
            "my-s3alias-reports",
            "reports--x-s3-archive",
            "ec2-reaper-reports",
        ] {
            assert!(check_bucket_name(name).is_ok(), "{name}");
            assert_eq!(
                cfg(&[("REPORT_BUCKET", name)])
                    .unwrap()
                    .report_bucket
                    .as_deref(),
                Some(name)
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A value for one of the variables: mostly near the grammar, sometimes anything.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                "[0-9]{0,25}[wdhmWDHMy]?",
                "(true|false|TRUE|False|yes|1|unlimited|Unlimited| true|)",
                "[a-z0-9.-]{0,70}",
                "(https?|ftp)://[a-z0-9.:\\[\\]]{0,20}(/[A-Za-z0-9/]{0,10})?",
                "\\PC{0,30}",
            ]
        }

        /// Names: the known ones, near misses, platform names and anything.
        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => prop::sample::select(KNOWN_VARS.to_vec()).prop_map(str::to_string),
                1 => (prop::sample::select(KNOWN_VARS.to_vec()), "[A-Z_]{0,2}", 0usize..20)
                    .prop_map(|(k, extra, cut)| {
                        let mut s = k.to_string();
                        s.truncate(s.len().saturating_sub(cut % 3));
                        s + &extra
                    }),
                1 => "(AWS_|LAMBDA_|_)[A-Z_]{0,20}",
                1 => "[A-Za-z_][A-Za-z0-9_]{0,25}",
            ]
        }

        proptest! {
            /// No panic; a refused value is named with its variable (a known one, set to that
            /// value); a near-miss name is a warning, never silence or a failure.
            #[test]
            fn fuzz_config_errors_name_the_variable(env in prop::collection::vec((name(), value()), 0..8)) {
                let map: std::collections::BTreeMap<String, String> = env.iter().cloned().collect();
                match Config::from_vars(env.clone()) {
                    Ok(c) => {
                        for name in map.keys() {
                            if let Some(known) = near_miss(name) {
                                prop_assert!(
                                    c.warnings.iter().any(|w| w.contains(&format!("variable {name} is not one")) && w.contains(known)),
                                    "{}: {:?}", name, c.warnings
                                );
                            }
                        }
                        for w in &c.warnings {
                            prop_assert!(!w.contains('\n'), "{}", w);
                        }
                    }
                    Err(e) => {
                        prop_assert!(KNOWN_VARS.contains(&e.var), "{:?}", e);
                        let text = e.to_string();
                        prop_assert!(text.starts_with(&format!("{}=", e.var)), "{}", text);
                        prop_assert!(!text.contains('\n'), "{}", text);
                        let set = map.get(e.var);
                        prop_assert!(set.is_some(), "error for an unset variable: {}", text);
                        if e.var != "SLACKWEBHOOK" {
                            prop_assert_eq!(Some(&e.value), set);
                        } else {
                            // The webhook is a secret: only a short, marked prefix is shown.
                            prop_assert!(e.value.ends_with("… (redacted)"), "{}", e.value);
                        }
                        prop_assert!(!e.accepted.is_empty());
                    }
                }
            }

            #[test]
            fn fuzz_bucket_check_never_panics_and_agrees_with_the_charset(name in "\\PC{0,70}") {
                if check_bucket_name(&name).is_ok() {
                    prop_assert!((3..=63).contains(&name.len()));
                    prop_assert!(name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-'));
                    prop_assert!(name.parse::<std::net::Ipv4Addr>().is_err());
                }
            }
        }
    }

    #[test]
    fn the_actions_function_names_each_bad_variable() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:reaper-link-AbCdEf";
        let good = |k: &str| match k {
            "LINK_KEY_ARN" => Some(arn.to_string()),
            "ACTIONS_ROLE_NAME" => Some("ec2-reaper-actions".to_string()),
            "ADMIN_SLACK_IDS" => Some("U0ADMIN12,W0ADMIN34".to_string()),
            "MAX_LIFETIME" => Some("30d".to_string()),
            _ => None,
        };
        let c = ActionsConfig::from_lookup(good).unwrap();
        assert_eq!(c.admin_slack_ids, ["U0ADMIN12", "W0ADMIN34"]);
        assert_eq!(c.rules.max_lifetime, Some(chrono::TimeDelta::days(30)));
        assert_eq!(c.owner_tag, "owner");
        assert_eq!(c.slack_signing_secret_arn, None);
        assert_eq!(c.report_bucket, None);
        for (var, value, says) in [
            ("LINK_KEY_ARN", "", "required"),
            (
                "LINK_KEY_ARN",
                "arn:aws:kms:x",
                "Secrets Manager secret ARN",
            ),
            ("ACTIONS_ROLE_NAME", "", "IAM role name"),
            ("ACTIONS_ROLE_NAME", "a role", "IAM role name"),
            ("ADMIN_SLACK_IDS", "U0ADMIN12,alice", "\"alice\" is not one"),
            // Shorter than any member id: a click by "U1" is refused anyway, so the list would
            // hold an admin who can never act. Refused at start, as the message says.
            ("ADMIN_SLACK_IDS", "U0ADMIN12,U1", "\"U1\" is not one"),
            ("ADMIN_SLACK_IDS", "UADMINABC", "\"UADMINABC\" is not one"),
            ("REPORT_BUCKET", "My_Bucket", "an S3 bucket name"),
            ("MAX_LIFETIME", "0m", "zero"),
            (
                "SLACK_SIGNING_SECRET_ARN",
                "secret",
                "Secrets Manager secret ARN",
            ),
        ] {
            let err = ActionsConfig::from_lookup(|k| {
                if k == var {
                    Some(value.to_string())
                } else {
                    good(k)
                }
            })
            .unwrap_err();
            assert_eq!(err.var, var);
            assert!(
                err.accepted.contains(says),
                "{var}={value:?}: {}",
                err.accepted
            );
        }
    }

    #[test]
    fn owner_actions_need_their_url_and_key_together() {
        let url = ("ACTIONS_URL", "https://abc.lambda-url.eu-west-1.on.aws/");
        let key = (
            "LINK_KEY_ARN",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:link",
        );
        let c = cfg(&[url, key]).unwrap();
        assert_eq!(c.owner_actions.unwrap().url, url.1);
        assert_eq!(cfg(&[url]).unwrap_err().var, "ACTIONS_URL");
        assert_eq!(cfg(&[key]).unwrap_err().var, "LINK_KEY_ARN");
        let plain = cfg(&[("ACTIONS_URL", "http://x.example/"), key]).unwrap_err();
        assert!(plain.accepted.contains("https://"), "{plain}");
        assert!(cfg(&[url, ("LINK_KEY_ARN", "link")]).is_err());
    }
}

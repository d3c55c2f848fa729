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
    pub fn url(&self) -> &str {
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
    pub live: bool,
    pub slack_webhook: Option<Webhook>,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            live: false,
            slack_webhook: None,
            rules: Rules::default(),
            caps: Caps::default(),
            owner_tag: "owner".into(),
            report_bucket: None,
            action_window: None,
            notice_from: None,
            warnings: Vec::new(),
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `lookup` returns a variable's value, `None` when unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut cfg = Config::default();

        match lookup("LIVEMODE") {
            Some(v) if v.eq_ignore_ascii_case("true") => cfg.live = true,
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

        if let Some(v) = lookup("GRACE_PERIOD") {
            cfg.rules.grace_period = duration("GRACE_PERIOD", &v)?;
        }
        if let Some(v) = lookup("WARN_WINDOW") {
            cfg.rules.warn_window = duration("WARN_WINDOW", &v)?;
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
            if !valid_bucket_name(&v) {
                return Err(ConfigError {
                    var: "REPORT_BUCKET",
                    value: v,
                    accepted: "an S3 bucket name (3-63 characters: lowercase letters, digits, dots, hyphens), or empty for no S3 report".into(),
                });
            }
            cfg.report_bucket = Some(v);
        }
        if let Some(v) = lookup("MAX_LIFETIME") {
            cfg.rules.max_lifetime = max_lifetime(&v)?;
        }
        if let Some(v) = lookup("ALLOW_INDEFINITE") {
            cfg.rules.allow_indefinite = boolean("ALLOW_INDEFINITE", &v)?;
        }
        if !cfg.rules.allow_indefinite && cfg.rules.max_lifetime.is_none() {
            cfg.warnings.push(
                "ALLOW_INDEFINITE=false without MAX_LIFETIME: instances tagged indefinite are treated as untagged (stopped, never terminated); set MAX_LIFETIME to enforce a bound instead".into(),
            );
        }
        if let Some(v) = lookup("ACTION_WINDOW").filter(|v| !v.trim().is_empty()) {
            cfg.action_window = Some(ActionWindow::parse(&v).map_err(|e| ConfigError {
                var: "ACTION_WINDOW",
                accepted: e.to_string(),
                value: v,
            })?);
        }
        if let Some(v) = lookup("NOTICE_FROM").filter(|v| !v.is_empty()) {
            if !plausible_email(&v) {
                return Err(ConfigError {
                    var: "NOTICE_FROM",
                    value: v,
                    accepted: "an e-mail address verified in SES, local@domain.example (no spaces or display name), or empty for no owner e-mail".into(),
                });
            }
            cfg.notice_from = Some(v);
        }
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

/// A plausible address, not RFC 5322: SES verifies the identity; this catches a typo or a
/// pasted display name at start-up instead of at the first failed send.
fn plausible_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    v.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains(['@', '<', '>', '(', ')', ',', ';', ':', '"', '[', ']', '\\'])
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

fn cap(var: &'static str, v: &str) -> Result<Cap, ConfigError> {
    if v == "unlimited" {
        return Ok(Cap::Unlimited);
    }
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = v.parse::<u64>() {
            return Ok(Cap::Limited(n));
        }
    }
    Err(ConfigError {
        var,
        value: v.into(),
        accepted: "a whole number of instances (0 or more) or `unlimited`".into(),
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

fn parse_webhook(v: &str) -> Result<Webhook, ConfigError> {
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

/// S3 bucket naming rules (the general-purpose subset).
fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
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
        assert!(!c.live);
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

    #[test]
    fn owner_variables_parse() {
        let c = cfg(&[
            ("MAX_LIFETIME", "90d"),
            ("ALLOW_INDEFINITE", "false"),
            ("ACTION_WINDOW", "mon-fri 09:00-17:00 Europe/Berlin"),
            ("NOTICE_FROM", "reaper@example.com"),
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
            "a@b.c",
            "x@bücher.example",
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
            assert!(cfg(&[("LIVEMODE", v)]).unwrap().live, "{v}");
        }
        for v in ["", "false", "FALSE"] {
            let c = cfg(&[("LIVEMODE", v)]).unwrap();
            assert!(!c.live && c.warnings.is_empty(), "{v}");
        }
        for v in ["yes", "1", "on", " true", "true "] {
            let c = cfg(&[("LIVEMODE", v)]).unwrap();
            assert!(!c.live, "{v}");
            assert!(
                c.warnings[0].contains("is not `true`, so this is a dry run"),
                "{v}"
            );
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
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(
            c.slack_webhook.unwrap().url(),
            "https://hooks.slack.com/services/T/B/secret"
        );
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
            ("REPORT_BUCKET", "My_Bucket", "REPORT_BUCKET=\"My_Bucket\" is not accepted: an S3 bucket name"),
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
}

//! Environment -> Config (SPEC §9). A bad value is an error naming the variable, the value and
//! what is accepted; nothing falls back to a default silently.

use crate::policy::plan::{Cap, Caps};
use crate::policy::tags::parse_duration;
use crate::policy::verdict::Rules;
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
    /// What LIVEMODE says; only `run::RunRequest` reads it to decide the run's mode.
    pub livemode: bool,
    pub slack_webhook: Option<Webhook>,
    /// A Secrets Manager secret whose string is the webhook URL, read on the first run that posts.
    pub slack_webhook_secret_arn: Option<String>,
    pub rules: Rules,
    pub caps: Caps,
    pub owner_tag: String,
    pub report_bucket: Option<String>,
    /// Things worth telling the operator that are not errors (e.g. an unrecognised LIVEMODE).
    pub warnings: Vec<String>,
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
        for v in ["yes", "1", "on", " true", "true "] {
            let c = cfg(&[("LIVEMODE", v)]).unwrap();
            assert!(!c.livemode, "{v}");
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
            ("REPORT_BUCKET", "My_Bucket", "REPORT_BUCKET=\"My_Bucket\" is not accepted: an S3 bucket name"),
            ("SLACKWEBHOOK", "http://hooks.slack.com/services/T/B/secret", "SLACKWEBHOOK="),
            ("SLACKWEBHOOK", "not a url", "an https:// URL"),
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

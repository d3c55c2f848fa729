//! A Slack interactivity request, verified: the v0 signature (HMAC-SHA256 with the app's signing
//! secret over `v0:<timestamp>:<body>`), a timestamp within five minutes, then the form body's
//! `payload` JSON read for who clicked, the button's value and where to answer
//! (<https://api.slack.com/authentication/verifying-requests-from-slack>).

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Slack's limit, and ours: a request signed more than this far from now is refused.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Why a request was refused; the text names the header or field and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    #[error("header {0} is missing")]
    Missing(&'static str),
    #[error("header X-Slack-Request-Timestamp {0:?} is not a time in Unix seconds")]
    Timestamp(String),
    #[error("the request was signed at {signed}, {skew} s from now; at most {MAX_SKEW_SECONDS} s is accepted")]
    Stale { signed: i64, skew: i64 },
    #[error("header X-Slack-Signature is not v0=<64 hex digits>")]
    SignatureShape,
    #[error("the signature does not match the body: not from Slack, or changed on the way")]
    Signature,
    #[error("the body's {field} is not {accepted}")]
    Body {
        field: &'static str,
        accepted: &'static str,
    },
}

/// The signing secret, kept out of Debug output.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

impl SigningSecret {
    pub fn new(secret: &str) -> Result<Self, String> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err("the Slack signing secret is empty".into());
        }
        Ok(Self(secret.as_bytes().to_vec()))
    }

    fn mac(&self, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts any key length");
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac
    }

    /// `v0=<hex>` for `body` at `timestamp`: what Slack sends (tests and the e2e client sign with it).
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        format!(
            "v0={}",
            hex::encode(self.mac(timestamp, body).finalize().into_bytes())
        )
    }

    /// Checks the two headers against the raw body; the signature in constant time.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SlackError> {
        let ts = timestamp.ok_or(SlackError::Missing("X-Slack-Request-Timestamp"))?;
        let sig = signature.ok_or(SlackError::Missing("X-Slack-Signature"))?;
        let signed: i64 = ts
            .parse()
            .ok()
            .filter(|_| ts.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| SlackError::Timestamp(ts.to_string()))?;
        let skew = now.timestamp() - signed;
        if skew.abs() > MAX_SKEW_SECONDS {
            return Err(SlackError::Stale { signed, skew });
        }
        let hex_digits = sig
            .strip_prefix("v0=")
            // Lower-case, as Slack sends it: `A` and `a` decode alike, so either would verify.
            .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .and_then(|h| hex::decode(h).ok())
            .ok_or(SlackError::SignatureShape)?;
        self.mac(ts, body)
            .verify_slice(&hex_digits)
            .map_err(|_| SlackError::Signature)
    }
}

/// What a verified click says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonClick {
    /// The clicking Slack user (`U…` or `W…`).
    pub user: String,
    /// The button's value: a link token (`token.rs`).
    pub value: String,
    /// Where to answer in the thread (`https://hooks.slack.com/actions/…`), if Slack gave one.
    pub response_url: Option<String>,
}

#[derive(Deserialize)]
struct Payload {
    user: User,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

#[derive(Deserialize)]
struct Action {
    #[serde(default)]
    value: Option<String>,
}

/// Reads a verified body (`application/x-www-form-urlencoded`, field `payload`).
pub fn button_click(body: &[u8]) -> Result<ButtonClick, SlackError> {
    let payload = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or(SlackError::Body {
            field: "payload",
            accepted: "a form field holding Slack's interaction JSON",
        })?;
    let p: Payload = serde_json::from_str(&payload).map_err(|_| SlackError::Body {
        field: "payload",
        accepted: "JSON with user.id and actions[0].value",
    })?;
    let value = p
        .actions
        .into_iter()
        .next()
        .and_then(|a| a.value)
        .ok_or(SlackError::Body {
            field: "actions[0].value",
            accepted: "a button's value",
        })?;
    if !crate::policy::address::is_slack_member_id(&p.user.id) {
        return Err(SlackError::Body {
            field: "user.id",
            accepted: "a Slack user id (U… or W…)",
        });
    }
    let response_url = p
        .response_url
        .filter(|u| u.starts_with("https://hooks.slack.com/"));
    Ok(ButtonClick {
        user: p.user.id,
        value,
        response_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    /// Slack's documented example (verifying-requests-from-slack).
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_documented_example_verifies() {
        let s = SigningSecret::new(SECRET).unwrap();
        assert_eq!(s.sign(TS, BODY.as_bytes()), SIG);
        assert_eq!(
            s.verify(Some(TS), Some(SIG), BODY.as_bytes(), at(1531420618 + 10)),
            Ok(())
        );
    }

    #[test]
    fn old_missing_and_malformed_headers_are_refused() {
        let s = SigningSecret::new(SECRET).unwrap();
        let body = BODY.as_bytes();
        assert_eq!(
            s.verify(Some(TS), Some(SIG), body, at(1531420618 + 301)),
            Err(SlackError::Stale {
                signed: 1531420618,
                skew: 301
            })
        );
        assert!(s
            .verify(Some(TS), Some(SIG), body, at(1531420618 - 301))
            .is_err());
        assert_eq!(
            s.verify(None, Some(SIG), body, at(1531420618)),
            Err(SlackError::Missing("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            s.verify(Some("+1531420618"), Some(SIG), body, at(1531420618)),
            Err(SlackError::Timestamp("+1531420618".into()))
        );
        assert_eq!(
            s.verify(Some(TS), Some("v1=abc"), body, at(1531420618)),
            Err(SlackError::SignatureShape)
        );
        assert!(SigningSecret::new("  ").is_err());
        assert_eq!(format!("{s:?}"), "SigningSecret(..)");
    }

    #[test]
    fn a_button_click_is_read_from_the_form_body() {
        let json = r#"{"type":"block_actions","user":{"id":"U0123ABCD"},"actions":[{"action_id":"keep-3","value":"v1.x.y"}],"response_url":"https://hooks.slack.com/actions/T1/2/abc"}"#;
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", json)
            .finish();
        assert_eq!(
            button_click(body.as_bytes()),
            Ok(ButtonClick {
                user: "U0123ABCD".into(),
                value: "v1.x.y".into(),
                response_url: Some("https://hooks.slack.com/actions/T1/2/abc".into()),
            })
        );
        let foreign = json.replace("https://hooks.slack.com/actions", "https://evil.example");
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &foreign)
            .finish();
        assert_eq!(button_click(body.as_bytes()).unwrap().response_url, None);
        assert!(matches!(
            button_click(b"payload=%7B%7D"),
            Err(SlackError::Body {
                field: "payload",
                ..
            })
        ));
        assert!(matches!(
            button_click(b"nothing=here"),
            Err(SlackError::Body {
                field: "payload",
                ..
            })
        ));
    }

    proptest! {
        /// A signed request with any one byte of its body, timestamp or signature changed is
        /// refused.
        #[test]
        fn any_changed_byte_is_refused(part in 0u8..3, at_ in 0usize..600, to in any::<u8>()) {
            let s = SigningSecret::new(SECRET).unwrap();
            let (mut ts, mut sig, mut body) = (TS.as_bytes().to_vec(), SIG.as_bytes().to_vec(), BODY.as_bytes().to_vec());
            let target = match part { 0 => &mut ts, 1 => &mut sig, _ => &mut body };
            let i = at_ % target.len();
            prop_assume!(target[i] != to);
            target[i] = to;
            let ts = String::from_utf8_lossy(&ts).into_owned();
            let sig = String::from_utf8_lossy(&sig).into_owned();
            prop_assume!(ts != TS || sig != SIG || body != BODY.as_bytes());
            let now = at(1531420618);
            prop_assert!(s.verify(Some(&ts), Some(&sig), &body, now).is_err());
        }
    }
}

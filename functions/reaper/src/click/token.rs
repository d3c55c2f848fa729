//! The signed token behind a "Keep N days" button or e-mail link: it binds the account, region
//! and instance, the date the owner was told, the action and an expiry, and is signed with
//! HMAC-SHA256 under the link key (Secrets Manager). Opaque to everyone but the function.
//!
//! Form: `v1.<payload>.<mac>`, both base64url without padding; the MAC covers `v1.<payload>`.
//! The payload is `account|region|instance|announced|days|expires|nonce` (Unix seconds).
//! A token works once because it names the announced date: after the extension the instance's
//! date differs, and the token no longer matches (checked by `app::click`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

/// The keep actions a notice offers, in days.
pub const KEEP_DAYS: [u8; 3] = [1, 3, 7];
/// A link key shorter than this is refused (HMAC-SHA256's block of security).
pub const MIN_KEY_BYTES: usize = 32;
const VERSION: &str = "v1";

/// What a valid token asks: keep `instance` `days` longer, while its date is still `announced`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    pub account: String,
    pub region: String,
    pub instance: String,
    /// The `termination_date` the owner was told (to the second).
    pub announced: DateTime<Utc>,
    pub days: u8,
    pub expires: DateTime<Utc>,
}

/// Why a token was refused; the text names the part and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not of the form v1.<payload>.<signature>")]
    Shape,
    #[error(
        "the token's signature does not match: it was not issued by this reaper, or was changed"
    )]
    Signature,
    #[error("the token's {field} {value:?} is not {accepted}")]
    Field {
        field: &'static str,
        value: String,
        accepted: &'static str,
    },
    #[error("the link expired at {0}; the next notice carries a new one")]
    Expired(String),
}

/// What the reaper needs to offer keep buttons and links: the key that signs them and where the
/// owner-actions function listens (ACTIONS_URL).
#[derive(Debug, Clone)]
pub struct KeepSigner {
    pub key: LinkKey,
    pub url: String,
}

/// The link key, checked once.
#[derive(Clone)]
pub struct LinkKey(Vec<u8>);

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkKey({} bytes)", self.0.len())
    }
}

impl LinkKey {
    /// `secret` as Secrets Manager holds it; at least `MIN_KEY_BYTES` bytes.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the link key has {} bytes; at least {MIN_KEY_BYTES} are needed (e.g. openssl rand -base64 48)",
                secret.len()
            ));
        }
        Ok(Self(secret.to_vec()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// The token for `keep`; `nonce` makes two tokens for the same facts differ.
    pub fn sign(&self, keep: &Keep, nonce: u64) -> String {
        let payload = format!(
            "{}|{}|{}|{}|{}|{}|{nonce:016x}",
            keep.account,
            keep.region,
            keep.instance,
            keep.announced.timestamp(),
            keep.days,
            keep.expires.timestamp()
        );
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{tag}")
    }

    /// The facts of `token` when this key signed it and it has not expired at `now`. The
    /// signature is checked (in constant time) before any field is read.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Keep, TokenError> {
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Shape)?;
        let (version, payload) = signed.split_once('.').ok_or(TokenError::Shape)?;
        if version != VERSION {
            return Err(TokenError::Shape);
        }
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Signature)?;
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag).map_err(|_| TokenError::Signature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|p| String::from_utf8(p).ok())
            .ok_or(TokenError::Shape)?;
        let parts: Vec<&str> = payload.split('|').collect();
        let [account, region, instance, announced, days, expires, _nonce] = parts[..] else {
            return Err(TokenError::Shape);
        };
        let field = |field, value: &str, accepted| TokenError::Field {
            field,
            value: value.to_string(),
            accepted,
        };
        let time = |name, value: &str| {
            value
                .parse::<i64>()
                .ok()
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .ok_or_else(|| field(name, value, "a time in Unix seconds"))
        };
        let days = days
            .parse::<u8>()
            .ok()
            .filter(|d| KEEP_DAYS.contains(d))
            .ok_or_else(|| field("days", days, "1, 3 or 7"))?;
        let keep = Keep {
            account: account.to_string(),
            region: region.to_string(),
            instance: instance.to_string(),
            announced: time("announced date", announced)?,
            days,
            expires: time("expiry", expires)?,
        };
        if keep.expires <= now {
            return Err(TokenError::Expired(crate::policy::format_date(
                keep.expires,
            )));
        }
        Ok(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn key() -> LinkKey {
        LinkKey::new(&[7u8; 32]).unwrap()
    }

    fn keep() -> Keep {
        Keep {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            instance: "i-0123456789abcdef0".into(),
            announced: Utc.with_ymd_and_hms(2030, 1, 2, 12, 0, 0).unwrap(),
            days: 3,
            expires: Utc.with_ymd_and_hms(2030, 1, 2, 12, 0, 0).unwrap(),
        }
    }

    #[test]
    fn a_signed_token_verifies_to_its_facts() {
        let t = key().sign(&keep(), 1);
        assert_eq!(key().verify(&t, now()), Ok(keep()));
        assert!(t.starts_with("v1.") && t.len() < 200, "{t}");
        // Two tokens for the same facts differ (the nonce).
        assert_ne!(t, key().sign(&keep(), 2));
    }

    #[test]
    fn another_key_an_expiry_and_a_bad_shape_are_refused() {
        let t = key().sign(&keep(), 1);
        let other = LinkKey::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&t, now()), Err(TokenError::Signature));
        assert!(matches!(
            key().verify(&t, keep().expires),
            Err(TokenError::Expired(_))
        ));
        assert_eq!(key().verify("nonsense", now()), Err(TokenError::Shape));
        assert_eq!(key().verify("v2.a.b", now()), Err(TokenError::Shape));
        let mut k = keep();
        k.days = 5;
        let t = key().sign(&k, 1);
        assert_eq!(
            key().verify(&t, now()),
            Err(TokenError::Field {
                field: "days",
                value: "5".into(),
                accepted: "1, 3 or 7"
            })
        );
        assert!(LinkKey::new(b"short").unwrap_err().contains("at least 32"));
        assert_eq!(format!("{:?}", key()), "LinkKey(32 bytes)");
    }

    proptest! {
        /// Any one byte of a signed token changed: never accepted.
        #[test]
        fn a_token_with_any_byte_changed_is_refused(at in 0usize..400, to in any::<u8>()) {
            let t = key().sign(&keep(), 42);
            let mut bytes = t.clone().into_bytes();
            let at = at % bytes.len();
            prop_assume!(bytes[at] != to);
            bytes[at] = to;
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            prop_assume!(changed != t);
            prop_assert!(key().verify(&changed, now()).is_err(), "{changed}");
        }
    }
}

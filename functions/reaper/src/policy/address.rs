//! What counts as an e-mail address (and a Slack member id), in one place: the owner tag (render/notice.rs, which mails
//! only such owners) and `NOTICE_FROM` (config.rs, refused at start-up otherwise) use this rule.
//!
//! An address `local@domain.tld`: ASCII (SES v2 takes internationalised domains only as
//! punycode), no display name or brackets, a dot-atom local part of at most 64 characters, a
//! domain of at least two labels whose last is alphabetic and at least two letters long; at most
//! 254 characters.

pub(crate) fn is_email(s: &str) -> bool {
    if s.len() > 254 || !s.is_ascii() {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    const ATEXT: &str = "!#$%&'*+/=?^_`{|}~-";
    // `=?utf-8?B?…?=` is an RFC 2047 encoded word: a display-name encoding, never a mailbox a
    // mail server delivers to (RFC 2047 §5 forbids it in an addr-spec).
    let local_ok = local.len() <= 64
        && !local.contains("=?")
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ATEXT.contains(c))
        });
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// A bare Slack member id (`U`/`W`, then 8 or more upper-case letters and digits, one a digit):
/// the one rule for owner tags, admin lists and the user a Slack click names.
pub(crate) fn is_slack_member_id(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    matches!(first, 'U' | 'W')
        && rest.len() >= 8
        && rest
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && rest.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::is_email;

    #[test]
    fn one_rule_for_owners_and_the_sender() {
        for ok in [
            "ana@example.com",
            "ops.reaper+aws@mail.example.co.uk",
            "x@xn--bcher-kva.example",
            "o'neil@example.org",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "reaper",
            "Reaper <reaper@example.com>",
            "reaper@localhost",
            " reaper@example.com",
            "reaper@example..com",
            "a@b@example.com",
            "reaper@example.com\n",
            "a@b.c",
            "x@bücher.example",
            "=?utf-8?B?YQ==?=@example.com",
            "-@-example.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}

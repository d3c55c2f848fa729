//! Slack's mrkdwn: making text from outside (tag values, AWS messages) safe to show.

use crate::text::clip;
pub(crate) use crate::text::oneline;

/// Slack's escaping for mrkdwn text: only these three characters, so that a tag value can never
/// become a link, a mention (`<!channel>`) or a user reference.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// mrkdwn has no escape for its formatting markers; in text from outside they are replaced by
/// look-alikes that Slack does not format (`*bold*`, `~strike~`, `` `code` ``, and `_italic_`
/// where an underscore stands at a word's edge: `termination_date` keeps its underscore).
fn defuse(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| match c {
            '*' => '∗',
            '~' => '∼',
            '`' => 'ˋ',
            '_' if !(i > 0 && word(chars.get(i - 1)) && word(chars.get(i + 1))) => '＿',
            c => c,
        })
        .collect()
}

/// Text from outside made safe for mrkdwn: one line, clipped, no formatting, escaped.
pub(crate) fn clean(s: &str, max: usize) -> String {
    escape(&defuse(&clip(&oneline(s), max)))
}

pub(crate) fn len(s: &str) -> usize {
    s.chars().count()
}

/// Clips already-escaped mrkdwn without cutting an entity (`&amp;`) in half.
pub(crate) fn clip_mrkdwn(s: &str, max: usize) -> String {
    if len(s) <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&') {
        if !out[amp..].contains(';') {
            out.truncate(amp);
        }
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_bidi_controls_never_reach_slack() {
        let hostile = "web\u{2028}fake line\u{2029}x \u{202E}txt.exe\u{2066}";
        let got = clean(hostile, 100);
        assert!(!got.chars().any(crate::text::invisible), "{got:?}");
        assert_eq!(got, "web fake line x  txt.exe");
    }

    #[test]
    fn formatting_markers_are_defused_but_words_keep_their_underscores() {
        assert_eq!(
            clean("*boss* ~gone~ `x` _it_", 100),
            "∗boss∗ ∼gone∼ ˋxˋ ＿it＿"
        );
        assert_eq!(clean("termination_date", 100), "termination_date");
        assert_eq!(clean("a <!channel> & b", 100), "a &lt;!channel&gt; &amp; b");
    }
}

//! Text helpers shared by every renderer (Slack, tables, error messages).

/// At most `max` characters, an ellipsis marking the cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Characters that change how a line reads without being visible: line and paragraph separators
/// fake a new line, bidi controls reorder text (`U+202E` shows "exe.txt" as "txt.exe").
pub fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}'
        )
}

/// One line of plain characters: every invisible or line-breaking character becomes a space.
pub fn oneline(s: &str) -> String {
    s.chars()
        .map(|c| if invisible(c) { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_counts_characters_and_marks_the_cut() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
        assert_eq!(clip("ééé", 2), "é…");
    }
}

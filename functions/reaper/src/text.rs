//! Text helpers shared by every renderer (Slack, tables, error messages).

/// At most `max` characters, an ellipsis marking the cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Characters that change how a line reads without being visible: line and paragraph separators
/// fake a new line, bidi controls reorder text (`U+202E` shows "exe.txt" as "txt.exe").
pub(crate) fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}'
        )
}

/// One line of plain characters: every invisible or line-breaking character becomes a space.
pub(crate) fn oneline(s: &str) -> String {
    s.chars()
        .map(|c| if invisible(c) { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Golden files under `functions/reaper/tests/golden/`: `actual` must equal the file;
/// `UPDATE_GOLDEN=1` rewrites it (review the diff). `filter` is the `cargo test` filter to name.
#[cfg(test)]
pub(crate) fn golden(name: &str, actual: &str, filter: &str) {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `UPDATE_GOLDEN=1 cargo test -p reaper --lib {filter}` to create it",
            path.display()
        )
    });
    assert!(
        actual == expected,
        "{} differs from the rendering; if the change is intended, run \
         `UPDATE_GOLDEN=1 cargo test -p reaper --lib {filter}` and review the diff.\n--- got:\n{actual}",
        path.display()
    );
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

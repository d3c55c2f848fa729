//! The message as text (feature `test-util`): what `make demo`, the README and the golden files
//! show. Not production code: the function posts Block Kit, never this.

use super::mrkdwn::len;
use serde_json::Value;

/// The message as a person reads it in Slack: headers, sections and context as plain lines,
/// mrkdwn markers and escapes undone. Used by `make demo` and the README.
pub fn to_text(message: &Value) -> String {
    let mut out = String::new();
    let Some(blocks) = message["blocks"].as_array() else {
        return unescape(message["text"].as_str().unwrap_or_default()) + "\n";
    };
    for block in blocks {
        match block["type"].as_str() {
            Some("header") => {
                let text = block["text"]["text"].as_str().unwrap_or_default();
                out.push_str(text);
                out.push('\n');
                out.push_str(&"=".repeat(len(text)));
                out.push('\n');
            }
            Some("section") => {
                if !out.is_empty() {
                    out.push('\n');
                }
                for line in block["text"]["text"].as_str().unwrap_or_default().lines() {
                    out.push_str(&plain(line));
                    out.push('\n');
                }
            }
            Some("context") => {
                let parts: Vec<String> = block["elements"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .filter_map(|e| e["text"].as_str())
                            .map(plain)
                            .collect()
                    })
                    .unwrap_or_default();
                if !out.is_empty() && !out.ends_with("=\n") {
                    out.push('\n');
                }
                for line in parts.join("  |  ").lines() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            Some("divider") => out.push_str("\n---\n"),
            _ => {}
        }
    }
    out
}

/// One mrkdwn line as Slack shows it: the `*bold*` and `` `code` `` markers this module writes
/// are not seen, escapes are undone.
fn plain(line: &str) -> String {
    let s = line.replace('`', "");
    // Only a leading bold run is ours: a `*` inside a tag value stays as it is.
    let s = match s.strip_prefix('*').and_then(|rest| rest.split_once('*')) {
        Some((bold, rest)) if !bold.is_empty() => format!("{bold}{rest}"),
        _ => s,
    };
    unescape(&s)
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

//! The small pages an e-mail link opens (pure): what the link will do, with the one button that
//! does it (a GET never acts: mail scanners follow links), and what came of it.

use super::evidence_html::escape;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width\">\
<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'\">\
<title>{t}</title><style>body{{font:16px system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em}}\
button{{font-size:1em;padding:.5em 1.5em}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    )
}

/// GET ?t=…: the instance, the date it was announced for, and a button that POSTs the token.
pub fn confirm(
    instance: &str,
    account: &str,
    region: &str,
    announced: &str,
    days: u8,
    token: &str,
) -> String {
    page(
        &format!("Keep {instance}?"),
        &format!(
            "<p>{i} in account {a}, {r} is due to end {d}.</p>\
<form method=post><input type=hidden name=t value=\"{t}\"><button type=submit>Keep it {n} more day{s}</button></form>",
            i = escape(instance),
            a = escape(account),
            r = escape(region),
            d = escape(announced),
            t = escape(token),
            n = days,
            s = if days == 1 { "" } else { "s" },
        ),
    )
}

/// What came of a link (kept, refused, or a link that is not valid).
pub fn result(title: &str, text: &str) -> String {
    page(title, &format!("<p>{}</p>", escape(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show_and_only_post_acts() {
        let p = confirm(
            "i-1<script>",
            "123456789012",
            "eu-west-1",
            "2030-01-02T12:00:00Z",
            3,
            "v1.a\"b.c",
        );
        assert!(p.contains("i-1&lt;script&gt;") && !p.contains("<script>"));
        assert!(p.contains("<form method=post>") && p.contains("value=\"v1.a&quot;b.c\""));
        assert!(p.contains("Keep it 3 more days"));
        assert!(result("Kept", "a & b").contains("a &amp; b"));
    }
}

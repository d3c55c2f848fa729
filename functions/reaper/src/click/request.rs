//! A Lambda Function URL request (payload format 2.0) as the actions function reads it, and
//! where it goes: a Slack button, an e-mail link's confirmation page, or the link's confirmed
//! keep. A link never acts on GET: mail scanners follow links, so a GET only shows a button
//! that POSTs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;

/// The request's parts the function uses; header names lower-case, as Function URLs send them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRequest {
    pub method: String,
    pub headers: HashMap<String, String>,
    pub query: String,
    pub body: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    raw_query_string: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
    request_context: Context,
}

#[derive(Deserialize)]
struct Context {
    http: Http,
}

#[derive(Deserialize)]
struct Http {
    method: String,
}

impl UrlRequest {
    /// The event Lambda hands over; an event of another shape is an error naming what is wrong.
    pub fn from_event(event: &serde_json::Value) -> Result<Self, String> {
        let e: Event = serde_json::from_value(event.clone()).map_err(|err| {
            format!("not a Function URL request (payload format 2.0: requestContext.http.method, headers, body): {err}")
        })?;
        let body = match (e.body, e.is_base64_encoded) {
            (None, _) => Vec::new(),
            (Some(b), false) => b.into_bytes(),
            (Some(b), true) => STANDARD
                .decode(b)
                .map_err(|err| format!("isBase64Encoded is true but body is not base64: {err}"))?,
        };
        Ok(Self {
            method: e.request_context.http.method.to_ascii_uppercase(),
            headers: e
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            query: e.raw_query_string,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Where the request goes.
    pub fn route(&self) -> Route {
        let form_token = |bytes: &[u8]| {
            form_urlencoded::parse(bytes)
                .find(|(k, _)| k == "t")
                .map(|(_, v)| v.into_owned())
        };
        match self.method.as_str() {
            "POST" if self.header("x-slack-signature").is_some() => Route::Slack,
            "POST" => match form_token(&self.body) {
                Some(t) => Route::LinkKeep(t),
                None => Route::Bad(
                    "a POST needs Slack's signature headers, or a form field t (a link token)",
                ),
            },
            "GET" => match form_token(self.query.as_bytes()) {
                Some(t) => Route::LinkConfirm(t),
                None => Route::Bad("a link needs ?t=<token>"),
            },
            _ => Route::Bad("only GET (a link) and POST (a button, a confirmed link) are served"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Slack,
    /// GET ?t=…: show what the link will do, with a button that POSTs it.
    LinkConfirm(String),
    /// POST t=…: do it.
    LinkKeep(String),
    Bad(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_route_by_method_and_signature() {
        let ev = |method: &str, headers: serde_json::Value, body: Option<&str>, query: &str| {
            UrlRequest::from_event(&json!({
                "version": "2.0", "rawPath": "/", "rawQueryString": query, "headers": headers,
                "requestContext": {"http": {"method": method}}, "body": body, "isBase64Encoded": false
            }))
            .unwrap()
        };
        let slack = ev(
            "POST",
            json!({"X-Slack-Signature": "v0=00"}),
            Some("payload=%7B%7D"),
            "",
        );
        assert_eq!(slack.route(), Route::Slack);
        assert_eq!(slack.header("x-slack-signature"), Some("v0=00"));
        assert_eq!(
            ev("GET", json!({}), None, "t=v1.a.b").route(),
            Route::LinkConfirm("v1.a.b".into())
        );
        assert_eq!(
            ev("POST", json!({}), Some("t=v1.a.b"), "").route(),
            Route::LinkKeep("v1.a.b".into())
        );
        assert!(matches!(
            ev("GET", json!({}), None, "").route(),
            Route::Bad(_)
        ));
        assert!(matches!(
            ev("DELETE", json!({}), None, "t=x").route(),
            Route::Bad(_)
        ));
        let b64 = UrlRequest::from_event(&json!({
            "requestContext": {"http": {"method": "POST"}}, "body": "dD14", "isBase64Encoded": true
        }))
        .unwrap();
        assert_eq!(b64.body, b"t=x");
        assert!(UrlRequest::from_event(
            &json!({"detail-type": "EC2 Instance State-change Notification"})
        )
        .unwrap_err()
        .contains("not a Function URL request"));
    }
}

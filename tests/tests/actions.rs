//! Owner actions (issue 23) through the real `reaper-actions` binary: Function URL events over
//! the Lambda Runtime API, the link key and Slack signing secret in Secrets Manager, the member
//! account's role assumed through STS, EC2 in moto, every AWS call counted by the proxy in
//! front of moto. A valid click by the owner writes exactly one new date; a changed byte, an old
//! timestamp, a replay, a changed date and someone who is not the owner write nothing.

use chrono::{DateTime, TimeDelta, Utc};
use reaper::click::slack::SigningSecret;
use reaper::click::token::{Keep, LinkKey};
use reaper_e2e::proxy::Proxy;
use reaper_e2e::{actions_binary, Function, Moto, RuntimeApi};
use serde_json::{json, Value};
use std::time::Duration;

const REGION: &str = "eu-west-1";
const LINK_KEY: &str = "an-example-link-key-of-at-least-32-bytes-0123456789";
const SIGNING: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const OWNER: &str = "U0OWNER";
const TIMEOUT: Duration = Duration::from_secs(30);

struct Rig {
    moto: Moto,
    proxy: Proxy,
    runtime: RuntimeApi,
    function: Function,
    key: LinkKey,
    signing: SigningSecret,
}

async fn rig() -> Rig {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config(REGION));
    let mut arns = Vec::new();
    for (name, value) in [
        ("reaper-link-key", LINK_KEY),
        ("reaper-slack-signing", SIGNING),
    ] {
        let out = sm
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
        arns.push(out.arn().unwrap().to_string());
    }
    let runtime = RuntimeApi::start(REGION);
    let mut env: Vec<(String, String)> = moto
        .env(REGION)
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "AWS_ENDPOINT_URL" {
                proxy.endpoint()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    env.extend(
        [
            ("LINK_KEY_ARN", arns[0].as_str()),
            ("SLACK_SIGNING_SECRET_ARN", arns[1].as_str()),
            ("ACTIONS_ROLE_NAME", "ec2-reaper-actions"),
            ("ADMIN_SLACK_IDS", "WADMIN"),
            ("MAX_LIFETIME", "30d"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let function = Function::spawn(&actions_binary(), &runtime, &env);
    Rig {
        moto,
        proxy,
        runtime,
        function,
        key: LinkKey::new(LINK_KEY.as_bytes()).unwrap(),
        signing: SigningSecret::new(SIGNING).unwrap(),
    }
}

fn whole(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap()
}

fn date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Rig {
    /// An instance announced for termination at `due`, owned by `owner`.
    async fn announced(&self, due: DateTime<Utc>, owner: &str) -> String {
        let told = date(due - TimeDelta::days(1));
        let announced = format!("terminate {} told {told}", date(due));
        let due = date(due);
        reaper_e2e::launch(
            &self.moto.ec2(REGION),
            1,
            &[
                ("termination_date", due.as_str()),
                ("owner", owner),
                ("reaper:announced", announced.as_str()),
            ],
        )
        .await
        .remove(0)
    }

    async fn termination_date(&self, id: &str) -> String {
        reaper_e2e::ec2::tag_of(&self.moto.ec2(REGION), id, "termination_date").await
    }

    fn token(&self, id: &str, announced: DateTime<Utc>, days: u8) -> String {
        let keep = Keep {
            account: Moto::ACCOUNT_ID.into(),
            region: REGION.into(),
            instance: id.into(),
            announced,
            days,
            expires: Utc::now() + TimeDelta::days(2),
        };
        self.key.sign(&keep, rand_nonce())
    }

    fn slack_body(&self, user: &str, token: &str) -> String {
        let payload = json!({"type": "block_actions", "user": {"id": user},
            "actions": [{"action_id": "keep-3", "value": token}]});
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
    }

    fn slack_event(&self, body: &[u8], ts: i64, signature: Option<String>) -> Value {
        let sig = signature.unwrap_or_else(|| self.signing.sign(&ts.to_string(), body));
        json!({
            "version": "2.0", "rawPath": "/", "rawQueryString": "",
            "headers": {"content-type": "application/x-www-form-urlencoded",
                        "x-slack-request-timestamp": ts.to_string(), "x-slack-signature": sig},
            "requestContext": {"http": {"method": "POST"}},
            "body": String::from_utf8_lossy(body), "isBase64Encoded": false,
        })
    }

    fn link_event(&self, method: &str, token: &str) -> Value {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("t", token)
            .finish();
        let (query, body) = if method == "GET" {
            (form, None)
        } else {
            (String::new(), Some(form))
        };
        json!({"version": "2.0", "rawPath": "/", "rawQueryString": query, "headers": {},
               "requestContext": {"http": {"method": method}}, "body": body, "isBase64Encoded": false})
    }

    fn call(&self, event: Value) -> (u16, String) {
        let inv = self
            .function
            .invoke(&self.runtime, event, TIMEOUT, Duration::from_secs(30));
        if let Some(status) = self.function.try_exit() {
            panic!(
                "reaper-actions exited ({status}); stderr:\n{}",
                self.function.stderr()
            );
        }
        let v = inv.unwrap_response();
        let status = v["statusCode"].as_u64().unwrap_or(0) as u16;
        (status, v["body"].as_str().unwrap_or_default().to_string())
    }

    fn create_tags(&self) -> u64 {
        self.proxy.calls().get("CreateTags").copied().unwrap_or(0)
    }
}

fn rand_nonce() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_keeps_an_instance_once_and_everyone_else_changes_nothing() {
    let r = rig().await;
    let due = whole(Utc::now() + TimeDelta::hours(12));
    let id = r.announced(due, OWNER).await;
    let token = r.token(&id, due, 3);
    let now = Utc::now().timestamp();

    // Someone who is not the owner: a polite refusal, nothing written.
    let body = r.slack_body("U0SOMEONE", &token);
    let (status, text) = r.call(r.slack_event(body.as_bytes(), now, None));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("only the owner"), "{text}");
    assert_eq!(r.create_tags(), 0);

    // The owner's click, with any one byte of the body changed: refused before anything is read.
    let body = r.slack_body(OWNER, &token);
    let mut tampered = body.clone().into_bytes();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    let sig = r.signing.sign(&now.to_string(), body.as_bytes());
    let (status, text) = r.call(r.slack_event(&tampered, now, Some(sig)));
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("signature does not match"), "{text}");

    // Signed 301 s ago: refused.
    let (status, text) = r.call(r.slack_event(body.as_bytes(), now - 301, None));
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("301 s from now"), "{text}");
    assert_eq!(r.create_tags(), 0);
    assert_eq!(r.termination_date(&id).await, date(due));

    // The owner's valid click: exactly one new date, three days later, answered 200.
    let (status, text) = r.call(r.slack_event(body.as_bytes(), now, None));
    assert_eq!(status, 200, "{text}");
    let new = date(due + TimeDelta::days(3));
    assert!(text.contains(&format!("now ends {new}")), "{text}");
    assert_eq!(r.create_tags(), 1);
    assert_eq!(r.termination_date(&id).await, new);

    // The same request replayed (freshly signed, even): the date is no longer the announced one.
    let (status, text) = r.call(r.slack_event(body.as_bytes(), Utc::now().timestamp(), None));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("date is now"), "{text}");
    // And the e-mail link for the old date: refused alike.
    let (status, page) = r.call(r.link_event("POST", &r.token(&id, due, 7)));
    assert_eq!(status, 200);
    assert!(page.contains("Nothing changed"), "{page}");
    assert_eq!(r.create_tags(), 1);
    assert_eq!(r.termination_date(&id).await, new);

    // Each click was one JSON log line.
    let lines: Vec<Value> = r
        .function
        .json_lines()
        .into_iter()
        .filter(|l| l["fields"]["message"] == "owner action" || l["message"] == "owner action")
        .collect();
    assert!(lines.len() >= 6, "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_e_mail_link_asks_first_then_works_once() {
    let r = rig().await;
    let due = whole(Utc::now() + TimeDelta::hours(6));
    let id = r.announced(due, "alice@example.com").await;
    let token = r.token(&id, due, 1);

    // GET (what a mail scanner does): a page with a button, nothing written.
    let (status, page) = r.call(r.link_event("GET", &token));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<form method=post>") && page.contains(&id),
        "{page}"
    );
    assert_eq!(r.create_tags(), 0);

    // The button: kept one day.
    let (status, page) = r.call(r.link_event("POST", &token));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Kept"), "{page}");
    assert_eq!(r.create_tags(), 1);
    assert_eq!(
        r.termination_date(&id).await,
        date(due + TimeDelta::days(1))
    );

    // The same link again: the date has changed, nothing more is written.
    let (_, page) = r.call(r.link_event("POST", &token));
    assert!(page.contains("Nothing changed"), "{page}");
    assert_eq!(r.create_tags(), 1);

    // A forged or damaged token: refused with 400.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let (status, page) = r.call(r.link_event("POST", &String::from_utf8(forged).unwrap()));
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("cannot be used"), "{page}");
    assert_eq!(r.create_tags(), 1);
}

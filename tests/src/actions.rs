//! The owner-actions rig (issue 23): the real `reaper-actions` binary behind the Lambda Runtime
//! API, its secrets in moto's Secrets Manager, EC2 in moto, every AWS call counted by a proxy;
//! helpers to seed announced instances and to send Slack clicks and e-mail links as Function URL
//! events. Used by `tests/actions.rs` and the `actions-bench` binary.

use crate::proxy::Proxy;
use crate::{actions_binary, Function, Moto, RuntimeApi};
use chrono::{DateTime, TimeDelta, Utc};
use reaper::click::slack::SigningSecret;
use reaper::click::token::{Keep, LinkKey};
use serde_json::{json, Value};
use std::time::Duration;

pub const REGION: &str = "eu-west-1";
const LINK_KEY: &str = "an-example-link-key-of-at-least-32-bytes-0123456789";
const SIGNING: &str = "8f742231b10e8888abcd99yyyzzz85a5";
pub const OWNER: &str = "U0OWNER12";
/// The evidence bucket (REPORT_BUCKET): each verified click's record goes under `clicks/`.
pub const BUCKET: &str = "ec2-reaper-evidence";
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Rig {
    pub moto: Moto,
    pub proxy: Proxy,
    pub runtime: RuntimeApi,
    pub function: Function,
    pub key: LinkKey,
    pub signing: SigningSecret,
    /// The link key's secret (the reaper signs its buttons with the same one).
    pub link_key_arn: String,
}

/// Starts moto, the proxy, the Runtime API and the function (its secrets created first).
pub async fn rig() -> Rig {
    rig_with(true).await
}

/// As `rig`, with the Slack signing secret created empty when `signing_set` is false (as
/// deploy_actions.yaml creates it); `set_signing_secret` gives it its value.
pub async fn rig_with(signing_set: bool) -> Rig {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint());
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config(REGION));
    let mut arns = Vec::new();
    for (name, value) in [
        ("reaper-link-key", Some(LINK_KEY)),
        ("reaper-slack-signing", signing_set.then_some(SIGNING)),
    ] {
        let out = sm
            .create_secret()
            .name(name)
            .set_secret_string(value.map(str::to_string))
            .send()
            .await
            .unwrap();
        arns.push(out.arn().unwrap().to_string());
    }
    moto.create_bucket(REGION, BUCKET).await;
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
            ("ADMIN_SLACK_IDS", "W0ADMIN12"),
            ("MAX_LIFETIME", "30d"),
            ("REPORT_BUCKET", BUCKET),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let function = Function::spawn(&actions_binary(), &runtime, &env);
    Rig {
        moto,
        proxy,
        runtime,
        function,
        link_key_arn: arns[0].clone(),
        key: LinkKey::new(LINK_KEY.as_bytes()).unwrap(),
        signing: SigningSecret::new(SIGNING).unwrap(),
    }
}

/// `at` to the second, as tags hold it.
pub fn whole(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap()
}

/// `at` as the reaper writes a date.
pub fn date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Rig {
    /// An instance announced for termination at `due`, owned by `owner`.
    pub async fn announced(&self, due: DateTime<Utc>, owner: &str) -> String {
        let told = date(due - TimeDelta::days(1));
        let announced = format!("terminate {} told {told}", date(due));
        let due = date(due);
        crate::launch(
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

    pub async fn termination_date(&self, id: &str) -> String {
        crate::ec2::tag_of(&self.moto.ec2(REGION), id, "termination_date").await
    }

    pub fn token(&self, id: &str, announced: DateTime<Utc>, days: u8) -> String {
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

    pub fn slack_body(&self, user: &str, token: &str) -> String {
        let payload = json!({"type": "block_actions", "user": {"id": user},
            "actions": [{"action_id": "keep-3", "value": token}]});
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
    }

    pub fn slack_event(&self, body: &[u8], ts: i64, signature: Option<String>) -> Value {
        let sig = signature.unwrap_or_else(|| self.signing.sign(&ts.to_string(), body));
        json!({
            "version": "2.0", "rawPath": "/", "rawQueryString": "",
            "headers": {"content-type": "application/x-www-form-urlencoded",
                        "x-slack-request-timestamp": ts.to_string(), "x-slack-signature": sig},
            "requestContext": {"http": {"method": "POST"}},
            "body": String::from_utf8_lossy(body), "isBase64Encoded": false,
        })
    }

    pub fn link_event(&self, method: &str, token: &str) -> Value {
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

    pub fn call(&self, event: Value) -> (u16, String) {
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

    /// Puts the Slack signing secret's value (what the operator does once the Slack app exists).
    pub async fn set_signing_secret(&self) {
        let sm = aws_sdk_secretsmanager::Client::new(&self.moto.sdk_config(REGION));
        sm.put_secret_value()
            .secret_id("reaper-slack-signing")
            .secret_string(SIGNING)
            .send()
            .await
            .unwrap();
    }

    /// The click records in the evidence bucket, oldest first (keys sort by time).
    pub async fn clicks(&self) -> Vec<Value> {
        let s3 = self.moto.s3(REGION);
        let list = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix("clicks/")
            .send()
            .await
            .unwrap();
        let mut records = Vec::new();
        for o in list.contents() {
            let key = o.key().unwrap();
            let body = s3
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap();
            let bytes = body.body.collect().await.unwrap().into_bytes();
            let record: Value = serde_json::from_slice(&bytes).unwrap();
            assert!(
                key.starts_with(&format!("clicks/dt={}/", record["dt"].as_str().unwrap())),
                "{key}: {record}"
            );
            records.push(record);
        }
        records
    }

    pub fn create_tags(&self) -> u64 {
        self.proxy.calls().get("CreateTags").copied().unwrap_or(0)
    }
}

/// A random nonce for a token.
pub fn rand_nonce() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

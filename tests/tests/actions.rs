//! Owner actions (issue 23) through the real `reaper-actions` binary: Function URL events over
//! the Lambda Runtime API, the link key and Slack signing secret in Secrets Manager, the member
//! account's role assumed through STS, EC2 in moto, every AWS call counted by the proxy in
//! front of moto (`reaper_e2e::actions`). A valid click by the owner writes exactly one new
//! date; a changed byte, an old timestamp, a replay, a changed date and someone who is not the
//! owner write nothing.

use chrono::{TimeDelta, Utc};
use reaper_e2e::actions::{date, rig, rig_with, whole, BUCKET, OWNER, REGION};
use reaper_e2e::proxy::Fault;
use reaper_e2e::{
    fixture, reaper_binary, reaperctl_binary, Function, RuntimeApi, WebhookMode, WebhookSink,
};
use serde_json::Value;
use std::time::{Duration, Instant};

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
    assert!(
        text.contains("s from now; at most 300 s is accepted"),
        "{text}"
    );
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

    // And each verified click, accepted or refused, one record in the evidence bucket; the
    // changed byte and the stale timestamp (nobody can be named for them) only the log line.
    let records = r.clicks().await;
    let outcomes: Vec<&str> = records
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "refused-not-owner",
            "kept",
            "refused-date-changed",
            "refused-date-changed"
        ],
        "{records:#?}"
    );
    let kept = &records[1];
    assert_eq!(kept["clicker"], format!("slack:{OWNER}"));
    assert_eq!(
        (&kept["instance_id"], &kept["account"], &kept["region"]),
        (
            &Value::from(id.as_str()),
            &Value::from("123456789012"),
            &Value::from(REGION)
        )
    );
    assert_eq!(kept["new_date"], new.as_str());
    assert_eq!(kept["announced"], date(due).as_str());
    assert_eq!(records[0]["clicker"], "slack:U0SOMEONE");
    assert_eq!(records[3]["via"], "link");

    // And the organisation sees them: `reaperctl report` over the evidence bucket.
    let mut cmd = std::process::Command::new(reaperctl_binary());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in r.moto.env(REGION) {
        cmd.env(k, v);
    }
    let out = cmd
        .args([
            "report",
            "--source",
            &format!("s3://{BUCKET}"),
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let totals: Value = serde_json::from_slice(&out.stdout).unwrap();
    let month = &date(Utc::now())[..7];
    assert_eq!(
        totals["owner_actions"],
        serde_json::json!([{"account": "123456789012", "month": month, "clicks": 4, "kept": 1,
                            "refused": 3, "failed": 0, "days_kept": 3}]),
        "{totals:#}"
    );
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

    // Records: the keep and the refused second use; the GET (a page, no click) and the forged
    // token (nobody to name) none.
    let records = r.clicks().await;
    let got: Vec<(&str, &str)> = records
        .iter()
        .map(|c| (c["via"].as_str().unwrap(), c["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [("link", "kept"), ("link", "refused-date-changed")],
        "{records:#?}"
    );
}

/// A hostile world: the evidence bucket hangs and the first CreateTags answer is lost. The SDK
/// retries the write (the same new date, computed once: three days, not six), the owner is told
/// "Kept" well within Slack's 3 s, and the hung record costs its share of the time only, logged.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_record_store_and_a_lost_answer_change_no_click() {
    let r = rig().await;
    let due = whole(Utc::now() + TimeDelta::hours(12));
    let id = r.announced(due, OWNER).await;
    r.proxy.fault_rate("PutObject", Fault::Hang, 1.0, 1);
    r.proxy
        .fault_script("CreateTags", [Some(Fault::ResetAfterForward)]);
    let body = r.slack_body(OWNER, &r.token(&id, due, 3));
    let started = Instant::now();
    let (status, text) = r.call(r.slack_event(body.as_bytes(), Utc::now().timestamp(), None));
    let took = started.elapsed();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Kept"), "{text}");
    assert!(took < Duration::from_secs(3), "answered in {took:?}");
    assert_eq!(
        r.termination_date(&id).await,
        date(due + TimeDelta::days(3))
    );
    assert_eq!(r.proxy.injected().get("PutObject Hang"), Some(&1));
    assert_eq!(
        r.proxy.injected().get("CreateTags ResetAfterForward"),
        Some(&1)
    );
    r.proxy.clear_faults();
    assert!(r.clicks().await.is_empty());
    let logged = r
        .function
        .json_lines()
        .into_iter()
        .any(|l| l.to_string().contains("click record not written"));
    assert!(logged, "no log line says the record was not written");
}

/// deploy_actions.yaml creates the signing secret empty: until it has a value, e-mail links
/// work and Slack clicks are refused with 503 (nothing written, no secret named); once the
/// operator puts the value, the next click works without a redeploy or a restart.
#[tokio::test(flavor = "multi_thread")]
async fn slack_waits_for_its_signing_secret_and_links_work_meanwhile() {
    let r = rig_with(false).await;
    let due = whole(Utc::now() + TimeDelta::hours(12));
    let id = r.announced(due, OWNER).await;
    let token = r.token(&id, due, 3);
    let body = r.slack_body(OWNER, &token);
    let (status, text) = r.call(r.slack_event(body.as_bytes(), Utc::now().timestamp(), None));
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("signing secret is not readable") && !text.contains("arn:"),
        "{text}"
    );
    assert_eq!(r.create_tags(), 0);
    assert!(r.clicks().await.is_empty());

    let other = r.announced(due, "alice@example.com").await;
    let (status, page) = r.call(r.link_event("POST", &r.token(&other, due, 1)));
    assert_eq!((status, page.contains("Kept")), (200, true), "{page}");
    assert_eq!(r.create_tags(), 1);

    r.set_signing_secret().await;
    let (status, text) = r.call(r.slack_event(body.as_bytes(), Utc::now().timestamp(), None));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Kept"), "{text}");
    assert_eq!(r.create_tags(), 2);
    assert_eq!(
        r.termination_date(&id).await,
        date(due + TimeDelta::days(3))
    );
}

/// The whole loop: the reaper's live run announces a termination to a Slack owner with Keep
/// buttons signed by the shared link key; the owner's click on one of them, sent to
/// reaper-actions, keeps the instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_button_the_reaper_posted_keeps_the_instance_when_its_owner_clicks_it() {
    let r = rig().await;
    let owner = "U0TEAM1234";
    let sink = WebhookSink::start(WebhookMode::Ok);
    let soon = whole(Utc::now() + TimeDelta::hours(5));
    let id = reaper_e2e::launch(
        &r.moto.ec2(REGION),
        1,
        &[("termination_date", date(soon).as_str()), ("owner", owner)],
    )
    .await
    .remove(0);
    let runtime = RuntimeApi::start(REGION);
    let mut env = r.moto.env(REGION);
    env.extend(
        [
            ("LIVEMODE", "true"),
            ("GRACE_PERIOD", "0m"),
            ("SLACKWEBHOOK", sink.url().as_str()),
            ("ACTIONS_URL", "https://actions.example/"),
            ("LINK_KEY_ARN", r.link_key_arn.as_str()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let reaper = Function::spawn(&reaper_binary(), &runtime, &env);
    let report = reaper
        .invoke(
            &runtime,
            fixture("schedule.json"),
            Duration::from_secs(60),
            Duration::from_secs(300),
        )
        .unwrap_response();
    assert_eq!(report["delivery"]["slack"], "sent", "{report:#}");
    let message = sink.requests().pop().expect("the run posted");
    let buttons: Vec<Value> = message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .collect();
    assert_eq!(buttons.len(), 3, "{message:#}");
    let keep3 = buttons
        .iter()
        .find(|b| b["action_id"] == "keep-3")
        .and_then(|b| b["value"].as_str())
        .unwrap()
        .to_string();

    let body = r.slack_body(owner, &keep3);
    let (status, text) = r.call(r.slack_event(body.as_bytes(), Utc::now().timestamp(), None));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Kept"), "{text}");
    assert_eq!(
        r.termination_date(&id).await,
        date(soon + TimeDelta::days(3))
    );
}

//! `make actions-bench`: 100 owner clicks through the real `reaper-actions` binary (Slack button
//! requests, each signed, each for its own announced instance in moto), timed from the request
//! handed to the Lambda Runtime API to the answer; prints p50, p99 and the slowest against Slack's
//! 3 s limit, and the AWS calls per click. Every click must answer 200 and keep its instance.

use chrono::{TimeDelta, Utc};
use reaper_e2e::actions::{date, rig, whole, OWNER};
use std::time::Instant;

const CLICKS: usize = 100;
const LIMIT_MS: f64 = 3000.0;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let r = rig().await;
    let due = whole(Utc::now() + TimeDelta::hours(12));
    let mut ids = Vec::with_capacity(CLICKS);
    for _ in 0..CLICKS {
        ids.push(r.announced(due, OWNER).await);
    }
    r.proxy.reset_counts();
    let mut ms = Vec::with_capacity(CLICKS);
    for id in &ids {
        let token = r.token(id, due, 3);
        let body = r.slack_body(OWNER, &token);
        let event = r.slack_event(body.as_bytes(), Utc::now().timestamp(), None);
        let started = Instant::now();
        let (status, text) = r.call(event);
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{id}: {text}");
        assert!(text.contains("Kept"), "{id}: {text}");
    }
    let want = date(due + TimeDelta::days(3));
    for id in &ids {
        assert_eq!(r.termination_date(id).await, want, "{id}");
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((p * CLICKS as f64).ceil() as usize).clamp(1, CLICKS) - 1];
    let calls = r.proxy.calls();
    let total: u64 = calls.values().sum();
    println!("actions-bench: {CLICKS} owner clicks (Slack button, signed), each keeping its own instance 3 days");
    println!(
        "  answer time ms: p50 {:.1}, p99 {:.1}, slowest {:.1}  (limit {LIMIT_MS:.0}: {})",
        pct(0.50),
        pct(0.99),
        ms[CLICKS - 1],
        if pct(0.99) < LIMIT_MS {
            "met"
        } else {
            "NOT MET"
        }
    );
    println!(
        "  AWS calls: {total} for {CLICKS} clicks ({:.2} a click): {calls:?}",
        total as f64 / CLICKS as f64
    );
    assert_eq!(
        calls.get("CreateTags").copied().unwrap_or(0),
        CLICKS as u64,
        "one write per click"
    );
    if pct(0.99) >= LIMIT_MS {
        std::process::exit(1);
    }
}

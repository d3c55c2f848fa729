//! The real `reaper` binary, speaking the Lambda Runtime API to the harness, against moto through
//! the real SDK (SPEC §7-§9): every event fixture, the report as the response, S3 and Slack.

use aws_sdk_ec2::types::InstanceStateName;
use reaper::report::RunReport;
use reaper_e2e::{
    fixture, reaper_binary, Function, Invocation, Moto, RuntimeApi, WebhookMode, WebhookSink,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const REGION: &str = "us-west-2";
const TIMEOUT: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(300);

struct Rig {
    moto: Moto,
    runtime: RuntimeApi,
    function: Function,
}

fn rig(extra_env: &[(&str, &str)]) -> Rig {
    let moto = Moto::start();
    let runtime = RuntimeApi::start(REGION);
    let mut env = moto.env(REGION);
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let function = Function::spawn(&reaper_binary(), &runtime, &env);
    Rig {
        moto,
        runtime,
        function,
    }
}

impl Rig {
    fn invoke(&self, event: Value) -> Invocation {
        self.function
            .invoke(&self.runtime, event, TIMEOUT, DEADLINE)
    }

    fn report(&self, event: Value) -> RunReport {
        let v = self.invoke(event).unwrap_response();
        serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("not a run report ({e}): {v:#}"))
    }

    async fn launch(&self, tags: &[(&str, &str)]) -> String {
        reaper_e2e::launch(&self.moto.ec2(REGION), 1, tags)
            .await
            .remove(0)
    }

    async fn state(&self, id: &str) -> (InstanceStateName, Vec<(String, String)>) {
        let out = self
            .moto
            .ec2(REGION)
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap();
        let i = &out.reservations()[0].instances()[0];
        let tags = i
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect();
        (i.state().unwrap().name().unwrap().clone(), tags)
    }
}

/// Announced to its owner two days before the date: the notice gate lets it go.
const TOLD_2020: &str = "terminate 2020-01-01T00:00:00Z told 2019-12-30T00:00:00Z";

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schedule_fixture_sweeps_live_and_returns_the_report() {
    let rig = rig(&[("LIVEMODE", "True"), ("GRACE_PERIOD", "0m")]);
    // Due by its date: with GRACE_PERIOD=0m no instance is new, so a lifetime would be stamped a
    // WARN_WINDOW ahead rather than terminated (SPEC §2).
    let due = rig
        .launch(&[
            ("termination_date", "2020-01-01T00:00:00Z"),
            ("Name", "scratch"),
            ("reaper:announced", TOLD_2020),
        ])
        .await;
    let untagged = rig.launch(&[("Name", "mystery")]).await;
    let r = rig.report(fixture("schedule.json"));
    assert_eq!(
        (r.mode.to_string().as_str(), <&str>::from(r.trigger)),
        ("live", "schedule")
    );
    assert_eq!(r.region, REGION);
    assert_eq!(r.account, "123456789012", "from the function ARN");
    assert_eq!(rig.state(&due).await.0, InstanceStateName::Terminated);
    assert_eq!(rig.state(&untagged).await.0, InstanceStateName::Stopped);
    assert_eq!(r.api_calls["TerminateInstances"], 1);
    // One JSON log line carries the report; one EMF line the metrics; other lines carry the run id.
    assert!(rig
        .function
        .wait_for_stdout("\"_aws\"", Duration::from_secs(5)));
    let lines = rig.function.json_lines();
    let logged = lines
        .iter()
        .find(|l| l["message"] == "run report")
        .expect("report log line");
    assert_eq!(logged["report"]["run_id"], r.run_id);
    let emf = lines
        .iter()
        .find(|l| l.get("_aws").is_some())
        .expect("EMF line");
    assert_eq!(emf["verdict.terminate"], 1);
    assert_eq!(emf["verdict.stop"], 1);
    // Every line logged during the run carries its id.
    let during: Vec<&Value> = lines
        .iter()
        .skip_while(|l| l["fields"]["message"] != "run started")
        .take_while(|l| l["message"] != "run report")
        .collect();
    assert!(during.len() >= 2, "{lines:#?}");
    for line in during {
        assert_eq!(line["span"]["run_id"], r.run_id, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_change_fixture_stamps_the_new_instance_at_once() {
    let rig = rig(&[("LIVEMODE", "true")]);
    let new = rig.launch(&[("lifetime", "2h"), ("Name", "build")]).await;
    let other = rig.launch(&[("lifetime", "0m")]).await;
    let mut event = fixture("instance-state-pending.json");
    event["detail"]["instance-id"] = json!(new);
    let r = rig.report(event);
    assert_eq!(r.trigger.to_string(), "instance-state");
    assert_eq!(r.instances_judged, 1, "only the instance in the event");
    let (state, tags) = rig.state(&new).await;
    assert_eq!(state, InstanceStateName::Running);
    assert!(tag(&tags, "termination_date").unwrap().ends_with('Z'));
    assert!(
        tag(&rig.state(&other).await.1, "termination_date").is_none(),
        "untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_payloads_dry_run_and_forecast() {
    let rig = rig(&[("LIVEMODE", "true")]);
    let soon = rig
        .launch(&[("termination_date", "2029-12-31T00:00:00Z")])
        .await;
    // `{}` is a live sweep (LIVEMODE is on) and this instance is not due yet.
    let r = rig.report(fixture("manual-empty.json"));
    assert_eq!(
        (<&str>::from(r.trigger), r.mode.to_string().as_str()),
        ("manual", "live")
    );
    assert_eq!(r.verdict_count(reaper::policy::VerdictKind::Keep), 1);
    // A forecast for 2030 says it would be terminated, and terminates nothing.
    let r = rig.report(fixture("manual-dry-run.json"));
    assert!(r.forecast);
    assert_eq!(r.mode.to_string(), "dry-run");
    assert_eq!(r.evaluated_at.to_rfc3339(), "2030-01-01T00:00:00+00:00");
    assert_eq!(r.instances[0].id, soon);
    assert_eq!(r.instances[0].outcome.unwrap().to_string(), "would");
    assert_eq!(rig.state(&soon).await.0, InstanceStateName::Running);
    assert!(!r.api_calls.contains_key("TerminateInstances"));
    // `at` without dry_run in live mode is refused, naming the problem.
    match rig.invoke(json!({"at": "2030-01-01T00:00:00Z"})) {
        Invocation::Error { error_message, .. } => assert!(
            error_message.contains("`at` forecasts only in a dry run"),
            "{error_message}"
        ),
        other => panic!("{other:?}"),
    }
    // A payload can limit the sweep to some instances.
    let r = rig.report(json!({"dry_run": true, "instance_ids": [soon]}));
    assert_eq!(r.instances_judged, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_payloads_are_refused_naming_the_field_and_the_function_lives_on() {
    let rig = rig(&[("LIVEMODE", "true"), ("GRACE_PERIOD", "0m")]);
    let untagged = rig.launch(&[]).await;
    for (name, fragment) in [
        ("manual-bad-field.json", "unknown field `dryrun`"),
        ("manual-bad-type.json", "field `dry_run` must be a boolean"),
    ] {
        match rig.invoke(fixture(name)) {
            Invocation::Error {
                error_type,
                error_message,
            } => {
                assert!(error_message.contains(fragment), "{name}: {error_message}");
                // A name a person can alarm on, not a Rust type path.
                assert_eq!(error_type, "InvalidEvent", "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        rig.state(&untagged).await.0,
        InstanceStateName::Running,
        "bad input never acts"
    );
    // The same process answers the next good event.
    let r = rig.report(json!({"dry_run": true}));
    assert_eq!(r.instances[0].id, untagged);
}

/// Issue 19 item 4: a body the runtime's own deserializer could not read came back with a Rust
/// type path as `errorType`. Every malformed body is `InvalidEvent`, saying what was wrong, and
/// the process answers the next event.
#[tokio::test]
async fn every_malformed_body_is_an_invalid_event_naming_what_is_wrong() {
    let rig = rig(&[("LIVEMODE", "true"), ("GRACE_PERIOD", "0m")]);
    let untagged = rig.launch(&[]).await;
    let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
    let cases: [(&str, &[u8], &str); 9] = [
        ("empty body", b"", "empty"),
        ("not JSON", b"dry_run please", "not valid JSON"),
        (
            "invalid UTF-8",
            b"{\"dry_run\": \"\xff\"}",
            "not valid JSON",
        ),
        ("lone surrogate", br#"{"dry_run": "\ud800"}"#, "surrogate"),
        ("byte-order mark", b"\xef\xbb\xbf{}", "byte-order mark"),
        ("NaN", br#"{"dry_run": NaN}"#, "not valid JSON"),
        ("huge number", br#"{"dry_run": 1e999999}"#, "out of range"),
        ("deep nesting", deep.as_bytes(), "nested"),
        (
            "duplicate key",
            br#"{"dry_run": true, "dry_run": false}"#,
            "duplicate key",
        ),
    ];
    for (name, body, fragment) in cases {
        match rig
            .function
            .invoke_raw(&rig.runtime, body, TIMEOUT, DEADLINE)
        {
            Invocation::Error {
                error_type,
                error_message,
            } => {
                assert_eq!(error_type, "InvalidEvent", "{name}: {error_message}");
                assert!(error_message.contains(fragment), "{name}: {error_message}");
                assert!(!error_message.contains("::"), "{name}: {error_message}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        rig.state(&untagged).await.0,
        InstanceStateName::Running,
        "bad input never acts"
    );
    let r = rig.report(json!({"dry_run": true}));
    assert_eq!(r.instances[0].id, untagged);
}

#[test]
fn a_bad_environment_value_fails_at_start_up_with_one_line() {
    for (var, value) in [
        ("GRACE_PERIOD", "15 minutes"),
        ("MAX_TERMINATIONS", "-1"),
        ("SKIP_MANAGED", "maybe"),
        // Issue 19 item 8: accepted (trimmed) before; no value is trimmed now.
        ("WARN_WINDOW", "1d "),
    ] {
        let moto_free_env = vec![
            ("AWS_REGION".to_string(), REGION.to_string()),
            (var.to_string(), value.to_string()),
        ];
        let runtime = RuntimeApi::start(REGION);
        let function = Function::spawn(&reaper_binary(), &runtime, &moto_free_env);
        let status = function
            .wait_exit(Duration::from_secs(20))
            .expect("the function exits at start-up");
        assert!(!status.success());
        let stderr = function.stderr();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].contains(&format!("{var}=\"{value}\" is not accepted")),
            "{stderr}"
        );
    }
}

/// Issue 19 item 8: `WARN_WINDOW=0m` and `Etc/GMT+1` (UTC−1) passed without a word. Each is now
/// one warning line at start-up and in every run's report.
#[test]
fn doubtful_settings_are_warned_at_start_up_and_in_the_report() {
    let rig = rig(&[
        ("WARN_WINDOW", "0m"),
        ("ACTION_WINDOW", "mon-sun 00:00-24:00 Etc/GMT+1"),
    ]);
    assert!(
        rig.runtime.wait_for_polls(1, TIMEOUT),
        "the function starts"
    );
    let warnings = [
        "WARN_WINDOW=\"0m\" turns off every notice before an action",
        "ACTION_WINDOW time zone Etc/GMT+1 means UTC-1, not UTC+1",
    ];
    for warning in warnings {
        // Raw stdout holds the JSON-escaped text; wait on the words after the quotes.
        let words = warning.rsplit('"').next().unwrap_or(warning);
        assert!(rig.function.wait_for_stdout(words, TIMEOUT), "{warning}");
        let lines: Vec<Value> = rig
            .function
            .json_lines()
            .into_iter()
            .filter(|l| {
                l["fields"]["warning"]
                    .as_str()
                    .is_some_and(|w| w.starts_with(warning))
            })
            .collect();
        assert_eq!(lines.len(), 1, "{warning}: {}", rig.function.stdout());
        assert_eq!(lines[0]["level"], "WARN");
    }
    let r = rig.report(json!({"dry_run": true}));
    for warning in warnings {
        assert!(
            r.warnings.iter().any(|w| w.starts_with(warning)),
            "{warning}: {:?}",
            r.warnings
        );
    }
}

/// Keep buttons are a convenience: a link key the reaper cannot read (deleted, no permission)
/// turns them off, loudly (a start-up line and every report's warnings), and the reaper sweeps on.
/// It used to exit at start, so no sweep ran at all.
#[test]
fn an_unreadable_link_key_turns_the_buttons_off_loudly_and_the_reaper_runs_on() {
    let rig = rig(&[
        (
            "ACTIONS_URL",
            "https://abcdefghij.lambda-url.eu-west-1.on.aws/",
        ),
        (
            "LINK_KEY_ARN",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ec2-reaper/link-key-AbCdEf",
        ),
    ]);
    let r = rig.report(json!({"dry_run": true}));
    let said = "LINK_KEY_ARN arn:aws:secretsmanager:eu-west-1:123456789012:secret:ec2-reaper/link-key-AbCdEf could not be read";
    assert!(
        r.warnings.iter().any(|w| w.starts_with(said)
            && w.ends_with("without Keep buttons and links until the function starts again")),
        "{:?}",
        r.warnings
    );
    let lines = rig.function.json_lines();
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["fields"]["warning"]
                .as_str()
                .is_some_and(|w| w.starts_with(said))),
        "{}",
        rig.function.stdout()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_is_archived_in_s3_whole_and_equal_to_the_response() {
    let bucket = "reaper-reports";
    let rig = rig(&[("REPORT_BUCKET", bucket), ("GRACE_PERIOD", "0m")]);
    rig.moto.create_bucket(REGION, bucket).await;
    rig.launch(&[("lifetime", "0m")]).await;
    rig.launch(&[]).await;
    let r = rig.report(fixture("schedule.json"));
    let key = r.archive_key();
    assert!(
        key.starts_with(&format!("reports/123456789012/{REGION}/")),
        "{key}"
    );
    assert_eq!(
        r.delivery.s3.as_deref(),
        Some(format!("s3://{bucket}/{key}").as_str())
    );
    let obj = rig
        .moto
        .s3(REGION)
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(obj.content_type(), Some("application/json"));
    let body = obj.body.collect().await.unwrap().into_bytes();
    let stored: RunReport = serde_json::from_slice(&body).unwrap();
    assert_eq!(stored, r);
    assert_eq!(stored.instances.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_slack_message_links_to_the_s3_copy() {
    let bucket = "reaper-reports";
    let sink = WebhookSink::start(WebhookMode::Ok);
    let url = sink.url();
    let rig = rig(&[
        ("REPORT_BUCKET", bucket),
        ("SLACKWEBHOOK", url.as_str()),
        ("GRACE_PERIOD", "0m"),
    ]);
    rig.moto.create_bucket(REGION, bucket).await;
    rig.launch(&[]).await;
    let r = rig.report(fixture("schedule.json"));
    let link = format!("s3://{bucket}/{}", r.archive_key());
    assert_eq!(r.delivery.s3.as_deref(), Some(link.as_str()));
    assert!(
        sink.requests()[0].to_string().contains(&link),
        "{}",
        sink.requests()[0]
    );
    // Written before Slack (so the link never dangles), then again with Slack's outcome: the
    // archived copy is the response.
    let obj = rig
        .moto
        .s3(REGION)
        .get_object()
        .bucket(bucket)
        .key(r.archive_key())
        .send()
        .await
        .unwrap();
    let stored: RunReport =
        serde_json::from_slice(&obj.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(
        stored.delivery.slack,
        Some(reaper::report::SlackStatus::Sent)
    );
    assert_eq!(stored, r);
}

/// Issue 18 (announce once): a dry-run week posted the same findings every hour. A dry run now
/// compares its findings with the last dry run's (a small record beside the reports in S3) and
/// posts only what changed; the same findings wait for the daily digest.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_posts_the_same_findings_once_and_again_when_they_change() {
    use chrono::Timelike;
    let bucket = "reaper-reports";
    let sink = WebhookSink::start(WebhookMode::Ok);
    let url = sink.url();
    // Any hour but this one, so the digest does not post on its own.
    let digest = format!("{:02}", (chrono::Utc::now().hour() + 12) % 24);
    let rig = rig(&[
        ("REPORT_BUCKET", bucket),
        ("SLACKWEBHOOK", url.as_str()),
        ("GRACE_PERIOD", "0m"),
        ("DIGEST_AT", digest.as_str()),
    ]);
    rig.moto.create_bucket(REGION, bucket).await;
    rig.launch(&[("Name", "mystery")]).await;
    let first = rig.report(fixture("schedule.json"));
    assert_eq!(first.mode, reaper::report::Mode::DryRun);
    assert_eq!(sink.requests().len(), 1);
    let record = rig
        .moto
        .s3(REGION)
        .get_object()
        .bucket(bucket)
        .key(first.dry_run_record_key())
        .send()
        .await
        .unwrap();
    let record: Value =
        serde_json::from_slice(&record.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(record["run_id"], first.run_id.as_str());
    // The same findings an hour later: nothing posted, and the run says why.
    let second = rig.report(fixture("schedule.json"));
    assert_eq!(sink.requests().len(), 1, "{:?}", second.delivery.slack);
    assert_eq!(
        second.delivery.slack.clone().map(String::from).as_deref(),
        Some("skipped (nothing to report)")
    );
    assert!(second.warnings.is_empty(), "{:?}", second.warnings);
    // A new finding is news again.
    rig.launch(&[("Name", "another")]).await;
    rig.report(fixture("schedule.json"));
    let messages = sink.requests();
    assert_eq!(messages.len(), 2);
    assert!(
        messages[1].to_string().contains("another"),
        "{}",
        messages[1]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_gets_one_message_per_noteworthy_run_and_none_for_an_empty_one() {
    let sink = WebhookSink::start(WebhookMode::Ok);
    let url = sink.url();
    let rig = rig(&[("SLACKWEBHOOK", url.as_str()), ("GRACE_PERIOD", "0m")]);
    let r = rig.report(fixture("schedule.json"));
    assert_eq!(
        r.delivery.slack.clone().map(String::from).as_deref(),
        Some("skipped (nothing to report)")
    );
    assert!(sink.requests().is_empty());
    rig.launch(&[("Name", "mystery"), ("owner", "bo")]).await;
    let r = rig.report(fixture("schedule.json"));
    assert_eq!(
        r.delivery.slack.clone().map(String::from).as_deref(),
        Some("sent")
    );
    let messages = sink.requests();
    assert_eq!(messages.len(), 1);
    let text = messages[0].to_string();
    assert!(text.contains("DRY RUN"), "{text}");
    assert!(text.contains("mystery") && text.contains("bo"), "{text}");
    assert!(
        !rig.function.stdout().contains(&url),
        "the webhook URL is a secret"
    );
    assert!(!serde_json::to_string(&r).unwrap().contains(&url));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_silent_slack_never_fails_the_run() {
    for mode in [WebhookMode::Status(500), WebhookMode::Hang] {
        let sink = WebhookSink::start(mode);
        let url = sink.url();
        let rig = rig(&[
            ("SLACKWEBHOOK", url.as_str()),
            ("LIVEMODE", "true"),
            ("GRACE_PERIOD", "0m"),
        ]);
        let due = rig
            .launch(&[
                ("termination_date", "2020-01-01T00:00:00Z"),
                ("reaper:announced", TOLD_2020),
            ])
            .await;
        let started = Instant::now();
        let r = rig.report(fixture("schedule.json"));
        assert_eq!(
            rig.state(&due).await.0,
            InstanceStateName::Terminated,
            "{mode:?}"
        );
        assert_eq!(r.outcome_count(reaper::report::Outcome::Done), 1);
        let slack = r.delivery.slack.clone().map(String::from).unwrap();
        assert!(slack.starts_with("failed: "), "{mode:?}: {slack}");
        assert!(
            r.errors.iter().any(|e| e.starts_with("slack: ")),
            "{:?}",
            r.errors
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{mode:?} took {:?}",
            started.elapsed()
        );
        assert!(!serde_json::to_string(&r).unwrap().contains(&url));
    }
}

/// Messages SES recorded, by recipient: moto's `/moto-api/data.json` (large: EC2's image
/// catalogue is in it too).
fn ses_sent_to(moto: &Moto, to: &str) -> usize {
    let url = format!("{}/moto-api/data.json", moto.endpoint());
    let text = reaper_e2e::net::agent(Duration::from_secs(30))
        .get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_string()
        .unwrap();
    let data: Value = serde_json::from_str(&text).unwrap();
    data["ses"]["Message"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["destinations"]["ToAddresses"][0] == to)
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_hears_once_per_date_and_again_when_the_date_changes() {
    let from = "reaper@example.com";
    // No grace period: a date seen inside it is the creator's own, recorded without a notice.
    let rig = rig(&[
        ("LIVEMODE", "true"),
        ("NOTICE_FROM", from),
        ("GRACE_PERIOD", "0m"),
    ]);
    aws_sdk_sesv2::Client::new(&rig.moto.sdk_config(REGION))
        .create_email_identity()
        .email_identity(from)
        .send()
        .await
        .expect("CreateEmailIdentity");
    let soon = reaper::policy::format_date(chrono::Utc::now() + chrono::TimeDelta::hours(5));
    let id = rig
        .launch(&[("termination_date", &soon), ("owner", "kim@example.com")])
        .await;

    let r = rig.report(fixture("schedule.json"));
    assert_eq!(ses_sent_to(&rig.moto, "kim@example.com"), 1);
    assert_eq!(r.notices.len(), 1, "{:?}", r.notices);
    assert_eq!(
        (r.notices[0].via.as_str(), r.notices[0].status.as_str()),
        ("email", "sent")
    );
    // The record names the action, the date and when the owner was told.
    let notified = |tags: &[(String, String)]| {
        tags.iter()
            .find(|(k, _)| k == "reaper:announced")
            .and_then(|(_, v)| v.strip_prefix("terminate "))
            .and_then(|v| v.split(" told ").next())
            .map(str::to_string)
    };
    assert_eq!(notified(&rig.state(&id).await.1), Some(soon.clone()));

    // An hourly sweep does not repeat itself.
    let r = rig.report(fixture("schedule.json"));
    assert!(r.notices.is_empty(), "{:?}", r.notices);
    assert_eq!(ses_sent_to(&rig.moto, "kim@example.com"), 1);

    // A changed date re-arms the notice.
    let later = reaper::policy::format_date(chrono::Utc::now() + chrono::TimeDelta::hours(8));
    rig.moto
        .ec2(REGION)
        .create_tags()
        .resources(&id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("termination_date")
                .value(&later)
                .build(),
        )
        .send()
        .await
        .unwrap();
    rig.report(fixture("schedule.json"));
    assert_eq!(ses_sent_to(&rig.moto, "kim@example.com"), 2);
    assert_eq!(notified(&rig.state(&id).await.1), Some(later));
}

/// Issue 18 findings 1 and 5, through the real binary: a date that has passed and was never
/// announced (MAX_LIFETIME's bound, a date moved earlier by hand) is not terminated in the run
/// that first sees it. With neither Slack nor e-mail configured the report's log line is the
/// announcement, so the run records it (`told`) and says when it may act.
#[tokio::test(flavor = "multi_thread")]
async fn a_passed_date_never_announced_is_announced_and_not_terminated() {
    let rig = rig(&[("LIVEMODE", "true"), ("GRACE_PERIOD", "0m")]);
    let due = rig
        .launch(&[
            ("termination_date", "2020-01-01T00:00:00Z"),
            ("owner", "kim"),
        ])
        .await;
    let r = rig.report(fixture("schedule.json"));
    let (state, tags) = rig.state(&due).await;
    assert_eq!(state, InstanceStateName::Running);
    assert!(!r.api_calls.contains_key("TerminateInstances"));
    let line = r.instances.iter().find(|i| i.id == due).unwrap();
    assert_eq!(line.outcome, Some(reaper::report::Outcome::Deferred));
    assert!(
        line.reason
            .contains("not announced to its owner in time; announced in this run, earliest "),
        "{}",
        line.reason
    );
    let record = tag(&tags, "reaper:announced").expect("the announcement is recorded");
    assert!(
        record.starts_with("terminate 2020-01-01T00:00:00Z told "),
        "{record}"
    );
    // Told now, so the next run inside WARN_WINDOW still waits.
    rig.report(fixture("schedule.json"));
    assert_eq!(rig.state(&due).await.0, InstanceStateName::Running);
}

/// Issue 18 finding 2, through the real binary: Slack answering 500 for an owner known only by
/// name records nothing, so the date is never taken as announced and nothing is terminated.
#[tokio::test(flavor = "multi_thread")]
async fn a_notice_slack_refused_is_not_recorded_and_nothing_is_terminated() {
    let sink = WebhookSink::start(WebhookMode::Status(500));
    let url = sink.url();
    let rig = rig(&[
        ("SLACKWEBHOOK", url.as_str()),
        ("LIVEMODE", "true"),
        ("GRACE_PERIOD", "0m"),
    ]);
    let due = rig
        .launch(&[
            ("termination_date", "2020-01-01T00:00:00Z"),
            ("owner", "kim"),
        ])
        .await;
    for _ in 0..2 {
        let r = rig.report(fixture("schedule.json"));
        assert!(
            r.errors.iter().any(|e| e.starts_with("slack: ")),
            "{:?}",
            r.errors
        );
        let (state, tags) = rig.state(&due).await;
        assert_eq!(state, InstanceStateName::Running);
        assert_eq!(tag(&tags, "reaper:announced"), None);
    }
}

/// Issue 18 enrolment, through the real binary: when the stack's creation time cannot be read
/// (here: REAPER_STACK_ID names a stack moto does not have), the run treats every instance as
/// launched before enrolment, so a date announced only two days ago is not acted on, and the
/// report says why.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_enrolment_time_holds_every_action_and_says_why() {
    let stack = "arn:aws:cloudformation:eu-west-1:123456789012:stack/ec2-reaper/0a1b2c3d";
    let rig = rig(&[
        ("LIVEMODE", "true"),
        ("GRACE_PERIOD", "0m"),
        ("REAPER_STACK_ID", stack),
    ]);
    let told = format!(
        "terminate 2020-01-01T00:00:00Z told {}",
        reaper::policy::format_date(chrono::Utc::now() - chrono::TimeDelta::days(2))
    );
    let due = rig
        .launch(&[
            ("termination_date", "2020-01-01T00:00:00Z"),
            ("reaper:announced", &told),
        ])
        .await;
    let r = rig.report(fixture("schedule.json"));
    assert!(
        r.errors.iter().any(|e| e.starts_with(&format!(
            "enrolment: reading when stack {stack} (REAPER_STACK_ID) was created failed: "
        )) && e.contains("ENROLMENT_NOTICE")),
        "{:?}",
        r.errors
    );
    assert_eq!(rig.state(&due).await.0, InstanceStateName::Running);
    assert!(!r.api_calls.contains_key("TerminateInstances"));
}

/// Issue 18: the README's rollout ("Changing settings"), step by step, through the real binary
/// against moto. Dry run: nothing changes. Live with MAX_TERMINATIONS=0 and MAX_STOPS=0: stamps
/// and announcements happen, every termination and stop is held and reported. Caps raised: the
/// stop happens, but the date first announced in the held phase waits its WARN_WINDOW; once that
/// has passed (the record is the reaper's only memory, so the test ages the record it wrote), it
/// is terminated.
#[tokio::test(flavor = "multi_thread")]
async fn the_readmes_rollout_holds_every_action_until_told_and_then_acts() {
    let moto = Moto::start();
    let phase = |extra: &[(&str, &str)]| {
        let runtime = RuntimeApi::start(REGION);
        let mut env = moto.env(REGION);
        env.push(("GRACE_PERIOD".into(), "0m".into()));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let function = Function::spawn(&reaper_binary(), &runtime, &env);
        let v = function
            .invoke(&runtime, fixture("schedule.json"), TIMEOUT, DEADLINE)
            .unwrap_response();
        serde_json::from_value::<RunReport>(v).unwrap()
    };
    let ec2 = moto.ec2(REGION);
    let passed = reaper_e2e::launch(
        &ec2,
        1,
        &[
            ("termination_date", "2020-01-01T00:00:00Z"),
            ("owner", "kim"),
        ],
    )
    .await
    .remove(0);
    let lifetime = reaper_e2e::launch(&ec2, 1, &[("lifetime", "30d"), ("owner", "kim")])
        .await
        .remove(0);
    let untagged = reaper_e2e::launch(&ec2, 1, &[("owner", "bo")])
        .await
        .remove(0);
    let look = |id: String| {
        let ec2 = ec2.clone();
        async move {
            let out = ec2
                .describe_instances()
                .instance_ids(&id)
                .send()
                .await
                .unwrap();
            let i = out.reservations()[0].instances()[0].clone();
            let tags: Vec<(String, String)> = i
                .tags()
                .iter()
                .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                .collect();
            (i.state().unwrap().name().unwrap().clone(), tags)
        }
    };
    let outcome = |r: &RunReport, id: &str| {
        r.instances
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.outcome)
            .map(|o| o.to_string())
    };

    // 1. Dry run: what the live run would do (the never-announced date first announced, the
    // stop), and nothing done.
    let dry = phase(&[]);
    assert_eq!(outcome(&dry, &passed).as_deref(), Some("deferred"));
    assert_eq!(outcome(&dry, &untagged).as_deref(), Some("would"));
    for id in [&passed, &lifetime, &untagged] {
        let (state, tags) = look(id.clone()).await;
        assert_eq!(state, InstanceStateName::Running);
        assert!(
            tag(&tags, "reaper:announced").is_none() && tag(&tags, "reaper:stopped_at").is_none()
        );
    }
    assert_eq!(
        tag(&look(lifetime.clone()).await.1, "termination_date"),
        None
    );

    // 2. Live, both caps 0: stamped and announced; nothing terminated or stopped, and why.
    let held = phase(&[
        ("LIVEMODE", "true"),
        ("MAX_TERMINATIONS", "0"),
        ("MAX_STOPS", "0"),
    ]);
    assert!(!held.api_calls.contains_key("TerminateInstances"));
    assert!(!held.api_calls.contains_key("StopInstances"));
    assert_eq!(outcome(&held, &untagged).as_deref(), Some("circuit-open"));
    assert!(
        held.circuits
            .iter()
            .any(|c| c.message.contains("MAX_STOPS")),
        "{:?}",
        held.circuits
    );
    // The passed date was never announced: the gate defers it before the cap is asked.
    assert_eq!(outcome(&held, &passed).as_deref(), Some("deferred"));
    let (_, tags) = look(passed.clone()).await;
    let told = tag(&tags, "reaper:announced")
        .expect("announced while the cap holds")
        .to_string();
    assert!(
        told.starts_with("terminate 2020-01-01T00:00:00Z told "),
        "{told}"
    );
    let (_, tags) = look(lifetime.clone()).await;
    assert!(
        tag(&tags, "termination_date").is_some(),
        "stamped while the caps hold"
    );

    // 3. Caps raised: the stop happens; the date announced an instant ago still waits.
    let raised = phase(&[("LIVEMODE", "true")]);
    assert_eq!(outcome(&raised, &untagged).as_deref(), Some("done"));
    assert_eq!(look(untagged.clone()).await.0, InstanceStateName::Stopped);
    assert_eq!(outcome(&raised, &passed).as_deref(), Some("deferred"));
    assert_eq!(look(passed.clone()).await.0, InstanceStateName::Running);
    let line = raised.instances.iter().find(|i| i.id == passed).unwrap();
    assert!(
        line.reason.contains("the notice period runs until"),
        "{}",
        line.reason
    );

    // 4. A WARN_WINDOW (1 day) after the announcement: terminated.
    let when = told.rsplit(' ').next().unwrap();
    let aged = reaper::policy::format_date(
        chrono::DateTime::parse_from_rfc3339(when).unwrap().to_utc() - chrono::TimeDelta::days(1),
    );
    ec2.create_tags()
        .resources(&passed)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("reaper:announced")
                .value(format!("terminate 2020-01-01T00:00:00Z told {aged}"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let after = phase(&[("LIVEMODE", "true")]);
    assert_eq!(outcome(&after, &passed).as_deref(), Some("done"));
    assert_ne!(look(passed.clone()).await.0, InstanceStateName::Running);
}

//! One Lambda invocation: event -> request -> sweep -> report -> sinks. Generic over the ports, so
//! the order of delivery and the failure of each sink are unit-tested with fakes.

use crate::adapters::slack::render;
use crate::config::Config;
use crate::event::{EventError, EventPayload};
use crate::ports::{Archive, Chat, Deadline, Fleet};
use crate::report::{RunReport, SlackStatus};
use crate::run::{sweep, RunContext, RunRequest};
use chrono::Utc;

/// The Lambda's return value stays far below the 6 MB response limit; S3 keeps the whole report.
pub const MAX_RESPONSE_BYTES: usize = 1_000_000;
/// CloudWatch Logs takes events up to 256 KB; the report's log line stays below that.
pub const MAX_LOG_LINE_BYTES: usize = 200_000;

/// Everything built once per Lambda instance (clients are reused across invocations).
pub struct App<F, A, C> {
    pub fleet: F,
    pub archive: Option<A>,
    pub chat: Option<C>,
    pub config: Config,
    pub region: String,
}

/// Per-invocation facts from the runtime.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub run_id: String,
    pub account: String,
    pub deadline: Deadline,
}

/// The account id in a Lambda function ARN (`arn:aws:lambda:<region>:<account>:function:<name>`).
pub fn account_from_arn(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(4)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
}

/// Why an invocation was refused, with the `errorType` a person can alarm on.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Event(#[from] EventError),
}

impl Refusal {
    pub fn error_type(&self) -> &'static str {
        match self {
            Refusal::Event(err) => err.error_type(),
        }
    }
}

impl From<Refusal> for lambda_runtime::Diagnostic {
    fn from(refusal: Refusal) -> Self {
        lambda_runtime::Diagnostic {
            error_type: refusal.error_type().into(),
            error_message: refusal.to_string(),
        }
    }
}

/// Handles one event end to end. Errors only for a malformed event; everything else is in the
/// report.
pub async fn handle<F: Fleet, A: Archive, C: Chat>(
    app: &App<F, A, C>,
    event: &EventPayload,
    invocation: Invocation,
) -> Result<RunReport, Refusal> {
    let trigger = event.trigger()?;
    let req = RunRequest::from_trigger(
        &trigger,
        app.config.livemode,
        Utc::now(),
        invocation.deadline,
    )?;
    let ctx = RunContext {
        run_id: invocation.run_id,
        account: invocation.account,
        region: app.region.clone(),
    };
    tracing::info!(
        trigger = %req.trigger,
        mode = %req.mode,
        forecast = req.forecast,
        "run started"
    );
    let mut report = sweep(&app.fleet, &app.config, ctx, &req).await;
    tracing::info!(
        judged = report.instances_judged,
        errors = report.errors.len(),
        duration_ms = report.duration_ms(),
        "run finished"
    );
    deliver(app, &mut report, invocation.deadline, &mut Stdout).await;
    Ok(report.trimmed(MAX_RESPONSE_BYTES))
}

/// Lines to standard output through `print!`, which the test harness captures.
struct Stdout;

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        print!("{}", String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

/// The report's log line and metrics line first (nothing slow can lose them), then Slack (linking
/// to the S3 copy about to be written), then S3 (so the archived copy records Slack's outcome),
/// then one line saying where the report went. A sink's failure is recorded, never fatal; a
/// failed S3 write clears the address Slack was given and says so in `errors`.
pub async fn deliver<F, A: Archive, C: Chat>(
    app: &App<F, A, C>,
    report: &mut RunReport,
    deadline: Deadline,
    out: &mut impl std::io::Write,
) {
    // A huge report's log line is shortened like the return value; counts stay exact.
    let _ = writeln!(out, "{}", report.trimmed(MAX_LOG_LINE_BYTES).log_line());
    let _ = writeln!(out, "{}", report.emf_line());

    if let Some(archive) = &app.archive {
        report.delivery.s3 = Some(archive.address(report));
    }
    report.delivery.slack = Some(match (&app.chat, render(report)) {
        (None, _) => SlackStatus::NotConfigured,
        (Some(_), None) => {
            tracing::info!("slack: nothing to report, no message");
            SlackStatus::NothingToReport
        }
        (Some(chat), Some(message)) => match chat.post(&message, deadline).await {
            Ok(attempts) => {
                tracing::info!(attempts, "slack message sent");
                SlackStatus::Sent
            }
            Err(why) => {
                tracing::warn!(error = %why, "slack message not sent");
                report.errors.push(format!("slack: {why}"));
                SlackStatus::Failed(why)
            }
        },
    });
    if let Some(archive) = &app.archive {
        if let Err(why) = archive.put(report, deadline).await {
            tracing::error!(error = %why, "report not archived");
            report.delivery.s3 = None;
            report.errors.push(format!("s3: {why}"));
        }
    }
    let _ = writeln!(
        out,
        "{}",
        serde_json::json!({
            "level": "INFO",
            "message": "report delivered",
            "run_id": report.run_id,
            "delivery": report.delivery,
            "errors": report.errors.len(),
        })
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryFleet;
    use crate::policy::{Instance, InstanceState};
    use chrono::TimeDelta;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};

    /// Records the order in which sinks are called.
    type Calls = Arc<Mutex<Vec<String>>>;

    struct FakeArchive {
        calls: Calls,
        fail: bool,
    }

    impl Archive for FakeArchive {
        fn address(&self, report: &RunReport) -> String {
            format!("s3://bucket/{}.json", report.run_id)
        }
        async fn put(&self, report: &RunReport, _deadline: Deadline) -> Result<(), String> {
            self.calls.lock().unwrap().push(format!(
                "s3 put (slack: {:?}, address: {:?})",
                report.delivery.slack, report.delivery.s3
            ));
            if self.fail {
                Err("AccessDenied: no".into())
            } else {
                Ok(())
            }
        }
    }

    struct FakeChat {
        calls: Calls,
        fail: bool,
    }

    impl Chat for FakeChat {
        async fn post(&self, message: &Value, _deadline: Deadline) -> Result<u32, String> {
            let text = message["text"].as_str().unwrap_or_default();
            self.calls.lock().unwrap().push(format!(
                "slack post (links s3: {})",
                message.to_string().contains("s3://bucket/")
            ));
            if self.fail {
                Err(format!("HTTP 500: {}", &text[..4]))
            } else {
                Ok(1)
            }
        }
    }

    fn app(
        slack_fails: bool,
        s3_fails: bool,
        calls: &Calls,
    ) -> App<MemoryFleet, FakeArchive, FakeChat> {
        let untagged = Instance {
            id: "i-0123456789abcdef0".into(),
            state: InstanceState::Running,
            launch_time: Utc::now() - TimeDelta::hours(3),
            root_attach_time: None,
            tags: Default::default(),
        };
        App {
            fleet: MemoryFleet::new([untagged]),
            archive: Some(FakeArchive {
                calls: calls.clone(),
                fail: s3_fails,
            }),
            chat: Some(FakeChat {
                calls: calls.clone(),
                fail: slack_fails,
            }),
            config: Config::default(),
            region: "eu-west-1".into(),
        }
    }

    fn invocation() -> Invocation {
        Invocation {
            run_id: "run-1".into(),
            account: "123456789012".into(),
            deadline: Deadline::NONE,
        }
    }

    async fn run(app: &App<MemoryFleet, FakeArchive, FakeChat>) -> (RunReport, Vec<String>) {
        let report = handle(app, &EventPayload(Ok(serde_json::json!({}))), invocation())
            .await
            .unwrap();
        let mut out = Vec::new();
        // The report's own lines went to stdout; run `deliver` again only to see its writes.
        let mut again = report.clone();
        deliver(app, &mut again, Deadline::NONE, &mut out).await;
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        (report, lines)
    }

    #[test]
    fn account_comes_from_the_function_arn() {
        assert_eq!(
            account_from_arn("arn:aws:lambda:eu-west-1:123456789012:function:ec2-reaper")
                .as_deref(),
            Some("123456789012")
        );
        assert_eq!(account_from_arn("nonsense"), None);
    }

    #[tokio::test]
    async fn log_and_metrics_first_then_slack_linking_s3_then_s3_recording_slack() {
        let calls = Calls::default();
        let (report, lines) = run(&app(false, false, &calls)).await;
        let calls = calls.lock().unwrap().clone();
        assert_eq!(
            calls[..2],
            [
                "slack post (links s3: true)".to_string(),
                "s3 put (slack: Some(Sent), address: Some(\"s3://bucket/run-1.json\"))".to_string(),
            ]
        );
        assert_eq!(report.delivery.slack, Some(SlackStatus::Sent));
        assert_eq!(
            report.delivery.s3.as_deref(),
            Some("s3://bucket/run-1.json")
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(
            lines[0].contains("\"message\":\"run report\""),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("CloudWatchMetrics"), "{}", lines[1]);
        assert!(lines[2].contains("report delivered"), "{}", lines[2]);
    }

    #[tokio::test]
    async fn a_failed_slack_is_recorded_and_the_archive_still_written() {
        let calls = Calls::default();
        let (report, _) = run(&app(true, false, &calls)).await;
        assert_eq!(
            report.delivery.slack,
            Some(SlackStatus::Failed("HTTP 500: DRY ".into()))
        );
        assert_eq!(report.errors, ["slack: HTTP 500: DRY "]);
        assert!(calls.lock().unwrap()[1].starts_with("s3 put (slack: Some(Failed("));
    }

    #[tokio::test]
    async fn a_failed_archive_clears_the_address_and_says_why() {
        let calls = Calls::default();
        let (report, _) = run(&app(false, true, &calls)).await;
        assert_eq!(report.delivery.s3, None);
        assert_eq!(report.errors, ["s3: AccessDenied: no"]);
        assert_eq!(report.delivery.slack, Some(SlackStatus::Sent));
    }

    #[tokio::test]
    async fn no_chat_no_archive_and_an_empty_run_post_nothing() {
        let mut app = app(false, false, &Calls::default());
        app.chat = None;
        app.archive = None;
        let (report, _) = run(&app).await;
        assert_eq!(report.delivery.slack, Some(SlackStatus::NotConfigured));
        assert_eq!(report.delivery.s3, None);

        let calls = Calls::default();
        let mut empty = self::app(false, false, &calls);
        empty.fleet = MemoryFleet::new([]);
        let (report, _) = run(&empty).await;
        assert_eq!(report.delivery.slack, Some(SlackStatus::NothingToReport));
        assert!(calls
            .lock()
            .unwrap()
            .iter()
            .all(|c| c.starts_with("s3 put")));
    }

    #[tokio::test]
    async fn a_refused_event_has_a_name_to_alarm_on() {
        let app = app(false, false, &Calls::default());
        let err = handle(
            &app,
            &EventPayload(Ok(serde_json::json!({"dryrun": true}))),
            invocation(),
        )
        .await
        .unwrap_err();
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "InvalidEvent");
        assert!(diagnostic.error_message.contains("dryrun"));
        // A duplicate key never reaches the sweep, whichever copy would win.
        let payload: EventPayload =
            serde_json::from_str(r#"{"dry_run": true, "dry_run": false}"#).unwrap();
        let err = handle(&app, &payload, invocation()).await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidEvent");
        assert_eq!(app.fleet.calls("DescribeInstances"), 0);
    }
}

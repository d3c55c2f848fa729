//! One Lambda invocation: event -> request -> `app::sweep` -> `app::deliver`. Generic over the
//! ports, so the order of delivery and the failure of each sink are unit-tested with fakes here.

pub use crate::app::App;
pub use crate::app::MAX_LOG_LINE_BYTES;
use crate::app::{deliver, sweep_priced};
use crate::event::{EventError, EventPayload};
use crate::ports::{Archive, Chat, Deadline, Fleet, Mail};
use crate::report::RunReport;
use crate::run::{RunContext, RunRequest};
use chrono::Utc;

/// The Lambda's return value stays far below the 6 MB response limit; S3 keeps the whole report.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1_000_000;

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
    pub(crate) fn error_type(&self) -> &'static str {
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
pub async fn handle<F: Fleet, A: Archive, C: Chat, M: Mail>(
    app: &App<F, A, C, M>,
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
    // Instances that predate the reaper's enrolment get ENROLMENT_NOTICE; when that time
    // cannot be read, every instance is taken for one (nothing is lost, the report says why).
    let (enrolled_at, enrolment_error) = match app
        .enrolment
        .enrolled_at(app.config.notices.enrolled_at, invocation.deadline)
        .await
    {
        Ok(at) => (at, None),
        Err(why) => (Some(req.now), Some(why)),
    };
    let mut config = app.config.clone();
    config.notices.enrolled_at = enrolled_at;
    let mut report = sweep_priced(&app.fleet, app.prices.as_deref(), &config, ctx, &req).await;
    report.errors.extend(enrolment_error);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryFleet;
    use crate::config::Config;
    use crate::policy::{Instance, InstanceState};
    use crate::ports::{ApiError, ArchiveError, ChatError, ErrorKind, MailError, PostFailure};
    use crate::report::SlackStatus;
    use chrono::TimeDelta;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};

    /// Records the order in which sinks are called.
    type Calls = Arc<Mutex<Vec<String>>>;

    struct FakeArchive {
        calls: Calls,
        /// Whether the n-th put fails (the last entry for every later put).
        fail: Vec<bool>,
        puts: std::sync::atomic::AtomicUsize,
        /// The dry run's own record (not a report), kept apart from the report copies.
        records: Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
    }

    impl Archive for FakeArchive {
        fn address(&self, key: &str) -> String {
            let run_id = key.rsplit('/').next().unwrap_or_default();
            format!("s3://bucket/{run_id}")
        }
        async fn put(
            &self,
            key: &str,
            body: Vec<u8>,
            _deadline: Deadline,
        ) -> Result<(), ArchiveError> {
            if key.ends_with("/last-dry-run.json") {
                self.records.lock().unwrap().insert(key.into(), body);
                return Ok(());
            }
            let report: RunReport = serde_json::from_slice(&body).unwrap();
            self.calls.lock().unwrap().push(format!(
                "s3 put (slack: {:?}, address: {:?})",
                report.delivery.slack, report.delivery.s3
            ));
            let n = self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.fail.get(n).or(self.fail.last()) == Some(&true) {
                Err(ArchiveError::Refused(ApiError::new(
                    "AccessDenied",
                    "no",
                    ErrorKind::AccountWide,
                )))
            } else {
                Ok(())
            }
        }
        async fn put_records(&self, _: &str, _: Vec<u8>, _: Deadline) -> Result<(), ArchiveError> {
            Ok(())
        }
        async fn get(
            &self,
            key: &str,
            _deadline: Deadline,
        ) -> Result<Option<Vec<u8>>, ArchiveError> {
            Ok(self.records.lock().unwrap().get(key).cloned())
        }
    }

    struct FakeChat {
        calls: Calls,
        fail: bool,
        /// Every message posted, as JSON text.
        posted: Calls,
    }

    impl Chat for FakeChat {
        async fn post(&self, message: &Value, _deadline: Deadline) -> Result<u32, ChatError> {
            let text = message["text"].as_str().unwrap_or_default();
            self.posted.lock().unwrap().push(message.to_string());
            self.calls.lock().unwrap().push(format!(
                "slack post (links s3: {})",
                message.to_string().contains("s3://bucket/")
            ));
            if self.fail {
                Err(ChatError::Failed {
                    failure: PostFailure::Status {
                        code: 500,
                        reason: String::new(),
                        body: text[..4].to_string(),
                    },
                    attempts: 1,
                })
            } else {
                Ok(1)
            }
        }
    }

    /// (to, subject, text) of each e-mail sent.
    type Sent = Arc<Mutex<Vec<(String, String, String)>>>;

    struct FakeMail {
        sent: Sent,
    }

    impl Mail for FakeMail {
        async fn send(
            &self,
            to: &str,
            email: &crate::render::notice::Email,
            _deadline: Deadline,
        ) -> Result<(), MailError> {
            self.sent.lock().unwrap().push((
                to.to_string(),
                email.subject.clone(),
                email.text.clone(),
            ));
            Ok(())
        }
    }

    type TestApp = App<MemoryFleet, FakeArchive, FakeChat, FakeMail>;

    fn app(slack_fails: bool, s3_fails: bool, calls: &Calls) -> TestApp {
        app_with(slack_fails, vec![s3_fails], calls)
    }

    fn app_with(slack_fails: bool, s3_fails: Vec<bool>, calls: &Calls) -> TestApp {
        let untagged = Instance {
            id: "i-0123456789abcdef0".into(),
            state: InstanceState::Running,
            launch_time: Utc::now() - TimeDelta::hours(3),
            root_attach_time: None,
            billing: None,
            tags: Default::default(),
        };
        App {
            fleet: MemoryFleet::new([untagged]),
            archive: Some(FakeArchive {
                calls: calls.clone(),
                fail: s3_fails,
                puts: Default::default(),
                records: Default::default(),
            }),
            chat: Some(FakeChat {
                calls: calls.clone(),
                fail: slack_fails,
                posted: Calls::default(),
            }),
            mailer: None,
            config: Config::default(),
            region: "eu-west-1".into(),
            enrolment: crate::app::Enrolment::none(),
            prices: None,
            keep_links: None,
        }
    }

    fn invocation() -> Invocation {
        Invocation {
            run_id: "run-1".into(),
            account: "123456789012".into(),
            deadline: Deadline::NONE,
        }
    }

    async fn run(app: &TestApp) -> (RunReport, Vec<String>) {
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

    /// Announce once for dry runs (issue 18): the same findings are posted once; a post that
    /// failed is not remembered, so the next run posts them again.
    #[tokio::test]
    async fn a_dry_run_posts_the_same_findings_once_unless_the_post_failed() {
        use chrono::Timelike;
        let calls = Calls::default();
        let mut app = app(true, false, &calls);
        let posts = || {
            calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.starts_with("slack post"))
                .count()
        };
        let payload = EventPayload(Ok(serde_json::json!({})));
        // The digest hour would post anyway: move it away from now.
        app.config.notices.digest_hour = u8::try_from((Utc::now().hour() + 12) % 24).unwrap();
        let failed = handle(&app, &payload, invocation()).await.unwrap();
        assert_eq!(failed.mode, crate::report::Mode::DryRun);
        assert!(matches!(
            failed.delivery.slack,
            Some(SlackStatus::Failed(_))
        ));
        let records = |app: &TestApp| app.archive.as_ref().unwrap().records.lock().unwrap().len();
        assert_eq!(records(&app), 0, "a failed post is not remembered");
        app.chat.as_mut().unwrap().fail = false;
        let sent = handle(&app, &payload, invocation()).await.unwrap();
        assert_eq!(sent.delivery.slack, Some(SlackStatus::Sent));
        assert_eq!((posts(), records(&app)), (2, 1));
        let same = handle(&app, &payload, invocation()).await.unwrap();
        assert_eq!(same.delivery.slack, Some(SlackStatus::NothingToReport));
        assert_eq!(posts(), 2);
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
    async fn log_and_metrics_first_then_s3_then_slack_linking_it_then_s3_recording_slack() {
        let calls = Calls::default();
        let (report, lines) = run(&app(false, false, &calls)).await;
        let calls = calls.lock().unwrap().clone();
        assert_eq!(
            calls[..3],
            [
                "s3 put (slack: None, address: Some(\"s3://bucket/run-1.json\"))".to_string(),
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
        assert!(calls.lock().unwrap()[2].starts_with("s3 put (slack: Some(Failed("));
    }

    /// Issue 10 finding 5: Slack linked the S3 copy, then the S3 write failed and the link
    /// pointed at nothing. Now Slack links only a copy that was written.
    #[tokio::test]
    async fn a_failed_archive_is_never_linked_and_says_why() {
        let calls = Calls::default();
        let (report, _) = run(&app(false, true, &calls)).await;
        assert_eq!(report.delivery.s3, None);
        assert_eq!(report.errors, ["s3: AccessDenied: no"]);
        assert_eq!(report.delivery.slack, Some(SlackStatus::Sent));
        let calls = calls.lock().unwrap().clone();
        assert_eq!(
            calls[..2],
            [
                "s3 put (slack: None, address: Some(\"s3://bucket/run-1.json\"))".to_string(),
                "slack post (links s3: false)".to_string(),
            ],
            "a failed first copy is not linked nor written again"
        );
    }

    #[tokio::test]
    async fn a_failed_rewrite_keeps_the_link_to_the_first_copy_and_says_so() {
        let calls = Calls::default();
        let (report, _) = run(&app_with(false, vec![false, true], &calls)).await;
        assert_eq!(
            report.delivery.s3.as_deref(),
            Some("s3://bucket/run-1.json")
        );
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        assert!(
            report.errors[0]
                .starts_with("s3: the copy at s3://bucket/run-1.json was written before Slack"),
            "{:?}",
            report.errors
        );
        assert_eq!(calls.lock().unwrap()[1], "slack post (links s3: true)");
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
        // Nothing happened after the first copy: it is not written again (one put per
        // `deliver`; `run` delivers twice).
        let put =
            "s3 put (slack: Some(NothingToReport), address: Some(\"s3://bucket/run-1.json\"))";
        assert_eq!(calls.lock().unwrap()[..], [put, put]);
    }

    #[tokio::test]
    async fn an_owner_is_told_once_per_date_by_mail_and_the_notice_is_marked() {
        let now = Utc::now();
        let soon = crate::policy::format_date(now + TimeDelta::hours(5));
        let expiring = |id: &str, owner: &str| Instance {
            id: id.into(),
            state: InstanceState::Running,
            launch_time: now - TimeDelta::days(3),
            root_attach_time: None,
            billing: None,
            tags: [
                ("termination_date".to_string(), soon.clone()),
                ("owner".to_string(), owner.to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let sent: Sent = Arc::default();
        let mut app = app(false, false, &Calls::default());
        app.config.livemode = true;
        app.fleet = MemoryFleet::new([
            expiring("i-0000000000000000a", "ana@example.com"),
            expiring("i-0000000000000000b", "ana@example.com"),
            expiring("i-0000000000000000c", "U024BE7LH"),
        ]);
        app.mailer = Some(FakeMail { sent: sent.clone() });
        let report = handle(&app, &EventPayload(Ok(serde_json::json!({}))), invocation())
            .await
            .unwrap();
        assert_eq!(
            sent.lock().unwrap().len(),
            1,
            "one e-mail per owner per run"
        );
        assert_eq!(sent.lock().unwrap()[0].0, "ana@example.com");
        let vias: Vec<(&str, &str)> = report
            .notices
            .iter()
            .map(|n| (n.via.as_str(), n.status.as_str()))
            .collect();
        assert_eq!(vias, [("slack-mention", "sent"), ("email", "sent")]);
        for id in ["i-0000000000000000a", "i-0000000000000000c"] {
            let record = &app.fleet.get(id).unwrap().tags[&"reaper:announced".to_owned()];
            assert!(
                record.starts_with(&format!("terminate {soon} told ")),
                "{id}: {record}"
            );
        }
        // The next run tells nobody again: the notice for this date is recorded.
        let again = handle(&app, &EventPayload(Ok(serde_json::json!({}))), invocation())
            .await
            .unwrap();
        assert!(again.notices.is_empty(), "{:?}", again.notices);
        assert_eq!(sent.lock().unwrap().len(), 1);
        // A changed date re-arms the notice.
        let later = crate::policy::format_date(now + TimeDelta::hours(6));
        app.fleet = MemoryFleet::new([Instance {
            tags: [
                ("termination_date".to_string(), later.clone()),
                ("owner".to_string(), "ana@example.com".to_string()),
                (
                    "reaper:announced".to_string(),
                    format!("terminate {soon} told {}", crate::policy::format_date(now)),
                ),
            ]
            .into_iter()
            .collect(),
            ..expiring("i-0000000000000000a", "ana@example.com")
        }]);
        handle(&app, &EventPayload(Ok(serde_json::json!({}))), invocation())
            .await
            .unwrap();
        assert_eq!(sent.lock().unwrap().len(), 2);
        let record =
            &app.fleet.get("i-0000000000000000a").unwrap().tags[&"reaper:announced".to_owned()];
        assert!(
            record.starts_with(&format!("terminate {later} told ")),
            "{record}"
        );
    }

    /// 130 instances whose termination_date enters WARN_WINDOW, all with one owner tag value.
    fn expiring_fleet(owner: &str) -> (MemoryFleet, Vec<String>) {
        let soon = crate::policy::format_date(Utc::now() + TimeDelta::hours(5));
        let ids: Vec<String> = (0..130).map(|k| format!("i-{k:017x}")).collect();
        let fleet = MemoryFleet::new(ids.iter().map(|id| {
            Instance {
                id: id.clone(),
                state: InstanceState::Running,
                launch_time: Utc::now() - TimeDelta::days(3),
                root_attach_time: None,
                billing: None,
                tags: [
                    ("termination_date".to_string(), soon.clone()),
                    ("owner".to_string(), owner.to_string()),
                ]
                .into_iter()
                .collect(),
            }
        }));
        (fleet, ids)
    }

    fn notified(app: &TestApp, id: &str) -> bool {
        app.fleet
            .get(id)
            .unwrap()
            .tags
            .contains_key("reaper:announced")
    }

    /// Issue 18 finding 6: the announcement record was written for every expiring instance once the
    /// channel's message was sent, also for those it folded into "…and N more", so their owners
    /// were never told of the date and never would be. Now only the instances the message names
    /// are marked; the others are told (and marked) by a later run's message.
    #[tokio::test]
    async fn only_instances_the_channel_message_names_are_marked_notified() {
        let mut app = app(false, false, &Calls::default());
        app.config.livemode = true;
        let (fleet, ids) = expiring_fleet("alice");
        app.fleet = fleet;
        let report = handle(&app, &EventPayload(Ok(serde_json::json!({}))), invocation())
            .await
            .unwrap();
        assert_eq!(report.delivery.slack, Some(SlackStatus::Sent));
        let posted = app.chat.as_ref().unwrap().posted.lock().unwrap()[0].clone();
        let marked = ids.iter().filter(|id| notified(&app, id)).count();
        assert!(marked > 0 && marked < ids.len(), "{marked} marked");
        for id in &ids {
            assert_eq!(notified(&app, id), posted.contains(id.as_str()), "{id}");
        }
    }

    /// The same for an owner's e-mail: it lists 100 instances and counts the rest.
    #[tokio::test]
    async fn only_instances_the_owner_email_lists_are_marked_notified() {
        let sent: Sent = Arc::default();
        let mut app = app(false, false, &Calls::default());
        app.config.livemode = true;
        app.chat = None;
        app.mailer = Some(FakeMail { sent: sent.clone() });
        let (fleet, ids) = expiring_fleet("ana@example.com");
        app.fleet = fleet;
        handle(&app, &EventPayload(Ok(serde_json::json!({}))), invocation())
            .await
            .unwrap();
        let text = sent.lock().unwrap()[0].2.clone();
        assert!(text.contains("…and 30 more instances"), "{text}");
        let marked = ids.iter().filter(|id| notified(&app, id)).count();
        assert_eq!(marked, crate::render::notice::MAX_EMAIL_ITEMS);
        for id in &ids {
            assert_eq!(notified(&app, id), text.contains(id.as_str()), "{id}");
        }
    }

    /// Issue 19 item 8: a notice for a date set by MAX_LIFETIME advised `extend --by 3d`, which
    /// would be refused. It now says the date is the organisation's maximum and what the owner
    /// can do instead.
    #[tokio::test]
    async fn a_max_lifetime_notice_never_advises_an_extension() {
        let now = Utc::now();
        let sent: Sent = Arc::default();
        let mut app = app(false, false, &Calls::default());
        app.config.livemode = true;
        app.config.rules.max_lifetime = Some(TimeDelta::days(3));
        app.mailer = Some(FakeMail { sent: sent.clone() });
        app.fleet = MemoryFleet::new([Instance {
            id: "i-0000000000000000a".into(),
            state: InstanceState::Running,
            // First launch + 3 days is 5 hours away: inside WARN_WINDOW (1d).
            launch_time: now - TimeDelta::days(3) + TimeDelta::hours(5),
            root_attach_time: None,
            billing: None,
            tags: [
                (
                    "termination_date".to_string(),
                    "2999-01-01T00:00:00Z".to_string(),
                ),
                ("owner".to_string(), "ana@example.com".to_string()),
            ]
            .into_iter()
            .collect(),
        }]);
        let report = handle(&app, &EventPayload(Ok(serde_json::json!({}))), invocation())
            .await
            .unwrap();
        assert_eq!(report.notices.len(), 1, "{:?}", report.notices);
        let text = sent.lock().unwrap()[0].2.clone();
        assert!(!text.contains("reaperctl extend"), "{text}");
        assert!(!text.contains("setting a later date"), "{text}");
        assert!(!text.contains("create-tags"), "{text}");
        assert!(
            text.contains("the organisation's maximum lifetime"),
            "{text}"
        );
        assert!(text.contains("cannot be extended"), "{text}");
        assert!(text.contains("move it to a new instance"), "{text}");
        assert!(
            text.contains("ask the reaper's administrators for an exception"),
            "{text}"
        );
    }

    proptest::proptest! {
        /// SPEC §7: terminations happen only in sweeps. Whatever the instance's tags, state and
        /// age, and whatever state the event reports, a launch event never terminates.
        #[test]
        fn no_state_change_event_can_terminate(
            date in proptest::sample::select(vec![
                None, Some("2020-01-01T00:00:00Z"), Some("indefinite"), Some("2999-01-01T00:00:00Z"),
                Some("2030-01-01"), Some(""),
            ]),
            lifetime in proptest::sample::select(vec![None, Some("0m"), Some("1m"), Some("7d"), Some("x")]),
            age_minutes in 0i64..100_000,
            state in proptest::sample::select(InstanceState::JUDGED.to_vec()),
            reported in proptest::sample::select(vec!["pending", "running", "stopping", "stopped"]),
            managed in proptest::bool::ANY,
        ) {
            let id = "i-0123456789abcdef0";
            let mut tags = crate::policy::Tags::new();
            if let Some(d) = date { tags.insert("termination_date".to_string(), d.to_string()); }
            if let Some(l) = lifetime { tags.insert("lifetime".to_string(), l.to_string()); }
            if managed { tags.insert("aws:autoscaling:groupName".to_string(), "web".to_string()); }
            let mut app = app(false, false, &Calls::default());
            app.config.livemode = true;
            app.config.rules.grace_period = TimeDelta::minutes(15);
            app.fleet = MemoryFleet::new([Instance {
                id: id.into(),
                state,
                launch_time: Utc::now() - TimeDelta::minutes(age_minutes),
                root_attach_time: None, billing: None,
                tags,
            }]);
            let event = serde_json::json!({
                "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602",
                "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
                "account": "123456789012", "time": "2030-01-01T00:00:00Z", "region": "eu-west-1",
                "resources": [format!("arn:aws:ec2:eu-west-1:123456789012:instance/{id}")],
                "detail": {"instance-id": id, "state": reported},
            });
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let report = runtime
                .block_on(handle(&app, &EventPayload(Ok(event)), invocation()))
                .unwrap();
            proptest::prop_assert_eq!(app.fleet.calls("TerminateInstances"), 0);
            proptest::prop_assert!(app.fleet.get(id).unwrap().state != InstanceState::ShuttingDown);
            proptest::prop_assert_eq!(report.outcome_count(crate::report::Outcome::Done)
                + report.outcome_count(crate::report::Outcome::Deferred)
                + report.outcome_count(crate::report::Outcome::Would)
                + report.outcome_count(crate::report::Outcome::CircuitOpen),
                report.counts.outcomes.values().sum::<u64>());
        }
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

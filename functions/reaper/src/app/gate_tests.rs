//! The notice gate through the whole use case (issue 18): sweep -> report -> delivery ->
//! `reaper:announced`, run after run at chosen times, with a chat and a mailer that fail when
//! told to. The same flows run against moto through the real SDK in `tests/tests/sweep.rs`.

use super::deliver::{deliver, App};
use super::sweep::sweep;
use crate::adapters::memory::MemoryFleet;
use crate::config::Config;
use crate::policy::{format_date, judge, Cap, Instance, InstanceState};
use crate::ports::{
    ApiError, Archive, ArchiveError, Chat, ChatError, Deadline, Email, ErrorKind, Mail, MailError,
    PostFailure,
};
use crate::report::{Outcome, RunReport};
use crate::run::{RunContext, RunRequest};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const ANNOUNCED: &str = "reaper:announced";

/// What reached someone, and when: (run time, text of the message or e-mail).
type Delivered = Arc<Mutex<Vec<(DateTime<Utc>, String)>>>;

#[derive(Default, Clone)]
struct Switches {
    chat_fails: Arc<AtomicBool>,
    mail_fails: Arc<AtomicBool>,
    /// The time of the run under way, for the record of what was delivered.
    now: Arc<Mutex<Option<DateTime<Utc>>>>,
    delivered: Delivered,
    posts: Arc<Mutex<u32>>,
}

impl Switches {
    fn note(&self, text: String) {
        let now = self.now.lock().unwrap().unwrap();
        self.delivered.lock().unwrap().push((now, text));
    }
}

struct TestChat(Switches);

impl Chat for TestChat {
    async fn post(&self, message: &Value, _deadline: Deadline) -> Result<u32, ChatError> {
        *self.0.posts.lock().unwrap() += 1;
        if self.0.chat_fails.load(Ordering::SeqCst) {
            return Err(ChatError::Failed {
                failure: PostFailure::Status {
                    code: 500,
                    reason: "Internal Server Error".into(),
                    body: String::new(),
                },
                attempts: 1,
            });
        }
        self.0.note(message.to_string());
        Ok(1)
    }
}

struct TestMail(Switches);

impl Mail for TestMail {
    async fn send(&self, to: &str, email: &Email, _deadline: Deadline) -> Result<(), MailError> {
        if self.0.mail_fails.load(Ordering::SeqCst) {
            return Err(MailError::Refused(ApiError::new(
                "MessageRejected",
                "Email address is not verified.",
                ErrorKind::Instance,
            )));
        }
        self.0.note(format!("to {to}: {}", email.text));
        Ok(())
    }
}

/// The archive as far as the run reads it back: the dry run's record of its findings; report
/// copies are accepted and dropped.
#[derive(Default)]
struct TestArchive(Mutex<std::collections::BTreeMap<String, Vec<u8>>>);

impl Archive for TestArchive {
    fn address(&self, key: &str) -> String {
        key.into()
    }

    async fn put(&self, key: &str, body: Vec<u8>, _: Deadline) -> Result<(), ArchiveError> {
        if key.ends_with("/last-dry-run.json") {
            self.0.lock().unwrap().insert(key.into(), body);
        }
        Ok(())
    }

    async fn put_records(&self, _: &str, _: Vec<u8>, _: Deadline) -> Result<(), ArchiveError> {
        Ok(())
    }

    async fn get(&self, key: &str, _: Deadline) -> Result<Option<Vec<u8>>, ArchiveError> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
}

type TestApp = App<MemoryFleet, TestArchive, TestChat, TestMail>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 3, 4, 10, 0, 0).unwrap()
}

fn old(id: &str, tags: &[(&str, &str)]) -> Instance {
    Instance {
        id: id.into(),
        state: InstanceState::Running,
        launch_time: t0() - TimeDelta::days(60),
        root_attach_time: None,
        billing: None,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn rig(fleet: MemoryFleet, config: Config, mail: bool) -> (TestApp, Switches) {
    let sw = Switches::default();
    let app = App {
        fleet,
        archive: None,
        chat: Some(TestChat(sw.clone())),
        mailer: mail.then(|| TestMail(sw.clone())),
        config,
        region: "eu-west-1".into(),
        enrolment: crate::app::Enrolment::none(),
        prices: None,
        keep_links: None,
    };
    (app, sw)
}

/// One scheduled live run at `now`, delivered like the Lambda delivers it.
async fn run_at(app: &TestApp, sw: &Switches, now: DateTime<Utc>) -> RunReport {
    run_mode(app, sw, now, true).await
}

async fn run_mode(app: &TestApp, sw: &Switches, now: DateTime<Utc>, live: bool) -> RunReport {
    *sw.now.lock().unwrap() = Some(now);
    let ctx = RunContext {
        run_id: format!("run-{}", now.timestamp()),
        account: "123456789012".into(),
        region: "eu-west-1".into(),
    };
    let req = RunRequest::scheduled(live, now, Deadline::NONE);
    let mut report = sweep(&app.fleet, &app.config, ctx, &req).await;
    deliver(app, &mut report, Deadline::NONE, &mut Vec::new()).await;
    report
}

fn state(app: &TestApp, id: &str) -> InstanceState {
    app.fleet.get(id).unwrap().state
}

fn record(app: &TestApp, id: &str) -> Option<String> {
    app.fleet.get(id).unwrap().tags.get(ANNOUNCED).cloned()
}

fn line<'a>(r: &'a RunReport, id: &str) -> &'a crate::report::InstanceReport {
    r.instances.iter().find(|i| i.id == id).unwrap()
}

fn bounded() -> Config {
    let mut cfg = Config::default();
    cfg.rules.max_lifetime = Some(TimeDelta::days(30));
    cfg.rules.allow_indefinite = false;
    cfg
}

/// Finding 1: setting MAX_LIFETIME on an existing fleet terminated every older instance in the
/// first live run, and the owners heard only afterwards. Now the first run announces the bound
/// and terminates nothing; the run a full WARN_WINDOW later does.
#[tokio::test]
async fn max_lifetime_on_an_existing_fleet_is_announced_first_and_acted_on_a_warn_window_later() {
    let fleet = MemoryFleet::new([
        old(
            "i-dated",
            &[
                ("termination_date", "2031-01-01T00:00:00Z"),
                ("owner", "alice"),
            ],
        ),
        old(
            "i-forever",
            &[("termination_date", "indefinite"), ("owner", "bob")],
        ),
    ]);
    let (app, sw) = rig(fleet, bounded(), false);
    let first = run_at(&app, &sw, t0()).await;
    assert_eq!(app.fleet.calls("TerminateInstances"), 0);
    for id in ["i-dated", "i-forever"] {
        assert_eq!(state(&app, id), InstanceState::Running, "{id}");
        let l = line(&first, id);
        assert_eq!(l.outcome, Some(Outcome::Deferred), "{id}");
        assert!(
            l.reason
                .contains("not announced to its owner in time; announced in this run, earliest 2030-03-05T10:00:00Z"),
            "{}",
            l.reason
        );
        // The bound (60 days after launch - 30) is the date told; the record says when.
        assert_eq!(
            record(&app, id).as_deref(),
            Some("terminate 2030-02-02T10:00:00Z told 2030-03-04T10:00:00Z"),
            "{id}"
        );
    }
    // Told once: later runs inside the notice period neither terminate nor repeat the notice.
    let told = sw.delivered.lock().unwrap().len();
    run_at(&app, &sw, t0() + TimeDelta::hours(23)).await;
    assert_eq!(app.fleet.calls("TerminateInstances"), 0);
    assert_eq!(
        record(&app, "i-dated").unwrap(),
        "terminate 2030-02-02T10:00:00Z told 2030-03-04T10:00:00Z"
    );
    assert!(sw.delivered.lock().unwrap().len() <= told + 1);
    let after = run_at(&app, &sw, t0() + TimeDelta::days(1)).await;
    for id in ["i-dated", "i-forever"] {
        assert_eq!(state(&app, id), InstanceState::ShuttingDown, "{id}");
        assert_eq!(line(&after, id).outcome, Some(Outcome::Done));
    }
}

/// Finding 2: SES answering MessageRejected, or Slack answering 500 for an owner known only by
/// name, left the date unrecorded, and the next run after the date terminated with 0 notices
/// delivered. Now nothing undelivered is recorded, and nothing unrecorded is terminated.
#[tokio::test]
async fn a_failed_notice_records_nothing_and_nothing_is_terminated() {
    let date = format_date(t0() + TimeDelta::hours(6));
    let fleet = MemoryFleet::new([
        old(
            "i-mailed",
            &[("termination_date", &date), ("owner", "ana@example.com")],
        ),
        old(
            "i-named",
            &[("termination_date", &date), ("owner", "alice")],
        ),
    ]);
    let (app, sw) = rig(fleet, Config::default(), true);
    sw.chat_fails.store(true, Ordering::SeqCst);
    sw.mail_fails.store(true, Ordering::SeqCst);
    let first = run_at(&app, &sw, t0()).await;
    assert!(
        first.errors.iter().any(|e| e.contains("MessageRejected")),
        "{:?}",
        first.errors
    );
    for id in ["i-mailed", "i-named"] {
        assert_eq!(record(&app, id), None, "{id}");
    }
    // Hours after the date, and still failing: deferred, not terminated.
    for hours in [7, 30, 60] {
        let r = run_at(&app, &sw, t0() + TimeDelta::hours(hours)).await;
        assert_eq!(app.fleet.calls("TerminateInstances"), 0, "{hours}h");
        assert_eq!(line(&r, "i-mailed").outcome, Some(Outcome::Deferred));
    }
    // Slack is back, SES still refuses: the named owner is told, the mailed one is not (a
    // channel message does not stand in for the e-mail to an owner with an address).
    sw.chat_fails.store(false, Ordering::SeqCst);
    run_at(&app, &sw, t0() + TimeDelta::hours(61)).await;
    assert!(record(&app, "i-named").is_some());
    assert_eq!(record(&app, "i-mailed"), None);
    run_at(&app, &sw, t0() + TimeDelta::hours(61 + 24)).await;
    assert_eq!(state(&app, "i-named"), InstanceState::ShuttingDown);
    assert_eq!(state(&app, "i-mailed"), InstanceState::Running);
}

/// Finding 3: the README's rollout (live with MAX_TERMINATIONS=0, then raise it) told nobody of
/// dates that had already passed, and raising the cap terminated them. Now the held dates are
/// announced while the cap holds, and raising it terminates only what was told in time.
#[tokio::test]
async fn dates_held_by_a_zero_cap_are_announced_and_raising_the_cap_waits_for_the_notice() {
    let fleet = MemoryFleet::new([
        old(
            "i-passed",
            &[
                ("termination_date", "2030-03-01T00:00:00Z"),
                ("owner", "alice"),
            ],
        ),
        old(
            "i-told",
            &[
                ("termination_date", "2030-03-01T00:00:00Z"),
                ("owner", "alice"),
                (
                    ANNOUNCED,
                    "terminate 2030-03-01T00:00:00Z told 2030-02-27T00:00:00Z",
                ),
            ],
        ),
    ]);
    let mut cfg = Config::default();
    cfg.caps.terminations = Cap::Limited(0);
    let (mut app, sw) = rig(fleet, cfg, false);
    let held = run_at(&app, &sw, t0()).await;
    assert_eq!(line(&held, "i-told").outcome, Some(Outcome::CircuitOpen));
    assert_eq!(line(&held, "i-passed").outcome, Some(Outcome::Deferred));
    assert_eq!(
        record(&app, "i-passed").as_deref(),
        Some("terminate 2030-03-01T00:00:00Z told 2030-03-04T10:00:00Z")
    );
    app.config.caps.terminations = Cap::Limited(100);
    run_at(&app, &sw, t0() + TimeDelta::hours(1)).await;
    assert_eq!(state(&app, "i-told"), InstanceState::ShuttingDown);
    assert_eq!(state(&app, "i-passed"), InstanceState::Running);
    run_at(&app, &sw, t0() + TimeDelta::days(1)).await;
    assert_eq!(state(&app, "i-passed"), InstanceState::ShuttingDown);
}

/// Finding 4: a `lifetime` added to an instance older than MAX_LIFETIME was stamped "due now" by
/// the bound and terminated on the next run, contradicting "a stamp never bites at once".
#[tokio::test]
async fn a_late_lifetime_on_an_instance_past_max_lifetime_does_not_bite_at_once() {
    let fleet = MemoryFleet::new([old("i-late", &[("lifetime", "7d"), ("owner", "alice")])]);
    let (app, sw) = rig(fleet, bounded(), false);
    run_at(&app, &sw, t0()).await;
    let next = run_at(&app, &sw, t0() + TimeDelta::hours(1)).await;
    assert_eq!(state(&app, "i-late"), InstanceState::Running);
    assert_eq!(line(&next, "i-late").outcome, Some(Outcome::Deferred));
    run_at(&app, &sw, t0() + TimeDelta::days(1)).await;
    assert_eq!(state(&app, "i-late"), InstanceState::ShuttingDown);
}

/// Finding 5: a date moved earlier after its notice (here: into the past, by hand) was
/// terminated on the next run with no notice of the new date.
#[tokio::test]
async fn a_date_moved_earlier_after_its_notice_is_announced_again_before_it_bites() {
    let date = format_date(t0() + TimeDelta::hours(10));
    let fleet = MemoryFleet::new([old(
        "i-moved",
        &[("termination_date", &date), ("owner", "alice")],
    )]);
    let (app, sw) = rig(fleet, Config::default(), false);
    run_at(&app, &sw, t0()).await;
    assert!(record(&app, "i-moved")
        .unwrap()
        .starts_with(&format!("terminate {date} told ")));
    app.fleet.edit(|all| {
        let i = all.get_mut("i-moved").unwrap();
        i.tags
            .insert("termination_date".into(), "2030-03-04T09:00:00Z".into());
    });
    let moved = run_at(&app, &sw, t0() + TimeDelta::hours(1)).await;
    assert_eq!(state(&app, "i-moved"), InstanceState::Running);
    assert_eq!(line(&moved, "i-moved").outcome, Some(Outcome::Deferred));
    assert_eq!(
        record(&app, "i-moved").as_deref(),
        Some("terminate 2030-03-04T09:00:00Z told 2030-03-04T11:00:00Z")
    );
    run_at(&app, &sw, t0() + TimeDelta::hours(25)).await;
    assert_eq!(state(&app, "i-moved"), InstanceState::ShuttingDown);
}

/// A record the reaper cannot read counts as "not announced", and the report says why.
#[tokio::test]
async fn an_unreadable_record_counts_as_not_announced_and_the_report_says_why() {
    let fleet = MemoryFleet::new([old(
        "i-hand",
        &[
            ("termination_date", "2030-03-01T00:00:00Z"),
            ("owner", "alice"),
            (ANNOUNCED, "terminate 2030-03-01 told yesterday"),
        ],
    )]);
    let (app, sw) = rig(fleet, Config::default(), false);
    let r = run_at(&app, &sw, t0()).await;
    assert_eq!(state(&app, "i-hand"), InstanceState::Running);
    assert!(
        r.warnings.iter().any(|w| w.starts_with("i-hand: reaper:announced=\"terminate 2030-03-01 told yesterday\": \"2030-03-01\" is not a UTC time")),
        "{:?}",
        r.warnings
    );
}

/// The creator's own date still acts on the date: a `termination_date` present at launch (seen
/// inside the grace period) is recorded as `set`, and IAM's condition is met before the call.
#[tokio::test]
async fn the_creators_own_date_is_recorded_before_the_termination() {
    let fleet = MemoryFleet::new([Instance {
        launch_time: t0() - TimeDelta::minutes(5),
        ..old("i-fresh", &[("termination_date", "2030-03-04T09:59:00Z")])
    }]);
    let (app, sw) = rig(fleet, Config::default(), false);
    run_at(&app, &sw, t0()).await;
    assert_eq!(state(&app, "i-fresh"), InstanceState::ShuttingDown);
    assert_eq!(
        record(&app, "i-fresh").as_deref(),
        Some("terminate 2030-03-04T09:59:00Z set 2030-03-04T10:00:00Z")
    );
}

/// SPEC §8 (one notice per date when it enters WARN_WINDOW), regression of issue 18: a date the
/// creator set at launch was recorded `set`, counted as announced, and its owner heard nothing
/// before the termination. Now the owner gets one heads-up when the date enters WARN_WINDOW; it
/// is recorded as `warned` (not `told`, which would move the creator's date a WARN_WINDOW
/// after the telling), is not repeated, and the termination happens on the creator's date.
#[tokio::test]
async fn the_creators_own_date_gets_one_heads_up_and_is_kept_to() {
    let fleet = MemoryFleet::new([
        Instance {
            launch_time: t0() - TimeDelta::minutes(5),
            ..old(
                "i-far",
                &[
                    ("termination_date", "2030-03-07T10:00:00Z"),
                    ("owner", "kim@example.com"),
                ],
            )
        },
        Instance {
            launch_time: t0() - TimeDelta::minutes(5),
            ..old(
                "i-soon",
                &[
                    ("termination_date", "2030-03-04T16:00:00Z"),
                    ("owner", "kim@example.com"),
                ],
            )
        },
    ]);
    let (app, sw) = rig(fleet, Config::default(), true);
    let first = run_at(&app, &sw, t0()).await;
    let to_kim = |sw: &Switches| {
        sw.delivered
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, text)| text.starts_with("to kim@example.com"))
            .map(|(_, text)| text.clone())
            .collect::<Vec<_>>()
    };
    // Seen at launch: both dates are the creator's. The near one is inside WARN_WINDOW (1 day):
    // recorded and its owner told now; the far one needs nothing yet (`keep`).
    let mails = to_kim(&sw);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0].contains("i-soon") && !mails[0].contains("i-far"),
        "{}",
        mails[0]
    );
    assert_eq!(
        line(&first, "i-soon").notice,
        Some(crate::report::NoticeKind::WillTerminate)
    );
    assert_eq!(
        record(&app, "i-soon").as_deref(),
        Some("terminate 2030-03-04T16:00:00Z warned 2030-03-04T10:00:00Z")
    );
    assert_eq!(record(&app, "i-far"), None);
    // Not repeated in the hours before the date.
    run_at(&app, &sw, t0() + TimeDelta::hours(3)).await;
    assert_eq!(to_kim(&sw).len(), 1);
    // On the creator's date, not a WARN_WINDOW after the heads-up: terminated.
    let due = run_at(&app, &sw, t0() + TimeDelta::hours(6)).await;
    assert_eq!(state(&app, "i-soon"), InstanceState::ShuttingDown);
    assert_eq!(line(&due, "i-soon").outcome, Some(Outcome::Done));
    // The far date enters WARN_WINDOW after the grace period: the ordinary notice, told a full
    // WARN_WINDOW ahead by an hourly sweep, so it too is kept to within the hour.
    run_at(&app, &sw, t0() + TimeDelta::days(2) + TimeDelta::hours(1)).await;
    let mails = to_kim(&sw);
    assert_eq!(mails.len(), 3, "{mails:?}");
    assert!(mails[2].contains("i-far"), "{}", mails[2]);
    assert_eq!(
        record(&app, "i-far").as_deref(),
        Some("terminate 2030-03-07T10:00:00Z told 2030-03-06T11:00:00Z")
    );
    run_at(&app, &sw, t0() + TimeDelta::days(3) + TimeDelta::hours(1)).await;
    assert_eq!(state(&app, "i-far"), InstanceState::ShuttingDown);
}

/// Finding 9: a newly enrolled account lost machines on the first run. Now nothing that was
/// there before enrolment is stopped or terminated for ENROLMENT_NOTICE (7 days) after its
/// first announcement, and the first report says what will happen when.
#[tokio::test]
async fn a_newly_enrolled_account_loses_nothing_in_its_first_week() {
    let soon = format_date(t0() + TimeDelta::hours(6));
    let fleet = MemoryFleet::new([
        old("i-untagged", &[("owner", "alice")]),
        old(
            "i-passed",
            &[
                ("termination_date", "2030-01-01T00:00:00Z"),
                ("owner", "alice"),
            ],
        ),
        old("i-soon", &[("termination_date", &soon), ("owner", "alice")]),
    ]);
    let mut cfg = Config::default();
    cfg.notices.enrolled_at = Some(t0());
    let (app, sw) = rig(fleet, cfg, false);
    let first = run_at(&app, &sw, t0()).await;
    let untagged = line(&first, "i-untagged");
    assert_eq!(untagged.outcome, Some(Outcome::Deferred));
    assert_eq!(untagged.notice, Some(crate::report::NoticeKind::WillStop));
    assert!(
        untagged.reason.contains("earliest 2030-03-11T10:00:00Z"),
        "{}",
        untagged.reason
    );
    assert!(
        line(&first, "i-passed")
            .reason
            .contains("earliest 2030-03-11T10:00:00Z"),
        "{}",
        line(&first, "i-passed").reason
    );
    assert_eq!(
        record(&app, "i-untagged").as_deref(),
        Some("stop 2030-03-11T10:00:00Z told 2030-03-04T10:00:00Z")
    );
    // The channel's first message names them and says when.
    let posted = sw.delivered.lock().unwrap()[0].1.clone();
    assert!(
        posted.contains("i-untagged") && posted.contains("2030-03-11T10:00:00Z"),
        "{posted}"
    );
    // Hourly for a week: nothing old is stopped or terminated; a machine launched after
    // enrolment is stopped as before.
    app.fleet.edit(|all| {
        let new = Instance {
            launch_time: t0() + TimeDelta::hours(1),
            ..old("i-new", &[])
        };
        all.insert(new.id.clone(), new);
    });
    for hour in 1..(7 * 24) {
        run_at(&app, &sw, t0() + TimeDelta::hours(hour)).await;
        for id in ["i-untagged", "i-passed", "i-soon"] {
            assert_eq!(state(&app, id), InstanceState::Running, "{id} at +{hour}h");
        }
    }
    assert_eq!(state(&app, "i-new"), InstanceState::Stopping);
    run_at(&app, &sw, t0() + TimeDelta::days(7)).await;
    assert_eq!(state(&app, "i-untagged"), InstanceState::Stopping);
    assert_eq!(state(&app, "i-passed"), InstanceState::ShuttingDown);
}

/// Finding 8: the dry run's "Owners who would be told" listed 4 owners where the live run a
/// second later told 14: the owners of what it would stop or terminate were missing.
#[tokio::test]
async fn the_dry_runs_owner_preview_lists_every_owner_the_live_run_tells() {
    let soon = format_date(t0() + TimeDelta::hours(6));
    let fleet = MemoryFleet::new([
        old("i-soon", &[("termination_date", &soon), ("owner", "alice")]),
        old("i-untagged", &[("owner", "bob")]),
        old(
            "i-due",
            &[
                ("termination_date", "2030-03-01T00:00:00Z"),
                ("owner", "carol@example.com"),
                (
                    ANNOUNCED,
                    "terminate 2030-03-01T00:00:00Z told 2030-02-27T00:00:00Z",
                ),
            ],
        ),
        old(
            "i-never-told",
            &[
                ("termination_date", "2030-03-01T00:00:00Z"),
                ("owner", "dan"),
            ],
        ),
    ]);
    let (app, sw) = rig(fleet, Config::default(), false);
    let owners = |r: &RunReport| -> Vec<String> {
        crate::render::notice::from_report(r)
            .into_iter()
            .map(|n| n.owner)
            .collect()
    };
    let dry = run_mode(&app, &sw, t0(), false).await;
    assert_eq!(app.fleet.mutating_calls(), 0);
    let live = run_at(&app, &sw, t0()).await;
    assert_eq!(state(&app, "i-due"), InstanceState::ShuttingDown);
    assert_eq!(owners(&dry), owners(&live));
    assert_eq!(owners(&live).len(), 4, "{:?}", owners(&live));
}

/// One instance whose date comes 20 hours into the day, and one untagged.
fn a_day_fleet() -> MemoryFleet {
    let date = format_date(t0() + TimeDelta::hours(20));
    MemoryFleet::new([
        old(
            "i-expiring",
            &[("termination_date", &date), ("owner", "alice")],
        ),
        old("i-untagged", &[("owner", "bob")]),
    ])
}

/// Announce once: a simulated day of hourly live runs with one expiring instance and one
/// untagged one. Before, every noteworthy run posted (24 messages); now the channel hears of
/// the stop and the first announcement, then once in the digest hour (DIGEST_AT=09, UTC).
#[tokio::test]
async fn a_day_of_hourly_runs_posts_news_and_one_digest_not_every_hour() {
    let fleet = a_day_fleet();
    let (app, sw) = rig(fleet, Config::default(), false);
    let mut before = 0;
    for hour in 0..24 {
        let r = run_at(&app, &sw, t0() + TimeDelta::hours(hour)).await;
        // The old rule: every noteworthy run posted.
        before += u32::from(r.is_noteworthy());
    }
    let after = *sw.posts.lock().unwrap();
    println!("24 hourly runs, one expiring + one untagged instance: {before} channel messages before, {after} after");
    assert_eq!(before, 24);
    // Run 0: stopped + announced; 09:00 UTC (t0 + 23h): the digest.
    assert_eq!(after, 2);
    assert_eq!(state(&app, "i-untagged"), InstanceState::Stopping);
    assert_eq!(state(&app, "i-expiring"), InstanceState::Running);
    // The date was announced at t0, a full WARN_WINDOW is up at t0 + 24h: it goes, and says so.
    run_at(&app, &sw, t0() + TimeDelta::hours(24)).await;
    assert_eq!(state(&app, "i-expiring"), InstanceState::ShuttingDown);
    assert_eq!(*sw.posts.lock().unwrap(), 3);
}

/// The same day in dry run, with a report bucket (issue 18: "in a dry-run week every
/// account-region with an untagged instance posts every hour"): the findings are posted once,
/// then only in the digest hour.
#[tokio::test]
async fn a_dry_run_day_posts_its_findings_once_and_one_digest() {
    let fleet = a_day_fleet();
    let (mut app, sw) = rig(fleet, Config::default(), false);
    app.archive = Some(TestArchive::default());
    let mut before = 0;
    for hour in 0..24 {
        let r = run_mode(&app, &sw, t0() + TimeDelta::hours(hour), false).await;
        before += u32::from(r.is_noteworthy());
    }
    let after = *sw.posts.lock().unwrap();
    println!("24 hourly dry runs, one expiring + one untagged instance: {before} channel messages before, {after} after");
    // Run 0: the findings; t0 + 20h: the date has passed, a new finding (it would be
    // terminated, once announced); t0 + 23h (09:00 UTC): the digest.
    assert_eq!((before, after), (24, 3));
    assert_eq!(app.fleet.calls("CreateTags"), 0, "a dry run writes nothing");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        /// The clock moves on (minutes) and a run happens.
        Run(i64),
        /// A person sets a termination_date this many minutes from now (negative: past).
        SetDate(usize, i64),
        SetLifetime(usize, i64),
        /// Both date tags removed: the instance is to be stopped.
        Untag(usize),
        /// Someone writes a value the reaper cannot read into its record.
        Garbage(usize),
        RemoveRecord(usize),
        MaxLifetime(Option<i64>),
        Cap(u64),
        ChatFails(bool),
        MailFails(bool),
    }

    fn step() -> impl Strategy<Value = Step> {
        let who = 0usize..4;
        prop_oneof![
            6 => (0i64..36 * 60).prop_map(Step::Run),
            2 => (who.clone(), -3 * 24 * 60i64..3 * 24 * 60).prop_map(|(i, m)| Step::SetDate(i, m)),
            1 => (who.clone(), 0i64..90 * 24 * 60).prop_map(|(i, m)| Step::SetLifetime(i, m)),
            1 => who.clone().prop_map(Step::Untag),
            1 => who.clone().prop_map(Step::Garbage),
            1 => who.prop_map(Step::RemoveRecord),
            1 => proptest::option::of(1i64..90 * 24 * 60).prop_map(Step::MaxLifetime),
            1 => (0u64..3).prop_map(Step::Cap),
            1 => any::<bool>().prop_map(Step::ChatFails),
            1 => any::<bool>().prop_map(Step::MailFails),
        ]
    }

    const OWNERS: [&str; 4] = ["alice", "ana@example.com", "U024BE7LH", ""];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever happens between runs, an instance is terminated only on a date that a
        /// message delivered a full WARN_WINDOW earlier named it under (its enforced date then
        /// was the date acted on); in an account the reaper was enrolled in after the fleet
        /// launched, the notice is ENROLMENT_NOTICE, and an instance is stopped only that long
        /// after a delivered message named it as one to stop.
        #[test]
        fn fuzz_no_termination_without_a_delivered_announcement_in_time(
            steps in proptest::collection::vec(step(), 1..40),
            enrolled in any::<bool>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let ids: Vec<String> = (0..4).map(|k| format!("i-{k:017x}")).collect();
                let fleet = MemoryFleet::new(ids.iter().enumerate().map(|(k, id)| {
                    let mut tags = vec![("termination_date", "2030-03-04T20:00:00Z")];
                    if !OWNERS[k].is_empty() {
                        tags.push(("owner", OWNERS[k]));
                    }
                    old(id, &tags)
                }));
                let mut cfg = Config::default();
                cfg.notices.enrolled_at = enrolled.then_some(t0());
                let (mut app, sw) = rig(fleet, cfg, true);
                let enrolment = app.config.notices.enrolment_notice;
                let lead = if enrolled {
                    app.config.rules.warn_window.max(enrolment)
                } else {
                    app.config.rules.warn_window
                };
                // (id, when) of each delivery that named the instance while it was to be stopped.
                let mut told_stop: Vec<(String, DateTime<Utc>)> = Vec::new();
                let mut now = t0();
                // (id, enforced date then, when) of each delivery that named the instance.
                let mut told: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
                for step in steps {
                    match step {
                        Step::Run(m) => {
                            now += TimeDelta::minutes(m);
                            let before: Vec<(String, Option<DateTime<Utc>>, bool, InstanceState)> = ids.iter().filter_map(|id| {
                                let i = app.fleet.get(id)?;
                                let v = judge(&i, now, &app.config.rules);
                                let stop = v.kind() == crate::policy::VerdictKind::Stop;
                                Some((id.clone(), v.enforced_date(), stop, i.state))
                            }).collect();
                            let seen = sw.delivered.lock().unwrap().len();
                            run_at(&app, &sw, now).await;
                            let delivered = sw.delivered.lock().unwrap()[seen..].to_vec();
                            for (id, date, stop, was) in &before {
                                let i = app.fleet.get(id).unwrap();
                                if i.state == InstanceState::Stopping && *was == InstanceState::Running && enrolled {
                                    let in_time = told_stop.iter().any(|(tid, when)| tid == id && *when + enrolment <= now);
                                    prop_assert!(in_time, "{id} stopped at {now}; told: {told_stop:?}");
                                }
                                if i.state == InstanceState::ShuttingDown {
                                    let date = date.expect("terminated without a date");
                                    let in_time = told.iter().any(|(tid, tdate, when)| {
                                        tid == id && *tdate == date && *when + lead <= now
                                    });
                                    prop_assert!(in_time, "{id} terminated at {now} on {date}; told: {told:?}");
                                    // Terminated once; it leaves the fleet for the next runs.
                                    app.fleet.edit(|all| { all.remove(id); });
                                }
                                for (_, text) in &delivered {
                                    if !text.contains(id.as_str()) {
                                        continue;
                                    }
                                    if let Some(date) = date {
                                        told.push((id.clone(), *date, now));
                                    }
                                    if *stop {
                                        told_stop.push((id.clone(), now));
                                    }
                                }
                            }
                        }
                        Step::SetDate(k, m) => {
                            let v = format_date(now + TimeDelta::minutes(m));
                            app.fleet.edit(|all| if let Some(i) = all.get_mut(&ids[k]) {
                                i.tags.insert("termination_date".into(), v);
                            });
                        }
                        Step::SetLifetime(k, m) => app.fleet.edit(|all| if let Some(i) = all.get_mut(&ids[k]) {
                            i.tags.remove("termination_date");
                            i.tags.insert("lifetime".into(), format!("{m}m"));
                        }),
                        Step::Untag(k) => app.fleet.edit(|all| if let Some(i) = all.get_mut(&ids[k]) {
                            i.tags.remove("termination_date");
                            i.tags.remove("lifetime");
                        }),
                        Step::Garbage(k) => app.fleet.edit(|all| if let Some(i) = all.get_mut(&ids[k]) {
                            i.tags.insert(ANNOUNCED.into(), "terminate soon".into());
                        }),
                        Step::RemoveRecord(k) => app.fleet.edit(|all| if let Some(i) = all.get_mut(&ids[k]) {
                            i.tags.remove(ANNOUNCED);
                        }),
                        Step::MaxLifetime(m) => app.config.rules.max_lifetime = m.map(TimeDelta::minutes),
                        Step::Cap(n) => app.config.caps.terminations = Cap::Limited(n),
                        Step::ChatFails(f) => sw.chat_fails.store(f, Ordering::SeqCst),
                        Step::MailFails(f) => sw.mail_fails.store(f, Ordering::SeqCst),
                    }
                }
                Ok(())
            })?;
        }
    }
}

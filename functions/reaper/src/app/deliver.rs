//! The deliver use case: the report's log and metrics lines, the S3 copy, the Slack message, the
//! owner notices and the announcement records (`reaper:announced`) for what was really delivered.
//! Generic over the ports, so the order of delivery and the failure of each sink are unit-tested
//! with fakes (in `handler`'s tests, through the whole invocation).

use crate::click::token::{Keep, KeepSigner, KEEP_DAYS};
use crate::config::Config;
use crate::policy::announce::{Announcement, Deed, ANNOUNCED_TAG};
use crate::ports::{Archive, ArchiveError, Chat, Deadline, Fleet, IdOutcome, Mail, Mutation};
use crate::render::notice::{
    classify, from_report, render_email, EmailContext, Keeps, NoticeEvent, OwnerAddress,
    OwnerNotice,
};
use crate::render::slack::render_for;
use crate::report::{NoticeDelivery, NoticeKind, RunReport, SlackStatus};
use crate::run::Mode;
use std::collections::{BTreeMap, HashSet};

/// CloudWatch Logs takes events up to 256 KB; the report's log line stays below that.
pub const MAX_LOG_LINE_BYTES: usize = 200_000;

/// Everything built once per Lambda instance (clients are reused across invocations).
pub struct App<F, A, C, M> {
    pub fleet: F,
    pub archive: Option<A>,
    pub chat: Option<C>,
    /// Owner e-mail (NOTICE_FROM set).
    pub mailer: Option<M>,
    pub config: Config,
    pub region: String,
    /// When the reaper was enrolled here (the stack's creation time, read once).
    pub enrolment: super::Enrolment,
    /// The Price List, for the ledger of savings (one cache for the container's life).
    pub prices: Option<std::sync::Arc<dyn crate::ports::Prices>>,
    /// Keep buttons and links in owner notices (LINK_KEY_ARN and ACTIONS_URL set).
    pub keep_links: Option<KeepSigner>,
}

/// Signed keep tokens (docs/ACTIONS.md) for every instance a live run announces for termination
/// (not a MAX_LIFETIME bound, which no tag moves), when owner actions are configured. Each token
/// expires a day after the announced date.
fn keeps<F, A, C, M>(
    app: &App<F, A, C, M>,
    report: &RunReport,
    owners: &[OwnerNotice],
) -> Option<Keeps> {
    let signer = app.keep_links.as_ref()?;
    if report.mode != Mode::Live {
        return None;
    }
    let mut tokens = BTreeMap::new();
    for item in owners.iter().flat_map(|o| &o.items) {
        let NoticeEvent::WillTerminate { at, bound: false } = item.event else {
            continue;
        };
        let signed = KEEP_DAYS
            .iter()
            .map(|days| {
                let keep = Keep {
                    account: report.account.clone(),
                    region: item.region.clone(),
                    instance: item.id.clone(),
                    announced: at,
                    days: *days,
                    expires: at + chrono::TimeDelta::days(1),
                };
                (
                    *days,
                    signer.key.sign(&keep, uuid::Uuid::new_v4().as_u64_pair().0),
                )
            })
            .collect();
        tokens.insert(item.id.clone(), signed);
    }
    Some(Keeps {
        url: signer.url.clone(),
        tokens,
    })
}

/// Owner notices (SPEC §8), after the channel's message: one e-mail per owner with an address
/// (when NOTICE_FROM is set). Returns the instances the e-mails SES accepted named; an instance
/// only counted in "…and N more" was told nothing, nor was one whose e-mail failed.
async fn notify_owners<F: Fleet, A, C, M: Mail>(
    app: &App<F, A, C, M>,
    report: &mut RunReport,
    owners: &[OwnerNotice],
    keeps: Option<&Keeps>,
    deadline: Deadline,
) -> HashSet<String> {
    let slack_sent = report.delivery.slack == Some(SlackStatus::Sent);
    let ctx = EmailContext {
        account: report.account.clone(),
        run_id: report.run_id.clone(),
        now: report.evaluated_at,
        owner_tag: app.config.owner_tag.clone(),
        keeps: keeps.cloned(),
    };
    let mut emailed: HashSet<String> = HashSet::new();
    for notice in owners {
        let (via, status) = match (&notice.address, &app.mailer) {
            (OwnerAddress::Email(to), Some(mailer)) => {
                let email = render_email(notice, &ctx);
                match mailer.send(to, &email.payload, deadline).await {
                    Ok(()) => {
                        emailed.extend(email.named.into_iter().map(|n| n.id));
                        ("email", "sent".to_string())
                    }
                    Err(why) => {
                        tracing::warn!(error = %why, "owner e-mail not sent");
                        report.errors.push(format!("notice e-mail: {why}"));
                        ("email", format!("failed: {why}"))
                    }
                }
            }
            (OwnerAddress::SlackMember(_), _) => ("slack-mention", channel(slack_sent)),
            _ => ("channel", channel(slack_sent)),
        };
        report.notices.push(NoticeDelivery {
            owner: notice.owner.clone(),
            via: via.into(),
            instances: notice.items.len(),
            status,
        });
    }
    emailed
}

/// What reached someone, per instance (SPEC §8 "Announced"): an owner with an e-mail address,
/// while NOTICE_FROM is set, only through an e-mail SES accepted that named the instance; any
/// other owner, or none, through a posted channel message that named it; with neither Slack nor
/// e-mail configured, the run's report line that lists it.
struct Reached<'a> {
    mail: bool,
    chat: bool,
    emailed: &'a HashSet<String>,
    /// `None`: the channel's message was not posted.
    posted: Option<&'a HashSet<String>>,
    logged: &'a HashSet<String>,
}

impl Reached<'_> {
    fn told(&self, id: &str, owner: Option<&str>) -> bool {
        let mailed_owner = self.mail && matches!(owner.map(classify), Some(OwnerAddress::Email(_)));
        if mailed_owner {
            self.emailed.contains(id)
        } else if self.chat {
            self.posted.is_some_and(|named| named.contains(id))
        } else if !self.mail {
            self.logged.contains(id)
        } else {
            // Only e-mail is configured and this owner has no address: nobody was told.
            false
        }
    }
}

/// Records on each instance what was announced to someone (`reaper:announced=terminate <date>
/// told <when>`; `warned` for the heads-up on the creator's own date; `stop …` for a
/// pre-enrolment instance), grouped by value: one CreateTags per date. The notice gate reads it
/// in later runs; an instance not reached stays unrecorded, so it is announced again and (unless
/// the date is the creator's own) not acted on.
async fn record_announcements<F: Fleet, A, C, M>(
    app: &App<F, A, C, M>,
    report: &mut RunReport,
    reached: &Reached<'_>,
    deadline: Deadline,
) {
    let mut told: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let now = report.evaluated_at;
    for i in &report.instances {
        let record = match (i.notice, i.termination_date) {
            // The creator's own date keeps its date: the heads-up is recorded as `warned`.
            (Some(NoticeKind::WillTerminate), Some(date)) if i.heads_up => {
                Announcement::warned(date, now)
            }
            (Some(NoticeKind::WillTerminate), Some(date)) => {
                Announcement::told(Deed::Terminate, date, now)
            }
            // The gate's own stop date for a pre-enrolment instance: ENROLMENT_NOTICE from now.
            (Some(NoticeKind::WillStop), _) => {
                Announcement::told(Deed::Stop, now + app.config.notices.enrolment_notice, now)
            }
            _ => continue,
        };
        if reached.told(&i.id, i.owner.as_deref()) {
            told.entry(record.to_string())
                .or_default()
                .push(i.id.clone());
        }
    }
    for (value, ids) in told {
        let tags = vec![(ANNOUNCED_TAG.to_string(), value)];
        for (id, outcome) in app.fleet.apply(Mutation::Tag(&tags), &ids, deadline).await {
            let why = match outcome {
                IdOutcome::Done => continue,
                IdOutcome::Failed(err) | IdOutcome::Lost(err) => err.to_string(),
                IdOutcome::NotAttempted => "the run's time was up".to_string(),
            };
            report.errors.push(format!(
                "{id}: the notice was delivered, but {ANNOUNCED_TAG} was not written ({why}); it will be announced again and nothing is done before"
            ));
        }
    }
}

fn channel(slack_sent: bool) -> String {
    if slack_sent {
        "sent".into()
    } else {
        "not delivered: the channel's message was not sent".into()
    }
}

/// Announce once (SPEC §8): a live run posts when something happened (an action done, failed or
/// unknown, a circuit, an error) or something is announced for the first time; what is only
/// still true (still expiring, still waiting, already stopped) waits for the daily digest, the
/// scheduled run in the hour DIGEST_AT (in ACTION_WINDOW's zone, else UTC). A dry run changes
/// nothing and announces nothing: it posts when its findings differ from the last dry run's
/// (`fresh`; always, without a report bucket to remember them in) or it has errors.
fn news(report: &RunReport, cfg: &Config, fresh: bool) -> bool {
    use crate::report::Outcome;
    if report.mode == Mode::DryRun {
        return fresh || !report.errors.is_empty() || digest_hour(report, cfg);
    }
    let happened = [Outcome::Done, Outcome::Failed, Outcome::Unknown]
        .iter()
        .any(|o| report.outcome_count(*o) > 0)
        || !report.circuits.is_empty()
        || !report.errors.is_empty();
    let first_told = report.instances.iter().any(|i| {
        matches!(
            i.notice,
            Some(NoticeKind::WillTerminate | NoticeKind::WillStop)
        )
    });
    happened || first_told || digest_hour(report, cfg)
}

/// The scheduled run in the hour of the day DIGEST_AT names.
fn digest_hour(report: &RunReport, cfg: &Config) -> bool {
    use chrono::Timelike;
    if report.trigger != crate::run::TriggerKind::Schedule {
        return false;
    }
    let hour = match &cfg.action_window {
        Some(window) => report.evaluated_at.with_timezone(&window.zone()).hour(),
        None => report.evaluated_at.hour(),
    };
    hour == u32::from(cfg.notices.digest_hour)
}

/// What a dry run leaves for the next one: the fingerprint of its findings, and where its
/// report is. Small: the report itself is never read back.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct DryRunRecord {
    findings: String,
    run_id: String,
    evaluated_at: chrono::DateTime<chrono::Utc>,
    report: Option<String>,
}

/// This dry run's findings, and whether they differ from the last dry run's.
struct DryRunNews {
    findings: String,
    fresh: bool,
}

/// Reads the last dry run's record. Anything but a readable record of the same findings is
/// news: a first dry run, a record another version wrote, a read that failed (said in
/// `warnings`; posting once more is the safe side).
async fn compare_dry_run<A: Archive>(
    archive: &A,
    report: &mut RunReport,
    deadline: Deadline,
) -> DryRunNews {
    let findings = report.findings();
    let key = report.dry_run_record_key();
    let last = match archive.get(&key, deadline.capped(FIRST_COPY_MOST)).await {
        Ok(Some(body)) => serde_json::from_slice::<DryRunRecord>(&body).ok(),
        Ok(None) => None,
        Err(why) => {
            tracing::warn!(error = %why, "the last dry run's record was not read");
            report.warnings.push(format!(
                "{}: the last dry run's findings could not be read ({why}), so this run posts them as new",
                archive.address(&key)
            ));
            None
        }
    };
    let fresh = last.is_none_or(|l| l.findings != findings);
    DryRunNews { findings, fresh }
}

async fn remember_dry_run<A: Archive>(
    archive: &A,
    report: &mut RunReport,
    findings: String,
    deadline: Deadline,
) {
    let record = DryRunRecord {
        findings,
        run_id: report.run_id.clone(),
        evaluated_at: report.evaluated_at,
        report: report.delivery.s3.clone(),
    };
    let key = report.dry_run_record_key();
    let body = match serde_json::to_vec(&record) {
        Ok(body) => body,
        Err(why) => {
            report.errors.push(format!(
                "s3: the dry run's record could not be serialised: {why}"
            ));
            return;
        }
    };
    if let Err(why) = archive.put(&key, body, deadline).await {
        tracing::warn!(error = %why, "the dry run's record was not written");
        report.warnings.push(format!(
            "{}: this dry run's findings were not remembered ({why}); the next dry run posts them again",
            archive.address(&key)
        ));
    }
}

/// Writes the whole report to the archive under its own key.
async fn archive_copy<A: Archive>(
    archive: &A,
    report: &RunReport,
    deadline: Deadline,
) -> Result<(), ArchiveError> {
    let body =
        serde_json::to_vec(report).map_err(|err| ArchiveError::Unserialisable(err.to_string()))?;
    archive.put(&report.archive_key(), body, deadline).await
}

/// Writes the run's records under their key, with the same bounded share of the time as the
/// first copy of the report.
async fn write_evidence<A: Archive>(archive: &A, report: &mut RunReport, deadline: Deadline) {
    let body = crate::report::evidence::render(report);
    let share = deadline
        .for_sink()
        .map_or(FIRST_COPY_MOST, |left| (left / 3).min(FIRST_COPY_MOST));
    let key = crate::report::evidence::key(report);
    if let Err(why) = archive
        .put_records(&key, body, deadline.capped(share))
        .await
    {
        tracing::error!(error = %why, "evidence not written");
        report.errors.push(format!("evidence: {why}"));
    }
}

/// The longest the first S3 write may take, so Slack and the owners are still told when S3 hangs.
const FIRST_COPY_MOST: std::time::Duration = std::time::Duration::from_secs(15);

/// The report's log line and metrics line first (nothing slow can lose them); then the S3 copy,
/// with a bounded share of the time, so Slack links only a copy that exists; then Slack and the
/// owner notices; then the S3 copy again, now recording their outcome; then one line saying
/// where the report went. A sink's failure is recorded, never fatal. A first S3 write that fails
/// leaves `delivery.s3` empty (nothing links to it) and is not retried; a failed rewrite keeps
/// the address of the first copy and says in `errors` that the copy lacks the delivery outcome.
pub async fn deliver<F: Fleet, A: Archive, C: Chat, M: Mail>(
    app: &App<F, A, C, M>,
    report: &mut RunReport,
    deadline: Deadline,
    out: &mut impl std::io::Write,
) {
    // A huge report's log line is shortened like the return value; counts stay exact.
    let line = report.trimmed(MAX_LOG_LINE_BYTES);
    let _ = writeln!(out, "{}", line.log_line());
    // With no channel and no e-mail, the log line is the announcement: what it lists is told.
    let logged: HashSet<String> = if app.chat.is_none() && app.mailer.is_none() {
        line.instances.into_iter().map(|i| i.id).collect()
    } else {
        HashSet::new()
    };
    let _ = writeln!(out, "{}", report.emf_line());

    // A dry run's findings against the last dry run's (announce once): the same findings wait
    // for the digest instead of posting every hour.
    let dry_run = match (&app.archive, &app.chat, report.mode) {
        (Some(archive), Some(_), Mode::DryRun) => {
            Some(compare_dry_run(archive, report, deadline).await)
        }
        _ => None,
    };
    let fresh = dry_run.as_ref().is_none_or(|d| d.fresh);
    // What Slack will get is known now, except whether its post works.
    let to_post = match &app.chat {
        None => {
            report.delivery.slack = Some(SlackStatus::NotConfigured);
            None
        }
        // `render` says nothing exactly when the report is not noteworthy; it renders once, below.
        Some(chat) if report.is_noteworthy() && news(report, &app.config, fresh) => Some(chat),
        Some(_) => {
            tracing::info!("slack: nothing to report, no message");
            report.delivery.slack = Some(SlackStatus::NothingToReport);
            None
        }
    };
    let mut archived = false;
    if let Some(archive) = &app.archive {
        report.delivery.s3 = Some(archive.address(&report.archive_key()));
        let share = deadline
            .for_sink()
            .map_or(FIRST_COPY_MOST, |left| (left / 3).min(FIRST_COPY_MOST));
        match archive_copy(archive, report, deadline.capped(share)).await {
            Ok(()) => archived = true,
            Err(why) => {
                tracing::error!(error = %why, "report not archived");
                report.delivery.s3 = None;
                report.errors.push(format!("s3: {why}"));
            }
        }
    }
    let errors_written = report.errors.len();
    let mut slack_named = Vec::new();
    // Grouped once, and only when a message or an e-mail will use the groups: the message's
    // owner section and the e-mails are the same groups.
    let owners = if to_post.is_some() || report.mode == Mode::Live {
        from_report(report)
    } else {
        Vec::new()
    };
    // Rendered only for a chat that will post it (a tuple would render it for none).
    let keeps = keeps(app, report, &owners);
    let message =
        to_post.and_then(|chat| Some((chat, render_for(report, &owners, keeps.as_ref())?)));
    if let Some((chat, message)) = message {
        slack_named = message.named;
        report.delivery.slack = Some(match chat.post(&message.payload, deadline).await {
            Ok(attempts) => {
                tracing::info!(attempts, "slack message sent");
                SlackStatus::Sent
            }
            Err(why) => {
                tracing::warn!(error = %why, "slack message not sent");
                report.errors.push(format!("slack: {why}"));
                SlackStatus::Failed(why.to_string())
            }
        });
    }
    if report.mode == Mode::Live {
        let emailed = notify_owners(app, report, &owners, keeps.as_ref(), deadline).await;
        let posted: HashSet<String> = slack_named.into_iter().map(|n| n.id).collect();
        let reached = Reached {
            mail: app.mailer.is_some(),
            chat: app.chat.is_some(),
            emailed: &emailed,
            posted: (report.delivery.slack == Some(SlackStatus::Sent)).then_some(&posted),
            logged: &logged,
        };
        record_announcements(app, report, &reached, deadline).await;
    }
    // Remembered only once the channel has it (or nothing was to be posted): a failed post is
    // news again next hour.
    if let (Some(archive), Some(d)) = (&app.archive, dry_run) {
        let told = !matches!(report.delivery.slack, Some(SlackStatus::Failed(_)));
        if d.fresh && told {
            remember_dry_run(archive, report, d.findings, deadline).await;
        }
    }
    // The run's records for the evidence store, after the report (docs/EVIDENCE.md); a failure
    // is in `errors` (and so in the copy rewritten below), never the run's.
    if let Some(archive) = &app.archive {
        write_evidence(archive, report, deadline).await;
    }
    // The copy already written says "slack: null"; write it again with what happened since.
    let changed =
        to_post.is_some() || !report.notices.is_empty() || report.errors.len() != errors_written;
    if let (Some(archive), true, true) = (&app.archive, archived, changed) {
        if let Err(why) = archive_copy(archive, report, deadline).await {
            tracing::error!(error = %why, "report copy not updated");
            report.errors.push(format!(
                "s3: the copy at {} was written before Slack and the owner notices, but rewriting it with their outcome failed: {why}",
                report.delivery.s3.as_deref().unwrap_or_default()
            ));
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

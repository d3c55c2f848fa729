//! The deliver use case: the report's log and metrics lines, the S3 copy, the Slack message, the
//! owner notices and the announcement tags (`reaper:notified`) for what was really delivered.
//! Generic over the ports, so the order of delivery and the failure of each sink are unit-tested
//! with fakes (in `handler`'s tests, through the whole invocation).

use crate::config::Config;
use crate::policy::{format_date, ResourceId, NOTIFIED_TAG};
use crate::ports::{Archive, ArchiveError, Chat, Deadline, Fleet, IdOutcome, Mail, Mutation};
use crate::render::notice::{from_report, render_email, EmailContext, OwnerAddress, OwnerNotice};
use crate::render::slack::render_for;
use crate::report::{NoticeDelivery, NoticeKind, RunReport, SlackStatus};
use crate::run::Mode;
use chrono::{DateTime, Utc};
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
}

/// Owner notices (SPEC §8), after the channel's message: one e-mail per owner with an address
/// (when NOTICE_FROM is set), then `reaper:notified=<date>` on every "will be terminated" notice
/// that a delivered message named (`slack_named`: the channel's message, if it was sent; or the
/// owner's e-mail), so a stateless hourly sweep tells each date once. An instance only counted
/// in "…and N more" was told nothing and stays unmarked, as does a failed delivery.
async fn notify_owners<F: Fleet, A, C, M: Mail>(
    app: &App<F, A, C, M>,
    report: &mut RunReport,
    owners: &[OwnerNotice],
    slack_named: &[ResourceId],
    deadline: Deadline,
) {
    let slack_sent = report.delivery.slack == Some(SlackStatus::Sent);
    let mut told_ids: HashSet<&str> = HashSet::new();
    if slack_sent {
        told_ids.extend(slack_named.iter().map(|n| n.id.as_str()));
    }
    let ctx = EmailContext {
        account: report.account.clone(),
        run_id: report.run_id.clone(),
        now: report.evaluated_at,
        owner_tag: app.config.owner_tag.clone(),
    };
    let mut emailed: Vec<ResourceId> = Vec::new();
    for notice in owners {
        let (via, status) = match (&notice.address, &app.mailer) {
            (OwnerAddress::Email(to), Some(mailer)) => {
                let email = render_email(notice, &ctx);
                match mailer.send(to, &email.payload, deadline).await {
                    Ok(()) => {
                        emailed.extend(email.named);
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
    told_ids.extend(emailed.iter().map(|n| n.id.as_str()));
    // Mark what was told, grouped by date: one CreateTags per date.
    let mut told: BTreeMap<DateTime<Utc>, Vec<String>> = BTreeMap::new();
    for i in &report.instances {
        let (Some(NoticeKind::WillTerminate), Some(date)) = (i.notice, i.termination_date) else {
            continue;
        };
        if told_ids.contains(i.id.as_str()) {
            told.entry(date).or_default().push(i.id.clone());
        }
    }
    for (date, ids) in told {
        let tags = vec![(NOTIFIED_TAG.to_string(), format_date(date))];
        for (id, outcome) in app.fleet.apply(Mutation::Tag(&tags), &ids, deadline).await {
            if outcome != IdOutcome::Done {
                report.errors.push(format!(
                    "notice for {id} was delivered, but {NOTIFIED_TAG} was not written ({outcome:?}); it may be repeated"
                ));
            }
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

/// The longest the first S3 write may take, so Slack and the owners are still told when S3 hangs.
const FIRST_COPY_MOST: std::time::Duration = std::time::Duration::from_secs(15);

/// The report's log line and metrics line first (nothing slow can lose them); then the S3 copy,
/// with a bounded share of the time, so Slack links only a copy that exists; then Slack and the
/// owner notices; then the S3 copy again, now recording their outcome; then one line saying
/// where the report went. A sink's failure is recorded, never fatal. A first S3 write that fails
/// leaves `delivery.s3` empty (nothing links to it) and is not retried; a failed rewrite keeps
/// the address of the first copy and says in `errors` that the copy lacks the delivery outcome.
pub(crate) async fn deliver<F: Fleet, A: Archive, C: Chat, M: Mail>(
    app: &App<F, A, C, M>,
    report: &mut RunReport,
    deadline: Deadline,
    out: &mut impl std::io::Write,
) {
    // A huge report's log line is shortened like the return value; counts stay exact.
    let _ = writeln!(out, "{}", report.trimmed(MAX_LOG_LINE_BYTES).log_line());
    let _ = writeln!(out, "{}", report.emf_line());

    // What Slack will get is known now, except whether its post works.
    let to_post = match &app.chat {
        None => {
            report.delivery.slack = Some(SlackStatus::NotConfigured);
            None
        }
        // `render` says nothing exactly when the report is not noteworthy; it renders once, below.
        Some(chat) if report.is_noteworthy() => Some(chat),
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
    let message = to_post.and_then(|chat| Some((chat, render_for(report, &owners)?)));
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
        notify_owners(app, report, &owners, &slack_named, deadline).await;
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

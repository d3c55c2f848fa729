//! The owner-action use case (issue 23): a verified "keep N days" from a Slack button or an
//! e-mail link becomes one new `termination_date`, or a refusal that changes nothing.
//!
//! Order matters: the instance is listed, then who may act is checked (the owner, or an admin;
//! a link is the e-mailed owner's), then that the instance's date is still the one announced
//! (so a link works once, and never for a date that has since changed), then the extension rule
//! (MAX_LIFETIME), and only then is the tag written: one CreateTags or none.

use super::extend::{extend_one, named, Extend, TagWrite};
use crate::click::token::Keep;
use crate::policy::announce::ANNOUNCED_TAG;
use crate::policy::extend::Extension;
use crate::policy::tags::{parse_termination_date, TerminationDate, TERMINATION_DATE};
use crate::policy::{format_date, Rules};
use crate::ports::{Deadline, Fleet};
use crate::render::notice::{classify, OwnerAddress};
use chrono::{DateTime, TimeDelta, Utc};

/// Who clicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clicker {
    /// A Slack user (`U…`/`W…`), verified by Slack's signature.
    Slack(String),
    /// An e-mail link: the token is the e-mailed owner's.
    Link,
}

impl Clicker {
    fn label(&self) -> String {
        match self {
            Clicker::Slack(user) => format!("slack:{user}"),
            Clicker::Link => "link".into(),
        }
    }
}

/// What a click came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Kept {
        old: String,
        new: String,
        /// First launch + MAX_LIFETIME, when it applies.
        bound: Option<String>,
    },
    Refused(Refusal),
}

/// Why nothing changed; each says so to the person who clicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotOwner { owner: Option<String> },
    NotFound,
    NotAnnounced,
    DateChanged { announced: String, now: String },
    Rules(String),
    ListFailed(String),
    WriteFailed(String),
}

impl Answer {
    /// The reply, as the clicker reads it.
    pub fn text(&self, instance: &str) -> String {
        match self {
            Answer::Kept { old, new, bound } => format!(
                "Kept: {instance} now ends {new} (was {old}).{}",
                bound
                    .as_ref()
                    .map(|b| format!(" MAX_LIFETIME ends it by {b} whatever its tag says."))
                    .unwrap_or_default()
            ),
            Answer::Refused(r) => match r {
                Refusal::NotOwner { owner } => format!(
                    "Sorry, only the owner of {instance} ({}) or a reaper admin can keep it. Nothing changed.",
                    owner.as_deref().unwrap_or("no owner tag")
                ),
                Refusal::NotFound => format!("{instance} is gone or not in a state the reaper judges. Nothing changed."),
                Refusal::NotAnnounced => format!("{instance} carries no reaper announcement, so this button does not apply to it. Nothing changed."),
                Refusal::DateChanged { announced, now } => format!(
                    "This button was for the date {announced}; {instance}'s date is now {now} (it was kept already, or changed). Nothing changed."
                ),
                Refusal::Rules(why) => format!("{instance} cannot be kept longer: {why}. Nothing changed."),
                Refusal::ListFailed(err) => format!("Could not read {instance} ({err}); try again in a minute. Nothing changed."),
                Refusal::WriteFailed(err) => format!("Writing the new date of {instance} failed or its answer was lost ({err}); check the instance's termination_date before trying again."),
            },
        }
    }

    pub fn outcome(&self) -> &'static str {
        match self {
            Answer::Kept { .. } => "kept",
            Answer::Refused(Refusal::NotOwner { .. }) => "refused-not-owner",
            Answer::Refused(Refusal::NotFound) => "refused-not-found",
            Answer::Refused(Refusal::NotAnnounced) => "refused-not-announced",
            Answer::Refused(Refusal::DateChanged { .. }) => "refused-date-changed",
            Answer::Refused(Refusal::Rules(_)) => "refused-rules",
            Answer::Refused(Refusal::ListFailed(_)) => "failed-listing",
            Answer::Refused(Refusal::WriteFailed(_)) => "failed-write",
        }
    }
}

/// Keeps `keep.instance` `keep.days` longer when `who` may and its date is still the one
/// announced; one JSON log line either way.
#[allow(clippy::too_many_arguments)]
pub async fn keep<F: Fleet>(
    fleet: &F,
    keep: &Keep,
    who: &Clicker,
    admins: &[String],
    owner_tag: &str,
    rules: &Rules,
    now: DateTime<Utc>,
    deadline: Deadline,
) -> Answer {
    let answer = decide(fleet, keep, who, admins, owner_tag, rules, now, deadline).await;
    tracing::info!(
        target: "reaper::click",
        account = %keep.account,
        region = %keep.region,
        instance = %keep.instance,
        days = keep.days,
        announced = %format_date(keep.announced),
        clicker = %who.label(),
        outcome = answer.outcome(),
        new_date = match &answer { Answer::Kept { new, .. } => new.as_str(), _ => "" },
        "owner action"
    );
    answer
}

/// The instance's `termination_date` as listed now, or `None` when it cannot be read.
async fn confirm<F: Fleet>(fleet: &F, id: &str, deadline: Deadline) -> Option<String> {
    let listed = named(fleet, &[id.to_string()], deadline).await.ok()?;
    let instance = listed.iter().find(|i| i.id == id)?;
    instance.tag(TERMINATION_DATE).map(str::to_string)
}

/// One owner action in the evidence store (docs/EVIDENCE.md, "Owner actions"): written under
/// `clicks/dt=<day>/` for every click whose sender was verified (a Slack signature or a valid
/// link token), accepted or refused. A request nobody can be named for (a bad signature, a
/// forged or expired token) gets the log line only: recording those would let anyone on the
/// internet write to the evidence bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClickRecord {
    pub schema: u32,
    pub record: &'static str,
    /// When the click was answered, RFC 3339 UTC to the millisecond.
    pub at: String,
    /// The UTC day of `at` (also the `dt=` partition).
    pub dt: String,
    /// `slack` (a button) or `link` (an e-mail link).
    pub via: &'static str,
    /// `slack:<member id>` or `link` (the e-mailed owner).
    pub clicker: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub instance_id: Option<String>,
    pub days: Option<u8>,
    /// The `termination_date` the notice announced (what the button answered).
    pub announced: Option<String>,
    /// `kept`, or why not (`Answer::outcome`, `refused-token`).
    pub outcome: String,
    pub old_date: Option<String>,
    pub new_date: Option<String>,
    /// What the clicker was told, for a refusal.
    pub reason: Option<String>,
}

impl ClickRecord {
    fn new(who: &Clicker, now: DateTime<Utc>, outcome: &str) -> Self {
        ClickRecord {
            schema: 1,
            record: "click",
            at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            dt: now.format("%Y-%m-%d").to_string(),
            via: match who {
                Clicker::Slack(_) => "slack",
                Clicker::Link => "link",
            },
            clicker: who.label(),
            account: None,
            region: None,
            instance_id: None,
            days: None,
            announced: None,
            outcome: outcome.to_string(),
            old_date: None,
            new_date: None,
            reason: None,
        }
    }

    /// A verified click on a valid token, and what it came to.
    pub fn answered(keep: &Keep, who: &Clicker, answer: &Answer, now: DateTime<Utc>) -> Self {
        let (old_date, new_date, reason) = match answer {
            Answer::Kept { old, new, .. } => (Some(old.clone()), Some(new.clone()), None),
            Answer::Refused(_) => (None, None, Some(answer.text(&keep.instance))),
        };
        ClickRecord {
            account: Some(keep.account.clone()),
            region: Some(keep.region.clone()),
            instance_id: Some(keep.instance.clone()),
            days: Some(keep.days),
            announced: Some(format_date(keep.announced)),
            old_date,
            new_date,
            reason,
            ..Self::new(who, now, answer.outcome())
        }
    }

    /// A verified Slack user's click on a button whose value is not a valid token (expired,
    /// or not this reaper's): who clicked is known, what they clicked is not.
    pub fn refused_token(who: &Clicker, why: &str, now: DateTime<Utc>) -> Self {
        ClickRecord {
            reason: Some(why.to_string()),
            ..Self::new(who, now, "refused-token")
        }
    }

    /// `clicks/dt=<day>/<time>-<unique>.json`: one object per click, so no two clicks (nor two
    /// functions) ever write the same key.
    pub fn key(&self, unique: &str) -> String {
        let time: String = self
            .at
            .get(11..23)
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        format!("clicks/dt={}/{time}-{unique}.json", self.dt)
    }
}

#[allow(clippy::too_many_arguments)]
async fn decide<F: Fleet>(
    fleet: &F,
    keep: &Keep,
    who: &Clicker,
    admins: &[String],
    owner_tag: &str,
    rules: &Rules,
    now: DateTime<Utc>,
    deadline: Deadline,
) -> Answer {
    let refuse = Answer::Refused;
    let listed = match named(fleet, std::slice::from_ref(&keep.instance), deadline).await {
        Ok(listed) => listed,
        Err(err) => return refuse(Refusal::ListFailed(err.to_string())),
    };
    let Some(instance) = listed.iter().find(|i| i.id == keep.instance) else {
        return refuse(Refusal::NotFound);
    };
    let owner = instance.tag(owner_tag);
    if let Clicker::Slack(user) = who {
        // The owner as the notices read the tag (`classify`): `<@U…>`, `@U…` and `U…` are one
        // member, the one whose notice carried the button.
        let owns =
            matches!(owner.map(classify), Some(OwnerAddress::SlackMember(id)) if &id == user);
        if !owns && !admins.contains(user) {
            return refuse(Refusal::NotOwner {
                owner: owner.map(str::to_string),
            });
        }
    }
    if instance.tag(ANNOUNCED_TAG).is_none() {
        return refuse(Refusal::NotAnnounced);
    }
    let current = instance.tag(TERMINATION_DATE);
    let same = match current.map(parse_termination_date) {
        Some(Ok(TerminationDate::At(at))) => at.timestamp() == keep.announced.timestamp(),
        _ => false,
    };
    if !same {
        return refuse(Refusal::DateChanged {
            announced: format_date(keep.announced),
            now: current.unwrap_or("(none)").to_string(),
        });
    }
    let how = Extension::By(TimeDelta::days(i64::from(keep.days)));
    match extend_one(fleet, instance, how, now, rules, deadline).await {
        Extend::Tried {
            old,
            new,
            extension,
            write: TagWrite::Done,
        } => Answer::Kept {
            old,
            new,
            bound: extension.bound.map(format_date),
        },
        // The write was sent but its answer lost: read the instance again rather than guess.
        // Its date is the new one (kept) or not (nothing changed; the owner may click again).
        Extend::Tried {
            old,
            new,
            extension,
            write: TagWrite::Lost(err),
        } => match confirm(fleet, &keep.instance, deadline).await {
            Some(now) if now == new => Answer::Kept {
                old,
                new,
                bound: extension.bound.map(format_date),
            },
            Some(_) => refuse(Refusal::WriteFailed(format!(
                "{err}; read again, the date is unchanged"
            ))),
            None => refuse(Refusal::WriteFailed(format!(
                "{err}; reading it again failed too"
            ))),
        },
        Extend::Tried { write, .. } => refuse(Refusal::WriteFailed(match write {
            TagWrite::Failed(e) => e.to_string(),
            TagWrite::NotAttempted => "the time was up".into(),
            TagWrite::Done | TagWrite::Lost(_) => unreachable!("matched above"),
        })),
        Extend::Refused(why) => refuse(Refusal::Rules(why)),
        Extend::NotFound => refuse(Refusal::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryFleet;
    use crate::policy::{Instance, InstanceState};
    use chrono::TimeZone;
    use std::time::Duration;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn announced() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 2, 12, 0, 0).unwrap()
    }

    fn instance(date: &str, owner: &str, announced_tag: bool) -> Instance {
        let mut tags = vec![
            ("termination_date".to_string(), date.to_string()),
            ("owner".to_string(), owner.to_string()),
        ];
        if announced_tag {
            tags.push((
                ANNOUNCED_TAG.to_string(),
                "terminate 2030-01-02T12:00:00Z told 2030-01-01T11:00:00Z".into(),
            ));
        }
        Instance {
            id: "i-1".into(),
            state: InstanceState::Running,
            launch_time: Utc.with_ymd_and_hms(2029, 12, 1, 0, 0, 0).unwrap(),
            root_attach_time: None,
            tags: tags.into_iter().collect(),
            billing: None,
        }
    }

    fn keep3() -> Keep {
        Keep {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            instance: "i-1".into(),
            announced: announced(),
            days: 3,
            expires: announced(),
        }
    }

    async fn click(fleet: &MemoryFleet, who: Clicker) -> Answer {
        keep(
            fleet,
            &keep3(),
            &who,
            &["W0ADMIN12".to_string()],
            "owner",
            &Rules::default(),
            now(),
            Deadline::interactive(Duration::from_secs(3), Duration::from_millis(200)),
        )
        .await
    }

    #[tokio::test]
    async fn the_owner_keeps_it_with_one_write() {
        let fleet = MemoryFleet::new([instance("2030-01-02T12:00:00Z", "U0OWNER12", true)]);
        let a = click(&fleet, Clicker::Slack("U0OWNER12".into())).await;
        assert_eq!(
            a,
            Answer::Kept {
                old: "2030-01-02T12:00:00Z".into(),
                new: "2030-01-05T12:00:00Z".into(),
                bound: None
            }
        );
        assert_eq!(fleet.calls("CreateTags"), 1);
        // The same button again: the date has moved, nothing more is written.
        let again = click(&fleet, Clicker::Slack("U0OWNER12".into())).await;
        assert!(
            matches!(again, Answer::Refused(Refusal::DateChanged { .. })),
            "{again:?}"
        );
        assert_eq!(fleet.calls("CreateTags"), 1);
    }

    #[tokio::test]
    async fn refusals_write_nothing() {
        for (inst, who, want) in [
            (
                instance("2030-01-02T12:00:00Z", "U0OWNER12", true),
                Clicker::Slack("U0OTHER34".into()),
                "refused-not-owner",
            ),
            (
                instance("2030-01-02T12:00:00Z", "alice@example.com", true),
                Clicker::Slack("U0OTHER34".into()),
                "refused-not-owner",
            ),
            (
                instance("2030-01-03T12:00:00Z", "U0OWNER12", true),
                Clicker::Slack("U0OWNER12".into()),
                "refused-date-changed",
            ),
            (
                instance("2030-01-02T12:00:00Z", "U0OWNER12", false),
                Clicker::Slack("U0OWNER12".into()),
                "refused-not-announced",
            ),
            (
                instance("indefinite", "U0OWNER12", true),
                Clicker::Link,
                "refused-date-changed",
            ),
        ] {
            let fleet = MemoryFleet::new([inst]);
            let a = click(&fleet, who.clone()).await;
            assert_eq!(a.outcome(), want, "{who:?}: {a:?}");
            assert_eq!(fleet.calls("CreateTags"), 0, "{who:?}");
            assert!(
                a.text("i-1").contains("Nothing changed"),
                "{}",
                a.text("i-1")
            );
        }
        let fleet = MemoryFleet::new([]);
        assert_eq!(
            click(&fleet, Clicker::Link).await.outcome(),
            "refused-not-found"
        );
    }

    #[tokio::test]
    async fn the_owner_keeps_it_however_the_tag_spells_the_member() {
        for tag in ["<@U0OWNER12>", "@U0OWNER12", " U0OWNER12 "] {
            let fleet = MemoryFleet::new([instance("2030-01-02T12:00:00Z", tag, true)]);
            let a = click(&fleet, Clicker::Slack("U0OWNER12".into())).await;
            assert_eq!(a.outcome(), "kept", "{tag:?}: {a:?}");
            assert_eq!(fleet.calls("CreateTags"), 1);
        }
    }

    #[tokio::test]
    async fn each_click_is_one_record_with_what_it_came_to() {
        let at = Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 5).unwrap() + TimeDelta::milliseconds(42);
        let fleet = MemoryFleet::new([instance("2030-01-02T12:00:00Z", "U0OWNER12", true)]);
        let who = Clicker::Slack("U0OWNER12".into());
        let kept = click(&fleet, who.clone()).await;
        let r = ClickRecord::answered(&keep3(), &who, &kept, at);
        let json = serde_json::to_value(&r).unwrap();
        // The record the Athena table `clicks` (deploy_evidence.yaml) and its named query read:
        // tests/deploy/test_evidence_queries.py takes its columns from the same file.
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/evidence/click.json"
        ))
        .unwrap();
        assert_eq!(json, fixture);
        assert_eq!(r.key("abc"), "clicks/dt=2030-01-01/120005042-abc.json");
        // The same button again: refused, and the record says why in the clicker's words.
        let again = click(&fleet, who.clone()).await;
        let r = ClickRecord::answered(&keep3(), &who, &again, at);
        assert_eq!(r.outcome, "refused-date-changed");
        assert_eq!((r.old_date, r.new_date), (None, None));
        assert!(r.reason.unwrap().contains("Nothing changed"));
        let r = ClickRecord::refused_token(&who, "the link expired", at);
        assert_eq!(
            (r.outcome.as_str(), r.instance_id, r.via),
            ("refused-token", None, "slack")
        );
    }

    /// The CreateTags answer is lost: the instance is read again, and the click is "kept" only
    /// when its date is the new one (a lost answer is checked, not guessed).
    #[tokio::test]
    async fn a_lost_answer_is_read_again_not_guessed() {
        let fleet = MemoryFleet::new([instance("2030-01-02T12:00:00Z", "U0OWNER12", true)]);
        fleet.lose_answers("CreateTags");
        let a = click(&fleet, Clicker::Slack("U0OWNER12".into())).await;
        assert_eq!(a.outcome(), "kept", "{a:?}");
        assert_eq!(fleet.calls("CreateTags"), 1);
        assert_eq!(fleet.calls("DescribeInstances"), 2);
        // Refused outright: no second read, and the clicker is told it failed.
        let fleet = MemoryFleet::new([instance("2030-01-02T12:00:00Z", "U0OWNER12", true)]);
        fleet.refuse("CreateTags", "i-1");
        let a = click(&fleet, Clicker::Slack("U0OWNER12".into())).await;
        assert_eq!(a.outcome(), "failed-write", "{a:?}");
        assert_eq!(fleet.calls("DescribeInstances"), 1);
    }

    #[tokio::test]
    async fn an_admin_and_a_link_may_keep_it() {
        for who in [Clicker::Slack("W0ADMIN12".into()), Clicker::Link] {
            let fleet = MemoryFleet::new([instance("2030-01-02T12:00:00Z", "U0OWNER12", true)]);
            assert_eq!(click(&fleet, who).await.outcome(), "kept");
            assert_eq!(fleet.calls("CreateTags"), 1);
        }
    }
}

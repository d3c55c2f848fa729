//! The extend use case: a later `termination_date` for named instances, within the rules, written
//! one instance at a time so each answers for itself. `reaperctl extend` prints what comes back;
//! an owner-actions endpoint could call the same.

use crate::policy::extend::{extended, Extended, Extension};
use crate::policy::{format_date, Instance, Rules};
use crate::ports::{ApiError, Deadline, Fleet, IdOutcome, Mutation};
use chrono::{DateTime, Utc};

/// What extending one named instance came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extend {
    /// Not listed in a judged state: nothing written.
    NotFound,
    /// The rules refuse the extension (why, as a person reads it): nothing written.
    Refused(String),
    /// The new date, and what became of writing it.
    Tried {
        /// The tag's value before, `(none)` when there was none.
        old: String,
        new: String,
        extension: Extended,
        write: TagWrite,
    },
}

/// What became of writing the new `termination_date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagWrite {
    Done,
    Failed(ApiError),
    /// Sent, but the answer was lost: the tag may or may not have been written.
    Lost(ApiError),
    /// Not started: the time was up.
    NotAttempted,
}

/// The named instances as listed now (one DescribeInstances per 1000 ids), in a judged state:
/// what extend and why work on. Ids not listed are simply absent.
pub(crate) async fn named<F: Fleet>(
    fleet: &F,
    ids: &[String],
    deadline: Deadline,
) -> Result<Vec<Instance>, ApiError> {
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    fleet.list(Some(&wanted), deadline).await
}

/// Extends one listed instance: the new date within the rules, written alone so it answers for
/// itself.
pub(crate) async fn extend_one<F: Fleet>(
    fleet: &F,
    instance: &Instance,
    how: Extension,
    now: DateTime<Utc>,
    rules: &Rules,
    deadline: Deadline,
) -> Extend {
    let old = instance
        .tag("termination_date")
        .unwrap_or("(none)")
        .to_string();
    let extension = match extended(instance, how, now, rules) {
        Ok(ext) => ext,
        Err(why) => return Extend::Refused(why),
    };
    let new = format_date(extension.date);
    let tags = vec![("termination_date".to_string(), new.clone())];
    let write = match fleet
        .apply(
            Mutation::Tag(&tags),
            std::slice::from_ref(&instance.id),
            deadline,
        )
        .await
        .pop()
    {
        Some((_, IdOutcome::Done)) => TagWrite::Done,
        Some((_, IdOutcome::Failed(err))) => TagWrite::Failed(err),
        Some((_, IdOutcome::Lost(err))) => TagWrite::Lost(err),
        Some((_, IdOutcome::NotAttempted)) | None => TagWrite::NotAttempted,
    };
    Extend::Tried {
        old,
        new,
        extension,
        write,
    }
}

/// Extends each of `ids` (listed now), in the order given. `Err`: the listing failed, nothing
/// was written.
pub async fn extend<F: Fleet>(
    fleet: &F,
    ids: &[String],
    how: Extension,
    now: DateTime<Utc>,
    rules: &Rules,
    deadline: Deadline,
) -> Result<Vec<(String, Extend)>, ApiError> {
    let listed = named(fleet, ids, deadline).await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(instance) = listed.iter().find(|i| &i.id == id) else {
            out.push((id.clone(), Extend::NotFound));
            continue;
        };
        out.push((
            id.clone(),
            extend_one(fleet, instance, how, now, rules, deadline).await,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryFleet;
    use crate::policy::InstanceState;
    use chrono::{TimeDelta, TimeZone};

    fn inst(id: &str, date: &str) -> Instance {
        Instance {
            id: id.into(),
            state: InstanceState::Running,
            launch_time: Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
            root_attach_time: None,
            billing: None,
            tags: [("termination_date".to_string(), date.to_string())]
                .into_iter()
                .collect(),
        }
    }

    #[tokio::test]
    async fn each_named_instance_answers_for_itself_in_the_order_given() {
        let now = Utc.with_ymd_and_hms(2030, 1, 2, 0, 0, 0).unwrap();
        let fleet = MemoryFleet::new([
            inst("i-a", "2030-01-03T00:00:00Z"),
            inst("i-b", "indefinite"),
        ]);
        let ids = ["i-missing", "i-a", "i-b"].map(String::from);
        let got = extend(
            &fleet,
            &ids,
            Extension::By(TimeDelta::days(2)),
            now,
            &Rules::default(),
            Deadline::NONE,
        )
        .await
        .unwrap();
        assert_eq!(
            fleet.calls("DescribeInstances"),
            1,
            "one listing for all the ids"
        );
        assert_eq!(got[0], ("i-missing".to_string(), Extend::NotFound));
        let Extend::Tried {
            old, new, write, ..
        } = &got[1].1
        else {
            panic!("{:?}", got[1]);
        };
        assert_eq!(
            (old.as_str(), new.as_str(), write),
            (
                "2030-01-03T00:00:00Z",
                "2030-01-05T00:00:00Z",
                &TagWrite::Done
            )
        );
        assert_eq!(
            fleet.get("i-a").unwrap().tags[&"termination_date".to_owned()],
            "2030-01-05T00:00:00Z"
        );
        assert!(
            matches!(&got[2].1, Extend::Refused(_)),
            "indefinite is never shortened to a date: {:?}",
            got[2]
        );
        assert_eq!(
            fleet.get("i-b").unwrap().tags[&"termination_date".to_owned()],
            "indefinite"
        );
    }
}

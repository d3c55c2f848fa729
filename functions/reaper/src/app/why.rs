//! The why use case: the verdict on each named instance as listed now, at a given time. The
//! caller renders it (`report::explain`).

use super::extend::named;
use crate::policy::{judge, Instance, Rules, Verdict};
use crate::ports::{ApiError, Deadline, Fleet};
use chrono::{DateTime, Utc};

/// Each of `ids` in the order given, with its instance as listed now and the verdict on it at
/// `now`, or `None` when it is not listed in a judged state. `Err`: the listing failed.
pub async fn why<F: Fleet>(
    fleet: &F,
    ids: &[String],
    now: DateTime<Utc>,
    rules: &Rules,
    deadline: Deadline,
) -> Result<Vec<(String, Option<(Instance, Verdict)>)>, ApiError> {
    let listed = named(fleet, ids, deadline).await?;
    Ok(ids
        .iter()
        .map(|id| {
            // Cloned: an id may be named twice.
            let found = listed.iter().find(|i| &i.id == id).cloned();
            let judged = found.map(|instance| {
                let verdict = judge(&instance, now, rules);
                (instance, verdict)
            });
            (id.clone(), judged)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{InstanceState, VerdictKind};
    use chrono::TimeZone;

    #[tokio::test]
    async fn each_id_gets_its_verdict_or_none_in_the_order_given() {
        let now = Utc.with_ymd_and_hms(2030, 1, 2, 0, 0, 0).unwrap();
        let expired = Instance {
            id: "i-a".into(),
            state: InstanceState::Running,
            launch_time: now - chrono::TimeDelta::days(3),
            root_attach_time: None,
            billing: None,
            tags: [(
                "termination_date".to_string(),
                "2030-01-01T00:00:00Z".to_string(),
            )]
            .into_iter()
            .collect(),
        };
        let ids = ["i-missing", "i-a"].map(String::from);
        let fleet = crate::adapters::memory::MemoryFleet::new([expired]);
        let got = why(&fleet, &ids, now, &Rules::default(), Deadline::NONE)
            .await
            .unwrap();
        assert_eq!(got[0].0, "i-missing");
        assert!(got[0].1.is_none());
        let (instance, verdict) = got[1].1.as_ref().unwrap();
        assert_eq!(instance.id, "i-a");
        assert_eq!(verdict.kind(), VerdictKind::Terminate);
    }
}

//! The why use case: the verdict on each named instance as listed, at a given time. The caller
//! renders it (`report::explain`).

use crate::policy::{judge, Instance, Rules, Verdict};
use chrono::{DateTime, Utc};

/// Each of `ids` in the order given, with its instance among `listed` and the verdict on it
/// at `now`, or `None` when it is not listed in a judged state.
pub fn why<'a>(
    ids: &'a [String],
    listed: &'a [Instance],
    now: DateTime<Utc>,
    rules: &Rules,
) -> Vec<(&'a str, Option<(&'a Instance, Verdict)>)> {
    ids.iter()
        .map(|id| {
            let found = listed.iter().find(|i| &i.id == id);
            (
                id.as_str(),
                found.map(|instance| (instance, judge(instance, now, rules))),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{InstanceState, VerdictKind};
    use chrono::TimeZone;

    #[test]
    fn each_id_gets_its_verdict_or_none_in_the_order_given() {
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
        let listed = [expired];
        let got = why(&ids, &listed, now, &Rules::default());
        assert_eq!(got[0].0, "i-missing");
        assert!(got[0].1.is_none());
        let (instance, verdict) = got[1].1.as_ref().unwrap();
        assert_eq!(instance.id, "i-a");
        assert_eq!(verdict.kind(), VerdictKind::Terminate);
    }
}

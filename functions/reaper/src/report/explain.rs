//! `reaperctl why`: one instance's verdict, its reason and when the reaper would act, as a
//! paragraph a person reads.

use crate::policy::{format_date, Instance, Rules, Stamp, Verdict};
use chrono::{DateTime, Utc};

/// `region` is where the instance is: the `extend` it suggests must run there.
pub fn explain(
    instance: &Instance,
    verdict: &Verdict,
    rules: &Rules,
    now: DateTime<Utc>,
    region: &str,
) -> String {
    let when = match verdict {
        Verdict::SkipManaged { .. } => {
            "It never acts on it while SKIP_MANAGED is true.".to_string()
        }
        Verdict::Keep { until: None, .. } => "It never terminates it.".to_string(),
        Verdict::Keep {
            until: Some(at), ..
        }
        | Verdict::Expiring { date: at, .. } => format!(
            "It terminates it at the first scheduled sweep after {}; the owner is told from {} \
             (WARN_WINDOW before). To keep it: reaperctl extend {} --by 3d --region {region}.",
            format_date(*at),
            format_date(*at - rules.warn_window),
            instance.id
        ),
        Verdict::Terminate { .. } => format!(
            "It terminates it at the next scheduled sweep (as of {}), within MAX_TERMINATIONS.",
            format_date(now)
        ),
        Verdict::Stamp {
            stamp: Stamp::At(at),
            ..
        } => format!(
            "At the next sweep it writes termination_date={}; it terminates it after {}.",
            format_date(*at),
            verdict
                .enforced_date()
                .map_or_else(|| format_date(*at), format_date)
        ),
        Verdict::Stamp {
            stamp: Stamp::Indefinite,
            ..
        } => "At the next sweep it writes termination_date=indefinite; it never terminates it."
            .to_string(),
        Verdict::Wait { until, .. } => format!(
            "Unless it gets a valid termination_date or lifetime tag, the first sweep after {} \
             stops it (never terminates it).",
            format_date(*until)
        ),
        Verdict::Stop { .. } => {
            "The next sweep stops it (never terminates it) and tags the reason; add a valid \
             termination_date or lifetime tag and start it again."
                .to_string()
        }
        Verdict::Noncompliant { .. } => {
            "It is stopped already; the reaper does nothing more until it has a valid tag, and \
             never terminates it without one."
                .to_string()
        }
    };
    format!(
        "{} ({}, {}): {}: {}. {when}",
        instance.id,
        instance.tag("Name").unwrap_or("no Name"),
        instance.state,
        verdict.kind(),
        verdict.reason()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{judge, InstanceState};
    use chrono::{TimeDelta, TimeZone};

    #[test]
    fn a_paragraph_says_verdict_reason_and_when() {
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap();
        let instance = Instance {
            id: "i-0123456789abcdef0".into(),
            state: InstanceState::Running,
            launch_time: now - TimeDelta::days(3),
            root_attach_time: None,
            billing: None,
            tags: [
                (
                    "termination_date".to_string(),
                    "2030-01-05T00:00:00Z".to_string(),
                ),
                ("Name".to_string(), "web".to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let rules = Rules::default();
        let text = explain(
            &instance,
            &judge(&instance, now, &rules),
            &rules,
            now,
            "eu-west-1",
        );
        assert_eq!(
            text,
            "i-0123456789abcdef0 (web, running): keep: expires 2030-01-05T00:00:00Z. It terminates \
             it at the first scheduled sweep after 2030-01-05T00:00:00Z; the owner is told from \
             2030-01-04T00:00:00Z (WARN_WINDOW before). To keep it: reaperctl extend \
             i-0123456789abcdef0 --by 3d --region eu-west-1."
        );
    }
}

//! The CloudWatch Embedded Metric Format line: counts per verdict and outcome, and duration, so no
//! PutMetricData call (and no permission for it) is needed.

use super::{Outcome, RunReport};
use crate::policy::VerdictKind;
use serde_json::{json, Map, Value};

impl RunReport {
    pub(crate) fn emf_line(&self) -> String {
        let mut metrics = Vec::new();
        let mut values = Map::new();
        let mut count = |name: String, value: u64, unit: &str| {
            values.insert(name.clone(), value.into());
            metrics.push(json!({"Name": name, "Unit": unit}));
        };
        for kind in VerdictKind::ALL {
            count(format!("verdict.{kind}"), self.verdict_count(kind), "Count");
        }
        for outcome in Outcome::ALL {
            count(
                format!("outcome.{outcome}"),
                self.outcome_count(outcome),
                "Count",
            );
        }
        count(
            "duration".into(),
            self.duration_ms().max(0) as u64,
            "Milliseconds",
        );
        count("errors".into(), self.errors.len() as u64, "Count");
        values.insert("Mode".into(), self.mode.to_string().into());
        values.insert("Region".into(), self.region.clone().into());
        values.insert("run_id".into(), self.run_id.clone().into());
        values.insert(
            "_aws".into(),
            json!({
                "Timestamp": self.finished_at.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": "EC2Reaper",
                    "Dimensions": [["Region", "Mode"]],
                    "Metrics": metrics,
                }],
            }),
        );
        Value::Object(values).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Mode, TriggerKind};
    use chrono::DateTime;

    #[test]
    fn emf_line_declares_every_metric_it_sets() {
        let mut r = RunReport::new(
            "run-1".into(),
            "123456789012".into(),
            "eu-west-1".into(),
            Mode::DryRun,
            TriggerKind::Schedule,
            DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
        );
        r.counts.verdicts.insert(VerdictKind::Stop, 2);
        let v: Value = serde_json::from_str(&r.emf_line()).unwrap();
        let metrics = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        assert_eq!(
            metrics.len(),
            VerdictKind::ALL.len() + Outcome::ALL.len() + 2
        );
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!(v.get(name).is_some(), "{name} has no value");
        }
        assert_eq!(v["verdict.stop"], 2);
        assert_eq!(v["outcome.unknown"], 0);
        assert_eq!(v["Mode"], "dry-run");
    }
}

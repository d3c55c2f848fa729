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
        // What the run's actions save, in dollars a month (to the cent), when priced: the total
        // and by action, so a dashboard can chart them.
        if let Some(savings) = self.savings.as_ref().filter(|s| s.priced()) {
            let mut dollars = |name: String, usd: Option<crate::policy::price::Usd>| {
                let cents = usd.map_or(0, |u| u.cents());
                values.insert(name.clone(), json!(cents as f64 / 100.0));
                metrics.push(json!({"Name": name, "Unit": "None"}));
            };
            dollars("SavingsPerMonthUSD".into(), savings.saved.per_month);
            for (action, total) in &savings.by_action {
                dollars(format!("SavingsPerMonthUSD.{action}"), total.per_month);
            }
        }
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
        assert!(
            v.get("SavingsPerMonthUSD").is_none(),
            "no prices, no dollars"
        );
    }

    #[test]
    fn a_priced_run_emits_its_savings_in_dollars_by_action() {
        use crate::policy::price::Usd;
        use crate::report::savings::{SavingAction, Savings, Total, PRICING_API};
        let mut r = RunReport::new(
            "run-1".into(),
            "123456789012".into(),
            "eu-west-1".into(),
            Mode::Live,
            TriggerKind::Schedule,
            DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
        );
        let total = |usd: &str| Total {
            per_month: Some(Usd::parse(usd).unwrap()),
            ..Total::default()
        };
        r.savings = Some(Savings {
            price_source: PRICING_API.into(),
            saved: total("784.968"),
            by_action: [(SavingAction::Stop, total("662.84"))]
                .into_iter()
                .collect(),
            ..Savings::default()
        });
        let v: Value = serde_json::from_str(&r.emf_line()).unwrap();
        assert_eq!(v["SavingsPerMonthUSD"], 784.97);
        assert_eq!(v["SavingsPerMonthUSD.stop"], 662.84);
        let names: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert!(names.contains(&"SavingsPerMonthUSD.stop"), "{names:?}");
    }
}

//! One invocation: event -> trigger -> sweep -> report -> sinks (S3, Slack, log lines).
//! Shared by the Lambda entry point and anything else that wants the Lambda's behaviour.

use crate::config::Config;
use crate::event::{EventError as TriggerError, Trigger};
use crate::fleet::Fleet;
use crate::report::RunReport;
use crate::sweep::{sweep, RunContext, SweepRequest, TriggerKind};
use chrono::Utc;
use serde_json::Value;
use std::time::Instant;

/// The Lambda's return value stays far below the 6 MB response limit; S3 keeps the whole report.
pub const MAX_RESPONSE_BYTES: usize = 1_000_000;
/// CloudWatch Logs takes events up to 256 KB; the report's log line stays below that.
pub const MAX_LOG_LINE_BYTES: usize = 200_000;

/// Everything built once per Lambda instance (clients are reused across invocations).
pub struct App<F> {
    pub fleet: F,
    pub config: Config,
    pub region: String,
    pub s3: Option<aws_sdk_s3::Client>,
    pub http: reqwest::Client,
}

/// Per-invocation facts from the runtime.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub run_id: String,
    pub account: String,
    pub deadline: Option<Instant>,
}

/// The account id in a Lambda function ARN (`arn:aws:lambda:<region>:<account>:function:<name>`).
pub fn account_from_arn(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(4)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
}

/// Turns an event into a sweep request. The only place that decides live vs dry run.
pub fn request(
    trigger: &Trigger,
    config: &Config,
    deadline: Option<Instant>,
) -> Result<SweepRequest, TriggerError> {
    let now = Utc::now();
    let mut req = SweepRequest {
        trigger: TriggerKind::Schedule,
        live: config.live,
        now,
        forecast: false,
        instance_ids: None,
        deadline,
    };
    match trigger {
        Trigger::Schedule => {}
        Trigger::InstanceState { instance_id, state } => {
            req.trigger = TriggerKind::InstanceState;
            // The rule sends only `pending`; any other state has nothing to stamp at launch.
            req.instance_ids = Some(if state == "pending" {
                vec![instance_id.clone()]
            } else {
                Vec::new()
            });
        }
        Trigger::Manual(manual) => {
            req.trigger = TriggerKind::Manual;
            // A payload can force a dry run but never turn live mode on.
            req.live = config.live && !manual.dry_run;
            if let Some(at) = manual.at {
                if req.live {
                    return Err(TriggerError::AtInLiveMode);
                }
                req.now = at;
                req.forecast = true;
            }
            req.instance_ids = manual.instance_ids.clone();
        }
    }
    Ok(req)
}

/// Handles one event end to end. Errors only for a malformed event; everything else is in the
/// report.
pub async fn handle<F: Fleet>(
    app: &App<F>,
    event: &Value,
    invocation: Invocation,
) -> Result<RunReport, TriggerError> {
    let trigger = Trigger::parse(event)?;
    let req = request(&trigger, &app.config, invocation.deadline)?;
    let ctx = RunContext {
        run_id: invocation.run_id,
        account: invocation.account,
        region: app.region.clone(),
    };
    tracing::info!(
        trigger = req.trigger.as_str(),
        live = req.live,
        forecast = req.forecast,
        "run started"
    );
    let mut report = sweep(&app.fleet, &app.config, ctx, req).await;
    tracing::info!(
        judged = report.instances_judged,
        errors = report.errors.len(),
        duration_ms = report.duration_ms(),
        "run finished"
    );
    if let Trigger::InstanceState { state, instance_id } = &trigger {
        if state != "pending" {
            report.warnings.push(format!(
                "state-change event for {instance_id} in state {state:?} ignored; only \"pending\" is judged at once"
            ));
        }
    }
    deliver(app, &mut report).await;
    Ok(report.trimmed(MAX_RESPONSE_BYTES))
}

/// Slack first, then S3 (so the archived copy records the Slack result), then the log lines
/// (a huge report's log line is shortened like the return value; counts stay exact).
pub async fn deliver<F>(app: &App<F>, report: &mut RunReport) {
    if let (Some(_), Some(bucket)) = (&app.s3, &app.config.report_bucket) {
        // Slack links to the S3 copy about to be written; if the write fails, `archive` clears
        // this again and says why in `errors`.
        report.delivery.s3 = Some(crate::aws::s3::report_url(bucket, report));
    }
    crate::slack::notify(&app.http, app.config.slack_webhook.as_ref(), report).await;
    if let (Some(s3), Some(bucket)) = (&app.s3, &app.config.report_bucket) {
        crate::aws::s3::archive(s3, bucket, report).await;
    }
    println!("{}", report.trimmed(MAX_LOG_LINE_BYTES).log_line());
    println!("{}", report.emf_line());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Manual;

    #[test]
    fn account_comes_from_the_function_arn() {
        assert_eq!(
            account_from_arn("arn:aws:lambda:eu-west-1:123456789012:function:ec2-reaper")
                .as_deref(),
            Some("123456789012")
        );
        assert_eq!(account_from_arn("nonsense"), None);
    }

    #[test]
    fn a_payload_cannot_turn_live_mode_on_and_at_needs_a_dry_run() {
        let dry = Config::default();
        let live = Config {
            live: true,
            ..Config::default()
        };
        let m = |dry_run: bool, at: bool| {
            Trigger::Manual(Manual {
                dry_run,
                at: at.then(|| "2031-01-01T00:00:00Z".parse().unwrap()),
                instance_ids: None,
            })
        };
        assert!(!request(&m(false, false), &dry, None).unwrap().live);
        assert!(request(&m(false, false), &live, None).unwrap().live);
        assert!(!request(&m(true, false), &live, None).unwrap().live);
        assert_eq!(
            request(&m(false, true), &live, None).unwrap_err(),
            TriggerError::AtInLiveMode
        );
        let forecast = request(&m(true, true), &live, None).unwrap();
        assert!(!forecast.live && forecast.forecast);
        assert_eq!(forecast.now.to_rfc3339(), "2031-01-01T00:00:00+00:00");
        assert!(request(&Trigger::Schedule, &live, None).unwrap().live);
    }
}

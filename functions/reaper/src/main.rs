//! The Lambda entry point: configuration and AWS clients built once, then the runtime loop.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use reaper::aws::{ec2::Ec2Fleet, ec2_client, load_sdk_config, s3_client, CallCounter};
use reaper::config::Config;
use reaper::handler::{account_from_arn, handle, App, Invocation};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    reaper::logging::init();
    // A bad setting stops the function before it touches anything: one line, then exit.
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ec2-reaper: configuration error: {err}");
            std::process::exit(2);
        }
    };
    let sdk = load_sdk_config(None, None).await;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let calls = CallCounter::default();
    let app = App {
        fleet: Ec2Fleet::new(ec2_client(&sdk, &calls), calls.clone()),
        s3: config
            .report_bucket
            .as_ref()
            .map(|_| s3_client(&sdk, &calls)),
        http: reaper::slack::http_client(),
        config,
        region,
    };
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let ctx = event.context;
        let invocation = Invocation {
            run_id: ctx.request_id.clone(),
            account: account_from_arn(&ctx.invoked_function_arn)
                .unwrap_or_else(|| "unknown".into()),
            deadline: deadline(ctx.deadline),
        };
        let span = tracing::info_span!("run", run_id = %ctx.request_id);
        handle(app, &event.payload, invocation)
            .instrument(span)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "rejected the event");
                Error::from(err)
            })
    }))
    .await
}

/// The runtime gives the deadline as epoch milliseconds; the sweep wants an `Instant`.
fn deadline(epoch_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(epoch_ms.saturating_sub(now_ms)))
}

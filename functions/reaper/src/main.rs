//! The Lambda entry point: logging, configuration and adapters built once, then the runtime loop.
// The handler future nests the SDK's futures deeply (listing, bisect, per-call deadline).
#![recursion_limit = "256"]

use lambda_runtime::tower::util::MapRequestLayer;
use lambda_runtime::{
    layers::TracingLayer, service_fn, Error, LambdaEvent, LambdaInvocation, Runtime,
};
use reaper::adapters::member::link_key;
use reaper::adapters::{
    cloudformation::StackCreation, ec2::Ec2Fleet, load_sdk_config, pricing::PriceList,
    s3::S3Archive, ses::Mailer, slack::SlackWebhook,
};
use reaper::app::Enrolment;
use reaper::click::token::KeepSigner;
use reaper::config::Config;
use reaper::event::{EventPayload, RawEvent};
use reaper::handler::{account_from_arn, handle, App, Invocation};
use reaper::ports::{Deadline, Prices};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

// One thread: a run is a sequence of awaited calls; worker threads would only add malloc arenas
// (peak memory) and start-up time.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    reaper::process::tune_allocator();
    reaper::logging::init();
    // A bad setting stops the function before it touches anything: one line, then exit.
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ec2-reaper: configuration error: {err}");
            std::process::exit(2);
        }
    };
    let sdk = load_sdk_config(None, None).await;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    // Keep buttons and links (docs/ACTIONS.md): the key is read once. When it cannot be read the
    // reaper runs on without them (its notices still tell owners, with `reaperctl extend`): a
    // convenience must not stop the sweeps. Said at start-up and in every report, as a warning.
    let keep_links = match &config.owner_actions {
        Some(actions) => match link_key(&sdk, &actions.link_key_arn).await {
            Ok(key) => Some(KeepSigner {
                key,
                url: actions.url.clone(),
            }),
            Err(err) => {
                config.warnings.push(format!(
                    "{err}: notices go out without Keep buttons and links until the function starts again"
                ));
                None
            }
        },
        None => None,
    };
    // Each warning once at start-up, in its own line, as well as in every run's report.
    for warning in &config.warnings {
        tracing::warn!(warning = %warning, "configuration");
    }
    let fleet = Ec2Fleet::from_sdk(&sdk);
    let prices: Arc<dyn Prices> = Arc::new(PriceList::from_sdk(&sdk, &region));
    let app = App {
        archive: config
            .report_bucket
            .clone()
            .map(|bucket| S3Archive::from_sdk(&sdk, fleet.counter(), bucket)),
        chat: SlackWebhook::configured(&config, &sdk, fleet.counter()),
        mailer: Mailer::configured(&config, &sdk, fleet.counter()),
        enrolment: match &config.stack_id {
            Some(stack) => Enrolment::of_stack(StackCreation::from_sdk(
                &sdk,
                stack.clone(),
                fleet.counter(),
            )),
            None => Enrolment::none(),
        },
        fleet,
        config,
        region,
        prices: Some(prices),
        keep_links,
    };
    let app = &app;
    let handler = service_fn(move |event: LambdaEvent<RawEvent>| async move {
        let ctx = event.context;
        let invocation = Invocation {
            run_id: ctx.request_id.clone(),
            account: account_from_arn(&ctx.invoked_function_arn)
                .unwrap_or_else(|| "unknown".into()),
            deadline: deadline(ctx.deadline),
        };
        let span = tracing::info_span!("run", run_id = %ctx.request_id);
        let payload = EventPayload::from_bytes(&event.payload.0);
        handle(app, &payload, invocation)
            .instrument(span)
            .await
            .inspect_err(|err| tracing::error!(error = %err, "rejected the event"))
    });
    // The runtime's deserializer reads only the envelope, which never fails: every body, however
    // malformed, reaches the handler and is answered `InvalidEvent` (SPEC §7).
    Runtime::new(handler)
        .layer(TracingLayer::new())
        .layer(MapRequestLayer::new(|mut invocation: LambdaInvocation| {
            invocation.body = RawEvent::envelope(&invocation.body).into();
            invocation
        }))
        .run()
        .await
}

/// The runtime gives the deadline as epoch milliseconds; the run wants an `Instant`.
fn deadline(epoch_ms: u64) -> Deadline {
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return Deadline::NONE;
    };
    let left = Duration::from_millis(epoch_ms).saturating_sub(now);
    Deadline::at(Instant::now() + left)
}

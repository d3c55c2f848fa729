//! reaper-actions: the owner-actions Lambda behind a Function URL (issue 23). Slack buttons and
//! e-mail links arrive here; the request is verified (Slack's v0 signature, or the link token's
//! HMAC), and `app::click::keep` writes one new `termination_date` through the role the reaper
//! StackSet deploys in the instance's account, or refuses and changes nothing. Wiring only.
//!
//! Configuration: LINK_KEY_ARN, ACTIONS_ROLE_NAME (required), SLACK_SIGNING_SECRET_ARN,
//! ADMIN_SLACK_IDS, MAX_LIFETIME, ALLOW_INDEFINITE, OWNER_TAG (`config::ActionsConfig`).

use chrono::Utc;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use reaper::adapters::load_sdk_config;
use reaper::adapters::member::{secret_string, MemberAccounts};
use reaper::app::click::{keep, Answer, Clicker, Refusal};
use reaper::click::request::{Route, UrlRequest};
use reaper::click::slack::{button_click, SigningSecret};
use reaper::click::token::{Keep, LinkKey};
use reaper::config::ActionsConfig;
use reaper::policy::format_date;
use reaper::ports::Deadline;
use reaper::render::click as pages;
use serde_json::{json, Value};
use std::time::Duration;

/// Slack wants an answer within 3 s; the work must be done by then, with a margin for the reply.
const BUDGET: Duration = Duration::from_millis(2500);
const MARGIN: Duration = Duration::from_millis(250);

struct State {
    config: ActionsConfig,
    signing: Option<SigningSecret>,
    key: LinkKey,
    members: MemberAccounts,
    http: reqwest::Client,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    reaper::logging::init();
    let config = ActionsConfig::from_env().unwrap_or_else(|err| {
        eprintln!("reaper-actions: configuration error: {err}");
        std::process::exit(2);
    });
    let sdk = load_sdk_config(None, None).await;
    let start = Deadline::interactive(Duration::from_secs(10), Duration::from_secs(1));
    let secret = |arn: String| {
        let sdk = &sdk;
        async move {
            secret_string(sdk, &arn, start).await.unwrap_or_else(|err| {
                eprintln!("reaper-actions: reading secret {arn}: {err}");
                std::process::exit(2);
            })
        }
    };
    let key =
        LinkKey::new(secret(config.link_key_arn.clone()).await.as_bytes()).unwrap_or_else(|err| {
            eprintln!("reaper-actions: LINK_KEY_ARN: {err}");
            std::process::exit(2);
        });
    let signing = match config.slack_signing_secret_arn.clone() {
        Some(arn) => Some(
            SigningSecret::new(&secret(arn).await).unwrap_or_else(|err| {
                eprintln!("reaper-actions: SLACK_SIGNING_SECRET_ARN: {err}");
                std::process::exit(2);
            }),
        ),
        None => None,
    };
    let partition = config
        .link_key_arn
        .split(':')
        .nth(1)
        .unwrap_or("aws")
        .to_string();
    let state = State {
        members: MemberAccounts::new(&sdk, &config.actions_role_name, &partition),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap_or_default(),
        config,
        signing,
        key,
    };
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(answer(state, &event.payload).await)
    }))
    .await
}

/// One request, one answer; never an error (Function URLs would turn it into a bare 502).
async fn answer(state: &State, event: &Value) -> Value {
    let now = Utc::now();
    let deadline = Deadline::interactive(BUDGET, MARGIN);
    let req = match UrlRequest::from_event(event) {
        Ok(req) => req,
        Err(why) => return refused(400, "bad-request", &why),
    };
    match req.route() {
        Route::Bad(why) => refused(400, "bad-request", why),
        Route::Slack => {
            let Some(secret) = &state.signing else {
                return refused(
                    403,
                    "refused-slack-off",
                    "Slack buttons are not configured here (SLACK_SIGNING_SECRET_ARN)",
                );
            };
            let ts = req.header("x-slack-request-timestamp");
            if let Err(err) = secret.verify(ts, req.header("x-slack-signature"), &req.body, now) {
                return refused(401, "refused-signature", &err.to_string());
            }
            let click = match button_click(&req.body) {
                Ok(click) => click,
                Err(err) => return refused(400, "bad-request", &err.to_string()),
            };
            let text = match state.key.verify(&click.value, now) {
                Ok(keep) => {
                    act(state, &keep, Clicker::Slack(click.user), deadline)
                        .await
                        .1
                }
                Err(err) => {
                    log_refusal("refused-token", &err.to_string());
                    format!("This button cannot be used: {err}. Nothing changed.")
                }
            };
            if let Some(url) = &click.response_url {
                // In the thread, for the clicker only; best effort within what is left.
                let reply =
                    json!({"response_type": "ephemeral", "replace_original": false, "text": text});
                if let Err(err) = state.http.post(url).json(&reply).send().await {
                    tracing::warn!(error = %err, "posting the answer to response_url failed");
                }
            }
            http(
                200,
                "application/json",
                json!({"response_type": "ephemeral", "replace_original": false, "text": text})
                    .to_string(),
            )
        }
        Route::LinkConfirm(token) => match state.key.verify(&token, now) {
            Ok(k) => http(
                200,
                "text/html; charset=utf-8",
                pages::confirm(
                    &k.instance,
                    &k.account,
                    &k.region,
                    &format_date(k.announced),
                    k.days,
                    &token,
                ),
            ),
            Err(err) => link_refused(&err.to_string()),
        },
        Route::LinkKeep(token) => match state.key.verify(&token, now) {
            Ok(k) => {
                let (kept, text) = act(state, &k, Clicker::Link, deadline).await;
                let title = if kept { "Kept" } else { "Nothing changed" };
                http(200, "text/html; charset=utf-8", pages::result(title, &text))
            }
            Err(err) => link_refused(&err.to_string()),
        },
    }
}

async fn act(state: &State, k: &Keep, who: Clicker, deadline: Deadline) -> (bool, String) {
    let c = &state.config;
    let answer = match state.members.fleet(&k.account, &k.region, deadline).await {
        Ok(fleet) => {
            keep(
                &fleet,
                k,
                &who,
                &c.admin_slack_ids,
                &c.owner_tag,
                &c.rules,
                Utc::now(),
                deadline,
            )
            .await
        }
        Err(err) => {
            log_refusal("failed-assume-role", &err.to_string());
            Answer::Refused(Refusal::ListFailed(format!(
                "the reaper's role in account {}: {err}",
                k.account
            )))
        }
    };
    (
        matches!(answer, Answer::Kept { .. }),
        answer.text(&k.instance),
    )
}

/// A click refused before it named an instance: one JSON line all the same.
fn log_refusal(outcome: &str, reason: &str) {
    tracing::info!(target: "reaper::click", outcome, reason, "owner action");
}

fn refused(status: u16, outcome: &str, why: &str) -> Value {
    log_refusal(outcome, why);
    http(status, "text/plain; charset=utf-8", why.to_string())
}

fn link_refused(why: &str) -> Value {
    log_refusal("refused-token", why);
    http(
        400,
        "text/html; charset=utf-8",
        pages::result(
            "This link cannot be used",
            &format!("{why}. Nothing changed."),
        ),
    )
}

fn http(status: u16, content_type: &str, body: String) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": content_type, "cache-control": "no-store", "x-content-type-options": "nosniff"},
        "body": body,
        "isBase64Encoded": false,
    })
}

//! reaper-actions: the owner-actions Lambda behind a Function URL (issue 23). Slack buttons and
//! e-mail links arrive here; the request is verified (Slack's v0 signature, or the link token's
//! HMAC), and `app::click::keep` writes one new `termination_date` through the role the reaper
//! StackSet deploys in the instance's account, or refuses and changes nothing. Wiring only.
//!
//! Every verified click, accepted or refused, is one JSON log line and (with REPORT_BUCKET) one
//! record under `clicks/` in the evidence bucket (docs/EVIDENCE.md, "Owner actions").
//!
//! Configuration: LINK_KEY_ARN, ACTIONS_ROLE_NAME (required), SLACK_SIGNING_SECRET_ARN,
//! ADMIN_SLACK_IDS, MAX_LIFETIME, ALLOW_INDEFINITE, OWNER_TAG, REPORT_BUCKET
//! (`config::ActionsConfig`).

use chrono::Utc;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use reaper::adapters::member::{link_key, secret_string, MemberAccounts};
use reaper::adapters::s3::S3Archive;
use reaper::adapters::{load_sdk_config, CallCounter};
use reaper::app::click::{keep, Answer, ClickRecord, Clicker, Refusal};
use reaper::click::request::{Route, UrlRequest};
use reaper::click::slack::{button_click, SigningSecret};
use reaper::click::token::{Keep, LinkKey};
use reaper::config::ActionsConfig;
use reaper::policy::format_date;
use reaper::ports::Deadline;
use reaper::render::click as pages;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Slack wants an answer within 3 s: the click's work gets 2 s (with a margin), then the reply
/// to the thread and the click's record share what is left up to `ANSWERED_BY`, at most
/// `AFTER_WORK` each, side by side.
const BUDGET: Duration = Duration::from_millis(2000);
const MARGIN: Duration = Duration::from_millis(250);
const ANSWERED_BY: Duration = Duration::from_millis(2800);
const AFTER_WORK: Duration = Duration::from_millis(800);

struct State {
    config: ActionsConfig,
    sdk: aws_config::SdkConfig,
    /// The Slack signing secret, read at the first Slack click that needs it and kept: the
    /// stack creates the secret empty, and e-mail links must work before Slack is set up.
    signing: tokio::sync::OnceCell<SigningSecret>,
    key: LinkKey,
    members: MemberAccounts,
    http: reqwest::Client,
    /// Where each click's record goes (REPORT_BUCKET), when set.
    records: Option<S3Archive>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    reaper::logging::init();
    let config = ActionsConfig::from_env().unwrap_or_else(|err| {
        eprintln!("reaper-actions: configuration error: {err}");
        std::process::exit(2);
    });
    let sdk = load_sdk_config(None, None).await;
    // Without the key no link or button can be checked: the function does not start.
    let key = link_key(&sdk, &config.link_key_arn)
        .await
        .unwrap_or_else(|err| {
            eprintln!("reaper-actions: {err}");
            std::process::exit(2);
        });
    let partition = config
        .link_key_arn
        .split(':')
        .nth(1)
        .unwrap_or("aws")
        .to_string();
    let state = State {
        members: MemberAccounts::new(&sdk, &config.actions_role_name, &partition),
        records: config
            .report_bucket
            .clone()
            .map(|bucket| S3Archive::from_sdk(&sdk, &CallCounter::default(), bucket)),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap_or_default(),
        config,
        sdk,
        signing: tokio::sync::OnceCell::new(),
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
    let started = Instant::now();
    let now = Utc::now();
    let deadline = Deadline::interactive(BUDGET, MARGIN);
    let req = match UrlRequest::from_event(event) {
        Ok(req) => req,
        Err(why) => return refused(400, "bad-request", &why),
    };
    match req.route() {
        Route::Bad(why) => refused(400, "bad-request", why),
        Route::Slack => {
            let Some(arn) = &state.config.slack_signing_secret_arn else {
                return refused(
                    403,
                    "refused-slack-off",
                    "Slack buttons are not configured here (SLACK_SIGNING_SECRET_ARN)",
                );
            };
            let read = state.signing.get_or_try_init(|| async {
                let value = secret_string(&state.sdk, arn, deadline)
                    .await
                    .map_err(|err| format!("reading SLACK_SIGNING_SECRET_ARN {arn}: {err}"))?;
                SigningSecret::new(&value)
                    .map_err(|err| format!("SLACK_SIGNING_SECRET_ARN {arn}: {err}"))
            });
            let secret = match read.await {
                Ok(secret) => secret,
                // Not cached: the next click tries again (set the secret; no redeploy).
                Err(why) => {
                    log_refusal("failed-signing-secret", &why);
                    return http(
                        503,
                        "text/plain; charset=utf-8",
                        "Slack clicks cannot be checked here yet: the signing secret is not readable (the function's log says why). Nothing changed.".into(),
                    );
                }
            };
            let ts = req.header("x-slack-request-timestamp");
            if let Err(err) = secret.verify(ts, req.header("x-slack-signature"), &req.body, now) {
                return refused(401, "refused-signature", &err.to_string());
            }
            let click = match button_click(&req.body) {
                Ok(click) => click,
                Err(err) => return refused(400, "bad-request", &err.to_string()),
            };
            let who = Clicker::Slack(click.user);
            let (text, record) = match state.key.verify(&click.value, now) {
                Ok(keep) => {
                    let answer = act(state, &keep, &who, deadline).await;
                    let record = ClickRecord::answered(&keep, &who, &answer, Utc::now());
                    (answer.text(&keep.instance), record)
                }
                Err(err) => {
                    log_refusal("refused-token", &err.to_string());
                    let why = format!("This button cannot be used: {err}. Nothing changed.");
                    (
                        why.clone(),
                        ClickRecord::refused_token(&who, &why, Utc::now()),
                    )
                }
            };
            // In the thread, for the clicker only, and the record: side by side, best effort
            // within what is left before Slack's 3 s. The same answer is the HTTP body.
            let reply =
                json!({"response_type": "ephemeral", "replace_original": false, "text": text});
            let limit = after_work(started);
            let post = async {
                if let Some(url) = &click.response_url {
                    let post = state.http.post(url).timeout(limit).json(&reply).send();
                    if let Err(err) = post.await.and_then(|r| r.error_for_status()) {
                        tracing::warn!(error = %err, "posting the answer to response_url failed");
                    }
                }
            };
            tokio::join!(post, write_record(state, &record, limit));
            http(200, "application/json", reply.to_string())
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
                let answer = act(state, &k, &Clicker::Link, deadline).await;
                let record = ClickRecord::answered(&k, &Clicker::Link, &answer, Utc::now());
                write_record(state, &record, after_work(started)).await;
                let title = match answer {
                    Answer::Kept { .. } => "Kept",
                    Answer::Refused(_) => "Nothing changed",
                };
                http(
                    200,
                    "text/html; charset=utf-8",
                    pages::result(title, &answer.text(&k.instance)),
                )
            }
            Err(err) => link_refused(&err.to_string()),
        },
    }
}

/// What is left of the time to answer, for the reply and the record (at most `AFTER_WORK`).
fn after_work(started: Instant) -> Duration {
    ANSWERED_BY
        .saturating_sub(started.elapsed())
        .min(AFTER_WORK)
}

/// The click's record in the evidence bucket; a failure is logged and changes no answer (the
/// log line, written already, is the record of last resort).
async fn write_record(state: &State, record: &ClickRecord, limit: Duration) {
    let Some(archive) = &state.records else {
        return;
    };
    let key = record.key(&uuid::Uuid::new_v4().simple().to_string());
    let body = match serde_json::to_vec(record) {
        Ok(body) => body,
        Err(err) => {
            tracing::warn!(target: "reaper::click", error = %err, "click record not written");
            return;
        }
    };
    if limit.is_zero() {
        tracing::warn!(target: "reaper::click", key, "click record not written: no time left before Slack's 3 s");
    } else if let Err(err) = archive.put_within(&key, body, limit).await {
        tracing::warn!(target: "reaper::click", key, error = %err, "click record not written");
    }
}

async fn act(state: &State, k: &Keep, who: &Clicker, deadline: Deadline) -> Answer {
    let c = &state.config;
    match state.members.fleet(&k.account, &k.region, deadline).await {
        Ok(fleet) => {
            keep(
                &fleet,
                k,
                who,
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
    }
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

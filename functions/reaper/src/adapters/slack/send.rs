//! Posting to a Slack incoming webhook: a per-attempt timeout held to the run's deadline, one
//! retry after a 5xx, a timeout or a failed connection (a 4xx is a bad or revoked webhook and is
//! not retried), and the webhook URL (the secret) redacted from every error.

use crate::adapters::{api_error, within, CallCounter};
use crate::config::{parse_webhook, Webhook};
use crate::ports::{Chat, ChatError, Deadline, PostFailure};
use crate::text::clip;
use crate::text::oneline;
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

/// Pause before the retry: long enough for a blip to pass, short enough for a Lambda.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// The HTTP client for Slack, built once per process (rustls, no redirects: a webhook that
/// redirects is misconfigured, and the message should not follow it elsewhere).
pub(crate) fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("ec2-reaper/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(3))
                .redirect(reqwest::redirect::Policy::none())
                // No idle connections: one message per run does not need them, and a pooled
                // connection belongs to the Tokio runtime that opened it, so sharing this client
                // across runtimes (tests, reaperctl) could otherwise hand out a dead one.
                .pool_max_idle_per_host(0)
                .build()
                // Building fails only when the TLS backend cannot start (bundled rustls with
                // aws-lc-rs and the platform verifier): nothing the function could run without.
                .expect("the HTTP client (rustls) could not be built")
        })
        .clone()
}

/// Where the webhook URL (a secret) comes from.
#[derive(Debug)]
enum Source {
    Fixed(Webhook),
    /// Read from Secrets Manager on the first run that posts, then kept for the container's
    /// life: one GetSecretValue per cold start, none on runs with nothing to say.
    Secret {
        client: aws_sdk_secretsmanager::Client,
        arn: String,
        cached: tokio::sync::OnceCell<Webhook>,
    },
}

/// A Slack incoming webhook as the run's `Chat`.
#[derive(Debug)]
pub struct SlackWebhook {
    http: reqwest::Client,
    source: Source,
    /// Per attempt, unless the run's deadline leaves less.
    pub timeout: Duration,
    pub retries: u32,
}

impl SlackWebhook {
    /// 5 s per attempt, one retry.
    pub fn new(webhook: Webhook) -> Self {
        Self::with_source(Source::Fixed(webhook))
    }

    /// The webhook URL is the string of the secret `arn` (SLACKWEBHOOK_SECRET_ARN), read in the
    /// secret's own region: an Organization shares one secret (cloudformation/deploy_evidence.yaml)
    /// with reapers in every region, and Secrets Manager answers only where the secret lives.
    pub fn from_secret(sdk: &aws_config::SdkConfig, calls: &CallCounter, arn: String) -> Self {
        Self::with_source(Source::Secret {
            client: crate::adapters::secrets_client_for(sdk, calls, &arn),
            arn,
            cached: tokio::sync::OnceCell::new(),
        })
    }

    /// The channel the configuration names: the webhook itself, or the secret holding it; `None`
    /// when neither is set. The Lambda and `reaperctl sweep --live` post through the same one.
    pub fn configured(
        config: &crate::config::Config,
        sdk: &aws_config::SdkConfig,
        calls: &CallCounter,
    ) -> Option<Self> {
        match (&config.slack_webhook, &config.slack_webhook_secret_arn) {
            (Some(webhook), _) => Some(Self::new(webhook.clone())),
            (None, Some(arn)) => Some(Self::from_secret(sdk, calls, arn.clone())),
            (None, None) => None,
        }
    }

    fn with_source(source: Source) -> Self {
        Self {
            http: http_client(),
            source,
            timeout: Duration::from_secs(5),
            retries: 1,
        }
    }

    async fn webhook(&self, deadline: Deadline) -> Result<&Webhook, ChatError> {
        let (client, arn, cached) = match &self.source {
            Source::Fixed(webhook) => return Ok(webhook),
            Source::Secret {
                client,
                arn,
                cached,
            } => (client, arn, cached),
        };
        cached
            .get_or_try_init(|| async {
                let call = client.get_secret_value().secret_id(arn).send();
                let out = within("GetSecretValue", deadline.for_sink(), async {
                    call.await.map_err(api_error)
                })
                .await
                .map_err(|error| ChatError::SecretUnreadable {
                    arn: arn.clone(),
                    error,
                })?;
                let url = out
                    .secret_string()
                    .ok_or_else(|| ChatError::SecretNotText { arn: arn.clone() })?;
                parse_webhook(url.trim()).map_err(|e| ChatError::SecretNotWebhook {
                    arn: arn.clone(),
                    accepted: e.accepted,
                })
            })
            .await
    }

    /// What one attempt may take now: the configured timeout, or less near the deadline.
    fn attempt_timeout(&self, deadline: Deadline) -> Option<Duration> {
        let limit = deadline
            .for_sink()
            .map_or(self.timeout, |left| left.min(self.timeout));
        (!limit.is_zero()).then_some(limit)
    }
    async fn attempt(
        &self,
        webhook: &Webhook,
        message: &Value,
        timeout: Duration,
    ) -> Result<(), PostFailure> {
        let response = self
            .http
            .post(webhook.url())
            .timeout(timeout)
            .json(message)
            .send()
            .await
            .map_err(|e| transport_failure(e, timeout, webhook))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Slack says what is wrong in a short body: `invalid_payload`, `no_service`, ...
        let body = response.text().await.unwrap_or_default();
        let body = clip(&oneline(&body), 200);
        Err(PostFailure::Status {
            code: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
            body: redact(&body, webhook),
        })
    }
}

fn transport_failure(err: reqwest::Error, timeout: Duration, webhook: &Webhook) -> PostFailure {
    // reqwest puts the URL, the secret, into its errors.
    let err = err.without_url();
    if err.is_timeout() {
        return PostFailure::Timeout(human(timeout));
    }
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        let text = s.to_string();
        if !chain.contains(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = s.source();
    }
    PostFailure::Transport {
        chain: redact(&chain, webhook),
        connect: err.is_connect(),
    }
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl Chat for SlackWebhook {
    async fn post(&self, message: &Value, deadline: Deadline) -> Result<u32, ChatError> {
        let webhook = self.webhook(deadline).await?;
        let attempts = self.retries.saturating_add(1);
        let mut last: Option<PostFailure> = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            let Some(timeout) = self.attempt_timeout(deadline) else {
                break;
            };
            match self.attempt(webhook, message, timeout).await {
                Ok(()) => return Ok(attempt),
                Err(failure) if failure.transient() && attempt < attempts => {
                    tracing::info!(attempt, error = %failure, "slack: retrying");
                    last = Some(failure);
                }
                Err(failure) => {
                    return Err(ChatError::Failed {
                        failure,
                        attempts: attempt,
                    })
                }
            }
        }
        Err(last.map_or(ChatError::NoTime, ChatError::OutOfTime))
    }
}

/// Belt and braces: whatever produced `text`, the webhook URL (or its secret path) leaves here
/// as `<webhook>`.
fn redact(text: &str, webhook: &Webhook) -> String {
    let mut out = text.replace(webhook.url(), "<webhook>");
    if let Ok(url) = reqwest::Url::parse(webhook.url()) {
        let path = url.path();
        if path.len() > 1 {
            out = out.replace(path, "/<webhook>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_shared_secret_is_read_in_its_own_region() {
        // The function runs in eu-west-1; the Organization's one secret lives in us-east-1.
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_types::region::Region::new("eu-west-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:reaper-webhook-AbCdEf";
        let slack = SlackWebhook::from_secret(&sdk, &CallCounter::default(), arn.into());
        let Source::Secret { client, .. } = &slack.source else {
            panic!("not a secret source");
        };
        assert_eq!(
            client.config().region().map(|r| r.as_ref()),
            Some("us-east-1")
        );
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    #[derive(Clone, Copy)]
    enum Answer {
        Status(u16),
        Never,
    }

    struct Hook {
        slack: SlackWebhook,
        bodies: Arc<Mutex<Vec<Value>>>,
        hits: Arc<AtomicUsize>,
    }

    fn webhook(url: String) -> Webhook {
        Config::from_lookup(|k| (k == "SLACKWEBHOOK").then(|| url.clone()))
            .unwrap()
            .slack_webhook
            .unwrap()
    }

    /// A stand-in for Slack on 127.0.0.1, with a secret-looking path; 300 ms per attempt.
    fn hook(answer: Answer) -> Hook {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (bodies.clone(), hits.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                b.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                h.fetch_add(1, Ordering::SeqCst);
                match answer {
                    Answer::Status(200) => {
                        drop(req.respond(tiny_http::Response::from_string("ok")))
                    }
                    Answer::Status(code) => drop(req.respond(
                        tiny_http::Response::from_string("internal_error").with_status_code(code),
                    )),
                    Answer::Never => held.push(req),
                }
            }
        });
        let url = format!("http://127.0.0.1:{port}/services/T0SECRET/B0SECRET/XXXXSECRETXXXX");
        let mut slack = SlackWebhook::new(webhook(url));
        slack.timeout = Duration::from_millis(300);
        Hook {
            slack,
            bodies,
            hits,
        }
    }

    fn message() -> Value {
        serde_json::json!({"text": "hello", "blocks": []})
    }

    #[tokio::test]
    async fn a_message_is_posted_once() {
        let h = hook(Answer::Status(200));
        assert_eq!(h.slack.post(&message(), Deadline::NONE).await, Ok(1));
        assert_eq!(h.hits.load(Ordering::SeqCst), 1);
        assert_eq!(h.bodies.lock().unwrap()[0], message());
    }

    #[tokio::test]
    async fn a_500_is_retried_once_then_reported() {
        let h = hook(Answer::Status(500));
        assert_eq!(
            h.slack
                .post(&message(), Deadline::NONE)
                .await
                .map_err(|e| e.to_string()),
            Err("HTTP 500 Internal Server Error: internal_error (after 2 attempts)".into())
        );
        assert_eq!(h.hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_4xx_is_not_retried() {
        let h = hook(Answer::Status(404));
        assert_eq!(
            h.slack
                .post(&message(), Deadline::NONE)
                .await
                .map_err(|e| e.to_string()),
            Err("HTTP 404 Not Found: internal_error".into())
        );
        assert_eq!(h.hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_webhook_that_never_answers_costs_a_bounded_time() {
        let h = hook(Answer::Never);
        let started = Instant::now();
        let got = h
            .slack
            .post(&message(), Deadline::NONE)
            .await
            .map_err(|e| e.to_string());
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
        assert_eq!(h.hits.load(Ordering::SeqCst), 2);
        assert_eq!(got, Err("timed out after 300ms (after 2 attempts)".into()));
    }

    #[tokio::test]
    async fn the_deadline_shortens_the_wait_and_stops_the_retry() {
        let mut h = hook(Answer::Never);
        h.slack.timeout = Duration::from_secs(60);
        // 2.5 s left, of which 2 s are kept back for the return value: one attempt of 0.5 s.
        let deadline = Deadline::after(Duration::from_millis(2500));
        let started = Instant::now();
        let got = h
            .slack
            .post(&message(), deadline)
            .await
            .map_err(|e| e.to_string());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(got.unwrap_err().starts_with("timed out after"));
        assert_eq!(h.hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_connection_is_reported_without_the_url() {
        // Bind and drop: nothing listens on the port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/services/T0SECRET/B0SECRET/XXXXSECRETXXXX");
        let mut slack = SlackWebhook::new(webhook(url));
        slack.timeout = Duration::from_millis(300);
        let why = slack
            .post(&message(), Deadline::NONE)
            .await
            .unwrap_err()
            .to_string();
        assert!(why.starts_with("error sending request"), "{why}");
        assert!(why.ends_with("(after 2 attempts)"), "{why}");
        assert!(!why.contains("SECRET"), "{why}");
    }

    #[test]
    fn redaction_catches_the_url_and_its_path() {
        let url = "https://hooks.slack.com/services/T0/B0/SECRET".to_string();
        let webhook = webhook(url.clone());
        assert_eq!(
            redact(&format!("bad {url} here"), &webhook),
            "bad <webhook> here"
        );
        assert_eq!(
            redact("path /services/T0/B0/SECRET", &webhook),
            "path /<webhook>"
        );
    }
}

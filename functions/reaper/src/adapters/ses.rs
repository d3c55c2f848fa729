//! Owner e-mail (SPEC §8) through Amazon SES v2: one `SendEmail` per owner per run, from the
//! verified identity `NOTICE_FROM`, plain text and HTML.
//!
//! A failed delivery is returned, never raised: the caller records it in the report and leaves
//! the notice un-marked so that the next run tries again. Every call has its own time limit, so
//! a hung connection cannot carry a run past its deadline.

use super::{api_error, CallCounter};
use crate::ports::{ApiError, ErrorKind};
use crate::render::notice::{classify, Email, OwnerAddress};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_smithy_types::timeout::TimeoutConfig;
use std::time::Duration;

/// Default limit for one `SendEmail`, retries included.
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for one attempt of it.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CHARSET: &str = "UTF-8";
const THROTTLING_CODES: &[&str] = &["TooManyRequestsException", "LimitExceededException"];

/// Sends owner e-mail from one identity.
#[derive(Debug, Clone)]
pub struct Mailer {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl Mailer {
    /// A mailer over the SDK configuration (region, credentials, retry policy), with the default
    /// time limits.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, from: String) -> Mailer {
        Mailer::build(aws_sdk_sesv2::config::Builder::from(sdk), from)
    }

    /// Like `from_sdk`, every attempt counted in the run's API calls.
    pub fn from_sdk_counted(
        sdk: &aws_config::SdkConfig,
        from: String,
        calls: &CallCounter,
    ) -> Mailer {
        Mailer::build(
            aws_sdk_sesv2::config::Builder::from(sdk).interceptor(calls.clone()),
            from,
        )
    }

    /// The owners' e-mail, when NOTICE_FROM is set; every attempt counted.
    pub fn configured(
        config: &crate::config::Config,
        sdk: &aws_config::SdkConfig,
        calls: &CallCounter,
    ) -> Option<Mailer> {
        config
            .notice_from
            .clone()
            .map(|from| Mailer::from_sdk_counted(sdk, from, calls))
    }

    fn build(conf: aws_sdk_sesv2::config::Builder, from: String) -> Mailer {
        let conf = conf.timeout_config(timeouts(OPERATION_TIMEOUT, ATTEMPT_TIMEOUT));
        Mailer {
            client: aws_sdk_sesv2::Client::from_conf(conf.build()),
            from,
        }
    }

    /// The same mailer with other time limits: `operation` for a whole `send` (retries
    /// included), `attempt` for each try. A run near its deadline passes what is left.
    pub(crate) fn with_timeouts(self, operation: Duration, attempt: Duration) -> Mailer {
        let conf = self
            .client
            .config()
            .to_builder()
            .timeout_config(timeouts(operation, attempt))
            .build();
        Mailer {
            client: aws_sdk_sesv2::Client::from_conf(conf),
            from: self.from,
        }
    }

    /// The sender identity.
    pub fn sender(&self) -> &str {
        &self.from
    }

    /// Sends `email` to `to`. A recipient that is not an e-mail address (`notice::classify`) is
    /// refused before any call; an SES error (unverified identity, throttling, a denied role) or
    /// a timeout comes back as the report's `ApiError`.
    pub async fn send(&self, to: &str, email: &Email) -> Result<(), ApiError> {
        let to = match classify(to) {
            OwnerAddress::Email(address) => address,
            _ => {
                return Err(ApiError::new(
                    "InvalidRecipient",
                    format!(
                        "recipient {to:?} is not an e-mail address; accepted: local@domain.tld"
                    ),
                    ErrorKind::Instance,
                ))
            }
        };
        let content = |data: &str| {
            Content::builder()
                .data(data)
                .charset(CHARSET)
                .build()
                .map_err(build_error)
        };
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(
                Body::builder()
                    .text(content(&email.text)?)
                    .html(content(&email.html)?)
                    .build(),
            )
            .build();
        let out = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|err| {
                let mut err = api_error(err);
                // SES v2's throttling codes, which the shared list (EC2's) does not know.
                if THROTTLING_CODES.contains(&err.code.as_str()) {
                    err.kind = ErrorKind::Transient;
                }
                err
            })?;
        // The recipient's domain is enough to follow a delivery in the logs; the address is not
        // logged.
        let domain = to.rsplit_once('@').map_or("", |(_, d)| d);
        tracing::info!(
            message_id = out.message_id().unwrap_or_default(),
            recipient_domain = domain,
            "owner notice e-mailed"
        );
        Ok(())
    }
}

impl crate::ports::Mail for Mailer {
    /// Held to what the run's deadline leaves for sinks.
    async fn send(
        &self,
        to: &str,
        email: &Email,
        deadline: crate::ports::Deadline,
    ) -> Result<(), crate::ports::MailError> {
        let result = match deadline.for_sink() {
            Some(left) if left.is_zero() => return Err(crate::ports::MailError::NoTime),
            Some(left) => {
                let limited = self
                    .clone()
                    .with_timeouts(left.min(OPERATION_TIMEOUT), left.min(ATTEMPT_TIMEOUT));
                limited.send(to, email).await
            }
            None => Mailer::send(self, to, email).await,
        };
        result.map_err(crate::ports::MailError::Refused)
    }
}

fn timeouts(operation: Duration, attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(attempt))
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// A request the SDK would not build (a required field missing): a bug here, reported like any
/// other failed delivery rather than a panic.
fn build_error(err: aws_sdk_sesv2::error::BuildError) -> ApiError {
    ApiError::new(
        "Client",
        format!("the SendEmail request could not be built: {err}"),
        ErrorKind::AccountWide,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::operation::send_email::{SendEmailError, SendEmailOutput};
    use aws_sdk_sesv2::types::error::MessageRejected;
    use aws_sdk_sesv2::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    fn email() -> Email {
        Email {
            subject: "EC2 reaper, account 123456789012: your instance: 1 stopped".into(),
            text: "plain body\n".into(),
            html: "<p>html body</p>\n".into(),
        }
    }

    fn mailer(client: Client) -> Mailer {
        Mailer {
            client,
            from: "reaper@example.com".into(),
        }
    }

    /// From, recipients, and (data, charset) of subject, text and html of one SendEmail.
    type Sent = (Option<String>, Vec<String>, Vec<(String, Option<String>)>);

    #[tokio::test]
    async fn one_message_with_text_and_html_from_the_identity() {
        let seen: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let sink = seen.clone();
        let send = mock!(Client::send_email).then_compute_output(move |req| {
            let simple = req.content().and_then(|c| c.simple()).unwrap();
            let part = |c: Option<&Content>| {
                let c = c.unwrap();
                (c.data().to_string(), c.charset().map(str::to_string))
            };
            sink.lock().unwrap().push((
                req.from_email_address().map(str::to_string),
                req.destination()
                    .map(|d| d.to_addresses().to_vec())
                    .unwrap_or_default(),
                vec![
                    part(simple.subject()),
                    part(simple.body().and_then(|b| b.text())),
                    part(simple.body().and_then(|b| b.html())),
                ],
            ));
            SendEmailOutput::builder().message_id("m-1").build()
        });
        let client = mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, [&send]);
        let result = mailer(client).send("  alice@example.com ", &email()).await;

        assert_eq!(result, Ok(()));
        assert_eq!(send.num_calls(), 1);
        let seen = seen.lock().unwrap();
        let (from, to, parts) = &seen[0];
        assert_eq!(from.as_deref(), Some("reaper@example.com"));
        assert_eq!(to, &["alice@example.com"]);
        let utf8 = Some("UTF-8".to_string());
        let e = email();
        assert_eq!(
            parts,
            &[
                (e.subject, utf8.clone()),
                (e.text, utf8.clone()),
                (e.html, utf8)
            ]
        );
    }

    #[tokio::test]
    async fn an_ses_refusal_comes_back_with_its_code() {
        let rejected = mock!(Client::send_email).then_error(|| {
            SendEmailError::MessageRejected(
                MessageRejected::builder()
                    .message("Email address is not verified. The following identities failed the check: reaper@example.com")
                    .meta(
                        aws_smithy_types::error::ErrorMetadata::builder()
                            .code("MessageRejected")
                            .message("Email address is not verified. The following identities failed the check: reaper@example.com")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, [&rejected]);
        let err = mailer(client)
            .send("alice@example.com", &email())
            .await
            .unwrap_err();
        assert_eq!(err.code, "MessageRejected");
        assert!(err.message.contains("not verified"), "{}", err.message);
        assert_ne!(err.kind, ErrorKind::Transient);
    }

    #[tokio::test]
    async fn throttling_is_marked_transient() {
        let throttled = mock!(Client::send_email).then_error(|| {
            SendEmailError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("TooManyRequestsException")
                    .message("Maximum sending rate exceeded.")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, [&throttled]);
        let err = mailer(client)
            .send("alice@example.com", &email())
            .await
            .unwrap_err();
        assert_eq!(err.code, "TooManyRequestsException");
        assert_eq!(err.kind, ErrorKind::Transient);
    }

    #[tokio::test]
    async fn a_recipient_that_is_not_an_address_is_refused_without_a_call() {
        let send = mock!(Client::send_email)
            .then_output(|| SendEmailOutput::builder().message_id("m-1").build());
        let client = mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, [&send]);
        let m = mailer(client);
        for to in ["team-data", "U024BE7LH", "Alice <alice@example.com>", ""] {
            let err = m.send(to, &email()).await.unwrap_err();
            assert_eq!(err.code, "InvalidRecipient");
            assert_eq!(
                err.message,
                format!("recipient {to:?} is not an e-mail address; accepted: local@domain.tld")
            );
        }
        assert_eq!(send.num_calls(), 0);
    }

    /// A server that accepts connections and never answers: without its own time limit a send
    /// would wait for ever.
    #[tokio::test]
    async fn a_server_that_never_answers_costs_a_bounded_time() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                keep.lock().unwrap().push(conn);
            }
        });
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .credentials_provider(aws_sdk_sesv2::config::SharedCredentialsProvider::new(
                aws_sdk_sesv2::config::Credentials::new(
                    "AKIDTEST",
                    "test-secret",
                    None,
                    None,
                    "test",
                ),
            ))
            .retry_config(crate::adapters::retry_config())
            .build();
        let calls = CallCounter::default();
        let m = Mailer::from_sdk_counted(&sdk, "reaper@example.com".into(), &calls)
            .with_timeouts(Duration::from_millis(800), Duration::from_millis(300));
        let started = Instant::now();
        let err = m.send("alice@example.com", &email()).await.unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(err.code, "Timeout", "{err}");
        // It may have gone out: not marked as sent, so the next run may repeat it, never lose it.
        assert_eq!(err.kind, ErrorKind::Lost);
        // At least one attempt's limit, at most the operation's (plus scheduling slack).
        assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert!(
            calls.snapshot().get("SendEmail").copied().unwrap_or(0) >= 1,
            "{:?}",
            calls.snapshot()
        );
        assert!(
            !held.lock().unwrap().is_empty(),
            "the request reached the server"
        );
    }
}

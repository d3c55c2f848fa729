//! The ports between a run and the world, in domain types. `adapters/` implements them over the
//! AWS SDK and HTTP; `adapters::memory` implements `Fleet` in memory (feature `test-util`).
//!
//! The contract every `Fleet` keeps: a mutating call answers for every id it was given, with one
//! typed `IdOutcome`; an id it did not start because the run's time is up is `NotAttempted`; an id
//! whose call went out but whose answer was lost (timeout, reset) is `Lost`, never `Failed`.

use crate::policy::plan::TagSet;
use crate::policy::price::{ComputeKey, Usd, Volume, VolumeRates};
use crate::policy::Instance;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// A Lambda run stops starting new work when less than this remains (SPEC §5).
pub(crate) const DEADLINE_MARGIN: Duration = Duration::from_secs(30);
/// What a sink call leaves unused at the very end, so the return value still goes out.
const SINK_RESERVE: Duration = Duration::from_secs(2);

/// When the run must be over; `None` means no deadline (a laptop without `--timeout`). A sweep
/// stops starting work `DEADLINE_MARGIN` before it; an interactive request (an owner's click,
/// answered within Slack's 3 s) sets its own, smaller margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Option<Instant>,
    margin: Duration,
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::NONE
    }
}

impl Deadline {
    pub const NONE: Deadline = Deadline {
        at: None,
        margin: DEADLINE_MARGIN,
    };

    pub fn at(instant: Instant) -> Self {
        Deadline {
            at: Some(instant),
            margin: DEADLINE_MARGIN,
        }
    }

    pub fn after(d: Duration) -> Self {
        Deadline {
            at: Instant::now().checked_add(d),
            margin: DEADLINE_MARGIN,
        }
    }

    /// `d` from now, for a request a person waits on: work may start while more than `margin`
    /// is left.
    pub fn interactive(d: Duration, margin: Duration) -> Self {
        Deadline {
            at: Instant::now().checked_add(d),
            margin,
        }
    }

    fn left(self) -> Option<Duration> {
        self.at.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// True while there is time to start another piece of work (more than the margin left).
    pub(crate) fn has_time(self) -> bool {
        self.left().is_none_or(|left| left >= self.margin)
    }

    /// The longest a piece of work may take so that half the margin is still left for the
    /// report's sinks; `None` when there is no deadline.
    pub(crate) fn for_work(self) -> Option<Duration> {
        self.left().map(|left| left.saturating_sub(self.margin / 2))
    }

    /// This deadline, or `now + most` if that is sooner: a bounded share for one piece of work
    /// that must leave time to the ones after it.
    pub(crate) fn capped(self, most: Duration) -> Deadline {
        let cap = Instant::now().checked_add(most);
        let at = match (self.at, cap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Deadline { at, ..self }
    }

    /// The longest a sink (Slack, S3, e-mail) may take so the return value still goes out.
    pub(crate) fn for_sink(self) -> Option<Duration> {
        self.left().map(|left| left.saturating_sub(SINK_RESERVE))
    }
}

/// What kind of failure an `ApiError` is; decides whether a batch is split and how it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorKind {
    /// The instance refuses the action (termination or stop protection).
    Protected,
    /// Something about one instance (unknown id, wrong state): splitting the batch helps.
    #[default]
    Instance,
    /// "This caller may not" (auth, opt-in, blocked): splitting cannot help.
    AccountWide,
    /// Throttling or a 5xx the SDK already retried: splitting would not help.
    Transient,
    /// The call went out and its answer was lost (timeout, reset): it may have happened.
    Lost,
}

/// An AWS error as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    #[serde(skip)]
    pub kind: ErrorKind,
}

impl ApiError {
    pub(crate) fn new(
        code: impl Into<String>,
        message: impl Into<String>,
        kind: ErrorKind,
    ) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            kind,
        }
    }

    /// Worth splitting a failed batch for: the error may belong to one instance only.
    pub(crate) fn splittable(&self) -> bool {
        matches!(self.kind, ErrorKind::Instance | ErrorKind::Protected)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// What a mutating call did to one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdOutcome {
    Done,
    /// AWS answered with an error for this id.
    Failed(ApiError),
    /// Not started: the run's time was up.
    NotAttempted,
    /// Sent, but the answer was lost: the action may or may not have happened.
    Lost(ApiError),
}

/// A mutating EC2 call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation<'a> {
    Terminate,
    Stop,
    Tag(&'a TagSet),
}

impl Mutation<'_> {
    pub fn operation(&self) -> &'static str {
        match self {
            Mutation::Terminate => "TerminateInstances",
            Mutation::Stop => "StopInstances",
            Mutation::Tag(_) => "CreateTags",
        }
    }
}

/// What a run needs from EC2.
pub trait Fleet: Send + Sync {
    /// One consistent listing of every instance in a judged state (only `ids` when given),
    /// handed to `on_page` a page at a time as the pages arrive, each instance once, finished
    /// before `deadline` or failed. The pages already handed over are part of a failed listing
    /// too: a caller that must not act on half a fleet discards them.
    fn list_pages(
        &self,
        ids: Option<&[&str]>,
        deadline: Deadline,
        on_page: &mut (dyn FnMut(Vec<Instance>) + Send),
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// The whole listing at once, for a few ids (a re-check, a confirmation, `reaperctl why`):
    /// a sweep of the fleet streams with `list_pages`, so memory follows what it acts on.
    fn list(
        &self,
        ids: Option<&[&str]>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Vec<Instance>, ApiError>> + Send {
        async move {
            let mut all = Vec::new();
            self.list_pages(ids, deadline, &mut |page| all.extend(page))
                .await?;
            Ok(all)
        }
    }

    /// At most `ResourceKind::Ec2Instance.max_batch()` ids; answers for every one of them, in any
    /// order.
    fn apply(
        &self,
        mutation: Mutation<'_>,
        ids: &[String],
        deadline: Deadline,
    ) -> impl Future<Output = Vec<(String, IdOutcome)>> + Send;

    /// The EBS volumes named (their type, size and provisioned performance), for the ledger of
    /// savings: one call per `VOLUMES_PER_CALL` ids. A volume that no longer exists is absent.
    fn volumes(
        &self,
        ids: &[String],
        deadline: Deadline,
    ) -> impl Future<Output = Result<Vec<Volume>, ApiError>> + Send {
        let _ = (ids, deadline);
        async {
            Err(ApiError::new(
                "NotSupported",
                "this fleet does not describe volumes",
                ErrorKind::AccountWide,
            ))
        }
    }

    /// AWS API calls made so far, by operation name (every attempt, retries included).
    fn api_calls(&self) -> BTreeMap<String, u64>;
}

/// DescribeVolumes' page limit when listing by id.
pub const VOLUMES_PER_CALL: usize = 500;

/// Price List answers, as the ledger of savings reads them (SPEC §8 "Savings"). Object-safe (a
/// boxed future): the entry points hold it as `Arc<dyn Prices>`, and a run without one says so.
pub trait Prices: Send + Sync {
    /// The on-demand hourly list price of one compute configuration.
    fn compute(&self, key: &ComputeKey, deadline: Deadline)
        -> BoxFuture<'_, Result<Usd, ApiError>>;

    /// The monthly list rates of one EBS volume type in `region`.
    fn volume(
        &self,
        region: &str,
        volume_type: &str,
        deadline: Deadline,
    ) -> BoxFuture<'_, Result<VolumeRates, ApiError>>;

    /// Price List calls made so far, by operation name (every attempt, retries included).
    fn api_calls(&self) -> BTreeMap<String, u64>;
}

/// Where the whole report is kept (S3): a document under a key, as the report names and
/// serialises itself.
pub trait Archive: Send + Sync {
    /// Where `put` writes the document under `key` (known before the write).
    fn address(&self, key: &str) -> String;
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<(), ArchiveError>> + Send;
    /// The run's records for the evidence store (docs/EVIDENCE.md), JSON lines, under `key`.
    fn put_records(
        &self,
        key: &str,
        body: Vec<u8>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<(), ArchiveError>> + Send;
    /// The document under `key`, or `None` when there is none.
    fn get(
        &self,
        key: &str,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, ArchiveError>> + Send;
}

/// Why the archive does not hold the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// The store refused the write, or its answer was lost (the AWS code says which).
    #[error("{0}")]
    Refused(ApiError),
    /// Not reachable with the report's types (string keys, no floats), but never a panic.
    #[error("the report could not be serialised: {0}")]
    Unserialisable(String),
}

/// Where the evidence store's records files are read from (docs/EVIDENCE.md): an S3 bucket or
/// a folder with the same layout. Keys are relative to the store's root, `/`-separated. An error
/// is one sentence naming what could not be read.
pub trait EvidenceStore: Send + Sync {
    /// The names of the folders directly under `prefix` (which ends in `/`), e.g. `dt=2030-03-07`.
    fn folders(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    /// The keys of the files directly under `prefix`.
    fn files(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    /// The content of the file under `key`.
    fn read(&self, key: &str) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

/// Where the run's message is posted (a Slack incoming webhook).
pub trait Chat: Send + Sync {
    /// The number of attempts it took, or why it failed.
    fn post(
        &self,
        message: &serde_json::Value,
        deadline: Deadline,
    ) -> impl Future<Output = Result<u32, ChatError>> + Send;
}

/// Why the channel's message was not posted. No variant holds the webhook URL: it is a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("the webhook secret {arn} could not be read: {error}")]
    SecretUnreadable { arn: String, error: ApiError },
    #[error("the webhook secret {arn} has no SecretString (binary secrets are not read)")]
    SecretNotText { arn: String },
    #[error("the webhook secret {arn} is not a webhook URL: {accepted}")]
    SecretNotWebhook { arn: String, accepted: String },
    /// The run's deadline left no time for a first attempt.
    #[error("not sent: the run's deadline left no time")]
    NoTime,
    /// The last attempt failed; `attempts` were made.
    #[error("{failure}{}", if *attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() })]
    Failed { failure: PostFailure, attempts: u32 },
    /// An attempt failed in a way worth retrying, and the deadline left no time to retry.
    #[error("{0}; no time left for another attempt")]
    OutOfTime(PostFailure),
}

/// How one attempt to post failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostFailure {
    /// The endpoint answered with a status that is not success; Slack says why in a short body.
    #[error("HTTP {code}{}{}", prefixed(" ", reason), prefixed(": ", body))]
    Status {
        code: u16,
        reason: String,
        body: String,
    },
    #[error("timed out after {0}")]
    Timeout(String),
    /// No answer: the connection (`connect`) or the request failed; the cause chain, without
    /// the URL.
    #[error("{chain}")]
    Transport { chain: String, connect: bool },
}

impl PostFailure {
    /// Worth another attempt: a server error, a timeout or a connection that failed.
    pub(crate) fn transient(&self) -> bool {
        match self {
            PostFailure::Status { code, .. } => (500..600).contains(code),
            PostFailure::Timeout(_) => true,
            PostFailure::Transport { connect, .. } => *connect,
        }
    }
}

fn prefixed(prefix: &str, text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("{prefix}{text}")
    }
}

/// An owner's e-mail as rendered: the same content as plain text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Where an owner's e-mail goes (SES v2).
pub trait Mail: Send + Sync {
    fn send(
        &self,
        to: &str,
        email: &Email,
        deadline: Deadline,
    ) -> impl Future<Output = Result<(), MailError>> + Send;
}

/// Why an owner's e-mail was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("not sent: the run's time was up")]
    NoTime,
    /// SES refused the message or its request (the AWS code says why).
    #[error("{0}")]
    Refused(ApiError),
}

/// Where the enrolment time comes from: the creation time of the stack that deployed the
/// reaper. Boxed, so the use cases hold one without another type parameter.
pub trait StackClock: Send + Sync {
    /// The stack, as a person names it in a message.
    fn stack(&self) -> &str;
    fn created_at(
        &self,
        deadline: Deadline,
    ) -> futures::future::BoxFuture<'_, Result<chrono::DateTime<chrono::Utc>, ApiError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_leaves_the_margin_to_the_sinks() {
        assert!(Deadline::NONE.has_time());
        assert_eq!(Deadline::NONE.for_work(), None);
        let near = Deadline::after(Duration::from_secs(20));
        assert!(!near.has_time());
        assert!(near.for_work().unwrap() <= Duration::from_secs(5));
        assert!(near.for_sink().unwrap() > Duration::from_secs(17));
        let far = Deadline::after(Duration::from_secs(600));
        assert!(far.has_time());
        assert!(far.for_work().unwrap() > Duration::from_secs(580));
        let capped = far.capped(Duration::from_secs(10));
        assert!(capped.for_sink().unwrap() <= Duration::from_secs(8));
        assert_eq!(
            near.capped(Duration::from_secs(600)),
            near,
            "the sooner one wins"
        );
        assert!(
            Deadline::NONE
                .capped(Duration::from_secs(5))
                .for_sink()
                .unwrap()
                <= Duration::from_secs(3)
        );
    }

    #[test]
    fn a_sink_error_reads_as_a_sentence_not_a_structure() {
        let status = |code, reason: &str, body: &str| PostFailure::Status {
            code,
            reason: reason.into(),
            body: body.into(),
        };
        let cases = [
            (
                ChatError::Failed {
                    failure: status(404, "Not Found", "no_service"),
                    attempts: 1,
                },
                "HTTP 404 Not Found: no_service",
            ),
            (
                ChatError::Failed {
                    failure: status(500, "", ""),
                    attempts: 2,
                },
                "HTTP 500 (after 2 attempts)",
            ),
            (
                ChatError::OutOfTime(PostFailure::Timeout("5s".into())),
                "timed out after 5s; no time left for another attempt",
            ),
            (
                ChatError::NoTime,
                "not sent: the run's deadline left no time",
            ),
        ];
        for (err, text) in cases {
            assert_eq!(err.to_string(), text);
        }
        let refused = ApiError::new("AccessDenied", "no", ErrorKind::AccountWide);
        assert_eq!(
            ArchiveError::Refused(refused.clone()).to_string(),
            "AccessDenied: no"
        );
        assert_eq!(MailError::Refused(refused).to_string(), "AccessDenied: no");
        assert_eq!(
            MailError::NoTime.to_string(),
            "not sent: the run's time was up"
        );
        assert!(status(503, "", "").transient() && !status(403, "", "").transient());
    }
}

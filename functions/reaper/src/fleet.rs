//! The port between the sweep and EC2, in domain types. `aws::ec2` implements it over the SDK;
//! tests may implement it in memory.

use crate::policy::plan::TagSet;
use crate::policy::Instance;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// A Lambda run stops starting new work when less than this remains (SPEC §5).
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(30);

/// True while there is time to start another call.
pub fn has_time(deadline: Option<Instant>) -> bool {
    deadline.is_none_or(|d| d.saturating_duration_since(Instant::now()) >= DEADLINE_MARGIN)
}

/// An AWS error as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    /// Throttling, 5xx, timeouts: retried by the SDK already; splitting the batch would not help.
    #[serde(skip)]
    pub transient: bool,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The result of one id in a mutating call.
pub type IdResult = (String, Result<(), ApiError>);

/// The error code of an id that was not attempted because the run ran out of time.
pub const NOT_ATTEMPTED: &str = "NotAttempted";

impl ApiError {
    /// The answer for an id whose call was not started because the run ran out of time.
    pub fn not_attempted() -> Self {
        ApiError {
            code: NOT_ATTEMPTED.into(),
            message: "less than 30 s of the run's time was left".into(),
            transient: true,
        }
    }
}

/// Error codes that say "this caller may not", never "this instance may not": splitting the batch
/// cannot help, so it is not split.
const ACCOUNT_WIDE_CODES: &[&str] = &[
    "AuthFailure",
    "Blocked",
    "OptInRequired",
    "PendingVerification",
    "SignatureDoesNotMatch",
    "RequestExpired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "ExpiredToken",
];

impl ApiError {
    fn splittable(&self) -> bool {
        !self.transient && !ACCOUNT_WIDE_CODES.contains(&self.code.as_str())
    }
}

/// Calls one bisect may make: enough to isolate 8 bad instances in a batch of `n` (2*ceil(log2 n)
/// per bad instance, plus the first call). An error that hits every instance (an SCP denying the
/// action, say) would otherwise cost 2n-1 calls; past the budget the rest fail with their error,
/// which changes nothing and the next run tries again.
pub fn bisect_budget(n: usize) -> usize {
    let depth = usize::BITS - n.max(1).saturating_sub(1).leading_zeros();
    8 * 2 * depth as usize + 1
}

/// What the sweep needs from EC2.
pub trait Fleet: Send + Sync {
    /// One consistent listing of every instance in a judged state; only `ids` when given.
    fn list(
        &self,
        ids: Option<&[String]>,
    ) -> impl Future<Output = Result<Vec<Instance>, ApiError>> + Send;

    /// Each of these takes at most `MAX_BATCH` ids and answers for every one of them; an id not
    /// attempted before `deadline` (less than 30 s left) answers `NOT_ATTEMPTED`.
    fn terminate(
        &self,
        ids: &[String],
        deadline: Option<Instant>,
    ) -> impl Future<Output = Vec<IdResult>> + Send;
    fn stop(
        &self,
        ids: &[String],
        deadline: Option<Instant>,
    ) -> impl Future<Output = Vec<IdResult>> + Send;
    fn tag(
        &self,
        ids: &[String],
        tags: &TagSet,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Vec<IdResult>> + Send;

    /// AWS API calls made so far, by operation name (every attempt, retries included).
    fn api_calls(&self) -> BTreeMap<String, u64>;
}

/// Runs `call` on the whole batch; when the batch fails as a whole with an error that can belong
/// to one instance (protection, unknown id, wrong state), splits it in halves down to single ids,
/// so one bad instance costs at most 2*ceil(log2 n)+1 calls and every other instance is acted on.
/// Bounded by `bisect_budget`; `keep_going` (the Lambda deadline) is asked before every call,
/// and ids never attempted come back as `NOT_ATTEMPTED`.
pub async fn bisect<F, Fut>(
    ids: &[String],
    keep_going: &(dyn Fn() -> bool + Sync),
    call: F,
) -> Vec<IdResult>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<(), ApiError>>,
{
    let mut results = Vec::with_capacity(ids.len());
    let mut pending: Vec<(&[String], Option<ApiError>)> = vec![(ids, None)];
    let mut calls = 0;
    let budget = bisect_budget(ids.len());
    while let Some((part, parent_err)) = pending.pop() {
        if part.is_empty() {
            continue;
        }
        if !keep_going() {
            results.extend(
                part.iter()
                    .map(|id| (id.clone(), Err(ApiError::not_attempted()))),
            );
            continue;
        }
        if calls >= budget {
            let err = parent_err.unwrap_or_else(ApiError::not_attempted);
            results.extend(part.iter().map(|id| (id.clone(), Err(err.clone()))));
            continue;
        }
        calls += 1;
        match call(part.to_vec()).await {
            Ok(()) => results.extend(part.iter().map(|id| (id.clone(), Ok(())))),
            Err(err) if !err.splittable() || part.len() == 1 => {
                results.extend(part.iter().map(|id| (id.clone(), Err(err.clone()))))
            }
            Err(err) => {
                let (left, right) = part.split_at(part.len() / 2);
                pending.push((right, Some(err.clone())));
                pending.push((left, Some(err)));
            }
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("i-{i:017x}")).collect()
    }

    fn refuse(
        bad: &'static [&'static str],
        transient: bool,
    ) -> impl Fn(Vec<String>) -> std::future::Ready<Result<(), ApiError>> {
        move |batch: Vec<String>| {
            std::future::ready(match batch.iter().find(|id| bad.contains(&id.as_str())) {
                Some(id) => Err(ApiError {
                    code: "OperationNotPermitted".into(),
                    message: format!("The instance '{id}' may not be terminated"),
                    transient,
                }),
                None => Ok(()),
            })
        }
    }

    #[tokio::test]
    async fn one_bad_id_in_1000_costs_at_most_21_calls() {
        let all = ids(1000);
        let bad: &'static str = Box::leak(all[617].clone().into_boxed_str());
        let bad_list: &'static [&'static str] = Box::leak(vec![bad].into_boxed_slice());
        let calls = AtomicUsize::new(0);
        let inner = refuse(bad_list, false);
        let results = bisect(&all, &|| true, |b| {
            calls.fetch_add(1, Ordering::SeqCst);
            inner(b)
        })
        .await;
        assert_eq!(results.len(), 1000);
        let failed: Vec<&IdResult> = results.iter().filter(|r| r.1.is_err()).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, bad);
        assert_eq!(
            failed[0].1.as_ref().unwrap_err().code,
            "OperationNotPermitted"
        );
        let n = calls.load(Ordering::SeqCst);
        assert!(n <= 2 * 10 + 1, "{n} calls");
    }

    #[tokio::test]
    async fn transient_errors_are_not_split() {
        let all = ids(8);
        let calls = AtomicUsize::new(0);
        let results = bisect(&all, &|| true, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err(ApiError {
                code: "RequestLimitExceeded".into(),
                message: "slow down".into(),
                transient: true,
            }))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| r.1.is_err()));
        assert_eq!(results.len(), 8);
    }

    #[tokio::test]
    async fn an_error_on_every_instance_is_bounded_by_the_budget() {
        let all = ids(1000);
        let calls = AtomicUsize::new(0);
        let results = bisect(&all, &|| true, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err(ApiError {
                code: "UnauthorizedOperation".into(),
                message: "explicit deny in a service control policy".into(),
                transient: false,
            }))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), bisect_budget(1000));
        assert_eq!(bisect_budget(1000), 161);
        assert_eq!(results.len(), 1000);
        assert!(results
            .iter()
            .all(|(_, r)| r.as_ref().unwrap_err().code == "UnauthorizedOperation"));
    }

    #[tokio::test]
    async fn account_wide_errors_are_not_split() {
        let calls = AtomicUsize::new(0);
        let results = bisect(&ids(64), &|| true, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err(ApiError {
                code: "AuthFailure".into(),
                message: "AWS was not able to validate the provided access credentials".into(),
                transient: false,
            }))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(results.len(), 64);
    }

    #[tokio::test]
    async fn out_of_time_stops_the_split_and_reports_the_rest_not_attempted() {
        let all = ids(16);
        let calls = AtomicUsize::new(0);
        let keep_going = || calls.load(Ordering::SeqCst) < 3;
        let inner = refuse(&["i-00000000000000000"], false);
        let results = bisect(&all, &keep_going, |b| {
            calls.fetch_add(1, Ordering::SeqCst);
            inner(b)
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(results.len(), 16, "every id answered exactly once");
        let mut seen: Vec<&String> = results.iter().map(|(id, _)| id).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 16);
        assert!(results
            .iter()
            .any(|(_, r)| r.as_ref().is_err_and(|e| e.code == NOT_ATTEMPTED)));
    }

    #[tokio::test]
    async fn success_is_one_call_and_empty_is_none() {
        let calls = AtomicUsize::new(0);
        let results = bisect(&ids(1000), &|| true, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(()))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| r.1.is_ok()));
        assert!(bisect(&[], &|| true, |_| async { Ok(()) }).await.is_empty());
    }
}

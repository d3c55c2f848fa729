//! The port between the sweep and EC2, in domain types. `aws::ec2` implements it over the SDK;
//! tests may implement it in memory.

use crate::policy::plan::TagSet;
use crate::policy::Instance;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

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

/// What the sweep needs from EC2.
pub trait Fleet: Send + Sync {
    /// One consistent listing of every instance in a judged state; only `ids` when given.
    fn list(
        &self,
        ids: Option<&[String]>,
    ) -> impl Future<Output = Result<Vec<Instance>, ApiError>> + Send;

    /// Each of these takes at most `MAX_BATCH` ids and answers for every one of them.
    fn terminate(&self, ids: &[String]) -> impl Future<Output = Vec<IdResult>> + Send;
    fn stop(&self, ids: &[String]) -> impl Future<Output = Vec<IdResult>> + Send;
    fn tag(&self, ids: &[String], tags: &TagSet) -> impl Future<Output = Vec<IdResult>> + Send;

    /// AWS API calls made so far, by operation name (every attempt, retries included).
    fn api_calls(&self) -> BTreeMap<String, u64>;
}

/// Runs `call` on the whole batch; when the batch fails as a whole with an error that can belong
/// to one instance (protection, unknown id, wrong state), splits it in halves down to single ids,
/// so one bad instance costs at most 2*ceil(log2 n)+1 calls and every other instance is acted on.
pub async fn bisect<F, Fut>(ids: &[String], call: F) -> Vec<IdResult>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<(), ApiError>>,
{
    let mut results = Vec::with_capacity(ids.len());
    let mut pending: Vec<&[String]> = vec![ids];
    while let Some(part) = pending.pop() {
        if part.is_empty() {
            continue;
        }
        match call(part.to_vec()).await {
            Ok(()) => results.extend(part.iter().map(|id| (id.clone(), Ok(())))),
            Err(err) if err.transient || part.len() == 1 => {
                results.extend(part.iter().map(|id| (id.clone(), Err(err.clone()))))
            }
            Err(_) => {
                let (left, right) = part.split_at(part.len() / 2);
                pending.push(right);
                pending.push(left);
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
        let results = bisect(&all, |b| {
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
        let results = bisect(&all, |_| {
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
    async fn success_is_one_call_and_empty_is_none() {
        let calls = AtomicUsize::new(0);
        let results = bisect(&ids(1000), |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(()))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| r.1.is_ok()));
        assert!(bisect(&[], |_| async { Ok(()) }).await.is_empty());
    }
}

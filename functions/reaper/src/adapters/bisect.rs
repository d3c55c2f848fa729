//! Splitting a failed batch (SPEC §6): one protected or unknown instance must not fail the others.

use crate::ports::{ApiError, Deadline, ErrorKind, IdOutcome};
use std::future::Future;

/// Calls one bisect may make: enough to isolate 8 bad instances in a batch of `n` (2*ceil(log2 n)
/// per bad instance, plus the first call). An error that hits every instance (an SCP denying the
/// action, say) would otherwise cost 2n-1 calls; past the budget the rest fail with their error,
/// which changes nothing and the next run tries again.
pub(crate) fn bisect_budget(n: usize) -> usize {
    let depth = usize::BITS - n.max(1).saturating_sub(1).leading_zeros();
    8 * 2 * depth as usize + 1
}

/// Runs `call` on the whole batch; when the batch fails as a whole with an error that can belong
/// to one instance (protection, unknown id, wrong state), splits it in halves down to single ids,
/// so one bad instance costs at most 2*ceil(log2 n)+1 calls and every other instance is acted on.
/// Bounded by `bisect_budget`; the deadline is asked before every call (the first too), and ids
/// never attempted come back `NotAttempted`. A lost answer is never split: the ids are `Lost`.
pub(crate) async fn bisect<F, Fut>(
    ids: &[String],
    deadline: Deadline,
    call: F,
) -> Vec<(String, IdOutcome)>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<(), ApiError>>,
{
    let mut results = Vec::with_capacity(ids.len());
    let mut pending: Vec<(&[String], Option<ApiError>)> = vec![(ids, None)];
    let mut calls = 0;
    let budget = bisect_budget(ids.len());
    let all = |part: &[String], outcome: IdOutcome| {
        part.iter()
            .map(move |id| (id.clone(), outcome.clone()))
            .collect::<Vec<_>>()
    };
    while let Some((part, parent_err)) = pending.pop() {
        if part.is_empty() {
            continue;
        }
        if !deadline.has_time() {
            results.extend(all(part, IdOutcome::NotAttempted));
            continue;
        }
        if calls >= budget {
            let outcome = parent_err.map_or(IdOutcome::NotAttempted, IdOutcome::Failed);
            results.extend(all(part, outcome));
            continue;
        }
        calls += 1;
        match call(part.to_vec()).await {
            Ok(()) => results.extend(all(part, IdOutcome::Done)),
            Err(err) if err.kind == ErrorKind::Lost => {
                results.extend(all(part, IdOutcome::Lost(err)))
            }
            Err(err) if !err.splittable() || part.len() == 1 => {
                results.extend(all(part, IdOutcome::Failed(err)))
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

    fn error(code: &str, kind: ErrorKind) -> ApiError {
        ApiError::new(code, format!("{code} happened"), kind)
    }

    fn refuse(
        bad: Vec<String>,
    ) -> impl Fn(Vec<String>) -> std::future::Ready<Result<(), ApiError>> {
        move |batch: Vec<String>| {
            std::future::ready(match batch.iter().find(|id| bad.contains(id)) {
                Some(id) => Err(ApiError::new(
                    "OperationNotPermitted",
                    format!("The instance '{id}' may not be terminated"),
                    ErrorKind::Protected,
                )),
                None => Ok(()),
            })
        }
    }

    fn failed(results: &[(String, IdOutcome)]) -> Vec<&(String, IdOutcome)> {
        results
            .iter()
            .filter(|(_, o)| matches!(o, IdOutcome::Failed(_)))
            .collect()
    }

    #[tokio::test]
    async fn one_bad_id_in_1000_costs_at_most_21_calls() {
        let all = ids(1000);
        let bad = all[617].clone();
        let calls = AtomicUsize::new(0);
        let inner = refuse(vec![bad.clone()]);
        let results = bisect(&all, Deadline::NONE, |b| {
            calls.fetch_add(1, Ordering::SeqCst);
            inner(b)
        })
        .await;
        assert_eq!(results.len(), 1000);
        let failed = failed(&results);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, bad);
        assert!(matches!(&failed[0].1, IdOutcome::Failed(e) if e.code == "OperationNotPermitted"));
        let n = calls.load(Ordering::SeqCst);
        assert!(n <= 2 * 10 + 1, "{n} calls");
    }

    #[tokio::test]
    async fn transient_account_wide_and_lost_errors_are_not_split() {
        for (code, kind) in [
            ("RequestLimitExceeded", ErrorKind::Transient),
            ("AuthFailure", ErrorKind::AccountWide),
            ("Transport", ErrorKind::Lost),
        ] {
            let calls = AtomicUsize::new(0);
            let results = bisect(&ids(64), Deadline::NONE, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Err(error(code, kind)))
            })
            .await;
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{code}");
            assert_eq!(results.len(), 64);
            let lost = results.iter().all(|(_, o)| matches!(o, IdOutcome::Lost(_)));
            assert_eq!(lost, kind == ErrorKind::Lost, "{code}");
        }
    }

    #[tokio::test]
    async fn an_error_on_every_instance_is_bounded_by_the_budget() {
        let all = ids(1000);
        let calls = AtomicUsize::new(0);
        let results = bisect(&all, Deadline::NONE, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err(error("UnauthorizedOperation", ErrorKind::Instance)))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), bisect_budget(1000));
        assert_eq!(bisect_budget(1000), 161);
        assert_eq!(results.len(), 1000);
        assert!(results
            .iter()
            .all(|(_, o)| matches!(o, IdOutcome::Failed(e) if e.code == "UnauthorizedOperation")));
    }

    #[tokio::test]
    async fn out_of_time_nothing_starts_and_every_id_is_answered() {
        let calls = AtomicUsize::new(0);
        let results = bisect(
            &ids(16),
            Deadline::after(std::time::Duration::from_secs(5)),
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Ok(()))
            },
        )
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(results.len(), 16);
        assert!(results.iter().all(|(_, o)| *o == IdOutcome::NotAttempted));
    }

    #[tokio::test]
    async fn success_is_one_call_and_empty_is_none() {
        let calls = AtomicUsize::new(0);
        let results = bisect(&ids(1000), Deadline::NONE, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(()))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|(_, o)| *o == IdOutcome::Done));
        assert!(bisect(&[], Deadline::NONE, |_| async { Ok(()) })
            .await
            .is_empty());
    }
}

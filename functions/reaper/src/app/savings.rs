//! Prices what a run decided and did (SPEC §8 "Savings"): after the actions, within what the
//! deadline leaves. It reads the run's outcome and cannot change it: a price that is slow,
//! refused or missing costs the report its money figures, never an action.

use crate::policy::price::Volume;
use crate::policy::{InstanceState, VerdictKind};
use crate::ports::{Deadline, Fleet, Prices};
use crate::report::savings::{ledger, Item, PriceBook, SavingAction, Savings};
use crate::run::ledger::{Deferral, Fate};
use crate::run::RunOutcome;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// The most the savings may add to a run, after its actions: the report's sinks come first.
const PRICING_BUDGET: Duration = Duration::from_secs(15);

/// The instances whose action the ledger counts: done (or would be, in a dry run), or held back
/// by the notice gate, the action window or a cap. A failed or re-judged action saves nothing.
fn items(outcome: &RunOutcome) -> Vec<Item<'_>> {
    use SavingAction::{Stop, Terminate};
    outcome
        .entries
        .iter()
        .filter_map(|e| {
            let action = match e.verdict.kind() {
                VerdictKind::Terminate => Terminate,
                VerdictKind::Stop => Stop,
                _ => return None,
            };
            let (action, held) = match &e.fate {
                None | Some(Fate::Done) => (action, false),
                // A launch event stops the expired instance instead (SPEC §7).
                Some(Fate::Deferred(Deferral::StoppedAtLaunch)) => (Stop, false),
                Some(
                    Fate::CircuitOpen
                    | Fate::Deferred(Deferral::NotAnnounced { .. } | Deferral::OutsideWindow(_)),
                ) => (action, true),
                _ => return None,
            };
            Some(Item {
                id: &e.fact.id,
                action,
                held,
                running: matches!(
                    e.fact.state,
                    InstanceState::Pending | InstanceState::Running
                ),
                billing: e.fact.billing.as_deref(),
            })
        })
        .collect()
}

/// Calls made between two snapshots of a counter.
fn delta(before: &BTreeMap<String, u64>, after: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .into_iter()
        .filter_map(|(op, n)| {
            let d = n.saturating_sub(before.get(&op).copied().unwrap_or(0));
            (d > 0).then_some((op, d))
        })
        .collect()
}

/// The run's ledger of savings, and the API calls it made (DescribeVolumes, GetProducts).
pub(crate) async fn assess<F: Fleet>(
    outcome: &RunOutcome,
    fleet: &F,
    prices: Option<&dyn Prices>,
    deadline: Deadline,
) -> (Savings, BTreeMap<String, u64>) {
    let items = items(outcome);
    let region = outcome.header.region.as_str();
    let fleet_before = fleet.api_calls();
    let prices_before = prices.map(|p| p.api_calls()).unwrap_or_default();
    let mut book = PriceBook::default();
    match prices {
        None => book.unavailable = Some("this run has no Price List client".into()),
        Some(_) if items.is_empty() => {}
        Some(_) if !deadline.has_time() => {
            book.unavailable = Some("the run's deadline left no time to look prices up".into())
        }
        Some(prices) => {
            let budget = deadline
                .for_work()
                .map_or(PRICING_BUDGET, |w| w.min(PRICING_BUDGET));
            let priced = price(&items, region, fleet, prices, deadline, &mut book);
            if tokio::time::timeout(budget, priced).await.is_err() {
                book.unavailable = Some(format!(
                    "the Price List and DescribeVolumes did not answer within {} s",
                    budget.as_secs()
                ));
            }
        }
    }
    let mut calls = delta(&fleet_before, fleet.api_calls());
    if let Some(p) = prices {
        for (op, n) in delta(&prices_before, p.api_calls()) {
            *calls.entry(op).or_default() += n;
        }
    }
    (ledger(&items, region, &book), calls)
}

/// Fills `book`: one lookup per distinct compute configuration, one DescribeVolumes per 500
/// volumes of the terminations, one lookup per volume type. The first refusal that is not
/// "no such product" (access denied, throttled, no route) ends the pricing: the run reports
/// hours and says why.
async fn price<F: Fleet>(
    items: &[Item<'_>],
    region: &str,
    fleet: &F,
    prices: &dyn Prices,
    deadline: Deadline,
    book: &mut PriceBook,
) {
    let keys: BTreeSet<_> = items
        .iter()
        .filter(|i| i.running)
        .filter_map(|i| i.billing?.compute_key(region).ok())
        .collect();
    for key in keys {
        match prices.compute(&key, deadline).await {
            Ok(usd) => {
                book.compute.insert(key, Ok(usd));
            }
            Err(err) if err.code == "NoPrice" => {
                book.compute.insert(key, Err(err.message));
            }
            Err(err) => {
                book.unavailable = Some(err.to_string());
                return;
            }
        }
    }
    let volume_ids: Vec<String> = items
        .iter()
        .filter(|i| i.action == SavingAction::Terminate)
        .flat_map(|i| i.billing.iter().flat_map(|b| b.volumes.iter()))
        .map(|v| v.volume_id.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if volume_ids.is_empty() {
        return;
    }
    let described: Vec<Volume> = match fleet.volumes(&volume_ids, deadline).await {
        Ok(v) => v,
        Err(err) => {
            for id in volume_ids {
                book.volumes
                    .insert(id, Err(format!("DescribeVolumes failed: {err}")));
            }
            return;
        }
    };
    let mut rates = HashMap::new();
    let mut by_id: HashMap<String, Volume> = described
        .into_iter()
        .map(|v| (v.volume_id.clone(), v))
        .collect();
    for id in volume_ids {
        let Some(volume) = by_id.remove(&id) else {
            book.volumes
                .insert(id, Err("DescribeVolumes does not show it".into()));
            continue;
        };
        if !rates.contains_key(&volume.volume_type) {
            let rate = match prices.volume(region, &volume.volume_type, deadline).await {
                Ok(r) => Ok(r),
                Err(err) if err.code == "NoPrice" => Err(err.message),
                Err(err) => {
                    book.unavailable = Some(err.to_string());
                    return;
                }
            };
            rates.insert(volume.volume_type.clone(), rate);
        }
        let entry = match &rates[&volume.volume_type] {
            Ok(r) => {
                let monthly = r.monthly(&volume);
                Ok((volume, monthly))
            }
            Err(why) => Err(why.clone()),
        };
        book.volumes.insert(id, entry);
    }
}

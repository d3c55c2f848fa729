//! Prices what a run decided and did (SPEC §8 "Savings"): after the actions, within what the
//! deadline leaves. It reads the run's outcome and cannot change it: a price that is slow,
//! refused or missing costs the report its money figures, never an action.

use crate::policy::price::Volume;
use crate::ports::{Deadline, Prices};
use crate::report::savings::{item, Item, PriceBook, SavingAction};
use crate::run::RunOutcome;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// The most the savings may add to a run, after its actions: the report's sinks come first.
const PRICING_BUDGET: Duration = Duration::from_secs(15);

/// The instances whose action the ledger counts (`report::savings::item`), read afresh each time
/// they are needed: a list of them would be 40 bytes for each of 60 000 lines at 100 000
/// instances, held while the prices are looked up (issue 17).
fn items(outcome: &RunOutcome) -> impl Iterator<Item = Item<'_>> + Clone {
    outcome.entries.iter().filter_map(item)
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

/// The prices of what the run did and held back, and the API calls it took (GetProducts; the
/// volumes were described by the run, before it acted). The report's ledger is built from them.
pub(crate) async fn assess(
    outcome: &RunOutcome,
    prices: Option<&dyn Prices>,
    deadline: Deadline,
) -> (PriceBook, BTreeMap<String, u64>) {
    let region = outcome.header.region.as_str();
    let prices_before = prices.map(|p| p.api_calls()).unwrap_or_default();
    let mut book = PriceBook::default();
    match prices {
        None => book.unavailable = Some("this run has no Price List client".into()),
        Some(_) if items(outcome).next().is_none() => {}
        Some(_) if !deadline.has_time() => {
            book.unavailable = Some("the run's deadline left no time to look prices up".into())
        }
        Some(prices) => {
            let budget = deadline
                .for_work()
                .map_or(PRICING_BUDGET, |w| w.min(PRICING_BUDGET));
            let described = outcome.volumes.as_ref();
            let priced = price(
                items(outcome),
                region,
                described,
                prices,
                deadline,
                &mut book,
            );
            if tokio::time::timeout(budget, priced).await.is_err() {
                book.unavailable = Some(format!(
                    "the Price List did not answer within {} s",
                    budget.as_secs()
                ));
            }
        }
    }
    let calls = prices.map_or_else(BTreeMap::new, |p| delta(&prices_before, p.api_calls()));
    (book, calls)
}

/// Fills `book`: one lookup per distinct compute configuration, one per volume type of the
/// terminations' volumes (`described` before the run acted). The first refusal that is not
/// "no such product" (access denied, throttled, no route) ends the pricing: the run reports
/// hours and says why.
async fn price(
    items: impl Iterator<Item = Item<'_>> + Clone,
    region: &str,
    described: Option<&Result<Vec<Volume>, String>>,
    prices: &dyn Prices,
    deadline: Deadline,
    book: &mut PriceBook,
) {
    let keys: BTreeSet<_> = items
        .clone()
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
    let volume_ids: BTreeSet<&str> = items
        .filter(|i| i.action == SavingAction::Terminate)
        .flat_map(|i| i.billing.into_iter().flat_map(|b| b.volumes.iter()))
        .map(|v| &*v.volume_id)
        .collect();
    if volume_ids.is_empty() {
        return;
    }
    let described = match described {
        Some(Ok(v)) => v,
        Some(Err(why)) => {
            for id in volume_ids {
                book.volumes.insert(id.to_string(), Err(why.clone()));
            }
            return;
        }
        None => {
            for id in volume_ids {
                book.volumes
                    .insert(id.to_string(), Err("it was not described".into()));
            }
            return;
        }
    };
    let mut rates = HashMap::new();
    let by_id: HashMap<&str, &Volume> = described
        .iter()
        .map(|v| (v.volume_id.as_str(), v))
        .collect();
    for id in volume_ids {
        let Some(&volume) = by_id.get(id) else {
            book.volumes.insert(
                id.to_string(),
                Err("DescribeVolumes did not show it before the run acted".into()),
            );
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
            Ok(r) => Ok(r.monthly(volume)),
            Err(why) => Err(why.clone()),
        };
        book.volumes.insert(id.to_string(), entry);
    }
}

//! The ledger of savings (SPEC §8 "Savings"): what the run's stops and terminations stop paying
//! for, by action and by kind, what is held back, and the volumes a termination leaves behind.
//! Pure: the facts and the prices come in, the report's `savings` block comes out.

use crate::policy::price::{saving, Billing, ComputeKey, Saving, Usd, HOURS_PER_MONTH};
use crate::policy::{InstanceState, VerdictKind};
use crate::run::ledger::{Deferral, Entry, Fate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// `price_source` when the Price List answered every question it was asked.
pub(crate) const PRICING_API: &str = "pricing-api";
/// Lines of `left_behind` a trimmed copy keeps (the S3 copy keeps all).
const MAX_LINES: usize = 100;

/// The action whose saving a line counts.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum SavingAction {
    Terminate,
    Stop,
}

/// Money by what it is for, per month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByKind {
    pub compute: Usd,
    pub ebs: Usd,
    pub public_ipv4: Usd,
}

/// A total: how many instances, the machine-hours a month they no longer run, and (when priced)
/// the money per hour and per month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    pub instances: u64,
    pub instance_hours_per_month: u64,
    pub per_hour: Option<Usd>,
    pub per_month: Option<Usd>,
}

/// What one instance's action stops paying for: its line of the ledger, carried on its line of
/// the report (`instances[].saving`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSaving {
    pub action: SavingAction,
    /// Held back (notice gate, action window, a cap): at stake, not saved.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    pub per_hour: Option<Usd>,
    pub per_month: Option<Usd>,
    /// Why it has no price (the rest of the run may have one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced: Option<String>,
    /// What the listing said it is billed as (the evidence's `instance_type` and `platform`);
    /// the run's shared copies, not in the report's JSON.
    #[serde(skip)]
    pub instance_type: Option<std::sync::Arc<str>>,
    #[serde(skip)]
    pub platform: Option<std::sync::Arc<str>>,
}

/// A volume a termination leaves behind (`DeleteOnTermination=false`): still billed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftBehind {
    pub volume_id: String,
    pub instance_id: String,
    pub per_month: Option<Usd>,
}

/// The report's `savings` block. List prices: Savings Plans, Reserved Instances, Spot and
/// negotiated discounts are not taken off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Savings {
    /// `pricing-api`, or `unavailable: <why>` (then the totals are in hours only).
    pub price_source: String,
    /// What the run's actions save: done in a live run, would be in a dry run.
    pub saved: Total,
    pub by_action: BTreeMap<SavingAction, Total>,
    /// What `saved` is made of, per month (absent without prices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_kind: Option<ByKind>,
    /// What the actions held back (notice gate, action window, caps) would save.
    pub at_stake: Total,
    pub left_behind: Vec<LeftBehind>,
    /// Instances counted without a price (each line says why): the money totals leave them out.
    #[serde(default, skip_serializing_if = "crate::report::is_zero")]
    pub unpriced: u64,
    /// How many `left_behind` lines a trimmed copy left out.
    #[serde(default, skip_serializing_if = "crate::report::is_zero")]
    pub lines_omitted: u64,
}

impl Savings {
    pub fn priced(&self) -> bool {
        self.price_source == PRICING_API
    }

    /// A copy with at most `MAX_LINES` of each list (the totals stay exact).
    pub(crate) fn trimmed(&self) -> Savings {
        // Only the lines kept are copied: the whole list of a large run is megabytes.
        let cut = self.left_behind.len().saturating_sub(MAX_LINES);
        Savings {
            price_source: self.price_source.clone(),
            saved: self.saved,
            by_action: self.by_action.clone(),
            by_kind: self.by_kind,
            at_stake: self.at_stake,
            left_behind: self.left_behind.iter().take(MAX_LINES).cloned().collect(),
            unpriced: self.unpriced,
            lines_omitted: self.lines_omitted + cut as u64,
        }
    }
}

/// One instance to account for, with what it is billed for.
pub(crate) struct Item<'a> {
    pub id: &'a str,
    pub action: SavingAction,
    pub held: bool,
    /// Running (or about to run): its compute and Amazon-assigned addresses are billed.
    pub running: bool,
    pub billing: Option<&'a Billing>,
}

/// The answers the ledger is computed from. A missing compute price or volume is a line
/// without a price, and says why.
#[derive(Debug, Default)]
pub(crate) struct PriceBook {
    /// `None`: the prices as a whole are unavailable, and why.
    pub unavailable: Option<String>,
    pub compute: HashMap<ComputeKey, Result<Usd, String>>,
    /// By volume id: its monthly cost, or why it has none.
    pub volumes: HashMap<String, Result<Usd, String>>,
}

/// The ledger of savings in one line (SPEC §8), as every view leads with it: the lead (what
/// the actions save a month, by action) and the rest (the split, what is held back); without
/// prices, the machine-hours and why. `shown` makes the price source's text safe for the view.
pub(crate) fn headline(
    report: &super::RunReport,
    shown: impl Fn(&str) -> String,
) -> Option<(String, String)> {
    let s = report.savings.as_ref()?;
    if s.saved.instances == 0 && s.at_stake.instances == 0 {
        return None;
    }
    let verb = if report.mode == super::Mode::DryRun {
        "Would save"
    } else {
        "Saves"
    };
    if !s.priced() {
        return Some((
            format!(
                "{verb} {} instance-hours a month",
                s.saved.instance_hours_per_month
            ),
            format!(
                "({} instances); no dollar figure: {}",
                s.saved.instances,
                shown(&s.price_source)
            ),
        ));
    }
    let month = |t: &Total| t.per_month.unwrap_or_default();
    let parts: Vec<String> = s
        .by_action
        .iter()
        .map(|(action, t)| format!("{action} {}", month(t)))
        .collect();
    let lead = format!("{verb} about {}/month", month(&s.saved));
    let mut rest = format!(
        "({} instances: {}; list prices)",
        s.saved.instances,
        parts.join(", ")
    );
    if s.unpriced > 0 {
        rest.push_str(&format!(
            "; {} instances without a price are not in it (the report says why)",
            s.unpriced
        ));
    }
    if s.at_stake.instances > 0 {
        rest.push_str(&format!(
            ". Held back: {}/month more ({} instances)",
            month(&s.at_stake),
            s.at_stake.instances
        ));
    }
    Some((lead, rest))
}

/// The ledger of the run's `items` in `region` at the prices of `book`, and each item's line.
#[cfg(test)]
pub(crate) fn ledger(
    items: &[Item<'_>],
    region: &str,
    book: &PriceBook,
) -> (Savings, Vec<InstanceSaving>) {
    let mut tally = Tally::new(region, book);
    let lines = items.iter().map(|i| tally.add(i)).collect();
    (tally.finish(), lines)
}

/// The ledger, one instance at a time: the report is built from the run's outcome entry by
/// entry (a large run never holds both whole), and each line goes on its instance's line.
pub(crate) struct Tally<'b> {
    region: &'b str,
    book: &'b PriceBook,
    priced: bool,
    out: Savings,
    sums: BTreeMap<(bool, Option<SavingAction>), Saving>,
}

impl<'b> Tally<'b> {
    pub(crate) fn new(region: &'b str, book: &'b PriceBook) -> Self {
        let priced = book.unavailable.is_none();
        Tally {
            region,
            book,
            priced,
            out: Savings {
                price_source: match &book.unavailable {
                    None => PRICING_API.into(),
                    Some(why) => format!("unavailable: {why}"),
                },
                by_kind: priced.then(ByKind::default),
                ..Savings::default()
            },
            sums: BTreeMap::new(),
        }
    }

    /// Counts `item` and gives its line.
    pub(crate) fn add(&mut self, item: &Item<'_>) -> InstanceSaving {
        let out = &mut self.out;
        let hours = if item.running { HOURS_PER_MONTH } else { 0 };
        let total = if item.held {
            &mut out.at_stake
        } else {
            out.by_action.entry(item.action).or_default()
        };
        total.instances += 1;
        total.instance_hours_per_month += hours;
        if !item.held {
            out.saved.instances += 1;
            out.saved.instance_hours_per_month += hours;
        }
        let terminate = item.action == SavingAction::Terminate;
        let priced_line = match (self.priced, item.billing) {
            (false, _) => Err(None),
            (true, None) => Err(Some(
                "the listing did not give its instance type".to_string(),
            )),
            (true, Some(billing)) => price(item, billing, self.region, self.book),
        };
        let mut line = InstanceSaving {
            action: item.action,
            held: item.held,
            per_hour: None,
            per_month: None,
            unpriced: None,
            instance_type: item
                .billing
                .map(|b| std::sync::Arc::clone(&b.instance_type)),
            platform: item.billing.map(|b| std::sync::Arc::clone(&b.platform)),
        };
        match priced_line {
            Ok(s) => {
                line.per_hour = Some(s.per_hour());
                line.per_month = Some(s.per_month());
                for key in [(item.held, Some(item.action)), (item.held, None)] {
                    self.sums.entry(key).or_default().add(&s);
                }
            }
            Err(why) => {
                out.unpriced += u64::from(why.is_some());
                line.unpriced = why;
            }
        }
        if terminate && !item.held {
            for v in item.billing.iter().flat_map(|b| b.volumes.iter()) {
                if v.delete_on_termination {
                    continue;
                }
                out.left_behind.push(LeftBehind {
                    volume_id: v.volume_id.to_string(),
                    instance_id: item.id.to_string(),
                    per_month: self
                        .priced
                        .then(|| self.book.volumes.get(&*v.volume_id))
                        .flatten()
                        .and_then(|r| r.as_ref().ok())
                        .copied(),
                });
            }
        }
        line
    }

    /// The ledger's totals.
    pub(crate) fn finish(self) -> Savings {
        let Tally {
            priced,
            mut out,
            sums,
            ..
        } = self;
        if priced {
            let money = |total: &mut Total, s: Option<&Saving>| {
                let s = s.copied().unwrap_or_default();
                total.per_hour = Some(s.per_hour());
                total.per_month = Some(s.per_month());
            };
            money(&mut out.saved, sums.get(&(false, None)));
            money(&mut out.at_stake, sums.get(&(true, None)));
            for (action, total) in out.by_action.iter_mut() {
                money(total, sums.get(&(false, Some(*action))));
            }
            let all = sums.get(&(false, None)).copied().unwrap_or_default();
            out.by_kind = Some(ByKind {
                compute: all.compute_per_hour.times(HOURS_PER_MONTH),
                ebs: all.ebs_per_month,
                public_ipv4: all.ipv4_per_hour.times(HOURS_PER_MONTH),
            });
        }
        out
    }
}

/// The instance an entry is to the ledger: an action done (or would be, in a dry run), or held
/// back by the notice gate, the action window or a cap. A failed or re-judged action, or
/// anything else, saves nothing.
pub(crate) fn item(e: &Entry) -> Option<Item<'_>> {
    use SavingAction::{Stop, Terminate};
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
            | Fate::Deferred(Deferral::NotAnnounced(_) | Deferral::OutsideWindow(_)),
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
}

/// One line's saving, or why it has none.
fn price(
    item: &Item<'_>,
    billing: &Billing,
    region: &str,
    book: &PriceBook,
) -> Result<Saving, Option<String>> {
    let compute = if item.running {
        let key = billing.compute_key(region).map_err(Some)?;
        match book.compute.get(&key) {
            Some(Ok(usd)) => *usd,
            Some(Err(why)) => return Err(Some(why.clone())),
            None => return Err(Some("its price was not looked up in time".into())),
        }
    } else {
        Usd::ZERO
    };
    let mut volumes = Vec::new();
    if item.action == SavingAction::Terminate {
        for v in billing.volumes.iter() {
            match book.volumes.get(&*v.volume_id) {
                Some(Ok(monthly)) => volumes.push((v.delete_on_termination, *monthly)),
                Some(Err(why)) => return Err(Some(format!("volume {}: {why}", v.volume_id))),
                None => {
                    return Err(Some(format!(
                        "volume {} was not described in time",
                        v.volume_id
                    )))
                }
            }
        }
    }
    Ok(saving(
        item.running,
        item.action == SavingAction::Terminate,
        billing,
        compute,
        &volumes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::price::{Attached, Purchase, Tenancy};

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    fn billing(volumes: &[(&str, bool)]) -> Billing {
        Billing {
            instance_type: "t3.medium".into(),
            platform: "Linux/UNIX".into(),
            tenancy: Tenancy::Shared,
            purchase: Purchase::OnDemand,
            public_ipv4: 1,
            volumes: volumes
                .iter()
                .map(|(id, del)| Attached {
                    volume_id: (*id).into(),
                    delete_on_termination: *del,
                })
                .collect(),
        }
    }

    fn book() -> PriceBook {
        let key = billing(&[]).compute_key("eu-west-1").unwrap();
        // gp3 at $0.088/GiB-month: 8 GiB and 100 GiB.
        let vol = |id: &str, monthly: &str| (id.to_string(), Ok(usd(monthly)));
        PriceBook {
            unavailable: None,
            compute: [(key, Ok(usd("0.0416")))].into_iter().collect(),
            volumes: [vol("vol-root", "0.704"), vol("vol-data", "8.8")]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn the_ledger_splits_by_action_and_kind_and_holds_back_what_is_at_stake() {
        let term = billing(&[("vol-root", true), ("vol-data", false)]);
        let stop = billing(&[("vol-root", true)]);
        let items = [
            Item {
                id: "i-term",
                action: SavingAction::Terminate,
                held: false,
                running: true,
                billing: Some(&term),
            },
            Item {
                id: "i-stop",
                action: SavingAction::Stop,
                held: false,
                running: true,
                billing: Some(&stop),
            },
            Item {
                id: "i-held",
                action: SavingAction::Stop,
                held: true,
                running: true,
                billing: Some(&stop),
            },
        ];
        let (s, lines) = ledger(&items, "eu-west-1", &book());
        assert_eq!(s.price_source, "pricing-api");
        // Each item's own line, in order: what its action saves, held back or not.
        assert_eq!(lines[0].per_month, Some(usd("34.722")));
        assert_eq!(lines[0].per_hour, Some(usd("0.0475643836")));
        assert_eq!((lines[1].held, lines[2].held), (false, true));
        assert_eq!(lines[2].per_month, Some(usd("34.018")));
        // terminate: (0.0416 + 0.005) * 730 + 0.704 = 34.722; stop: 0.0466 * 730 = 34.018
        let t = &s.by_action[&SavingAction::Terminate];
        assert_eq!(t.per_month, Some(usd("34.722")));
        assert_eq!(
            s.by_action[&SavingAction::Stop].per_month,
            Some(usd("34.018"))
        );
        assert_eq!(s.saved.per_month, Some(usd("68.74")));
        assert_eq!(s.saved.instances, 2);
        assert_eq!(s.saved.instance_hours_per_month, 1460);
        assert_eq!(
            s.by_kind,
            Some(ByKind {
                compute: usd("60.736"),
                ebs: usd("0.704"),
                public_ipv4: usd("7.3"),
            })
        );
        assert_eq!(s.at_stake.instances, 1);
        assert_eq!(s.at_stake.per_month, Some(usd("34.018")));
        assert_eq!(
            s.left_behind,
            [LeftBehind {
                volume_id: "vol-data".into(),
                instance_id: "i-term".into(),
                per_month: Some(usd("8.8")),
            }]
        );
    }

    #[test]
    fn without_prices_it_counts_hours_and_says_why() {
        let b = billing(&[]);
        let items = [Item {
            id: "i-stop",
            action: SavingAction::Stop,
            held: false,
            running: true,
            billing: Some(&b),
        }];
        let book = PriceBook {
            unavailable: Some("AccessDeniedException: not authorized".into()),
            ..PriceBook::default()
        };
        let (s, lines) = ledger(&items, "eu-west-1", &book);
        assert_eq!(
            s.price_source,
            "unavailable: AccessDeniedException: not authorized"
        );
        assert_eq!(s.saved.per_month, None);
        assert_eq!(s.saved.instance_hours_per_month, 730);
        assert_eq!(s.by_kind, None);
        assert_eq!(lines[0].unpriced, None);
        assert_eq!(lines[0].per_month, None);
    }

    #[test]
    fn a_line_without_a_price_says_why_and_the_rest_is_still_priced() {
        let mut odd = billing(&[]);
        odd.platform = "Plan 9".into();
        let ok = billing(&[]);
        let items = [
            Item {
                id: "i-odd",
                action: SavingAction::Stop,
                held: false,
                running: true,
                billing: Some(&odd),
            },
            Item {
                id: "i-ok",
                action: SavingAction::Stop,
                held: false,
                running: true,
                billing: Some(&ok),
            },
        ];
        let (s, lines) = ledger(&items, "eu-west-1", &book());
        assert_eq!(
            lines[0].unpriced.as_deref(),
            Some("platform 'Plan 9' has no Price List equivalent the reaper knows")
        );
        assert_eq!(s.saved.per_month, Some(usd("34.018")));
        assert_eq!(s.unpriced, 1);
    }
}

//! list -> judge -> plan -> re-check -> act -> ledger (SPEC §3-§6). Reporting is `report::build`.

use super::ledger::{Deferral, Fate, Ledger, Step, MAX_TAGS};
use super::request::RunRequest;
use crate::config::Config;
use crate::policy::plan::{Batch, Plan};
use crate::policy::tags::TERMINATION_DATE;
use crate::policy::{judge, plan_with, Acting, Instance, InstanceState, VerdictKind};
use crate::ports::{ApiError, Fleet, IdOutcome, Mutation};
use crate::report::build::{build, Header};
use crate::report::{CircuitReport, RunReport};
use chrono::Utc;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Where the run happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    pub run_id: String,
    pub account: String,
    pub region: String,
}

/// Runs one sweep. Never fails: every problem ends up in the report.
pub async fn sweep<F: Fleet>(
    fleet: &F,
    cfg: &Config,
    ctx: RunContext,
    req: &RunRequest,
) -> RunReport {
    let header = Header {
        run_id: ctx.run_id,
        account: ctx.account,
        region: ctx.region,
        mode: req.mode,
        trigger: req.trigger,
        started_at: Utc::now(),
        evaluated_at: req.now,
        forecast: req.forecast,
    };
    let calls_before = fleet.api_calls();
    let mut errors = Vec::new();
    let mut warnings: Vec<String> = cfg.warnings.iter().chain(&req.warnings).cloned().collect();

    // Each page is judged as it arrives and only what needs anything is kept, as compact facts:
    // memory follows what the run acts on or reports, not the size of the fleet.
    let mut ledger = Ledger::default();
    let mut found: HashSet<String> = HashSet::new();
    let listing = fleet
        .list_pages(req.ids.as_deref(), req.deadline, &mut |page| {
            for instance in page {
                if req.ids.is_some() {
                    found.insert(instance.id.clone());
                }
                let verdict = judge(&instance, req.now, &cfg.rules);
                ledger.enter(instance, verdict, &cfg.owner_tag);
            }
        })
        .await;
    if let Err(err) = listing {
        errors.push(format!(
            "listing instances failed, nothing was judged: {err}"
        ));
        // Half a fleet is not judged: nothing of what was listed is acted on or reported.
        ledger = Ledger::default();
    }
    if let (Some(wanted), true) = (&req.ids, errors.is_empty()) {
        let missing: Vec<&str> = wanted
            .iter()
            .map(String::as_str)
            .filter(|id| !found.contains(*id))
            .collect();
        // One line however many: 10 000 unknown ids must not make a 1 MB report.
        const SHOWN: usize = 10;
        match missing.as_slice() {
            [] => {}
            [id] => warnings.push(format!(
                "instance {id} was not found in a judged state (pending, running, stopping, stopped)"
            )),
            many => warnings.push(format!(
                "{} of the {} requested instances were not found in a judged state (pending, running, stopping, stopped): {}{}",
                many.len(),
                wanted.len(),
                many[..many.len().min(SHOWN)].join(", "),
                if many.len() > SHOWN { ", …" } else { "" }
            )),
        }
    }

    // What the scope does not act on as judged is deferred; what it stops instead (an expired
    // instance at launch) is planned as a stop and deferred once acted on, below.
    // A stamp onto an instance at EC2's tag limit would fail every hour: say why instead.
    let full: Vec<String> = ledger
        .entries()
        .iter()
        .filter(|e| e.verdict.stamp().is_some() && e.fact.tag_count >= MAX_TAGS)
        .map(|e| e.fact.id.clone())
        .collect();
    ledger.defer_all(&full, &Deferral::TagLimit);
    let held: Vec<(String, &'static str)> = ledger
        .entries()
        .iter()
        .filter(|e| !req.scope.stops_instead(e.verdict.kind()))
        .filter_map(|e| Some((e.fact.id.clone(), req.scope.holds_back(e.verdict.kind())?)))
        .collect();
    for (id, why) in held {
        ledger.set(&id, Fate::Deferred(Deferral::NotInScope(why)));
    }

    // Outside ACTION_WINDOW nobody may be around to react: terminations and stops wait.
    let outside = cfg.action_window.as_ref().and_then(|w| w.deferral(req.now));
    let the_plan = plan_with(
        ledger
            .entries()
            .iter()
            .filter(|e| e.is_actionable() && e.fate.is_none())
            .map(|e| (e.fact.id.as_str(), &e.verdict)),
        &cfg.caps,
        req.now,
        Acting {
            stop_expired: req.scope.stops_instead(VerdictKind::Terminate),
            destructive: outside.is_none(),
        },
    );
    if let Some(why) = &outside {
        let waiting: Vec<String> = ledger
            .entries()
            .iter()
            .filter(|e| e.fate.is_none())
            .filter(|e| matches!(e.verdict.kind(), VerdictKind::Terminate | VerdictKind::Stop))
            .map(|e| e.fact.id.clone())
            .collect();
        ledger.defer_all(&waiting, &Deferral::OutsideWindow(why.clone()));
    }
    for circuit in &the_plan.circuits {
        tracing::warn!(action = ?circuit.action, planned = circuit.planned, cap = %circuit.cap, "{}", circuit.message());
    }
    for id in the_plan.withheld.keys() {
        ledger.set(id, Fate::CircuitOpen);
    }

    if req.is_live() {
        act(fleet, cfg, req, &the_plan, &mut ledger, &mut errors).await;
    }
    // An expired instance at launch was stopped (or would be), not terminated: its termination
    // is deferred to the sweep, and the report must not read "terminate: done".
    let stopped_instead: Vec<(String, &'static str)> = ledger
        .entries()
        .iter()
        .filter(|e| req.scope.stops_instead(e.verdict.kind()))
        .filter(|e| matches!(e.fate, None | Some(Fate::Done)) && outside.is_none())
        .filter_map(|e| Some((e.fact.id.clone(), req.scope.holds_back(e.verdict.kind())?)))
        .collect();
    for (id, why) in stopped_instead {
        ledger.set(&id, Fate::Deferred(Deferral::NotInScope(why)));
    }

    let after = fleet.api_calls();
    let api_calls = after
        .into_iter()
        .filter_map(|(op, n)| {
            let d = n.saturating_sub(calls_before.get(&op).copied().unwrap_or(0));
            (d > 0).then_some((op, d))
        })
        .collect();
    build(
        header,
        ledger,
        the_plan.circuits.iter().map(CircuitReport::from).collect(),
        errors,
        warnings,
        api_calls,
        &cfg.rules,
    )
}

/// The ids of `batch` still waiting for their action.
fn pending(ledger: &Ledger, batch: &Batch) -> Vec<String> {
    batch
        .ids
        .iter()
        .filter(|id| ledger.is_pending(id))
        .cloned()
        .collect()
}

async fn act<F: Fleet>(
    fleet: &F,
    cfg: &Config,
    req: &RunRequest,
    the_plan: &Plan,
    ledger: &mut Ledger,
    errors: &mut Vec<String>,
) {
    let action_ids: Vec<String> = the_plan
        .action_ids()
        .into_iter()
        .filter(|id| ledger.may_stamp(id))
        .collect();
    if action_ids.is_empty() {
        return;
    }
    // Out of time before the re-check: nothing starts. Later every call asks the deadline itself
    // (`adapters::bisect`), and ids it does not attempt come back `NotAttempted` -> deferred.
    if !req.deadline.has_time() {
        ledger.defer_all(&action_ids, &Deferral::OutOfTime);
        return;
    }

    // Re-check: one consistent re-describe of the action set just before acting, so a tag or
    // state changed since the listing is never acted on by a stale verdict.
    let fresh = match fleet.list(Some(&action_ids), req.deadline).await {
        Ok(fresh) => fresh,
        Err(err) => {
            errors.push(format!(
                "re-checking {} instances before acting failed, so nothing was changed: {err}",
                action_ids.len()
            ));
            ledger.defer_all(&action_ids, &Deferral::RecheckFailed);
            return;
        }
    };
    let fresh: HashMap<&str, &Instance> = fresh.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut changed: BTreeSet<&str> = BTreeSet::new();
    for id in &action_ids {
        let now_verdict = fresh
            .get(id.as_str())
            .map(|f| judge(f, req.now, &cfg.rules));
        if ledger.get(id).map(|e| &e.verdict) != now_verdict.as_ref() {
            let now = now_verdict.map(|v| v.kind());
            ledger.set(id, Fate::Deferred(Deferral::Changed { now }));
            changed.insert(id);
        }
    }

    // 1. Stamps (also the ones that precede a termination, which waits for its stamp).
    for batch in &the_plan.stamps {
        let ids: Vec<String> = batch
            .ids
            .iter()
            .filter(|id| ledger.may_stamp(id) && !changed.contains(id.as_str()))
            .cloned()
            .collect();
        if ids.is_empty() {
            continue;
        }
        let results = fleet
            .apply(Mutation::Tag(&batch.tags), &ids, req.deadline)
            .await;
        let (_, lost) = ledger.record(Step::Stamp, results);
        let stamp = batch
            .tags
            .iter()
            .find(|(k, _)| k == TERMINATION_DATE)
            .map(|(_, v)| v.clone());
        confirm(fleet, req, ledger, Step::Stamp, lost, |seen| {
            seen.is_some_and(|i| i.tag(TERMINATION_DATE) == stamp.as_deref())
        })
        .await;
    }

    // 2. Terminations (never of an instance whose stamp failed: its tags would not say why).
    let mut lost_terminations = Vec::new();
    for batch in &the_plan.terminations {
        let ids = pending(ledger, batch);
        if ids.is_empty() {
            continue;
        }
        let results = fleet.apply(Mutation::Terminate, &ids, req.deadline).await;
        let (done, lost) = ledger.record(Step::Terminate, results);
        for id in done {
            ledger.set(&id, Fate::Done);
        }
        lost_terminations.extend(lost);
    }
    // Gone from the judged states (shutting-down or terminated) means it happened.
    confirm(
        fleet,
        req,
        ledger,
        Step::Terminate,
        lost_terminations,
        |seen| {
            seen.is_none_or(|i| {
                matches!(
                    i.state,
                    InstanceState::ShuttingDown | InstanceState::Terminated
                )
            })
        },
    )
    .await;

    // 3. Stops, then the tags that tell a person why the machine is off.
    let mut stopped: BTreeSet<String> = BTreeSet::new();
    for batch in &the_plan.stops {
        let ids = pending(ledger, batch);
        if ids.is_empty() {
            continue;
        }
        let results = fleet.apply(Mutation::Stop, &ids, req.deadline).await;
        let (done, lost) = ledger.record(Step::Stop, results);
        stopped.extend(done);
        stopped.extend(
            confirm(fleet, req, ledger, Step::Stop, lost, |seen| {
                seen.is_some_and(|i| {
                    matches!(i.state, InstanceState::Stopping | InstanceState::Stopped)
                })
            })
            .await,
        );
    }
    for id in &stopped {
        ledger.set(id, Fate::Done);
    }
    for batch in &the_plan.stop_tags {
        let ids: Vec<String> = batch
            .ids
            .iter()
            .filter(|id| stopped.contains(*id))
            .cloned()
            .collect();
        if ids.is_empty() {
            continue;
        }
        for (id, outcome) in fleet
            .apply(Mutation::Tag(&batch.tags), &ids, req.deadline)
            .await
        {
            let problem = match outcome {
                IdOutcome::Done => continue,
                IdOutcome::Failed(err) => format!("stopped, but tagging the reason failed: {err}"),
                IdOutcome::Lost(err) => {
                    format!("stopped, but whether the reason tag was written is unknown: {err}")
                }
                IdOutcome::NotAttempted => {
                    "stopped, but the reason tag was not written: the run's time was up".into()
                }
            };
            // The stop happened; only the explanation is missing.
            ledger.note_afterwards(&id, problem);
        }
    }
}

/// A lost answer is checked, not guessed (SPEC §5): the ids are described again; those where
/// EC2 shows the action (`shows`) are returned as done, the rest are `unknown` with the error.
async fn confirm<F: Fleet>(
    fleet: &F,
    req: &RunRequest,
    ledger: &mut Ledger,
    step: Step,
    lost: Vec<(String, ApiError)>,
    shows: impl Fn(Option<&Instance>) -> bool,
) -> Vec<String> {
    if lost.is_empty() {
        return Vec::new();
    }
    let ids: Vec<String> = lost.iter().map(|(id, _)| id.clone()).collect();
    let seen = fleet.list(Some(&ids), req.deadline).await;
    let mut confirmed = Vec::new();
    for (id, error) in lost {
        let happened = match &seen {
            Ok(seen) => shows(seen.iter().find(|i| i.id == id)),
            Err(_) => false,
        };
        if happened {
            confirmed.push(id);
        } else {
            ledger.set(&id, Fate::Unknown { step, error });
        }
    }
    confirmed
}

#[cfg(test)]
mod tests {
    //! The sweep's decisions against the in-memory fleet. The same flows run against moto through
    //! the real SDK in `tests/tests/sweep.rs`.
    use super::*;
    use crate::adapters::memory::MemoryFleet;
    use crate::policy::{Cap, InstanceState, VerdictKind};
    use crate::ports::Deadline;
    use crate::report::Outcome;
    use crate::run::{Mode, Scope, TriggerKind};
    use chrono::{DateTime, TimeDelta, TimeZone};
    use std::collections::BTreeMap;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn inst(id: &str, state: InstanceState, tags: &[(&str, &str)]) -> Instance {
        Instance {
            id: id.into(),
            state,
            launch_time: now() - TimeDelta::hours(2),
            root_attach_time: None,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn fleet() -> MemoryFleet {
        use InstanceState::*;
        MemoryFleet::new(vec![
            inst(
                "i-expired",
                Running,
                &[
                    ("termination_date", "2030-01-01T00:00:00Z"),
                    ("Name", "old"),
                    ("owner", "ana"),
                ],
            ),
            inst("i-lifetime", Running, &[("lifetime", "1d")]),
            // Inside the grace period, so a lifetime already due still terminates (outside it, the
            // stamp gives notice first: SPEC §2).
            Instance {
                launch_time: now() - TimeDelta::minutes(10),
                ..inst("i-due", Stopped, &[("lifetime", "1m")])
            },
            inst("i-untagged", Running, &[]),
            inst("i-stopped-untagged", Stopped, &[]),
            inst("i-keep", Running, &[("termination_date", "indefinite")]),
        ])
    }

    fn req(live: bool) -> RunRequest {
        RunRequest {
            mode: if live { Mode::Live } else { Mode::DryRun },
            trigger: TriggerKind::Schedule,
            scope: Scope::Sweep,
            now: now(),
            forecast: false,
            ids: None,
            deadline: Deadline::NONE,
            warnings: Vec::new(),
        }
    }

    fn ctx() -> RunContext {
        RunContext {
            run_id: "r".into(),
            account: "123456789012".into(),
            region: "eu-west-1".into(),
        }
    }

    fn get(f: &MemoryFleet, id: &str) -> Instance {
        f.get(id).unwrap()
    }

    fn outcome(r: &RunReport, id: &str) -> Option<Outcome> {
        r.instances.iter().find(|i| i.id == id).unwrap().outcome
    }

    async fn run(f: &MemoryFleet, cfg: &Config, rq: RunRequest) -> RunReport {
        sweep(f, cfg, ctx(), &rq).await
    }

    #[tokio::test]
    async fn a_dry_run_makes_no_mutating_call_and_says_would() {
        let f = fleet();
        let r = run(&f, &Config::default(), req(false)).await;
        assert_eq!(f.mutating_calls(), 0);
        assert_eq!(r.mode, Mode::DryRun);
        for id in ["i-expired", "i-lifetime", "i-due", "i-untagged"] {
            assert_eq!(outcome(&r, id), Some(Outcome::Would), "{id}");
        }
        assert_eq!(outcome(&r, "i-stopped-untagged"), None);
        assert_eq!(r.instances_judged, 6);
        assert_eq!(r.instances.len(), 5, "keep is counted, not listed");
        assert_eq!(r.verdict_count(VerdictKind::Keep), 1);
        assert_eq!(
            r.api_calls,
            BTreeMap::from([("DescribeInstances".to_string(), 1)])
        );
        let expired = r.instances.iter().find(|i| i.id == "i-expired").unwrap();
        assert_eq!(
            (expired.name.as_deref(), expired.owner.as_deref()),
            (Some("old"), Some("ana"))
        );
    }

    #[tokio::test]
    async fn a_live_run_acts_with_one_call_per_batch_after_one_re_check() {
        let f = fleet();
        let r = run(&f, &Config::default(), req(true)).await;
        assert_eq!(get(&f, "i-expired").state, InstanceState::ShuttingDown);
        assert_eq!(get(&f, "i-due").state, InstanceState::ShuttingDown);
        assert_eq!(
            get(&f, "i-due").tags[&"termination_date".to_owned()],
            "2030-01-01T11:51:00Z"
        );
        // 1d from a launch 2h ago ends inside WARN_WINDOW: stamped now + WARN_WINDOW instead.
        assert_eq!(
            get(&f, "i-lifetime").tags[&"termination_date".to_owned()],
            "2030-01-02T12:00:00Z"
        );
        assert_eq!(get(&f, "i-untagged").state, InstanceState::Stopping);
        assert_eq!(
            get(&f, "i-untagged").tags[&"reaper:stop_reason".to_owned()],
            "no termination_date or lifetime tag"
        );
        assert_eq!(
            get(&f, "i-untagged").tags[&"reaper:stopped_at".to_owned()],
            "2030-01-01T12:00:00Z"
        );
        assert_eq!(get(&f, "i-stopped-untagged").state, InstanceState::Stopped);
        assert_eq!(r.outcome_count(Outcome::Done), 4);
        // list + re-check; 2 stamp values; 1 terminate batch; 1 stop + its tags.
        assert_eq!(
            r.api_calls,
            BTreeMap::from([
                ("CreateTags".to_string(), 3),
                ("DescribeInstances".to_string(), 2),
                ("StopInstances".to_string(), 1),
                ("TerminateInstances".to_string(), 1),
            ])
        );
    }

    #[tokio::test]
    async fn an_instance_changed_between_listing_and_acting_is_not_acted_on() {
        let f = fleet();
        f.after_first_list(|all| {
            // Someone extends the expired machine and tags the untagged one.
            if let Some(i) = all.get_mut("i-expired") {
                i.tags
                    .insert("termination_date".into(), "2031-01-01T00:00:00Z".into());
            }
            if let Some(i) = all.get_mut("i-untagged") {
                i.tags.insert("lifetime".into(), "1w".into());
            }
        });
        let r = run(&f, &Config::default(), req(true)).await;
        assert_eq!(get(&f, "i-expired").state, InstanceState::Running);
        assert_eq!(get(&f, "i-untagged").state, InstanceState::Running);
        assert_eq!(outcome(&r, "i-expired"), Some(Outcome::Deferred));
        let reason = &r
            .instances
            .iter()
            .find(|i| i.id == "i-expired")
            .unwrap()
            .reason;
        assert!(
            reason.contains("changed since the listing (now: keep)"),
            "{reason}"
        );
        assert_eq!(outcome(&r, "i-due"), Some(Outcome::Done));
    }

    #[tokio::test]
    async fn a_protected_instance_fails_and_is_not_stopped_instead() {
        let f = fleet();
        f.refuse("TerminateInstances", "i-expired");
        let r = run(&f, &Config::default(), req(true)).await;
        assert_eq!(get(&f, "i-expired").state, InstanceState::Running);
        let e = r.instances.iter().find(|i| i.id == "i-expired").unwrap();
        assert_eq!(e.outcome, Some(Outcome::Failed));
        assert!(
            e.error.as_deref().unwrap().starts_with("protected: "),
            "{e:?}"
        );
        assert_eq!(
            get(&f, "i-due").state,
            InstanceState::ShuttingDown,
            "others still acted on"
        );
        assert!(r.has_failures());
    }

    #[tokio::test]
    async fn near_the_deadline_nothing_new_starts_and_the_rest_is_deferred() {
        let f = fleet();
        let mut rq = req(true);
        rq.deadline = Deadline::after(std::time::Duration::from_secs(10));
        let r = run(&f, &Config::default(), rq).await;
        assert_eq!(f.mutating_calls(), 0);
        assert_eq!(r.outcome_count(Outcome::Deferred), 4);
        assert_eq!(r.outcome_count(Outcome::Done), 0);
    }

    #[tokio::test]
    async fn over_the_cap_nothing_of_that_action_happens() {
        let f = fleet();
        let mut cfg = Config::default();
        cfg.caps.terminations = Cap::Limited(1);
        let r = run(&f, &cfg, req(true)).await;
        assert_eq!(get(&f, "i-expired").state, InstanceState::Running);
        assert_eq!(get(&f, "i-due").state, InstanceState::Stopped);
        assert_eq!(
            get(&f, "i-due").tags[&"termination_date".to_owned()],
            "2030-01-01T11:51:00Z",
            "a stamp destroys nothing and still happens with the circuit open"
        );
        assert_eq!(outcome(&r, "i-expired"), Some(Outcome::CircuitOpen));
        assert_eq!(outcome(&r, "i-due"), Some(Outcome::CircuitOpen));
        assert_eq!(r.circuits.len(), 1);
        assert_eq!(r.circuits[0].planned, 2);
        assert_eq!(
            get(&f, "i-untagged").state,
            InstanceState::Stopping,
            "stops have their own cap"
        );
    }

    #[tokio::test]
    async fn a_tripped_circuit_stays_the_outcome_when_time_runs_out() {
        let f = fleet();
        let mut cfg = Config::default();
        cfg.caps.terminations = Cap::Limited(0);
        let mut rq = req(true);
        rq.deadline = Deadline::after(std::time::Duration::from_secs(5));
        let r = run(&f, &cfg, rq).await;
        assert_eq!(outcome(&r, "i-expired"), Some(Outcome::CircuitOpen));
        assert_eq!(outcome(&r, "i-due"), Some(Outcome::CircuitOpen));
        assert_eq!(outcome(&r, "i-untagged"), Some(Outcome::Deferred));
        assert_eq!(f.mutating_calls(), 0);
    }

    #[tokio::test]
    async fn the_state_change_event_stamps_and_terminates_but_never_stops() {
        let f = fleet();
        let mut rq = req(true);
        rq.trigger = TriggerKind::InstanceState;
        rq.scope = Scope::LaunchEvent;
        rq.ids = Some(vec!["i-untagged".into(), "i-lifetime".into()]);
        let r = run(&f, &Config::default(), rq).await;
        assert_eq!(get(&f, "i-untagged").state, InstanceState::Running);
        assert_eq!(outcome(&r, "i-untagged"), Some(Outcome::Deferred));
        assert!(get(&f, "i-lifetime").tags.contains_key("termination_date"));
        assert_eq!(r.instances_judged, 2);
    }

    #[tokio::test]
    async fn a_launch_event_stops_an_expired_instance_and_never_terminates() {
        let f = fleet();
        let mut rq = req(true);
        rq.trigger = TriggerKind::InstanceState;
        rq.scope = Scope::LaunchEvent;
        rq.ids = Some(vec!["i-expired".into(), "i-due".into()]);
        let r = run(&f, &Config::default(), rq).await;
        assert_eq!(f.calls("TerminateInstances"), 0);
        assert_eq!(get(&f, "i-expired").state, InstanceState::Stopping);
        let tags = get(&f, "i-expired").tags;
        assert!(
            tags[&"reaper:stop_reason".to_owned()].contains("stopped at launch"),
            "{tags:?}"
        );
        // A lifetime due at once is still stamped, then stopped.
        assert_eq!(
            get(&f, "i-due").tags[&"termination_date".to_owned()],
            "2030-01-01T11:51:00Z"
        );
        assert_eq!(outcome(&r, "i-expired"), Some(Outcome::Deferred));
        let line = r.instances.iter().find(|i| i.id == "i-expired").unwrap();
        assert!(
            line.reason.contains("a launch event never terminates"),
            "{}",
            line.reason
        );
    }

    #[tokio::test]
    async fn outside_the_action_window_only_stamps_happen() {
        let f = fleet();
        // 2030-01-01 is a Tuesday; at 12:00Z it is 13:00 in Berlin, outside 14:00-17:00.
        let mut cfg = Config {
            action_window: Some(
                crate::policy::ActionWindow::parse("Mon-Fri 14:00-17:00 Europe/Berlin").unwrap(),
            ),
            ..Config::default()
        };
        let r = run(&f, &cfg, req(true)).await;
        assert_eq!(f.calls("TerminateInstances") + f.calls("StopInstances"), 0);
        assert_eq!(get(&f, "i-untagged").state, InstanceState::Running);
        assert_eq!(get(&f, "i-expired").state, InstanceState::Running);
        // Stamps happen at any time, also the one a due lifetime writes before its termination.
        assert_eq!(
            get(&f, "i-due").tags[&"termination_date".to_owned()],
            "2030-01-01T11:51:00Z"
        );
        assert!(get(&f, "i-lifetime").tags.contains_key("termination_date"));
        let line = r.instances.iter().find(|i| i.id == "i-expired").unwrap();
        assert_eq!(line.outcome, Some(Outcome::Deferred));
        assert!(
            line.reason.contains("outside ACTION_WINDOW Mon-Fri 14:00-17:00 Europe/Berlin; next opens 2030-01-01T13:00:00Z"),
            "{}",
            line.reason
        );
        assert!(r.circuits.is_empty());

        // Inside it, the same fleet is acted on.
        cfg.action_window =
            Some(crate::policy::ActionWindow::parse("Mon-Fri 09:00-17:00 Europe/Berlin").unwrap());
        let f = fleet();
        run(&f, &cfg, req(true)).await;
        assert_eq!(get(&f, "i-expired").state, InstanceState::ShuttingDown);
    }

    #[tokio::test]
    async fn an_instance_at_the_tag_limit_is_told_why_not_failed_every_hour() {
        let mut tags: Vec<(String, String)> = (0..49)
            .map(|n| (format!("team:{n}"), "x".to_string()))
            .collect();
        tags.push(("lifetime".into(), "1d".into()));
        let full = Instance {
            tags: tags.into_iter().collect(),
            ..inst("i-full", InstanceState::Running, &[])
        };
        let f = MemoryFleet::new([full]);
        let r = run(&f, &Config::default(), req(true)).await;
        assert_eq!(f.calls("CreateTags"), 0);
        let line = &r.instances[0];
        assert_eq!(line.outcome, Some(Outcome::Deferred));
        assert!(
            line.reason.contains(
                "has 50 tags, EC2's limit; remove one so the reaper can stamp termination_date"
            ),
            "{}",
            line.reason
        );
        assert!(!r.has_failures());
    }

    #[tokio::test]
    async fn a_lost_answer_is_confirmed_by_a_re_describe_not_reported_failed() {
        let f = fleet();
        f.lose_answers("TerminateInstances");
        f.lose_answers("StopInstances");
        let r = run(&f, &Config::default(), req(true)).await;
        // The actions happened; only their answers were lost: EC2 shows them, so `done`.
        assert_eq!(get(&f, "i-expired").state, InstanceState::ShuttingDown);
        assert_eq!(outcome(&r, "i-expired"), Some(Outcome::Done));
        assert_eq!(outcome(&r, "i-untagged"), Some(Outcome::Done));
        assert_eq!(
            get(&f, "i-untagged").tags[&"reaper:stop_reason".to_owned()],
            "no termination_date or lifetime tag",
            "a confirmed stop still gets its reason"
        );
        assert_eq!(r.outcome_count(Outcome::Failed), 0);
        assert_eq!(r.outcome_count(Outcome::Unknown), 0);
    }
}

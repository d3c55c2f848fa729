//! list -> judge -> plan -> re-check -> act -> RunReport (SPEC §3-§6).

use crate::config::Config;
use crate::fleet::{has_time, ApiError, Fleet, IdResult, NOT_ATTEMPTED};
use crate::policy::plan::{Batch, Plan};
use crate::policy::{format_date, judge, plan, Instance, Verdict, VerdictKind};
use crate::report::{CircuitReport, InstanceReport, Mode, Outcome, RunReport};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

pub use crate::fleet::DEADLINE_MARGIN;

/// Who started the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    Schedule,
    InstanceState,
    Manual,
    Cli,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Schedule => "schedule",
            TriggerKind::InstanceState => "instance-state",
            TriggerKind::Manual => "manual",
            TriggerKind::Cli => "cli",
        }
    }
}

/// Where the run happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    pub run_id: String,
    pub account: String,
    pub region: String,
}

/// What the run is asked to do.
#[derive(Debug, Clone)]
pub struct SweepRequest {
    pub trigger: TriggerKind,
    pub live: bool,
    /// The time verdicts are computed for (the clock, or a forecast's `at`).
    pub now: DateTime<Utc>,
    pub forecast: bool,
    /// Judge only these instances.
    pub instance_ids: Option<Vec<String>>,
    /// When the Lambda will be stopped; `None` outside Lambda.
    pub deadline: Option<Instant>,
}

/// Per-instance bookkeeping while the run acts.
struct Entry {
    instance: Instance,
    verdict: Verdict,
    outcome: Option<Outcome>,
    error: Option<String>,
    note: Option<String>,
}

impl Entry {
    fn fail(&mut self, what: &str, err: &ApiError) {
        if err.code == NOT_ATTEMPTED {
            self.defer(OUT_OF_TIME);
            return;
        }
        self.outcome = Some(Outcome::Failed);
        let protected = err.code == "OperationNotPermitted";
        self.error = Some(if protected {
            format!("protected: {what} refused: {err}")
        } else {
            format!("{what} failed: {err}")
        });
    }

    /// A failure or a tripped circuit is the more important news; neither is overwritten.
    fn defer(&mut self, note: impl Into<String>) {
        if !matches!(self.outcome, Some(Outcome::Failed | Outcome::CircuitOpen)) {
            self.outcome = Some(Outcome::Deferred);
            self.note = Some(note.into());
        }
    }
}

fn is_actionable(kind: VerdictKind) -> bool {
    matches!(
        kind,
        VerdictKind::Terminate | VerdictKind::Stamp | VerdictKind::Stop
    )
}

/// Runs one sweep. Never fails: every problem ends up in the report.
pub async fn sweep<F: Fleet>(
    fleet: &F,
    cfg: &Config,
    ctx: RunContext,
    req: SweepRequest,
) -> RunReport {
    let mode = if req.live { Mode::Live } else { Mode::DryRun };
    let mut report = RunReport::new(
        ctx.run_id,
        ctx.account,
        ctx.region,
        mode,
        req.trigger.as_str(),
        Utc::now(),
    );
    report.evaluated_at = req.now;
    report.forecast = req.forecast;
    report.warnings.extend(cfg.warnings.iter().cloned());
    let calls_before = fleet.api_calls();

    let listed = match fleet.list(req.instance_ids.as_deref()).await {
        Ok(listed) => listed,
        Err(err) => {
            report.errors.push(format!(
                "listing instances failed, nothing was judged: {err}"
            ));
            return finish(report, Vec::new(), fleet, &calls_before, &cfg.owner_tag);
        }
    };
    if let Some(wanted) = &req.instance_ids {
        let found: BTreeSet<&str> = listed.iter().map(|i| i.id.as_str()).collect();
        for id in wanted.iter().filter(|id| !found.contains(id.as_str())) {
            report.warnings.push(format!(
                "instance {id} was not found in a judged state (pending, running, stopping, stopped)"
            ));
        }
    }

    let mut entries: Vec<Entry> = listed
        .into_iter()
        .map(|instance| {
            let verdict = judge(&instance, req.now, &cfg.rules);
            Entry {
                instance,
                verdict,
                outcome: None,
                error: None,
                note: None,
            }
        })
        .collect();

    // The state-change event only stamps and terminates; an untagged new instance is the
    // scheduled sweep's business once its grace period is over.
    let event_only = req.trigger == TriggerKind::InstanceState;
    for e in &mut entries {
        if event_only && e.verdict.kind() == VerdictKind::Stop {
            e.defer("left to the scheduled sweep");
        }
    }

    let mut the_plan = plan(
        entries
            .iter()
            .filter(|e| is_actionable(e.verdict.kind()) && e.outcome.is_none())
            .map(|e| (e.instance.id.as_str(), &e.verdict)),
        &cfg.caps,
        req.now,
    );
    report.circuits = the_plan.circuits.iter().map(CircuitReport::from).collect();
    for circuit in &the_plan.circuits {
        tracing::warn!(action = ?circuit.action, planned = circuit.planned, cap = %circuit.cap, "{}", circuit.message());
    }

    let index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.instance.id.clone(), i))
        .collect();
    for id in the_plan.withheld.keys() {
        if let Some(&i) = index.get(id) {
            entries[i].outcome = Some(Outcome::CircuitOpen);
        }
    }

    if req.live {
        act(
            fleet,
            cfg,
            &req,
            &mut entries,
            &index,
            &mut the_plan,
            &mut report,
        )
        .await;
    }
    for e in &mut entries {
        if is_actionable(e.verdict.kind()) && e.outcome.is_none() {
            e.outcome = Some(if req.live {
                Outcome::Done
            } else {
                Outcome::Would
            });
        }
    }
    finish(report, entries, fleet, &calls_before, &cfg.owner_tag)
}

const OUT_OF_TIME: &str = "less than 30 s of the run's time was left; the next run picks it up";

async fn act<F: Fleet>(
    fleet: &F,
    cfg: &Config,
    req: &SweepRequest,
    entries: &mut [Entry],
    index: &HashMap<String, usize>,
    the_plan: &mut Plan,
    report: &mut RunReport,
) {
    let action_ids = the_plan.action_ids();
    if action_ids.is_empty() {
        return;
    }
    let entry = |id: &str| index.get(id).copied();
    // Out of time before the re-check: nothing starts. Later, every call checks the deadline
    // itself (`fleet::bisect`), and ids it does not attempt come back NOT_ATTEMPTED -> deferred.
    if !has_time(req.deadline) {
        defer_all(entries, index, &action_ids, OUT_OF_TIME);
        return;
    }

    // Re-check: one consistent re-describe of the action set just before acting, so a tag or
    // state changed since the listing is never acted on by a stale verdict.
    let fresh = match fleet.list(Some(&action_ids)).await {
        Ok(fresh) => fresh,
        Err(err) => {
            report.errors.push(format!(
                "re-checking {} instances before acting failed, so nothing was changed: {err}",
                action_ids.len()
            ));
            defer_all(
                entries,
                index,
                &action_ids,
                "re-check failed; the next run picks it up",
            );
            return;
        }
    };
    let fresh: HashMap<&str, &Instance> = fresh.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for id in &action_ids {
        let Some(i) = entry(id) else { continue };
        let now_verdict = fresh
            .get(id.as_str())
            .map(|f| judge(f, req.now, &cfg.rules));
        if now_verdict.as_ref() != Some(&entries[i].verdict) {
            let now_kind = now_verdict.map_or("gone", |v| v.kind().as_str());
            entries[i].defer(format!(
                "changed since the listing (now: {now_kind}); not acted on, the next run re-judges it"
            ));
            changed.insert(id.clone());
        }
    }
    let keep_unchanged = |batches: &mut Vec<Batch>| {
        for b in batches.iter_mut() {
            b.ids.retain(|id| !changed.contains(id));
        }
        batches.retain(|b| !b.ids.is_empty());
    };
    keep_unchanged(&mut the_plan.stamps);
    keep_unchanged(&mut the_plan.terminations);
    keep_unchanged(&mut the_plan.stops);
    keep_unchanged(&mut the_plan.stop_tags);

    // 1. Stamps (also the ones that precede a termination).
    let mut stamp_failed: BTreeSet<String> = BTreeSet::new();
    for batch in &the_plan.stamps {
        for (id, result) in fleet.tag(&batch.ids, &batch.tags, req.deadline).await {
            if let (Err(err), Some(i)) = (result, entry(&id)) {
                entries[i].fail("tagging termination_date", &err);
                stamp_failed.insert(id);
            }
        }
    }

    // 2. Terminations (never of an instance whose stamp failed: its tags would not say why).
    for batch in &the_plan.terminations {
        let ids: Vec<String> = batch
            .ids
            .iter()
            .filter(|id| !stamp_failed.contains(*id))
            .cloned()
            .collect();
        if ids.is_empty() {
            continue;
        }
        record(
            entries,
            index,
            "terminate",
            fleet.terminate(&ids, req.deadline).await,
        );
    }

    // 3. Stops, then the tags that tell a person why the machine is off.
    let mut stopped: BTreeSet<String> = BTreeSet::new();
    for batch in &the_plan.stops {
        let results = fleet.stop(&batch.ids, req.deadline).await;
        stopped.extend(
            results
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(id, _)| id.clone()),
        );
        record(entries, index, "stop", results);
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
        let results = fleet.tag(&ids, &batch.tags, req.deadline).await;
        for (id, result) in results {
            if let (Err(err), Some(i)) = (result, entry(&id)) {
                // The stop happened; only the explanation is missing.
                entries[i].error = Some(format!("stopped, but tagging the reason failed: {err}"));
            }
        }
    }
}

fn defer_all(entries: &mut [Entry], index: &HashMap<String, usize>, ids: &[String], note: &str) {
    for id in ids {
        if let Some(&i) = index.get(id) {
            entries[i].defer(note);
        }
    }
}

fn record(
    entries: &mut [Entry],
    index: &HashMap<String, usize>,
    what: &str,
    results: Vec<IdResult>,
) {
    for (id, result) in results {
        if let (Err(err), Some(&i)) = (result, index.get(&id)) {
            entries[i].fail(what, &err);
        }
    }
}

fn finish<F: Fleet>(
    mut report: RunReport,
    mut entries: Vec<Entry>,
    fleet: &F,
    calls_before: &BTreeMap<String, u64>,
    owner_tag: &str,
) -> RunReport {
    report.instances_judged = entries.len() as u64;
    entries.sort_by(|a, b| {
        let rank = |e: &Entry| VerdictKind::ALL.iter().position(|k| *k == e.verdict.kind());
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.instance.id.cmp(&b.instance.id))
    });
    for e in &entries {
        let kind = e.verdict.kind();
        *report.counts.verdicts.entry(kind).or_default() += 1;
        if let Some(outcome) = e.outcome {
            *report.counts.outcomes.entry(outcome).or_default() += 1;
        }
        if kind == VerdictKind::Keep {
            continue;
        }
        let mut reason = e.verdict.reason();
        if let Some(note) = &e.note {
            reason = format!("{reason} ({note})");
        }
        report.instances.push(InstanceReport {
            id: e.instance.id.clone(),
            name: e.instance.tag("Name").map(str::to_string),
            owner: e.instance.tag(owner_tag).map(str::to_string),
            state: e.instance.state.to_string(),
            verdict: kind,
            reason,
            termination_date: e.verdict.termination_date().map(format_date),
            outcome: e.outcome,
            error: e.error.clone(),
        });
    }
    let after = fleet.api_calls();
    report.api_calls = after
        .into_iter()
        .filter_map(|(op, n)| {
            let d = n.saturating_sub(calls_before.get(&op).copied().unwrap_or(0));
            (d > 0).then_some((op, d))
        })
        .collect();
    report.finished_at = Utc::now();
    report
}

#[cfg(test)]
mod tests {
    //! The sweep's decisions against an in-memory fleet (a pure unit-test fake). The same flows
    //! run against moto through the real SDK in `tests/tests/sweep.rs`.
    use super::*;
    use crate::policy::plan::TagSet;
    use crate::policy::InstanceState;
    use chrono::{TimeDelta, TimeZone};
    use std::sync::Mutex;

    type Edit = Box<dyn FnOnce(&mut BTreeMap<String, Instance>) + Send>;

    #[derive(Default)]
    struct MemFleet {
        instances: Mutex<BTreeMap<String, Instance>>,
        calls: Mutex<BTreeMap<String, u64>>,
        /// Applied to the fleet after the first listing (someone edits tags mid-run).
        after_first_list: Mutex<Option<Edit>>,
        refuse_terminate: BTreeSet<String>,
    }

    impl MemFleet {
        fn with(instances: Vec<Instance>) -> Self {
            Self {
                instances: Mutex::new(instances.into_iter().map(|i| (i.id.clone(), i)).collect()),
                ..Self::default()
            }
        }
        fn count(&self, op: &str) {
            *self.calls.lock().unwrap().entry(op.into()).or_default() += 1;
        }
        fn mutating_calls(&self) -> u64 {
            let calls = self.calls.lock().unwrap();
            ["TerminateInstances", "StopInstances", "CreateTags"]
                .iter()
                .map(|op| calls.get(*op).copied().unwrap_or(0))
                .sum()
        }
        fn get(&self, id: &str) -> Instance {
            self.instances.lock().unwrap()[id].clone()
        }
    }

    impl Fleet for MemFleet {
        async fn list(&self, ids: Option<&[String]>) -> Result<Vec<Instance>, ApiError> {
            self.count("DescribeInstances");
            let out = {
                let all = self.instances.lock().unwrap();
                all.values()
                    .filter(|i| InstanceState::JUDGED.contains(&i.state))
                    .filter(|i| ids.is_none_or(|ids| ids.contains(&i.id)))
                    .cloned()
                    .collect()
            };
            if let Some(hook) = self.after_first_list.lock().unwrap().take() {
                hook(&mut self.instances.lock().unwrap());
            }
            Ok(out)
        }
        async fn terminate(&self, ids: &[String], deadline: Option<Instant>) -> Vec<IdResult> {
            if !has_time(deadline) {
                return not_attempted(ids);
            }
            self.count("TerminateInstances");
            ids.iter()
                .map(|id| {
                    if self.refuse_terminate.contains(id) {
                        let err = ApiError {
                            code: "OperationNotPermitted".into(),
                            message: "protected".into(),
                            transient: false,
                        };
                        return (id.clone(), Err(err));
                    }
                    self.instances.lock().unwrap().get_mut(id).unwrap().state =
                        InstanceState::ShuttingDown;
                    (id.clone(), Ok(()))
                })
                .collect()
        }
        async fn stop(&self, ids: &[String], deadline: Option<Instant>) -> Vec<IdResult> {
            if !has_time(deadline) {
                return not_attempted(ids);
            }
            self.count("StopInstances");
            for id in ids {
                self.instances.lock().unwrap().get_mut(id).unwrap().state = InstanceState::Stopping;
            }
            ids.iter().map(|id| (id.clone(), Ok(()))).collect()
        }
        async fn tag(
            &self,
            ids: &[String],
            tags: &TagSet,
            deadline: Option<Instant>,
        ) -> Vec<IdResult> {
            if !has_time(deadline) {
                return not_attempted(ids);
            }
            self.count("CreateTags");
            for id in ids {
                let mut all = self.instances.lock().unwrap();
                let i = all.get_mut(id).unwrap();
                i.tags.extend(tags.iter().cloned());
            }
            ids.iter().map(|id| (id.clone(), Ok(()))).collect()
        }
        fn api_calls(&self) -> BTreeMap<String, u64> {
            self.calls.lock().unwrap().clone()
        }
    }

    /// What a fleet answers for calls it does not start (the port's deadline contract).
    fn not_attempted(ids: &[String]) -> Vec<IdResult> {
        ids.iter()
            .map(|id| (id.clone(), Err(ApiError::not_attempted())))
            .collect()
    }

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

    fn fleet() -> MemFleet {
        use InstanceState::*;
        MemFleet::with(vec![
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

    fn req(live: bool) -> SweepRequest {
        SweepRequest {
            trigger: TriggerKind::Schedule,
            live,
            now: now(),
            forecast: false,
            instance_ids: None,
            deadline: None,
        }
    }

    fn live() -> Config {
        Config {
            live: true,
            ..Config::default()
        }
    }

    fn ctx() -> RunContext {
        RunContext {
            run_id: "r".into(),
            account: "123456789012".into(),
            region: "eu-west-1".into(),
        }
    }

    fn outcome(r: &RunReport, id: &str) -> Option<Outcome> {
        r.instances.iter().find(|i| i.id == id).unwrap().outcome
    }

    #[tokio::test]
    async fn a_dry_run_makes_no_mutating_call_and_says_would() {
        let f = fleet();
        let r = sweep(&f, &Config::default(), ctx(), req(false)).await;
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
        let r = sweep(&f, &live(), ctx(), req(true)).await;
        assert_eq!(f.get("i-expired").state, InstanceState::ShuttingDown);
        assert_eq!(f.get("i-due").state, InstanceState::ShuttingDown);
        assert_eq!(
            f.get("i-due").tags["termination_date"],
            "2030-01-01T11:51:00Z"
        );
        // 1d from a launch 2h ago ends inside WARN_WINDOW: stamped now + WARN_WINDOW instead.
        assert_eq!(
            f.get("i-lifetime").tags["termination_date"],
            "2030-01-02T12:00:00Z"
        );
        assert_eq!(f.get("i-untagged").state, InstanceState::Stopping);
        assert_eq!(
            f.get("i-untagged").tags["reaper:stop_reason"],
            "no termination_date or lifetime tag"
        );
        assert_eq!(
            f.get("i-untagged").tags["reaper:stopped_at"],
            "2030-01-01T12:00:00Z"
        );
        assert_eq!(f.get("i-stopped-untagged").state, InstanceState::Stopped);
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
        *f.after_first_list.lock().unwrap() =
            Some(Box::new(|all: &mut BTreeMap<String, Instance>| {
                // Someone extends the expired machine and tags the untagged one.
                all.get_mut("i-expired")
                    .unwrap()
                    .tags
                    .insert("termination_date".into(), "2031-01-01T00:00:00Z".into());
                all.get_mut("i-untagged")
                    .unwrap()
                    .tags
                    .insert("lifetime".into(), "1w".into());
            }));
        let r = sweep(&f, &live(), ctx(), req(true)).await;
        assert_eq!(f.get("i-expired").state, InstanceState::Running);
        assert_eq!(f.get("i-untagged").state, InstanceState::Running);
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
        let mut f = fleet();
        f.refuse_terminate.insert("i-expired".into());
        let r = sweep(&f, &live(), ctx(), req(true)).await;
        assert_eq!(f.get("i-expired").state, InstanceState::Running);
        let e = r.instances.iter().find(|i| i.id == "i-expired").unwrap();
        assert_eq!(e.outcome, Some(Outcome::Failed));
        assert!(
            e.error.as_deref().unwrap().starts_with("protected: "),
            "{e:?}"
        );
        assert_eq!(
            f.get("i-due").state,
            InstanceState::ShuttingDown,
            "others still acted on"
        );
        assert!(r.has_failures());
    }

    #[tokio::test]
    async fn near_the_deadline_nothing_new_starts_and_the_rest_is_deferred() {
        let f = fleet();
        let mut rq = req(true);
        rq.deadline = Some(Instant::now() + std::time::Duration::from_secs(10));
        let r = sweep(&f, &live(), ctx(), rq).await;
        assert_eq!(f.mutating_calls(), 0);
        assert_eq!(r.outcome_count(Outcome::Deferred), 4);
        assert_eq!(r.outcome_count(Outcome::Done), 0);
    }

    #[tokio::test]
    async fn over_the_cap_nothing_of_that_action_happens() {
        let f = fleet();
        let mut cfg = live();
        cfg.caps.terminations = crate::policy::Cap::Limited(1);
        let r = sweep(&f, &cfg, ctx(), req(true)).await;
        assert_eq!(f.get("i-expired").state, InstanceState::Running);
        assert_eq!(f.get("i-due").state, InstanceState::Stopped);
        assert_eq!(outcome(&r, "i-expired"), Some(Outcome::CircuitOpen));
        assert_eq!(outcome(&r, "i-due"), Some(Outcome::CircuitOpen));
        assert_eq!(r.circuits.len(), 1);
        assert_eq!(r.circuits[0].planned, 2);
        assert_eq!(
            f.get("i-untagged").state,
            InstanceState::Stopping,
            "stops have their own cap"
        );
    }

    #[tokio::test]
    async fn a_tripped_circuit_stays_the_outcome_when_time_runs_out() {
        let f = fleet();
        let mut cfg = live();
        cfg.caps.terminations = crate::policy::Cap::Limited(0);
        let mut rq = req(true);
        rq.deadline = Some(Instant::now() + std::time::Duration::from_secs(5));
        let r = sweep(&f, &cfg, ctx(), rq).await;
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
        rq.instance_ids = Some(vec!["i-untagged".into(), "i-lifetime".into()]);
        let r = sweep(&f, &live(), ctx(), rq).await;
        assert_eq!(f.get("i-untagged").state, InstanceState::Running);
        assert_eq!(outcome(&r, "i-untagged"), Some(Outcome::Deferred));
        assert!(f.get("i-lifetime").tags.contains_key("termination_date"));
        assert_eq!(r.instances_judged, 2);
    }
}

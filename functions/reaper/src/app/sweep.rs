//! The sweep use case: one run over the fleet, and its report (a view of the run's outcome).

use crate::config::Config;
use crate::ports::{Fleet, Prices};
use crate::report::{build::build, RunReport};
use crate::run::{RunContext, RunRequest};

/// One sweep, and its report (a view of the run's outcome), without prices: its ledger of
/// savings is in hours and says so.
pub async fn sweep<F: Fleet>(
    fleet: &F,
    cfg: &Config,
    ctx: RunContext,
    req: &RunRequest,
) -> RunReport {
    sweep_priced(fleet, None, cfg, ctx, req).await
}

/// One sweep and its report, with the ledger of savings priced by `prices` once the run has
/// acted (SPEC §8 "Savings").
pub async fn sweep_priced<F: Fleet>(
    fleet: &F,
    prices: Option<&dyn Prices>,
    cfg: &Config,
    ctx: RunContext,
    req: &RunRequest,
) -> RunReport {
    let mut outcome = crate::run::sweep(fleet, cfg, ctx, req, prices.is_some()).await;
    crate::process::give_back();
    let (prices, calls) = super::savings::assess(&outcome, prices, req.deadline).await;
    // Priced: the volumes described are not needed by the report.
    outcome.volumes = None;
    crate::process::give_back();
    let mut report = build(outcome, &prices);
    for (op, n) in calls {
        *report.api_calls.entry(op).or_default() += n;
    }
    report
}

#[cfg(test)]
mod sweep_tests {
    //! The sweep's decisions against the in-memory fleet. The same flows run against moto through
    //! the real SDK in `tests/tests/sweep.rs`.
    use super::*;
    use crate::adapters::memory::MemoryFleet;
    use crate::policy::Instance;
    use crate::policy::{Cap, InstanceState, VerdictKind};
    use crate::ports::Deadline;
    use crate::report::Outcome;
    use crate::report::RunReport;
    use crate::run::RunRequest;
    use crate::run::{Mode, Scope, TriggerKind};
    use chrono::Utc;
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
            billing: None,
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
                    // Announced a full WARN_WINDOW ahead: the notice gate lets it go.
                    (
                        "reaper:announced",
                        "terminate 2030-01-01T00:00:00Z told 2029-12-31T00:00:00Z",
                    ),
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

    /// A fleet whose DescribeVolumes never answers (a hung connection).
    struct HungVolumes(MemoryFleet);

    impl Fleet for HungVolumes {
        async fn list_pages(
            &self,
            ids: Option<&[&str]>,
            deadline: Deadline,
            on_page: &mut (dyn FnMut(Vec<Instance>) + Send),
        ) -> Result<(), crate::ports::ApiError> {
            self.0.list_pages(ids, deadline, on_page).await
        }
        async fn apply(
            &self,
            mutation: crate::ports::Mutation<'_>,
            ids: &[String],
            deadline: Deadline,
        ) -> Vec<(String, crate::ports::IdOutcome)> {
            self.0.apply(mutation, ids, deadline).await
        }
        async fn volumes(
            &self,
            _ids: &[String],
            _deadline: Deadline,
        ) -> Result<Vec<crate::policy::price::Volume>, crate::ports::ApiError> {
            std::future::pending().await
        }
        fn api_calls(&self) -> BTreeMap<String, u64> {
            self.0.api_calls()
        }
    }

    /// The volumes are described before the run acts: a DescribeVolumes that never answers
    /// costs at most its 10 s budget and the prices, never the termination.
    #[tokio::test]
    async fn a_hung_describe_volumes_costs_the_prices_not_the_termination() {
        use crate::policy::price::{Attached, Billing, Purchase, Tenancy};
        let doomed = Instance {
            billing: Some(Box::new(Billing {
                instance_type: "t3.micro".into(),
                platform: "Linux/UNIX".into(),
                tenancy: Tenancy::Shared,
                purchase: Purchase::OnDemand,
                public_ipv4: 0,
                volumes: [Attached {
                    volume_id: "vol-1".into(),
                    delete_on_termination: true,
                }]
                .into(),
            })),
            ..get(&fleet(), "i-expired")
        };
        let f = HungVolumes(MemoryFleet::new([doomed]));
        let started = std::time::Instant::now();
        let outcome = crate::run::sweep(&f, &Config::default(), ctx(), &req(true), true).await;
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert_eq!(
            outcome.volumes,
            Some(Err("DescribeVolumes did not answer within 10 s".into()))
        );
        assert_eq!(
            f.0.get("i-expired").unwrap().state,
            InstanceState::ShuttingDown
        );
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
        // The creator's own date (a lifetime due inside the grace period) is recorded as
        // announced before the termination: IAM requires the record.
        assert_eq!(
            get(&f, "i-due").tags[&"reaper:announced".to_owned()],
            "terminate 2030-01-01T11:51:00Z set 2030-01-01T12:00:00Z"
        );
        // list + re-check; 2 stamp values; 1 creator's record; 1 terminate batch; 1 stop + its
        // tags.
        assert_eq!(
            r.api_calls,
            BTreeMap::from([
                ("CreateTags".to_string(), 4),
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

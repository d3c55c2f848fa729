//! The sweep end to end against moto server through the real AWS SDK (SPEC §3-§6).
//!
//! moto cannot backdate LaunchTime, so time is injected (`SweepRequest::now`) and lifetimes such
//! as `0m` are used; everything else — listing, tagging, stopping, terminating — is the real SDK
//! talking to a real API server.

use aws_sdk_ec2::types::InstanceStateName;
use chrono::{DateTime, TimeDelta, Utc};
use reaper::adapters::ec2::Ec2Fleet;
use reaper::app::sweep;
use reaper::config::Config;
use reaper::policy::{format_date, Cap, VerdictKind};
use reaper::ports::Deadline;
use reaper::report::{Outcome, RunReport};
use reaper::run::{RunContext, RunRequest};
use reaper_e2e::Moto;
use std::collections::BTreeMap;

const REGION: &str = "eu-west-1";

struct Ec2 {
    client: aws_sdk_ec2::Client,
}

#[derive(Debug)]
struct Seen {
    state: InstanceStateName,
    tags: BTreeMap<String, String>,
    launch: DateTime<Utc>,
}

impl Ec2 {
    async fn launch(&self, tags: &[(&str, &str)]) -> String {
        self.launch_n(1, tags, false).await.remove(0)
    }

    async fn launch_n(&self, n: i32, tags: &[(&str, &str)], protected: bool) -> Vec<String> {
        let ids = reaper_e2e::launch(&self.client, n, tags).await;
        if protected {
            // moto ignores DisableApiTermination on RunInstances; it honours the attribute.
            for id in &ids {
                self.client
                    .modify_instance_attribute()
                    .instance_id(id)
                    .disable_api_termination(
                        aws_sdk_ec2::types::AttributeBooleanValue::builder()
                            .value(true)
                            .build(),
                    )
                    .send()
                    .await
                    .expect("ModifyInstanceAttribute");
            }
        }
        ids
    }

    async fn stop(&self, id: &str) {
        self.client
            .stop_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("StopInstances");
    }

    async fn all(&self) -> BTreeMap<String, Seen> {
        let out = self.client.describe_instances().send().await.unwrap();
        let mut seen = BTreeMap::new();
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let lt = i.launch_time().unwrap();
            seen.insert(
                i.instance_id().unwrap().to_string(),
                Seen {
                    state: i.state().unwrap().name().unwrap().clone(),
                    tags: i
                        .tags()
                        .iter()
                        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                        .collect(),
                    launch: DateTime::from_timestamp(lt.secs(), lt.subsec_nanos()).unwrap(),
                },
            );
        }
        seen
    }
}

fn setup(moto: &Moto) -> (Ec2, Ec2Fleet) {
    let fleet = Ec2Fleet::from_sdk(&moto.sdk_config(REGION));
    (
        Ec2 {
            client: moto.ec2(REGION),
        },
        fleet,
    )
}

/// The rules of a run, and whether it is live (what a request decides).
struct Setup {
    cfg: Config,
    live: bool,
}

fn config(live: bool) -> Setup {
    Setup {
        cfg: Config::default(),
        live,
    }
}

async fn run(fleet: &Ec2Fleet, setup: &Setup, now: DateTime<Utc>) -> RunReport {
    let ctx = RunContext {
        run_id: "e2e".into(),
        account: "123456789012".into(),
        region: REGION.into(),
    };
    let req = RunRequest::scheduled(setup.live, now, Deadline::NONE);
    sweep(fleet, &setup.cfg, ctx, &req).await
}

fn entry<'a>(r: &'a RunReport, id: &str) -> &'a reaper::report::InstanceReport {
    r.instances
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("{id} not in report: {r:#?}"))
}

const MUTATING: [&str; 3] = ["TerminateInstances", "StopInstances", "CreateTags"];

#[tokio::test(flavor = "multi_thread")]
async fn every_row_of_the_spec_live_then_dry() {
    let moto = Moto::start();
    let (ec2, fleet) = setup(&moto);
    let now = Utc::now();
    let past = format_date(now - TimeDelta::hours(1));
    let soon = format_date(now + TimeDelta::hours(2));

    let managed = ec2
        .launch(&[
            ("karpenter.sh/nodepool", "default"),
            ("termination_date", &past),
        ])
        .await;
    let indefinite = ec2
        .launch(&[("termination_date", "indefinite"), ("Name", "db")])
        .await;
    let expired = ec2
        .launch(&[
            ("termination_date", &past),
            ("Name", "old"),
            ("owner", "ana"),
        ])
        .await;
    let expired_stopped = ec2.launch(&[("termination_date", &past)]).await;
    ec2.stop(&expired_stopped).await;
    let expiring = ec2.launch(&[("termination_date", &soon)]).await;
    let later = ec2
        .launch(&[("termination_date", "2099-01-01T00:00:00Z")])
        .await;
    let forever = ec2.launch(&[("lifetime", "indefinite")]).await;
    let day = ec2.launch(&[("lifetime", "1d")]).await;
    let zero = ec2.launch(&[("lifetime", "0m")]).await;
    let untagged = ec2.launch(&[("Name", "mystery")]).await;
    let typo = ec2.launch(&[("termination_date", "2030-01-01")]).await;
    let untagged_stopped = ec2.launch(&[]).await;
    ec2.stop(&untagged_stopped).await;
    let protected = ec2
        .launch_n(1, &[("termination_date", &past)], true)
        .await
        .remove(0);
    let before = ec2.all().await;
    // Judge as of after the last launch, so `0m` is due (moto cannot backdate LaunchTime).
    let now = Utc::now();

    // A dry run changes nothing and makes no mutating call.
    let dry = run(&fleet, &config(false), now).await;
    assert_eq!(
        ec2.all()
            .await
            .iter()
            .map(|(k, v)| (k.clone(), (v.state.clone(), v.tags.clone())))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|(k, v)| (k.clone(), (v.state.clone(), v.tags.clone())))
            .collect::<Vec<_>>()
    );
    for op in MUTATING {
        assert!(
            !dry.api_calls.contains_key(op),
            "dry run called {op}: {:?}",
            dry.api_calls
        );
    }
    assert_eq!(dry.instances_judged, 13);
    assert_eq!(entry(&dry, &expired).outcome, Some(Outcome::Would));
    assert_eq!(entry(&dry, &zero).outcome, Some(Outcome::Would));

    // Phase 1, live, at launch time: rows 1-7 act, untagged machines are in their grace period.
    let r = run(&fleet, &config(true), now).await;
    let after = ec2.all().await;
    let verdict = |id: &str| entry(&r, id).verdict;
    assert_eq!(verdict(&managed), VerdictKind::SkipManaged);
    assert_eq!(after[&managed].state, InstanceStateName::Running);
    assert!(
        !r.instances.iter().any(|i| i.id == indefinite),
        "keep is not listed"
    );
    assert_eq!(after[&indefinite].state, InstanceStateName::Running);
    for id in [&expired, &expired_stopped] {
        assert_eq!(verdict(id), VerdictKind::Terminate);
        assert_eq!(entry(&r, id).outcome, Some(Outcome::Done));
        assert_eq!(after[id].state, InstanceStateName::Terminated, "{id}");
    }
    assert_eq!(entry(&r, &expired).name.as_deref(), Some("old"));
    assert_eq!(entry(&r, &expired).owner.as_deref(), Some("ana"));
    assert_eq!(verdict(&expiring), VerdictKind::Expiring);
    assert_eq!(entry(&r, &expiring).outcome, None);
    assert_eq!(after[&expiring].state, InstanceStateName::Running);
    assert_eq!(after[&later].state, InstanceStateName::Running);
    assert_eq!(
        after[&forever].tags[&"termination_date".to_owned()],
        "indefinite"
    );
    assert_eq!(verdict(&day), VerdictKind::Stamp);
    assert_eq!(
        after[&day].tags[&"termination_date".to_owned()],
        format_date(before[&day].launch + TimeDelta::days(1))
    );
    assert_eq!(after[&day].state, InstanceStateName::Running);
    assert_eq!(verdict(&zero), VerdictKind::Terminate);
    assert_eq!(after[&zero].state, InstanceStateName::Terminated);
    assert_eq!(
        after[&zero].tags[&"termination_date".to_owned()],
        format_date(before[&zero].launch)
    );
    for id in [&untagged, &typo, &untagged_stopped] {
        assert_eq!(verdict(id), VerdictKind::Wait, "{id}");
        assert_eq!(after[id].state, before[id].state);
    }
    // Termination protection: failed, named, still running, and not stopped instead.
    let p = entry(&r, &protected);
    assert_eq!(p.outcome, Some(Outcome::Failed));
    let err = p.error.as_deref().unwrap();
    assert!(
        err.starts_with("protected: ") && err.contains("OperationNotPermitted"),
        "{err}"
    );
    assert_eq!(after[&protected].state, InstanceStateName::Running);
    assert!(!after[&protected].tags.contains_key("reaper:stopped_at"));
    assert!(r.has_failures());

    // Phase 2, an hour later: grace is over. Stop the running ones, report the stopped one.
    let r2 = run(&fleet, &config(true), now + TimeDelta::hours(1)).await;
    let after2 = ec2.all().await;
    for id in [&untagged, &typo] {
        assert_eq!(entry(&r2, id).verdict, VerdictKind::Stop, "{id}");
        assert_eq!(entry(&r2, id).outcome, Some(Outcome::Done));
        assert!(
            matches!(
                after2[id].state,
                InstanceStateName::Stopped | InstanceStateName::Stopping
            ),
            "{id}"
        );
        assert_eq!(
            after2[id].tags[&"reaper:stopped_at".to_owned()],
            format_date(now + TimeDelta::hours(1))
        );
    }
    assert_eq!(
        after2[&untagged].tags[&"reaper:stop_reason".to_owned()],
        "no termination_date or lifetime tag"
    );
    assert!(after2[&typo].tags[&"reaper:stop_reason".to_owned()]
        .contains("has no time or time zone; write 2030-01-01T00:00:00Z"));
    assert_eq!(
        entry(&r2, &untagged_stopped).verdict,
        VerdictKind::Noncompliant
    );
    assert_eq!(after2[&untagged_stopped].state, InstanceStateName::Stopped);
    assert!(!after2[&untagged_stopped]
        .tags
        .contains_key("reaper:stopped_at"));
    // The stamped lifetime is now an ordinary date (inside the 1-day warn window: expiring),
    // never stamped twice; the protected machine still fails, unharmed.
    assert_eq!(entry(&r2, &day).verdict, VerdictKind::Expiring);
    assert_eq!(
        after2[&day].tags[&"termination_date".to_owned()],
        after[&day].tags[&"termination_date".to_owned()]
    );
    assert_eq!(entry(&r2, &protected).outcome, Some(Outcome::Failed));
    assert_eq!(after2[&protected].state, InstanceStateName::Running);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_over_the_cap_terminates_nothing_and_says_how_to_proceed() {
    let moto = Moto::start();
    let (ec2, fleet) = setup(&moto);
    // Due by their date: with GRACE_PERIOD=0m a lifetime is stamped a WARN_WINDOW ahead instead.
    let ids = ec2
        .launch_n(
            3,
            &[
                ("termination_date", "2020-01-01T00:00:00Z"),
                (
                    "reaper:announced",
                    "terminate 2020-01-01T00:00:00Z told 2019-12-30T00:00:00Z",
                ),
            ],
            false,
        )
        .await;
    let untagged = ec2.launch_n(2, &[], false).await;
    let mut cfg = config(true);
    cfg.cfg.caps.terminations = Cap::Limited(2);
    cfg.cfg.rules.grace_period = TimeDelta::zero();
    let r = run(&fleet, &cfg, Utc::now()).await;
    let after = ec2.all().await;
    for id in &ids {
        assert_eq!(after[id].state, InstanceStateName::Running);
        assert_eq!(entry(&r, id).outcome, Some(Outcome::CircuitOpen));
        assert_eq!(
            after[id].tags[&"termination_date".to_owned()],
            "2020-01-01T00:00:00Z"
        );
    }
    assert!(!r.api_calls.contains_key("TerminateInstances"));
    assert_eq!(r.circuits.len(), 1);
    assert!(r.circuits[0]
        .message
        .contains("3 terminations planned, cap is 2"));
    assert!(r.circuits[0].message.contains("MAX_TERMINATIONS"));
    // Stops have their own cap, and were within it.
    for id in &untagged {
        assert!(matches!(
            after[id].state,
            InstanceStateName::Stopped | InstanceStateName::Stopping
        ));
    }
    assert!(r.has_failures());
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_instances_are_skipped_unless_told_otherwise() {
    let moto = Moto::start();
    let (ec2, fleet) = setup(&moto);
    let eks = ec2
        .launch(&[("eks:nodegroup-name", "workers"), ("lifetime", "0m")])
        .await;
    let r = run(&fleet, &config(true), Utc::now()).await;
    assert_eq!(entry(&r, &eks).verdict, VerdictKind::SkipManaged);
    assert_eq!(ec2.all().await[&eks].state, InstanceStateName::Running);
    assert!(
        !r.is_noteworthy(),
        "a run that only skipped managed instances posts nothing"
    );

    let mut cfg = config(true);
    cfg.cfg.rules.skip_managed = false;
    let r = run(&fleet, &cfg, Utc::now()).await;
    assert_eq!(entry(&r, &eks).verdict, VerdictKind::Terminate);
    assert_eq!(ec2.all().await[&eks].state, InstanceStateName::Terminated);
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_pages_through_every_reservation() {
    let moto = Moto::start();
    let (ec2, fleet) = setup(&moto);
    // moto pages by reservation: 1005 reservations make two pages at MaxResults=1000.
    for _ in 0..1005 {
        ec2.launch(&[("termination_date", "indefinite")]).await;
    }
    let r = run(&fleet, &config(false), Utc::now()).await;
    assert_eq!(r.instances_judged, 1005);
    assert_eq!(r.api_calls["DescribeInstances"], 2);
}

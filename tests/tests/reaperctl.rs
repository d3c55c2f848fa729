//! `reaperctl` — the real binary — against moto in two regions, in both output formats.

use aws_sdk_ec2::types::InstanceStateName;
use reaper::report::RunReport;
use reaper_e2e::{reaperctl_binary, Moto};
use std::process::{Command, Output};

async fn launch(moto: &Moto, region: &str, tags: &[(&str, &str)]) -> String {
    reaper_e2e::launch(&moto.ec2(region), 1, tags)
        .await
        .remove(0)
}

async fn state(moto: &Moto, region: &str, id: &str) -> InstanceStateName {
    let out = moto
        .ec2(region)
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .clone()
}

fn reaperctl(moto: &Moto, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(reaperctl_binary());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in moto.env("us-east-1") {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("run reaperctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_and_sweep_across_two_regions_in_both_formats() {
    let moto = Moto::start();
    let due_eu = launch(
        &moto,
        "eu-west-1",
        &[
            ("termination_date", "2020-01-01T00:00:00Z"),
            ("Name", "eu-scratch"),
        ],
    )
    .await;
    let untagged_us = launch(&moto, "us-east-2", &[("Name", "us-mystery")]).await;
    let keep_us = launch(&moto, "us-east-2", &[("termination_date", "indefinite")]).await;
    let env = [("GRACE_PERIOD", "0m"), ("LIVEMODE", "true")];
    let regions = ["--region", "eu-west-1", "--region", "us-east-2"];

    // plan: a table, a dry run even though LIVEMODE=true is in the environment.
    let out = reaperctl(&moto, &[&["plan"], &regions[..]].concat(), &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("VERDICT") && table.contains("OUTCOME"),
        "{table}"
    );
    assert!(
        table.contains(&due_eu) && table.contains("terminate") && table.contains("would"),
        "{table}"
    );
    assert!(
        table.contains(&untagged_us) && table.contains("stop"),
        "{table}"
    );
    assert!(
        table.contains("eu-west-1 [dry-run]") && table.contains("us-east-2 [dry-run]"),
        "{table}"
    );
    assert!(text(&out.stderr).contains("dry run: nothing will be changed"));
    assert_eq!(
        state(&moto, "eu-west-1", &due_eu).await,
        InstanceStateName::Running
    );

    // plan --output json: one report per region.
    let out = reaperctl(
        &moto,
        &[&["plan", "--output", "json"], &regions[..]].concat(),
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reports: Vec<RunReport> = serde_json::from_slice(&out.stdout).expect("JSON reports");
    assert_eq!(
        reports
            .iter()
            .map(|r| r.region.as_str())
            .collect::<Vec<_>>(),
        ["eu-west-1", "us-east-2"]
    );
    assert!(reports
        .iter()
        .all(|r| r.mode.to_string() == "dry-run" && r.trigger.to_string() == "cli"));
    assert_eq!(reports[1].instances_judged, 2);

    // A forecast: as of 2030 the kept instance is still kept; --at with --live is refused.
    let out = reaperctl(
        &moto,
        &[
            "plan",
            "--region",
            "us-east-2",
            "--at",
            "2030-01-01T00:00:00Z",
            "--output",
            "json",
        ],
        &env,
    );
    let reports: Vec<RunReport> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(reports[0].forecast);
    let out = reaperctl(
        &moto,
        &[
            "sweep",
            "--live",
            "--yes",
            "--region",
            "us-east-2",
            "--at",
            "2030-01-01T00:00:00Z",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--at forecasts only in a dry run"));

    // sweep without --live is still a dry run.
    let out = reaperctl(&moto, &[&["sweep"], &regions[..]].concat(), &env);
    assert!(out.status.success());
    assert_eq!(
        state(&moto, "us-east-2", &untagged_us).await,
        InstanceStateName::Running
    );

    // sweep --live acts in both regions.
    let out = reaperctl(
        &moto,
        &[
            &["sweep", "--live", "--yes", "--output", "json"],
            &regions[..],
        ]
        .concat(),
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reports: Vec<RunReport> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(reports.iter().all(|r| r.mode.to_string() == "live"));
    assert_eq!(
        state(&moto, "eu-west-1", &due_eu).await,
        InstanceStateName::Terminated
    );
    assert_eq!(
        state(&moto, "us-east-2", &untagged_us).await,
        InstanceStateName::Stopped
    );
    assert_eq!(
        state(&moto, "us-east-2", &keep_us).await,
        InstanceStateName::Running
    );
    let out = reaperctl(
        &moto,
        &[&["sweep", "--live", "--yes"], &regions[..]].concat(),
        &env,
    );
    assert!(text(&out.stdout).contains("[live]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_say_whether_anything_failed() {
    let moto = Moto::start();
    for _ in 0..3 {
        launch(&moto, "eu-west-1", &[("lifetime", "0m")]).await;
    }
    // A circuit that opens is a failure: exit 1, and nothing terminated.
    let out = reaperctl(
        &moto,
        &["sweep", "--live", "--yes", "--region", "eu-west-1"],
        &[("MAX_TERMINATIONS", "2")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("3 terminations planned, cap is 2"));
    // Bad configuration and bad arguments: exit 2 with a message naming them.
    let out = reaperctl(
        &moto,
        &["plan", "--region", "eu-west-1"],
        &[("MAX_STOPS", "lots")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("MAX_STOPS=\"lots\" is not accepted"),
        "{}",
        text(&out.stderr)
    );
    let out = reaperctl(&moto, &["plan", "--instance-id", "web-1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not an EC2 instance id"));
    // --all-regions asks DescribeRegions and sweeps every enabled region.
    let out = reaperctl(&moto, &["plan", "--all-regions", "--output", "json"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reports: Vec<RunReport> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(reports.len() > 10, "{} regions", reports.len());
    assert_eq!(
        reports
            .iter()
            .find(|r| r.region == "eu-west-1")
            .unwrap()
            .instances_judged,
        3
    );
}

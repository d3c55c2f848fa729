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

/// Runs reaperctl on a pseudo-terminal (util-linux `script`), typing `answer` at its prompt.
fn reaperctl_on_a_terminal(moto: &Moto, args: &[&str], answer: &str) -> (Option<i32>, String) {
    use std::io::Write as _;
    let command = std::iter::once(reaperctl_binary().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in moto.env("us-east-1") {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("util-linux script (for a pseudo-terminal)");
    // Give the prompt a moment, then type the answer.
    std::thread::sleep(std::time::Duration::from_secs(3));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn why_extend_and_the_live_prompt() {
    use chrono::{TimeDelta, Utc};
    use reaper::policy::format_date;
    let moto = Moto::start();
    let region = ["--region", "eu-west-1"];
    let soon = format_date(Utc::now() + TimeDelta::hours(5));
    let id = launch(
        &moto,
        "eu-west-1",
        &[("termination_date", &soon), ("Name", "web")],
    )
    .await;

    // why: the verdict, the reason and when, in one paragraph.
    let out = reaperctl(&moto, &[&["why", id.as_str()], &region[..]].concat(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let why = text(&out.stdout);
    assert!(
        why.contains(&format!("{id} (web, running): expiring: expires {soon}")),
        "{why}"
    );
    assert!(
        why.contains(&format!("reaperctl extend {id} --by 3d")),
        "{why}"
    );

    // extend: later by 3 days, old and new printed, the tag written.
    let out = reaperctl(
        &moto,
        &[&["extend", id.as_str(), "--by", "3d"], &region[..]].concat(),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let later = format_date(
        chrono::DateTime::parse_from_rfc3339(&soon)
            .unwrap()
            .to_utc()
            + TimeDelta::days(3),
    );
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{id}: termination_date {soon} -> {later}")
    );
    let tags = moto
        .ec2("eu-west-1")
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let tag = tags.reservations()[0].instances()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("termination_date"))
        .and_then(|t| t.value())
        .unwrap()
        .to_string();
    assert_eq!(tag, later);
    // Beyond MAX_LIFETIME: refused, naming the bound; nothing written.
    let out = reaperctl(
        &moto,
        &[&["extend", id.as_str(), "--by", "30d"], &region[..]].concat(),
        &[("MAX_LIFETIME", "7d")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is beyond MAX_LIFETIME: first launch"),
        "{}",
        text(&out.stderr)
    );

    // sweep --live without a terminal and without --yes refuses.
    let out = reaperctl(&moto, &[&["sweep", "--live"], &region[..]].concat(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--live needs a terminal to confirm, or --yes"));
    // --expect-account refuses another account.
    let out = reaperctl(
        &moto,
        &[
            &[
                "sweep",
                "--live",
                "--yes",
                "--expect-account",
                "111122223333",
            ],
            &region[..],
        ]
        .concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not 111122223333"));

    // On a terminal it shows what it is about to do and needs the account id typed.
    let untagged = launch(&moto, "eu-west-1", &[("Name", "mystery")]).await;
    let args = [&["sweep", "--live"], &region[..]].concat();
    let (code, screen) = reaperctl_on_a_terminal(&moto, &args, "wrong");
    assert_eq!(code, Some(2), "{screen}");
    assert!(
        screen.contains("Type the account id to go ahead"),
        "{screen}"
    );
    assert!(screen.contains("in account 123456789012"), "{screen}");
    assert!(screen.contains("nothing was changed"), "{screen}");
    let (code, screen) = reaperctl_on_a_terminal(&moto, &args, "123456789012");
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains(&untagged), "{screen}");
}

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
            // Announced two days ahead: the notice gate lets it go.
            (
                "reaper:announced",
                "terminate 2020-01-01T00:00:00Z told 2019-12-30T00:00:00Z",
            ),
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
    reaperctl_on_a_terminal_with(moto, args, answer, &[("TERM", "dumb")])
}

/// As `reaperctl_on_a_terminal`, with `env` (TERM among it) added.
fn reaperctl_on_a_terminal_with(
    moto: &Moto,
    args: &[&str],
    answer: &str,
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    use std::io::Write as _;
    let command = std::iter::once(reaperctl_binary().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in moto.env("us-east-1") {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("util-linux script (for a pseudo-terminal)");
    // Give the prompt a moment, then type the answer.
    std::thread::sleep(std::time::Duration::from_secs(3));
    // A command that asks nothing may have ended already: its closed input is no failure.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes());
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
        why.contains(&format!(
            "reaperctl extend {id} --by 3d --region eu-west-1."
        )),
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

    // sweep --live without a terminal and without --yes refuses, in one sentence, before it
    // announces a live sweep (issue 20, item 5: it printed "LIVE: instances will be changed").
    let out = reaperctl(&moto, &[&["sweep", "--live"], &region[..]].concat(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "reaperctl: --live without a terminal to confirm on needs --yes (in scripts, with --expect-account ACCOUNT_ID); nothing was listed or changed\n"
    );
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

/// reaperctl with exactly `env` (and PATH): no moto, no region, no credentials unless given.
fn reaperctl_bare(args: &[&str], env: &[(&str, &str)]) -> Output {
    let nowhere = "/nonexistent/reaper-e2e/aws";
    let mut cmd = Command::new(reaperctl_binary());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_CONFIG_FILE", format!("{nowhere}/config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            format!("{nowhere}/credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("run reaperctl")
}

/// What a person reads: one line, no Rust debug structure.
fn assert_one_sentence(stderr: &str) {
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for debug in [
        "DispatchFailure",
        "ConnectorError",
        " { ",
        "Some(",
        "source:",
    ] {
        assert!(!stderr.contains(debug), "{debug} in: {stderr}");
    }
}

/// Issue 19, item 7.
#[tokio::test(flavor = "multi_thread")]
async fn errors_a_person_can_act_on_and_region_forms() {
    let moto = Moto::start();
    let eu = launch(&moto, "eu-west-1", &[("Name", "eu")]).await;
    let us = launch(&moto, "us-east-2", &[("Name", "us")]).await;

    // A misspelt region: named, with the closest one, before any call (the endpoint is a closed
    // port: a call would have ended in a connection error instead).
    let out = reaperctl_bare(
        &["plan", "--region", "eu-wset-1"],
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown region 'eu-wset-1'; did you mean eu-west-1?"),
        "{}",
        text(&out.stderr)
    );
    let out = reaperctl_bare(
        &["why", "i-0123456789abcdef0", "--region", "mars-east-1"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown region 'mars-east-1'"));

    // A profile in neither file: one sentence.
    let out = reaperctl_bare(&["plan", "--region", "eu-west-1", "--profile", "nope"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "reaperctl: profile 'nope' is not in ~/.aws/config or ~/.aws/credentials\n"
    );
    // No credentials anywhere: one sentence.
    let out = reaperctl_bare(&["plan", "--region", "eu-west-1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_one_sentence(&text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no AWS credentials found"),
        "{}",
        text(&out.stderr)
    );

    // --region is the region of every call, STS's included: no default region needed.
    let endpoint = moto.endpoint();
    let no_default_region = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let out = reaperctl_bare(
        &["plan", "--region", "eu-west-1", "--output", "json"],
        &no_default_region,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Comma-separated and repeated, duplicates once.
    let out = reaperctl_bare(
        &[
            "plan",
            "--region",
            "us-east-2,eu-west-1",
            "--region",
            "eu-west-1",
            "--output",
            "json",
        ],
        &no_default_region,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reports: Vec<RunReport> = serde_json::from_slice(&out.stdout).unwrap();
    let regions: Vec<&str> = reports.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(regions, ["eu-west-1", "us-east-2"]);
    let all = serde_json::to_string(&reports).unwrap();
    assert!(all.contains(&eu) && all.contains(&us));

    // A misspelt flag gets clap's suggestion.
    let out = reaperctl_bare(&["plan", "--regoin", "eu-west-1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("a similar argument exists: '--region'"),
        "{}",
        text(&out.stderr)
    );
}

/// Issue 20, item 5: the table, its summary and `--help`.
#[tokio::test(flavor = "multi_thread")]
async fn the_table_fits_the_terminal_with_one_summary_line() {
    let moto = Moto::start();
    let long_name =
        "build-agent-for-the-nightly-integration-pipeline-of-the-payments-team-do-not-touch";
    let id = launch(&moto, "eu-west-1", &[("Name", long_name)]).await;
    let args = ["plan", "--region", "eu-west-1"];

    let out = reaperctl(&moto, &args, &[("COLUMNS", "100")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let (rows, summary) = table.split_once("\n\n").expect("rows, then summaries");
    for row in rows.lines() {
        assert!(
            row.chars().count() <= 100,
            "{} wide: {row}",
            row.chars().count()
        );
    }
    assert!(rows.contains(&id) && rows.contains('…'), "{table}");
    assert!(!rows.contains(long_name), "{table}");
    // One summary line, on stdout only; "1 API call", never "1 API calls".
    assert_eq!(table.matches("eu-west-1 [dry-run]").count(), 1, "{table}");
    assert!(
        !text(&out.stderr).contains("[dry-run]"),
        "{}",
        text(&out.stderr)
    );
    assert!(summary.contains("API call"), "{summary}");
    assert!(!table.contains(" 1 API calls"), "{table}");
    let out = reaperctl(&moto, &["plan", "--region", "us-west-1"], &[]);
    assert!(
        text(&out.stdout).contains("| 1 API call\n"),
        "{}",
        text(&out.stdout)
    );
    // Without a terminal: no colour.
    assert!(!table.contains('\u{1b}'), "{table}");

    // --wide: every cell in full.
    let out = reaperctl(
        &moto,
        &[&args[..], &["--wide"]].concat(),
        &[("COLUMNS", "100")],
    );
    assert!(
        text(&out.stdout).contains(long_name),
        "{}",
        text(&out.stdout)
    );

    // Colour on a terminal, unless NO_COLOR.
    let (code, screen) =
        reaperctl_on_a_terminal_with(&moto, &args, "", &[("TERM", "xterm-256color")]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("\u{1b}["), "{screen}");
    let (code, screen) = reaperctl_on_a_terminal_with(
        &moto,
        &args,
        "",
        &[("TERM", "xterm-256color"), ("NO_COLOR", "1")],
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(!screen.contains("\u{1b}[1m"), "{screen}");
    assert!(screen.contains(&id), "{screen}");

    // --help names every variable the function reads.
    let out = reaperctl(&moto, &["--help"], &[]);
    let help = text(&out.stdout);
    for var in reaper::config::KNOWN_VARS {
        assert!(
            help.contains(&format!("  {var} ")),
            "{var} missing from --help:\n{help}"
        );
    }
}

/// Issue 20, item 5: the live prompt names what will change (the first 20, then a count).
#[tokio::test(flavor = "multi_thread")]
async fn the_live_prompt_lists_what_will_change() {
    let moto = Moto::start();
    let ids = reaper_e2e::launch(&moto.ec2("eu-west-1"), 22, &[("Name", "batch")]).await;
    let args = ["sweep", "--live", "--region", "eu-west-1"];
    let (code, screen) = reaperctl_on_a_terminal_with(
        &moto,
        &args,
        "no",
        &[("TERM", "dumb"), ("GRACE_PERIOD", "0m")],
    );
    assert_eq!(code, Some(2), "{screen}");
    let prompt = screen
        .split("Type the account id")
        .next()
        .unwrap_or_default()
        .to_string();
    let listed = ids.iter().filter(|id| prompt.contains(id.as_str())).count();
    assert_eq!(listed, 20, "{screen}");
    assert!(
        prompt.contains("stop") && prompt.contains("batch"),
        "{screen}"
    );
    assert!(prompt.contains("… and 2 more"), "{screen}");
    assert!(
        prompt.contains("in all: terminate 0, stop 22, stamp 0 in 1 region"),
        "{screen}"
    );
    assert!(
        !screen.contains("LIVE: instances will be changed"),
        "{screen}"
    );
    assert!(screen.contains("nothing was changed"), "{screen}");
    for id in &ids {
        assert_eq!(
            state(&moto, "eu-west-1", id).await,
            InstanceStateName::Running
        );
    }
}

fn tag(out: &aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput) -> String {
    out.reservations()[0].instances()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("termination_date"))
        .and_then(|t| t.value())
        .unwrap_or_default()
        .to_string()
}

async fn termination_date(moto: &Moto, id: &str) -> String {
    tag(&moto
        .ec2("eu-west-1")
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap())
}

/// A request moto routes by the credential scope's service and region (it checks no signature).
fn moto_call(moto: &Moto, service: &str, path: &str, content_type: &str, body: &str) -> String {
    let agent = reaper_e2e::net::agent(std::time::Duration::from_secs(10));
    let mut response = agent
        .post(&format!("{}{path}", moto.endpoint()))
        .header("content-type", content_type)
        .header(
            "authorization",
            &format!(
                "AWS4-HMAC-SHA256 Credential=testing/20300101/eu-west-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .send(body)
        .unwrap();
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    assert!(status.is_success(), "{service} {path}: {status} {text}");
    text
}

/// The reaper function as deployed: a role (moto checks it exists) and a function whose code is
/// an empty zip (never invoked) with `vars` as its environment.
fn deploy_function(moto: &Moto, name: &str, vars: &serde_json::Value) {
    moto_call(
        moto,
        "iam",
        "/",
        "application/x-www-form-urlencoded",
        "Action=CreateRole&Version=2010-05-08&RoleName=ec2-reaper&AssumeRolePolicyDocument=%7B%7D",
    );
    let body = serde_json::json!({
        "FunctionName": name,
        "Runtime": "provided.al2023",
        "Role": "arn:aws:iam::123456789012:role/ec2-reaper",
        "Handler": "bootstrap",
        // The 22-byte empty zip archive (end-of-central-directory record only).
        "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
        "Environment": {"Variables": vars},
    });
    moto_call(
        moto,
        "lambda",
        "/2015-03-31/functions",
        "application/json",
        &body.to_string(),
    );
}

/// Issue 19, items 5 and 8: extend writes only dates the reaper reads, and honours the deployed
/// function's MAX_LIFETIME and ALLOW_INDEFINITE, saying where they came from.
#[tokio::test(flavor = "multi_thread")]
async fn extend_writes_only_readable_dates_within_the_deployed_bound() {
    use chrono::{TimeDelta, Utc};
    use reaper::policy::format_date;
    let moto = Moto::start();
    let region = ["--region", "eu-west-1"];

    // Item 5: 9999-12-31T23:59:59Z + 5200w is no date the reaper reads: refused, naming the
    // bound, nothing written.
    let far = launch(
        &moto,
        "eu-west-1",
        &[("termination_date", "9999-12-31T23:59:59Z")],
    )
    .await;
    let out = reaperctl(
        &moto,
        &[&["extend", far.as_str(), "--by", "5200w"], &region[..]].concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains(
            "+10099-08-28T23:59:59Z is more than 100 years (36525 days) from now, the longest the reaper accepts"
        ),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(termination_date(&moto, &far).await, "9999-12-31T23:59:59Z");

    // No function deployed: this shell's bound, said in one line.
    let soon = format_date(Utc::now() + TimeDelta::hours(5));
    let id = launch(&moto, "eu-west-1", &[("termination_date", &soon)]).await;
    let out = reaperctl(
        &moto,
        &[&["extend", id.as_str(), "--by", "1d"], &region[..]].concat(),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("reaperctl: MAX_LIFETIME=unlimited, ALLOW_INDEFINITE=true from this shell's environment: the deployed function ec2-reaper in eu-west-1 could not be read (ResourceNotFoundException)\n"),
        "{}",
        text(&out.stderr)
    );

    // Deployed with MAX_LIFETIME=7d: beyond it is refused though this shell has no bound.
    deploy_function(
        &moto,
        "ec2-reaper",
        &serde_json::json!({"MAX_LIFETIME": "7d", "ALLOW_INDEFINITE": "false", "SLACKWEBHOOK": "https://hooks.slack.com/services/T/B/deployed-secret"}),
    );
    let out = reaperctl(
        &moto,
        &[&["extend", id.as_str(), "--by", "30d"], &region[..]].concat(),
        &[("MAX_LIFETIME", "unlimited")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("reaperctl: MAX_LIFETIME=1w, ALLOW_INDEFINITE=false from the deployed function ec2-reaper in eu-west-1\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("is beyond MAX_LIFETIME: first launch"),
        "{stderr}"
    );
    assert!(!stderr.contains("deployed-secret"), "{stderr}");
    // Within it: written, and what the bound does is said.
    let out = reaperctl(
        &moto,
        &[&["extend", id.as_str(), "--by", "2d"], &region[..]].concat(),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("MAX_LIFETIME ends it at"),
        "{}",
        text(&out.stderr)
    );

    // Item 8: indefinite under the deployed ALLOW_INDEFINITE=false: the bound's date, not
    // "nothing to extend".
    let kept = launch(&moto, "eu-west-1", &[("termination_date", "indefinite")]).await;
    let out = reaperctl(
        &moto,
        &[&["extend", kept.as_str(), "--by", "3d"], &region[..]].concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("termination_date is indefinite, but ALLOW_INDEFINITE=false: the reaper terminates it at"),
        "{stderr}"
    );
    assert!(!stderr.contains("nothing to extend"), "{stderr}");

    // --function names another function; one that does not exist falls back, said in one line.
    let out = reaperctl(
        &moto,
        &[
            &[
                "extend",
                kept.as_str(),
                "--by",
                "3d",
                "--function",
                "other-reaper",
            ],
            &region[..],
        ]
        .concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the deployed function other-reaper in eu-west-1 could not be read (ResourceNotFoundException)"),
        "{stderr}"
    );
    assert!(stderr.contains("indefinite already"), "{stderr}");
}

/// `check-config NAME=VALUE...`, as scripts/deploy runs it before a deploy.
#[test]
fn check_config_validates_with_the_functions_rules() {
    // Only the arguments count: a bad value in this environment is not read.
    let out = reaperctl_bare(
        &[
            "check-config",
            "MAX_STOPS=5",
            "GRACE_PERIOD=0m",
            "ACTION_WINDOW=",
        ],
        &[("MAX_STOPS", "lots"), ("GRACE_PERIOD", "soon")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "configuration ok\n");
    let out = reaperctl_bare(&["check-config"], &[("MAX_STOPS", "lots")]);
    assert_eq!(text(&out.stdout), "configuration ok\n");

    // Every bad value, one line each, in the function's own words; the webhook never echoed.
    let out = reaperctl_bare(
        &[
            "check-config",
            "MAX_STOPS=lots",
            "SKIP_MANAGED=no",
            "SLACKWEBHOOK=http://hooks.slack.com/services/T/B/very-secret",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines.contains(&"reaperctl: configuration error: MAX_STOPS=\"lots\" is not accepted: a whole number of instances (0 or more) or `unlimited`"), "{stderr}");
    assert!(
        lines.contains(
            &"reaperctl: configuration error: SKIP_MANAGED=\"no\" is not accepted: true or false"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("SLACKWEBHOOK="), "{stderr}");
    assert!(
        !stderr.contains("very-secret") && !stderr.contains("/T/B"),
        "{stderr}"
    );

    // Unknown names: refused with a suggestion, the value never shown.
    let out = reaperctl_bare(
        &[
            "check-config",
            "SLACK_WEBHOOK=https://hooks.slack.com/services/T/B/very-secret",
            "FOO=1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("reaperctl: SLACK_WEBHOOK is not a variable the reaper reads; did you mean SLACKWEBHOOK?\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("FOO is not a variable the reaper reads; it reads LIVEMODE,"),
        "{stderr}"
    );
    assert!(!stderr.contains("very-secret"), "{stderr}");
    // Not NAME=VALUE, or a name twice.
    let out = reaperctl_bare(&["check-config", "MAX_STOPS"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("\"MAX_STOPS\" is not NAME=VALUE"));
    let out = reaperctl_bare(&["check-config", "MAX_STOPS=1", "MAX_STOPS=2"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("MAX_STOPS is given twice"));

    // Keep buttons need both variables: together they are accepted (each checked alone, they
    // were refused, so scripts/deploy refused the documented configuration), alone refused.
    let url = "ACTIONS_URL=https://abc.lambda-url.eu-west-1.on.aws/";
    let key = "LINK_KEY_ARN=arn:aws:secretsmanager:eu-west-1:111122223333:secret:ec2-reaper/link-key-AbCdEf";
    let out = reaperctl_bare(&["check-config", url, key], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for alone in [url, key] {
        let out = reaperctl_bare(&["check-config", alone], &[]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).contains("or neither"),
            "{}",
            text(&out.stderr)
        );
    }
    // The owner-actions function's variables, with its own rules (`--actions`).
    let link = "LINK_KEY_ARN=arn:aws:secretsmanager:eu-west-1:111122223333:secret:ec2-reaper/link-key-AbCdEf";
    let out = reaperctl_bare(
        &[
            "check-config",
            "--actions",
            link,
            "ACTIONS_ROLE_NAME=ec2-reaper-actions",
            "ADMIN_SLACK_IDS=U0ADMIN123",
            "MAX_LIFETIME=90d",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for (bad, says) in [
        (
            "ADMIN_SLACK_IDS=UADMINABC",
            "ADMIN_SLACK_IDS=\"UADMINABC\" is not accepted",
        ),
        ("MAX_LIFETIME=0d", "MAX_LIFETIME=\"0d\" is not accepted"),
        (
            "ACTIONS_URL=https://x",
            "ACTIONS_URL is not a variable reaper-actions reads",
        ),
    ] {
        let out = reaperctl_bare(
            &[
                "check-config",
                "--actions",
                link,
                "ACTIONS_ROLE_NAME=ec2-reaper-actions",
                bad,
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
    let out = reaperctl_bare(&["check-config", "ACTIONS_URL=http://x", key], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("ACTIONS_URL=\"http://x\""),
        "{}",
        text(&out.stderr)
    );
}

/// Issue 18 finding 7: `reaperctl sweep --live` told no owner at all (no Slack, no e-mail, no
/// record) while its report said `notice: will-terminate`. Now it delivers as the Lambda does:
/// the channel gets the message, and what it named is recorded on the instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_live_sweep_from_a_laptop_tells_the_owners_and_records_it() {
    use reaper_e2e::webhook::{WebhookMode, WebhookSink};
    let moto = Moto::start();
    let sink = WebhookSink::start(WebhookMode::Ok);
    let soon = reaper::policy::format_date(chrono::Utc::now() + chrono::TimeDelta::hours(5));
    let id = launch(
        &moto,
        "eu-west-1",
        &[("termination_date", &soon), ("owner", "alice")],
    )
    .await;
    let url = sink.url();
    let env = [("GRACE_PERIOD", "0m"), ("SLACKWEBHOOK", url.as_str())];
    let out = reaperctl(
        &moto,
        &[
            "sweep",
            "--live",
            "--yes",
            "--output",
            "json",
            "--region",
            "eu-west-1",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let posted = sink.recorded();
    assert_eq!(posted.len(), 1, "one channel message");
    assert!(
        posted[0].body.to_string().contains(&id),
        "{}",
        posted[0].body
    );
    let tags = moto
        .ec2("eu-west-1")
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .tags()
        .to_vec();
    let record = tags
        .iter()
        .find(|t| t.key() == Some("reaper:announced"))
        .and_then(|t| t.value())
        .unwrap_or_default()
        .to_string();
    assert!(
        record.starts_with(&format!("terminate {soon} told ")),
        "{record}"
    );
    // The webhook is a secret: not in the output.
    assert!(!text(&out.stdout).contains(&url) && !text(&out.stderr).contains(&url));
}

//! Proves the harness itself: moto through the real SDK, the local Lambda Runtime API (played by
//! hand and by the real `lambda_runtime` client), the function process wrapper, the webhook sink.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{InstanceStateName, InstanceType, ResourceType, Tag, TagSpecification};
use reaper_e2e::{
    fixture, net, Function, Invocation, Moto, RuntimeApi, WebhookMode, WebhookSink, FUNCTION_NAME,
};
use serde_json::json;

const REGION: &str = "us-east-1";
const SECOND: Duration = Duration::from_secs(1);

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_round_trip_through_the_ec2_sdk() {
    let moto = Moto::start();
    let ec2 = moto.ec2(REGION);

    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(tag("Name", "harness"))
                .tags(tag("lifetime", "2d"))
                .build(),
        )
        .send()
        .await
        .expect("RunInstances");
    let id = run.instances()[0].instance_id().expect("an id").to_owned();

    let described = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("DescribeInstances");
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(instance.instance_id(), Some(id.as_str()));
    assert_eq!(
        instance.state().and_then(|s| s.name()),
        Some(&InstanceStateName::Running)
    );
    let mut tags: Vec<(String, String)> = instance
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("Name".to_owned(), "harness".to_owned()),
            ("lifetime".to_owned(), "2d".to_owned())
        ]
    );
    let root = &instance.block_device_mappings()[0];
    assert!(root.ebs().and_then(|e| e.attach_time()).is_some());

    moto.reset();
    let after = ec2.describe_instances().send().await.expect("Describe");
    assert!(
        after.reservations().is_empty(),
        "reset must forget every instance: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_round_trip_through_the_s3_sdk() {
    let moto = Moto::start();
    let s3 = moto.s3(REGION);
    s3.create_bucket()
        .bucket("reports")
        .send()
        .await
        .expect("CreateBucket");
    s3.put_object()
        .bucket("reports")
        .key("reports/123456789012/us-east-1/run.json")
        .body(br#"{"ok":true}"#.to_vec().into())
        .send()
        .await
        .expect("PutObject");
    let object = s3
        .get_object()
        .bucket("reports")
        .key("reports/123456789012/us-east-1/run.json")
        .send()
        .await
        .expect("GetObject");
    let body = object.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], br#"{"ok":true}"#);
    // Path style is what moto on an IP address needs; the request log shows it.
    assert!(moto.log().contains("PUT /reports/reports/123456789012"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_client_without_path_style_also_works_on_moto() {
    // The reaper builds its S3 client from the environment, without force_path_style: S3's
    // endpoint rules pick path style by themselves for an IP-address endpoint.
    let moto = Moto::start();
    let s3 = aws_sdk_s3::Client::new(&moto.sdk_config(REGION));
    s3.create_bucket()
        .bucket("plain")
        .send()
        .await
        .expect("CreateBucket");
    s3.put_object()
        .bucket("plain")
        .key("k")
        .body(b"v".to_vec().into())
        .send()
        .await
        .expect("PutObject");
    assert!(moto.log().contains("PUT /plain/k"), "{}", moto.log());
}

#[test]
fn moto_env_names_the_endpoint_and_test_credentials() {
    let moto = Moto::start();
    let env = moto.env("eu-west-1");
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} missing from {env:?}"))
    };
    assert_eq!(get("AWS_ENDPOINT_URL"), moto.endpoint());
    assert_eq!(get("AWS_ACCESS_KEY_ID"), "testing");
    assert_eq!(get("AWS_SECRET_ACCESS_KEY"), "testing");
    assert_eq!(get("AWS_REGION"), "eu-west-1");
    assert_eq!(get("AWS_DEFAULT_REGION"), "eu-west-1");
    assert_eq!(get("AWS_EC2_METADATA_DISABLED"), "true");
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
}

#[test]
fn moto_dies_with_its_server_on_drop() {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let pid = moto.pid();
    drop(moto);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true),
        "moto pid {pid} still alive after drop"
    );
    let agent = net::agent(SECOND);
    assert!(agent.get(format!("{endpoint}/moto-api/")).call().is_err());
}

#[test]
fn moto_fails_loudly_when_the_binary_is_missing() {
    let missing = PathBuf::from("/nonexistent/reaper-e2e/bin/moto_server");
    let panic = std::panic::catch_unwind(|| Moto::start_with(&missing))
        .err()
        .expect("Moto::start_with a missing binary must panic");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.contains(missing.to_str().unwrap()), "{message}");
    assert!(message.contains("make venv"), "{message}");
    assert!(message.contains("MOTO_SERVER"), "{message}");
}

#[test]
fn moto_fails_loudly_when_the_binary_is_not_moto() {
    // `false` starts, exits 1 and never answers: the panic says so, with the exit status.
    let panic = std::panic::catch_unwind(|| Moto::start_with(Path::new("/bin/false")))
        .err()
        .expect("a server that exits must panic");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("/bin/false"), "{message}");
    assert!(message.contains("exited"), "{message}");
}

// ---- Runtime API, with the test playing the function ----

struct Fake {
    base: String,
    agent: ureq::Agent,
}

struct NextEvent {
    id: String,
    deadline_ms: u64,
    arn: String,
    trace: String,
    body: serde_json::Value,
}

impl Fake {
    fn new(runtime: &RuntimeApi) -> Fake {
        Fake {
            base: format!("http://{}/2018-06-01/runtime", runtime.address()),
            agent: net::agent(Duration::from_secs(10)),
        }
    }

    fn next(&self) -> NextEvent {
        let mut response = self
            .agent
            .get(format!("{}/invocation/next", self.base))
            .call()
            .expect("GET next");
        assert_eq!(response.status(), 200);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        let id = header("Lambda-Runtime-Aws-Request-Id");
        let deadline_ms = header("Lambda-Runtime-Deadline-Ms").parse().unwrap();
        let arn = header("Lambda-Runtime-Invoked-Function-Arn");
        let trace = header("Lambda-Runtime-Trace-Id");
        let body = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        NextEvent {
            id,
            deadline_ms,
            arn,
            trace,
            body,
        }
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> u16 {
        self.agent
            .post(format!("{}{path}", self.base))
            .header("Lambda-Runtime-Function-Error-Type", "unhandled")
            .send(body.to_string())
            .expect("POST")
            .status()
            .as_u16()
    }
}

#[test]
fn runtime_api_hands_an_event_to_the_function_and_returns_its_response() {
    let runtime = RuntimeApi::start("eu-west-1");
    let fake = Fake::new(&runtime);
    thread::scope(|s| {
        let invoked = s.spawn(|| {
            runtime.invoke(
                fixture("schedule"),
                Duration::from_secs(10),
                Duration::from_secs(900),
            )
        });
        let before = net::epoch_ms();
        let event = fake.next();
        assert_eq!(event.body, fixture("schedule.json"));
        assert_eq!(
            event.arn,
            "arn:aws:lambda:eu-west-1:123456789012:function:ec2-reaper"
        );
        assert!(event.trace.starts_with("Root=1-"), "{}", event.trace);
        assert!(
            event.deadline_ms >= before + 899_000 && event.deadline_ms <= before + 901_000,
            "deadline {} vs now {before}",
            event.deadline_ms
        );
        let status = fake.post(
            &format!("/invocation/{}/response", event.id),
            &json!({"run_id": "r-1", "counts": {"keep": 3}}),
        );
        assert_eq!(status, 202);
        assert_eq!(
            invoked.join().unwrap(),
            Invocation::Response(json!({"run_id": "r-1", "counts": {"keep": 3}}))
        );
        // The id is spent: a second answer is refused.
        let again = fake.post(&format!("/invocation/{}/response", event.id), &json!({}));
        assert_eq!(again, 400);
    });
    assert_eq!(runtime.polls(), 1);
}

#[test]
fn runtime_api_reports_function_errors_and_init_errors() {
    let runtime = RuntimeApi::start(REGION);
    let fake = Fake::new(&runtime);
    thread::scope(|s| {
        let invoked = s.spawn(|| {
            runtime.invoke(
                fixture("manual-bad-field"),
                Duration::from_secs(10),
                Duration::from_secs(60),
            )
        });
        let event = fake.next();
        assert_eq!(event.body, json!({"dryrun": true}));
        let status = fake.post(
            &format!("/invocation/{}/error", event.id),
            &json!({"errorType": "InvalidEvent",
                    "errorMessage": "unknown field `dryrun`"}),
        );
        assert_eq!(status, 202);
        assert_eq!(
            invoked.join().unwrap(),
            Invocation::Error {
                error_type: "InvalidEvent".into(),
                error_message: "unknown field `dryrun`".into(),
            }
        );
    });

    let status = fake.post(
        "/init/error",
        &json!({"errorType": "Runtime.InitError", "errorMessage": "LIVEMODE: bad"}),
    );
    assert_eq!(status, 202);
    let started = Instant::now();
    let after_init_error = runtime.invoke(json!({}), Duration::from_secs(10), SECOND);
    assert_eq!(
        after_init_error,
        Invocation::InitError {
            error_type: "Runtime.InitError".into(),
            error_message: "LIVEMODE: bad".into(),
        }
    );
    assert!(started.elapsed() < SECOND);
}

#[test]
fn runtime_api_times_out_and_withdraws_an_unanswered_event() {
    let runtime = RuntimeApi::start(REGION);
    let started = Instant::now();
    let result = runtime.invoke(json!({"first": 1}), Duration::from_millis(300), SECOND);
    assert_eq!(result, Invocation::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(3));

    // The withdrawn event is not handed to a function that polls later.
    let fake = Fake::new(&runtime);
    thread::scope(|s| {
        let invoked = s.spawn(|| runtime.invoke(json!({"second": 2}), 10 * SECOND, SECOND));
        let event = fake.next();
        assert_eq!(event.body, json!({"second": 2}));
        fake.post(&format!("/invocation/{}/response", event.id), &json!("ok"));
        assert_eq!(invoked.join().unwrap(), Invocation::Response(json!("ok")));
    });
}

#[test]
fn runtime_api_drop_unblocks_a_waiting_poll() {
    let runtime = RuntimeApi::start(REGION);
    let url = format!(
        "http://{}/2018-06-01/runtime/invocation/next",
        runtime.address()
    );
    let poller = thread::spawn(move || {
        let started = Instant::now();
        let status = net::agent(Duration::from_secs(20))
            .get(&url)
            .call()
            .map(|r| r.status().as_u16());
        (status, started.elapsed())
    });
    assert!(
        runtime.wait_for_polls(1, 5 * SECOND),
        "the poll never arrived"
    );
    let dropped = Instant::now();
    drop(runtime);
    assert!(
        dropped.elapsed() < 5 * SECOND,
        "drop took {:?}",
        dropped.elapsed()
    );
    let (status, waited) = poller.join().unwrap();
    assert_eq!(status.ok(), Some(500));
    assert!(waited < 10 * SECOND);
}

// ---- Runtime API with the real lambda_runtime client, and the Function wrapper ----

fn echo_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lambda-echo"))
}

#[test]
fn a_real_lambda_runtime_function_runs_under_the_runtime_api() {
    let runtime = RuntimeApi::start(REGION);
    let env = vec![("AWS_REGION".to_owned(), REGION.to_owned())];
    let function = Function::spawn(echo_binary(), &runtime, &env);

    let event = fixture("instance-state-pending");
    let answer = function
        .invoke(&runtime, event.clone(), 20 * SECOND, 900 * SECOND)
        .unwrap_response();
    assert_eq!(answer["event"], event);
    assert_eq!(answer["function_name"], FUNCTION_NAME);
    assert_eq!(answer["invoked_function_arn"], runtime.function_arn());
    assert_eq!(answer["region"], REGION);
    assert!(answer["deadline_ms"].as_u64().unwrap() > net::epoch_ms() + 800_000);

    // Warm invocations go to the same process.
    let second = function
        .invoke(&runtime, json!({"n": 2}), 20 * SECOND, 60 * SECOND)
        .unwrap_response();
    assert_eq!(second["event"], json!({"n": 2}));
    assert_ne!(second["request_id"], answer["request_id"]);

    let failed = function.invoke(&runtime, json!({"fail": "boom"}), 20 * SECOND, 60 * SECOND);
    let Invocation::Error { error_message, .. } = failed else {
        panic!("expected an error, got {failed:?}")
    };
    assert_eq!(error_message, "boom");

    let second_id = second["request_id"].as_str().unwrap();
    assert!(
        function.wait_for_stdout(second_id, 5 * SECOND),
        "{}",
        function.stdout()
    );
    let lines = function.json_lines();
    assert_eq!(lines.len(), 2, "stdout: {}", function.stdout());
    assert_eq!(lines[0]["request_id"], answer["request_id"]);

    // A process that dies mid-invocation is reported at once, not after the timeout.
    let started = Instant::now();
    let exited = function.invoke(&runtime, json!({"exit": 3}), 20 * SECOND, 60 * SECOND);
    let Invocation::Exited(status) = exited else {
        panic!("expected an exit, got {exited:?}")
    };
    assert_eq!(status.code(), Some(3));
    assert!(started.elapsed() < 5 * SECOND);
}

#[test]
fn a_function_that_fails_at_start_up_is_reported_with_its_stderr() {
    let runtime = RuntimeApi::start(REGION);
    let env = vec![("ECHO_EXIT_AT_INIT".to_owned(), "LIVEMODE=maybe".to_owned())];
    let function = Function::spawn(echo_binary(), &runtime, &env);
    let result = function.invoke(&runtime, json!({}), 20 * SECOND, 60 * SECOND);
    assert!(
        matches!(result, Invocation::Exited(s) if s.code() == Some(2)),
        "{result:?}"
    );
    assert_eq!(function.wait_exit(SECOND).and_then(|s| s.code()), Some(2));
    assert!(
        function.stderr().contains("LIVEMODE=maybe"),
        "{}",
        function.stderr()
    );
}

#[test]
fn function_gets_a_clean_lambda_environment() {
    // `env` prints its environment: proof that the host's variables stay out.
    let runtime = RuntimeApi::start(REGION);
    let extra = vec![
        ("AWS_REGION".to_owned(), "ap-south-1".to_owned()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(),
            "512".to_owned(),
        ),
    ];
    let function = Function::spawn(Path::new("/usr/bin/env"), &runtime, &extra);
    let status = function.wait_exit(10 * SECOND).expect("env exits");
    assert!(status.success());
    let out = function.stdout();
    let vars: Vec<&str> = out.lines().collect();
    let has = |line: &str| vars.contains(&line);
    assert!(
        has(&format!("AWS_LAMBDA_RUNTIME_API={}", runtime.address())),
        "{out}"
    );
    assert!(has("AWS_LAMBDA_FUNCTION_NAME=ec2-reaper"), "{out}");
    assert!(has("AWS_LAMBDA_FUNCTION_VERSION=$LATEST"), "{out}");
    assert!(
        has("AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/ec2-reaper"),
        "{out}"
    );
    assert!(has("AWS_REGION=ap-south-1"), "{out}");
    // The caller's value wins over the default.
    assert!(has("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512"), "{out}");
    assert!(
        !out.contains("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128"),
        "{out}"
    );
    assert!(out.contains("AWS_LAMBDA_LOG_STREAM_NAME="), "{out}");
    // Cargo sets these for the test process; the function must not see them.
    assert!(!out.contains("CARGO_MANIFEST_DIR"), "{out}");
    assert!(!out.contains("CARGO_PKG_NAME"), "{out}");
    let allowed = ["PATH=", "HOME=", "AWS_LAMBDA_", "AWS_REGION="];
    for line in vars {
        assert!(
            allowed.iter().any(|p| line.starts_with(p)),
            "unexpected variable {line}"
        );
    }
}

#[test]
fn function_drop_kills_a_running_process() {
    let runtime = RuntimeApi::start(REGION);
    let function = Function::spawn(echo_binary(), &runtime, &[]);
    assert!(
        runtime.wait_for_polls(1, 20 * SECOND),
        "{}",
        function.stderr()
    );
    let pid = function.pid();
    assert!(function.wait_exit(Duration::from_millis(200)).is_none());
    drop(function);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} survived"
    );
}

#[test]
fn the_reaper_binary_is_found_or_built() {
    let binary = reaper_e2e::reaper_binary();
    assert!(binary.is_file(), "{}", binary.display());
    assert!(binary.ends_with("debug/reaper"), "{}", binary.display());
    assert_eq!(reaper_e2e::reaper_binary(), binary);
}

// ---- Webhook sink ----

#[test]
fn webhook_sink_records_posts() {
    let sink = WebhookSink::start(WebhookMode::Ok);
    assert!(sink.url().starts_with("http://127.0.0.1:"));
    assert!(sink.url().ends_with("/services/T000/B000/XXXX"));
    let mut response = net::agent(5 * SECOND)
        .post(sink.url())
        .header("Content-Type", "application/json")
        .send(json!({"text": "dry run: 2 would be stopped"}).to_string())
        .expect("POST");
    assert_eq!(response.status(), 200);
    assert_eq!(response.body_mut().read_to_string().unwrap(), "ok");
    assert_eq!(
        sink.requests(),
        vec![json!({"text": "dry run: 2 would be stopped"})]
    );
    let recorded = &sink.recorded()[0];
    assert_eq!(recorded.method, "POST");
    assert_eq!(recorded.path, "/services/T000/B000/XXXX");
    assert_eq!(recorded.content_type.as_deref(), Some("application/json"));
}

#[test]
fn webhook_sink_answers_the_status_it_is_told() {
    let sink = WebhookSink::start(WebhookMode::Status(500));
    let response = net::agent(5 * SECOND)
        .post(sink.url())
        .send("not json")
        .expect("POST");
    assert_eq!(response.status(), 500);
    assert_eq!(sink.requests(), vec![json!("not json")]);
}

#[test]
fn webhook_sink_in_hang_mode_never_answers() {
    let sink = WebhookSink::start(WebhookMode::Hang);
    let url = sink.url();
    let started = Instant::now();
    let result = net::agent(SECOND)
        .post(&url)
        .send(json!({"text": "hello"}).to_string());
    assert!(
        result.is_err(),
        "Hang answered: {:?}",
        result.map(|r| r.status())
    );
    assert!(started.elapsed() >= SECOND);
    assert_eq!(sink.requests(), vec![json!({"text": "hello"})]);
    let dropped = Instant::now();
    drop(sink);
    assert!(dropped.elapsed() < 5 * SECOND);
}

// ---- Fixtures ----

#[test]
fn fixtures_have_the_shapes_the_triggers_expect() {
    let schedule = fixture("schedule");
    assert_eq!(schedule["detail-type"], "Scheduled Event");
    assert_eq!(schedule["source"], "aws.events");
    assert!(schedule["resources"][0]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:events:"));
    let state = fixture("instance-state-pending");
    assert_eq!(
        state["detail-type"],
        "EC2 Instance State-change Notification"
    );
    assert_eq!(
        state["detail"],
        json!({"instance-id": "i-0123456789abcdef0", "state": "pending"})
    );
    assert_eq!(fixture("manual-empty"), json!({}));
    assert_eq!(
        fixture("manual-dry-run"),
        json!({"dry_run": true, "at": "2030-01-01T00:00:00Z"})
    );
    assert_eq!(fixture("manual-bad-field"), json!({"dryrun": true}));
    assert_eq!(fixture("manual-bad-type"), json!({"dry_run": "yes"}));
}

// ---- The whole chain: the real reaper binary, the Runtime API, moto ----

#[test]
fn the_real_reaper_answers_under_the_runtime_api_against_moto() {
    let moto = Moto::start();
    let runtime = RuntimeApi::start(REGION);
    let function = Function::spawn(&reaper_e2e::reaper_binary(), &runtime, &moto.env(REGION));

    let report = function.invoke(&runtime, fixture("manual-empty"), 60 * SECOND, 900 * SECOND);
    let Invocation::Response(report) = report else {
        panic!(
            "expected a run report, got {report:?}\nstderr:\n{}\nstdout:\n{}",
            function.stderr(),
            function.stdout()
        )
    };
    assert!(report.is_object(), "{report}");
    // The function listed instances through moto, not anywhere else.
    assert!(moto.log().contains("POST / HTTP"), "{}", moto.log());

    let refused = function.invoke(
        &runtime,
        fixture("manual-bad-field"),
        60 * SECOND,
        900 * SECOND,
    );
    let Invocation::Error { error_message, .. } = &refused else {
        panic!(
            "expected an error, got {refused:?}\nstderr:\n{}",
            function.stderr()
        )
    };
    assert!(error_message.contains("dryrun"), "{error_message}");
}

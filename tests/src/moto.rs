//! A moto server child process on loopback, and SDK clients pointed at it.

use std::env;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};

use crate::net;

/// How long moto gets to answer `GET /moto-api/` after it is spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts with a fresh port when moto reports that its port is taken.
const PORT_ATTEMPTS: u32 = 4;

/// A running moto server (`moto_server -H 127.0.0.1 -p PORT`). Killed on drop.
///
/// Every request signed with the access key `testing` lands in moto's default account
/// [`Moto::ACCOUNT_ID`]; state is kept per account and region until [`Moto::reset`].
pub struct Moto {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

enum Startup {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

impl Moto {
    /// The account moto puts every resource in (for the `testing` access key).
    pub const ACCOUNT_ID: &'static str = "123456789012";
    pub const ACCESS_KEY_ID: &'static str = "testing";
    pub const SECRET_ACCESS_KEY: &'static str = "testing";

    /// Starts moto from env `MOTO_SERVER`, else `moto_server` on `PATH`. Panics if it cannot.
    pub fn start() -> Moto {
        Moto::start_with(&moto_binary())
    }

    /// Starts the given moto_server binary. Panics — loudly, never skips — if it is missing, its
    /// port is taken on every attempt, or it does not answer within 20 s.
    pub fn start_with(binary: &Path) -> Moto {
        if !binary.is_file() {
            panic!(
                "\n\nreaper-e2e: moto server binary {} does not exist.\n\
                 Run `make venv` (it installs moto into ~/.cache/ec2-reaper/venv) \
                 or set MOTO_SERVER to the path of moto_server.\n\n",
                binary.display()
            );
        }
        let mut last_failure = String::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let port = net::free_port();
            let log_path = log_path(port);
            let log = File::create(&log_path).unwrap_or_else(|e| {
                panic!(
                    "reaper-e2e: cannot create moto log {}: {e}",
                    log_path.display()
                )
            });
            let log_err = log
                .try_clone()
                .unwrap_or_else(|e| panic!("reaper-e2e: cannot clone moto log handle: {e}"));
            let child = Command::new(binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "\n\nreaper-e2e: cannot run moto server {}: {e}\n\
                         Run `make venv` or set MOTO_SERVER to a working moto_server.\n\n",
                        binary.display()
                    )
                });
            let mut moto = Moto {
                child,
                port,
                log_path,
            };
            match moto.wait_ready() {
                Startup::Ready => return moto,
                Startup::Exited(status) => {
                    let log = moto.log();
                    let port_taken = log.contains("Address already in use")
                        || log.contains("is in use by another program");
                    last_failure = format!(
                        "moto server {} exited with {status} on port {port}; log tail:\n{}",
                        binary.display(),
                        net::tail_str(&log, 30)
                    );
                    // Drop kills nothing (already gone) and removes the log.
                    drop(moto);
                    if port_taken && attempt < PORT_ATTEMPTS {
                        continue;
                    }
                    break;
                }
                Startup::TimedOut => {
                    let log = moto.log();
                    drop(moto);
                    panic!(
                        "\n\nreaper-e2e: moto server {} did not answer GET /moto-api/ on \
                         127.0.0.1:{port} within {}s; log tail:\n{}\n\n",
                        binary.display(),
                        READY_TIMEOUT.as_secs(),
                        net::tail_str(&log, 30)
                    );
                }
            }
        }
        panic!("\n\nreaper-e2e: cannot start moto server: {last_failure}\n\n");
    }

    fn wait_ready(&mut self) -> Startup {
        let agent = net::agent(Duration::from_secs(2));
        let url = format!("{}/moto-api/", self.endpoint());
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Startup::Exited(status);
            }
            let answered = matches!(agent.get(&url).call(), Ok(r) if r.status() == 200);
            // The answer must come from *our* child: another process may have grabbed the port
            // between our probe and moto's bind. Werkzeug logs every request it serves.
            if answered && self.served_a_probe() {
                return Startup::Ready;
            }
            thread::sleep(Duration::from_millis(100));
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            return Startup::Exited(status);
        }
        Startup::TimedOut
    }

    fn served_a_probe(&mut self) -> bool {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            if self.log().contains("GET /moto-api/ HTTP") {
                return true;
            }
            if Instant::now() >= until || matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the moto server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// moto's combined stdout and stderr so far (one line per request served).
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Forgets every resource in every account and region (`POST /moto-api/reset`).
    pub fn reset(&self) {
        self.control("POST", "/moto-api/reset", None);
    }

    /// Reads moto's server-wide configuration (`GET /moto-api/config`).
    pub fn config(&self) -> serde_json::Value {
        self.control("GET", "/moto-api/config", None)
    }

    /// Changes moto's server-wide configuration (`POST /moto-api/config`), e.g.
    /// `{"batch": {"use_docker": false}}`; returns the configuration now in force.
    pub fn set_config(&self, config: &serde_json::Value) -> serde_json::Value {
        self.control("POST", "/moto-api/config", Some(config))
    }

    fn control(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> serde_json::Value {
        let url = format!("{}{path}", self.endpoint());
        let agent = net::agent(Duration::from_secs(10));
        let result = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            (_, Some(body)) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.to_string()),
            (_, None) => agent.post(&url).send_empty(),
        };
        let mut response = result.unwrap_or_else(|e| {
            panic!(
                "reaper-e2e: {method} {url} failed: {e}; moto log tail:\n{}",
                net::tail(&self.log_path, 20)
            )
        });
        let status = response.status();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if !status.is_success() {
            panic!(
                "reaper-e2e: {method} {url} answered {status}: {text}; moto log tail:\n{}",
                net::tail(&self.log_path, 20)
            );
        }
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    }

    /// SDK configuration for this server: static `testing` credentials, its endpoint, `region`,
    /// latest behavior version. Nothing is read from the host's environment or profile files.
    pub fn sdk_config(&self, region: &str) -> SdkConfig {
        let credentials = Credentials::new(
            Self::ACCESS_KEY_ID,
            Self::SECRET_ACCESS_KEY,
            None,
            None,
            "reaper-e2e-moto",
        );
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(self.endpoint())
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build()
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config(region))
    }

    /// An S3 client with path-style addressing (`http://127.0.0.1:PORT/bucket/key`).
    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config(region))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Creates `bucket` in `region` (with the location constraint S3 wants outside us-east-1).
    pub async fn create_bucket(&self, region: &str, bucket: &str) {
        let mut req = self.s3(region).create_bucket().bucket(bucket);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        req.send().await.unwrap_or_else(|e| {
            panic!(
                "CreateBucket {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
    }

    /// Environment for a child process (the Lambda binary, `reaperctl`) that should talk to this
    /// server. Besides the endpoint, credentials and region, it points the shared config and
    /// credentials files at nothing, so a developer's `~/.aws` cannot leak in.
    pub fn env(&self, region: &str) -> Vec<(String, String)> {
        let nowhere = "/nonexistent/reaper-e2e/aws";
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", region.to_owned()),
            ("AWS_DEFAULT_REGION", region.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", format!("{nowhere}/config")),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                format!("{nowhere}/credentials"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Child::kill signals this child's PID only (SIGKILL); wait reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if env::var_os("REAPER_E2E_KEEP_LOGS").is_none() {
            let _ = fs::remove_file(&self.log_path);
        }
    }
}

/// The moto_server to run: env `MOTO_SERVER`, else `moto_server` on `PATH`. Panics with what to
/// do when neither exists.
pub fn moto_binary() -> PathBuf {
    if let Some(path) = env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(path) = env::var_os("PATH") {
        for dir in env::split_paths(&path) {
            let candidate = dir.join("moto_server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "\n\nreaper-e2e: moto_server not found: MOTO_SERVER is unset and there is no moto_server \
         on PATH.\nRun `make venv` (then use `make test`, which sets MOTO_SERVER) \
         or set MOTO_SERVER to the path of moto_server.\n\n"
    );
}

fn log_path(port: u16) -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    env::temp_dir().join(format!(
        "reaper-e2e-moto-{}-{}-{port}.log",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

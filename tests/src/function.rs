//! The real Lambda binary, run as a child process under the local [`RuntimeApi`].

use std::env;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crate::runtime_api::{Invocation, RuntimeApi, FUNCTION_NAME};

type Buffer = Arc<Mutex<Vec<u8>>>;

/// A running function process. Killed (by PID) on drop.
pub struct Function {
    child: Mutex<Child>,
    pid: u32,
    stdout: Buffer,
    stderr: Buffer,
    readers: Vec<JoinHandle<()>>,
}

impl Function {
    /// Runs `binary` as the function behind `runtime`. The environment is cleared (only `PATH` and
    /// `HOME` survive), then the Lambda variables are set, then `env` (which may override them).
    /// Set `REAPER_E2E_ECHO=1` to also copy the function's output to the test's stderr.
    pub fn spawn(binary: &Path, runtime: &RuntimeApi, env: &[(String, String)]) -> Function {
        let mut command = Command::new(binary);
        command.env_clear();
        for keep in ["PATH", "HOME"] {
            if let Some(value) = env::var_os(keep) {
                command.env(keep, value);
            }
        }
        let date = chrono::Utc::now().format("%Y/%m/%d");
        let stream = uuid::Uuid::new_v4().simple().to_string();
        command
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("{date}/[$LATEST]{stream}"),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{FUNCTION_NAME}"),
            )
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "reaper-e2e: cannot run the function binary {}: {e}",
                binary.display()
            )
        });
        let pid = child.id();
        let echo = env::var_os("REAPER_E2E_ECHO").is_some_and(|v| !v.is_empty() && v != "0");
        let stdout: Buffer = Arc::default();
        let stderr: Buffer = Arc::default();
        let out: ChildStdout = child.stdout.take().expect("stdout is piped");
        let err: ChildStderr = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            pump(out, Arc::clone(&stdout), echo),
            pump(err, Arc::clone(&stderr), echo),
        ];
        Function {
            child: Mutex::new(child),
            pid,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the function wrote to stdout so far.
    pub fn stdout(&self) -> String {
        text(&self.stdout)
    }

    /// Everything the function wrote to stderr so far.
    pub fn stderr(&self) -> String {
        text(&self.stderr)
    }

    /// Waits up to `timeout` until stdout contains `needle`. Output of a live process reaches the
    /// buffers a moment after it is written (an answer can arrive before the log line).
    pub fn wait_for_stdout(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.stdout().contains(needle) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The stdout lines that are JSON objects (tracing's JSON logs, EMF metric lines).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.is_object())
            .collect()
    }

    /// The exit status, if the process has exited. Once it has, its output is read to the end
    /// (up to 2 s, in case a grandchild still holds the pipes) so `stdout()` is complete.
    pub fn try_exit(&self) -> Option<ExitStatus> {
        let status = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_wait()
            .ok()
            .flatten()?;
        let until = Instant::now() + Duration::from_secs(2);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        Some(status)
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Like [`RuntimeApi::invoke`], but returns [`Invocation::Exited`] as soon as the process
    /// dies without answering, instead of waiting for the timeout.
    pub fn invoke(
        &self,
        runtime: &RuntimeApi,
        event: serde_json::Value,
        timeout: Duration,
        deadline_in: Duration,
    ) -> Invocation {
        self.invoke_raw(runtime, event.to_string().as_bytes(), timeout, deadline_in)
    }

    /// [`Function::invoke`] with the event's bytes as they are: an empty body, a body that is not
    /// JSON or not UTF-8 reaches the function unchanged.
    pub fn invoke_raw(
        &self,
        runtime: &RuntimeApi,
        body: &[u8],
        timeout: Duration,
        deadline_in: Duration,
    ) -> Invocation {
        runtime.invoke_watching(body, timeout, deadline_in, &|| self.try_exit())
    }

    /// Kills the process (SIGKILL to its PID) and reaps it.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        self.kill();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

fn pump(mut from: impl Read + Send + 'static, into: Buffer, echo: bool) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match from.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    into.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&chunk[..n]);
                    if echo {
                        let _ = std::io::stderr().write_all(&chunk[..n]);
                    }
                }
            }
        }
    })
}

fn text(buffer: &Buffer) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// The workspace root (the directory holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory: env `CARGO_TARGET_DIR`, else the checkout's own `target/` (the
/// Makefile's default; dependencies come from the shared build-dir, binaries never do).
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) if Path::new(&dir).is_relative() => workspace_root().join(dir),
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target"),
    }
}

/// The debug `reaper` binary, built first when it is missing or older than its sources
/// (`functions/reaper/`, the workspace `Cargo.toml` and `Cargo.lock`). Env `REAPER_BINARY`
/// names a prebuilt binary instead. Builds at most once per process; cargo's own lock on the
/// target directory serialises builds from parallel test processes.
pub fn reaper_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| prebuilt("REAPER_BINARY").unwrap_or_else(|| fresh_binary("reaper")))
        .clone()
}

/// The binary the environment variable `var` names (scripts/smoke-arm64: the shipped arm64
/// bootstrap under qemu), when it is set; a name that is not a file fails loudly.
fn prebuilt(var: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env::var_os(var).filter(|p| !p.is_empty())?);
    assert!(
        path.is_file(),
        "reaper-e2e: {var}={} does not exist",
        path.display()
    );
    Some(path)
}

/// `target/debug/<name>` of package `reaper`, built first (both binaries at once) when it is
/// missing or older than the sources.
fn fresh_binary(name: &str) -> PathBuf {
    let binary = target_dir().join("debug").join(name);
    let root = workspace_root();
    let built = modified(&binary);
    let sources = newest(&[
        root.join("functions/reaper"),
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
    ]);
    if built.is_none() || sources > built {
        build_reaper(&root);
    }
    assert!(
        binary.is_file(),
        "reaper-e2e: `cargo build --workspace --bins` succeeded but {} does not exist",
        binary.display()
    );
    binary
}

fn build_reaper(root: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        // The whole workspace, so features unify as in `cargo test --workspace` and the SDK
        // crates built for the tests are reused (aws-sdk-ec2 alone is minutes and GBs).
        .args(["build", "--workspace", "--bins"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("reaper-e2e: cannot run {cargo:?}: {e}"));
    if !output.status.success() {
        panic!(
            "\n\nreaper-e2e: `cargo build --workspace --bins` failed ({}):\n{}\n",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// The newest modification time among the files under `paths` (skipping `target` directories).
fn newest(paths: &[PathBuf]) -> Option<SystemTime> {
    let mut stack: Vec<PathBuf> = paths.to_vec();
    let mut newest = None;
    while let Some(path) = stack.pop() {
        let Ok(meta) = path.metadata() else { continue };
        if meta.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            if let Ok(entries) = path.read_dir() {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(time) = meta.modified() {
            newest = newest.max(Some(time));
        }
    }
    newest
}

/// The debug `reaper-actions` binary (owner actions), built (with `reaper`) when missing or stale.
pub fn actions_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            prebuilt("REAPER_ACTIONS_BINARY").unwrap_or_else(|| fresh_binary("reaper-actions"))
        })
        .clone()
}

/// The debug `reaperctl` binary, built (with `reaper`) when missing or stale.
pub fn reaperctl_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| fresh_binary("reaperctl")).clone()
}

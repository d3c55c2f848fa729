//! Small shared pieces: loopback ports, a blocking HTTP agent, log tails.

use std::collections::HashSet;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Ports this process has already handed out. The kernel may give the same ephemeral port to two
/// `bind(:0)` calls once the first listener is dropped; two moto servers started by parallel tests
/// must not race for it.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A loopback port that was free a moment ago and that this process has not handed out before.
/// For servers we spawn as other processes; servers in this process bind `:0` directly.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("reaper-e2e: cannot bind any port on 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        drop(listener);
        let mut ports = handed_out().lock().unwrap_or_else(|p| p.into_inner());
        if ports.insert(port) {
            return port;
        }
    }
    panic!("reaper-e2e: no fresh port on 127.0.0.1 after 50 tries");
}

/// A blocking HTTP agent that reports every status as a response (not an error) and never waits
/// longer than `timeout` for one exchange.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .new_agent()
}

/// The last `lines` lines of a text file, for panic messages ("" if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    tail_str(&text, lines)
}

pub fn tail_str(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

//! Runs a child process and measures it whole: wall time, user and system CPU, peak RSS
//! (`wait4`'s rusage of that one child, as `/usr/bin/time` reports it).

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What one child process cost.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Exit code; `None` when killed by a signal (the watchdog's included).
    pub code: Option<i32>,
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
    /// Peak resident set size, bytes.
    pub max_rss: u64,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Measured {
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs `command` to its end (killed after `limit`), its output captured in files (no pipe can
/// fill up and stall it).
pub fn run(mut command: Command, limit: Duration) -> Measured {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let base = std::env::temp_dir().join(format!("reaper-bench-{}-{n}", std::process::id()));
    let (out_path, err_path): (PathBuf, PathBuf) =
        (base.with_extension("out"), base.with_extension("err"));
    let out =
        File::create(&out_path).unwrap_or_else(|e| panic!("bench: {}: {e}", out_path.display()));
    let err =
        File::create(&err_path).unwrap_or_else(|e| panic!("bench: {}: {e}", err_path.display()));
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    let started = Instant::now();
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("bench: cannot run {command:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let reaped = Arc::new(AtomicBool::new(false));
    let fired = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (reaped, fired) = (Arc::clone(&reaped), Arc::clone(&fired));
        thread::spawn(move || {
            let end = Instant::now() + limit;
            while Instant::now() < end {
                if reaped.load(Ordering::SeqCst) {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            if !reaped.load(Ordering::SeqCst) {
                fired.store(true, Ordering::SeqCst);
                // Our own child, by its PID, not yet reaped (so the PID is still ours).
                // SAFETY: plain syscall on a pid we spawned.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; std's Child is never waited on afterwards.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    reaped.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    drop(child);
    let code = if rc == pid && libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    };
    let read = |p: &PathBuf| {
        let text = fs::read(p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let _ = fs::remove_file(p);
        text
    };
    Measured {
        code,
        wall,
        user: timeval(usage.ru_utime),
        sys: timeval(usage.ru_stime),
        // Linux reports ru_maxrss in kilobytes.
        max_rss: usage.ru_maxrss as u64 * 1024,
        stdout: read(&out_path),
        stderr: read(&err_path),
        timed_out: fired.load(Ordering::SeqCst),
    }
}

/// Peak RSS (`VmHWM`) and user+system CPU of a live process, from `/proc` (for a process another
/// harness owns, read just before it is killed).
pub fn proc_usage(pid: u32) -> Option<(u64, Duration)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((hwm_kb * 1024, Duration::from_millis(ticks * 1000 / hz)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_that_allocates_and_burns_cpu() {
        // sh: a busy loop, then exit 3; its peak RSS is a few MB, its CPU is not zero.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done; exit 3",
        ]);
        let m = run(cmd, Duration::from_secs(30));
        assert_eq!(m.code, Some(3));
        assert_eq!(m.stdout.trim(), "done");
        assert!(m.cpu() > Duration::from_millis(10), "{m:?}");
        assert!(m.max_rss > 500_000 && m.max_rss < 100_000_000, "{m:?}");
        assert!(m.wall >= m.user / 2);
    }

    #[test]
    fn the_watchdog_kills_a_child_past_its_limit() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let m = run(cmd, Duration::from_millis(300));
        assert!(m.timed_out);
        assert_eq!(m.code, None);
        assert!(m.wall < Duration::from_secs(5));
    }

    #[test]
    fn proc_usage_reads_our_own_process() {
        let (rss, _cpu) = proc_usage(std::process::id()).expect("/proc is readable");
        assert!(rss > 1_000_000);
    }
}

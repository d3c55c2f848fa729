//! `make evidence-bench`: times the real `reaperctl report --html` over a records store (the
//! 10 000 files `scripts/gen-evidence` writes) and checks its totals against the generator's
//! exact `sums.json`, field by field; exit 1 on any difference or when it takes 30 s or more.
//!
//! Usage: evidence-bench REAPERCTL DIR (DIR holds `evidence/` and `sums.json`).

use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// Money as units of 1e-10 dollars, so `"12.50"`, `"12.5"` and `12.5` compare equal exactly.
fn units(v: &Value) -> Option<i128> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    if frac.len() > 10 {
        return None;
    }
    Some(
        whole.parse::<i128>().ok()? * 10_000_000_000
            + format!("{frac:0<10}").parse::<i128>().ok()?,
    )
}

/// `(account, month)` → the listed fields, money as units.
fn rows(v: &Value, list: &str, fields: &[&str]) -> BTreeMap<(String, String), Vec<Option<i128>>> {
    v[list]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let key = (
                r["account"].as_str().unwrap_or_default().to_string(),
                r["month"].as_str().unwrap_or_default().to_string(),
            );
            (key, fields.iter().map(|f| units(&r[*f])).collect())
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, reaperctl, dir] = args.as_slice() else {
        eprintln!("usage: evidence-bench REAPERCTL DIR");
        return ExitCode::from(2);
    };
    let sums: Value = match std::fs::read(format!("{dir}/sums.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{dir}/sums.json: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let out = Command::new(reaperctl)
        .args(["report", "--source", dir, "--output", "json", "--html"])
        .arg(format!("{dir}/report.html"))
        .output()
        .expect("run reaperctl");
    let took = started.elapsed();
    if !out.status.success() {
        eprintln!(
            "reaperctl report failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return ExitCode::from(1);
    }
    let got: Value = serde_json::from_slice(&out.stdout).expect("reaperctl's JSON");
    let mut ok = true;
    for (list, fields) in [
        (
            "months",
            &[
                "terminated",
                "stopped",
                "stamped",
                "failed",
                "saved_per_month",
            ][..],
        ),
        ("compliance", &["compliant", "subject"][..]),
    ] {
        let (want, have) = (rows(&sums, list, fields), rows(&got, list, fields));
        if want.is_empty() {
            println!("sums.json has no {list}");
            ok = false;
        }
        for (key, w) in &want {
            if have.get(key) != Some(w) {
                println!(
                    "{list} {key:?}: sums.json {w:?}, reaperctl {:?}",
                    have.get(key)
                );
                ok = false;
            }
        }
        for key in have.keys().filter(|k| !want.contains_key(*k)) {
            println!("{list} {key:?}: only in reaperctl's totals");
            ok = false;
        }
    }
    println!(
        "reaperctl report --html: {} files in {:.2} s (limit {} s); totals {} sums.json",
        got["files"],
        took.as_secs_f64(),
        LIMIT.as_secs(),
        if ok { "equal to" } else { "DIFFER from" }
    );
    if ok && took < LIMIT {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

//! `reaperctl report`: the totals of an evidence store (docs/EVIDENCE.md) as a table, JSON or
//! one HTML page. Wiring only: the source's adapter, the use case, a renderer, the output.

use crate::flags::Output;
use crate::session::fail;
use reaper::adapters::{folder::Folder, s3::S3Evidence, CallCounter};
use reaper::app::evidence::{report, Evidence, Query};
use reaper::ports::EvidenceStore;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub(crate) async fn run(
    source: &str,
    query: Query,
    output: Output,
    html: Option<PathBuf>,
    profile: Option<String>,
    region: Option<String>,
) -> ExitCode {
    if let (Some(since), Some(until)) = (query.since, query.until) {
        if since > until {
            return fail(format!(
                "--since {since} is after --until {until}; the range is since..=until"
            ));
        }
    }
    let result = if let Some(rest) = source.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return fail(format!(
                "--source {source:?}: no bucket; write s3://BUCKET[/PREFIX] or a folder"
            ));
        }
        let sdk = match crate::session::sdk_for(region, profile).await {
            Ok(sdk) => sdk,
            Err(code) => return code,
        };
        let store = S3Evidence::from_sdk(&sdk, &CallCounter::default(), bucket.into(), prefix);
        gather(&store, &query).await
    } else {
        let dir = PathBuf::from(source);
        if !dir.is_dir() {
            return fail(format!(
                "--source {source:?} is neither s3://BUCKET[/PREFIX] nor an existing folder"
            ));
        }
        gather(&Folder::new(dir), &query).await
    };
    let evidence = match result {
        Ok(e) => e,
        Err(why) => {
            anstream::eprintln!("reaperctl: {why}");
            return ExitCode::from(1);
        }
    };
    if evidence.malformed_lines > 0 {
        anstream::eprintln!(
            "reaperctl: {} malformed lines were not counted; the first:",
            evidence.malformed_lines
        );
        for m in &evidence.malformed {
            anstream::eprintln!("  {}:{}: {}", m.file, m.line, m.why);
        }
    }
    if let Some(path) = html {
        let page = reaper::render::evidence_html::page(&evidence);
        if let Err(e) = std::fs::write(&path, page) {
            return fail(format!("--html {}: {e}", path.display()));
        }
    }
    match output {
        Output::Json => match serde_json::to_string_pretty(&evidence) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(format!("the totals could not be written as JSON: {e}")),
        },
        Output::Table => print!("{}", reaper::render::evidence_html::table(&evidence)),
    }
    ExitCode::SUCCESS
}

/// The use case, with progress on stderr: a live count on a terminal, else a line every 10 s.
async fn gather<S: EvidenceStore>(store: &S, query: &Query) -> Result<Evidence, String> {
    let tty = std::io::stderr().is_terminal();
    let mut last = Instant::now();
    let mut progress = move |read: usize, total: usize| {
        if tty {
            eprint!("\rreading records files: {read}/{total}");
            if read == total {
                eprintln!();
            }
        } else if last.elapsed() >= Duration::from_secs(10) || (read == total && total > 0) {
            last = Instant::now();
            eprintln!("reading records files: {read}/{total}");
        }
    };
    report(store, query, &mut progress).await
}

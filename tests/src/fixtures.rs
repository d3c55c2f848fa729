//! Event fixtures in `tests/fixtures/` (also usable with `cargo lambda invoke --data-file`).

use std::fs;
use std::path::PathBuf;

/// `tests/fixtures/`
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The fixture `name` (with or without `.json`) as JSON. Panics if it is missing or not JSON.
pub fn fixture(name: &str) -> serde_json::Value {
    let file = if name.ends_with(".json") {
        name.to_owned()
    } else {
        format!("{name}.json")
    };
    let path = fixtures_dir().join(file);
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reaper-e2e: cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("reaper-e2e: fixture {} is not JSON: {e}", path.display()))
}

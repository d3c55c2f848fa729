//! The evidence store's totals (docs/EVIDENCE.md "Totals"), as `reaperctl report` prints them and
//! the HTML page draws them: plain data, filled by `app::evidence`, rendered by
//! `render::evidence_html`.

use crate::policy::price::Usd;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One account's month of live runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MonthTotal {
    pub account: String,
    pub month: String,
    pub terminated: u64,
    pub stopped: u64,
    pub stamped: u64,
    pub failed: u64,
    /// Exact, as a string with every digit that counts (`"784.97"`), like the report's money.
    pub saved_per_month: Usd,
}

/// One account's month of compliance: `compliant / subject` over the live runs' `run` records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Compliance {
    pub account: String,
    pub month: String,
    pub compliant: u64,
    pub subject: u64,
    /// `compliant / subject`, four decimals; `null` without subjects.
    pub share: Option<f64>,
}

/// A `keep` instance coming due, from the latest run of its account and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upcoming {
    pub account: String,
    pub region: String,
    pub instance_id: String,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub termination_date: String,
    pub instance_type: Option<String>,
}

/// Live actions on one day, for the chart of actions per day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DayActions {
    pub terminated: u64,
    pub stopped: u64,
    pub stamped: u64,
    pub failed: u64,
}

/// One account's month of owner actions (keep buttons and links), from the `clicks/` records
/// (docs/EVIDENCE.md "Owner actions"). `account` is `(no valid token)` for a verified Slack user's
/// click on a button whose token was not valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OwnerActions {
    pub account: String,
    pub month: String,
    pub clicks: u64,
    pub kept: u64,
    /// Refused: not the owner, the date changed, no announcement, the rules, the token.
    pub refused: u64,
    /// The member account could not be read or written.
    pub failed: u64,
    /// Days added by the kept clicks.
    pub days_kept: u64,
}

/// A line that is not a record, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Malformed {
    pub file: String,
    pub line: usize,
    pub why: String,
}

/// The totals of the records read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    pub since: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    pub accounts: Vec<String>,
    pub months: Vec<MonthTotal>,
    pub compliance: Vec<Compliance>,
    pub upcoming: Vec<Upcoming>,
    pub files: u64,
    pub records: u64,
    pub malformed_lines: u64,
    /// The first malformed lines, quoted by file and line number.
    pub malformed: Vec<Malformed>,
    /// Live actions per day (`dt`), for the HTML page.
    #[serde(skip)]
    pub days: BTreeMap<String, DayActions>,
    /// Owner actions per account and month, and the click records read.
    pub owner_actions: Vec<OwnerActions>,
    pub click_records: u64,
}

//! What a run is asked to do, built in one place from a Lambda trigger or from reaperctl's flags.
//! The only code that decides live vs dry run; the rest of the program asks `RunRequest::mode`.

use crate::event::{EventError, Trigger};
use crate::policy::VerdictKind;
use crate::ports::Deadline;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display, strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Mode {
    Live,
    DryRun,
}

/// Who started the run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display, strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum TriggerKind {
    Schedule,
    InstanceState,
    Manual,
    Cli,
}

/// Which verdicts a run may act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A full sweep (schedule, manual, CLI): every action, within the caps.
    Sweep,
    /// An instance being launched or started: stamps at once; an untagged instance is left to
    /// the scheduled sweep (its grace period).
    LaunchEvent,
}

/// Why a launch event stops an expired instance rather than terminating it (SPEC §7).
pub(crate) const STOPPED_AT_LAUNCH: &str = "a launch event never terminates: it stops the instance instead, with reaper: reason tags; the next scheduled sweep terminates it within its caps";

impl Scope {
    /// Why a verdict is not acted on as judged in this scope, if it is not.
    pub(crate) fn holds_back(self, kind: VerdictKind) -> Option<&'static str> {
        match (self, kind) {
            (Scope::LaunchEvent, VerdictKind::Stop) => Some("left to the scheduled sweep"),
            // Terminations happen only in sweeps, where the caps hold: a burst of restarts of
            // expired machines cannot bypass a tripped circuit.
            (Scope::LaunchEvent, VerdictKind::Terminate) => Some(STOPPED_AT_LAUNCH),
            _ => None,
        }
    }

    /// A verdict this scope holds back but still acts on by stopping the instance.
    pub(crate) fn stops_instead(self, kind: VerdictKind) -> bool {
        self == Scope::LaunchEvent && kind == VerdictKind::Terminate
    }
}

/// Private fields: a request is made by one of the constructors below, so nothing outside this
/// module can turn a dry run live (a preview is `preview()`, a new request, not a field flipped).
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub(crate) mode: Mode,
    pub(crate) trigger: TriggerKind,
    pub(crate) scope: Scope,
    /// The time verdicts are computed for: the clock, or a forecast's `at`.
    pub(crate) now: DateTime<Utc>,
    pub(crate) forecast: bool,
    /// Judge only these instances.
    pub(crate) ids: Option<Vec<String>>,
    pub(crate) deadline: Deadline,
    /// Things about the request worth telling the reader of the report.
    pub(crate) warnings: Vec<String>,
}

impl RunRequest {
    /// A Lambda invocation. `livemode` is what the function's LIVEMODE says: a payload can force a
    /// dry run but never turn live mode on.
    pub(crate) fn from_trigger(
        trigger: &Trigger,
        livemode: bool,
        clock: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<Self, EventError> {
        let mut req = RunRequest::scheduled(livemode, clock, deadline);
        match trigger {
            Trigger::Schedule => {}
            Trigger::InstanceState { instance_id, state } => {
                req.trigger = TriggerKind::InstanceState;
                req.scope = Scope::LaunchEvent;
                // The rule sends only `pending`; any other state has nothing to stamp at launch.
                if state == "pending" {
                    req.ids = Some(vec![instance_id.clone()]);
                } else {
                    req.ids = Some(Vec::new());
                    req.warnings.push(format!(
                        "state-change event for {instance_id} in state {state:?} ignored; only \"pending\" is judged at once"
                    ));
                }
            }
            Trigger::Manual(manual) => {
                req.trigger = TriggerKind::Manual;
                if manual.dry_run {
                    req.mode = Mode::DryRun;
                }
                if let Some(at) = manual.at {
                    if req.mode == Mode::Live {
                        return Err(EventError::AtInLiveMode);
                    }
                    req.now = at;
                    req.forecast = true;
                }
                req.ids = manual.instance_ids.clone();
            }
        }
        Ok(req)
    }

    /// reaperctl: live only when `--live` was given (LIVEMODE is not read); `at` forecasts in a
    /// dry run only.
    pub fn from_cli(
        live: bool,
        at: Option<DateTime<Utc>>,
        ids: Option<Vec<String>>,
        clock: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<Self, String> {
        if live && at.is_some() {
            return Err("--at forecasts only in a dry run; drop --live or --at".into());
        }
        Ok(RunRequest {
            mode: if live { Mode::Live } else { Mode::DryRun },
            trigger: TriggerKind::Cli,
            scope: Scope::Sweep,
            now: at.unwrap_or(clock),
            forecast: at.is_some(),
            ids,
            deadline,
            warnings: Vec::new(),
        })
    }

    /// A scheduled sweep, as the hourly EventBridge rule starts it.
    pub fn scheduled(livemode: bool, clock: DateTime<Utc>, deadline: Deadline) -> Self {
        RunRequest {
            mode: if livemode { Mode::Live } else { Mode::DryRun },
            trigger: TriggerKind::Schedule,
            scope: Scope::Sweep,
            now: clock,
            forecast: false,
            ids: None,
            deadline,
            warnings: Vec::new(),
        }
    }

    /// The same run as a dry run: what it would change, for a person to confirm first.
    pub fn preview(&self) -> Self {
        RunRequest {
            mode: Mode::DryRun,
            ..self.clone()
        }
    }

    pub fn is_live(&self) -> bool {
        self.mode == Mode::Live
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Manual;

    fn manual(dry_run: bool, at: bool) -> Trigger {
        Trigger::Manual(Manual {
            dry_run,
            at: at.then(|| "2031-01-01T00:00:00Z".parse().unwrap()),
            instance_ids: None,
        })
    }

    fn req(trigger: &Trigger, livemode: bool) -> Result<RunRequest, EventError> {
        RunRequest::from_trigger(trigger, livemode, Utc::now(), Deadline::NONE)
    }

    #[test]
    fn a_payload_cannot_turn_live_mode_on_and_at_needs_a_dry_run() {
        assert_eq!(
            req(&manual(false, false), false).unwrap().mode,
            Mode::DryRun
        );
        assert_eq!(req(&manual(false, false), true).unwrap().mode, Mode::Live);
        assert_eq!(req(&manual(true, false), true).unwrap().mode, Mode::DryRun);
        assert_eq!(
            req(&manual(false, true), true).unwrap_err(),
            EventError::AtInLiveMode
        );
        let forecast = req(&manual(true, true), true).unwrap();
        assert!(forecast.mode == Mode::DryRun && forecast.forecast);
        assert_eq!(forecast.now.to_rfc3339(), "2031-01-01T00:00:00+00:00");
        assert_eq!(req(&Trigger::Schedule, true).unwrap().mode, Mode::Live);
    }

    #[test]
    fn a_launch_event_judges_one_pending_instance_and_never_stops() {
        let event = |state: &str| Trigger::InstanceState {
            instance_id: "i-0123456789abcdef0".into(),
            state: state.into(),
        };
        let pending = req(&event("pending"), true).unwrap();
        assert_eq!(pending.scope, Scope::LaunchEvent);
        assert_eq!(pending.ids, Some(vec!["i-0123456789abcdef0".to_string()]));
        assert!(pending.scope.holds_back(VerdictKind::Stop).is_some());
        assert!(pending.scope.holds_back(VerdictKind::Stamp).is_none());
        assert!(pending.scope.holds_back(VerdictKind::Terminate).is_some());
        assert!(pending.scope.stops_instead(VerdictKind::Terminate));
        assert!(!Scope::Sweep.stops_instead(VerdictKind::Terminate));
        let running = req(&event("running"), true).unwrap();
        assert_eq!(running.ids, Some(Vec::new()));
        assert!(running.warnings[0].contains("ignored"));
    }

    #[test]
    fn the_cli_is_live_only_with_live_and_never_forecasts_live() {
        let now = Utc::now();
        let dry = RunRequest::from_cli(false, None, None, now, Deadline::NONE).unwrap();
        assert_eq!((dry.mode, dry.trigger), (Mode::DryRun, TriggerKind::Cli));
        assert!(RunRequest::from_cli(true, Some(now), None, now, Deadline::NONE).is_err());
        assert!(RunRequest::from_cli(true, None, None, now, Deadline::NONE)
            .unwrap()
            .is_live());
    }

    #[test]
    fn a_preview_is_the_same_run_dry() {
        let now = Utc::now();
        let ids = Some(vec!["i-1".to_string()]);
        let live = RunRequest::from_cli(true, None, ids.clone(), now, Deadline::NONE).unwrap();
        let preview = live.preview();
        assert_eq!(preview.mode(), Mode::DryRun);
        assert!(live.is_live(), "the request itself is unchanged");
        assert_eq!(
            (preview.trigger, preview.now, preview.ids),
            (TriggerKind::Cli, now, ids)
        );
    }

    #[test]
    fn names_are_the_serde_names() {
        for (mode, name) in [(Mode::Live, "live"), (Mode::DryRun, "dry-run")] {
            assert_eq!(mode.to_string(), name);
            assert_eq!(serde_json::to_value(mode).unwrap(), name);
        }
        assert_eq!(TriggerKind::InstanceState.to_string(), "instance-state");
        assert_eq!(
            serde_json::to_value(TriggerKind::InstanceState).unwrap(),
            "instance-state"
        );
    }
}

//! Admission: whether the node may take work now. Every bid and every match first asks an
//! [`AdmissionGate`]; a decision always carries its reasons, so an operator can see why the
//! node is (not) taking work. The energy module's gate is one implementation (in
//! `energy::gate`); this file holds the trait and the two simple gates, `always` and `sim`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::poco::TaskId;

/// What a piece of work would cost: enough to decide whether the energy is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskEstimate {
    /// Category id.
    pub category: u64,
    /// Longest the app may run, in seconds.
    pub max_runtime_s: u64,
    /// Tasks in the work.
    pub volume: u64,
    /// Seconds from now until the work must be contributed.
    pub deadline_in_s: u64,
    /// The app, when known (the energy gate learns each app's power).
    pub app: Option<String>,
}

/// A yes or no, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the work may be taken.
    pub admit: bool,
    /// Why, in words.
    pub reasons: Vec<String>,
}

impl Decision {
    /// A yes.
    pub fn yes(reason: impl Into<String>) -> Self {
        Self {
            admit: true,
            reasons: vec![reason.into()],
        }
    }

    /// A no.
    pub fn no(reason: impl Into<String>) -> Self {
        Self {
            admit: false,
            reasons: vec![reason.into()],
        }
    }
}

/// Where a task's energy came from: what the gate measured while its app ran, kept in the
/// journal and as `energy.json` beside the task's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyReceipt {
    /// The task.
    pub task: TaskId,
    /// Its app, when known.
    pub app: Option<String>,
    /// When the app started (energy time, unix seconds).
    pub started_s: f64,
    /// When it stopped.
    pub finished_s: f64,
    /// Energy the app drew above the node's idle draw (Wh).
    pub wh_used: f64,
    /// Of which the panel gave (Wh).
    pub pv_wh: f64,
    /// Of which the battery gave (Wh).
    pub battery_wh: f64,
    /// The panel's share (%).
    pub pv_share_pct: f64,
    /// The battery's share (%).
    pub battery_share_pct: f64,
    /// Whether load readings came in while the app ran (else the planned power stands in for
    /// the split between panel and battery).
    pub measured: bool,
    /// The app's power above idle this run stands for (W): measured, or assumed.
    pub power_w: f64,
    /// Where `power_w` comes from: `measured` (enough readings over enough time to learn the
    /// app's power from); `floor` (measured lower than a quarter of `busy_w - idle_w`, which no
    /// real app draws: a load reading that does not move); or `assumed` (too few readings: the
    /// planned power, nothing learned).
    pub power_basis: String,
    /// What the forecast promised when the app started.
    pub forecast: ReceiptForecast,
}

/// The forecast part of an [`EnergyReceipt`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptForecast {
    /// Which forecast (`clear-sky`, `open-meteo`, `none`).
    pub source: String,
    /// The quantile the gate plans with.
    pub quantile: f64,
    /// PV energy the forecast gave the run's window at that quantile (Wh).
    pub pv_wh_for_the_run: f64,
    /// The power the gate planned for the app (W).
    pub planned_power_w: f64,
}

/// Decides whether the node may take work now. `now_s` is unix time in seconds.
pub trait AdmissionGate: Send + Sync {
    /// The decision for `estimate` at `now_s`.
    fn admit(&self, estimate: &TaskEstimate, now_s: u64) -> Decision;

    /// A task of admitted work is taken (its deal matched) but not running yet: the gate plans
    /// it until it starts or is dropped with [`task_finished`](Self::task_finished).
    fn task_admitted(&self, _task: TaskId, _estimate: &TaskEstimate, _now_s: f64) {}

    /// A task of admitted work starts running: the gate counts it against its budget and
    /// measures it until [`task_finished`](Self::task_finished).
    fn task_started(&self, _task: TaskId, _estimate: &TaskEstimate, _now_s: f64) {}

    /// The task's app has stopped (or the task was dropped before it ran); returns its energy
    /// receipt when it ran and the gate keeps them.
    fn task_finished(&self, _task: TaskId, _now_s: f64) -> Option<EnergyReceipt> {
        None
    }

    /// Why running apps should be frozen now (the battery under its reserve and PV short), if
    /// they should; `None` lets them run.
    fn pause_reason(&self) -> Option<String> {
        None
    }

    /// Why the node must stop now and power off (a low-voltage warning), if it must.
    fn power_off_reason(&self) -> Option<String> {
        None
    }

    /// Tells the gate whether the node holds work the gate does not see (tasks past their
    /// computation, an open bid), every round: a gate that plans power-offs keeps the node on
    /// while it does.
    fn node_holds_work(&self, _holds: bool) {}

    /// The gate's state for `pew energy status` and logs.
    fn status(&self, _now_s: u64) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// The battery's state of charge (%), when the gate knows one (for the status line).
    fn battery_soc_pct(&self, _now_s: u64) -> Option<f64> {
        None
    }

    /// The gate's own time at the wall-clock time `wall_s` (unix seconds): the same, except
    /// for a replayed trace, which runs faster. The node's history is kept in this time, so
    /// its plots line up with the readings and the forecast.
    fn energy_time_s(&self, wall_s: f64) -> f64 {
        wall_s
    }
}

/// Admits everything (a node on mains power, or tests).
pub struct AlwaysGate;

impl AdmissionGate for AlwaysGate {
    fn admit(&self, _: &TaskEstimate, _: u64) -> Decision {
        Decision::yes("gate `always`: every task is admitted")
    }
}

/// A simulated sun: surplus inside the configured windows of a repeating period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimGate {
    /// Period of the schedule (86 400 for a day).
    pub period_s: u64,
    /// Surplus windows `[start, end)` in seconds within the period.
    pub windows: Vec<(u64, u64)>,
    /// Unix time the period is counted from (0: UTC midnight; the node's start for tests).
    pub epoch_s: u64,
}

/// A malformed surplus window.
#[derive(Debug, thiserror::Error)]
#[error("surplus window `{0}` is not START-END seconds within the period (e.g. 21600-64800)")]
pub struct WindowError(String);

impl SimGate {
    /// Parses windows like `21600-64800` (06:00 to 18:00).
    pub fn parse_windows(
        windows: &[String],
        period_s: u64,
    ) -> Result<Vec<(u64, u64)>, WindowError> {
        windows
            .iter()
            .map(|w| {
                let (a, b) = w.split_once('-').ok_or_else(|| WindowError(w.clone()))?;
                let start: u64 = a.trim().parse().map_err(|_| WindowError(w.clone()))?;
                let end: u64 = b.trim().parse().map_err(|_| WindowError(w.clone()))?;
                if start >= end || end > period_s {
                    return Err(WindowError(w.clone()));
                }
                Ok((start, end))
            })
            .collect()
    }

    /// Seconds of surplus left in the current window at `now_s`, or `None` outside windows.
    pub fn surplus_left(&self, now_s: u64) -> Option<u64> {
        let position = now_s.saturating_sub(self.epoch_s) % self.period_s.max(1);
        self.windows
            .iter()
            .find(|(start, end)| (*start..*end).contains(&position))
            .map(|(_, end)| end - position)
    }
}

impl AdmissionGate for SimGate {
    fn admit(&self, estimate: &TaskEstimate, now_s: u64) -> Decision {
        match self.surplus_left(now_s) {
            None => Decision::no("simulated sun: no surplus now"),
            Some(left) if left < estimate.max_runtime_s.min(estimate.deadline_in_s) => {
                Decision::no(format!(
                    "simulated sun: {left} s of surplus left, the task may need {} s",
                    estimate.max_runtime_s
                ))
            }
            Some(left) => Decision::yes(format!("simulated sun: surplus for {left} more s")),
        }
    }
}

/// A shared gate is a gate: the node and the energy module's runtime hold the same one.
impl<T: AdmissionGate> AdmissionGate for Arc<T> {
    fn admit(&self, estimate: &TaskEstimate, now_s: u64) -> Decision {
        (**self).admit(estimate, now_s)
    }
    fn task_admitted(&self, task: TaskId, estimate: &TaskEstimate, now_s: f64) {
        (**self).task_admitted(task, estimate, now_s)
    }
    fn task_started(&self, task: TaskId, estimate: &TaskEstimate, now_s: f64) {
        (**self).task_started(task, estimate, now_s)
    }
    fn task_finished(&self, task: TaskId, now_s: f64) -> Option<EnergyReceipt> {
        (**self).task_finished(task, now_s)
    }
    fn power_off_reason(&self) -> Option<String> {
        (**self).power_off_reason()
    }
    fn node_holds_work(&self, holds: bool) {
        (**self).node_holds_work(holds)
    }
    fn pause_reason(&self) -> Option<String> {
        (**self).pause_reason()
    }
    fn status(&self, now_s: u64) -> serde_json::Value {
        (**self).status(now_s)
    }
    fn battery_soc_pct(&self, now_s: u64) -> Option<f64> {
        (**self).battery_soc_pct(now_s)
    }

    fn energy_time_s(&self, wall_s: f64) -> f64 {
        (**self).energy_time_s(wall_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(runtime: u64) -> TaskEstimate {
        TaskEstimate {
            category: 0,
            max_runtime_s: runtime,
            volume: 1,
            deadline_in_s: 2100,
            app: None,
        }
    }

    #[test]
    fn the_sim_gate_opens_only_inside_windows_with_time_to_finish() {
        let gate = SimGate {
            period_s: 100,
            windows: SimGate::parse_windows(&["10-60".into()], 100).unwrap(),
            epoch_s: 1000,
        };
        assert!(!gate.admit(&estimate(5), 1005).admit, "before the window");
        assert!(gate.admit(&estimate(5), 1010).admit);
        assert!(
            !gate.admit(&estimate(30), 1040).admit,
            "20 s left, 30 s needed"
        );
        assert!(
            !gate.admit(&estimate(5), 1060).admit,
            "window end is exclusive"
        );
        assert!(gate.admit(&estimate(5), 1115).admit, "the schedule repeats");
        let no = gate.admit(&estimate(5), 1070);
        assert!(no.reasons[0].contains("no surplus"), "{no:?}");
    }

    #[test]
    fn malformed_windows_are_refused() {
        for bad in ["10", "60-10", "a-b", "0-200"] {
            assert!(SimGate::parse_windows(&[bad.into()], 100).is_err(), "{bad}");
        }
    }

    #[test]
    fn always_admits_with_a_reason() {
        let decision = AlwaysGate.admit(&estimate(36000), 0);
        assert!(decision.admit && !decision.reasons.is_empty());
    }
}

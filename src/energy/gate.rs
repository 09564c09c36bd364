//! The energy module as the node's admission gate: it keeps the battery estimate, the
//! forecaster and the work in progress up to date from each [`Sample`], answers the node's
//! "may I take this work?" with [`budget::check`](super::budget::check), and writes an energy
//! receipt for every task it measured.
//!
//! Time: everything inside runs on the *energy clock*, the time of the samples. For hardware
//! that is the wall clock; a trace replayed at N times real speed runs N times faster, and the
//! node's durations (run times, deadlines) are scaled by N on the way in.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::battery::{BatterySpec, Estimator};
use super::budget::{BatteryModel, BudgetInput, Hysteresis, PlannedJob, Verdict};
use super::forecast::{Forecast, Forecaster, WeatherForecast, planning_pv};
use super::sample::Sample;
use crate::admission::{AdmissionGate, Decision, EnergyReceipt, ReceiptForecast, TaskEstimate};
use crate::poco::TaskId;

/// Maps wall time to energy time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Clock {
    /// Wall time (unix seconds) of the mapping's origin.
    pub wall_start_s: f64,
    /// Energy time at that origin.
    pub energy_start_s: f64,
    /// Energy seconds per wall second.
    pub speed: f64,
}

impl Clock {
    /// The wall clock itself (hardware sources).
    pub fn wall() -> Self {
        Self {
            wall_start_s: 0.0,
            energy_start_s: 0.0,
            speed: 1.0,
        }
    }

    /// Energy time at wall time `wall_s`.
    pub fn energy_time(&self, wall_s: f64) -> f64 {
        self.energy_start_s + (wall_s - self.wall_start_s) * self.speed
    }
}

/// The fixed figures the gate works with.
#[derive(Debug, Clone, Serialize)]
pub struct GateConfig {
    /// The battery for the estimator.
    pub spec: BatterySpec,
    /// The battery for the planner (capacity, reserve, efficiencies).
    pub model: BatteryModel,
    /// The node's idle draw.
    pub idle_w: f64,
    /// The node's full-load draw (an unknown app's power is `busy_w - idle_w`).
    pub busy_w: f64,
    /// The forecast quantile planned with.
    pub quantile: f64,
    /// The hysteresis band, Wh.
    pub hysteresis_wh: f64,
    /// Samples older than this (energy seconds) are stale: no work is admitted on them.
    pub stale_after_s: f64,
    /// A gap between samples longer than this (energy seconds) is not integrated.
    pub max_gap_s: f64,
    /// A measured state of charge under this stops the node and powers it off (0: never).
    pub critical_soc: f64,
}

/// A task being measured for its receipt.
#[derive(Debug, Clone, Serialize)]
struct Running {
    app: Option<String>,
    power_w: f64,
    runtime_s: f64,
    deadline_s: f64,
    started_s: f64,
    energy_wh: f64,
    pv_wh: f64,
    battery_wh: f64,
    forecast_wh: f64,
    forecast_source: String,
    accounted_until_s: f64,
    measured_load_w: f64,
    measured_s: f64,
    load_samples: u32,
    /// Taken on the panel alone: it runs only while PV carries it until it is due.
    solar_only: bool,
    /// Once due, it stays due: it runs to its end, on charge above the reserve if need be.
    due: bool,
}

/// Time kept after a task's computation for its result to be uploaded and contributed
/// before the deadline (energy time is scaled by the clock's speed).
const FINISHING_S: f64 = 300.0;

impl Running {
    /// Whether work taken on the panel alone is due: its deadline, less the time its result
    /// needs after the computation, is closer than twice the most work it may have left. It
    /// may then draw battery charge above the reserve (never the reserve itself) rather than
    /// miss its deadline, and stays due until it ends. `frozen_s`: how long it has been paused
    /// now (not yet moved into `started_s`); `finishing_s`: [`FINISHING_S`] in energy time.
    fn becomes_due(&mut self, now_s: f64, frozen_s: f64, finishing_s: f64) -> bool {
        let left = (self.runtime_s - (now_s - self.started_s - frozen_s)).max(0.0);
        self.due = self.due || self.deadline_s - finishing_s - now_s <= 2.0 * left;
        self.due
    }
}

/// A task taken and not started yet.
#[derive(Debug, Clone)]
struct Queued {
    /// As the plan counts it.
    job: PlannedJob,
    /// Taken under a solar-carried yes: once running, it runs only while the panel carries it.
    solar_only: bool,
}

/// What survives a restart: the battery estimate and what each app draws.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PersistentState {
    /// State of charge, 0..=1.
    pub soc: Option<f64>,
    /// Energy time of the estimate.
    pub time_s: f64,
    /// Learned power above idle, per app address.
    pub app_power_w: HashMap<String, f64>,
    /// The forecaster with what it learned (used again only for the same site).
    #[serde(default)]
    pub forecaster: Option<Forecaster>,
}

/// Why the node must stop and power off before its battery (or SD card) is harmed.
#[derive(Debug, Clone, PartialEq)]
pub enum LowVoltage {
    /// A measured battery under `energy.critical_soc`.
    CriticalCharge {
        /// The state of charge (0..=1).
        soc: f64,
        /// The critical level (0..=1).
        critical: f64,
    },
    /// The board's input within 0.2 V of its own cut-off, from its readings.
    NearCutOff {
        /// The input voltage.
        input_v: f64,
        /// The board's cut-off.
        cut_off_v: f64,
    },
    /// The Witty Pi's own low-voltage warning.
    BoardWarning,
}

impl std::fmt::Display for LowVoltage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LowVoltage::CriticalCharge { soc, critical } => write!(
                f,
                "battery at {:.1} %, under the critical {:.1} %",
                soc * 100.0,
                critical * 100.0
            ),
            LowVoltage::NearCutOff { input_v, cut_off_v } => write!(
                f,
                "battery at {input_v:.2} V, within 0.2 V of the board's {cut_off_v:.1} V cut-off"
            ),
            LowVoltage::BoardWarning => {
                write!(
                    f,
                    "the Witty Pi reports its input near the low-voltage cut-off"
                )
            }
        }
    }
}

impl Serialize for LowVoltage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct State {
    estimator: Estimator,
    forecaster: Option<Forecaster>,
    forecast: Option<Forecast>,
    last: Option<Sample>,
    hysteresis: HashMap<(u64, u64), Hysteresis>,
    running: HashMap<String, Running>,
    queued: HashMap<String, Queued>,
    app_power_w: HashMap<String, f64>,
    last_decision: Option<Decision>,
    low_voltage: Option<LowVoltage>,
    power_off: Option<String>,
    paused: bool,
    paused_since: Option<f64>,
    rejected: u64,
    /// Whether the node's last yes came from the solar-carried rule: the tasks it brings run
    /// only while the panel carries them.
    solar_carried_yes: bool,
    /// Whether the running apps are paused for panel-only work (not for the reserve).
    paused_for_panel: bool,
    /// Whether the node holds work the gate does not see (tasks past their computation, a
    /// bid open); until the node first says, it is taken to.
    node_holds_work: bool,
    /// The time of the saved estimate this gate started from: the first reading after a
    /// power-off credits the charge the panel gave meanwhile.
    resume_from: Option<f64>,
}

/// The energy admission gate.
pub struct EnergyGate {
    config: GateConfig,
    clock: Clock,
    state: Mutex<State>,
}

/// Seconds of measured load a run needs before it teaches the gate its app's power.
const MIN_LEARNING_S: f64 = 20.0;
/// Load readings a run needs before it teaches the gate its app's power (a task shorter than
/// the poll interval has none of its own).
const MIN_LEARNING_SAMPLES: u32 = 3;
/// The least an app is taken to draw, as a share of `busy_w - idle_w`: a load reading that
/// does not move would otherwise teach 0 W, and the gate would plan that app as free.
const MIN_POWER_SHARE: f64 = 0.25;
/// Wall-clock times before this (2025-01-01) are a clock that lost track of time.
pub const SANE_WALL_CLOCK_S: f64 = 1_735_689_600.0;
/// How far the forecast reaches: as far as the longest contribution window (XL: 70 h), so
/// no deadline is planned on a forecast that stops short of it.
pub const FORECAST_HORIZON_S: f64 = 72.0 * 3600.0;
/// Forecast step.
pub const FORECAST_STEP_S: f64 = 300.0;
/// Seconds between forecast refreshes (energy time).
const FORECAST_EVERY_S: f64 = 300.0;

impl EnergyGate {
    /// A gate starting from `persisted` state (or the configured first-start SoC).
    pub fn new(
        config: GateConfig,
        clock: Clock,
        forecaster: Option<Forecaster>,
        persisted: PersistentState,
        initial_soc: f64,
    ) -> Self {
        // The state file is input like any other: a value that cannot be right is dropped.
        let soc = persisted
            .soc
            .filter(|s| s.is_finite())
            .unwrap_or(initial_soc);
        let estimator = Estimator::new(config.spec, soc);
        let resume_from = (persisted.soc.is_some() && persisted.time_s.is_finite())
            .then_some(persisted.time_s)
            .filter(|t| *t > 0.0);
        let forecaster = match (forecaster, persisted.forecaster) {
            (Some(fresh), Some(saved)) if saved.site() == fresh.site() => Some(saved.sanitized()),
            (fresh, _) => fresh,
        };
        let mut app_power_w = persisted.app_power_w;
        app_power_w.retain(|_, w| w.is_finite() && *w >= 0.0);
        Self {
            config,
            clock,
            state: Mutex::new(State {
                estimator,
                forecaster,
                forecast: None,
                last: None,
                hysteresis: HashMap::new(),
                running: HashMap::new(),
                queued: HashMap::new(),
                app_power_w,
                last_decision: None,
                low_voltage: None,
                power_off: None,
                paused: false,
                paused_since: None,
                rejected: 0,
                solar_carried_yes: false,
                paused_for_panel: false,
                node_holds_work: true,
                resume_from,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The energy clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// What to persist now.
    pub fn persistent_state(&self) -> PersistentState {
        let state = self.state();
        PersistentState {
            soc: Some(state.estimator.soc()),
            time_s: state.last.as_ref().map(|s| s.time_s).unwrap_or_default(),
            app_power_w: state.app_power_w.clone(),
            forecaster: state.forecaster.clone(),
        }
    }

    /// Hands in a fresh weather forecast.
    pub fn set_weather(&self, weather: WeatherForecast) {
        let mut state = self.state();
        let last_time = state.last.as_ref().map(|s| s.time_s);
        let Some(forecaster) = state.forecaster.as_mut() else {
            return;
        };
        if forecaster
            .weather()
            .is_some_and(|w| w.fetched_at_s == weather.fetched_at_s)
        {
            return; // the same forecast again (from the cache): nothing changes
        }
        forecaster.set_weather(weather);
        // Rebuilt at once: the gate never plans without a forecast in between.
        if let Some(now) = last_time {
            let forecast = forecaster.forecast(now, FORECAST_HORIZON_S, FORECAST_STEP_S);
            state.forecast = Some(forecast);
        }
    }

    /// Records that the source rejected a reading.
    pub fn note_rejected(&self, total: u64) {
        self.state().rejected = total;
    }

    /// A low-voltage warning: stop bidding, park, power off. The board's own warning replaces
    /// any other cause and stays until the node stops; the others lift on recovery.
    pub fn warn_low_voltage(&self, cause: LowVoltage) {
        let mut state = self.state();
        let replace = match &state.low_voltage {
            None => true,
            Some(LowVoltage::BoardWarning) => false,
            Some(_) => cause == LowVoltage::BoardWarning,
        };
        if replace {
            tracing::warn!(reason = %cause, "energy: low-voltage warning, no more work");
            state.low_voltage = Some(cause);
        }
    }

    /// Asks the node to stop and power off (the board will wake it).
    pub fn request_power_off(&self, reason: String) {
        let mut state = self.state();
        if state.power_off.is_none() {
            tracing::warn!(%reason, "energy: power-off requested");
            state.power_off = Some(reason);
        }
    }

    /// When to wake and whether to power off, from the forecast and the battery now.
    pub fn power_plan(&self, now_wall_s: f64) -> super::power::PowerPlan {
        let now = self.clock.energy_time(now_wall_s);
        let mut state = self.state();
        let admits = self.probe(&mut state, now).admit;
        self.plan_power(&state, now, admits)
    }

    /// The budget check for the status probe (one XS task of an unknown app), leaving the
    /// real hysteresis state as it was.
    fn probe(&self, state: &mut State, now: f64) -> Verdict {
        let probe = TaskEstimate {
            category: 0,
            max_runtime_s: 300,
            volume: 1,
            deadline_in_s: 2100,
            app: None,
        };
        let saved = state.hysteresis.clone();
        let verdict = self.verdict(state, &probe, now);
        state.hysteresis = saved;
        verdict
    }

    /// [`power_plan`](Self::power_plan) from a state already at hand, at the gate's time `now`,
    /// with whether the gate would take work now.
    fn plan_power(&self, state: &State, now: f64, admits: bool) -> super::power::PowerPlan {
        // The node's own last answer counts as much as the probe's (its hysteresis may be open
        // where the probe's is closed).
        let node_admits = state.last_decision.as_ref().is_some_and(|d| d.admit);
        let mut plan = super::power::plan(
            state.forecast.as_ref(),
            (admits || node_admits) && state.low_voltage.is_none(),
            self.config.busy_w,
            state.last.as_ref().and_then(|s| s.pv_w),
            now,
        );
        // Work taken is work to do: the node stays on for it (it pauses what the panel does
        // not carry), for tasks past their computation and for an open bid too.
        if !state.running.is_empty() || !state.queued.is_empty() || state.node_holds_work {
            plan.power_off = None;
        }
        plan
    }

    /// The node's power use right now, as best known: measured, or idle plus running tasks.
    fn load_w(&self, state: &State, sample: &Sample) -> f64 {
        sample.load_w.unwrap_or_else(|| {
            self.config.idle_w + state.running.values().map(|r| r.power_w).sum::<f64>()
        })
    }

    /// Feeds one sample: battery, forecast learning, receipts, app power.
    pub fn observe(&self, sample: Sample) {
        let mut state = self.state();
        let dt = state
            .last
            .as_ref()
            .map(|last| (sample.time_s - last.time_s).clamp(0.0, self.config.max_gap_s))
            .unwrap_or(0.0);
        let load = self.load_w(&state, &sample);
        let pv = sample.pv_w.unwrap_or(0.0).max(0.0);

        // Back from a power-off (the Witty Pi's sleep): nothing was measured meanwhile, so the
        // panel's charge is taken at the cautious quantile of the forecast made before it,
        // unless the source reports the charge itself.
        if let Some(since) = state.resume_from.take()
            && sample.time_s - since > self.config.max_gap_s
            && sample.battery_soc.is_none()
            && let Some(forecaster) = state.forecaster.as_ref()
        {
            let off_s = (sample.time_s - since).min(super::power::MAX_ESTIMATED_OFF_S);
            let forecast = forecaster.forecast(since, off_s, FORECAST_STEP_S);
            let before = state.estimator.energy_wh();
            let after = super::power::charge_while_off(
                &forecast,
                self.config.quantile,
                &self.config.model,
                before,
                since,
                sample.time_s,
            );
            state
                .estimator
                .set_soc(after / self.config.model.capacity_wh.max(1e-9));
            tracing::info!(
                off_h = format!("{:.1}", off_s / 3600.0),
                before_wh = format!("{before:.1}"),
                after_wh = format!("{after:.1}"),
                "energy: the charge while off estimated from the forecast"
            );
        }

        // The battery: measured current, a reported SoC, or the power balance.
        let measured = match (sample.battery_v, sample.battery_a, sample.battery_soc) {
            (Some(volts), Some(amps), _) => {
                state.estimator.update(sample.time_s, volts, amps);
                true
            }
            (_, _, Some(soc)) => {
                state.estimator.set_soc(soc);
                true
            }
            _ if sample.pv_w.is_some() && dt > 0.0 => {
                let energy = state.estimator.energy_wh();
                let next = self.config.model.step(energy, pv - load, dt).energy_wh;
                state
                    .estimator
                    .set_soc(next / self.config.model.capacity_wh.max(1e-9));
                false
            }
            _ => false,
        };
        // A measured battery that is nearly empty is a warning like the board's low voltage:
        // stop, park, power off before the battery (or the SD card) is harmed.
        let soc = state.estimator.soc();
        let critical = self.config.critical_soc;
        if measured && critical > 0.0 {
            if soc < critical && state.low_voltage.is_none() {
                let cause = LowVoltage::CriticalCharge { soc, critical };
                tracing::warn!(warning = %cause, "energy: battery critically low, no more work");
                state.low_voltage = Some(cause);
            } else if soc > critical + 0.05
                && matches!(state.low_voltage, Some(LowVoltage::CriticalCharge { .. }))
            {
                state.low_voltage = None;
            }
        }
        if let (Some(forecaster), Some(pv_w)) = (state.forecaster.as_mut(), sample.pv_w) {
            forecaster.observe(sample.time_s, pv_w);
        }

        self.account(&mut state.running, &sample, sample.time_s, true);

        // Low voltage from the board's own thresholds (with a band, so it does not flap).
        if let Some(board) = &sample.board
            && let Some(cut) = board.low_voltage_v
        {
            if board.input_v < cut + 0.2 && state.low_voltage.is_none() {
                let cause = LowVoltage::NearCutOff {
                    input_v: board.input_v,
                    cut_off_v: cut,
                };
                tracing::warn!(warning = %cause, "energy: low-voltage warning, no more work");
                state.low_voltage = Some(cause);
            } else if board.input_v > cut + 0.5
                && matches!(state.low_voltage, Some(LowVoltage::NearCutOff { .. }))
            {
                // Only this cause lifts here: not a critical charge, nor the board's warning.
                state.low_voltage = None;
            }
        }

        if state
            .forecast
            .as_ref()
            .is_none_or(|f| sample.time_s - f.made_at_s >= FORECAST_EVERY_S)
        {
            let forecast = state
                .forecaster
                .as_ref()
                .map(|f| f.forecast(sample.time_s, FORECAST_HORIZON_S, FORECAST_STEP_S));
            state.forecast = forecast;
        }
        state.last = Some(sample);
    }

    /// Adds each running task's share of the power flow from where its receipt was last
    /// brought up to date until `until_s`, at the powers `sample` shows. PV first feeds the idle
    /// draw, then the tasks; the battery gives the rest.
    /// Charges the running tasks with `sample`'s powers up to `until_s`; `new_reading` is
    /// false when the last sample is stretched to now (it is not a reading of its own).
    fn account(
        &self,
        running: &mut HashMap<String, Running>,
        sample: &Sample,
        until_s: f64,
        new_reading: bool,
    ) {
        if running.is_empty() {
            return;
        }
        let pv = sample.pv_w.unwrap_or(0.0).max(0.0);
        let estimated: f64 = running.values().map(|r| r.power_w).sum();
        let tasks_w = match sample.load_w {
            Some(measured) => (measured - self.config.idle_w).max(0.0),
            None => estimated,
        };
        let tasks_w = tasks_w.max(0.0); // also turns a NaN into 0
        let pv_for_tasks = (pv - self.config.idle_w).clamp(0.0, tasks_w);
        let count = running.len() as f64;
        let single = running.len() == 1;
        for task in running.values_mut() {
            let dt = (until_s - task.accounted_until_s).clamp(0.0, self.config.max_gap_s);
            if dt <= 0.0 {
                continue;
            }
            task.accounted_until_s = until_s;
            let share = if estimated > 0.0 {
                task.power_w / estimated
            } else {
                1.0 / count
            };
            let energy = share * tasks_w * dt / 3600.0;
            let from_pv = share * pv_for_tasks * dt / 3600.0;
            task.energy_wh += energy;
            task.pv_wh += from_pv;
            task.battery_wh += energy - from_pv;
            if single && let Some(measured) = sample.load_w {
                task.measured_load_w += (measured - self.config.idle_w) * dt;
                task.measured_s += dt;
                if new_reading {
                    task.load_samples += 1;
                }
            }
        }
    }

    /// The check for `estimate` at energy time `now`, without recording a decision.
    fn verdict(&self, state: &mut State, estimate: &TaskEstimate, now: f64) -> Verdict {
        let speed = self.clock.speed;
        let mut queue: Vec<PlannedJob> = state
            .running
            .iter()
            .map(|(task, r)| PlannedJob {
                id: task.clone(),
                power_w: r.power_w,
                remaining_s: (r.runtime_s - (now - r.started_s)).max(60.0),
                deadline_s: r.deadline_s,
                running: true,
            })
            .collect();
        // Tasks of deals already taken that have not started yet count too.
        queue.extend(state.queued.values().map(|q| q.job.clone()));
        let power = self.app_power(state, estimate.app.as_deref());
        let candidates: Vec<PlannedJob> = (0..estimate.volume.max(1))
            .map(|i| PlannedJob {
                id: format!("new task {}", i + 1),
                power_w: power,
                remaining_s: estimate.max_runtime_s as f64 * speed,
                deadline_s: now + estimate.deadline_in_s as f64 * speed,
                running: false,
            })
            .collect();
        let pv_now = state.last.as_ref().and_then(|s| s.pv_w).unwrap_or(0.0);
        let pv = planning_pv(state.forecast.clone(), self.config.quantile, now, pv_now);
        let trend = state
            .forecaster
            .as_ref()
            .map(|f| super::forecast::sky_trend(f.site(), now));
        let input = BudgetInput {
            now_s: now,
            battery_wh: state.estimator.energy_wh(),
            battery: self.config.model,
            idle_w: self.config.idle_w,
            pv_w: &pv,
            queue: &queue,
            // Two minutes of node time: a trace replayed N times faster stretches the work N
            // times in energy time, and the plan's steps with it, so their count stays bounded.
            step_s: 120.0 * self.clock.speed.max(1.0),
            horizon_s: 86_400.0,
            margin_wh: 0.0,
            // PV less what the node draws without its tasks (never less than its idle draw).
            surplus_now_w: state.last.as_ref().and_then(|sample| {
                let tasks_w: f64 = state.running.values().map(|r| r.power_w).sum();
                let base_w = (self.load_w(state, sample) - tasks_w).max(self.config.idle_w);
                sample.pv_w.map(|pv| pv - base_w)
            }),
            sky_trend: trend.as_ref().map(|f| f as &dyn Fn(f64) -> f64),
        };
        let key = (estimate.category, estimate.volume);
        let band = self.config.hysteresis_wh;
        state
            .hysteresis
            .entry(key)
            .or_insert_with(|| Hysteresis::new(band))
            .decide(&input, &candidates)
    }

    fn app_power(&self, state: &State, app: Option<&str>) -> f64 {
        app.and_then(|a| state.app_power_w.get(a).copied())
            .map(|learned| learned.max(self.min_app_power()))
            .unwrap_or(self.full_app_power())
    }

    /// An unknown app's power: the node's full-load draw above idle.
    fn full_app_power(&self) -> f64 {
        (self.config.busy_w - self.config.idle_w).max(0.0)
    }

    /// The least any app is taken to draw (see [`MIN_POWER_SHARE`]).
    fn min_app_power(&self) -> f64 {
        MIN_POWER_SHARE * self.full_app_power()
    }

    /// Whether the node's last real decision admitted work (`None` before the first one): a
    /// change is worth publishing at once.
    pub fn last_decision_admits(&self) -> Option<bool> {
        self.state().last_decision.as_ref().map(|d| d.admit)
    }

    /// Everything `pew energy status` shows.
    pub fn status_at(&self, now_wall_s: f64) -> EnergyStatus {
        let now = self.clock.energy_time(now_wall_s);
        let mut state = self.state();
        let verdict = self.probe(&mut state, now);
        let soc = state.estimator.soc();
        let capacity = self.config.model.capacity_wh;
        let last = state.last.clone();
        let load = last.as_ref().map(|s| self.load_w(&state, s));
        let pv = last.as_ref().and_then(|s| s.pv_w);
        let quantiles = |f: &dyn Fn(f64) -> f64| Quantiles {
            p10: round1(f(0.1)),
            p50: round1(f(0.5)),
            p90: round1(f(0.9)),
        };
        let forecast = state.forecast.as_ref().map(|f| ForecastStatus {
            source: f.source.clone(),
            made_at_s: f.made_at_s,
            next_24h_wh: quantiles(&|q| f.energy_wh(q, now, now + 86_400.0)),
            hourly_w: (0..24)
                .map(|h| {
                    let t = now + h as f64 * 3600.0;
                    HourlyPower {
                        time_s: t,
                        power_w: quantiles(&|q| f.power_w(q, t)),
                    }
                })
                .collect(),
        });
        let mut running_tasks: Vec<String> = state.running.keys().cloned().collect();
        running_tasks.sort();
        let power_plan = self.plan_power(&state, now, verdict.admit);
        EnergyStatus {
            energy_time_s: now,
            source: None,
            readings: last,
            rejected_readings: state.rejected,
            battery: BatteryStatus {
                soc_pct: round1(soc * 100.0),
                energy_wh: round1(soc * capacity),
                capacity_wh: capacity,
                reserve_wh: round1(self.config.model.floor_wh),
                above_reserve_wh: round1(soc * capacity - self.config.model.floor_wh),
                anchors: state.estimator.anchors,
            },
            surplus_w: match (pv, load) {
                (Some(p), Some(l)) => Some(round1(p - l)),
                _ => None,
            },
            forecast,
            budget: BudgetStatus {
                probe: "one XS task (300 s) of an unknown app".into(),
                admit: verdict.admit,
                headroom_wh: round1(verdict.headroom_wh),
                lowest_battery_wh: round1(verdict.lowest_wh),
                task_energy_wh: round1(verdict.candidate_wh),
            },
            decision: Decision {
                admit: verdict.admit && state.low_voltage.is_none(),
                reasons: low_voltage_first(&state.low_voltage, verdict.reasons),
            },
            last_node_decision: state.last_decision.clone(),
            running_tasks,
            app_power_w: state.app_power_w.clone(),
            low_voltage: state.low_voltage.clone(),
            power_plan,
        }
    }
}

/// The energy gate's state, as `pew energy status`, `/status` and the node's status file show
/// it.
#[derive(Debug, Clone, Serialize)]
pub struct EnergyStatus {
    /// The gate's time (unix seconds; a replayed trace runs faster than the wall clock).
    pub energy_time_s: f64,
    /// The energy source, when the caller names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The last accepted reading.
    pub readings: Option<Sample>,
    /// Readings refused as implausible so far.
    pub rejected_readings: u64,
    /// The battery.
    pub battery: BatteryStatus,
    /// PV minus the node's load now (W), when both are known.
    pub surplus_w: Option<f64>,
    /// The forecast in use.
    pub forecast: Option<ForecastStatus>,
    /// The budget check for a probe task.
    pub budget: BudgetStatus,
    /// What the gate would answer now for the probe, with why.
    pub decision: Decision,
    /// The node's own last bid question and its answer.
    pub last_node_decision: Option<Decision>,
    /// Tasks whose energy is being measured.
    pub running_tasks: Vec<String>,
    /// Learned power above idle, per app (W).
    pub app_power_w: HashMap<String, f64>,
    /// Why the node must power off, if it must.
    pub low_voltage: Option<LowVoltage>,
    /// The power plan: when a Witty Pi would wake the node next (the forecast's first hour of
    /// sun for work), and whether the node should power off now.
    pub power_plan: super::power::PowerPlan,
}

/// The battery part of [`EnergyStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct BatteryStatus {
    /// State of charge (%).
    pub soc_pct: f64,
    /// Energy stored (Wh).
    pub energy_wh: f64,
    /// Usable capacity (Wh).
    pub capacity_wh: f64,
    /// The reserve the gate never plans under (Wh).
    pub reserve_wh: f64,
    /// Energy above the reserve (Wh).
    pub above_reserve_wh: f64,
    /// Voltage anchors the estimator has taken.
    pub anchors: u32,
}

/// Three quantiles of a forecast figure.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Quantiles {
    /// Ten percent below this.
    pub p10: f64,
    /// The median.
    pub p50: f64,
    /// Ten percent above this.
    pub p90: f64,
}

/// One hour of the forecast's power.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HourlyPower {
    /// The hour's start (unix seconds).
    pub time_s: f64,
    /// PV power at that time (W).
    #[serde(flatten)]
    pub power_w: Quantiles,
}

/// The forecast part of [`EnergyStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct ForecastStatus {
    /// Which forecast (`clear-sky`, `open-meteo`).
    pub source: String,
    /// When it was made.
    pub made_at_s: f64,
    /// PV energy over the next 24 hours (Wh).
    pub next_24h_wh: Quantiles,
    /// PV power hour by hour (W).
    pub hourly_w: Vec<HourlyPower>,
}

/// The budget part of [`EnergyStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct BudgetStatus {
    /// The task the check is made for.
    pub probe: String,
    /// Whether the budget admits it.
    pub admit: bool,
    /// Energy left above the reserve over the plan (Wh).
    pub headroom_wh: f64,
    /// The lowest the battery gets in the plan (Wh).
    pub lowest_battery_wh: f64,
    /// The probe's energy (Wh).
    pub task_energy_wh: f64,
}

fn round1(v: f64) -> f64 {
    if v.is_finite() {
        (v * 10.0).round() / 10.0
    } else {
        v
    }
}

fn low_voltage_first(low: &Option<LowVoltage>, mut reasons: Vec<String>) -> Vec<String> {
    if let Some(warning) = low {
        reasons.insert(0, format!("low-voltage warning: {warning}"));
    }
    reasons
}

impl AdmissionGate for EnergyGate {
    fn admit(&self, estimate: &TaskEstimate, now_s: u64) -> Decision {
        let now = self.clock.energy_time(now_s as f64);
        let mut state = self.state();
        let decision =
            if (now_s as f64) < SANE_WALL_CLOCK_S {
                // A Pi without network time (or a board whose RTC lost power) boots in the
                // past: deadlines and the sun would be computed for the wrong day.
                Decision::no(format!(
                    "the system clock says unix {now_s}, before 2025: waiting for a sane time \
                     (NTP or the RTC)"
                ))
            } else if let Some(warning) = &state.low_voltage {
                Decision::no(format!("low-voltage warning: {warning}"))
            } else if state
                .last
                .as_ref()
                .is_none_or(|s| now - s.time_s > self.config.stale_after_s)
            {
                Decision::no("no recent energy reading: not bidding blind")
            } else if state.last.as_ref().is_some_and(|s| {
                s.pv_w.is_none() && s.battery_soc.is_none() && s.battery_a.is_none()
            }) {
                Decision::no(
                    "the energy source measures neither PV nor the battery: no budget can be \
                 made (add a sensor on the battery or panel line)",
                )
            } else {
                let verdict = self.verdict(&mut state, estimate, now);
                state.solar_carried_yes = verdict.admit && verdict.solar_carried;
                let mut reasons = verdict.reasons;
                reasons.push(format!(
                    "battery {:.1} Wh ({:.0} %), reserve {:.1} Wh, PV now {:.1} W, forecast {}",
                    state.estimator.energy_wh(),
                    state.estimator.soc() * 100.0,
                    self.config.model.floor_wh,
                    state.last.as_ref().and_then(|s| s.pv_w).unwrap_or(0.0),
                    state
                        .forecast
                        .as_ref()
                        .map(|f| format!(
                            "{} P{:.0} {:.1} Wh over 24 h",
                            f.source,
                            self.config.quantile * 100.0,
                            f.energy_wh(self.config.quantile, now, now + 86_400.0)
                        ))
                        .unwrap_or_else(|| "none (no site): only PV now counts".into())
                ));
                Decision {
                    admit: verdict.admit,
                    reasons,
                }
            };
        let changed = state
            .last_decision
            .as_ref()
            .is_none_or(|d| d.admit != decision.admit);
        if changed {
            tracing::info!(admit = decision.admit, reasons = ?decision.reasons, "energy gate decision");
        } else {
            tracing::debug!(admit = decision.admit, reasons = ?decision.reasons, "energy gate decision");
        }
        state.last_decision = Some(decision.clone());
        decision
    }

    fn task_admitted(&self, task: TaskId, estimate: &TaskEstimate, now_s: f64) {
        let task = task.to_string();
        let task = task.as_str();
        let now = self.clock.energy_time(now_s);
        let speed = self.clock.speed;
        let mut state = self.state();
        if state.running.contains_key(task) {
            return;
        }
        let power_w = self.app_power(&state, estimate.app.as_deref());
        let solar_only = state.solar_carried_yes;
        state.queued.insert(
            task.to_string(),
            Queued {
                job: PlannedJob {
                    id: task.to_string(),
                    power_w,
                    remaining_s: estimate.max_runtime_s as f64 * speed,
                    deadline_s: now + estimate.deadline_in_s as f64 * speed,
                    running: false,
                },
                solar_only,
            },
        );
    }

    fn task_started(&self, task: TaskId, estimate: &TaskEstimate, now_s: f64) {
        let task = task.to_string();
        let task = task.as_str();
        let now = self.clock.energy_time(now_s);
        let speed = self.clock.speed;
        let mut state = self.state();
        let runtime_s = estimate.max_runtime_s as f64 * speed;
        let (forecast_wh, forecast_source) = match &state.forecast {
            Some(f) => (
                f.energy_wh(self.config.quantile, now, now + runtime_s),
                f.source.clone(),
            ),
            None => (0.0, "none".to_string()),
        };
        let power_w = self.app_power(&state, estimate.app.as_deref());
        // The deadline counts from when the task was taken (the deal), not from its start.
        let queued = state.queued.remove(task);
        let deadline_s = queued
            .as_ref()
            .map_or(now + estimate.deadline_in_s as f64 * speed, |q| {
                q.job.deadline_s
            });
        let solar_only = queued.is_some_and(|q| q.solar_only);
        state.running.insert(
            task.to_string(),
            Running {
                app: estimate.app.clone(),
                power_w,
                runtime_s,
                deadline_s,
                started_s: now,
                energy_wh: 0.0,
                pv_wh: 0.0,
                battery_wh: 0.0,
                forecast_wh,
                forecast_source,
                accounted_until_s: now,
                measured_load_w: 0.0,
                measured_s: 0.0,
                load_samples: 0,
                solar_only,
                due: false,
            },
        );
    }

    fn task_finished(&self, id: TaskId, now_s: f64) -> Option<EnergyReceipt> {
        let task = id.to_string();
        let task = task.as_str();
        let now = self.clock.energy_time(now_s);
        let mut state = self.state();
        // Up to now, at the last powers seen.
        if let Some(last) = state.last.clone() {
            let mut running = std::mem::take(&mut state.running);
            self.account(&mut running, &last, now, false);
            state.running = running;
        }
        state.queued.remove(task);
        let run = state.running.remove(task)?;
        let learnable =
            run.measured_s >= MIN_LEARNING_S && run.load_samples >= MIN_LEARNING_SAMPLES;
        let (power_w, power_basis) = if learnable {
            let average = (run.measured_load_w / run.measured_s).max(0.0);
            if average < self.min_app_power() {
                (self.min_app_power(), "floor")
            } else {
                (average, "measured")
            }
        } else {
            (run.power_w, "assumed")
        };
        if learnable && let Some(app) = &run.app {
            let learned = match state.app_power_w.get(app) {
                Some(old) => 0.7 * old + 0.3 * power_w,
                None => power_w,
            };
            state.app_power_w.insert(app.clone(), learned);
        }
        let share = |part: f64| {
            if run.energy_wh > 0.0 {
                round1(part / run.energy_wh * 100.0)
            } else {
                0.0
            }
        };
        let milli = |wh: f64| (wh * 1000.0).round() / 1000.0;
        Some(EnergyReceipt {
            task: id,
            app: run.app.clone(),
            started_s: run.started_s,
            finished_s: now,
            wh_used: milli(run.energy_wh),
            pv_wh: milli(run.pv_wh),
            battery_wh: milli(run.battery_wh),
            pv_share_pct: share(run.pv_wh),
            battery_share_pct: share(run.battery_wh),
            measured: run.measured_s > 0.0,
            power_w: round1(power_w),
            power_basis: power_basis.to_string(),
            forecast: ReceiptForecast {
                source: run.forecast_source.clone(),
                quantile: self.config.quantile,
                pv_wh_for_the_run: milli(run.forecast_wh),
                planned_power_w: run.power_w,
            },
        })
    }

    fn pause_reason(&self) -> Option<String> {
        let mut state = self.state();
        let running_w: f64 = state.running.values().map(|r| r.power_w).sum();
        let (now, pv) = state.last.as_ref().map(|s| (s.time_s, s.pv_w))?;
        if running_w <= 0.0 {
            state.paused = false;
            state.paused_since = None;
            return None;
        }
        let battery = state.estimator.energy_wh();
        let floor = self.config.model.floor_wh;
        let surplus = pv.unwrap_or(0.0) - self.config.idle_w;
        // Work taken on the panel alone never runs on the battery until it is due. All
        // running apps freeze together, so only when every one of them is such work: a task
        // the battery plan took runs on above the reserve.
        let paused_since = state.paused_since;
        let finishing = FINISHING_S * self.clock.speed.max(1e-9);
        let mut panel_only = true;
        for task in state.running.values_mut() {
            // Frozen since the pause began, or since its start when it started during it.
            let frozen =
                paused_since.map_or(0.0, |since| (now - since.max(task.started_s)).max(0.0));
            let due = task.becomes_due(now, frozen, finishing);
            panel_only &= task.solar_only && !due;
        }
        // Pause when PV falls short under the reserve or of panel-only work. Resume with a
        // band: for the reserve, on the battery too; for panel-only work, on the panel alone
        // (or once it is due and the battery is not under its reserve).
        let under = battery < floor;
        let short = (under || panel_only) && surplus < running_w;
        let carried = surplus >= running_w + 0.5;
        let plenty = if state.paused_for_panel {
            carried || (!panel_only && !under)
        } else {
            carried || (battery >= floor + self.config.hysteresis_wh / 2.0 && !panel_only)
        };
        let was = state.paused;
        state.paused = if was { !plenty } else { short };
        if state.paused && !was {
            state.paused_for_panel = !under;
        }
        // A frozen task makes no progress: its planned end moves by the time it was frozen.
        match (was, state.paused) {
            (false, true) => state.paused_since = Some(now),
            (true, false) => {
                let since = state.paused_since.take().unwrap_or(now);
                // A task started during the pause was frozen only from its start.
                for task in state.running.values_mut() {
                    task.started_s += (now - since.max(task.started_s)).max(0.0);
                }
            }
            _ => {}
        }
        state.paused.then(|| {
            if under {
                format!(
                    "battery {battery:.1} Wh under its {floor:.1} Wh reserve and PV surplus \
                     {surplus:.1} W short of the {running_w:.1} W the running apps need"
                )
            } else {
                format!(
                    "work taken on the panel alone and PV surplus {surplus:.1} W short of the \
                     {running_w:.1} W the running apps need (it runs on the battery only when \
                     its deadline comes close)"
                )
            }
        })
    }

    fn node_holds_work(&self, holds: bool) {
        self.state().node_holds_work = holds;
    }

    fn power_off_reason(&self) -> Option<String> {
        let state = self.state();
        state
            .low_voltage
            .as_ref()
            .map(LowVoltage::to_string)
            .or_else(|| state.power_off.clone())
    }

    fn status(&self, now_s: u64) -> serde_json::Value {
        serde_json::to_value(self.status_at(now_s as f64)).unwrap_or_default()
    }

    fn battery_soc_pct(&self, _now_s: u64) -> Option<f64> {
        Some(round1(self.state().estimator.soc() * 100.0))
    }

    fn energy_time_s(&self, wall_s: f64) -> f64 {
        self.clock.energy_time(wall_s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn task(n: u64) -> TaskId {
        TaskId(alloy::primitives::B256::from(
            alloy::primitives::U256::from(n),
        ))
    }
    use crate::energy::battery::Chemistry;
    use crate::energy::forecast::Site;

    pub(crate) fn gate(soc: f64) -> EnergyGate {
        gate_from(soc, PersistentState::default())
    }

    fn gate_from(soc: f64, persisted: PersistentState) -> EnergyGate {
        gate_on(Clock::wall(), soc, persisted)
    }

    fn gate_on(clock: Clock, soc: f64, persisted: PersistentState) -> EnergyGate {
        gate_with(clock, soc, persisted, 6.4)
    }

    fn gate_with(clock: Clock, soc: f64, persisted: PersistentState, busy_w: f64) -> EnergyGate {
        let config = GateConfig {
            spec: BatterySpec {
                chemistry: Chemistry::Lifepo4,
                capacity_wh: 100.0,
                nominal_v: 12.8,
                charge_efficiency: 0.99,
            },
            model: BatteryModel {
                capacity_wh: 100.0,
                floor_wh: 30.0,
                charge_efficiency: 0.98,
                discharge_efficiency: 0.98,
            },
            idle_w: 2.7,
            busy_w,
            quantile: 0.1,
            hysteresis_wh: 2.0,
            stale_after_s: 600.0,
            max_gap_s: 600.0,
            critical_soc: 0.05,
        };
        let site = Site::parse("latitude=48 longitude=0 tilt=30 azimuth=0 kwp=0.05").unwrap();
        EnergyGate::new(config, clock, Some(Forecaster::new(site)), persisted, soc)
    }

    #[test]
    fn an_xl_task_fits_the_plan_on_a_trace_replayed_1000_times_faster() {
        // A node whose apps draw nothing above idle (busy = idle, so even the least power an
        // app is taken to draw is 0 W): only the deadline check can refuse the task. At
        // 1000 × speed its 10 h run is 36 M s of energy time: in 2-minute steps of energy time
        // the plan would be cut short; in 2-minute steps of node time it is 300 steps.
        let persisted = PersistentState {
            app_power_w: [("0xfree".to_string(), 0.0)].into(),
            ..PersistentState::default()
        };
        let wall = 1_800_000_000.0;
        let clock = Clock {
            wall_start_s: wall,
            energy_start_s: NOON,
            speed: 1000.0,
        };
        let gate = gate_with(clock, 0.9, persisted, 2.7);
        gate.observe(sample(NOON, 40.0, Some(2.7)));
        let xl = TaskEstimate {
            category: 4,
            max_runtime_s: 36_000,
            volume: 1,
            deadline_in_s: 7 * 36_000,
            app: Some("0xfree".into()),
        };
        let decision = gate.admit(&xl, wall as u64);
        assert!(decision.admit, "{decision:?}");
    }

    #[test]
    fn a_state_file_with_impossible_values_is_survived() {
        let site = Site::parse("latitude=48 longitude=0 tilt=30 azimuth=0 kwp=0.05").unwrap();
        let mut forecaster = Forecaster::new(site);
        // Not through set_weather, which refuses it: as a hand-edited state file gives it.
        let mut state: serde_json::Value = serde_json::to_value(&forecaster).unwrap();
        state["weather"] =
            json!({"fetched_at_s": NOON, "period_end_s": [NOON, NOON + 3600.0], "gti": [100.0]});
        // A learned ratio and a peak power no panel gives: the forecast must not believe them.
        state["clear_sky"]["recent"] = json!([NOON, 1e9]);
        state["peak_w"] = json!(1e9);
        forecaster = serde_json::from_value(state).unwrap();
        let persisted = PersistentState {
            soc: Some(f64::NAN),
            time_s: NOON,
            app_power_w: [("0xapp".to_string(), -5.0), ("0xnan".to_string(), f64::NAN)].into(),
            forecaster: Some(forecaster),
        };
        let gate = gate_from(0.6, persisted);
        assert!(gate.persistent_state().app_power_w.is_empty());
        let fresh = gate_from(0.6, PersistentState::default());
        gate.observe(sample(NOON, 4.0, None));
        fresh.observe(sample(NOON, 4.0, None));
        let forecast = |g: &EnergyGate| g.status(NOON as u64)["forecast"]["next_24h_wh"].clone();
        assert_eq!(
            forecast(&gate),
            forecast(&fresh),
            "the absurd learning is dropped"
        );
        assert_eq!(gate.status(NOON as u64)["battery"]["soc_pct"], 60.0);
        // A task of that app, on a source without a load reading: accounted, no panic.
        gate.observe(sample(NOON, 4.0, None));
        gate.task_started(task(0xabc), &xs(Some("0xapp")), NOON);
        gate.observe(sample(NOON + 3590.0, 4.0, None));
        gate.observe(sample(NOON + 3700.0, 4.0, None));
        assert!(gate.task_finished(task(0xabc), NOON + 3700.0).is_some());
    }

    fn xs(app: Option<&str>) -> TaskEstimate {
        TaskEstimate {
            category: 0,
            max_runtime_s: 300,
            volume: 1,
            deadline_in_s: 2100,
            app: app.map(str::to_string),
        }
    }

    const NOON: f64 = 1_782_000_000.0 + 12.0 * 3600.0;

    fn sample(t: f64, pv: f64, load: Option<f64>) -> Sample {
        let mut s = Sample::at(t);
        s.pv_w = Some(pv);
        s.load_w = load;
        s
    }

    #[test]
    fn no_reading_no_work_and_a_sunny_noon_admits_with_reasons() {
        let gate = gate(0.6);
        let no = gate.admit(&xs(None), NOON as u64);
        assert!(!no.admit && no.reasons[0].contains("no recent energy reading"));
        gate.observe(sample(NOON, 40.0, None));
        let yes = gate.admit(&xs(None), NOON as u64 + 1);
        assert!(yes.admit, "{yes:?}");
        assert!(
            yes.reasons.iter().any(|r| r.contains("battery 60.0 Wh")),
            "{yes:?}"
        );
        let status = gate.status(NOON as u64 + 1);
        assert_eq!(status["decision"]["admit"], true);
        assert_eq!(status["battery"]["soc_pct"], 60.0);
        assert_eq!(status["forecast"]["source"], "clear-sky");
    }

    #[test]
    fn a_clock_in_the_past_gets_no_work() {
        let gate = gate(0.6);
        gate.observe(sample(NOON, 40.0, None));
        let no = gate.admit(&xs(None), 1_546_300_800); // 2019-01-01, a Witty Pi RTC reset
        assert!(!no.admit && no.reasons[0].contains("sane time"), "{no:?}");
    }

    #[test]
    fn under_the_reserve_at_midnight_nothing_is_admitted() {
        let gate = gate(0.25);
        let midnight = NOON + 12.0 * 3600.0;
        gate.observe(sample(midnight, 0.0, None));
        let no = gate.admit(&xs(None), midnight as u64);
        assert!(!no.admit);
        assert!(no.reasons[0].contains("under its reserve"), "{no:?}");
    }

    #[test]
    fn under_the_reserve_a_midday_surplus_carries_a_short_task_and_status_says_why() {
        let gate = gate(0.25);
        // 7 W of PV against 2.7 W of idle draw (measured): 4.3 W of surplus for an unknown
        // app's 3.7 W. The battery is 5 Wh under its reserve.
        gate.observe(sample(NOON, 7.0, Some(2.7)));
        let yes = gate.admit(&xs(None), NOON as u64);
        assert!(yes.admit, "{yes:?}");
        assert!(yes.reasons[0].starts_with("solar-carried"), "{yes:?}");
        let status = gate.status(NOON as u64);
        assert_eq!(status["decision"]["admit"], true, "{status}");
        assert!(
            status["decision"]["reasons"][0]
                .as_str()
                .unwrap()
                .starts_with("solar-carried"),
            "{status}"
        );
        // The load the node measures counts: at 3.5 W of load, 3.5 W of surplus is too little.
        gate.observe(sample(NOON + 10.0, 7.0, Some(3.5)));
        let no = gate.admit(&xs(None), NOON as u64 + 10);
        assert!(!no.admit, "{no:?}");
    }

    #[test]
    fn the_power_plan_sleeps_when_the_gate_takes_no_work_and_never_with_tasks_taken() {
        let midnight = NOON + 12.0 * 3600.0;
        // Two Wh above the reserve at midnight: the plan keeps them for the night, the dark
        // panel carries nothing; awake, the node would only burn them. It powers off and wakes
        // in daylight.
        let low = gate(0.32);
        low.node_holds_work(false);
        low.observe(sample(midnight, 0.0, Some(2.7)));
        assert!(!low.admit(&xs(None), midnight as u64).admit);
        let plan = low.power_plan(midnight);
        let reason = plan.power_off.expect("powers off");
        assert!(reason.contains("takes no work"), "{reason}");
        let wake = plan.wake_at_s.expect("a wake-up");
        assert!(wake > midnight + 3.0 * 3600.0 && wake < midnight + 18.0 * 3600.0);
        // The status shows the same plan.
        let status = low.status(midnight as u64);
        assert!(status["power_plan"]["power_off"].is_string(), "{status}");
        // A task taken keeps it on, and so does work only the node sees (a task past its
        // computation, a bid open), and so does a node that has not said yet.
        low.task_admitted(task(1), &xs(None), midnight);
        assert!(low.power_plan(midnight).power_off.is_none());
        assert!(low.task_finished(task(1), midnight).is_none());
        low.node_holds_work(true);
        assert!(low.power_plan(midnight).power_off.is_none());
        low.node_holds_work(false);
        assert!(low.power_plan(midnight).power_off.is_some());
        let fresh = gate(0.32);
        fresh.observe(sample(midnight, 0.0, Some(2.7)));
        assert!(fresh.power_plan(midnight).power_off.is_none());
        // A full battery would take work at night: it stays on.
        let full = gate(0.9);
        full.observe(sample(midnight, 0.0, Some(2.7)));
        assert!(full.admit(&xs(None), midnight as u64).admit);
        assert!(full.power_plan(midnight).power_off.is_none());
    }

    /// At noon, 7 W of PV against 2.7 W of measured idle draw: asks the gate for an XS task,
    /// then takes task `n` under that answer and starts it. Returns the answer.
    fn start_on_the_panel_at_noon(gate: &EnergyGate, n: u64) -> Decision {
        gate.observe(sample(NOON, 7.0, Some(2.7)));
        let decision = gate.admit(&xs(None), NOON as u64);
        gate.task_admitted(task(n), &xs(None), NOON);
        gate.task_started(task(n), &xs(None), NOON);
        decision
    }

    #[test]
    fn above_the_reserve_work_taken_on_the_panel_alone_pauses_when_it_falls_short_until_due() {
        // 35 Wh, 5 Wh above the reserve, at noon: the battery plan keeps that charge for the
        // night, the panel's 4.3 W of surplus carries a task now.
        let gate = gate(0.35);
        let yes = start_on_the_panel_at_noon(&gate, 1);
        assert!(yes.admit, "{yes:?}");
        assert!(yes.reasons[0].starts_with("solar-carried"), "{yes:?}");
        assert!(gate.pause_reason().is_none(), "the panel carries it");
        // A cloud: 5 W. Above the reserve an ordinary task would run on the battery; this one
        // waits for the sun.
        gate.observe(sample(NOON + 60.0, 5.0, None));
        let reason = gate.pause_reason().expect("paused above the reserve");
        assert!(reason.contains("panel alone"), "{reason}");
        // Still grey later on. It ran 60 s, so up to 240 s of work are left; its result needs
        // 300 s after the computation: due once the deadline less those is 480 s away (from
        // 1320 s on).
        gate.observe(sample(NOON + 1200.0, 5.0, None));
        assert!(gate.pause_reason().is_some(), "600 s to spare: not yet due");
        gate.observe(sample(NOON + 1400.0, 5.0, None));
        assert!(
            gate.pause_reason().is_none(),
            "due: it may run on the battery"
        );
        // ... and stays due while it runs, though its spare time no longer shrinks as fast.
        for t in [1460.0, 1520.0, 1580.0] {
            gate.observe(sample(NOON + t, 5.0, None));
            assert!(gate.pause_reason().is_none(), "still due at {t}");
        }
        // A task the battery plan took is not panel-only: it runs on the charge above the
        // reserve at once.
        assert!(gate.task_finished(task(1), NOON + 1800.0).is_some());
        let plain = gate_from(0.9, PersistentState::default());
        plain.observe(sample(NOON, 40.0, None));
        let yes = plain.admit(&xs(None), NOON as u64);
        assert!(
            yes.admit && !yes.reasons[0].starts_with("solar-carried"),
            "{yes:?}"
        );
        plain.task_admitted(task(2), &xs(None), NOON);
        plain.task_started(task(2), &xs(None), NOON);
        plain.observe(sample(NOON + 60.0, 5.0, None));
        assert!(plain.pause_reason().is_none());
        // Beside a task the battery plan took, panel-only work does not freeze the node: the
        // apps freeze together, and that task may run on the charge above the reserve.
        let mixed = gate_from(0.35, PersistentState::default());
        assert!(start_on_the_panel_at_noon(&mixed, 3).admit);
        mixed.task_started(task(4), &xs(None), NOON);
        mixed.observe(sample(NOON + 60.0, 5.0, None));
        assert!(mixed.pause_reason().is_none());
    }

    #[test]
    fn back_from_a_power_off_the_estimate_credits_the_forecasts_cautious_charge() {
        let saved = |soc: f64, time_s: f64| PersistentState {
            soc: Some(soc),
            time_s,
            ..PersistentState::default()
        };
        let energy = |gate: &EnergyGate, t: f64| {
            gate.status(t as u64)["battery"]["energy_wh"]
                .as_f64()
                .unwrap()
        };
        // Off from 08:00 to noon on a June day: the forecast's P10 charged the battery.
        let morning = gate_from(0.3, saved(0.3, NOON - 4.0 * 3600.0));
        morning.observe(sample(NOON, 20.0, None));
        let credited = energy(&morning, NOON);
        assert!(credited > 35.0 && credited < 100.0, "{credited}");
        // Off through the night: only the standby came out.
        let midnight = NOON + 12.0 * 3600.0;
        let night = gate_from(0.3, saved(0.3, midnight - 3.0 * 3600.0));
        night.observe(sample(midnight, 0.0, None));
        let drawn = energy(&night, midnight);
        assert!(drawn < 30.0 && drawn > 29.0, "{drawn}");
        // A source that reports the charge is believed instead.
        let reported = gate_from(0.3, saved(0.3, NOON - 4.0 * 3600.0));
        let mut reading = sample(NOON, 20.0, None);
        reading.battery_soc = Some(0.5);
        reported.observe(reading);
        assert_eq!(energy(&reported, NOON), 50.0);
        // A short gap (a restart) is not a power-off.
        let restart = gate_from(0.3, saved(0.3, NOON - 60.0));
        restart.observe(sample(NOON, 20.0, None));
        assert_eq!(energy(&restart, NOON), 30.0);
    }

    #[test]
    fn panel_only_work_paused_inside_the_band_resumes_when_due() {
        // 31 Wh: above the 30 Wh reserve, inside its 1 Wh half-band.
        let gate = gate(0.31);
        assert!(start_on_the_panel_at_noon(&gate, 1).admit);
        gate.observe(sample(NOON + 60.0, 6.0, None));
        assert!(gate.pause_reason().unwrap().contains("panel alone"));
        gate.observe(sample(NOON + 1400.0, 6.0, None));
        assert!(
            gate.pause_reason().is_none(),
            "due, and not under the reserve"
        );
    }

    #[test]
    fn a_receipt_splits_pv_and_battery_and_the_app_power_is_learned() {
        let gate = gate(0.6);
        // Late afternoon: 4 W of PV, the node draws 2.7 W idle + 3 W for the task.
        let t0 = NOON + 5.0 * 3600.0;
        gate.observe(sample(t0, 4.0, Some(2.7)));
        gate.task_started(task(0xabc), &xs(Some("0xapp")), t0);
        for i in 1..=60 {
            gate.observe(sample(t0 + i as f64 * 10.0, 4.0, Some(5.7)));
        }
        let receipt = gate.task_finished(task(0xabc), t0 + 600.0).unwrap();
        // 600 s × 3 W = 0.5 Wh; PV gives 4 − 2.7 = 1.3 W of it.
        assert_eq!(receipt.task, task(0xabc));
        assert_eq!(receipt.wh_used, 0.5);
        assert!(
            (receipt.pv_wh - 1.3 * 600.0 / 3600.0).abs() < 1e-3,
            "{receipt:?}"
        );
        assert_eq!(receipt.pv_share_pct, 43.3);
        assert_eq!(receipt.forecast.source, "clear-sky");
        assert!((gate.persistent_state().app_power_w["0xapp"] - 3.0).abs() < 1e-9);
        assert!(
            gate.task_finished(task(0xabc), 0.0).is_none(),
            "a receipt is given once"
        );
    }

    #[test]
    fn running_work_pauses_under_the_reserve_when_pv_falls_short_and_resumes_with_a_band() {
        let gate = gate(0.29);
        let t0 = NOON;
        gate.observe(sample(t0, 10.0, None));
        assert!(gate.pause_reason().is_none(), "nothing runs");
        gate.task_started(task(1), &xs(None), t0);
        assert!(
            gate.pause_reason().is_none(),
            "10 W of PV carries 2.7 + 3.7 W"
        );
        gate.observe(sample(t0 + 10.0, 5.0, None));
        assert!(gate.pause_reason().unwrap().contains("under its"));
        gate.observe(sample(t0 + 20.0, 6.5, None));
        assert!(
            gate.pause_reason().is_some(),
            "6.5 W: not yet 0.5 W above what it needs"
        );
        gate.observe(sample(t0 + 30.0, 7.0, None));
        assert!(gate.pause_reason().is_none(), "resumed");
    }

    #[test]
    fn a_task_started_during_a_pause_is_counted_frozen_only_from_its_start() {
        let gate = gate(0.29);
        let t0 = NOON;
        gate.observe(sample(t0, 10.0, None));
        gate.task_started(task(1), &xs(None), t0);
        gate.observe(sample(t0 + 10.0, 5.0, None));
        assert!(gate.pause_reason().is_some(), "paused from t0 + 10");
        // The node starts a second app during the pause (it freezes it at its next round).
        gate.task_started(task(2), &xs(None), t0 + 100.0);
        gate.observe(sample(t0 + 200.0, 20.0, None));
        assert!(gate.pause_reason().is_none(), "resumed at t0 + 200");
        // The first was frozen 190 s, the second 100 s: their planned ends move by that much.
        let first = gate.task_finished(task(1), t0 + 300.0).unwrap();
        let second = gate.task_finished(task(2), t0 + 300.0).unwrap();
        assert_eq!(first.started_s, t0 + 190.0);
        assert_eq!(second.started_s, t0 + 200.0);
    }

    #[test]
    fn tasks_taken_but_not_started_count_against_the_budget() {
        let gate = gate(0.6);
        gate.observe(sample(NOON, 40.0, None));
        assert!(gate.admit(&xs(None), NOON as u64).admit);
        let xl = TaskEstimate {
            category: 4,
            max_runtime_s: 36_000,
            volume: 1,
            deadline_in_s: 252_000,
            app: None,
        };
        for i in 0..4 {
            gate.task_admitted(task(i), &xl, NOON);
        }
        let no = gate.admit(&xs(None), NOON as u64 + 1);
        assert!(!no.admit, "four queued XL tasks leave no room: {no:?}");
        for i in 0..4 {
            assert!(gate.task_finished(task(i), NOON + 2.0).is_none());
        }
        assert!(
            gate.admit(&xs(None), NOON as u64 + 2).admit,
            "dropped: room again"
        );
    }

    #[test]
    fn a_healthy_board_voltage_does_not_cancel_a_critical_battery() {
        let gate = gate(0.5);
        let mut s = sample(NOON, 5.0, None);
        s.battery_soc = Some(0.03);
        s.board = Some(super::super::sample::BoardReading {
            input_v: 12.9,
            output_v: 5.1,
            output_a: 0.6,
            temperature_c: None,
            low_voltage_v: Some(11.6),
            recovery_voltage_v: None,
        });
        gate.observe(s);
        let reason = gate.power_off_reason().expect("critical SoC powers off");
        assert!(reason.contains("critical"), "{reason}");
    }

    #[test]
    fn a_fresh_weather_forecast_is_used_at_once_and_the_same_one_changes_nothing() {
        let gate = gate(0.6);
        gate.observe(sample(NOON, 40.0, None));
        let weather = WeatherForecast {
            fetched_at_s: NOON,
            period_end_s: (1..=48).map(|h| NOON + h as f64 * 3600.0).collect(),
            gti: vec![500.0; 48],
        };
        gate.set_weather(weather.clone());
        assert_eq!(gate.status(NOON as u64)["forecast"]["source"], "open-meteo");
        gate.set_weather(weather);
        assert_eq!(gate.status(NOON as u64)["forecast"]["source"], "open-meteo");
    }

    #[test]
    fn a_source_that_measures_neither_pv_nor_battery_gets_no_work() {
        let gate = gate(0.6);
        gate.observe(sample_load_only(NOON, 4.0));
        let no = gate.admit(&xs(None), NOON as u64);
        assert!(
            !no.admit && no.reasons[0].contains("neither PV nor the battery"),
            "{no:?}"
        );
    }

    fn sample_load_only(t: f64, load: f64) -> Sample {
        let mut s = Sample::at(t);
        s.load_w = Some(load);
        s
    }

    #[test]
    fn a_low_voltage_warning_stops_bidding_and_asks_for_power_off() {
        let gate = gate(0.9);
        let mut s = sample(NOON, 40.0, None);
        s.board = Some(super::super::sample::BoardReading {
            input_v: 11.7,
            output_v: 5.1,
            output_a: 0.6,
            temperature_c: None,
            low_voltage_v: Some(11.6),
            recovery_voltage_v: Some(12.8),
        });
        gate.observe(s);
        assert!(gate.power_off_reason().is_some());
        assert!(!gate.admit(&xs(None), NOON as u64).admit);
    }

    fn board_at(volts: f64) -> Sample {
        let mut s = sample(NOON, 40.0, None);
        s.board = Some(super::super::sample::BoardReading {
            input_v: volts,
            output_v: 5.1,
            output_a: 0.6,
            temperature_c: None,
            low_voltage_v: Some(11.6),
            recovery_voltage_v: Some(12.8),
        });
        s
    }

    #[test]
    fn a_board_reading_near_the_cut_off_lifts_once_the_voltage_recovers() {
        let gate = gate(0.9);
        gate.observe(board_at(11.7));
        assert!(gate.power_off_reason().unwrap().contains("within 0.2 V"));
        let mut recovered = board_at(12.5);
        recovered.time_s = NOON + 10.0;
        gate.observe(recovered);
        assert_eq!(gate.power_off_reason(), None);
    }

    #[test]
    fn the_witty_pis_own_warning_is_not_lifted_by_a_good_reading() {
        // Both texts mention the cut-off; a cause is an enum, so one cannot clear the other.
        let gate = gate(0.9);
        gate.warn_low_voltage(LowVoltage::BoardWarning);
        let mut good = board_at(12.5);
        good.time_s = NOON + 10.0;
        gate.observe(good);
        let reason = gate.power_off_reason().expect("still warned");
        assert!(reason.contains("Witty Pi"), "{reason}");
        // And it replaces a milder cause rather than being lost behind it.
        let other = super::tests::gate(0.9);
        other.observe(board_at(11.7));
        other.warn_low_voltage(LowVoltage::BoardWarning);
        assert!(other.power_off_reason().unwrap().contains("Witty Pi"));
    }

    #[test]
    fn a_load_reading_that_does_not_move_teaches_the_floor_not_zero() {
        // The source reports the idle draw all along: the app looks free.
        let gate = gate(0.6);
        let t0 = NOON;
        gate.observe(sample(t0, 20.0, Some(2.7)));
        gate.task_started(task(7), &xs(Some("0xstill")), t0);
        for i in 1..=30 {
            gate.observe(sample(t0 + i as f64 * 10.0, 20.0, Some(2.7)));
        }
        let receipt = gate.task_finished(task(7), t0 + 300.0).unwrap();
        let floor: f64 = 0.25 * (6.4 - 2.7);
        assert!(receipt.measured);
        assert_eq!(receipt.power_basis, "floor");
        assert!((receipt.power_w - (floor * 10.0).round() / 10.0).abs() < 1e-9);
        let learned = gate.persistent_state().app_power_w["0xstill"];
        assert!((learned - floor).abs() < 1e-9, "{learned}");
        // And a 0 W a state file kept from an older build is planned at the floor too.
        let old = gate_from(
            0.6,
            PersistentState {
                app_power_w: [("0xfree".to_string(), 0.0)].into(),
                ..PersistentState::default()
            },
        );
        let state = old.state();
        assert!((old.app_power(&state, Some("0xfree")) - floor).abs() < 1e-9);
    }

    #[test]
    fn a_run_shorter_than_the_poll_interval_teaches_nothing_and_says_assumed() {
        let gate = gate(0.6);
        let t0 = NOON;
        gate.observe(sample(t0, 20.0, Some(2.7)));
        gate.task_started(task(8), &xs(Some("0xquick")), t0);
        gate.observe(sample(t0 + 25.0, 20.0, Some(6.0)));
        let receipt = gate.task_finished(task(8), t0 + 26.0).unwrap();
        assert!(receipt.measured, "a load reading came in during the run");
        assert_eq!(
            receipt.power_basis, "assumed",
            "one reading teaches nothing"
        );
        assert!((receipt.power_w - ((6.4f64 - 2.7) * 10.0).round() / 10.0).abs() < 0.06);
        assert!(
            !gate.persistent_state().app_power_w.contains_key("0xquick"),
            "nothing learned"
        );
    }
}

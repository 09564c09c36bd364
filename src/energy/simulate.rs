//! Replays a PV trace and a job stream through an admission policy and a model of the node's
//! power system: the bench for the admission code (`pew energy simulate`, `scripts/bench-energy`).
//!
//! The node runs one job at a time, earliest deadline first. Each step, PV feeds the idle draw
//! first, then the running job; what is left charges the battery, what is missing comes out of
//! it. The battery is counted in two layers: charge PV put there ("green") and the charge it
//! started with; a draw takes the green layer first (last in, first out). A job's energy is what
//! the node draws above idle while it runs; its green share is the part that came from PV,
//! directly or through the green layer. When the battery is empty and PV cannot carry the idle
//! draw the node browns out: the running job is lost and the node stays down until the battery
//! is back at 5 %.
//!
//! `pew` is the real admission code ([`budget`](super::budget) with the real
//! [`Forecaster`](super::forecast::Forecaster), learning from the trace as it plays).

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::budget::{BatteryModel, BudgetInput, Hysteresis, PlannedJob};
use super::forecast::calibration::{Calibration, CalibrationReport};
use super::forecast::{Forecaster, Site};
use super::sources::trace::{Trace, parse_time};
use crate::poco::Category;

/// The admission rules compared by the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// pew's own: the P10 forecast plus battery above the reserve, every deadline met.
    Pew,
    /// Takes every job (an energy-blind node).
    Always,
    /// Takes jobs while the battery is 20 points above its reserve (a battery-% rule, as
    /// BOINC-style clients and UPS boards offer).
    Threshold,
    /// Cucumber's naive rule: only when idle and the PV surplus now covers the job.
    NoForecast,
    /// Cucumber's perfect-forecast bound: knows future PV and each job's run time exactly,
    /// places jobs where PV alone carries them, never uses the battery.
    Oracle,
}

impl Policy {
    /// All of them, in the bench's order.
    pub const ALL: [Policy; 5] = [
        Policy::Pew,
        Policy::Always,
        Policy::Threshold,
        Policy::NoForecast,
        Policy::Oracle,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Pew => "pew",
            Policy::Always => "always",
            Policy::Threshold => "threshold",
            Policy::NoForecast => "no-forecast",
            Policy::Oracle => "oracle",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| {
                format!("policy `{text}` is not one of pew, always, threshold, no-forecast, oracle")
            })
    }
}

/// One job offered to the node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// When it is offered (unix seconds).
    pub arrival_s: f64,
    /// Its category (0..=4).
    pub category: u64,
    /// How long it really runs.
    pub runtime_s: f64,
}

impl Job {
    /// The category's maximum run time: all a node knows of a job before running it.
    pub fn max_runtime_s(&self) -> f64 {
        Category::standard(self.category)
            .map(|c| c.time_ref_s as f64)
            .unwrap_or(300.0)
    }

    /// The PoCo contribution deadline of its category, counted from the offer.
    pub fn deadline_s(&self) -> f64 {
        let window = Category::standard(self.category)
            .map(|c| c.contribution_window_s() as f64)
            .unwrap_or(2100.0);
        self.arrival_s + window
    }
}

/// Parses a job stream: CSV `arrival,category,runtime_s`, times as in traces, categories as
/// XS..XL or 0..4.
pub fn parse_jobs(text: &str, name: &str) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::new();
    let mut header_seen = false;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let fail = |what: String| format!("jobs {name}: line {}: {what}", index + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if !header_seen {
            if fields != ["arrival", "category", "runtime_s"] {
                return Err(fail(format!(
                    "the header must be `arrival,category,runtime_s`, found `{line}`"
                )));
            }
            header_seen = true;
            continue;
        }
        if fields.len() != 3 {
            return Err(fail(format!("{} fields, expected 3", fields.len())));
        }
        let arrival_s = parse_time(fields[0]).map_err(fail)?;
        let category: Category = fields[1]
            .parse()
            .map_err(|e: crate::poco::category::CategoryParseError| fail(e.to_string()))?;
        let runtime_s: f64 = fields[2]
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v > 0.0)
            .ok_or_else(|| fail(format!("runtime_s `{}` is not a number > 0", fields[2])))?;
        if runtime_s > category.time_ref_s as f64 {
            return Err(fail(format!(
                "runtime_s {runtime_s} exceeds the category's maximum of {} s",
                category.time_ref_s
            )));
        }
        jobs.push(Job {
            arrival_s,
            category: category.id,
            runtime_s,
        });
    }
    if !header_seen {
        return Err(format!(
            "jobs {name}: empty (needs the header `arrival,category,runtime_s`)"
        ));
    }
    jobs.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
    Ok(jobs)
}

/// How often each category (XS, S, M, L, XL) comes in a synthetic job stream, as weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct JobMix(pub [u32; 5]);

impl Default for JobMix {
    /// Mostly small work: 50 % XS, 30 % S, 15 % M, 4 % L, 1 % XL.
    fn default() -> Self {
        JobMix([50, 30, 15, 4, 1])
    }
}

impl std::str::FromStr for JobMix {
    type Err = String;

    /// `60,30,10`: weights for XS, S, M, L, XL in that order; missing ones are 0.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut weights = [0u32; 5];
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if fields.len() > 5 {
            return Err(format!(
                "mix `{}` has {} weights; at most 5 (XS,S,M,L,XL)",
                crate::text::brief(text),
                fields.len()
            ));
        }
        for (slot, field) in weights.iter_mut().zip(&fields) {
            *slot = field.parse().map_err(|_| {
                format!(
                    "mix weight `{}` is not a whole number (e.g. 60,30,10 for 60 % XS, 30 % S, \
                     10 % M)",
                    crate::text::brief(field)
                )
            })?;
        }
        if weights.iter().all(|&w| w == 0) {
            return Err("mix weights are all 0: no job could be drawn".into());
        }
        Ok(JobMix(weights))
    }
}

impl JobMix {
    /// The category for a draw `roll` in `0..self.total()`.
    fn category(&self, roll: u64) -> u64 {
        let mut acc = 0u64;
        for (category, &weight) in self.0.iter().enumerate() {
            acc += u64::from(weight);
            if roll < acc {
                return category as u64;
            }
        }
        0
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|&w| u64::from(w)).sum()
    }
}

/// A seeded synthetic stream over the trace: Poisson arrivals every `mean_gap_s` on average,
/// categories drawn from `mix`, each running 10-90 % of its category's maximum.
pub fn synthetic_jobs(trace: &Trace, seed: u64, mean_gap_s: f64, mix: JobMix) -> Vec<Job> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut jobs = Vec::new();
    let mut t = trace.start_s();
    loop {
        let u: f64 = rng.gen_range(1e-9..1.0);
        t += -u.ln() * mean_gap_s;
        if t >= trace.end_s() {
            break;
        }
        let category = mix.category(rng.gen_range(0..mix.total().max(1)));
        let max = Category::standard(category)
            .map(|c| c.time_ref_s as f64)
            .unwrap_or(300.0);
        jobs.push(Job {
            arrival_s: t,
            category,
            runtime_s: (max * rng.gen_range(0.1..0.9)).round().max(1.0),
        });
    }
    jobs
}

/// The node and battery being simulated.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    /// Usable battery capacity.
    pub battery_wh: f64,
    /// The night reserve as a share of capacity.
    pub reserve: f64,
    /// Battery state of charge at the start (default: at the reserve, so everything above it
    /// during the run is charge the panel put there).
    pub initial_soc: f64,
    /// The node's idle draw.
    pub idle_w: f64,
    /// The node's draw while running a job.
    pub busy_w: f64,
    /// Simulation step.
    pub step_s: f64,
    /// Battery charge efficiency (vessim's C-L-C figure, 0.978).
    pub charge_efficiency: f64,
    /// Battery discharge efficiency (1 / 1.014).
    pub discharge_efficiency: f64,
    /// The forecast quantile `pew` plans with.
    pub quantile: f64,
    /// The hysteresis band, as a share of capacity.
    pub hysteresis: f64,
    /// The site, when the trace does not name one.
    pub site: Option<Site>,
    /// pew with a Witty Pi: it powers off as its power plan says (no task, the gate takes no
    /// work and the panel carries none) and wakes at the plan's alarm or after this many
    /// seconds at the latest (the board's guaranteed wake). `None`: no board, the node never
    /// sleeps.
    pub wake_fallback_s: Option<f64>,
    /// What a wake-up costs: seconds at the busy draw while the node boots.
    pub boot_s: f64,
    /// What the board and the powered-off node still draw while asleep (W).
    pub standby_w: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            battery_wh: 100.0,
            reserve: 0.3,
            initial_soc: 0.3,
            idle_w: 2.7,
            busy_w: 6.4,
            step_s: 60.0,
            charge_efficiency: 0.978,
            discharge_efficiency: 1.0 / 1.014,
            quantile: 0.1,
            hysteresis: 0.01,
            site: None,
            wake_fallback_s: None,
            // A Pi booting and starting its engine, IPFS and pew: two minutes at full load.
            boot_s: 120.0,
            standby_w: super::power::STANDBY_W,
        }
    }
}

/// What a run produced; the field names are the CLI's contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// The policy.
    pub policy: Policy,
    /// Jobs offered.
    pub jobs_offered: u64,
    /// Jobs admitted.
    pub jobs_accepted: u64,
    /// Admitted share, %.
    pub accepted_pct: f64,
    /// Share of job energy that came from PV (directly or through PV-charged battery), %.
    pub green_share_pct: f64,
    /// Admitted jobs not done by their deadline.
    pub deadline_misses: u64,
    /// Admitted jobs that drew battery energy while it was under its reserve.
    pub floor_violations: u64,
    /// Energy the jobs used (above idle), Wh.
    pub energy_used_wh: f64,
    /// Seconds of work done by jobs that finished in time.
    pub useful_work_s: f64,
    /// PV energy the panel could give over the trace, Wh.
    pub pv_wh: f64,
    /// PV energy lost to a full battery, Wh.
    pub curtailed_wh: f64,
    /// Seconds the node was browned out.
    pub brownout_s: f64,
    /// Seconds a running job was paused to spare the reserve (pew only).
    pub paused_s: f64,
    /// Seconds pew slept, powered off by its Witty Pi's plan (pew with a board only).
    pub asleep_s: f64,
    /// Times it woke up again.
    pub wake_ups: u64,
    /// Jobs pew admitted on the panel alone (the solar-carried rule; pew only).
    pub solar_carried: u64,
    /// How honest the forecast's P10 and P90 were over the trace (when its site is known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_calibration: Option<CalibrationReport>,
}

#[derive(Debug, Clone)]
struct Admitted {
    job: Job,
    deadline_s: f64,
    /// Oracle only: when PV alone carries it.
    planned_start_s: Option<f64>,
    started_s: Option<f64>,
    done_s: f64,
    finished_s: Option<f64>,
    lost: bool,
    energy_wh: f64,
    green_wh: f64,
    violated: bool,
    /// Taken on the panel alone (pew's solar-carried rule): it runs only while PV carries it,
    /// whatever the battery holds, until it is due.
    solar_only: bool,
    /// Whether it is due (see [`Admitted::update_due`]).
    due: bool,
}

/// The node's allowance for a result's upload and contribution after its computation.
const FINISHING_S: f64 = 300.0;

/// What pew's admission reads at one step of the simulation.
struct PewView<'a> {
    t: f64,
    energy: f64,
    pv: f64,
    forecast: Option<&'a super::forecast::Forecast>,
    forecaster: Option<&'a Forecaster>,
    config: &'a SimConfig,
    battery: BatteryModel,
    job_w: f64,
}

impl PewView<'_> {
    /// The real check (with its hysteresis) for `candidate` on top of the work `admitted`.
    fn check(
        &self,
        admitted: &[Admitted],
        hysteresis: &mut Hysteresis,
        candidate: &PlannedJob,
    ) -> super::budget::Verdict {
        let t = self.t;
        let queue: Vec<PlannedJob> = admitted
            .iter()
            .filter(|a| a.finished_s.is_none() && !a.lost)
            .map(|a| PlannedJob {
                id: String::new(),
                power_w: self.job_w,
                remaining_s: match a.started_s {
                    Some(s) => (a.job.max_runtime_s() - (t - s)).max(self.config.step_s),
                    None => a.job.max_runtime_s(),
                },
                deadline_s: a.deadline_s,
                running: a.started_s.is_some(),
            })
            .collect();
        let pv_at =
            super::forecast::planning_pv(self.forecast.cloned(), self.config.quantile, t, self.pv);
        let trend = self
            .forecaster
            .map(|f| super::forecast::sky_trend(f.site(), t));
        let input = BudgetInput {
            now_s: t,
            battery_wh: self.energy,
            battery: self.battery,
            idle_w: self.config.idle_w,
            pv_w: &pv_at,
            queue: &queue,
            step_s: 120.0,
            horizon_s: 86_400.0,
            margin_wh: 0.0,
            // Measured as the no-forecast rule measures it.
            surplus_now_w: Some(self.pv - self.config.idle_w),
            sky_trend: trend.as_ref().map(|f| f as &dyn Fn(f64) -> f64),
        };
        hysteresis.decide(&input, std::slice::from_ref(candidate))
    }
}

impl Admitted {
    /// Whether work taken on the panel alone is due: its deadline, less the time its result
    /// needs after the computation (the node's allowance), is closer than twice the most work
    /// it may have left. Then, as the executor does, it may run on battery charge above the
    /// reserve (never on the reserve itself) rather than miss, and it stays due until it ends.
    fn update_due(&mut self, now_s: f64) {
        let left = (self.job.max_runtime_s() - self.done_s).max(0.0);
        self.due = self.due || self.deadline_s - FINISHING_S - now_s <= 2.0 * left;
    }
}

/// Runs `jobs` through `policy` over `trace`.
pub fn simulate(trace: &Trace, jobs: &[Job], policy: Policy, config: &SimConfig) -> SimReport {
    let battery = BatteryModel {
        capacity_wh: config.battery_wh,
        floor_wh: config.reserve * config.battery_wh,
        charge_efficiency: config.charge_efficiency,
        discharge_efficiency: config.discharge_efficiency,
    };
    let job_w = (config.busy_w - config.idle_w).max(0.0);
    let site = trace.site.clone().or_else(|| config.site.clone());
    let mut calibration = site.clone().map(Calibration::new);
    let mut forecaster = site.map(Forecaster::new);
    let mut hysteresis = Hysteresis::new(config.hysteresis * config.battery_wh);
    let restart_wh = 0.05 * config.battery_wh;

    let mut green_wh = 0.0;
    let mut other_wh = config.initial_soc.clamp(0.0, 1.0) * config.battery_wh;
    let mut admitted: Vec<Admitted> = Vec::new();
    let mut running: Option<usize> = None;
    let mut down = false;
    // pew with a Witty Pi: powered off until this time; the last time it read its power plan;
    // boot time left after a wake-up.
    let mut asleep_until: Option<f64> = None;
    let mut last_power_plan_s = f64::NEG_INFINITY;
    let mut boot_left_s = 0.0;
    // What pew believes of its battery less the truth: nothing is measured while it sleeps,
    // so on waking it credits the charge the forecast (made before) gave at its cautious
    // quantile, as the node does, until the estimate anchors at full. Set at sleep: when, what
    // it believed, the forecast it had.
    let mut belief_offset = 0.0;
    let mut slept: Option<(f64, f64, Option<super::forecast::Forecast>)> = None;
    let mut next_job = 0;
    let mut report = SimReport {
        policy,
        jobs_offered: 0,
        jobs_accepted: 0,
        accepted_pct: 0.0,
        green_share_pct: 0.0,
        deadline_misses: 0,
        floor_violations: 0,
        energy_used_wh: 0.0,
        useful_work_s: 0.0,
        pv_wh: 0.0,
        curtailed_wh: 0.0,
        brownout_s: 0.0,
        paused_s: 0.0,
        asleep_s: 0.0,
        wake_ups: 0,
        solar_carried: 0,
        forecast_calibration: None,
    };
    let dt = config.step_s;
    let mut t = trace.start_s();
    let mut forecast_cache: Option<super::forecast::Forecast> = None;
    while t < trace.end_s() {
        let pv = trace.pv_at(t + dt / 2.0);
        let energy = green_wh + other_wh;
        if energy >= 0.99 * battery.capacity_wh {
            belief_offset = 0.0; // a full battery's voltage anchors the estimate
        }
        if asleep_until.is_some_and(|wake| t >= wake) {
            asleep_until = None;
            report.wake_ups += 1;
            boot_left_s = config.boot_s;
            if let Some((since, believed, forecast)) = slept.take() {
                let believed = forecast.as_ref().map_or(believed, |f| {
                    super::power::charge_while_off(f, config.quantile, &battery, believed, since, t)
                });
                belief_offset = believed - energy;
            }
            forecast_cache = None; // a node that was off makes a fresh forecast
        }
        // The battery as pew sees it (the truth when it never slept).
        let seen = (energy + belief_offset).clamp(0.0, battery.capacity_wh);

        let asleep = asleep_until.is_some();
        if let Some(f) = forecaster.as_mut().filter(|_| !asleep) {
            f.observe(t, trace.pv_at(t));
        }
        if let (Some(c), Some(f)) = (calibration.as_mut(), forecaster.as_ref()) {
            if t.rem_euclid(3600.0) < 1e-6 {
                c.forecast_made(&f.forecast(t, 25.0 * 3600.0, super::gate::FORECAST_STEP_S));
            }
            c.measured(t, pv, dt);
        }
        if !asleep
            && forecast_cache
                .as_ref()
                .is_none_or(|f| t - f.made_at_s >= 900.0)
        {
            forecast_cache = forecaster.as_ref().map(|f| {
                f.forecast(
                    t,
                    super::gate::FORECAST_HORIZON_S,
                    super::gate::FORECAST_STEP_S,
                )
            });
        }

        // What pew's admission reads this step.
        let view = PewView {
            t,
            energy: seen,
            pv,
            forecast: forecast_cache.as_ref(),
            forecaster: forecaster.as_ref(),
            config,
            battery,
            job_w,
        };

        // Offers that arrive during this step.
        while next_job < jobs.len() && jobs[next_job].arrival_s < t + dt {
            let job = jobs[next_job].clone();
            next_job += 1;
            if job.arrival_s < trace.start_s() {
                continue;
            }
            report.jobs_offered += 1;
            if down || asleep || boot_left_s > 0.0 {
                continue; // a browned-out, powered-off or booting node answers nothing
            }
            let busy =
                running.is_some() || admitted.iter().any(|a| a.finished_s.is_none() && !a.lost);
            let decision = match policy {
                Policy::Always => Some((None, false)),
                Policy::Threshold => {
                    (energy >= battery.floor_wh + 0.2 * config.battery_wh).then_some((None, false))
                }
                Policy::NoForecast => {
                    (!busy && pv - config.idle_w >= job_w).then_some((None, false))
                }
                Policy::Oracle => {
                    oracle_slot(trace, &admitted, &job, config, job_w).map(|s| (Some(s), false))
                }
                Policy::Pew => {
                    let candidate = PlannedJob {
                        id: "offer".into(),
                        power_w: job_w,
                        remaining_s: job.max_runtime_s(),
                        deadline_s: job.deadline_s(),
                        running: false,
                    };
                    let verdict = view.check(&admitted, &mut hysteresis, &candidate);
                    report.solar_carried += u64::from(verdict.solar_carried);
                    verdict.admit.then_some((None, verdict.solar_carried))
                }
            };
            if let Some((planned_start_s, solar_only)) = decision {
                report.jobs_accepted += 1;
                admitted.push(Admitted {
                    deadline_s: job.deadline_s(),
                    done_s: 0.0,
                    job,
                    planned_start_s,
                    started_s: None,
                    finished_s: None,
                    lost: false,
                    energy_wh: 0.0,
                    green_wh: 0.0,
                    violated: false,
                    solar_only,
                    due: false,
                });
            }
        }

        // Work past its contribution deadline can no longer be contributed: the node drops it
        // (a miss all the same) rather than spend energy on it and hold the slot.
        for (index, job) in admitted.iter_mut().enumerate() {
            if job.finished_s.is_none() && !job.lost && job.deadline_s <= t {
                job.lost = true;
                if running == Some(index) {
                    running = None;
                }
            }
        }
        for job in admitted
            .iter_mut()
            .filter(|a| a.solar_only && a.finished_s.is_none() && !a.lost)
        {
            job.update_due(t);
        }
        // Pick the next job when the slot is free.
        if running.is_none() && !down {
            let waiting = admitted
                .iter()
                .enumerate()
                .filter(|(_, a)| a.started_s.is_none() && !a.lost && a.job.arrival_s <= t + dt)
                .filter(|(_, a)| a.planned_start_s.is_none_or(|s| s <= t + 1e-6))
                .min_by(|(_, a), (_, b)| a.deadline_s.total_cmp(&b.deadline_s))
                .map(|(i, _)| i);
            if let Some(index) = waiting {
                let estimate_wh = job_w * admitted[index].job.max_runtime_s() / 3600.0;
                let may_start = match policy {
                    // The executor's guard, the same as the planner's.
                    Policy::Pew => {
                        pv - config.idle_w >= job_w
                            || (!admitted[index].solar_only || admitted[index].due)
                                && seen - estimate_wh / battery.discharge_efficiency
                                    >= battery.floor_wh
                    }
                    _ => true,
                };
                if may_start {
                    admitted[index].started_s = Some(t);
                    running = Some(index);
                }
            }
        }

        // pew with a Witty Pi, idle, reads its power plan every 10 minutes (as the node does)
        // and powers off when it says so: when the gate would take no task and the panel
        // carries none.
        if policy == Policy::Pew
            && !down
            && !asleep
            && boot_left_s <= 0.0
            && t - last_power_plan_s >= 600.0
            && let Some(fallback_s) = config.wake_fallback_s
            && running.is_none()
            && admitted.iter().all(|a| a.finished_s.is_some() || a.lost)
        {
            last_power_plan_s = t;
            // Whether the gate would take an XS task now (the node's status probe).
            let probe = PlannedJob {
                id: "probe".into(),
                power_w: job_w,
                remaining_s: 300.0,
                deadline_s: t + 2100.0,
                running: false,
            };
            let admits = view.check(&admitted, &mut hysteresis.clone(), &probe).admit;
            let plan =
                super::power::plan(forecast_cache.as_ref(), admits, config.busy_w, Some(pv), t);
            if plan.power_off.is_some() {
                slept = Some((t, seen, forecast_cache.clone()));
                asleep_until = Some(plan.wake_at_s.unwrap_or(f64::INFINITY).min(t + fallback_s));
            }
        }

        // Power flow for this step.
        report.pv_wh += pv * dt / 3600.0;
        // A node off (powered off by its board, or browned out) draws only the board's
        // standby while asleep; PV charges the battery.
        if down || asleep_until.is_some() {
            let standby_w = if down {
                report.brownout_s += dt;
                0.0
            } else {
                report.asleep_s += dt;
                config.standby_w
            };
            let flow = battery.step(energy, pv - standby_w, dt);
            green_wh += flow.stored_wh;
            report.curtailed_wh += flow.curtailed_wh;
            // In the dark the standby comes out of the battery, the green layer first.
            let from_green = flow.drawn_wh.min(green_wh);
            green_wh -= from_green;
            other_wh = (other_wh - (flow.drawn_wh - from_green)).max(0.0);
            if down && green_wh + other_wh >= restart_wh {
                down = false;
            }
            t += dt;
            continue;
        }
        // pew pauses its running job (as the node does with `docker pause`) while PV cannot
        // carry it and the battery is under its reserve (the job never draws the reserve) or
        // the job was taken on the panel alone (it never draws the battery at all).
        let paused = policy == Policy::Pew
            && running.is_some_and(|i| {
                seen < battery.floor_wh || admitted[i].solar_only && !admitted[i].due
            })
            && pv - config.idle_w < job_w;
        if paused {
            report.paused_s += dt;
        }
        let run_s = running
            .filter(|_| !paused)
            .map(|i| (admitted[i].job.runtime_s - admitted[i].done_s).min(dt))
            .unwrap_or(0.0);
        let job_now_w = job_w * run_s / dt;
        let pv_for_idle = pv.min(config.idle_w);
        let pv_for_job = (pv - pv_for_idle).min(job_now_w);
        // Booting draws the busy power; it is the node's, no job's.
        let boot_w = job_w * boot_left_s.min(dt) / dt;
        boot_left_s = (boot_left_s - dt).max(0.0);
        let flow = battery.step(energy, pv - config.idle_w - job_now_w - boot_w, dt);
        report.curtailed_wh += flow.curtailed_wh;
        green_wh += flow.stored_wh;
        // Draws take the green layer first; the idle draw is served before the job.
        let idle_draw = (config.idle_w - pv_for_idle) * dt / 3600.0 / battery.discharge_efficiency;
        let job_draw = flow.drawn_wh - idle_draw.min(flow.drawn_wh);
        let from_green_idle = idle_draw.min(flow.drawn_wh).min(green_wh);
        green_wh -= from_green_idle;
        other_wh -= (idle_draw.min(flow.drawn_wh) - from_green_idle).min(other_wh);
        let job_green_draw = job_draw.min(green_wh);
        green_wh -= job_green_draw;
        other_wh = (other_wh - (job_draw - job_green_draw)).max(0.0);
        if let Some(index) = running {
            let job = &mut admitted[index];
            let delivered = pv_for_job * dt / 3600.0 + job_draw * battery.discharge_efficiency;
            job.energy_wh += delivered;
            job.green_wh +=
                pv_for_job * dt / 3600.0 + job_green_draw * battery.discharge_efficiency;
            if job_draw > 1e-12 && energy < battery.floor_wh - 1e-9 {
                job.violated = true;
            }
        }
        if flow.shortfall_wh > 1e-9 {
            // Brown-out: the running job is lost.
            down = true;
            if let Some(index) = running.take() {
                admitted[index].lost = true;
            }
        } else if let Some(index) = running {
            let job = &mut admitted[index];
            job.done_s += run_s;
            if job.done_s >= job.job.runtime_s - 1e-9 {
                job.finished_s = Some(t + run_s);
                running = None;
            }
        }
        t += dt;
    }

    let end = trace.end_s();
    let mut green = 0.0;
    for job in &admitted {
        report.energy_used_wh += job.energy_wh;
        green += job.green_wh;
        if job.violated {
            report.floor_violations += 1;
        }
        let missed = match job.finished_s {
            Some(f) => f > job.deadline_s + 1e-6,
            None => job.lost || job.deadline_s <= end,
        };
        if missed {
            report.deadline_misses += 1;
        } else if job.finished_s.is_some() {
            report.useful_work_s += job.job.runtime_s;
        }
    }
    report.forecast_calibration = calibration.map(|c| c.report());
    report.accepted_pct = percent(report.jobs_accepted as f64, report.jobs_offered as f64);
    report.green_share_pct = if report.energy_used_wh > 0.0 {
        percent(green, report.energy_used_wh)
    } else {
        100.0
    };
    report
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 {
        0.0
    } else {
        (part / whole * 1000.0).round() / 10.0
    }
}

/// The oracle's placement: the earliest start at or after the offer where the job, with its
/// true run time, fits between the jobs already placed, PV alone carries it at every step and
/// it ends before its deadline.
fn oracle_slot(
    trace: &Trace,
    admitted: &[Admitted],
    job: &Job,
    config: &SimConfig,
    job_w: f64,
) -> Option<f64> {
    let step = config.step_s;
    let deadline = job.deadline_s();
    let busy: Vec<(f64, f64)> = admitted
        .iter()
        .filter(|a| a.finished_s.is_none() && !a.lost)
        .filter_map(|a| {
            let start = a.started_s.or(a.planned_start_s)?;
            Some((start, start + a.job.runtime_s))
        })
        .collect();
    // Starts are aligned to the simulation's steps, as execution is.
    let first = trace.start_s() + ((job.arrival_s - trace.start_s()) / step).ceil() * step;
    let mut start = first;
    while start + job.runtime_s <= deadline.min(trace.end_s()) {
        let end = start + job.runtime_s;
        if let Some((_, busy_end)) = busy
            .iter()
            .find(|(s, e)| start < *e + step && *s < end + step)
        {
            start = trace.start_s() + ((busy_end - trace.start_s()) / step).ceil() * step + step;
            continue;
        }
        let mut ok = true;
        let mut probe = start;
        while probe < end {
            if trace.pv_at(probe + step / 2.0) - config.idle_w < job_w {
                ok = false;
                break;
            }
            probe += step;
        }
        if ok {
            return Some(start);
        }
        start += step;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three days: 08:00-16:00 at 40 W, dark otherwise, every 10 minutes.
    fn square_days() -> Trace {
        let mut text = String::from("time,pv_w\n");
        for i in 0..=(3 * 144) {
            let t = i * 600;
            let hour = (t % 86_400) / 3600;
            let pv = if (8..16).contains(&hour) { 40 } else { 0 };
            text.push_str(&format!("{t},{pv}\n"));
        }
        Trace::parse(&text, "square").unwrap()
    }

    fn offers() -> Vec<Job> {
        // One S job (1200 s max, runs 900 s) every 30 minutes.
        (0..(3 * 48))
            .map(|i| Job {
                arrival_s: i as f64 * 1800.0 + 1.0,
                category: 1,
                runtime_s: 900.0,
            })
            .collect()
    }

    #[test]
    fn job_streams_parse_with_named_errors() {
        let jobs = parse_jobs(
            "arrival,category,runtime_s\n2026-06-01T00:00:00Z,XS,60\n100,2,3000\n",
            "j",
        )
        .unwrap();
        assert_eq!(jobs.len(), 2);
        // Sorted by arrival: the unix-time row comes first.
        assert_eq!((jobs[0].arrival_s, jobs[0].category), (100.0, 2));
        assert_eq!(jobs[0].deadline_s() - jobs[0].arrival_s, 7.0 * 3600.0);
        assert_eq!(jobs[1].arrival_s, 1_780_272_000.0);
        assert_eq!(jobs[1].deadline_s() - jobs[1].arrival_s, 2100.0);
        for (bad, expected) in [
            ("a,b\n", "header"),
            ("arrival,category,runtime_s\n1,XXL,5\n", "line 2"),
            ("arrival,category,runtime_s\n1,XS,500\n", "exceeds"),
            ("arrival,category,runtime_s\n1,XS,-1\n", "runtime_s"),
        ] {
            let error = parse_jobs(bad, "j").unwrap_err();
            assert!(error.contains(expected), "{bad:?}: {error}");
        }
    }

    #[test]
    fn always_breaks_the_reserve_and_pew_never_does() {
        let trace = square_days();
        let config = SimConfig {
            site: None,
            ..SimConfig::default()
        };
        let always = simulate(&trace, &offers(), Policy::Always, &config);
        let pew = simulate(&trace, &offers(), Policy::Pew, &config);
        assert!(
            always.jobs_accepted > pew.jobs_accepted,
            "{always:?} {pew:?}"
        );
        assert!(always.floor_violations > 0, "{always:?}");
        assert!(always.green_share_pct < 99.0, "{always:?}");
        assert_eq!(pew.floor_violations, 0, "{pew:?}");
        assert_eq!(pew.deadline_misses, 0, "{pew:?}");
        assert!(pew.green_share_pct >= 99.0, "{pew:?}");
        assert!(pew.jobs_accepted > 0, "{pew:?}");
    }

    #[test]
    fn the_oracle_runs_on_pv_alone_and_meets_every_deadline() {
        let trace = square_days();
        let oracle = simulate(&trace, &offers(), Policy::Oracle, &SimConfig::default());
        assert!(oracle.jobs_accepted > 0);
        assert_eq!(oracle.green_share_pct, 100.0, "{oracle:?}");
        assert_eq!(oracle.deadline_misses, 0);
        assert_eq!(oracle.floor_violations, 0);
        // Only offers that can end inside the 8 sunny hours: those arriving from 2 h 20 min
        // (the S deadline) before sunrise to 15 min before sunset, two an hour.
        assert!(oracle.jobs_accepted <= 3 * 21, "{oracle:?}");
        assert!(oracle.jobs_accepted >= 3 * 15, "{oracle:?}");
        let naive = simulate(&trace, &offers(), Policy::NoForecast, &SimConfig::default());
        assert!(
            naive.jobs_accepted <= oracle.jobs_accepted + 3,
            "{naive:?} vs {oracle:?}"
        );
    }

    /// Five winter days at 60° N: 09:00-15:00 at 8 W (enough for idle and one task), dark
    /// otherwise, every 10 minutes; the site is named so pew forecasts.
    fn scarce_days() -> Trace {
        let mut text =
            String::from("# site: latitude=60 longitude=0 tilt=35 azimuth=0 kwp=0.02\ntime,pv_w\n");
        let start = 1_797_292_800; // 2026-12-15 00:00 UTC
        for i in 0..=(5 * 144) {
            let t = i * 600;
            let hour = (t % 86_400) / 3600;
            let pv = if (9..15).contains(&hour) { 8 } else { 0 };
            text.push_str(&format!("{},{pv}\n", start + t));
        }
        Trace::parse(&text, "scarce").unwrap()
    }

    #[test]
    fn with_a_witty_pi_pew_sleeps_through_the_dark_instead_of_browning_out() {
        let trace = scarce_days();
        let jobs: Vec<Job> = (0..(5 * 72))
            .map(|i| Job {
                arrival_s: trace.start_s() + i as f64 * 1200.0 + 1.0,
                category: 0,
                runtime_s: 200.0,
            })
            .collect();
        let awake = simulate(&trace, &jobs, Policy::Pew, &SimConfig::default());
        let board = SimConfig {
            wake_fallback_s: Some(86_400.0),
            ..SimConfig::default()
        };
        let asleep = simulate(&trace, &jobs, Policy::Pew, &board);
        // Without a board the idle draw empties the battery every night.
        assert!(awake.brownout_s > 0.0 && awake.asleep_s == 0.0, "{awake:?}");
        // With one it powers off at the reserve in the dark and wakes for the sun.
        assert_eq!(asleep.brownout_s, 0.0, "{asleep:?}");
        assert!(asleep.asleep_s > 3.0 * 12.0 * 3600.0, "{asleep:?}");
        assert!(asleep.wake_ups >= 4, "{asleep:?}");
        assert!(asleep.jobs_accepted > 0, "{asleep:?}");
        for report in [&awake, &asleep] {
            assert_eq!(report.deadline_misses, 0, "{report:?}");
            assert_eq!(report.floor_violations, 0, "{report:?}");
            assert!(report.green_share_pct >= 99.0, "{report:?}");
        }
        // Other policies have no board to sleep with.
        let oracle = simulate(&trace, &jobs, Policy::Oracle, &board);
        assert_eq!(oracle.asleep_s, 0.0);
    }

    #[test]
    fn asleep_the_standby_still_drains_the_battery() {
        // Four dark days: the node sleeps at its reserve and wakes once a day to look.
        let mut text =
            String::from("# site: latitude=60 longitude=0 tilt=35 azimuth=0 kwp=0.02\ntime,pv_w\n");
        for i in 0..=(4 * 144) {
            text.push_str(&format!("{},0\n", 1_797_292_800 + i * 600));
        }
        let dark = Trace::parse(&text, "dark").unwrap();
        let board = |standby_w: f64| SimConfig {
            wake_fallback_s: Some(86_400.0),
            standby_w,
            ..SimConfig::default()
        };
        let frugal = simulate(&dark, &[], Policy::Pew, &board(0.1));
        assert!(frugal.asleep_s > 3.0 * 86_400.0, "{frugal:?}");
        assert_eq!(frugal.brownout_s, 0.0, "{frugal:?}");
        // A board drawing a watt empties the 30 Wh reserve within two days of sleep.
        let hungry = simulate(&dark, &[], Policy::Pew, &board(1.0));
        assert!(hungry.brownout_s > 0.0, "{hungry:?}");
    }

    #[test]
    fn a_small_battery_and_greedy_policy_brown_out_and_miss_deadlines() {
        let trace = square_days();
        let config = SimConfig {
            battery_wh: 20.0,
            initial_soc: 0.5,
            ..SimConfig::default()
        };
        let always = simulate(&trace, &offers(), Policy::Always, &config);
        assert!(always.brownout_s > 0.0, "{always:?}");
        assert!(always.deadline_misses > 0, "{always:?}");
    }
}

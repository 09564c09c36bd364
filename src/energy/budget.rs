//! The admission check, pure: given the battery now, a PV forecast (one quantile), the node's
//! idle draw and the work already admitted, may one more piece of work be taken?
//!
//! It extends Cucumber's deadline check (ANCHORS §1.1) with a battery. The queue is planned
//! earliest-deadline-first on one slot, forward in fixed steps over the forecast: PV first
//! feeds the idle draw, then the running job, and the rest charges the battery; a shortfall is
//! drawn from the battery. Work is admitted only when
//! - every job finishes before its deadline, and
//! - the battery with the work never sits lower than `min(floor, battery without the work)`:
//!   the work may use PV that would otherwise be lost and charge above the night reserve, never
//!   the reserve itself;
//! - and, as a hard rule, the battery is not under its reserve now.
//!
//! A job only starts when its power is there (PV surplus now, or battery above the floor),
//! the same rule the executor follows, so the plan and the run agree.
//!
//! Scarce sun adds a second way in ([`solar_carried`]): when the battery sits at its reserve
//! for days, the plan above has no room, yet short jobs can still run straight from the panel
//! at midday. Short work is taken when the PV surplus alone (measured now, then forecast)
//! carries it and everything admitted before it to their deadlines, each paused where the
//! surplus falls short (as the executor pauses work under the reserve). It is never planned on
//! the battery: the PV it uses is PV that would have gone to the battery, nothing more. Work
//! taken this way is marked ([`Verdict::solar_carried`]): the executor runs it only while the
//! panel carries it, whatever the battery holds, until it is due (its deadline closer than
//! twice the work it may have left); then it may draw charge above the reserve, never the
//! reserve itself.

use serde::Serialize;

/// The battery as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatteryModel {
    /// Usable capacity.
    pub capacity_wh: f64,
    /// The night reserve: energy that stays for keeping the node alive; work never draws it.
    pub floor_wh: f64,
    /// Fraction of charging energy that ends up stored.
    pub charge_efficiency: f64,
    /// Fraction of stored energy that reaches the load.
    pub discharge_efficiency: f64,
}

/// What one step of power flow did to the battery.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Flow {
    /// Battery energy after the step.
    pub energy_wh: f64,
    /// Energy the load needed that neither PV nor the battery could give (a brown-out).
    pub shortfall_wh: f64,
    /// PV energy lost because the battery was full.
    pub curtailed_wh: f64,
    /// Energy taken out of the battery (at its terminals, before discharge losses).
    pub drawn_wh: f64,
    /// Energy put into the battery (after charge losses).
    pub stored_wh: f64,
}

impl BatteryModel {
    /// Applies `net_w` (PV minus load; positive charges) for `dt_s` seconds to `energy_wh`.
    pub fn step(&self, energy_wh: f64, net_w: f64, dt_s: f64) -> Flow {
        let hours = dt_s / 3600.0;
        if net_w >= 0.0 {
            let offered = net_w * hours * self.charge_efficiency;
            let room = (self.capacity_wh - energy_wh).max(0.0);
            let stored = offered.min(room);
            Flow {
                energy_wh: energy_wh + stored,
                curtailed_wh: (offered - stored) / self.charge_efficiency.max(1e-9),
                stored_wh: stored,
                ..Flow::default()
            }
        } else {
            let needed = -net_w * hours / self.discharge_efficiency.max(1e-9);
            let drawn = needed.min(energy_wh.max(0.0));
            Flow {
                energy_wh: energy_wh - drawn,
                shortfall_wh: (needed - drawn) * self.discharge_efficiency,
                drawn_wh: drawn,
                ..Flow::default()
            }
        }
    }
}

/// One piece of admitted (or candidate) work.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedJob {
    /// Names the job in reasons.
    pub id: String,
    /// Power the job adds to the idle draw while it runs.
    pub power_w: f64,
    /// Seconds of work left (the estimate: the category's maximum run time).
    pub remaining_s: f64,
    /// When it must be done (unix seconds).
    pub deadline_s: f64,
    /// Whether it is running now (it keeps its slot: execution is not preemptive).
    pub running: bool,
}

impl PlannedJob {
    /// The energy the job is expected to need.
    pub fn energy_wh(&self) -> f64 {
        self.power_w * self.remaining_s / 3600.0
    }
}

/// Everything the check reads.
#[derive(Clone)]
pub struct BudgetInput<'a> {
    /// Now (unix seconds).
    pub now_s: f64,
    /// Battery energy now.
    pub battery_wh: f64,
    /// The battery.
    pub battery: BatteryModel,
    /// The node's draw when idle.
    pub idle_w: f64,
    /// PV power at a time, at the quantile the policy plans with (e.g. P10).
    pub pv_w: &'a dyn Fn(f64) -> f64,
    /// Work already admitted and not finished.
    pub queue: &'a [PlannedJob],
    /// Planning step.
    pub step_s: f64,
    /// The plan looks at least this far ahead (a night must fit in it).
    pub horizon_s: f64,
    /// Extra energy (Wh) the battery must keep above the limits; hysteresis uses it.
    pub margin_wh: f64,
    /// PV minus the node's load without its tasks, measured now (W); `None` when PV is not
    /// measured. Only the solar-carried rule reads it.
    pub surplus_now_w: Option<f64>,
    /// How the panel's power at a time compares with now under the same sky (the clear-sky
    /// model's ratio): the persistence nowcast carries today's sky forward with the sun's
    /// course. `None`: taken as flat.
    pub sky_trend: Option<&'a dyn Fn(f64) -> f64>,
}

/// The outcome of one check, with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Whether the candidate may be taken.
    pub admit: bool,
    /// Why, in words.
    pub reasons: Vec<String>,
    /// Planned finish time of each job (queue order, then the candidates), if it finishes.
    pub finishes: Vec<Option<f64>>,
    /// Lowest planned battery energy with the work, and when.
    pub lowest_wh: f64,
    /// The smallest gap between the battery with the work and its limit (negative: breached).
    pub headroom_wh: f64,
    /// Energy the candidates are expected to need.
    pub candidate_wh: f64,
    /// Whether the candidates were admitted on the panel alone ([`solar_carried`]).
    pub solar_carried: bool,
}

struct Plan {
    finishes: Vec<Option<f64>>,
    trajectory: Vec<f64>,
}

fn plan(input: &BudgetInput<'_>, jobs: &[PlannedJob], steps: usize) -> Plan {
    // Earliest deadline first; a running job keeps its place at the head.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| {
        jobs[b]
            .running
            .cmp(&jobs[a].running)
            .then(jobs[a].deadline_s.total_cmp(&jobs[b].deadline_s))
    });
    let mut remaining: Vec<f64> = jobs.iter().map(|j| j.remaining_s).collect();
    let mut finishes = vec![None; jobs.len()];
    let mut trajectory = Vec::with_capacity(steps);
    let mut battery = input.battery_wh;
    let mut head = 0;
    let mut current: Option<usize> = None;
    for step in 0..steps {
        let t = input.now_s + step as f64 * input.step_s;
        let pv = (input.pv_w)(t + input.step_s / 2.0).max(0.0);
        if current.is_none() && head < order.len() {
            let next = order[head];
            let job = &jobs[next];
            let surplus = pv - input.idle_w;
            // Start when the power is there: the job was already running, PV covers it, or the
            // battery holds its energy above the floor.
            if job.running
                || surplus >= job.power_w
                || battery - job.energy_wh() / input.battery.discharge_efficiency
                    >= input.battery.floor_wh
            {
                current = Some(next);
                head += 1;
            }
        }
        let mut load = input.idle_w;
        let mut run_s = 0.0;
        if let Some(index) = current {
            run_s = remaining[index].min(input.step_s);
            load += jobs[index].power_w * run_s / input.step_s;
        }
        battery = input
            .battery
            .step(battery, pv - load, input.step_s)
            .energy_wh;
        trajectory.push(battery);
        if let Some(index) = current {
            remaining[index] -= run_s;
            if remaining[index] <= 1e-9 {
                finishes[index] = Some(t + run_s);
                current = None;
            }
        }
    }
    Plan {
        finishes,
        trajectory,
    }
}

/// The longest plan, in steps: 146 days at the gate's 2-minute step (of node time, whatever a
/// trace's replay speed), far past any PoCo deadline (an XL task's final deadline is
/// 10 × 36 000 s after its deal).
pub const MAX_PLAN_STEPS: usize = 105_120;

/// Checks whether `candidates` can be admitted on top of `input.queue`.
pub fn check(input: &BudgetInput<'_>, candidates: &[PlannedJob]) -> Verdict {
    let floor = input.battery.floor_wh;
    let candidate_wh: f64 = candidates.iter().map(PlannedJob::energy_wh).sum();
    let mut reasons = Vec::new();
    let latest = input
        .queue
        .iter()
        .chain(candidates)
        .map(|j| j.deadline_s)
        .fold(input.now_s + input.horizon_s, f64::max);
    // Bounded, whatever deadline the chain or a trace gives: a job whose deadline lies beyond
    // the last step just does not finish in the plan, and is refused.
    let steps = ((latest - input.now_s) / input.step_s)
        .ceil()
        .clamp(1.0, MAX_PLAN_STEPS as f64) as usize;

    let mut all: Vec<PlannedJob> = input.queue.to_vec();
    all.extend_from_slice(candidates);
    let without = plan(input, input.queue, steps);
    let with = plan(input, &all, steps);

    let mut headroom = f64::INFINITY;
    let mut lowest = f64::INFINITY;
    for (b_with, b_without) in with.trajectory.iter().zip(&without.trajectory) {
        // The reserve (plus the hysteresis band) is the limit; where the battery would be under
        // it anyway, the work may not take it any lower.
        let limit = (floor + input.margin_wh).min(*b_without);
        headroom = headroom.min(b_with - limit);
        lowest = lowest.min(*b_with);
    }
    let late: Vec<&PlannedJob> = all
        .iter()
        .zip(&with.finishes)
        .filter(|(job, finish)| finish.is_none_or(|f| f > job.deadline_s))
        .map(|(job, _)| job)
        .collect();

    let mut admit = true;
    if input.battery_wh < floor + input.margin_wh {
        admit = false;
        reasons.push(format!(
            "battery {:.1} Wh is under its reserve of {:.1} Wh{}",
            input.battery_wh,
            floor,
            if input.margin_wh > 0.0 {
                format!(" plus {:.1} Wh hysteresis", input.margin_wh)
            } else {
                String::new()
            }
        ));
    }
    if let Some(job) = late.first() {
        admit = false;
        reasons.push(format!(
            "{} would not finish before its deadline on the forecast ({} job(s) late)",
            job.id,
            late.len()
        ));
    }
    if headroom < -1e-9 {
        admit = false;
        reasons.push(format!(
            "the work would take the battery {:.1} Wh into its reserve (lowest {:.1} Wh)",
            -headroom, lowest
        ));
    }
    let mut carried = false;
    if admit {
        reasons.push(format!(
            "{:.2} Wh of work fits: forecast PV and battery above the {:.1} Wh reserve cover it \
             with {:.1} Wh to spare; every job meets its deadline",
            candidate_wh, floor, headroom
        ));
    } else if let Some(reason) = solar_carried(input, candidates) {
        // Work taken this way runs only while the panel carries it, above the reserve too:
        // the battery's charge stays the plan's.
        admit = true;
        carried = true;
        let plan_said = std::mem::take(&mut reasons).join("; ");
        reasons.push(reason);
        reasons.push(format!("(the battery plan alone says no: {plan_said})"));
    }
    Verdict {
        admit,
        reasons,
        finishes: with.finishes,
        lowest_wh: lowest,
        headroom_wh: headroom,
        candidate_wh,
        solar_carried: carried,
    }
}

/// How long the sky measured now is taken to last (a persistence nowcast: cloud cover mostly
/// holds for a quarter of an hour; the sun's course is followed). After it, the forecast at the
/// planning quantile says. Half an hour took more work on scarce-sun traces but missed
/// deadlines where a cloud came; a quarter of an hour missed almost none.
pub const NOWCAST_TRUST_S: f64 = 900.0;
/// The longest work the solar-carried rule takes, and how far ahead its plan may reach, in the
/// sun's time: an hour, the time over which the last hour's sky still says much about the next
/// one (the forecast's near-term spread is learned from its hour-ahead misses). Work the panel
/// could only carry later in the day is left to the battery plan.
pub const SOLAR_CARRIED_MAX_S: f64 = 3600.0;

/// Scarce sun: whether `candidates` may be taken on the panel alone, and why. It holds when
/// the work admitted so far and the candidates, run one at a time (the running one first,
/// then earliest deadline first) only while the PV surplus carries the one in turn (the sky
/// measured now for [`NOWCAST_TRUST_S`], then the forecast) and paused otherwise, all end
/// before their deadlines and within [`SOLAR_CARRIED_MAX_S`]. The battery is never planned on: under the reserve the executor pauses work the
/// panel does not carry, and this plan counts on no more.
pub fn solar_carried(input: &BudgetInput<'_>, candidates: &[PlannedJob]) -> Option<String> {
    let surplus_now = input.surplus_now_w.filter(|s| s.is_finite())?;
    let total_s: f64 = candidates.iter().map(|c| c.remaining_s).sum();
    let power = candidates.iter().map(|c| c.power_w).fold(0.0, f64::max);
    // Tasks running now may go on drawing beside the new work (a node runs several at once,
    // and the executor freezes them all when the panel falls short of their sum): the surplus
    // is counted for them all along.
    let running_w: f64 = input
        .queue
        .iter()
        .filter(|j| j.running)
        .map(|j| j.power_w)
        .sum();
    // The panel must carry the work now: the rule takes what the sun gives, it does not bet
    // on sun to come.
    if candidates.is_empty() || total_s > SOLAR_CARRIED_MAX_S || surplus_now < power + running_w {
        return None;
    }
    let mut jobs: Vec<(&PlannedJob, bool)> = input
        .queue
        .iter()
        .map(|j| (j, false))
        .chain(candidates.iter().map(|c| (c, true)))
        .collect();
    jobs.sort_by(|(a, _), (b, _)| {
        b.running
            .cmp(&a.running)
            .then(a.deadline_s.total_cmp(&b.deadline_s))
    });
    let latest = jobs
        .iter()
        .map(|(j, _)| j.deadline_s)
        .fold(f64::MIN, f64::max);
    let mut t = input.now_s;
    let mut index = 0;
    let mut left = jobs[0].0.remaining_s;
    let mut paused_s = 0.0;
    let mut spare_s = f64::INFINITY;
    let mut steps = 0;
    let horizon = latest.min(input.now_s + SOLAR_CARRIED_MAX_S);
    while index < jobs.len() {
        if t >= horizon || steps >= MAX_PLAN_STEPS {
            return None;
        }
        steps += 1;
        let trusted = t < input.now_s + NOWCAST_TRUST_S;
        let step = if trusted {
            input.step_s.min(input.now_s + NOWCAST_TRUST_S - t)
        } else {
            input.step_s
        };
        let surplus = if trusted {
            let trend = input.sky_trend.map_or(1.0, |f| f(t + step / 2.0));
            (surplus_now + input.idle_w) * trend.max(0.0) - input.idle_w
        } else {
            (input.pv_w)(t + step / 2.0).max(0.0) - input.idle_w
        };
        let mut run = step;
        let need = |job: &PlannedJob| {
            if job.running {
                running_w
            } else {
                job.power_w + running_w
            }
        };
        while run > 1e-9 && index < jobs.len() && surplus >= need(jobs[index].0) {
            let done = left.min(run);
            left -= done;
            run -= done;
            if left <= 1e-9 {
                let (job, new) = jobs[index];
                let finish = t + step - run;
                // Room for one interruption as long as the job itself: the sky measured now
                // and the forecast are not promises.
                let slack = if new { job.remaining_s } else { 0.0 };
                if finish > job.deadline_s - slack + 1e-6 {
                    return None;
                }
                if new {
                    spare_s = spare_s.min(job.deadline_s - finish);
                }
                index += 1;
                left = jobs.get(index).map_or(0.0, |(j, _)| j.remaining_s);
            }
        }
        if index < jobs.len() {
            paused_s += run;
        }
        t += step;
    }
    let paused = if paused_s > 0.0 {
        format!(" and paused {:.0} min where it does not", paused_s / 60.0)
    } else {
        String::new()
    };
    Some(format!(
        "solar-carried: {power:.1} W of work planned on the panel's surplus alone (measured \
         {surplus_now:.1} W now, carried {:.0} min along the sun's course, then the forecast), \
         run while it carries the task in turn{paused} and never on the battery; all {} job(s) \
         end in time, the new one {:.0} min before its deadline",
        NOWCAST_TRUST_S / 60.0,
        jobs.len(),
        spare_s / 60.0
    ))
}

/// Keeps decisions from flapping: once the check has said no, a yes needs `band_wh` more
/// headroom (and a battery `band_wh` above its reserve) than staying open does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hysteresis {
    /// The extra energy needed to reopen.
    pub band_wh: f64,
    /// Whether the last decision was a yes.
    pub open: bool,
}

impl Hysteresis {
    /// Starts closed: the first yes already needs the band.
    pub fn new(band_wh: f64) -> Self {
        Self {
            band_wh,
            open: false,
        }
    }

    /// Runs the check with the margin the current state asks for, and remembers the outcome.
    pub fn decide(&mut self, input: &BudgetInput<'_>, candidates: &[PlannedJob]) -> Verdict {
        let mut input = input.clone();
        input.margin_wh = if self.open { 0.0 } else { self.band_wh };
        let verdict = check(&input, candidates);
        // A yes on the panel alone does not open the band for the battery plan.
        self.open = verdict.admit && !verdict.solar_carried;
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn battery() -> BatteryModel {
        BatteryModel {
            capacity_wh: 100.0,
            floor_wh: 30.0,
            charge_efficiency: 1.0,
            discharge_efficiency: 1.0,
        }
    }

    fn job(id: &str, power_w: f64, hours: f64, deadline_h: f64) -> PlannedJob {
        PlannedJob {
            id: id.into(),
            power_w,
            remaining_s: hours * 3600.0,
            deadline_s: deadline_h * 3600.0,
            running: false,
        }
    }

    fn input<'a>(
        battery_wh: f64,
        pv: &'a dyn Fn(f64) -> f64,
        queue: &'a [PlannedJob],
    ) -> BudgetInput<'a> {
        BudgetInput {
            now_s: 0.0,
            battery_wh,
            battery: battery(),
            idle_w: 2.0,
            pv_w: pv,
            queue,
            step_s: 60.0,
            horizon_s: 24.0 * 3600.0,
            margin_wh: 0.0,
            surplus_now_w: None,
            sky_trend: None,
        }
    }

    #[test]
    fn the_battery_flow_clamps_at_full_and_empty_with_losses() {
        let model = BatteryModel {
            charge_efficiency: 0.9,
            discharge_efficiency: 0.8,
            ..battery()
        };
        let full = model.step(99.0, 20.0, 3600.0);
        assert!((full.energy_wh - 100.0).abs() < 1e-9);
        assert!((full.curtailed_wh - (18.0 - 1.0) / 0.9).abs() < 1e-9);
        let empty = model.step(4.0, -8.0, 3600.0);
        assert_eq!(empty.energy_wh, 0.0);
        assert!((empty.shortfall_wh - (10.0 - 4.0) * 0.8).abs() < 1e-9);
    }

    #[test]
    fn work_on_pv_surplus_is_admitted_and_work_on_the_reserve_is_not() {
        let sunny = |_t: f64| 10.0;
        let verdict = check(&input(30.0, &sunny, &[]), &[job("a", 5.0, 2.0, 5.0)]);
        assert!(verdict.admit, "{verdict:?}");
        let dark = |_t: f64| 0.0;
        // Battery at 50 Wh, floor 30: 2 h × 5 W = 10 Wh above the idle's own draw. Idle alone
        // drains 48 Wh a day and goes under the floor anyway; the work must not deepen that.
        let verdict = check(&input(50.0, &dark, &[]), &[job("a", 5.0, 2.0, 5.0)]);
        assert!(!verdict.admit, "{verdict:?}");
        assert!(verdict.reasons[0].contains("reserve"), "{verdict:?}");
    }

    #[test]
    fn battery_charge_above_the_reserve_carries_work_into_the_night() {
        // 6 hours of 20 W sun, then night; the battery gets full and the work runs on it.
        let day = |t: f64| if t < 6.0 * 3600.0 { 20.0 } else { 0.0 };
        let verdict = check(&input(60.0, &day, &[]), &[job("a", 5.0, 1.0, 10.0)]);
        assert!(verdict.admit, "{verdict:?}");
        // The same work with a deadline only the night can meet, queued behind a long job.
        let queue = [job("q", 5.0, 5.9, 6.0)];
        let verdict = check(&input(60.0, &day, &queue), &[job("b", 5.0, 1.0, 7.0)]);
        assert!(verdict.admit, "{verdict:?}");
        assert!(verdict.finishes[1].unwrap() > 6.0 * 3600.0);
    }

    #[test]
    fn a_deadline_that_cannot_be_met_is_refused_with_the_job_named() {
        let sunny = |_t: f64| 50.0;
        let queue = [job("long", 5.0, 3.0, 3.5)];
        let verdict = check(&input(80.0, &sunny, &queue), &[job("short", 5.0, 1.0, 3.0)]);
        assert!(!verdict.admit);
        assert!(
            verdict.reasons.iter().any(|r| r.contains("deadline")),
            "{verdict:?}"
        );
    }

    #[test]
    fn under_the_reserve_nothing_is_admitted_whatever_the_forecast() {
        let blazing = |_t: f64| 500.0;
        let verdict = check(&input(29.0, &blazing, &[]), &[job("a", 1.0, 0.1, 5.0)]);
        assert!(!verdict.admit);
        let mut with_margin = input(31.0, &blazing, &[]);
        with_margin.margin_wh = 3.0;
        let verdict = check(&with_margin, &[job("a", 1.0, 0.1, 5.0)]);
        assert!(!verdict.admit, "hysteresis keeps it closed until 33 Wh");
        assert!(verdict.reasons[0].contains("hysteresis"));
    }

    #[test]
    fn hysteresis_needs_the_band_to_reopen_but_not_to_stay_open() {
        let sunny = |_t: f64| 10.0;
        let mut gate = Hysteresis::new(2.0);
        let candidate = [job("a", 1.0, 0.1, 5.0)];
        assert!(
            !gate.decide(&input(31.0, &sunny, &[]), &candidate).admit,
            "closed: 31 < 30 + 2"
        );
        assert!(gate.decide(&input(32.5, &sunny, &[]), &candidate).admit);
        assert!(
            gate.decide(&input(30.5, &sunny, &[]), &candidate).admit,
            "open: stays open above 30"
        );
        assert!(!gate.decide(&input(29.9, &sunny, &[]), &candidate).admit);
        assert!(!gate.decide(&input(31.0, &sunny, &[]), &candidate).admit);
    }

    /// An XS task of `power_w` for 300 s with a 2100 s contribution window.
    fn xs(power_w: f64) -> PlannedJob {
        PlannedJob {
            id: "xs".into(),
            power_w,
            remaining_s: 300.0,
            deadline_s: 2100.0,
            running: false,
        }
    }

    #[test]
    fn under_the_reserve_the_panel_alone_carries_a_short_task() {
        // The battery sits under its reserve and the forecast (P10) is dark: the plan has no
        // room. The surplus measured now carries the task's 3.7 W for its whole 300 s.
        let dark = |_t: f64| 0.0;
        let mut scarce = input(25.0, &dark, &[]);
        scarce.surplus_now_w = Some(4.0);
        let verdict = check(&scarce, &[xs(3.7)]);
        assert!(verdict.admit && verdict.solar_carried, "{verdict:?}");
        assert!(
            verdict.reasons[0].starts_with("solar-carried"),
            "{verdict:?}"
        );
        assert!(
            verdict.reasons[1].contains("under its reserve"),
            "the plan's own no is kept as an explanation: {verdict:?}"
        );
        // Above the reserve, where the plan keeps the charge for the night, the rule takes it
        // too, marked as taken on the panel alone: the executor runs it only while the panel
        // carries it (until it is due), so the charge stays the plan's.
        let mut above = scarce.clone();
        above.battery_wh = 50.0;
        let verdict = check(&above, &[xs(3.7)]);
        assert!(verdict.admit && verdict.solar_carried, "{verdict:?}");
        assert!(
            verdict.reasons[1].contains("into its reserve"),
            "{verdict:?}"
        );
        // A task already running keeps drawing beside the new one: 4 W carry one, not two.
        let running = [PlannedJob {
            running: true,
            ..xs(3.7)
        }];
        let mut busy = scarce.clone();
        busy.queue = &running;
        assert!(!check(&busy, &[xs(3.7)]).admit);
        // Less surplus than the task's power, no measurement, or other work admitted: no.
        scarce.surplus_now_w = Some(3.6);
        assert!(!check(&scarce, &[xs(3.7)]).admit);
        scarce.surplus_now_w = None;
        assert!(!check(&scarce, &[xs(3.7)]).admit);
        // Work already running goes first: behind 1600 s of it, dark after the trusted
        // 15 minutes, the task cannot be done; on a sunny forecast it can.
        scarce.surplus_now_w = Some(10.0);
        let queue = [PlannedJob {
            remaining_s: 1600.0,
            deadline_s: 5000.0,
            running: true,
            ..xs(3.7)
        }];
        scarce.queue = &queue;
        let later = PlannedJob {
            deadline_s: 3000.0,
            ..xs(3.7)
        };
        assert!(!check(&scarce, std::slice::from_ref(&later)).admit);
        let sunny = |_t: f64| 10.0;
        scarce.pv_w = &sunny;
        assert!(check(&scarce, &[later]).solar_carried);
    }

    #[test]
    fn work_longer_than_the_trusted_sky_needs_the_forecast_until_its_deadline() {
        let task = |deadline_s: f64| PlannedJob {
            id: "m".into(),
            power_w: 3.7,
            remaining_s: 3000.0,
            deadline_s,
            running: false,
        };
        // Measured 5 W of surplus, then a dark forecast: 900 s of 3000 s done, never the rest.
        let dark = |_t: f64| 0.0;
        let mut scarce = input(25.0, &dark, &[]);
        scarce.surplus_now_w = Some(5.0);
        assert!(!check(&scarce, &[task(8400.0)]).admit);
        // The forecast carries it from 20 minutes on: it pauses 5 minutes, then ends in time.
        let later = |t: f64| if t >= 1200.0 { 8.0 } else { 0.0 };
        scarce.pv_w = &later;
        let verdict = check(&scarce, &[task(8400.0)]);
        assert!(verdict.solar_carried, "{verdict:?}");
        assert!(verdict.reasons[0].contains("paused 5 min"), "{verdict:?}");
        // ... but not when its deadline comes first.
        assert!(!check(&scarce, &[task(3000.0)]).admit);
        // ... nor with no room left for an interruption as long as the work itself.
        assert!(!check(&scarce, &[task(6000.0)]).admit);
        assert!(check(&scarce, &[task(6300.0)]).admit);
        // Dark now, sunny later: the panel must carry the work now; sun to come is the battery
        // plan's business (and it says no under the reserve).
        scarce.surplus_now_w = Some(0.0);
        let short = PlannedJob {
            remaining_s: 1200.0,
            ..task(8400.0)
        };
        assert!(!check(&scarce, &[short]).admit);
        // The sky measured now follows the sun: at dusk it carries nothing.
        let dusk = |_t: f64| 0.0;
        scarce.surplus_now_w = Some(5.0);
        scarce.sky_trend = Some(&dusk);
        scarce.pv_w = &dark;
        assert!(!check(&scarce, &[xs(3.7)]).admit);
        // Work longer than an hour never counts on the panel alone.
        let sunny = |_t: f64| 20.0;
        scarce.pv_w = &sunny;
        scarce.sky_trend = None;
        let long = PlannedJob {
            remaining_s: 3.0 * 3600.0,
            ..task(20.0 * 3600.0)
        };
        assert!(!check(&scarce, &[long]).solar_carried);
    }

    #[test]
    fn several_candidates_each_meet_their_deadline_one_after_the_other() {
        let sunny = |_t: f64| 10.0;
        let mut scarce = input(20.0, &sunny, &[]);
        scarce.surplus_now_w = Some(8.0);
        let two = [xs(3.7), xs(3.7)];
        assert!(check(&scarce, &two).solar_carried);
        // Each new task keeps room for an interruption as long as itself: 300 s.
        let early = PlannedJob {
            deadline_s: 700.0,
            ..xs(3.7)
        };
        let either = [xs(3.7), early.clone()];
        assert!(
            check(&scarce, &either).solar_carried,
            "the early one runs first"
        );
        let both_early = [early.clone(), early];
        assert!(!check(&scarce, &both_early).admit);
    }
}

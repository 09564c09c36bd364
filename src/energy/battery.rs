//! The battery's state of charge, estimated the way good battery monitors do (ANCHORS §5.2):
//! count the charge that flows (trapezoids, a charge efficiency, a dead band against sensor
//! noise), and re-anchor on the voltage knees where voltage does say something: full (charge
//! voltage reached and the current tailed off) and empty (voltage sagging under light load).
//! On a LiFePO4 plateau voltage says almost nothing, so it is never used in between.

use serde::{Deserialize, Serialize};

/// Battery chemistry: sets the voltage anchors and the default charge efficiency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Chemistry {
    /// Lithium iron phosphate (3.2 V nominal per cell).
    Lifepo4,
    /// Lead-acid, flooded or AGM (2 V nominal per cell).
    LeadAcid,
}

impl std::str::FromStr for Chemistry {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().replace(['_', ' '], "-").as_str() {
            "lifepo4" | "lfp" => Ok(Self::Lifepo4),
            "lead-acid" | "lead" | "agm" => Ok(Self::LeadAcid),
            other => Err(format!(
                "battery chemistry `{other}` is not `lifepo4` or `lead-acid`"
            )),
        }
    }
}

impl Chemistry {
    /// Nominal cell voltage.
    pub fn cell_nominal_v(self) -> f64 {
        match self {
            Self::Lifepo4 => 3.2,
            Self::LeadAcid => 2.0,
        }
    }

    /// Charge efficiency a monitor assumes (Victron's 95 % for lead; ~99 % for LiFePO4).
    pub fn default_charge_efficiency(self) -> f64 {
        match self {
            Self::Lifepo4 => 0.99,
            Self::LeadAcid => 0.95,
        }
    }

    /// Cell voltage at or above which a tailing charge current means "full".
    fn full_cell_v(self) -> f64 {
        match self {
            Self::Lifepo4 => 3.45,
            Self::LeadAcid => 2.35,
        }
    }

    /// Cell voltage at or under which a light discharge means "empty enough to re-anchor".
    fn empty_cell_v(self) -> f64 {
        match self {
            Self::Lifepo4 => 2.95,
            Self::LeadAcid => 1.95,
        }
    }

    /// The state of charge the empty anchor sets.
    fn empty_soc(self) -> f64 {
        match self {
            Self::Lifepo4 => 0.02,
            Self::LeadAcid => 0.15,
        }
    }

    /// Rested open-circuit cell voltage at `soc` (ANCHORS §5.1 tables), for simulations.
    pub fn open_circuit_cell_v(self, soc: f64) -> f64 {
        let table: &[(f64, f64)] = match self {
            Self::Lifepo4 => &[
                (0.0, 2.80),
                (0.05, 3.00),
                (0.10, 3.15),
                (0.20, 3.21),
                (0.30, 3.25),
                (0.50, 3.28),
                (0.70, 3.31),
                (0.90, 3.33),
                (0.95, 3.35),
                (0.99, 3.40),
                (1.0, 3.42),
            ],
            Self::LeadAcid => &[
                (0.0, 1.93),
                (0.2, 1.95),
                (0.5, 2.017),
                (0.8, 2.083),
                (1.0, 2.117),
            ],
        };
        let soc = soc.clamp(0.0, 1.0);
        let index = table
            .partition_point(|(s, _)| *s < soc)
            .clamp(1, table.len() - 1);
        let ((s0, v0), (s1, v1)) = (table[index - 1], table[index]);
        v0 + (soc - s0) / (s1 - s0) * (v1 - v0)
    }
}

/// What the estimator needs to know about the battery.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatterySpec {
    /// Chemistry.
    pub chemistry: Chemistry,
    /// Usable capacity in Wh.
    pub capacity_wh: f64,
    /// Nominal pack voltage (12.8 for a 4S LiFePO4, 12 for a 6-cell lead-acid).
    pub nominal_v: f64,
    /// Fraction of charge current that ends up stored.
    pub charge_efficiency: f64,
}

impl BatterySpec {
    /// Capacity in ampere-hours at the nominal voltage.
    pub fn capacity_ah(&self) -> f64 {
        self.capacity_wh / self.nominal_v
    }

    fn cells(&self) -> f64 {
        (self.nominal_v / self.chemistry.cell_nominal_v())
            .round()
            .max(1.0)
    }
}

/// The estimator's persistent state: written on a clean stop and periodically, read at start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EstimatorState {
    /// State of charge, 0..=1.
    pub soc: f64,
    /// When it was last updated (unix seconds).
    pub time_s: f64,
}

/// Coulomb counter with voltage anchors.
#[derive(Debug, Clone)]
pub struct Estimator {
    spec: BatterySpec,
    soc: f64,
    last: Option<(f64, f64)>,
    full_since: Option<f64>,
    empty_since: Option<f64>,
    /// Times the count was re-anchored at full or empty.
    pub anchors: u32,
}

/// Currents smaller than this share of capacity (per hour) are sensor noise, not charge.
const DEAD_BAND_C: f64 = 0.001;
/// Tail current (share of capacity) below which a battery at charge voltage is full.
const TAIL_C: f64 = 0.03;
/// Seconds the full or empty condition must hold.
const FULL_HOLD_S: f64 = 60.0;
const EMPTY_HOLD_S: f64 = 30.0;
/// Discharge at most this share of capacity per hour for the empty anchor to count.
const LIGHT_LOAD_C: f64 = 0.1;
/// A gap longer than this between samples is not integrated (the node was off).
const MAX_GAP_S: f64 = 600.0;

impl Estimator {
    /// Starts at `soc` (from the persisted state, or a guess until the first anchor).
    pub fn new(spec: BatterySpec, soc: f64) -> Self {
        Self {
            spec,
            soc: soc.clamp(0.0, 1.0),
            last: None,
            full_since: None,
            empty_since: None,
            anchors: 0,
        }
    }

    /// The battery.
    pub fn spec(&self) -> &BatterySpec {
        &self.spec
    }

    /// State of charge, 0..=1.
    pub fn soc(&self) -> f64 {
        self.soc
    }

    /// Stored energy, Wh.
    pub fn energy_wh(&self) -> f64 {
        self.soc * self.spec.capacity_wh
    }

    /// What to persist.
    pub fn state(&self, time_s: f64) -> EstimatorState {
        EstimatorState {
            soc: self.soc,
            time_s,
        }
    }

    /// Replaces the count with a source's own state of charge (a SmartShunt, a fuel gauge).
    pub fn set_soc(&mut self, soc: f64) {
        if soc.is_finite() {
            self.soc = soc.clamp(0.0, 1.0);
        }
    }

    /// Feeds one measurement: pack voltage and current (positive while charging).
    pub fn update(&mut self, time_s: f64, voltage_v: f64, current_a: f64) {
        let capacity_ah = self.spec.capacity_ah();
        let current = if current_a.abs() < DEAD_BAND_C * capacity_ah {
            0.0
        } else {
            current_a
        };
        if let Some((last_s, last_a)) = self.last {
            let dt = time_s - last_s;
            if dt > 0.0 && dt <= MAX_GAP_S {
                let mean_a = (last_a + current) / 2.0;
                let efficiency = if mean_a > 0.0 {
                    self.spec.charge_efficiency
                } else {
                    1.0
                };
                self.soc += mean_a * efficiency * dt / 3600.0 / capacity_ah;
                self.soc = self.soc.clamp(0.0, 1.0);
            }
        }
        self.last = Some((time_s, current));

        let cell_v = voltage_v / self.spec.cells();
        let chemistry = self.spec.chemistry;
        let full =
            cell_v >= chemistry.full_cell_v() && current >= 0.0 && current <= TAIL_C * capacity_ah;
        if !full {
            self.full_since = None;
        } else if self.full_since.is_none() {
            self.full_since = Some(time_s);
        } else if self
            .full_since
            .is_some_and(|t| t.is_finite() && time_s - t >= FULL_HOLD_S)
        {
            self.soc = 1.0;
            self.anchors += 1;
            // Anchored for this charge; the next anchor needs the condition to end first.
            self.full_since = Some(f64::INFINITY);
        }
        let empty = cell_v <= chemistry.empty_cell_v()
            && current < 0.0
            && -current <= LIGHT_LOAD_C * capacity_ah;
        if !empty {
            self.empty_since = None;
        } else if self.empty_since.is_none() {
            self.empty_since = Some(time_s);
        } else if self
            .empty_since
            .is_some_and(|t| t.is_finite() && time_s - t >= EMPTY_HOLD_S)
        {
            self.soc = self.soc.min(chemistry.empty_soc());
            self.anchors += 1;
            self.empty_since = Some(f64::INFINITY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A battery as physics has it: true charge efficiency, internal resistance, a charger
    /// that holds its absorption voltage and lets the current tail off near full.
    struct TrueBattery {
        chemistry: Chemistry,
        capacity_ah: f64,
        cells: f64,
        soc: f64,
        efficiency: f64,
    }

    impl TrueBattery {
        /// Applies `wanted_a` (charge positive) for `dt` s; returns (voltage, actual current).
        fn step(&mut self, wanted_a: f64, dt: f64) -> (f64, f64) {
            let mut current = wanted_a;
            let absorbing = self.soc > 0.97 && current > 0.0;
            if absorbing {
                current = current.min(self.capacity_ah * 10.0 * (1.0 - self.soc));
            }
            if current < 0.0 && self.soc <= 0.0 {
                current = 0.0;
            }
            let efficiency = if current > 0.0 { self.efficiency } else { 1.0 };
            self.soc =
                (self.soc + current * efficiency * dt / 3600.0 / self.capacity_ah).clamp(0.0, 1.0);
            let voltage = if absorbing {
                self.cells * (self.chemistry.full_cell_v() + 0.1)
            } else {
                self.cells * self.chemistry.open_circuit_cell_v(self.soc) + current * 0.02
            };
            (voltage, current)
        }
    }

    fn thirty_days(chemistry: Chemistry, nominal_v: f64, true_efficiency: f64) -> (f64, u32) {
        let capacity_wh = 256.0;
        let spec = BatterySpec {
            chemistry,
            capacity_wh,
            nominal_v,
            charge_efficiency: chemistry.default_charge_efficiency(),
        };
        let mut truth = TrueBattery {
            chemistry,
            capacity_ah: capacity_wh / nominal_v,
            cells: spec.cells(),
            soc: 0.8,
            efficiency: true_efficiency,
        };
        let mut estimator = Estimator::new(spec, 0.8);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let dt = 10.0;
        let mut worst: f64 = 0.0;
        for step in 0..(30 * 8640) {
            let t = step as f64 * dt;
            let day = step / 8640;
            let hour = (t % 86_400.0) / 3600.0;
            // Sunny days charge at up to 5 A at noon, every third day is overcast (1.2 A).
            let peak = if day % 3 == 2 { 1.2 } else { 5.0 };
            let sun = ((hour - 6.0) / 12.0 * std::f64::consts::PI).sin().max(0.0);
            let load = if (9.0..17.0).contains(&hour) {
                0.9
            } else {
                0.45
            };
            let (volts, amps) = truth.step(peak * sun - load, dt);
            // Sensors: 1 % gain noise, 2 mA offset, 5 mA and 10 mV white noise.
            let measured_a =
                amps * (1.0 + rng.gen_range(-0.01..0.01)) + 0.002 + rng.gen_range(-0.005..0.005);
            let measured_v = volts + rng.gen_range(-0.01..0.01);
            estimator.update(t, measured_v, measured_a);
            worst = worst.max((estimator.soc() - truth.soc).abs());
        }
        (worst, estimator.anchors)
    }

    #[test]
    fn lifepo4_soc_stays_within_five_percent_over_thirty_noisy_days() {
        let (worst, anchors) = thirty_days(Chemistry::Lifepo4, 12.8, 0.985);
        eprintln!(
            "LiFePO4: worst SoC error {:.2} %, {anchors} anchors",
            worst * 100.0
        );
        assert!(worst < 0.05, "worst SoC error {:.2} %", worst * 100.0);
        assert!(anchors >= 10, "re-anchored at full {anchors} times");
    }

    #[test]
    fn lead_acid_soc_stays_within_five_percent_over_thirty_noisy_days() {
        let (worst, anchors) = thirty_days(Chemistry::LeadAcid, 12.0, 0.93);
        eprintln!(
            "lead-acid: worst SoC error {:.2} %, {anchors} anchors",
            worst * 100.0
        );
        assert!(worst < 0.05, "worst SoC error {:.2} %", worst * 100.0);
        assert!(anchors >= 5, "{anchors}");
    }

    #[test]
    fn counting_without_anchors_drifts_which_is_why_anchors_exist() {
        let spec = BatterySpec {
            chemistry: Chemistry::Lifepo4,
            capacity_wh: 128.0,
            nominal_v: 12.8,
            charge_efficiency: 1.0,
        };
        let mut estimator = Estimator::new(spec, 0.5);
        // One hour at +2 A on a 10 Ah battery: +20 %.
        for s in 0..=360 {
            estimator.update(s as f64 * 10.0, 13.2, 2.0);
        }
        assert!((estimator.soc() - 0.7).abs() < 1e-6, "{}", estimator.soc());
        // Under the dead band nothing is counted.
        for s in 361..=720 {
            estimator.update(s as f64 * 10.0, 13.2, 0.005);
        }
        assert!((estimator.soc() - 0.7).abs() < 1e-3);
        // A long gap (the node was off) is not integrated.
        estimator.update(100_000.0, 13.2, 2.0);
        assert!((estimator.soc() - 0.7).abs() < 1e-3);
        // Sagging to 11.6 V under a light load re-anchors near empty.
        for s in 0..=4 {
            estimator.update(100_010.0 + s as f64 * 10.0, 11.6, -0.5);
        }
        assert!(estimator.soc() <= 0.02 + 1e-9, "{}", estimator.soc());
        assert_eq!(estimator.anchors, 1);
        assert!("LiFePO4".parse::<Chemistry>().is_ok() && "nicd".parse::<Chemistry>().is_err());
    }
}

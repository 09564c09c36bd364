//! What every energy source yields: one timestamped [`Sample`], checked against physical
//! limits before anything downstream trusts it. A source that cannot tell a quantity leaves
//! it `None`; nothing is invented.

use serde::{Deserialize, Serialize};

/// One reading of the node's power system at one instant.
///
/// Signs: battery current is positive while charging, negative while discharging. Powers are
/// in watts, voltages in volts, currents in amperes, times in unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When the reading was taken (unix seconds, fractional).
    pub time_s: f64,
    /// Power the panel delivers now.
    pub pv_w: Option<f64>,
    /// Battery terminal voltage.
    pub battery_v: Option<f64>,
    /// Battery current, positive while charging.
    pub battery_a: Option<f64>,
    /// State of charge as the source itself reports it (0..=1), e.g. a SmartShunt or a fuel
    /// gauge; the estimator prefers its own count when it has one.
    pub battery_soc: Option<f64>,
    /// Power the node (Pi and its peripherals) draws.
    pub load_w: Option<f64>,
    /// The power board's own readings (Witty Pi), when there is one.
    pub board: Option<BoardReading>,
    /// The charge controller's state (VE.Direct `CS`), e.g. "float".
    pub charge_state: Option<String>,
}

/// What a power board such as the Witty Pi 4 measures on its side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BoardReading {
    /// Input voltage (the battery or DC supply).
    pub input_v: f64,
    /// Output voltage (to the Pi).
    pub output_v: f64,
    /// Output current (to the Pi).
    pub output_a: f64,
    /// Board temperature.
    pub temperature_c: Option<f64>,
    /// The board's low-voltage cut-off, if enabled.
    pub low_voltage_v: Option<f64>,
    /// The board's recovery (restart) voltage, if enabled.
    pub recovery_voltage_v: Option<f64>,
}

impl Sample {
    /// A sample at `time_s` with nothing measured yet.
    pub fn at(time_s: f64) -> Self {
        Self {
            time_s,
            ..Self::default()
        }
    }

    /// The first reading outside what a small off-grid node can physically show, if any.
    /// A reading like that comes from a loose wire, a reset chip or a corrupted frame, and
    /// must be dropped rather than fed to the battery count or the forecast.
    pub fn implausible(&self) -> Option<String> {
        let checks: [(&str, Option<f64>, f64, f64); 5] = [
            ("pv_w", self.pv_w, -1.0, 5_000.0),
            ("battery_v", self.battery_v, 0.0, 60.0),
            ("battery_a", self.battery_a, -200.0, 200.0),
            ("battery_soc", self.battery_soc, 0.0, 1.0),
            ("load_w", self.load_w, -1.0, 2_000.0),
        ];
        for (name, value, low, high) in checks {
            if let Some(v) = value
                && (!v.is_finite() || v < low || v > high)
            {
                return Some(format!("{name} = {v} is outside {low}..={high}"));
            }
        }
        if let Some(board) = &self.board {
            for (name, v, high) in [
                ("board input_v", board.input_v, 40.0),
                ("board output_v", board.output_v, 6.0),
                ("board output_a", board.output_a, 10.0),
            ] {
                if !v.is_finite() || !(0.0..=high).contains(&v) {
                    return Some(format!("{name} = {v} is outside 0..={high}"));
                }
            }
        }
        if !self.time_s.is_finite() || self.time_s < 0.0 {
            return Some(format!("time {} is not a unix time", self.time_s));
        }
        None
    }
}

/// Why a source gave no sample.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The device or file could not be reached at all (wrong bus, address, port or path).
    #[error("{source_name}: {what}; check the wiring and the [energy] settings")]
    Unreachable {
        /// The source's name.
        source_name: String,
        /// What failed.
        what: String,
    },
    /// The device answered with something that is not a valid reading; it was dropped.
    #[error("{source_name}: rejected reading: {why}")]
    Rejected {
        /// The source's name.
        source_name: String,
        /// Why it was rejected.
        why: String,
    },
    /// A replayed trace has no more samples.
    #[error("{source_name}: the trace has ended")]
    Ended {
        /// The source's name.
        source_name: String,
    },
}

/// A device or file that yields samples of the node's power system.
///
/// Reads block (I2C, serial and files are synchronous); the monitor calls them off the async
/// runtime. A source counts what it rejected so `pew energy status` can show a flaky sensor.
pub trait EnergySource: Send {
    /// A short name for logs ("ina226@0x40", "trace:summer.csv").
    fn name(&self) -> String;
    /// Takes one reading now.
    fn read(&mut self) -> Result<Sample, SourceError>;
    /// Readings rejected so far (bad frames, out-of-range values, reset chips).
    fn rejected(&self) -> u64;
}

/// Counts rejected readings and logs each one, so no source trusts a bad value silently.
#[derive(Debug, Default, Clone)]
pub struct RejectCounter {
    count: u64,
}

impl RejectCounter {
    /// Records one rejection and returns the error to hand back.
    pub fn reject(&mut self, source_name: &str, why: impl Into<String>) -> SourceError {
        self.count += 1;
        let why = why.into();
        tracing::warn!(source = source_name, rejected = self.count, %why, "energy reading rejected");
        SourceError::Rejected {
            source_name: source_name.to_string(),
            why,
        }
    }

    /// Rejections so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Passes `sample` through if plausible, else counts and rejects it.
    pub fn check(&mut self, source_name: &str, sample: Sample) -> Result<Sample, SourceError> {
        match sample.implausible() {
            Some(why) => Err(self.reject(source_name, why)),
            None => Ok(sample),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implausible_readings_are_named_and_counted() {
        let mut counter = RejectCounter::default();
        let mut sample = Sample::at(1.0);
        sample.battery_v = Some(13.2);
        assert!(counter.check("t", sample.clone()).is_ok());
        sample.battery_v = Some(f64::NAN);
        let error = counter.check("t", sample.clone()).unwrap_err();
        assert!(error.to_string().contains("battery_v"), "{error}");
        sample.battery_v = Some(75.0);
        assert!(counter.check("t", sample).is_err());
        assert_eq!(counter.count(), 2);
    }
}

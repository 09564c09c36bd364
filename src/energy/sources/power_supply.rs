//! Linux `power_supply` class (`/sys/class/power_supply/<name>/`): UPS HATs with a fuel gauge,
//! laptops and dev boards whose kernel driver already knows the battery. Nothing to wire; the
//! kernel does the talking.
//!
//! Units per `include/linux/power_supply.h`: µV, µA, µW, percent. Absent properties mean the
//! driver does not measure them and stay `None`. The sign of `current_now` differs between
//! drivers, so it is normalised with `status`: negative while "Discharging", positive while
//! "Charging".

use std::io;
use std::path::{Path, PathBuf};

use crate::clock::unix_now;
use crate::energy::sample::{EnergySource, RejectCounter, Sample, SourceError};

/// Where the kernel exposes power supplies.
pub const DEFAULT_ROOT: &str = "/sys/class/power_supply";

/// A battery seen through the kernel's `power_supply` class, as an energy source.
pub struct PowerSupply {
    root: PathBuf,
    wanted: Option<String>,
    found: Option<String>,
    rejects: RejectCounter,
}

impl PowerSupply {
    /// Reads supply `name` (e.g. "BAT0"), or, with `None`, the first supply of type Battery
    /// (by name order, looked up again until one appears), under `/sys/class/power_supply`.
    pub fn new(name: Option<String>) -> Self {
        Self::with_root(DEFAULT_ROOT, name)
    }

    /// Same, under another folder: tests and containers with sysfs mounted elsewhere.
    pub fn with_root(root: impl Into<PathBuf>, name: Option<String>) -> Self {
        Self {
            root: root.into(),
            found: name.clone(),
            wanted: name,
            rejects: RejectCounter::default(),
        }
    }

    fn unreachable(&self, what: impl Into<String>) -> SourceError {
        SourceError::Unreachable {
            source_name: self.name(),
            what: what.into(),
        }
    }

    /// The supply folder to read now.
    fn supply_dir(&mut self) -> Result<PathBuf, SourceError> {
        if let Some(name) = &self.wanted {
            let dir = self.root.join(name);
            if !dir.is_dir() {
                return Err(self.unreachable(format!("{} does not exist", dir.display())));
            }
            return Ok(dir);
        }
        if let Some(name) = &self.found {
            let dir = self.root.join(name);
            if dir.is_dir() {
                return Ok(dir);
            }
        }
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| self.unreachable(format!("cannot list {}: {e}", self.root.display())))?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let battery = names.into_iter().find(|name| {
            read_property(&self.root.join(name), "type").is_some_and(|kind| kind == "Battery")
        });
        match battery {
            Some(name) => {
                tracing::info!(supply = %name, "using power supply");
                let dir = self.root.join(&name);
                self.found = Some(name);
                Ok(dir)
            }
            None => Err(self.unreachable(format!(
                "no power supply of type Battery under {}",
                self.root.display()
            ))),
        }
    }
}

/// One property's text, trimmed; `None` if the driver does not provide it. Some drivers
/// expose a property yet fail to read it while the battery is absent or busy (ENODATA, EIO);
/// that is treated as "not measured now", not as a bad value.
fn read_property(dir: &Path, property: &str) -> Option<String> {
    match std::fs::read_to_string(dir.join(property)) {
        Ok(text) => Some(text.trim().to_string()).filter(|t| !t.is_empty()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::debug!(property, error = %e, "power_supply property unreadable; left out");
            None
        }
    }
}

impl EnergySource for PowerSupply {
    fn name(&self) -> String {
        format!(
            "power_supply:{}",
            self.found.as_deref().unwrap_or("(first battery)")
        )
    }

    fn read(&mut self) -> Result<Sample, SourceError> {
        let dir = self.supply_dir()?;
        let name = self.name();
        let mut problem = None;
        let mut number = |property: &str, scale: f64| -> Option<f64> {
            let raw = read_property(&dir, property)?;
            match raw.parse::<i64>() {
                Ok(value) => Some(value as f64 * scale),
                Err(_) => {
                    problem.get_or_insert(format!("{property} = {raw:?} is not a number"));
                    None
                }
            }
        };
        let voltage = number("voltage_now", 1e-6);
        let current = number("current_now", 1e-6);
        let power = number("power_now", 1e-6);
        let capacity = number("capacity", 0.01);
        if let Some(why) = problem {
            return Err(self.rejects.reject(&name, why));
        }
        let status = read_property(&dir, "status");

        let direction = match status.as_deref() {
            Some("Charging") => Some(1.0),
            Some("Discharging") => Some(-1.0),
            _ => None,
        };
        let battery_a = match (current, direction) {
            (Some(amps), Some(sign)) => Some(sign * amps.abs()),
            (Some(amps), None) => Some(amps),
            // No current, but power and voltage: I = P / V, signed by the status.
            (None, Some(sign)) => match (power, voltage) {
                (Some(watts), Some(volts)) if volts > 0.0 => Some(sign * watts.abs() / volts),
                _ => None,
            },
            (None, None) => None,
        };

        let mut sample = Sample::at(unix_now());
        sample.battery_v = voltage;
        sample.battery_a = battery_a;
        sample.battery_soc = capacity;
        sample.charge_state = status.map(|s| s.to_lowercase());
        self.rejects.check(&name, sample)
    }

    fn rejected(&self) -> u64 {
        self.rejects.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supply(root: &Path, name: &str, properties: &[(&str, &str)]) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (property, value) in properties {
            std::fs::write(dir.join(property), format!("{value}\n")).unwrap();
        }
    }

    #[test]
    fn a_named_battery_reads_volts_amps_and_charge_from_micro_units() {
        let root = tempfile::tempdir().unwrap();
        supply(
            root.path(),
            "BAT0",
            &[
                ("type", "Battery"),
                ("status", "Discharging"),
                ("voltage_now", "12600000"),
                ("current_now", "-850000"),
                ("capacity", "76"),
            ],
        );
        let mut source = PowerSupply::with_root(root.path(), Some("BAT0".into()));
        let sample = source.read().unwrap();
        assert_eq!(sample.battery_v, Some(12.6));
        assert_eq!(sample.battery_a, Some(-0.85));
        assert_eq!(sample.battery_soc, Some(0.76));
        assert_eq!(sample.charge_state.as_deref(), Some("discharging"));
        assert_eq!(source.name(), "power_supply:BAT0");
    }

    #[test]
    fn a_driver_that_reports_discharge_as_positive_is_normalised() {
        let root = tempfile::tempdir().unwrap();
        supply(
            root.path(),
            "battery",
            &[
                ("type", "Battery"),
                ("status", "Discharging"),
                ("current_now", "850000"),
            ],
        );
        let mut source = PowerSupply::with_root(root.path(), Some("battery".into()));
        assert_eq!(source.read().unwrap().battery_a, Some(-0.85));
    }

    #[test]
    fn without_a_name_the_first_battery_is_chosen_and_mains_is_skipped() {
        let root = tempfile::tempdir().unwrap();
        supply(root.path(), "AC", &[("type", "Mains"), ("online", "1")]);
        supply(
            root.path(),
            "BAT1",
            &[("type", "Battery"), ("voltage_now", "3700000")],
        );
        supply(
            root.path(),
            "BAT0",
            &[("type", "Battery"), ("voltage_now", "3900000")],
        );
        let mut source = PowerSupply::with_root(root.path(), None);
        assert_eq!(source.read().unwrap().battery_v, Some(3.9));
        assert_eq!(source.name(), "power_supply:BAT0");
    }

    #[test]
    fn missing_properties_stay_unknown() {
        let root = tempfile::tempdir().unwrap();
        supply(
            root.path(),
            "max17048",
            &[("type", "Battery"), ("capacity", "55")],
        );
        let mut source = PowerSupply::with_root(root.path(), None);
        let sample = source.read().unwrap();
        assert_eq!(sample.battery_soc, Some(0.55));
        assert_eq!(sample.battery_v, None);
        assert_eq!(sample.battery_a, None);
        assert_eq!(sample.charge_state, None);
    }

    #[test]
    fn current_is_derived_from_power_when_the_driver_gives_only_power() {
        let root = tempfile::tempdir().unwrap();
        supply(
            root.path(),
            "BAT0",
            &[
                ("type", "Battery"),
                ("status", "Charging"),
                ("voltage_now", "12000000"),
                ("power_now", "6000000"),
            ],
        );
        let mut source = PowerSupply::with_root(root.path(), None);
        assert_eq!(source.read().unwrap().battery_a, Some(0.5));
    }

    #[test]
    fn an_unparsable_value_is_rejected_and_counted() {
        let root = tempfile::tempdir().unwrap();
        supply(
            root.path(),
            "BAT0",
            &[("type", "Battery"), ("voltage_now", "12.6V")],
        );
        let mut source = PowerSupply::with_root(root.path(), None);
        let error = source.read().unwrap_err();
        assert!(error.to_string().contains("voltage_now"), "{error}");
        assert_eq!(source.rejected(), 1);
    }

    #[test]
    fn a_capacity_above_one_hundred_percent_is_rejected() {
        let root = tempfile::tempdir().unwrap();
        supply(
            root.path(),
            "BAT0",
            &[("type", "Battery"), ("capacity", "180")],
        );
        let mut source = PowerSupply::with_root(root.path(), None);
        assert!(source.read().is_err());
        assert_eq!(source.rejected(), 1);
    }

    #[test]
    fn no_battery_at_all_is_unreachable() {
        let root = tempfile::tempdir().unwrap();
        supply(root.path(), "AC", &[("type", "Mains")]);
        let mut source = PowerSupply::with_root(root.path(), None);
        let error = source.read().unwrap_err();
        assert!(matches!(error, SourceError::Unreachable { .. }), "{error}");
        let mut named = PowerSupply::with_root(root.path(), Some("BAT9".into()));
        assert!(named.read().unwrap_err().to_string().contains("BAT9"));
    }
}

//! TI INA219 / INA226 / INA260 current and voltage monitors on I2C: one driver for the three,
//! since they share the register map and differ only in scales and calibration.
//!
//! The chips lose their calibration and configuration on a brown-out, which is exactly when a
//! solar node's readings matter most; after a reset an INA219/226 reports 0 A, a reading that
//! looks perfectly plausible. So every read checks that the chip still holds what was written;
//! if not, it is re-initialised and that reading is discarded and counted as rejected.

use std::fmt;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::unix_now;
use crate::energy::i2c::I2cDevice;
use crate::energy::sample::{EnergySource, RejectCounter, Sample, SourceError};

/// Configuration register (all three chips).
const REG_CONFIG: u8 = 0x00;
/// Shunt voltage (INA219/226); current (INA260).
const REG_SHUNT_OR_CURRENT: u8 = 0x01;
/// Bus voltage.
const REG_BUS: u8 = 0x02;
/// Power.
const REG_POWER: u8 = 0x03;
/// Current (INA219/226).
const REG_CURRENT: u8 = 0x04;
/// Calibration (INA219/226).
const REG_CALIBRATION: u8 = 0x05;
/// Mask/enable, holds the conversion-ready flag (INA226/260).
const REG_MASK_ENABLE: u8 = 0x06;
/// Manufacturer id (INA226/260).
const REG_MANUFACTURER: u8 = 0xFE;
/// Die id (INA226/260).
const REG_DIE_ID: u8 = 0xFF;

/// "TI" in ASCII, what INA226/260 answer at 0xFE.
pub const TI_MANUFACTURER_ID: u16 = 0x5449;

/// Conversion-ready flag in the INA226/260 mask/enable register.
const CONVERSION_READY_226: u16 = 1 << 3;
/// Conversion-ready flag (CNVR) in the INA219 bus register.
const CONVERSION_READY_219: u16 = 1 << 1;
/// Math overflow flag (OVF) in the INA219 bus register.
const OVERFLOW_219: u16 = 1 << 0;

/// How long a read waits for the chip's first conversion after (re)initialisation; with the
/// averaging configured below one conversion takes about 140 ms.
const CONVERSION_WAIT: Duration = Duration::from_millis(300);
const CONVERSION_POLL: Duration = Duration::from_millis(50);

/// Which of the three chips is on the bus; the register scales differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InaChip {
    /// INA219: 26 V bus, external shunt, 12-bit; no id register.
    Ina219,
    /// INA226: 36 V bus, external shunt, 16-bit.
    Ina226,
    /// INA260: 36 V bus, internal 2 mΩ shunt, factory calibrated.
    Ina260,
}

impl InaChip {
    /// The configuration register's value after power-on; reading it back after we wrote our
    /// own means the chip has reset.
    pub fn power_on_config(self) -> u16 {
        match self {
            Self::Ina219 => 0x399F,
            Self::Ina226 => 0x4127,
            Self::Ina260 => 0x6127,
        }
    }

    /// The upper 12 bits of the die id register (INA226/260), which tell the two apart.
    fn die_id(self) -> Option<u16> {
        match self {
            Self::Ina219 => None,
            Self::Ina226 => Some(0x226),
            Self::Ina260 => Some(0x227),
        }
    }

    fn has_calibration(self) -> bool {
        !matches!(self, Self::Ina260)
    }
}

impl fmt::Display for InaChip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ina219 => "ina219",
            Self::Ina226 => "ina226",
            Self::Ina260 => "ina260",
        })
    }
}

/// Which line a sensor measures (a configuration choice).
pub use crate::config::InaRole;

/// How one INA sensor is wired, as the `[energy]` settings describe it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InaSettings {
    /// The chip model.
    pub chip: InaChip,
    /// The line it measures.
    pub role: InaRole,
    /// Shunt resistance in ohms (ignored for the INA260, whose shunt is inside).
    pub shunt_ohms: f64,
    /// The largest current expected through the shunt, in amperes; sets the resolution
    /// (ignored for the INA260).
    pub max_current_a: f64,
    /// Flip the current's sign, for a shunt wired so that charging reads negative.
    pub invert_current: bool,
}

/// The scales one chip runs with: what the driver writes to the calibration register and how
/// it turns the current and power registers into amperes and watts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Value for the calibration register (`None` on the INA260, which has none).
    pub register: Option<u16>,
    /// Amperes per current-register count, as the chip actually realises it.
    pub current_lsb_a: f64,
    /// Watts per power-register count.
    pub power_lsb_w: f64,
}

impl Calibration {
    /// Works out the calibration for a shunt and a maximum current, following the datasheets:
    /// the current LSB is at least `max_current / 2^15` (so the signed current register covers
    /// the range), `CAL = trunc(k / (I_LSB × R))` with k = 0.04096 (INA219) or 0.00512
    /// (INA226), and the LSB is then recomputed from the truncated CAL so readings are exact.
    pub fn compute(chip: InaChip, shunt_ohms: f64, max_current_a: f64) -> Result<Self, String> {
        let (factor, max_register, power_ratio) = match chip {
            InaChip::Ina260 => {
                return Ok(Self {
                    register: None,
                    current_lsb_a: 1.25e-3,
                    power_lsb_w: 10e-3,
                });
            }
            InaChip::Ina219 => (0.04096, 0xFFFE_u16, 20.0),
            InaChip::Ina226 => (0.00512, 0x7FFF_u16, 25.0),
        };
        if !(shunt_ohms.is_finite() && shunt_ohms > 0.0) {
            return Err(format!(
                "shunt_ohms = {shunt_ohms} must be a positive resistance"
            ));
        }
        if !(max_current_a.is_finite() && max_current_a > 0.0) {
            return Err(format!(
                "max_current_a = {max_current_a} must be a positive current"
            ));
        }
        // The smallest LSB that still covers max_current; if the CAL it needs does not fit the
        // register (tiny shunt, small current), the largest CAL is used, i.e. a coarser LSB.
        let raw = (factor / (max_current_a / 32768.0 * shunt_ohms)).floor();
        if raw < 1.0 {
            return Err(format!(
                "a {shunt_ohms} Ω shunt cannot be calibrated for {max_current_a} A on an {chip}"
            ));
        }
        // The INA219 ignores bit 0 of its calibration register.
        let mut register = raw.min(f64::from(max_register)) as u16;
        if chip == InaChip::Ina219 {
            register &= !1;
        }
        let current_lsb_a = factor / (f64::from(register) * shunt_ohms);
        Ok(Self {
            register: Some(register),
            current_lsb_a,
            power_lsb_w: power_ratio * current_lsb_a,
        })
    }
}

/// The configuration word the driver writes: continuous shunt and bus conversions with
/// averaging (a PWM charger and a Pi's bursty load make single conversions noisy), and for
/// the INA219 the smallest shunt range (PGA) that holds `max_current × shunt`.
pub fn config_word(chip: InaChip, shunt_ohms: f64, max_current_a: f64) -> u16 {
    match chip {
        InaChip::Ina219 => {
            let full_scale_v = max_current_a * shunt_ohms;
            let gain = [0.04, 0.08, 0.16, 0.32]
                .iter()
                .position(|range| full_scale_v <= *range)
                .unwrap_or(3) as u16;
            // 32 V bus range, PGA, 128-sample averaging on bus and shunt, continuous.
            0x2000 | (gain << 11) | (0xF << 7) | (0xF << 3) | 0x7
        }
        // 64 averages, 1.1 ms per conversion on both channels, continuous (bits 14..12 are
        // fixed by the chip and written as they read back).
        InaChip::Ina226 => 0x4000 | (0b011 << 9) | (0b100 << 6) | (0b100 << 3) | 0b111,
        InaChip::Ina260 => 0x6000 | (0b011 << 9) | (0b100 << 6) | (0b100 << 3) | 0b111,
    }
}

/// The largest shunt voltage the chip can measure, in volts.
fn shunt_range_v(chip: InaChip, config: u16) -> f64 {
    match chip {
        InaChip::Ina219 => 0.04 * f64::from(1u16 << ((config >> 11) & 0b11)),
        InaChip::Ina226 => 0.08192,
        InaChip::Ina260 => f64::INFINITY,
    }
}

/// Bus voltage in volts from the bus register, or why it is not a reading.
pub fn bus_voltage(chip: InaChip, raw: u16) -> Result<f64, String> {
    match chip {
        InaChip::Ina219 => {
            if raw & OVERFLOW_219 != 0 {
                return Err(
                    "the INA219 flags a math overflow (current beyond the shunt range)".into(),
                );
            }
            Ok(f64::from(raw >> 3) * 4e-3)
        }
        InaChip::Ina226 | InaChip::Ina260 => Ok(f64::from(raw & 0x7FFF) * 1.25e-3),
    }
}

/// One INA chip as an energy source.
///
/// Generic over the bus so the real driver runs against the register-level fake in tests.
pub struct Ina<D: I2cDevice> {
    device: D,
    settings: InaSettings,
    calibration: Calibration,
    config: u16,
    name: String,
    rejects: RejectCounter,
}

/// What one set of register reads found.
struct RawReading {
    bus: u16,
    current: i16,
    power: Option<u16>,
}

impl<D: I2cDevice> Ina<D> {
    /// Checks the chip is the one configured, writes its configuration and calibration, and
    /// reads them back; any mismatch is an error naming what was found, since a wrong chip
    /// model or a wrong address would otherwise give believable but wrong numbers.
    pub fn new(device: D, settings: InaSettings) -> Result<Self, SourceError> {
        let name = format!("{}:{}", settings.chip, settings.role);
        let calibration =
            Calibration::compute(settings.chip, settings.shunt_ohms, settings.max_current_a)
                .map_err(|what| SourceError::Unreachable {
                    source_name: name.clone(),
                    what,
                })?;
        let config = config_word(settings.chip, settings.shunt_ohms, settings.max_current_a);
        if settings.chip.has_calibration() {
            let range = shunt_range_v(settings.chip, config);
            if settings.max_current_a * settings.shunt_ohms > range {
                tracing::warn!(
                    source = %name,
                    max_current_a = settings.max_current_a,
                    clips_above_a = range / settings.shunt_ohms,
                    "the shunt voltage at max_current_a exceeds the chip's range; larger currents read as rejected"
                );
            }
        }
        let mut ina = Self {
            device,
            settings,
            calibration,
            config,
            name,
            rejects: RejectCounter::default(),
        };
        ina.identify()?;
        ina.initialise()?;
        Ok(ina)
    }

    /// Names the source in logs (e.g. "ina226@0x40" instead of the default "ina226:battery").
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The scales in use, for `pew energy status` and diagnostics.
    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    fn unreachable(&self, what: impl fmt::Display) -> SourceError {
        SourceError::Unreachable {
            source_name: self.name.clone(),
            what: what.to_string(),
        }
    }

    fn read_register(&mut self, register: u8) -> Result<u16, SourceError> {
        self.device
            .read_u16(register)
            .map_err(|e| self.unreachable(format!("reading register {register:#04x}: {e}")))
    }

    fn write_register(&mut self, register: u8, value: u16) -> Result<(), SourceError> {
        self.device
            .write_u16(register, value)
            .map_err(|e| self.unreachable(format!("writing register {register:#04x}: {e}")))
    }

    /// INA226/260: the manufacturer and die ids must match the configured chip.
    fn identify(&mut self) -> Result<(), SourceError> {
        let chip = self.settings.chip;
        let Some(expected_die) = chip.die_id() else {
            return Ok(());
        };
        let manufacturer = self.read_register(REG_MANUFACTURER)?;
        if manufacturer != TI_MANUFACTURER_ID {
            return Err(self.unreachable(format!(
                "manufacturer id is {manufacturer:#06x}, not {TI_MANUFACTURER_ID:#06x} (TI): \
                 this is not an {chip} (wrong address, or another device on it)"
            )));
        }
        let die = self.read_register(REG_DIE_ID)? >> 4;
        if die != expected_die {
            let found = match die {
                0x226 => "an INA226".to_string(),
                0x227 => "an INA260".to_string(),
                other => format!("die id {other:#05x}"),
            };
            return Err(self.unreachable(format!(
                "configured as {chip} but the chip reports {found}; fix the chip setting"
            )));
        }
        Ok(())
    }

    /// Writes configuration and calibration and checks they read back.
    fn initialise(&mut self) -> Result<(), SourceError> {
        let chip = self.settings.chip;
        self.write_register(REG_CONFIG, self.config)?;
        if let Some(cal) = self.calibration.register {
            self.write_register(REG_CALIBRATION, cal)?;
            let read = self.read_register(REG_CALIBRATION)?;
            if read != cal {
                return Err(self.unreachable(format!(
                    "calibration reads back {read:#06x} after writing {cal:#06x}; \
                     is this really an {chip}?"
                )));
            }
        }
        let read = self.read_register(REG_CONFIG)?;
        if read != self.config {
            return Err(self.unreachable(format!(
                "configuration reads back {read:#06x} after writing {:#06x}; \
                 is this really an {chip}?",
                self.config
            )));
        }
        tracing::debug!(
            source = %self.name,
            config = self.config,
            calibration = ?self.calibration.register,
            current_lsb_a = self.calibration.current_lsb_a,
            "INA initialised"
        );
        Ok(())
    }

    /// Waits (briefly) until the chip has finished a conversion since it was configured, and
    /// returns the bus register.
    fn ready_bus_register(&mut self) -> Result<u16, SourceError> {
        let polls = CONVERSION_WAIT.as_millis() / CONVERSION_POLL.as_millis();
        for attempt in 0..=polls {
            if attempt > 0 {
                thread::sleep(CONVERSION_POLL);
            }
            let ready = match self.settings.chip {
                InaChip::Ina219 => {
                    let bus = self.read_register(REG_BUS)?;
                    if bus & CONVERSION_READY_219 != 0 {
                        return Ok(bus);
                    }
                    false
                }
                InaChip::Ina226 | InaChip::Ina260 => {
                    self.read_register(REG_MASK_ENABLE)? & CONVERSION_READY_226 != 0
                }
            };
            if ready {
                return self.read_register(REG_BUS);
            }
        }
        Err(self.rejects.reject(
            &self.name,
            format!("no conversion finished within {CONVERSION_WAIT:?}"),
        ))
    }

    fn read_raw(&mut self) -> Result<RawReading, SourceError> {
        let bus = self.ready_bus_register()?;
        let current_register = match self.settings.chip {
            InaChip::Ina260 => REG_SHUNT_OR_CURRENT,
            InaChip::Ina219 | InaChip::Ina226 => REG_CURRENT,
        };
        let current = self.read_register(current_register)? as i16;
        let power = match self.settings.role {
            InaRole::Battery => None,
            InaRole::Pv | InaRole::Load => Some(self.read_register(REG_POWER)?),
        };
        Ok(RawReading {
            bus,
            current,
            power,
        })
    }

    /// Whether the chip still holds our configuration and calibration. Checked after the
    /// measurement registers are read, so a reset at any point before it is caught.
    fn lost_setup(&mut self) -> Result<Option<String>, SourceError> {
        if let Some(cal) = self.calibration.register {
            let read = self.read_register(REG_CALIBRATION)?;
            if read != cal {
                return Ok(Some(format!(
                    "calibration register reads {read:#06x}, expected {cal:#06x}"
                )));
            }
        }
        let read = self.read_register(REG_CONFIG)?;
        if read != self.config {
            let hint = if read == self.settings.chip.power_on_config() {
                " (its power-on default)"
            } else {
                ""
            };
            return Ok(Some(format!(
                "configuration register reads {read:#06x}{hint}, expected {:#06x}",
                self.config
            )));
        }
        Ok(None)
    }
}

impl<D: I2cDevice> EnergySource for Ina<D> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read(&mut self) -> Result<Sample, SourceError> {
        let raw = self.read_raw()?;
        if let Some(why) = self.lost_setup()? {
            tracing::warn!(source = %self.name, %why, "INA chip has reset (brown-out?); re-initialising");
            self.initialise()?;
            return Err(self.rejects.reject(
                &self.name,
                format!("chip had reset ({why}); re-initialised, reading discarded"),
            ));
        }
        let volts = match bus_voltage(self.settings.chip, raw.bus) {
            Ok(v) => v,
            Err(why) => return Err(self.rejects.reject(&self.name, why)),
        };
        if raw.current == i16::MAX || raw.current == i16::MIN {
            return Err(self.rejects.reject(
                &self.name,
                format!(
                    "current register saturated ({}); the current exceeds max_current_a = {} A",
                    raw.current, self.settings.max_current_a
                ),
            ));
        }
        let sign = if self.settings.invert_current {
            -1.0
        } else {
            1.0
        };
        let amps = sign * f64::from(raw.current) * self.calibration.current_lsb_a;
        let watts = raw
            .power
            .map(|p| f64::from(p) * self.calibration.power_lsb_w);
        let mut sample = Sample::at(unix_now());
        match self.settings.role {
            InaRole::Battery => {
                sample.battery_v = Some(volts);
                sample.battery_a = Some(amps);
            }
            InaRole::Pv => sample.pv_w = watts,
            InaRole::Load => sample.load_w = watts,
        }
        self.rejects.check(&self.name, sample)
    }

    fn rejected(&self) -> u64 {
        self.rejects.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::sources::fakes::FakeIna;

    fn settings(chip: InaChip, role: InaRole, shunt_ohms: f64, max_current_a: f64) -> InaSettings {
        InaSettings {
            chip,
            role,
            shunt_ohms,
            max_current_a,
            invert_current: false,
        }
    }

    fn close(actual: Option<f64>, expected: f64, tolerance: f64) -> bool {
        actual.is_some_and(|a| (a - expected).abs() <= tolerance)
    }

    #[test]
    fn current_lsb_covers_max_current_and_calibration_follows_the_datasheet_formula() {
        let cal = Calibration::compute(InaChip::Ina226, 0.002, 20.0).unwrap();
        assert_eq!(cal.register, Some(4194)); // trunc(0.00512 / (20/32768 × 0.002)) = 4194
        assert!(cal.current_lsb_a >= 20.0 / 32768.0);
        assert!((cal.current_lsb_a - 0.00512 / (4194.0 * 0.002)).abs() < 1e-12);
        assert!((cal.power_lsb_w - 25.0 * cal.current_lsb_a).abs() < 1e-12);

        let cal = Calibration::compute(InaChip::Ina219, 0.1, 3.2).unwrap();
        assert_eq!(cal.register, Some(4194)); // trunc(0.04096 / (3.2/32768 × 0.1)), even
        assert!(cal.current_lsb_a >= 3.2 / 32768.0);
        assert!((cal.power_lsb_w - 20.0 * cal.current_lsb_a).abs() < 1e-12);
    }

    #[test]
    fn calibration_register_never_exceeds_what_the_chip_can_hold() {
        // A tiny shunt with a small current would need a CAL above 15 bits on the INA226.
        let cal = Calibration::compute(InaChip::Ina226, 0.0005, 0.1).unwrap();
        assert_eq!(cal.register, Some(0x7FFF));
        let cal = Calibration::compute(InaChip::Ina219, 0.001, 0.1).unwrap();
        assert_eq!(cal.register.map(|r| r & 1), Some(0));
        assert!(cal.register.unwrap() <= 0xFFFE);
    }

    #[test]
    fn nonsense_shunt_or_current_settings_are_refused() {
        assert!(Calibration::compute(InaChip::Ina226, 0.0, 10.0).is_err());
        assert!(Calibration::compute(InaChip::Ina219, 0.1, -1.0).is_err());
        assert!(Calibration::compute(InaChip::Ina219, f64::NAN, 1.0).is_err());
        assert!(Calibration::compute(InaChip::Ina260, 0.0, 0.0).is_ok());
    }

    #[test]
    fn ina219_gain_is_the_smallest_range_holding_the_full_scale_shunt_voltage() {
        assert_eq!((config_word(InaChip::Ina219, 0.1, 0.35) >> 11) & 0b11, 0); // 35 mV → 40 mV
        assert_eq!((config_word(InaChip::Ina219, 0.1, 1.5) >> 11) & 0b11, 2); // 150 mV → 160 mV
        assert_eq!((config_word(InaChip::Ina219, 0.1, 2.0) >> 11) & 0b11, 3); // 200 mV → 320 mV
        assert_eq!((config_word(InaChip::Ina219, 0.1, 9.0) >> 11) & 0b11, 3); // clips, widest
        assert_eq!(config_word(InaChip::Ina226, 0.1, 1.0), 0x4727);
    }

    #[test]
    fn bus_register_decodes_per_chip() {
        // INA219: 12.6 V = 3150 × 4 mV in bits 15..3, CNVR set.
        assert!((bus_voltage(InaChip::Ina219, (3150 << 3) | 0b10).unwrap() - 12.6).abs() < 1e-9);
        assert!(bus_voltage(InaChip::Ina219, (3150 << 3) | 0b11).is_err());
        // INA226/260: 1.25 mV per count.
        assert!((bus_voltage(InaChip::Ina226, 10080).unwrap() - 12.6).abs() < 1e-9);
        assert!((bus_voltage(InaChip::Ina260, 27_200).unwrap() - 34.0).abs() < 1e-9);
    }

    #[test]
    fn ina219_on_a_tenth_ohm_shunt_reads_one_and_a_half_amps_within_a_milliamp() {
        let fake = FakeIna::new(InaChip::Ina219, 0.1);
        fake.set_current(1.5);
        fake.set_bus_voltage(12.64);
        let mut ina = Ina::new(
            fake.clone(),
            settings(InaChip::Ina219, InaRole::Battery, 0.1, 2.0),
        )
        .unwrap();
        let sample = ina.read().unwrap();
        assert!(close(sample.battery_a, 1.5, 1e-3), "{sample:?}");
        assert!(close(sample.battery_v, 12.64, 4e-3), "{sample:?}");
        assert_eq!(sample.pv_w, None);
        assert_eq!(ina.rejected(), 0);
        // The driver really wrote a calibration (the fake computes from it).
        assert_eq!(
            fake.register(REG_CALIBRATION),
            ina.calibration().register.unwrap()
        );
    }

    #[test]
    fn ina226_battery_current_sign_can_be_inverted_for_a_reversed_shunt() {
        let fake = FakeIna::new(InaChip::Ina226, 0.002);
        fake.set_current(-7.25); // the shunt sees discharge as positive: wired backwards
        fake.set_bus_voltage(25.6);
        let mut s = settings(InaChip::Ina226, InaRole::Battery, 0.002, 20.0);
        s.invert_current = true;
        let mut ina = Ina::new(fake, s).unwrap();
        let sample = ina.read().unwrap();
        assert!(close(sample.battery_a, 7.25, 2e-3), "{sample:?}");
        assert!(close(sample.battery_v, 25.6, 1.25e-3), "{sample:?}");
    }

    #[test]
    fn ina226_on_the_load_line_reports_watts() {
        let fake = FakeIna::new(InaChip::Ina226, 0.01);
        fake.set_current(0.8);
        fake.set_bus_voltage(5.1);
        let mut ina = Ina::new(fake, settings(InaChip::Ina226, InaRole::Load, 0.01, 5.0)).unwrap();
        let sample = ina.read().unwrap();
        // 4.08 W; one power count is 25 × ~153 µA = ~3.8 mW.
        assert!(close(sample.load_w, 4.08, 8e-3), "{sample:?}");
        assert_eq!(sample.battery_a, None);
    }

    #[test]
    fn ina260_on_the_panel_reports_watts_without_calibration() {
        let fake = FakeIna::new(InaChip::Ina260, 0.002);
        fake.set_current(3.1);
        fake.set_bus_voltage(18.2);
        let mut ina = Ina::new(
            fake.clone(),
            settings(InaChip::Ina260, InaRole::Pv, 0.0, 0.0),
        )
        .unwrap();
        let sample = ina.read().unwrap();
        assert!(close(sample.pv_w, 56.42, 10e-3), "{sample:?}");
        assert!(!fake.writes().iter().any(|(reg, _)| *reg == REG_CALIBRATION));
    }

    #[test]
    fn a_chip_that_is_not_from_ti_is_refused_at_start() {
        let fake = FakeIna::new(InaChip::Ina226, 0.002);
        fake.set_register(REG_MANUFACTURER, 0x1234);
        let Err(error) = Ina::new(
            fake,
            settings(InaChip::Ina226, InaRole::Battery, 0.002, 20.0),
        ) else {
            panic!("a wrong manufacturer id was accepted");
        };
        let text = error.to_string();
        assert!(text.contains("0x1234") && text.contains("0x5449"), "{text}");
    }

    #[test]
    fn an_ina260_configured_as_ina226_is_named_in_the_error() {
        let fake = FakeIna::new(InaChip::Ina260, 0.002);
        let Err(error) = Ina::new(
            fake,
            settings(InaChip::Ina226, InaRole::Battery, 0.002, 20.0),
        ) else {
            panic!("a wrong chip model was accepted");
        };
        assert!(error.to_string().contains("an INA260"), "{error}");
    }

    #[test]
    fn a_reset_chip_is_reinitialised_and_its_reading_rejected() {
        let fake = FakeIna::new(InaChip::Ina226, 0.002);
        fake.set_current(4.0);
        fake.set_bus_voltage(13.1);
        let mut ina = Ina::new(
            fake.clone(),
            settings(InaChip::Ina226, InaRole::Battery, 0.002, 20.0),
        )
        .unwrap();
        assert!(close(ina.read().unwrap().battery_a, 4.0, 1e-3));

        fake.power_on_reset();
        assert_eq!(fake.register(REG_CALIBRATION), 0);
        let error = ina.read().unwrap_err();
        assert!(matches!(error, SourceError::Rejected { .. }), "{error}");
        assert_eq!(ina.rejected(), 1);
        // Re-initialised: the calibration is back and the next reading is right again.
        assert_eq!(
            fake.register(REG_CALIBRATION),
            ina.calibration().register.unwrap()
        );
        assert!(close(ina.read().unwrap().battery_a, 4.0, 1e-3));
        assert_eq!(ina.rejected(), 1);
    }

    #[test]
    fn a_reset_ina260_is_noticed_by_its_default_configuration() {
        let fake = FakeIna::new(InaChip::Ina260, 0.002);
        fake.set_current(1.0);
        fake.set_bus_voltage(12.0);
        let mut ina = Ina::new(
            fake.clone(),
            settings(InaChip::Ina260, InaRole::Battery, 0.0, 0.0),
        )
        .unwrap();
        assert!(ina.read().is_ok());
        fake.power_on_reset();
        let error = ina.read().unwrap_err();
        assert!(error.to_string().contains("power-on default"), "{error}");
        assert_eq!(
            fake.register(REG_CONFIG),
            config_word(InaChip::Ina260, 0.0, 0.0)
        );
        assert!(ina.read().is_ok());
    }

    #[test]
    fn ina219_overflow_is_rejected_not_reported_as_a_current() {
        let fake = FakeIna::new(InaChip::Ina219, 0.1);
        fake.set_current(5.0); // 500 mV across the shunt, beyond the ±320 mV range
        fake.set_bus_voltage(12.0);
        let mut ina =
            Ina::new(fake, settings(InaChip::Ina219, InaRole::Battery, 0.1, 2.0)).unwrap();
        let error = ina.read().unwrap_err();
        assert!(error.to_string().contains("overflow"), "{error}");
        assert_eq!(ina.rejected(), 1);
    }

    #[test]
    fn ina226_current_beyond_max_current_is_rejected() {
        let fake = FakeIna::new(InaChip::Ina226, 0.002);
        fake.set_current(30.0); // configured for 20 A: the current register saturates
        fake.set_bus_voltage(12.0);
        let mut ina = Ina::new(
            fake,
            settings(InaChip::Ina226, InaRole::Battery, 0.002, 20.0),
        )
        .unwrap();
        let error = ina.read().unwrap_err();
        assert!(error.to_string().contains("saturated"), "{error}");
        assert_eq!(ina.rejected(), 1);
    }

    #[test]
    fn a_vanished_chip_is_unreachable_not_rejected() {
        let fake = FakeIna::new(InaChip::Ina226, 0.002);
        let mut ina = Ina::new(
            fake.clone(),
            settings(InaChip::Ina226, InaRole::Battery, 0.002, 20.0),
        )
        .unwrap();
        fake.set_unreachable(true);
        let error = ina.read().unwrap_err();
        assert!(matches!(error, SourceError::Unreachable { .. }), "{error}");
        assert_eq!(ina.rejected(), 0);
    }
}

//! The UUGear Witty Pi 4 power board: what it measures (input and output voltage, output
//! current, temperature) as an energy source, and the controls the energy module needs to
//! sleep through the night and wake with the sun (startup/shutdown alarms, low-voltage cut-off
//! and recovery thresholds, guaranteed wake).
//!
//! The board's ATtiny firmware answers single-byte transfers only (a multi-byte read returns
//! 0xFF after the first byte), so everything here reads and writes one byte register at a time;
//! the one exception is the LM75B temperature word, which the firmware relays as two bytes.

use std::fmt;
use std::io;

use crate::clock::unix_now;
use crate::energy::i2c::I2cDevice;
use crate::energy::sample::{BoardReading, EnergySource, RejectCounter, Sample, SourceError};

/// The board's I2C address on the Pi's bus 1 (register 16 can move it; the firmware falls
/// back to 0x08 for invalid values).
pub const WITTYPI_ADDRESS: u16 = 0x08;

const REG_VIN_INTEGER: u8 = 1;
const REG_VOUT_INTEGER: u8 = 3;
const REG_IOUT_INTEGER: u8 = 5;
const REG_POWER_MODE: u8 = 7;
const REG_LV_SHUTDOWN: u8 = 8;
const REG_ACTION_REASON: u8 = 11;
const REG_LOW_VOLTAGE: u8 = 19;
const REG_RECOVERY_VOLTAGE: u8 = 22;
const REG_STARTUP_ALARM: u8 = 27;
const REG_SHUTDOWN_ALARM: u8 = 32;
const REG_GUARANTEED_WAKE: u8 = 49;
const REG_TEMPERATURE: u8 = 50;

/// A threshold register value meaning "disabled".
const THRESHOLD_DISABLED: u8 = 255;

/// Default distance above the board's low-voltage cut-off at which
/// [`WittyPi::low_voltage_warning`] starts warning.
pub const DEFAULT_WARNING_MARGIN_V: f64 = 0.3;

/// Why talking to the board failed.
#[derive(Debug, thiserror::Error)]
pub enum WittyPiError {
    /// The transfer itself failed (board absent, bus error).
    #[error("Witty Pi register {register}: {source}; check the board is on I2C bus 1 at 0x08")]
    Bus {
        /// The register being accessed.
        register: u8,
        /// The bus error.
        source: io::Error,
    },
    /// The board answered with a value its firmware never produces (a garbled transfer).
    #[error("Witty Pi register {register} reads {value}, which is not a valid {what}")]
    Garbled {
        /// The register read.
        register: u8,
        /// What it held.
        value: u8,
        /// What it should have held.
        what: &'static str,
    },
    /// A setting the board cannot represent; nothing was written.
    #[error("Witty Pi: {0}")]
    Invalid(String),
}

/// Why the board last powered the Pi on or off (register 11), so the node can tell a
/// low-voltage cut from a scheduled wake in its logs and its energy decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionReason {
    /// No action recorded yet.
    Nothing,
    /// The startup alarm (alarm 1) fired.
    StartupAlarm,
    /// The shutdown alarm (alarm 2) fired.
    ShutdownAlarm,
    /// Someone pressed the button.
    ButtonClick,
    /// Input voltage fell below the low-voltage threshold.
    LowVoltage,
    /// Input voltage came back above the recovery threshold.
    VoltageRestored,
    /// Over-temperature action.
    OverTemperature,
    /// Below-temperature action.
    BelowTemperature,
    /// The startup alarm fired while the Pi was still shutting down, and was served late.
    StartupAlarmDelayed,
    /// 5 V appeared on the USB-C input.
    UsbPowerConnected,
    /// Power appeared on the DC input.
    PowerConnected,
    /// The Pi rebooted.
    Reboot,
    /// The guaranteed-wake timer fired.
    GuaranteedWake,
    /// A code this driver does not know (newer firmware).
    Unknown(u8),
}

impl ActionReason {
    /// Decodes register 11.
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Nothing,
            1 => Self::StartupAlarm,
            2 => Self::ShutdownAlarm,
            3 => Self::ButtonClick,
            4 => Self::LowVoltage,
            5 => Self::VoltageRestored,
            6 => Self::OverTemperature,
            7 => Self::BelowTemperature,
            8 => Self::StartupAlarmDelayed,
            9 => Self::UsbPowerConnected,
            10 => Self::PowerConnected,
            11 => Self::Reboot,
            12 => Self::GuaranteedWake,
            other => Self::Unknown(other),
        }
    }
}

impl fmt::Display for ActionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Nothing => "none",
            Self::StartupAlarm => "startup alarm",
            Self::ShutdownAlarm => "shutdown alarm",
            Self::ButtonClick => "button click",
            Self::LowVoltage => "low voltage",
            Self::VoltageRestored => "voltage restored",
            Self::OverTemperature => "over temperature",
            Self::BelowTemperature => "below temperature",
            Self::StartupAlarmDelayed => "startup alarm (delayed)",
            Self::UsbPowerConnected => "USB 5 V connected",
            Self::PowerConnected => "power connected",
            Self::Reboot => "reboot",
            Self::GuaranteedWake => "guaranteed wake",
            Self::Unknown(code) => return write!(f, "unknown reason {code}"),
        };
        f.write_str(text)
    }
}

/// Where the board takes its power from (register 7); the firmware only applies the
/// low-voltage logic on the DC input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerMode {
    /// The DC input (battery or solar controller), above 5.25 V.
    DcInput,
    /// 5 V directly on USB-C.
    Usb5V,
}

/// A moment for a board alarm, in the board RTC's time (UTC, as pew and the Witty Pi
/// software set it). The firmware compares day of month, hour, minute and second only, so an
/// alarm can be at most about a month ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmTime {
    /// Day of the month, 1..=31.
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
}

impl AlarmTime {
    /// The alarm fields of a unix time, in UTC; `None` before 1970.
    pub fn from_unix_utc(unix_s: i64) -> Option<Self> {
        use chrono::Timelike;
        if unix_s < 0 {
            return None;
        }
        let time = chrono::DateTime::from_timestamp(unix_s, 0)?;
        Some(Self {
            day: chrono::Datelike::day(&time) as u8,
            hour: time.hour() as u8,
            minute: time.minute() as u8,
            second: time.second() as u8,
        })
    }

    fn validate(&self) -> Result<(), WittyPiError> {
        let valid =
            (1..=31).contains(&self.day) && self.hour < 24 && self.minute < 60 && self.second < 60;
        if valid {
            Ok(())
        } else {
            Err(WittyPiError::Invalid(format!(
                "alarm day {} {:02}:{:02}:{:02} is not a valid time",
                self.day, self.hour, self.minute, self.second
            )))
        }
    }
}

/// Encodes 0..=99 as packed BCD (the RTC alarm format); `None` above 99.
pub fn to_bcd(value: u8) -> Option<u8> {
    (value <= 99).then_some(((value / 10) << 4) | (value % 10))
}

/// Decodes packed BCD; `None` if either nibble is not a decimal digit.
pub fn from_bcd(bcd: u8) -> Option<u8> {
    let (high, low) = (bcd >> 4, bcd & 0x0F);
    (high <= 9 && low <= 9).then_some(high * 10 + low)
}

/// Decodes the LM75B temperature word: the top 11 bits are a two's-complement count of
/// 0.125 °C. The low 5 bits always read 0 on a real LM75B, so a word with any of them set (such
/// as 0xFFFF from a failed transfer, which would otherwise decode as a plausible −0.125 °C) is
/// not a temperature.
pub fn decode_lm75b(word: u16) -> Option<f64> {
    if word & 0x1F != 0 {
        return None;
    }
    // Reinterpreting as i16 and shifting arithmetically sign-extends the 11-bit value.
    let count = (word as i16) >> 5;
    let celsius = f64::from(count) * 0.125;
    (-55.0..=125.0).contains(&celsius).then_some(celsius)
}

/// A Witty Pi 4 board: an energy source (its own measurements) and the power controls.
///
/// Generic over the bus so the real driver runs against the byte-register fake in tests.
pub struct WittyPi<D: I2cDevice> {
    device: D,
    name: String,
    rejects: RejectCounter,
    warning_margin_v: f64,
}

impl<D: I2cDevice> WittyPi<D> {
    /// Wraps the board at `device` (usually `LinuxI2c::open(1, WITTYPI_ADDRESS)`); talks to it
    /// only when asked.
    pub fn new(device: D) -> Self {
        Self {
            device,
            name: "wittypi4".to_string(),
            rejects: RejectCounter::default(),
            warning_margin_v: DEFAULT_WARNING_MARGIN_V,
        }
    }

    /// How far above the board's cut-off [`Self::low_voltage_warning`] starts warning, so the
    /// node can stop work and shut down cleanly before the board cuts power.
    pub fn with_warning_margin(mut self, volts: f64) -> Self {
        self.warning_margin_v = volts;
        self
    }

    fn read_byte(&mut self, register: u8) -> Result<u8, WittyPiError> {
        self.device
            .read_u8(register)
            .map_err(|source| WittyPiError::Bus { register, source })
    }

    fn write_byte(&mut self, register: u8, value: u8) -> Result<(), WittyPiError> {
        self.device
            .write_u8(register, value)
            .map_err(|source| WittyPiError::Bus { register, source })
    }

    /// Reads a value the firmware keeps as an integer byte and a hundredths byte.
    ///
    /// Reading the integer register makes the firmware measure afresh and update both bytes,
    /// but its once-a-second housekeeping also re-measures Vin; if that lands between our two
    /// reads the bytes come from different measurements (12 | .99 then 13 | .00 would read
    /// 12.00). So the integer byte is read again and, if it moved, the hundredths are re-read
    /// to pair with it.
    fn read_decimal(&mut self, integer_register: u8) -> Result<f64, WittyPiError> {
        let hundredths_register = integer_register + 1;
        let first = self.read_byte(integer_register)?;
        let mut hundredths = self.read_byte(hundredths_register)?;
        let integer = self.read_byte(integer_register)?;
        if integer != first {
            hundredths = self.read_byte(hundredths_register)?;
        }
        if hundredths > 99 {
            return Err(WittyPiError::Garbled {
                register: hundredths_register,
                value: hundredths,
                what: "hundredths byte (0..=99)",
            });
        }
        Ok(f64::from(integer) + f64::from(hundredths) / 100.0)
    }

    fn read_threshold(&mut self, register: u8) -> Result<Option<f64>, WittyPiError> {
        let raw = self.read_byte(register)?;
        Ok((raw != THRESHOLD_DISABLED).then(|| f64::from(raw) / 10.0))
    }

    /// The board temperature, or `None` if the LM75B word is not a temperature.
    ///
    /// The firmware relays the LM75B's two bytes in wire order, MSB first. `read_u16` reads
    /// two bytes and takes the first as the high byte (big-endian), so the word arrives ready
    /// to decode. The Witty Pi shell scripts swap bytes only because they use an SMBus
    /// read-word (`i2cget ... w`), which is little-endian.
    fn read_temperature(&mut self) -> Result<Option<f64>, WittyPiError> {
        let word = self
            .device
            .read_u16(REG_TEMPERATURE)
            .map_err(|source| WittyPiError::Bus {
                register: REG_TEMPERATURE,
                source,
            })?;
        let celsius = decode_lm75b(word);
        if celsius.is_none() {
            tracing::debug!(source = %self.name, word, "LM75B word is not a temperature; ignored");
        }
        Ok(celsius)
    }

    /// Everything the board measures, plus its thresholds.
    pub fn board_reading(&mut self) -> Result<BoardReading, WittyPiError> {
        Ok(BoardReading {
            input_v: self.read_decimal(REG_VIN_INTEGER)?,
            output_v: self.read_decimal(REG_VOUT_INTEGER)?,
            output_a: self.read_decimal(REG_IOUT_INTEGER)?,
            temperature_c: self.read_temperature()?,
            low_voltage_v: self.read_threshold(REG_LOW_VOLTAGE)?,
            recovery_voltage_v: self.read_threshold(REG_RECOVERY_VOLTAGE)?,
        })
    }

    /// Where the board is powered from now.
    pub fn power_mode(&mut self) -> Result<PowerMode, WittyPiError> {
        match self.read_byte(REG_POWER_MODE)? {
            1 => Ok(PowerMode::DcInput),
            0 => Ok(PowerMode::Usb5V),
            value => Err(WittyPiError::Garbled {
                register: REG_POWER_MODE,
                value,
                what: "power mode (0 or 1)",
            }),
        }
    }

    /// Why the board last switched the Pi on or off.
    pub fn last_action_reason(&mut self) -> Result<ActionReason, WittyPiError> {
        Ok(ActionReason::from_code(self.read_byte(REG_ACTION_REASON)?))
    }

    /// Whether the node should wind down now: the board's last shutdown was a low-voltage cut
    /// that has not been cleared yet, or, on DC input with a cut-off set, Vin is within the
    /// warning margin of that cut-off. The board cuts power hard a few seconds after its own
    /// threshold; this leaves time to stop work cleanly first.
    pub fn low_voltage_warning(&mut self) -> Result<bool, WittyPiError> {
        if self.read_byte(REG_LV_SHUTDOWN)? == 1 {
            return Ok(true);
        }
        let Some(threshold) = self.read_threshold(REG_LOW_VOLTAGE)? else {
            return Ok(false);
        };
        if self.power_mode()? != PowerMode::DcInput {
            return Ok(false);
        }
        let vin = self.read_decimal(REG_VIN_INTEGER)?;
        Ok(vin < threshold + self.warning_margin_v)
    }

    /// Sets when the board powers the Pi on next.
    pub fn set_startup_alarm(&mut self, when: AlarmTime) -> Result<(), WittyPiError> {
        self.write_alarm(REG_STARTUP_ALARM, when)
    }

    /// Sets when the board asks the Pi to shut down (and then cuts power).
    pub fn set_shutdown_alarm(&mut self, when: AlarmTime) -> Result<(), WittyPiError> {
        self.write_alarm(REG_SHUTDOWN_ALARM, when)
    }

    /// The startup alarm now set, or `None` if there is none (all zero).
    pub fn startup_alarm(&mut self) -> Result<Option<AlarmTime>, WittyPiError> {
        self.read_alarm(REG_STARTUP_ALARM)
    }

    /// The shutdown alarm now set, or `None` if there is none (all zero).
    pub fn shutdown_alarm(&mut self) -> Result<Option<AlarmTime>, WittyPiError> {
        self.read_alarm(REG_SHUTDOWN_ALARM)
    }

    /// Removes both alarms (all alarm registers zero, which the firmware never fires).
    pub fn clear_alarms(&mut self) -> Result<(), WittyPiError> {
        for register in REG_STARTUP_ALARM..REG_SHUTDOWN_ALARM + 5 {
            self.write_byte(register, 0)?;
        }
        Ok(())
    }

    /// Writes an alarm's BCD registers: second, minute, hour, day, then weekday 0 (unused).
    ///
    /// The firmware checks alarms every second while we write byte by byte. Day 0 can never
    /// match the RTC, so the day is zeroed first and written last: no half-written alarm can
    /// fire in between.
    fn write_alarm(&mut self, base: u8, when: AlarmTime) -> Result<(), WittyPiError> {
        when.validate()?;
        let encode = |value: u8| {
            to_bcd(value)
                .ok_or_else(|| WittyPiError::Invalid(format!("{value} does not fit in BCD")))
        };
        let [second, minute, hour, day] = [
            encode(when.second)?,
            encode(when.minute)?,
            encode(when.hour)?,
            encode(when.day)?,
        ];
        self.write_byte(base + 3, 0)?;
        self.write_byte(base, second)?;
        self.write_byte(base + 1, minute)?;
        self.write_byte(base + 2, hour)?;
        self.write_byte(base + 4, 0)?;
        self.write_byte(base + 3, day)?;
        Ok(())
    }

    fn read_alarm(&mut self, base: u8) -> Result<Option<AlarmTime>, WittyPiError> {
        let mut fields = [0u8; 4];
        for (offset, field) in fields.iter_mut().enumerate() {
            let register = base + offset as u8;
            let raw = self.read_byte(register)?;
            *field = from_bcd(raw).ok_or(WittyPiError::Garbled {
                register,
                value: raw,
                what: "BCD alarm field",
            })?;
        }
        let [second, minute, hour, day] = fields;
        if day == 0 {
            return Ok(None);
        }
        Ok(Some(AlarmTime {
            day,
            hour,
            minute,
            second,
        }))
    }

    /// Sets the input voltage below which the board shuts the Pi down (`None` disables it).
    pub fn set_low_voltage(&mut self, volts: Option<f64>) -> Result<(), WittyPiError> {
        let raw = threshold_byte("low-voltage threshold", volts)?;
        self.write_byte(REG_LOW_VOLTAGE, raw)
    }

    /// Sets the input voltage at which the board powers the Pi back on after a low-voltage
    /// cut (`None` disables it).
    pub fn set_recovery_voltage(&mut self, volts: Option<f64>) -> Result<(), WittyPiError> {
        let raw = threshold_byte("recovery voltage", volts)?;
        self.write_byte(REG_RECOVERY_VOLTAGE, raw)
    }

    /// Makes the board wake the Pi after at most `hours` whatever else happens, a safety net
    /// against a lost schedule (firmware revision 7 and later). 0 turns it off. The register
    /// holds 1..=127 hours or 1..=127 days, so longer spans must be whole days.
    pub fn set_guaranteed_wake_hours(&mut self, hours: u32) -> Result<(), WittyPiError> {
        let raw = if hours <= 127 {
            hours as u8
        } else if hours.is_multiple_of(24) && hours / 24 <= 127 {
            0x80 | (hours / 24) as u8
        } else {
            return Err(WittyPiError::Invalid(format!(
                "guaranteed wake of {hours} h: use up to 127 h, or whole days up to 127 days"
            )));
        };
        self.write_byte(REG_GUARANTEED_WAKE, raw)
    }
}

/// A threshold as the board stores it: tenths of a volt, 255 = disabled.
fn threshold_byte(what: &str, volts: Option<f64>) -> Result<u8, WittyPiError> {
    let Some(volts) = volts else {
        return Ok(THRESHOLD_DISABLED);
    };
    let tenths = (volts * 10.0).round();
    if !(volts.is_finite() && (1.0..f64::from(THRESHOLD_DISABLED)).contains(&tenths)) {
        return Err(WittyPiError::Invalid(format!(
            "{what} of {volts} V is outside 0.1..=25.4 V"
        )));
    }
    Ok(tenths as u8)
}

impl<D: I2cDevice> EnergySource for WittyPi<D> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read(&mut self) -> Result<Sample, SourceError> {
        let board = match self.board_reading() {
            Ok(board) => board,
            Err(error @ WittyPiError::Bus { .. }) => {
                return Err(SourceError::Unreachable {
                    source_name: self.name.clone(),
                    what: error.to_string(),
                });
            }
            Err(error) => return Err(self.rejects.reject(&self.name, error.to_string())),
        };
        let mut sample = Sample::at(unix_now());
        sample.load_w = Some(board.output_v * board.output_a);
        sample.board = Some(board);
        self.rejects.check(&self.name, sample)
    }

    fn rejected(&self) -> u64 {
        self.rejects.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::sources::fakes::FakeWittyPi;

    fn board() -> (FakeWittyPi, WittyPi<FakeWittyPi>) {
        let fake = FakeWittyPi::new();
        (fake.clone(), WittyPi::new(fake))
    }

    #[test]
    fn bcd_round_trips_every_two_digit_value() {
        for value in 0..=99 {
            let bcd = to_bcd(value).unwrap();
            assert_eq!(from_bcd(bcd), Some(value));
        }
        assert_eq!(to_bcd(45), Some(0x45));
        assert_eq!(to_bcd(100), None);
        assert_eq!(from_bcd(0x3A), None);
        assert_eq!(from_bcd(0xA0), None);
    }

    #[test]
    fn lm75b_words_decode_to_eighths_of_a_degree_and_failed_reads_to_nothing() {
        assert_eq!(decode_lm75b(0x1900), Some(25.0));
        assert_eq!(decode_lm75b(0x0020), Some(0.125));
        assert_eq!(decode_lm75b(0xF5E0), Some(-10.125));
        assert_eq!(decode_lm75b(0xFFFF), None);
        assert_eq!(decode_lm75b(0x7FE0), None); // 127.875 °C is beyond the sensor's range
    }

    #[test]
    fn the_board_reading_carries_vin_vout_iout_thresholds_and_temperature() {
        let (fake, mut wittypi) = board();
        fake.set_decimal(1, 12.34);
        fake.set_decimal(3, 5.12);
        fake.set_decimal(5, 0.87);
        fake.set(19, 116);
        fake.set_temperature_word(0xF5E0);
        let sample = wittypi.read().unwrap();
        let board = sample.board.clone().unwrap();
        assert!((board.input_v - 12.34).abs() < 1e-9, "{board:?}");
        assert!((board.output_v - 5.12).abs() < 1e-9, "{board:?}");
        assert!((board.output_a - 0.87).abs() < 1e-9, "{board:?}");
        assert_eq!(board.low_voltage_v, Some(11.6));
        assert_eq!(board.recovery_voltage_v, None); // 255 = disabled
        assert_eq!(board.temperature_c, Some(-10.125));
        assert!((sample.load_w.unwrap() - 5.12 * 0.87).abs() < 1e-9);
        assert_eq!(sample.battery_v, None);
    }

    #[test]
    fn a_voltage_that_ticks_over_between_byte_reads_is_not_torn() {
        let (fake, mut wittypi) = board();
        // Stored 13.00; the first integer read still sees the older 12.99 measurement, the
        // hundredths byte already the new one.
        fake.set_decimal(1, 13.0);
        fake.script(1, &[12]);
        fake.script(2, &[0]);
        let board = wittypi.board_reading().unwrap();
        assert!((board.input_v - 13.0).abs() < 1e-9, "{board:?}");
    }

    #[test]
    fn a_garbled_hundredths_byte_is_rejected_and_counted() {
        let (fake, mut wittypi) = board();
        fake.set_decimal(1, 12.0);
        fake.set(2, 0xFF);
        let error = wittypi.read().unwrap_err();
        assert!(matches!(error, SourceError::Rejected { .. }), "{error}");
        assert_eq!(wittypi.rejected(), 1);
    }

    #[test]
    fn a_bulk_read_failure_of_all_ones_is_rejected_as_implausible() {
        let (fake, mut wittypi) = board();
        fake.set(1, 0xFF);
        fake.set(2, 0);
        let error = wittypi.read().unwrap_err();
        assert!(error.to_string().contains("input_v"), "{error}");
        assert_eq!(wittypi.rejected(), 1);
    }

    #[test]
    fn a_missing_board_is_unreachable() {
        let (fake, mut wittypi) = board();
        fake.set_unreachable(true);
        let error = wittypi.read().unwrap_err();
        assert!(matches!(error, SourceError::Unreachable { .. }), "{error}");
        assert_eq!(wittypi.rejected(), 0);
    }

    #[test]
    fn startup_alarm_is_written_as_bcd_with_the_day_last() {
        let (fake, mut wittypi) = board();
        let when = AlarmTime {
            day: 17,
            hour: 6,
            minute: 45,
            second: 30,
        };
        wittypi.set_startup_alarm(when).unwrap();
        let registers: Vec<u8> = (27..=31).map(|r| fake.register(r)).collect();
        assert_eq!(registers, [0x30, 0x45, 0x06, 0x17, 0x00]);
        let writes = fake.writes();
        assert_eq!(writes.first(), Some(&(30, 0)));
        assert_eq!(writes.last(), Some(&(30, 0x17)));
        assert_eq!(wittypi.startup_alarm().unwrap(), Some(when));
        assert_eq!(wittypi.shutdown_alarm().unwrap(), None);
    }

    #[test]
    fn shutdown_alarm_uses_registers_32_to_36_and_clear_alarms_zeroes_both() {
        let (fake, mut wittypi) = board();
        let when = AlarmTime::from_unix_utc(1_710_657_930).unwrap(); // 2024-03-17 06:45:30 UTC
        assert_eq!(
            when,
            AlarmTime {
                day: 17,
                hour: 6,
                minute: 45,
                second: 30
            }
        );
        wittypi.set_shutdown_alarm(when).unwrap();
        assert_eq!(fake.register(35), 0x17);
        assert_eq!(fake.register(34), 0x06);
        wittypi.set_startup_alarm(when).unwrap();
        wittypi.clear_alarms().unwrap();
        assert!((27..=36).all(|r| fake.register(r) == 0));
        assert_eq!(wittypi.startup_alarm().unwrap(), None);
    }

    #[test]
    fn alarm_days_follow_the_calendar_across_leap_days_and_year_ends() {
        let day = |t| AlarmTime::from_unix_utc(t).unwrap().day;
        assert_eq!(day(0), 1); // 1970-01-01
        assert_eq!(day(951_782_400), 29); // 2000-02-29
        assert_eq!(day(951_868_800), 1); // 2000-03-01
        assert_eq!(day(1_735_689_599), 31); // 2024-12-31 23:59:59
        assert_eq!(AlarmTime::from_unix_utc(1_735_689_599).unwrap().hour, 23);
        assert_eq!(AlarmTime::from_unix_utc(-1), None);
    }

    #[test]
    fn an_impossible_alarm_writes_nothing() {
        let (fake, mut wittypi) = board();
        let when = AlarmTime {
            day: 0,
            hour: 25,
            minute: 0,
            second: 0,
        };
        assert!(wittypi.set_startup_alarm(when).is_err());
        assert!(fake.writes().is_empty());
    }

    #[test]
    fn thresholds_are_written_in_tenths_of_a_volt_with_255_for_disabled() {
        let (fake, mut wittypi) = board();
        wittypi.set_low_voltage(Some(11.6)).unwrap();
        wittypi.set_recovery_voltage(Some(12.8)).unwrap();
        assert_eq!(fake.register(19), 116);
        assert_eq!(fake.register(22), 128);
        wittypi.set_recovery_voltage(None).unwrap();
        assert_eq!(fake.register(22), 255);
        let writes_before = fake.writes().len();
        assert!(wittypi.set_low_voltage(Some(30.0)).is_err());
        assert!(wittypi.set_low_voltage(Some(f64::NAN)).is_err());
        assert_eq!(fake.writes().len(), writes_before);
    }

    #[test]
    fn guaranteed_wake_is_hours_up_to_127_then_whole_days() {
        let (fake, mut wittypi) = board();
        wittypi.set_guaranteed_wake_hours(12).unwrap();
        assert_eq!(fake.register(49), 12);
        wittypi.set_guaranteed_wake_hours(127).unwrap();
        assert_eq!(fake.register(49), 127);
        wittypi.set_guaranteed_wake_hours(168).unwrap();
        assert_eq!(fake.register(49), 0x80 | 7);
        wittypi.set_guaranteed_wake_hours(0).unwrap();
        assert_eq!(fake.register(49), 0);
        assert!(wittypi.set_guaranteed_wake_hours(200).is_err());
    }

    #[test]
    fn action_reasons_decode_including_unknown_codes() {
        let (fake, mut wittypi) = board();
        fake.set(11, 4);
        assert_eq!(
            wittypi.last_action_reason().unwrap(),
            ActionReason::LowVoltage
        );
        fake.set(11, 12);
        assert_eq!(
            wittypi.last_action_reason().unwrap(),
            ActionReason::GuaranteedWake
        );
        fake.set(11, 99);
        assert_eq!(
            wittypi.last_action_reason().unwrap(),
            ActionReason::Unknown(99)
        );
    }

    #[test]
    fn low_voltage_warning_fires_within_the_margin_or_after_a_low_voltage_cut() {
        let (fake, mut wittypi) = board();
        fake.set(19, 115); // cut-off 11.5 V, default margin 0.3 V
        fake.set_decimal(1, 12.4);
        assert!(!wittypi.low_voltage_warning().unwrap());
        fake.set_decimal(1, 11.7);
        assert!(wittypi.low_voltage_warning().unwrap());
        // On USB 5 V the board ignores Vin, and so do we.
        fake.set(7, 0);
        assert!(!wittypi.low_voltage_warning().unwrap());
        // The board's own low-voltage flag always counts.
        fake.set(8, 1);
        assert!(wittypi.low_voltage_warning().unwrap());
    }

    #[test]
    fn low_voltage_warning_stays_quiet_when_the_cut_off_is_disabled() {
        let (fake, mut wittypi) = board();
        fake.set_decimal(1, 6.0);
        assert!(!wittypi.low_voltage_warning().unwrap());
    }
}

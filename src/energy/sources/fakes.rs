//! Register- and byte-level stand-ins for the energy hardware, so the real drivers run
//! unchanged in tests (unit and integration) and in demos without a Pi: an INA2xx that computes
//! its registers from a true current and voltage like the chip does, a Witty Pi 4 byte register
//! file that records writes, and a serial port that plays back scripted VE.Direct bytes.
//!
//! Each fake is a cheap handle on shared state: clone it, hand one clone to the driver and keep
//! the other to change the "physics" or inspect what the driver wrote.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::energy::i2c::I2cDevice;
use crate::energy::sources::ina::{InaChip, TI_MANUFACTURER_ID};

fn locked<T>(state: &Mutex<T>) -> MutexGuard<'_, T> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bus_error() -> io::Error {
    io::Error::other("remote I/O error (fake device not answering)")
}

/// An INA219, INA226 or INA260 on a fake bus. Measurement registers are computed on each read
/// from the configured true current and bus voltage and from the calibration the driver wrote,
/// with the chip's own integer arithmetic, saturation and flags.
#[derive(Clone)]
pub struct FakeIna {
    state: Arc<Mutex<InaState>>,
}

struct InaState {
    chip: InaChip,
    shunt_ohms: f64,
    current_a: f64,
    bus_v: f64,
    registers: HashMap<u8, u16>,
    writes: Vec<(u8, u16)>,
    unreachable: bool,
}

impl InaState {
    fn defaults(chip: InaChip) -> HashMap<u8, u16> {
        let mut registers = HashMap::from([(0x00, chip.power_on_config()), (0x05, 0)]);
        match chip {
            InaChip::Ina219 => {}
            InaChip::Ina226 => {
                registers.insert(0xFE, TI_MANUFACTURER_ID);
                registers.insert(0xFF, 0x2260);
            }
            InaChip::Ina260 => {
                registers.insert(0xFE, TI_MANUFACTURER_ID);
                registers.insert(0xFF, 0x2270);
            }
        }
        registers.insert(0x06, 0);
        registers.insert(0x07, 0);
        registers
    }

    fn stored(&self, register: u8) -> u16 {
        self.registers.get(&register).copied().unwrap_or(0)
    }

    /// (shunt register, current register, bus register, power register) as the chip would
    /// show them now.
    fn measure(&self) -> (u16, u16, u16, u16) {
        let calibration = i64::from(self.stored(0x05));
        let saturate = |v: i64| v.clamp(i64::from(i16::MIN), i64::from(i16::MAX));
        match self.chip {
            InaChip::Ina219 => {
                let config = self.stored(0x00);
                let range_v = 0.04 * f64::from(1u16 << ((config >> 11) & 0b11));
                let shunt_v = self.current_a * self.shunt_ohms;
                let mut overflow = shunt_v.abs() > range_v;
                let shunt = (shunt_v.clamp(-range_v, range_v) / 10e-6).round() as i64;
                let current = shunt * calibration / 4096;
                overflow |= current != saturate(current);
                let current = saturate(current);
                let bus_max = if config & 0x2000 != 0 { 8191 } else { 4000 };
                let bus = ((self.bus_v / 4e-3).round() as i64).clamp(0, bus_max);
                let power = current.abs() * bus / 5000;
                overflow |= power > i64::from(u16::MAX);
                let bus_register = ((bus as u16) << 3) | 0b10 | u16::from(overflow);
                (
                    shunt as i16 as u16,
                    current as i16 as u16,
                    bus_register,
                    power.min(i64::from(u16::MAX)) as u16,
                )
            }
            InaChip::Ina226 => {
                let shunt = saturate((self.current_a * self.shunt_ohms / 2.5e-6).round() as i64);
                let current = saturate(shunt * calibration / 2048);
                let bus = ((self.bus_v / 1.25e-3).round() as i64).clamp(0, 0x7FFF);
                let power = (current.abs() * bus / 20000).min(i64::from(u16::MAX));
                (
                    shunt as i16 as u16,
                    current as i16 as u16,
                    bus as u16,
                    power as u16,
                )
            }
            InaChip::Ina260 => {
                let current = saturate((self.current_a / 1.25e-3).round() as i64);
                let bus = ((self.bus_v / 1.25e-3).round() as i64).clamp(0, 0x7FFF);
                let power = ((self.current_a * self.bus_v).abs() / 10e-3).round() as i64;
                (
                    current as i16 as u16,
                    0,
                    bus as u16,
                    power.min(i64::from(u16::MAX)) as u16,
                )
            }
        }
    }
}

impl FakeIna {
    /// A freshly powered chip (registers at their power-on values) whose shunt is
    /// `shunt_ohms` (the INA260's own is 2 mΩ whatever is passed), carrying no current yet.
    pub fn new(chip: InaChip, shunt_ohms: f64) -> Self {
        let shunt_ohms = if chip == InaChip::Ina260 {
            0.002
        } else {
            shunt_ohms
        };
        Self {
            state: Arc::new(Mutex::new(InaState {
                chip,
                shunt_ohms,
                current_a: 0.0,
                bus_v: 0.0,
                registers: InaState::defaults(chip),
                writes: Vec::new(),
                unreachable: false,
            })),
        }
    }

    /// Sets the true current through the shunt (positive into the bus side).
    pub fn set_current(&self, amps: f64) {
        locked(&self.state).current_a = amps;
    }

    /// Sets the true bus voltage.
    pub fn set_bus_voltage(&self, volts: f64) {
        locked(&self.state).bus_v = volts;
    }

    /// Brown-out: every register goes back to its power-on value (calibration 0).
    pub fn power_on_reset(&self) {
        let mut state = locked(&self.state);
        state.registers = InaState::defaults(state.chip);
    }

    /// Overwrites a stored register, e.g. a wrong manufacturer id.
    pub fn set_register(&self, register: u8, value: u16) {
        locked(&self.state).registers.insert(register, value);
    }

    /// What a read of `register` returns now.
    pub fn register(&self, register: u8) -> u16 {
        let state = locked(&self.state);
        read_ina(&state, register)
    }

    /// Every write the driver made, in order.
    pub fn writes(&self) -> Vec<(u8, u16)> {
        locked(&self.state).writes.clone()
    }

    /// Makes every bus transfer fail, like an unplugged sensor.
    pub fn set_unreachable(&self, unreachable: bool) {
        locked(&self.state).unreachable = unreachable;
    }
}

fn read_ina(state: &InaState, register: u8) -> u16 {
    let (shunt, current, bus, power) = state.measure();
    let has_calibration = state.chip != InaChip::Ina260;
    match register {
        0x01 => shunt,
        0x02 => bus,
        0x03 => power,
        0x04 if has_calibration => current,
        // Conversions complete instantly on the fake: CVRF always set.
        0x06 if state.chip != InaChip::Ina219 => state.stored(0x06) | (1 << 3),
        other => state.stored(other),
    }
}

impl I2cDevice for FakeIna {
    fn read_u16(&mut self, register: u8) -> io::Result<u16> {
        let state = locked(&self.state);
        if state.unreachable {
            return Err(bus_error());
        }
        Ok(read_ina(&state, register))
    }

    fn write_u16(&mut self, register: u8, value: u16) -> io::Result<()> {
        let mut state = locked(&self.state);
        if state.unreachable {
            return Err(bus_error());
        }
        state.writes.push((register, value));
        let chip = state.chip;
        match register {
            0x00 if value & 0x8000 != 0 => state.registers = InaState::defaults(chip),
            0x00 => {
                state.registers.insert(0x00, value);
            }
            0x05 if chip == InaChip::Ina219 => {
                state.registers.insert(0x05, value & 0xFFFE);
            }
            0x05 if chip == InaChip::Ina226 => {
                state.registers.insert(0x05, value & 0x7FFF);
            }
            0x06 | 0x07 if chip != InaChip::Ina219 => {
                state.registers.insert(register, value);
            }
            // Read-only or absent registers ignore writes, as on the chip.
            _ => {}
        }
        Ok(())
    }

    fn read_u8(&mut self, _register: u8) -> io::Result<u8> {
        Err(io::Error::other("an INA2xx has no byte registers"))
    }

    fn write_u8(&mut self, _register: u8, _value: u8) -> io::Result<()> {
        Err(io::Error::other("an INA2xx has no byte registers"))
    }
}

/// A Witty Pi 4's register file: byte registers 0..=49 with the firmware's defaults, the
/// LM75B temperature word behind virtual register 50, and a log of every write.
#[derive(Clone)]
pub struct FakeWittyPi {
    state: Arc<Mutex<WittyState>>,
}

struct WittyState {
    registers: [u8; 72],
    scripted: HashMap<u8, VecDeque<u8>>,
    temperature_word: u16,
    writes: Vec<(u8, u8)>,
    unreachable: bool,
}

impl Default for FakeWittyPi {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeWittyPi {
    /// A board with the firmware's default settings (thresholds disabled, no alarms), powered
    /// from the DC input, reading 25 °C.
    pub fn new() -> Self {
        let mut registers = [0u8; 72];
        registers[0] = 0x26; // firmware id
        registers[7] = 1; // DC input
        registers[12] = 7; // firmware revision
        registers[16] = 0x08;
        registers[18] = 4;
        registers[19] = 255;
        registers[20] = 100;
        registers[21] = 70;
        registers[22] = 255;
        registers[24] = 20;
        registers[25] = 20;
        registers[38] = 1;
        registers[44] = 0x4B;
        registers[46] = 0x50;
        Self {
            state: Arc::new(Mutex::new(WittyState {
                registers,
                scripted: HashMap::new(),
                temperature_word: (25 * 8) << 5,
                writes: Vec::new(),
                unreachable: false,
            })),
        }
    }

    /// Sets a register as the firmware would.
    pub fn set(&self, register: u8, value: u8) {
        if let Some(slot) = locked(&self.state).registers.get_mut(usize::from(register)) {
            *slot = value;
        }
    }

    /// Sets a register pair holding `volts` as integer and hundredths, the firmware's format
    /// for Vin (1, 2), Vout (3, 4) and Iout (5, 6).
    pub fn set_decimal(&self, integer_register: u8, value: f64) {
        let hundredths = (value * 100.0).round() as u32;
        self.set(integer_register, (hundredths / 100) as u8);
        self.set(integer_register + 1, (hundredths % 100) as u8);
    }

    /// Makes the next reads of `register` return `values` in turn before the stored value
    /// again: a measurement that changes between the driver's byte reads.
    pub fn script(&self, register: u8, values: &[u8]) {
        locked(&self.state)
            .scripted
            .entry(register)
            .or_default()
            .extend(values);
    }

    /// Sets the raw LM75B temperature word (MSB first, as it comes over the wire).
    pub fn set_temperature_word(&self, word: u16) {
        locked(&self.state).temperature_word = word;
    }

    /// What register `register` holds now.
    pub fn register(&self, register: u8) -> u8 {
        locked(&self.state)
            .registers
            .get(usize::from(register))
            .copied()
            .unwrap_or(0xFF)
    }

    /// Every byte write, in order.
    pub fn writes(&self) -> Vec<(u8, u8)> {
        locked(&self.state).writes.clone()
    }

    /// Makes every transfer fail.
    pub fn set_unreachable(&self, unreachable: bool) {
        locked(&self.state).unreachable = unreachable;
    }
}

impl I2cDevice for FakeWittyPi {
    /// Only the LM75B registers (50, 52, 53) answer two bytes; anything else gives its byte
    /// and then 0xFF, as the firmware does for a multi-byte read.
    fn read_u16(&mut self, register: u8) -> io::Result<u16> {
        let state = locked(&self.state);
        if state.unreachable {
            return Err(bus_error());
        }
        match register {
            50 => Ok(state.temperature_word),
            _ => {
                let first = state
                    .registers
                    .get(usize::from(register))
                    .copied()
                    .unwrap_or(0xFF);
                Ok((u16::from(first) << 8) | 0xFF)
            }
        }
    }

    fn write_u16(&mut self, _register: u8, _value: u16) -> io::Result<()> {
        Err(io::Error::other(
            "the fake Witty Pi takes single-byte writes only",
        ))
    }

    fn read_u8(&mut self, register: u8) -> io::Result<u8> {
        let mut state = locked(&self.state);
        if state.unreachable {
            return Err(bus_error());
        }
        if let Some(value) = state
            .scripted
            .get_mut(&register)
            .and_then(VecDeque::pop_front)
        {
            return Ok(value);
        }
        Ok(state
            .registers
            .get(usize::from(register))
            .copied()
            .unwrap_or(0xFF))
    }

    fn write_u8(&mut self, register: u8, value: u8) -> io::Result<()> {
        let mut state = locked(&self.state);
        if state.unreachable {
            return Err(bus_error());
        }
        state.writes.push((register, value));
        // Registers 0..=15 are read-only in the firmware.
        if (16..50).contains(&register) {
            state.registers[usize::from(register)] = value;
        }
        Ok(())
    }
}

/// One step of a scripted serial stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SerialChunk {
    /// Bytes the next read returns (split if the caller's buffer is smaller).
    Bytes(Vec<u8>),
    /// The line is quiet: the next read times out, as a serial port with a timeout does.
    Pause,
}

/// A serial port that plays back a script, then times out forever; what the VE.Direct parser
/// is tested against.
pub struct ScriptedSerial {
    chunks: VecDeque<SerialChunk>,
}

impl ScriptedSerial {
    /// Plays `chunks` in order.
    pub fn new(chunks: impl IntoIterator<Item = SerialChunk>) -> Self {
        Self {
            chunks: chunks.into_iter().collect(),
        }
    }
}

impl io::Read for ScriptedSerial {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self.chunks.pop_front() {
            None | Some(SerialChunk::Pause) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "no data"))
            }
            Some(SerialChunk::Bytes(mut bytes)) => {
                let n = bytes.len().min(buffer.len());
                buffer[..n].copy_from_slice(&bytes[..n]);
                if n < bytes.len() {
                    self.chunks
                        .push_front(SerialChunk::Bytes(bytes.split_off(n)));
                }
                Ok(n)
            }
        }
    }
}

/// A VE.Direct text block with the given fields and a correct checksum, exactly as a device
/// sends it (`\r\n<label>\t<value>` per field, then `\r\nChecksum\t<byte>`).
pub fn vedirect_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (label, value) in fields {
        block.extend_from_slice(b"\r\n");
        block.extend_from_slice(label.as_bytes());
        block.push(b'\t');
        block.extend_from_slice(value.as_bytes());
    }
    block.extend_from_slice(b"\r\nChecksum\t");
    let sum = block.iter().fold(0u8, |sum, b| sum.wrapping_add(*b));
    block.push(0u8.wrapping_sub(sum));
    block
}

//! Victron VE.Direct text protocol (MPPT solar chargers, SmartShunt and BMV battery monitors)
//! read from a serial port or any byte stream.
//!
//! The device sends a block about once a second: fields `\r\n<label>\t<value>`, closed by
//! `\r\nChecksum\t<byte>`, where the byte makes the sum of every byte of the block 0 mod 256.
//! HEX-protocol frames (`:` up to `\n`) may be interleaved, even inside a block, and are not
//! part of the sum. A serial line picks up noise, so a block whose sum is off is dropped and
//! counted, never half-trusted.
//!
//! Field choices: `V` and `I` are the battery's voltage and current (both kinds of device count
//! charging as positive), `PPV` is the panel power, `CS` the charger state, `SOC` the monitor's
//! state of charge. `IL` (the MPPT's load output current) becomes `load_w` = IL × V, which is
//! the node's draw when the node hangs on that output, as on small off-grid setups. The
//! SmartShunt's `P` is not mapped: it is the battery's net power (V × I, already given), not
//! the node's load.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::clock::unix_now;
use crate::energy::sample::{EnergySource, RejectCounter, Sample, SourceError};

/// VE.Direct's fixed line speed.
pub const BAUD_RATE: u32 = 19_200;

/// How long one serial read waits for bytes; blocks come every second, so this is long
/// enough to see one and short enough to notice a silent line.
pub const SERIAL_TIMEOUT: Duration = Duration::from_millis(1500);

/// A real block is well under 1 kB (at most ~22 fields); longer means the end was lost.
const MAX_BLOCK_BYTES: usize = 2048;

/// Stop collecting after this many bytes in one read call, however fast they come.
const MAX_BYTES_PER_READ: usize = 64 * 1024;

/// Opens a VE.Direct serial port (e.g. `/dev/ttyUSB0` for the VE.Direct-USB cable) at
/// 19200 baud, 8N1, no flow control, with a read timeout so a silent device cannot hang the
/// monitor.
pub fn open_serial(path: &str) -> Result<Box<dyn Read + Send>, SourceError> {
    let port = serialport::new(path, BAUD_RATE)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(SERIAL_TIMEOUT)
        .open()
        .map_err(|e| SourceError::Unreachable {
            source_name: format!("vedirect:{path}"),
            what: format!("cannot open serial port: {e}"),
        })?;
    Ok(Box::new(port))
}

/// The name of a charger state (`CS` field), or `None` for a code the protocol does not
/// define.
pub fn charge_state_name(code: u16) -> Option<&'static str> {
    Some(match code {
        0 => "off",
        2 => "fault",
        3 => "bulk",
        4 => "absorption",
        5 => "float",
        7 => "equalise",
        245 => "starting-up",
        247 => "auto-equalise",
        252 => "external-control",
        _ => return None,
    })
}

/// What the frame parser found at the end of a block.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A block whose checksum is right: its fields in order.
    Block(Vec<(String, String)>),
    /// A block whose bytes do not sum to 0; `sum` is what they summed to.
    BadChecksum {
        /// The byte sum mod 256.
        sum: u8,
        /// Whether the parser saw the block from its start; the first block after start-up
        /// usually is a tail and failing it says nothing about the line.
        complete: bool,
    },
    /// A block ran past 2 kB without a checksum field (its end was lost).
    Overlong,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Between blocks, waiting for the `\r` that starts one.
    Idle,
    Label,
    Value,
    /// The next byte is the checksum byte, whatever its value (it may be `:` or `\r`).
    Checksum,
}

/// A byte-at-a-time VE.Direct text-protocol parser. It keeps its state between calls, so a
/// block split across serial reads is reassembled.
#[derive(Debug)]
pub struct FrameParser {
    state: State,
    in_hex: bool,
    sum: u8,
    length: usize,
    label: Vec<u8>,
    value: Vec<u8>,
    fields: Vec<(String, String)>,
    synced: bool,
}

impl Default for FrameParser {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameParser {
    /// A parser that has seen nothing yet.
    pub fn new() -> Self {
        Self {
            state: State::Idle,
            in_hex: false,
            sum: 0,
            length: 0,
            label: Vec::new(),
            value: Vec::new(),
            fields: Vec::new(),
            synced: false,
        }
    }

    /// Feeds one byte; returns a frame when this byte ends a block.
    pub fn push(&mut self, byte: u8) -> Option<Frame> {
        if self.in_hex {
            if byte == b'\n' {
                self.in_hex = false;
            }
            return None;
        }
        if byte == b':' && self.state != State::Checksum {
            self.in_hex = true;
            return None;
        }
        if self.state == State::Idle {
            if byte == b'\r' {
                self.start_block();
            } else {
                return None;
            }
        }
        self.sum = self.sum.wrapping_add(byte);
        self.length += 1;
        if self.length > MAX_BLOCK_BYTES {
            self.state = State::Idle;
            return Some(Frame::Overlong);
        }
        match self.state {
            State::Idle => {}
            State::Label => match byte {
                b'\r' | b'\n' => self.label.clear(),
                b'\t' if self.label == b"Checksum" => self.state = State::Checksum,
                b'\t' => {
                    self.value.clear();
                    self.state = State::Value;
                }
                _ => self.label.push(byte),
            },
            State::Value => match byte {
                b'\r' => {
                    self.fields.push((
                        String::from_utf8_lossy(&self.label).into_owned(),
                        String::from_utf8_lossy(&self.value).into_owned(),
                    ));
                    self.label.clear();
                    self.state = State::Label;
                }
                b'\n' => {}
                _ => self.value.push(byte),
            },
            State::Checksum => {
                self.state = State::Idle;
                let complete = self.synced;
                self.synced = true;
                let fields = std::mem::take(&mut self.fields);
                return Some(if self.sum == 0 {
                    Frame::Block(fields)
                } else {
                    Frame::BadChecksum {
                        sum: self.sum,
                        complete,
                    }
                });
            }
        }
        None
    }

    fn start_block(&mut self) {
        self.state = State::Label;
        self.sum = 0;
        self.length = 0;
        self.label.clear();
        self.value.clear();
        self.fields.clear();
    }
}

fn parse_number(fields: &BTreeMap<String, String>, label: &str) -> Result<Option<f64>, String> {
    let Some(text) = fields.get(label) else {
        return Ok(None);
    };
    let text = text.trim();
    // Monitors send "---" for values they do not know yet (e.g. SOC before synchronising).
    if text == "---" {
        return Ok(None);
    }
    text.parse::<i64>()
        .map(|n| Some(n as f64))
        .map_err(|_| format!("field {label} = {text:?} is not a number"))
}

/// Turns the latest value of each field into a sample (time left at 0), or says which field
/// is unreadable.
pub fn sample_from_fields(fields: &BTreeMap<String, String>) -> Result<Sample, String> {
    let mut sample = Sample::default();
    let battery_v = parse_number(fields, "V")?.map(|mv| mv / 1000.0);
    sample.battery_v = battery_v;
    sample.battery_a = parse_number(fields, "I")?.map(|ma| ma / 1000.0);
    sample.pv_w = parse_number(fields, "PPV")?;
    sample.battery_soc = parse_number(fields, "SOC")?.map(|permille| permille / 1000.0);
    if let Some(load_a) = parse_number(fields, "IL")?.map(|ma| ma / 1000.0) {
        sample.load_w = battery_v.map(|v| v * load_a);
    }
    if let Some(code) = parse_number(fields, "CS")? {
        let name = u16::try_from(code as i64)
            .ok()
            .and_then(charge_state_name)
            .map(str::to_string)
            .unwrap_or_else(|| format!("unknown({code})"));
        sample.charge_state = Some(name);
    }
    Ok(sample)
}

/// A VE.Direct device as an energy source.
///
/// Devices with many fields alternate between blocks with different field sets (a BMV sends
/// its history in a second block), so the latest value of every field is kept across blocks
/// and a sample shows the union, newest values winning.
pub struct VeDirect {
    name: String,
    port: Box<dyn Read + Send>,
    parser: FrameParser,
    fields: BTreeMap<String, String>,
    rejects: RejectCounter,
    max_wait: Duration,
}

impl VeDirect {
    /// Reads blocks from `port` (a serial port from [`open_serial`], or any byte stream).
    pub fn new(name: impl Into<String>, port: Box<dyn Read + Send>) -> Self {
        Self {
            name: name.into(),
            port,
            parser: FrameParser::new(),
            fields: BTreeMap::new(),
            rejects: RejectCounter::default(),
            max_wait: Duration::from_secs(3),
        }
    }

    /// Opens the serial port at `path` and reads from it; named `vedirect:<path>`.
    pub fn open(path: &str) -> Result<Self, SourceError> {
        Ok(Self::new(format!("vedirect:{path}"), open_serial(path)?))
    }

    /// Caps how long one [`EnergySource::read`] keeps waiting for a complete block.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Handles one frame; returns whether it brought a valid block.
    fn take_frame(&mut self, frame: Frame, last_error: &mut Option<SourceError>) -> bool {
        match frame {
            Frame::Block(fields) => {
                let mut merged = self.fields.clone();
                merged.extend(fields);
                match sample_from_fields(&merged) {
                    Ok(_) => {
                        self.fields = merged;
                        true
                    }
                    Err(why) => {
                        *last_error = Some(self.rejects.reject(&self.name, why));
                        false
                    }
                }
            }
            Frame::BadChecksum {
                complete: false, ..
            } => {
                tracing::debug!(source = %self.name, "first VE.Direct block was partial; skipped");
                false
            }
            Frame::BadChecksum { sum, .. } => {
                *last_error = Some(self.rejects.reject(
                    &self.name,
                    format!("block checksum is off by {sum} (line noise?)"),
                ));
                false
            }
            Frame::Overlong => {
                *last_error = Some(self.rejects.reject(
                    &self.name,
                    format!("no checksum within {MAX_BLOCK_BYTES} bytes"),
                ));
                false
            }
        }
    }
}

impl EnergySource for VeDirect {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Reads what the device has sent, until the line has been drained after at least one
    /// valid block (a short read means nothing more is buffered), the line goes quiet, or the
    /// wait cap is reached; returns the sample of the newest valid data. Bytes of an unfinished
    /// block stay in the parser for the next call.
    fn read(&mut self) -> Result<Sample, SourceError> {
        let deadline = Instant::now() + self.max_wait;
        let mut buffer = [0u8; 512];
        let mut fresh = false;
        let mut last_error = None;
        let mut total = 0;
        loop {
            let n = match self.port.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) =>
                {
                    break;
                }
                Err(e) => {
                    return Err(SourceError::Unreachable {
                        source_name: self.name.clone(),
                        what: format!("serial read failed: {e}"),
                    });
                }
            };
            for &byte in &buffer[..n] {
                if let Some(frame) = self.parser.push(byte) {
                    fresh |= self.take_frame(frame, &mut last_error);
                }
            }
            total += n;
            let drained = n < buffer.len();
            if (fresh && drained) || total >= MAX_BYTES_PER_READ || Instant::now() >= deadline {
                break;
            }
        }
        if !fresh {
            return Err(last_error.unwrap_or_else(|| SourceError::Unreachable {
                source_name: self.name.clone(),
                what: "no complete VE.Direct block received (is the device sending?)".into(),
            }));
        }
        let mut sample =
            sample_from_fields(&self.fields).map_err(|why| self.rejects.reject(&self.name, why))?;
        sample.time_s = unix_now();
        self.rejects.check(&self.name, sample)
    }

    fn rejected(&self) -> u64 {
        self.rejects.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::sources::fakes::{ScriptedSerial, SerialChunk, vedirect_block};

    const MPPT: &[(&str, &str)] = &[
        ("PID", "0xA053"),
        ("FW", "159"),
        ("SER#", "HQ2132ABCDE"),
        ("V", "12840"),
        ("I", "3150"),
        ("VPV", "18920"),
        ("PPV", "43"),
        ("CS", "5"),
        ("MPPT", "2"),
        ("OR", "0x00000000"),
        ("ERR", "0"),
        ("LOAD", "ON"),
        ("IL", "400"),
        ("H19", "1234"),
        ("H20", "12"),
        ("HSDS", "17"),
    ];

    fn source(chunks: Vec<SerialChunk>) -> VeDirect {
        VeDirect::new("vedirect:test", Box::new(ScriptedSerial::new(chunks)))
    }

    fn bytes(parts: &[&[u8]]) -> SerialChunk {
        SerialChunk::Bytes(parts.concat())
    }

    fn mppt_with(changes: &[(&'static str, &'static str)]) -> Vec<u8> {
        let fields: Vec<(&str, &str)> = MPPT
            .iter()
            .map(|(label, value)| {
                let changed = changes.iter().find(|(l, _)| l == label);
                (*label, changed.map_or(*value, |(_, v)| *v))
            })
            .collect();
        vedirect_block(&fields)
    }

    #[test]
    fn an_mppt_block_maps_to_battery_panel_load_and_charge_state() {
        let mut vedirect = source(vec![bytes(&[&vedirect_block(MPPT)])]);
        let sample = vedirect.read().unwrap();
        assert_eq!(sample.battery_v, Some(12.84));
        assert_eq!(sample.battery_a, Some(3.15));
        assert_eq!(sample.pv_w, Some(43.0));
        assert_eq!(sample.charge_state.as_deref(), Some("float"));
        assert!((sample.load_w.unwrap() - 12.84 * 0.4).abs() < 1e-9);
        assert_eq!(sample.battery_soc, None);
        assert!(sample.time_s > 1e9);
        assert_eq!(vedirect.rejected(), 0);
    }

    #[test]
    fn a_block_with_a_wrong_checksum_is_rejected_and_counted() {
        let good = vedirect_block(MPPT);
        let mut corrupt = good.clone();
        // One flipped digit in V: 12840 → 19840, as line noise would do.
        let at = corrupt.windows(5).position(|w| w == b"12840").unwrap();
        corrupt[at + 1] = b'9';
        let mut vedirect = source(vec![
            bytes(&[&good]),
            bytes(&[&corrupt]),
            SerialChunk::Pause,
        ]);
        assert!(vedirect.read().is_ok());
        let error = vedirect.read().unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");
        assert_eq!(vedirect.rejected(), 1);
    }

    #[test]
    fn a_corrupt_block_between_good_ones_does_not_leak_its_values() {
        let mut corrupt = mppt_with(&[("V", "13000")]);
        let last = corrupt.len() - 1;
        corrupt[last] = corrupt[last].wrapping_add(1);
        let mut vedirect = source(vec![bytes(&[
            &mppt_with(&[("V", "12500")]),
            &corrupt,
            &vedirect_block(&[("PPV", "5")]),
        ])]);
        let sample = vedirect.read().unwrap();
        assert_eq!(sample.battery_v, Some(12.5));
        assert_eq!(sample.pv_w, Some(5.0));
        assert_eq!(vedirect.rejected(), 1);
    }

    #[test]
    fn hex_frames_between_and_inside_blocks_are_skipped() {
        let block = vedirect_block(MPPT);
        let middle = block.windows(3).position(|w| w == b"\r\nI").unwrap();
        let stream = [
            b":A0102000543\n".as_slice(),
            &block[..middle],
            b":7F0ED0071\n",
            &block[middle..],
            b":AD5ED00E803B6\n",
        ]
        .concat();
        let mut vedirect = source(vec![SerialChunk::Bytes(stream)]);
        let sample = vedirect.read().unwrap();
        assert_eq!(sample.battery_a, Some(3.15));
        assert_eq!(vedirect.rejected(), 0);
    }

    #[test]
    fn a_block_split_across_reads_is_reassembled() {
        let block = vedirect_block(MPPT);
        let (first, second) = block.split_at(block.len() / 2);
        let mut vedirect = source(vec![
            bytes(&[first]),
            SerialChunk::Pause,
            bytes(&[second]),
            SerialChunk::Pause,
        ]);
        let error = vedirect.read().unwrap_err();
        assert!(error.to_string().contains("no complete"), "{error}");
        assert_eq!(vedirect.read().unwrap().battery_v, Some(12.84));
        assert_eq!(vedirect.rejected(), 0);
    }

    #[test]
    fn a_block_trickling_in_byte_by_byte_is_read_in_one_call() {
        let chunks = vedirect_block(MPPT)
            .into_iter()
            .map(|b| SerialChunk::Bytes(vec![b]))
            .collect();
        let mut vedirect = source(chunks);
        assert_eq!(vedirect.read().unwrap().pv_w, Some(43.0));
    }

    #[test]
    fn the_newest_of_several_buffered_blocks_wins() {
        let mut vedirect = source(vec![bytes(&[
            &mppt_with(&[("PPV", "10")]),
            &mppt_with(&[("PPV", "20")]),
            &mppt_with(&[("PPV", "30")]),
        ])]);
        assert_eq!(vedirect.read().unwrap().pv_w, Some(30.0));
    }

    #[test]
    fn a_checksum_byte_that_looks_like_a_hex_frame_start_or_a_carriage_return_is_still_a_checksum()
    {
        for wanted in [b':', b'\r', b'\n', b'\t'] {
            let block = (0..94u32 * 94 * 94)
                .map(|i| {
                    let pad: String = [i % 94, i / 94 % 94, i / 94 / 94]
                        .iter()
                        .filter_map(|c| char::from_u32(u32::from(b'!') + c))
                        .filter(|c| *c != ':')
                        .collect();
                    vedirect_block(&[("V", "12840"), ("SER#", &pad), ("PPV", "43")])
                })
                .find(|block| block.last() == Some(&wanted))
                .unwrap();
            let mut vedirect = source(vec![bytes(&[&block, &vedirect_block(&[("PPV", "44")])])]);
            let sample = vedirect.read().unwrap();
            assert_eq!(sample.pv_w, Some(44.0), "checksum byte {wanted:#04x}");
            assert_eq!(sample.battery_v, Some(12.84), "checksum byte {wanted:#04x}");
            assert_eq!(vedirect.rejected(), 0, "checksum byte {wanted:#04x}");
        }
    }

    #[test]
    fn a_tail_of_a_block_at_start_up_is_not_counted_as_line_noise() {
        let block = vedirect_block(MPPT);
        let tail = &block[block.len() / 3..];
        let mut vedirect = source(vec![bytes(&[tail, &block])]);
        assert_eq!(vedirect.read().unwrap().battery_v, Some(12.84));
        assert_eq!(vedirect.rejected(), 0);
    }

    #[test]
    fn smartshunt_soc_is_per_mille_and_unknown_soc_is_left_out() {
        let shunt = |soc: &str| {
            vedirect_block(&[
                ("PID", "0xA389"),
                ("V", "26410"),
                ("I", "-2300"),
                ("P", "-61"),
                ("CE", "-12500"),
                ("SOC", soc),
                ("TTG", "---"),
                ("Alarm", "OFF"),
            ])
        };
        let mut vedirect = source(vec![bytes(&[&shunt("875")]), bytes(&[&shunt("---")])]);
        let sample = vedirect.read().unwrap();
        assert_eq!(sample.battery_soc, Some(0.875));
        assert_eq!(sample.battery_a, Some(-2.3));
        assert_eq!(sample.load_w, None);
        assert_eq!(vedirect.read().unwrap().battery_soc, None);
    }

    #[test]
    fn fields_from_alternating_blocks_are_merged() {
        let mut vedirect = source(vec![bytes(&[
            &vedirect_block(&[("V", "26410"), ("I", "-2300"), ("SOC", "640")]),
            &vedirect_block(&[("H1", "-50000"), ("H17", "1530")]),
        ])]);
        let sample = vedirect.read().unwrap();
        assert_eq!(sample.battery_v, Some(26.41));
        assert_eq!(sample.battery_soc, Some(0.64));
    }

    #[test]
    fn a_valid_block_with_an_unreadable_number_is_rejected() {
        let mut vedirect = source(vec![bytes(&[&mppt_with(&[("V", "12.8V")])])]);
        let error = vedirect.read().unwrap_err();
        assert!(error.to_string().contains("field V"), "{error}");
        assert_eq!(vedirect.rejected(), 1);
    }

    #[test]
    fn an_implausible_value_is_rejected() {
        let mut vedirect = source(vec![bytes(&[&mppt_with(&[("V", "128400")])])]);
        assert!(vedirect.read().is_err());
        assert_eq!(vedirect.rejected(), 1);
    }

    #[test]
    fn garbage_without_a_checksum_is_cut_off_and_counted() {
        let mut noise = vedirect_block(&[("V", "12840")]);
        noise.truncate(noise.len() - 12); // lose "\r\nChecksum\t<byte>"
        let flood: Vec<u8> = std::iter::repeat_n(b"\r\nX\tyyyyyyyyyy".as_slice(), 200)
            .flatten()
            .copied()
            .collect();
        let mut vedirect = source(vec![
            bytes(&[&vedirect_block(&[("PPV", "1")]), &noise, &flood]),
            SerialChunk::Pause,
        ]);
        // The first read returns the good block; the overlong one is found on the way.
        assert!(vedirect.read().is_ok());
        assert!(vedirect.rejected() >= 1);
    }

    #[test]
    fn unknown_charger_states_are_named_by_their_code() {
        let mut vedirect = source(vec![bytes(&[&mppt_with(&[("CS", "9")])])]);
        assert_eq!(
            vedirect.read().unwrap().charge_state.as_deref(),
            Some("unknown(9)")
        );
        assert_eq!(charge_state_name(3), Some("bulk"));
        assert_eq!(charge_state_name(252), Some("external-control"));
    }

    #[test]
    fn a_silent_line_is_unreachable_not_rejected() {
        let mut vedirect = source(vec![SerialChunk::Pause]);
        let error = vedirect.read().unwrap_err();
        assert!(matches!(error, SourceError::Unreachable { .. }), "{error}");
        assert_eq!(vedirect.rejected(), 0);
    }
}

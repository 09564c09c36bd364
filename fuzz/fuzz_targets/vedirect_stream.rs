//! A Victron VE.Direct serial stream, byte by byte: frames, checksums, hex messages, overlong
//! blocks, and the readings made from each block's fields.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use pew::energy::sources::vedirect::{Frame, FrameParser, sample_from_fields};

fuzz_target!(|data: &[u8]| {
    let mut parser = FrameParser::new();
    for &byte in data {
        if let Some(Frame::Block(fields)) = parser.push(byte) {
            let fields: BTreeMap<String, String> = fields.into_iter().collect();
            if let Ok(sample) = sample_from_fields(&fields) {
                let _ = sample.implausible();
            }
        }
    }
});

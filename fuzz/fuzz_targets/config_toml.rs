//! A configuration file (TOML, any keys and values) over the built-in defaults.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pew::config::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Settings::from_text(Some((Path::new("fuzz.toml"), text)), &[]);
});

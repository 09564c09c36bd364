//! A key file (JSON V3) from anywhere: checked, its address read, and, when its key
//! derivation is cheap enough to try thousands of times a second, opened with a password.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pew::wallet::{parse_key_file, unlock_json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.json");
    let Ok(json) = parse_key_file(path, text) else {
        return;
    };
    let params = &json["crypto"]["kdfparams"];
    let cheap = params["n"].as_u64().is_none_or(|n| n <= 1024)
        && params["c"].as_u64().is_none_or(|c| c <= 1024);
    if cheap {
        let _ = unlock_json(path, json, "pw");
    }
});

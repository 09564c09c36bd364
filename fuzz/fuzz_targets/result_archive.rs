//! A result archive downloaded from IPFS (any bytes): extracted under a cap into a fresh
//! folder. Nothing may land outside it, and nothing past the cap may be written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pew::results::archive::extract;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let target = dir.path().join("result");
    let _ = extract(data, &target, 1 << 20);
    // Only `result/` may have appeared.
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .map(|e| e.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        entries.iter().all(|name| name == "result"),
        "extraction escaped its folder: {entries:?}"
    );
});

//! An app's output folder as pew reads it: `computed.json` (any bytes), a result file and a
//! sub-folder, through the output rules (names, links) and the digest rules, as for a plain
//! and for a callback deal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pew::executor::output::check_tree;
use pew::results::digest::{callback_data, result_digest};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let out = dir.path();
    if std::fs::write(out.join("computed.json"), data).is_err()
        || std::fs::write(out.join("result.txt"), b"result").is_err()
        || std::fs::create_dir(out.join("out")).is_err()
        || std::fs::write(out.join("out").join("a.txt"), b"A").is_err()
    {
        return;
    }
    let _ = check_tree(out);
    let _ = result_digest(out, false);
    let _ = result_digest(out, true);
    let _ = callback_data(out);
});

//! A result archive downloaded from IPFS (any bytes): extracted under a cap into a fresh
//! folder. Nothing may land outside it, and nothing past the cap may be written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pew::results::archive::extract;

fuzz_target!(|data: &[u8]| {
    // Three levels deep: an entry that climbs out (`../../x`) lands in a folder we look at.
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let target = dir.path().join("a/b/result");
    let _ = std::fs::create_dir_all(&target);
    let _ = extract(data, &target, 1 << 20);
    // Only `a/b/result/` may have anything in it.
    for (folder, allowed) in [
        (dir.path().to_path_buf(), "a"),
        (dir.path().join("a"), "b"),
        (dir.path().join("a/b"), "result"),
    ] {
        let entries: Vec<_> = std::fs::read_dir(&folder)
            .map(|e| e.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            entries.iter().all(|name| name == allowed),
            "extraction escaped its folder into {}: {entries:?}",
            folder.display()
        );
    }
});

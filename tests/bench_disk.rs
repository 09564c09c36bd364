//! The SD-card benchmark, run by `scripts/bench-disk` (ignored by `cargo test`): how many bytes
//! an idle `pew run` writes to disk per hour with the energy gate on a replayed trace (journal,
//! energy state, status files), measured from the kernel's count for the process
//! (`write_bytes` in /proc/PID/io: what reaches the block layer). The runtime folder is in RAM
//! (/dev/shm here, /run/pew on a Pi), as the .deb sets it. The JSON summary goes to the file
//! named by BENCH_DISK_OUT.

mod common;

use std::time::{Duration, Instant};

fn write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "a benchmark: run it with scripts/bench-disk"]
async fn bench_disk_writes() {
    let minutes: u64 = std::env::var("BENCH_DISK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // BENCH_DISK_HISTORY_EVERY_S: how often the dashboard's history is journaled (the
    // default, 300 s, unless set; 86400 leaves it out, to measure its share).
    let history_every_s: f64 = std::env::var("BENCH_DISK_HISTORY_EVERY_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300.0);
    let t = common::devnet(true).await;
    let (_, pool) = common::node::writer_app_and_pool(&t, 1, "bench disk").await;
    let dir = t.dir.path();
    // A sunny day and a night, one trace minute per row, replayed 60 times faster than real
    // time: the gate opens and closes the bid over the measurement, as on a real day.
    let trace = dir.join("trace.csv");
    let mut text = String::from("time,pv_w,load_w,battery_soc\n");
    for minute in 0..=1440 {
        let pv = if (360..1080).contains(&minute) {
            40.0
        } else {
            0.0
        };
        text.push_str(&format!("{},{pv},3.0,0.6\n", 1_780_272_000 + minute * 60));
    }
    std::fs::write(&trace, text).unwrap();
    let runtime = tempfile::Builder::new()
        .prefix("pew-bench-run-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[node]
pool = "{pool}"
journal = "{journal}"
runtime_dir = "{runtime}"

[executor]
work_dir = "{work}"

[energy]
source = "trace"
trace_file = "{trace}"
trace_speed = 60.0
trace_loop = true
state_file = "{state}"

[energy.forecast]
open_meteo = false

[api]
listen = ""

[history]
journal_every_s = {history_every_s}
"#,
            journal = dir.join("node/journal.sqlite").display(),
            runtime = runtime.path().display(),
            work = dir.join("work").display(),
            trace = trace.display(),
            state = dir.join("energy/state.json").display(),
        ),
    )
    .unwrap();
    let log = dir.join("node.log");
    let mut node = common::node::spawn_node(&t, &config, &log, None);
    let pid = node.id();
    // Start-up writes (journal creation, first bid) are not the idle figure.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let before = write_bytes(pid);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(minutes * 60)).await;
    let written = write_bytes(pid) - before;
    let hours = started.elapsed().as_secs_f64() / 3600.0;
    let per_hour = written as f64 / hours;
    assert!(
        node.try_wait().unwrap().is_none(),
        "the node died: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let bids = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("bid: workerpool order presigned")
        .count();
    common::node::sigterm_and_wait(&mut node, Duration::from_secs(60)).await;
    eprintln!(
        "idle for {minutes} min: {written} bytes written ({:.2} MB per hour), {bids} bids opened",
        per_hour / 1e6
    );
    let summary = serde_json::json!({
        "minutes": minutes,
        "bytes_written": written,
        "mb_per_hour": (per_hour / 1e4).round() / 100.0,
        "bids_opened": bids,
        "history_journal_every_s": history_every_s,
    });
    if let Ok(out) = std::env::var("BENCH_DISK_OUT") {
        std::fs::write(out, summary.to_string()).unwrap();
    }
    eprintln!("{summary}");
}

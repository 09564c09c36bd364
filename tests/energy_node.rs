//! `pew run` with `energy.source = "trace"` on the devnet: the node presigns workerpool orders
//! and matches requests only while the replayed trace gives a surplus, and leaves an energy
//! receipt for each task it ran.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use common::deals::*;
use pew::abi::IexecInterfaceToken as Hub;

/// A trace in three acts, one trace minute per row: 20 minutes of night with the battery under
/// its reserve, 60 minutes of sun with the battery well above it, then night again.
fn write_trace(path: &Path) {
    let mut text = String::from("time,pv_w,load_w,battery_soc\n");
    for minute in 0..=180 {
        let (pv, soc) = if (20..80).contains(&minute) {
            (150.0, 0.6)
        } else {
            (0.0, 0.25)
        };
        text.push_str(&format!("{},{pv},3.0,{soc}\n", 1_780_272_000 + minute * 60));
    }
    std::fs::write(path, text).unwrap();
}

async fn logs_of(t: &common::TestDevnet, signature: alloy::primitives::B256) -> usize {
    let filter = Filter::new()
        .address(t.info().hub)
        .event_signature(signature)
        .from_block(0);
    t.reader().get_logs(&filter).await.unwrap().len()
}

#[tokio::test]
async fn the_node_bids_and_matches_only_inside_the_traces_surplus_window() {
    let t = common::devnet(true).await;
    let (app, pool) = common::node::writer_app_and_pool(&t, 100, "solar").await;

    let dir = t.dir.path();
    let trace = dir.join("trace.csv");
    write_trace(&trace);
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[node]
pool = "{pool}"
journal = "{journal}"
poll_interval_ms = 200
volume = 1
stop_grace_s = 30
runtime_dir = "{runtime}"

[executor]
work_dir = "{work}"

[energy]
source = "trace"
trace_file = "{trace}"
trace_speed = 60.0
trace_loop = false
poll_interval_s = 0.5
state_file = "{state}"

[energy.battery]
capacity_wh = 1000.0
reserve = 0.3

[energy.forecast]
open_meteo = false
"#,
            journal = dir.join("journal.sqlite").display(),
            work = dir.join("work").display(),
            runtime = dir.join("run").display(),
            trace = trace.display(),
            state = dir.join("energy-state.json").display(),
        ),
    )
    .unwrap();
    let mut node = common::node::spawn_node(&t, &config, &dir.join("node.log"), None);
    let started = Instant::now();
    let node_log = || std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();

    // Act one: night, battery under its reserve. A request waits; nothing is presigned.
    let first = common::node::submit_request(&t, app, "sunny", &[]);
    let sdk = t.sdk(REQUESTER).await;
    // The node has said no at least once (it runs and sees the night), then had time to act.
    while !node_log().contains("admit=false") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gate never decided:\n{}",
            node_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while started.elapsed() < Duration::from_secs(12) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        sdk.poco().consumed(first).await.unwrap(),
        U256::ZERO,
        "{}",
        node_log()
    );
    assert_eq!(
        logs_of(&t, Hub::SignedWorkerpoolOrder::SIGNATURE_HASH).await,
        0,
        "{}",
        node_log()
    );

    // Act two: the sun is up (trace minute 20 = 20 s in). The request is matched and done.
    let task = loop {
        let status = sdk.request_status(first).await.unwrap();
        if let Some(task) = status.deals.first().and_then(|d| d.tasks.first())
            && task.status == "COMPLETED"
        {
            break task.task_id;
        }
        // The window lasts 60 s from trace minute 20; a slow start of the node shifts it later.
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not completed in the window:\n{}",
            node_log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // Matched inside the window by the node's own account: its last decision before the match
    // was a yes.
    let log = node_log();
    let matched_at = log
        .lines()
        .position(|l| l.contains("request matched"))
        .expect("the node logged the match");
    let last_decision = log
        .lines()
        .take(matched_at)
        .filter(|l| l.contains("energy gate decision"))
        .last()
        .expect("a decision before the match");
    assert!(last_decision.contains("admit=true"), "{log}");
    assert!(logs_of(&t, Hub::SignedWorkerpoolOrder::SIGNATURE_HASH).await >= 1);

    // Act three: night again. The open bid is withdrawn and a new request waits. The test keys
    // on the node's own log, not on its own clock: on a slow machine the node starts its trace
    // seconds after this test started its clock.
    let night_again = |log: &str| {
        let decisions: Vec<bool> = log
            .lines()
            .filter(|l| l.contains("energy gate decision"))
            .map(|l| l.contains("admit=true"))
            .collect();
        let last_yes = decisions.iter().rposition(|admit| *admit);
        last_yes.is_some_and(|i| decisions[i + 1..].contains(&false))
    };
    while !night_again(&node_log()) {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the gate never said no after the window:\n{}",
            node_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let second = common::node::submit_request(&t, app, "dark", &[]);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        sdk.poco().consumed(second).await.unwrap(),
        U256::ZERO,
        "{}",
        node_log()
    );
    assert!(
        logs_of(&t, Hub::ClosedWorkerpoolOrder::SIGNATURE_HASH).await >= 1,
        "the bid opened in the window is closed after it:\n{}",
        node_log()
    );
    assert!(node_log().contains("under its reserve"), "{}", node_log());

    // The task's energy receipt: in the journal and as energy.json beside its output.
    let receipt_path = dir
        .join("work/tasks")
        .join(task.to_string())
        .join("output/energy.json");
    let receipt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&receipt_path).unwrap()).unwrap();
    assert_eq!(receipt["task"], task.to_string());
    // In the window the panel gives 150 W: whatever the task drew above idle came from it.
    if receipt["wh_used"].as_f64().unwrap() > 0.0 {
        assert_eq!(receipt["pv_share_pct"], 100.0, "{receipt}");
    }
    assert_eq!(receipt["measured"], true, "{receipt}");
    assert_eq!(receipt["app"], app.to_string());

    // `pew energy status` shows what the running node sees and decided, without opening the
    // source itself.
    let energy_status = || t.pew_json(&["energy", "status", "--config", config.to_str().unwrap()]);
    let live = energy_status();
    assert_eq!(live["node"]["pid"], node.id(), "{live}");
    // The status lives in the runtime folder (RAM on a Pi), not beside the state on disk.
    let status_files = || {
        std::fs::read_dir(dir.join("run"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("node-status-"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(status_files(), 1);
    assert!(!dir.join("node-status.json").exists());
    assert!(
        live["source"].as_str().unwrap().starts_with("trace:"),
        "{live}"
    );
    assert_eq!(live["last_node_decision"]["admit"], false, "{live}");

    let status = common::node::sigterm_and_wait(&mut node, Duration::from_secs(90)).await;
    assert!(status.success(), "{}", node_log());
    assert_eq!(
        status_files(),
        0,
        "the node removes its status file when it stops"
    );
    let own = energy_status();
    assert!(own["node"].is_null(), "no node runs any more: {own}");
    assert!(own["last_node_decision"].is_null(), "{own}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("energy-state.json")).unwrap())
            .unwrap();
    assert!(
        state["soc"].as_f64().is_some(),
        "the estimate is saved at stop: {state}"
    );
}

/// Writes the config of a node on a trace whose battery is healthy (60 %) for
/// `healthy_minutes` trace minutes (seconds of wall time), then nearly empty (3 %), with `extra`
/// appended; its shutdown command writes `off` into the file `powered-off`.
fn collapsing_battery_config(
    t: &common::TestDevnet,
    pool: alloy::primitives::Address,
    healthy_minutes: u64,
    extra: &str,
) -> std::path::PathBuf {
    let dir = t.dir.path();
    let trace = dir.join("trace.csv");
    let mut text = String::from("time,pv_w,battery_soc\n");
    for minute in 0..=healthy_minutes + 60 {
        let soc = if minute < healthy_minutes { 0.6 } else { 0.03 };
        text.push_str(&format!("{},20,{soc}\n", 1_780_272_000 + minute * 60));
    }
    std::fs::write(&trace, text).unwrap();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\npool = \"{pool}\"\njournal = \"{}\"\npoll_interval_ms = 200\n\
             [executor]\nwork_dir = \"{}\"\n\
             [energy]\nsource = \"trace\"\ntrace_file = \"{}\"\ntrace_speed = 60.0\n\
             poll_interval_s = 0.5\nstate_file = \"{}\"\nshutdown_command = \"echo off > {}\"\n\
             [energy.battery]\ncapacity_wh = 1000.0\n[energy.forecast]\nopen_meteo = false\n{extra}",
            dir.join("journal.sqlite").display(),
            dir.join("work").display(),
            trace.display(),
            dir.join("energy-state.json").display(),
            dir.join("powered-off").display(),
        ),
    )
    .unwrap();
    config
}

/// Starts a node on a collapsing battery (see [`collapsing_battery_config`]), waits until it
/// exits by itself and returns its log. It must have run the power-off command.
async fn run_until_the_battery_collapses(
    t: &common::TestDevnet,
    pool: alloy::primitives::Address,
    healthy_minutes: u64,
    extra: &str,
) -> String {
    let dir = t.dir.path();
    let config = collapsing_battery_config(t, pool, healthy_minutes, extra);
    let mut node = common::node::spawn_node(t, &config, &dir.join("node.log"), None);
    let node_log = || std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(healthy_minutes + 120);
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not power off:\n{}",
            node_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = node_log();
    assert!(status.success(), "{log}");
    assert_eq!(
        std::fs::read_to_string(dir.join("powered-off"))
            .unwrap_or_default()
            .trim(),
        "off",
        "{log}"
    );
    assert!(log.contains("under the critical 5.0 %"), "{log}");
    assert!(log.contains("powering off"), "{log}");
    assert!(
        dir.join("energy-state.json").exists(),
        "the estimate was saved"
    );
    log
}

#[tokio::test]
async fn a_critically_low_battery_stops_the_node_and_runs_the_power_off_command() {
    let t = common::devnet(true).await;
    let (_app, pool) = common::node::writer_app_and_pool(&t, 10, "low battery").await;
    // 40 s of a healthy battery: time for the node to start and bid, even on a slow machine.
    let log = run_until_the_battery_collapses(&t, pool, 40, "").await;
    assert!(
        log.contains("stopped"),
        "the node stopped cleanly first: {log}"
    );
    // The bid opened while the battery was fine is closed before powering off.
    let closed = logs_of(&t, Hub::ClosedWorkerpoolOrder::SIGNATURE_HASH).await;
    let signed = logs_of(&t, Hub::SignedWorkerpoolOrder::SIGNATURE_HASH).await;
    assert!(signed >= 1, "{log}");
    assert_eq!(closed, signed, "every bid closed: {log}");
}

#[tokio::test]
async fn a_node_still_waiting_for_ipfs_powers_off_when_the_battery_collapses() {
    let t = common::devnet(true).await;
    let (_app, pool) = common::node::writer_app_and_pool(&t, 10, "waiting").await;
    // A first run bids, then dies without closing its bid (a power cut).
    let config = collapsing_battery_config(&t, pool, 10_000, "");
    let log_path = t.dir.path().join("first.log");
    let mut first = common::node::spawn_node(&t, &config, &log_path, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("bid: workerpool order presigned")
    {
        assert!(Instant::now() < deadline, "the first run never bid");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(
        logs_of(&t, Hub::ClosedWorkerpoolOrder::SIGNATURE_HASH).await,
        0
    );

    // The next run finds an IPFS API nobody answers: it waits for it, and never gets to bid.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let extra = format!("[ipfs]\napi = \"http://127.0.0.1:{dead_port}\"\n");
    let log = run_until_the_battery_collapses(&t, pool, 20, &extra).await;
    assert!(log.contains("IPFS"), "it was waiting for IPFS: {log}");
    assert_eq!(
        logs_of(&t, Hub::SignedWorkerpoolOrder::SIGNATURE_HASH).await,
        1,
        "only the first run bid: {log}"
    );
    // Before powering off, the bid the first run left open is closed.
    assert_eq!(
        logs_of(&t, Hub::ClosedWorkerpoolOrder::SIGNATURE_HASH).await,
        1,
        "{log}"
    );
    assert!(
        log.contains("the bid left open by the last run is closed"),
        "{log}"
    );
}

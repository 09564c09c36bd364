//! Helpers for tests that run `pew run` as a process: the writer app and a staked workerpool,
//! and a clean stop.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use pew::abi::IexecInterfaceToken as Hub;
use pew::poco::{OrderHash, TaskId};

use super::TestDevnet;
use super::deals::REQUESTER;
use super::deals::{APP_OWNER, POOL_OWNER};

/// Registers the writer test app with its real image digest and publishes a free app order of
/// `volume` tasks; creates a workerpool owned by `POOL_OWNER` and deposits 10 RLC of stake.
pub async fn writer_app_and_pool(
    t: &TestDevnet,
    volume: u64,
    description: &str,
) -> (Address, Address) {
    app_and_pool(t, "writer", volume, description).await
}

/// Like [`writer_app_and_pool`], for the test app `tests/apps/<app_name>`.
pub async fn app_and_pool(
    t: &TestDevnet,
    app_name: &str,
    volume: u64,
    description: &str,
) -> (Address, Address) {
    let docker = super::docker().await;
    let image = super::app_image(&docker, app_name).await;
    let app = t.pew_as(APP_OWNER, &["app", "register", "--image", &image]);
    let app: Address = app["address"].as_str().unwrap().parse().unwrap();
    let volume = volume.to_string();
    t.pew_as(
        APP_OWNER,
        &[
            "app",
            "publish",
            "--app",
            &app.to_string(),
            "--volume",
            &volume,
        ],
    );
    let pool = t.pew_as(
        POOL_OWNER,
        &["pool", "create", "--description", description],
    );
    let pool: Address = pool["address"].as_str().unwrap().parse().unwrap();
    t.pew_as(POOL_OWNER, &["account", "deposit", "10"]);
    (app, pool)
}

/// Sends SIGTERM and waits (yielding, so the test's own tasks keep running) at most `limit`.
pub async fn sigterm_and_wait(child: &mut Child, limit: Duration) -> ExitStatus {
    // SAFETY: plain kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits a presigned request for `app` with `args` as the requester; `extra` adds flags
/// (`--trust 2`, `--dataset 0x…`).
pub fn submit_request(
    t: &TestDevnet,
    app: Address,
    args: &str,
    extra: &[&str],
) -> pew::poco::OrderHash {
    let app = app.to_string();
    let mut command = vec!["request", "submit", "--app", &app, "--args", args];
    command.extend_from_slice(extra);
    super::deals::hash_of(&t.pew_as(super::deals::REQUESTER, &command))
}

/// Starts `pew run` with `config` as the workerpool owner, appending its stderr to `log`;
/// `failpoint` makes it kill itself at that point.
pub fn spawn_node(
    t: &TestDevnet,
    config: &std::path::Path,
    log: &std::path::Path,
    failpoint: Option<&str>,
) -> Child {
    let keystore = t.keystore(POOL_OWNER);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut command = t.pew();
    command
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--keystore", keystore.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(log);
    if let Some(point) = failpoint {
        command.env("PEW_FAILPOINT", point);
    }
    command.spawn().unwrap()
}

/// Moves the chain's clock `seconds` ahead and mines a block at the new time.
pub async fn advance_chain_time(t: &TestDevnet, seconds: u64) {
    use alloy::providers::Provider;
    let _: serde_json::Value = t
        .reader()
        .raw_request("evm_increaseTime".into(), (seconds,))
        .await
        .unwrap();
    let _: serde_json::Value = t.reader().raw_request("evm_mine".into(), ()).await.unwrap();
}

/// The node's configuration file for this devnet.
pub fn node_config(t: &TestDevnet, pool: Address, gate: &str) -> PathBuf {
    let dir = t.dir.path();
    let path = dir.join("node.toml");
    // Tests run side by side: a node without an API of its own does not take the default port.
    let api = if gate.contains("[api]") {
        ""
    } else {
        "[api]\nlisten = \"\"\n"
    };
    let text = format!(
        r#"
[node]
pool = "{pool}"
journal = "{journal}"
poll_interval_ms = 200
price = "0"
volume = 1
stop_grace_s = 30

[executor]
work_dir = "{work}"

{gate}
{api}"#,
        journal = dir.join("journal.sqlite").display(),
        work = dir.join("work").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The node's log so far (its stderr, appended to `node.log` in the test's folder).
pub fn node_log(t: &TestDevnet) -> String {
    std::fs::read_to_string(t.dir.path().join("node.log")).unwrap_or_default()
}

/// Adds `lines` to the `[node]` section of a config written by `node_config`.
pub fn with_node_settings(config: &Path, lines: &str) {
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace("[node]\n", &format!("[node]\n{lines}\n"));
    std::fs::write(config, text).unwrap();
}

/// Waits until the request's single task is COMPLETED; returns it.
pub async fn wait_completed(t: &TestDevnet, request: OrderHash, limit: Duration) -> TaskId {
    let sdk = t.sdk(REQUESTER).await;
    let started = Instant::now();
    loop {
        let status = sdk.request_status(request).await.unwrap();
        if let Some(task) = status.deals.first().and_then(|d| d.tasks.first())
            && task.status == "COMPLETED"
        {
            return task.task_id;
        }
        assert!(
            started.elapsed() < limit,
            "request {request} not completed in time; node log:\n{}",
            node_log(t)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// How many contributions the chain recorded for `task`.
pub async fn contributions(t: &TestDevnet, task: TaskId) -> usize {
    let filter = Filter::new()
        .address(t.info().hub)
        .event_signature(Hub::TaskContribute::SIGNATURE_HASH)
        .topic1(task.0)
        .from_block(0);
    t.reader().get_logs(&filter).await.unwrap().len()
}

/// Stops a node with SIGTERM, waiting as long as its own limits allow.
pub async fn stop(mut child: Child) -> std::process::ExitStatus {
    // Bounded by the node's own limits: 20 s to close the bid, stop_grace_s (30) for tasks, and
    // 30 s RPC timeouts when the RPC node hangs.
    sigterm_and_wait(&mut child, Duration::from_secs(150)).await
}

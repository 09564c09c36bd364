//! Helpers for tests that run `pew run` as a process: the writer app and a staked workerpool,
//! and a clean stop.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use alloy::primitives::Address;

use super::TestDevnet;
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

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
    let docker = super::docker().await;
    let image = super::app_image(&docker, "writer").await;
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

//! The devnet's IPFS node: js-ipfs, offline, with its RPC API and gateway on 127.0.0.1.
//!
//! Each `up` starts from a fresh repository inside the state folder, so content never outlives
//! the chain that referenced it and two devnets never share a repository lock.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::DevnetError;
use super::process::{self, Helper};

/// A started IPFS node.
pub struct IpfsNode {
    /// RPC API base URL, e.g. `http://127.0.0.1:5001`.
    pub api: String,
    /// Gateway base URL, e.g. `http://127.0.0.1:8080`.
    pub gateway: String,
    /// The daemon process.
    pub helper: Helper,
    /// Its handle, to reap it.
    pub child: Child,
}

fn start_error(reason: String) -> DevnetError {
    DevnetError::Start {
        what: "the IPFS node",
        reason,
    }
}

/// How a start that lost its port to another process begins its reason (the caller picks
/// other ports and tries again).
pub const PORT_TAKEN: &str = "a port it was given was taken meanwhile";

/// Initialises a fresh js-ipfs repository in `state_dir/ipfs` and starts its daemon offline.
pub async fn start(
    jsipfs: &Path,
    state_dir: &Path,
    (api_port, gateway_port): (u16, u16),
    start_limit: Duration,
    tie_to_parent: bool,
) -> Result<IpfsNode, DevnetError> {
    let repo = state_dir.join("ipfs");
    if repo.exists() {
        std::fs::remove_dir_all(&repo)
            .map_err(|e| start_error(format!("cannot clear {}: {e}", repo.display())))?;
    }
    let init = Command::new(jsipfs)
        .args(["init", "--profile", "test"])
        .env("IPFS_PATH", &repo)
        .output()
        .map_err(|e| start_error(format!("{}: {e}", jsipfs.display())))?;
    if !init.status.success() {
        return Err(start_error(format!(
            "`jsipfs init` failed: {}",
            String::from_utf8_lossy(&init.stderr).trim()
        )));
    }
    configure(&repo.join("config"), api_port, gateway_port)?;

    let mut command = Command::new(jsipfs);
    command
        .args(["daemon", "--offline"])
        .env("IPFS_PATH", &repo);
    let log = state_dir.join("ipfs.log");
    // A fresh log per start: an earlier attempt's EADDRINUSE must not fail this one.
    let _ = std::fs::remove_file(&log);
    let (helper, mut child) = process::spawn("ipfs", command, &log, tie_to_parent)
        .map_err(|e| start_error(format!("{}: {e}", jsipfs.display())))?;

    let api = format!("http://127.0.0.1:{api_port}");
    let client = reqwest::Client::new();
    // js-ipfs starts in a few seconds; a loaded 2-core machine starting several devnets at
    // once can need much longer. A daemon that exits is reported at once.
    let deadline = Instant::now() + start_limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(start_error(format!(
                "the daemon exited ({status}); end of {}:\n{}",
                log.display(),
                process::log_tail(&log, 2000)
            )));
        }
        let answered = client
            .post(format!("{api}/api/v0/id"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if answered {
            break;
        }
        // A port another process took between our check and the daemon's bind: js-ipfs
        // stays up without its API, so this is read from its log and reported at once.
        if process::log_tail(&log, 2000).contains("EADDRINUSE") {
            process::stop_group(helper.pid, Duration::from_secs(2));
            let _ = child.wait();
            return Err(start_error(format!(
                "{PORT_TAKEN}; end of {}:\n{}",
                log.display(),
                process::log_tail(&log, 2000)
            )));
        }
        if Instant::now() > deadline {
            process::stop_group(helper.pid, Duration::from_secs(2));
            let _ = child.wait();
            return Err(start_error(format!(
                "its API did not answer on {api} within {} s; end of {}:\n{}",
                start_limit.as_secs(),
                log.display(),
                process::log_tail(&log, 2000)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(IpfsNode {
        api,
        gateway: format!("http://127.0.0.1:{gateway_port}"),
        helper,
        child,
    })
}

/// Binds the API and gateway to the chosen loopback ports, and everything else to loopback
/// ports the OS picks, with no swarm listener, peers or discovery.
fn configure(config_path: &Path, api_port: u16, gateway_port: u16) -> Result<(), DevnetError> {
    let text = std::fs::read_to_string(config_path)
        .map_err(|e| start_error(format!("{}: {e}", config_path.display())))?;
    let mut config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| start_error(format!("{}: {e}", config_path.display())))?;
    let addresses = config
        .get_mut("Addresses")
        .and_then(|a| a.as_object_mut())
        .ok_or_else(|| start_error(format!("{} has no Addresses", config_path.display())))?;
    addresses.insert(
        "API".into(),
        format!("/ip4/127.0.0.1/tcp/{api_port}").into(),
    );
    addresses.insert(
        "Gateway".into(),
        format!("/ip4/127.0.0.1/tcp/{gateway_port}").into(),
    );
    addresses.insert("RPC".into(), "/ip4/127.0.0.1/tcp/0".into());
    addresses.insert("Swarm".into(), serde_json::json!([]));
    config["Bootstrap"] = serde_json::json!([]);
    let text = serde_json::to_string_pretty(&config).expect("JSON serializes");
    std::fs::write(config_path, text)
        .map_err(|e| start_error(format!("{}: {e}", config_path.display())))
}

//! `pew devnet up|down|status` as a user runs them: the binary, its stdout JSON, its errors.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::ProviderBuilder;
use pew::abi::IexecInterfaceToken as Hub;
use pew::devnet::DevnetInfo;

/// `pew` with free ports for everything, so tests can run side by side.
fn pew(state_dir: &std::path::Path) -> Command {
    let mut command = Command::new(common::pew_bin());
    command
        .env("PEW_DEVNET__IPFS_API_PORT", "0")
        .env("PEW_DEVNET__IPFS_GATEWAY_PORT", "0")
        .env("PEW_DEVNET__STATE_DIR", state_dir)
        .env("PEW_TOOLS_DIR", common::tools().root())
        .env_remove("PEW_CONFIG");
    command
}

fn helper_pids(state_dir: &std::path::Path) -> Vec<u32> {
    let text = std::fs::read_to_string(state_dir.join("processes.json")).unwrap();
    let helpers: serde_json::Value = serde_json::from_str(&text).unwrap();
    helpers
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].as_u64().unwrap() as u32)
        .collect()
}

#[tokio::test]
async fn detached_devnet_serves_poco_and_ipfs_and_down_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let output = pew(dir.path())
        .args(["devnet", "up", "--port", "0", "--detach"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "devnet up failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Exactly one JSON object on stdout, with exactly the documented keys.
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one line on stdout: {stdout}"
    );
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "accounts",
            "app_registry",
            "block",
            "chain_id",
            "dataset_registry",
            "hub",
            "ipfs_api",
            "ipfs_gateway",
            "rlc",
            "rpc_url",
            "workerpool_registry"
        ]
    );
    let info: DevnetInfo = serde_json::from_value(json).unwrap();
    assert_eq!(
        info,
        DevnetInfo::read(&dir.path().join("devnet.json")).unwrap()
    );
    assert_eq!(info.chain_id, 31337);
    assert_eq!(info.accounts.len(), 10);

    // The contracts answer as the real PoCo does.
    let provider = ProviderBuilder::new().connect_http(info.rpc_url.parse().unwrap());
    let hub = Hub::new(info.hub, &provider);
    assert_eq!(hub.countCategory().call().await.unwrap(), U256::from(5));
    let xl = hub.viewCategory(U256::from(4)).call().await.unwrap();
    assert_eq!(
        (
            xl.name.as_str(),
            xl.description.as_str(),
            xl.workClockTimeRef
        ),
        ("XL", "\"\"", U256::from(36000))
    );
    assert_eq!(hub.token().call().await.unwrap(), info.rlc);
    assert_eq!(hub.appregistry().call().await.unwrap(), info.app_registry);
    // Every dev account but the deployer holds 1 000 000 RLC.
    let rlc = pew::abi::RLC::new(info.rlc, &provider);
    let balance = rlc
        .balanceOf(info.accounts[5].address)
        .call()
        .await
        .unwrap();
    assert_eq!(balance, U256::from(pew::devnet::deploy::DEV_ACCOUNT_RLC));

    // The IPFS API answers.
    let api = info.ipfs_api.clone().unwrap();
    let id: serde_json::Value = reqwest::Client::new()
        .post(format!("{api}/api/v0/id"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(id["ID"].as_str().is_some_and(|id| !id.is_empty()), "{id}");

    // `status` reads the same facts back.
    let status = pew(dir.path()).args(["devnet", "status"]).output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let facts: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(facts["poco"]["categories"].as_array().unwrap().len(), 5);

    // `down` stops everything.
    let pids = helper_pids(dir.path());
    assert_eq!(pids.len(), 2, "anvil and ipfs");
    let down = pew(dir.path()).args(["devnet", "down"]).output().unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    for pid in pids {
        assert!(
            !common::process_alive(pid),
            "pid {pid} survived devnet down"
        );
    }
    assert!(!dir.path().join("devnet.json").exists());
    let chain_gone = Hub::new(info.hub, &provider).countCategory().call().await;
    assert!(chain_gone.is_err(), "anvil still answers after down");
}

#[test]
fn a_busy_port_is_one_clear_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let started = Instant::now();
    let output = pew(dir.path())
        .args(["devnet", "up", "--no-ipfs", "--port", &port])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&port) && errors[0].contains("already in use"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn missing_tools_say_to_run_setup() {
    let dir = tempfile::tempdir().unwrap();
    let output = pew(dir.path())
        .env("PEW_TOOLS_DIR", dir.path().join("no-tools"))
        .args(["devnet", "up", "--no-ipfs", "--port", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scripts/setup"), "{stderr}");
}

#[test]
fn a_second_devnet_in_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = pew(dir.path())
        .args(["devnet", "up", "--no-ipfs", "--port", "0", "--detach"])
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = pew(dir.path())
        .args(["devnet", "up", "--no-ipfs", "--port", "0", "--detach"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr).to_string();
    let down = pew(dir.path()).args(["devnet", "down"]).output().unwrap();
    assert!(down.status.success());
    assert!(!second.status.success());
    assert!(
        stderr.contains("already running") && stderr.contains("pew devnet down"),
        "{stderr}"
    );
}

#[test]
fn foreground_devnet_stops_everything_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = pew(dir.path())
        .args(["devnet", "up", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: DevnetInfo = serde_json::from_str(&line).expect("the devnet JSON on stdout");
    assert_ne!(info.hub, Address::ZERO);
    let pids = helper_pids(dir.path());
    assert_eq!(pids.len(), 2);

    // SAFETY: plain kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "pew devnet up did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    for pid in pids {
        assert!(!common::process_alive(pid), "pid {pid} survived Ctrl-C");
    }
}

//! `pew init --non-interactive` on a fresh devnet: from nothing but a private key to a config
//! that `pew doctor` passes and `pew run` serves, with no chain or password variables left to
//! help; a second run changes nothing (no second key file, workerpool or deposit).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use common::deals::POOL_OWNER;
use serde_json::Value;

fn init(t: &common::TestDevnet, dir: &Path, extra: &[&str]) -> (bool, Value, String) {
    let config = dir.join("etc/pew.toml");
    let mut command = t.pew();
    command
        .args(["init", "--non-interactive", "--json"])
        .args(["--config", config.to_str().unwrap()])
        .args(["--chain", "devnet", "--devnet-file"])
        .arg(t.devnet_file())
        .args(["--keystore", dir.join("keys/wallet.json").to_str().unwrap()])
        .args(["--password-file", dir.join("password").to_str().unwrap()])
        .args(["--state-dir", dir.join("state").to_str().unwrap()])
        .args(extra)
        .env_remove("PEW_CHAIN__PRESET")
        .env_remove("PEW_CHAIN__DEVNET_FILE")
        .env_remove("PEW_PASSWORD")
        .envs(common::engine_env());
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (output.status.success(), json, stderr)
}

#[tokio::test]
async fn init_leaves_a_node_that_doctor_passes_and_run_serves_and_a_second_run_changes_nothing() {
    let t = common::devnet(true).await;
    let dir = t.dir.path().join("operator");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("password"), "operator password\n").unwrap();
    let key = dir.join("key.hex");
    std::fs::write(&key, &t.info().accounts[POOL_OWNER].private_key).unwrap();
    let owner = t.info().signer(POOL_OWNER).unwrap().address();

    // Without a terminal and without --non-interactive: one line saying what to do.
    let asked = t
        .pew()
        .args(["init", "--config", dir.join("x.toml").to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!asked.status.success());
    let said = String::from_utf8_lossy(&asked.stderr);
    assert!(
        said.contains("--non-interactive") && said.lines().count() == 1,
        "{said}"
    );

    let (ok, first, log) = init(
        &t,
        &dir,
        &[
            "--private-key-file",
            key.to_str().unwrap(),
            "--price",
            "0.5",
        ],
    );
    assert!(ok, "init failed: {first}\n{log}");
    let wallet: Address = first["wallet"].as_str().unwrap().parse().unwrap();
    assert_eq!(wallet, owner, "{first}");
    assert_eq!(first["doctor_ok"], true, "{first}\n{log}");
    let pool: Address = first["pool"].as_str().unwrap().parse().unwrap();
    assert_ne!(
        first["deposited_nrlc"], "0",
        "the stake was short on a fresh devnet: {first}"
    );
    assert!(
        first["next"]
            .as_str()
            .unwrap()
            .starts_with("pew run --config"),
        "{first}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("keys/wallet.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let config_text = std::fs::read_to_string(dir.join("etc/pew.toml")).unwrap();
    for wanted in [
        "preset = \"devnet\"",
        &format!("pool = \"{pool}\""),
        "price = \"0.5\"",
        &dir.join("state/node/journal.sqlite").display().to_string(),
    ] {
        assert!(
            config_text.contains(wanted),
            "no `{wanted}` in:\n{config_text}"
        );
    }

    // Again, with a different key file offered: everything is kept, nothing is sent.
    let key_file = std::fs::read(dir.join("keys/wallet.json")).unwrap();
    let sdk = t.sdk(POOL_OWNER).await;
    let before = sdk.balances(owner).await.unwrap();
    let nonce = {
        use alloy::providers::Provider;
        t.reader().get_transaction_count(owner).await.unwrap()
    };
    let (ok, second, log) = init(&t, &dir, &["--private-key-file", "/nonexistent"]);
    assert!(ok, "second init failed: {second}\n{log}");
    assert_eq!(second["pool"], first["pool"]);
    assert_eq!(second["deposited_nrlc"], "0");
    let changed: Vec<&Value> = second["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["changed"] == true)
        .collect();
    assert!(changed.is_empty(), "a second run changed {changed:?}");
    assert_eq!(
        std::fs::read(dir.join("keys/wallet.json")).unwrap(),
        key_file
    );
    assert_eq!(
        std::fs::read_dir(dir.join("keys")).unwrap().count(),
        1,
        "one key file"
    );
    let after = sdk.balances(owner).await.unwrap();
    assert_eq!(
        (after.stake_nrlc, after.wallet_nrlc),
        (before.stake_nrlc, before.wallet_nrlc),
        "no second deposit"
    );
    let nonce_after = {
        use alloy::providers::Provider;
        t.reader().get_transaction_count(owner).await.unwrap()
    };
    assert_eq!(
        nonce_after, nonce,
        "the second run sent no transaction (no second workerpool)"
    );

    // The config alone runs the node: doctor passes, and pew run serves its API.
    let config = dir.join("etc/pew.toml");
    let bare = |args: &[&str]| {
        let mut command = t.pew();
        command
            .args(args)
            .args(["--config", config.to_str().unwrap()])
            .env_remove("PEW_CHAIN__PRESET")
            .env_remove("PEW_CHAIN__DEVNET_FILE")
            .env_remove("PEW_PASSWORD")
            .envs(common::engine_env());
        command
    };
    let doctor = bare(&["doctor"]).output().unwrap();
    assert!(
        doctor.status.success(),
        "{}",
        String::from_utf8_lossy(&doctor.stdout)
    );
    let api_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut node = bare(&[
        "run",
        "--password-file",
        dir.join("password").to_str().unwrap(),
    ])
    .env("PEW_API__LISTEN", format!("127.0.0.1:{api_port}"))
    .stderr(std::fs::File::create(dir.join("node.log")).unwrap())
    .spawn()
    .unwrap();
    let started = Instant::now();
    loop {
        if let Ok(reply) = reqwest::get(format!("http://127.0.0.1:{api_port}/health")).await
            && reply.status().is_success()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "pew run did not serve /health: {}",
            std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let status = common::node::sigterm_and_wait(&mut node, Duration::from_secs(60)).await;
    assert!(status.success());
}

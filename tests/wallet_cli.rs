//! Key files and the mistakes a user makes with them and with amounts and chains: every one is
//! refused before any transaction, with one clear line.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    common::tools().root().join("venv/bin/python")
}

fn pew_offline(home: &Path) -> Command {
    let mut command = Command::new(common::pew_bin());
    command
        .env("HOME", home)
        .env("PEW_PASSWORD", common::TEST_PASSWORD)
        .env_remove("PEW_CONFIG");
    command
}

#[test]
fn a_key_file_written_by_pew_opens_in_eth_account_and_the_reverse() {
    let home = tempfile::tempdir().unwrap();
    let keystore = home.path().join("pew.json");
    let created = pew_offline(home.path())
        .args([
            "wallet",
            "create",
            "--json",
            "--keystore",
            keystore.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let address = serde_json::from_slice::<serde_json::Value>(&created.stdout).unwrap()["address"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let mode = std::fs::metadata(&keystore).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key files are private");

    // An independent implementation (Python eth-account) opens pew's file.
    let script = r#"
import json, sys
from eth_account import Account
key = Account.decrypt(json.load(open(sys.argv[1])), sys.argv[2])
print(Account.from_key(key).address.lower())
"#;
    let opened = Command::new(python())
        .args([
            "-c",
            script,
            keystore.to_str().unwrap(),
            common::TEST_PASSWORD,
        ])
        .output()
        .unwrap();
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&opened.stdout).trim(), address);

    // pew opens a file eth-account wrote.
    let theirs = home.path().join("theirs.json");
    let script = r#"
import json, sys
from eth_account import Account
account = Account.create()
json.dump(Account.encrypt(account.key, sys.argv[2]), open(sys.argv[1], "w"))
print(account.address.lower())
"#;
    let written = Command::new(python())
        .args([
            "-c",
            script,
            theirs.to_str().unwrap(),
            common::TEST_PASSWORD,
        ])
        .output()
        .unwrap();
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let their_address = String::from_utf8_lossy(&written.stdout).trim().to_string();
    let signer = pew::wallet::unlock(&theirs, common::TEST_PASSWORD).unwrap();
    assert_eq!(signer.address().to_string().to_lowercase(), their_address);
    let shown = pew_offline(home.path())
        .args([
            "wallet",
            "show",
            "--json",
            "--keystore",
            theirs.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&shown.stdout)
            .to_lowercase()
            .contains(&their_address)
    );
}

#[test]
fn wallet_mistakes_are_one_clear_line_and_never_echo_secrets() {
    let home = tempfile::tempdir().unwrap();
    let keystore = home.path().join("w.json");
    let run = |args: &[&str], password: Option<&str>| {
        let mut command = pew_offline(home.path());
        command
            .args(args)
            .args(["--keystore", keystore.to_str().unwrap()]);
        match password {
            Some(p) => command.env("PEW_PASSWORD", p),
            None => command.env_remove("PEW_PASSWORD"),
        };
        command.output().unwrap()
    };
    assert!(
        run(&["wallet", "create"], Some("first-secret"))
            .status
            .success()
    );

    // Never overwritten.
    let again = run(&["wallet", "create"], Some("first-secret"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // No password and no terminal: says how to give one.
    let fresh = home.path().join("fresh.json");
    let none = pew_offline(home.path())
        .env_remove("PEW_PASSWORD")
        .args(["wallet", "create", "--keystore", fresh.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!none.status.success());
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(
        stderr.contains("--password-file") && stderr.contains("PEW_PASSWORD"),
        "{stderr}"
    );
    assert!(!fresh.exists());

    // Malformed and negative amounts are refused by the parser, with examples.
    for amount in ["1,5", "-1"] {
        let bad = pew_offline(home.path())
            .args([
                "account",
                "deposit",
                "--keystore",
                keystore.to_str().unwrap(),
                "--",
                amount,
            ])
            .output()
            .unwrap();
        assert!(!bad.status.success());
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(
            stderr.contains("is not an amount") && stderr.contains("examples"),
            "{stderr}"
        );
    }

    // Importing a file that holds no key does not echo the file.
    let secret_file = home.path().join("secret.txt");
    std::fs::write(&secret_file, "my very secret words").unwrap();
    let other = home.path().join("other.json");
    let imported = pew_offline(home.path())
        .args([
            "wallet",
            "import",
            "--private-key-file",
            secret_file.to_str().unwrap(),
        ])
        .args(["--keystore", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!imported.status.success());
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert!(!stderr.contains("secret words"), "{stderr}");
    assert!(!other.exists());
}

#[tokio::test]
async fn chain_and_balance_mistakes_are_refused_before_any_transaction() {
    let t = common::devnet(false).await;
    let keystore = t.keystore(7);
    let me = t.info().accounts[7].address;
    let nonce = || async {
        use alloy::providers::Provider;
        t.reader().get_transaction_count(me).await.unwrap()
    };
    let before = nonce().await;

    // A node on another chain than the preset's is refused before signing.
    let wrong = t
        .pew()
        .args([
            "account",
            "deposit",
            "1",
            "--chain",
            "arbitrum-sepolia",
            "--rpc-url",
            &t.info().rpc_url,
        ])
        .args(["--keystore", keystore.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(
        stderr.contains("31337") && stderr.contains("421614") && stderr.contains("refusing"),
        "{stderr}"
    );

    // More than the wallet holds.
    let too_much = t
        .pew()
        .args([
            "account",
            "deposit",
            "2000000",
            "--keystore",
            keystore.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&too_much.stderr);
    assert!(!too_much.status.success());
    assert!(stderr.contains("holds only"), "{stderr}");

    // More than the iExec account holds.
    let withdraw = t
        .pew()
        .args([
            "account",
            "withdraw",
            "1",
            "--keystore",
            keystore.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&withdraw.stderr).contains("has only"));

    // A wrong password.
    let wrong_password = t
        .pew()
        .env("PEW_PASSWORD", "not-the-password")
        .args([
            "account",
            "deposit",
            "1",
            "--keystore",
            keystore.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong_password.stderr);
    assert!(stderr.contains("wrong password"), "{stderr}");
    assert!(!stderr.contains("not-the-password"));

    // A TEE request is refused with the reason.
    let tee = t
        .pew()
        .args([
            "request",
            "submit",
            "--app",
            &alloy::primitives::Address::ZERO.to_string(),
            "--tag",
            "tee,tdx",
        ])
        .args(["--keystore", keystore.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&tee.stderr);
    assert!(
        stderr.contains("TEE") && stderr.contains("standard tasks"),
        "{stderr}"
    );

    assert_eq!(nonce().await, before, "nothing was sent");
    let deposit = t.pew_as(7, &["account", "deposit", "1.5"]);
    assert_eq!(deposit["stake_nrlc"], "1500000000");
    let withdrawn = t.pew_as(7, &["account", "withdraw", "1500000000nRLC"]);
    assert_eq!(withdrawn["stake_nrlc"], "0");
}

#[tokio::test]
async fn app_register_reads_the_checksum_from_the_local_docker_engine() {
    let t = common::devnet(false).await;
    let docker = common::docker().await;
    let image = common::busybox_image(&docker).await;
    let id = docker.inspect_image(&image).await.unwrap().id.unwrap();
    let registered = t.pew_as(1, &["app", "register", "--image", &image]);
    let app = registered["address"].as_str().unwrap();
    let shown = t.pew_json(&["app", "show", app]);
    assert_eq!(
        shown["checksum"].as_str().unwrap(),
        format!("0x{}", id.trim_start_matches("sha256:"))
    );
    assert_eq!(shown["image"].as_str().unwrap(), image);
    assert_eq!(shown["name"].as_str().unwrap(), "busybox");
}

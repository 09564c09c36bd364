//! Following, cancelling and feeding requests through the CLI: `request submit --wait`,
//! `task watch`, `request cancel`, and datasets registered from a file.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use alloy::primitives::U256;
use common::deals::*;
use pew::poco::OrderHash;
use pew::poco::order::{DatasetOrder, Signed};
use pew::storage::ipfs::IpfsClient;

#[tokio::test]
async fn submit_wait_and_task_watch_follow_the_task_to_completed() {
    let t = common::devnet(true).await;
    let (app, pool, app_hash, pool_hash) = publish_assets(&t, 1, "0", "0");
    let keystore = t.keystore(REQUESTER);

    // The requester submits and waits; its first stdout line is the order hash.
    let mut waiting = t
        .pew()
        .args([
            "request",
            "submit",
            "--wait",
            "--wait-timeout",
            "120",
            "--app",
            &app.to_string(),
        ])
        .args([
            "--workerpool",
            &pool.to_string(),
            "--keystore",
            keystore.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(waiting.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let request_hash = OrderHash::from_str(first.trim()).expect("the order hash comes first");

    let (_, task) = match_and_initialize(&t, app_hash, pool_hash, request_hash).await;
    let watcher = t
        .pew()
        .args([
            "task",
            "watch",
            &task.to_string(),
            "--timeout",
            "120",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let out = t.dir.path().join("iexec_out");
    let digest = write_output(&out, "waited for\n");
    finish_as_worker(&t, task, digest, &out).await;

    let waited = waiting.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert!(rest.contains(&format!("task {task} COMPLETED")), "{rest}");
    let progress = String::from_utf8_lossy(&waited.stderr);
    assert!(
        progress.contains("1 completed"),
        "progress on stderr: {progress}"
    );

    let watched = watcher.wait_with_output().unwrap();
    assert!(
        watched.status.success(),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let view: serde_json::Value = serde_json::from_slice(&watched.stdout).unwrap();
    assert_eq!(view["status"], "COMPLETED");
}

#[tokio::test]
async fn a_cancelled_request_can_no_longer_match() {
    let t = common::devnet(false).await;
    let (app, pool, app_hash, pool_hash) = publish_assets(&t, 1, "0", "0");
    let submitted = t.pew_as(
        REQUESTER,
        &[
            "request",
            "submit",
            "--app",
            &app.to_string(),
            "--volume",
            "3",
            "--workerpool",
            &pool.to_string(),
        ],
    );
    let hash = hash_of(&submitted);

    // Only the requester may cancel.
    let stranger = t.keystore(8);
    let refused = t
        .pew()
        .args([
            "request",
            "cancel",
            &hash.to_string(),
            "--keystore",
            stranger.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("belongs to"));

    t.pew_as(REQUESTER, &["request", "cancel", &hash.to_string()]);
    let status = t.pew_json(&["request", "show", &hash.to_string()]);
    assert_eq!(status["consumed"], "3");
    assert_eq!(status["deals"].as_array().unwrap().len(), 0);

    let again = t
        .pew()
        .args([
            "request",
            "cancel",
            &hash.to_string(),
            "--keystore",
            t.keystore(REQUESTER).to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("already fully matched or closed"));

    // A match now fails, and says why.
    let scheduler = t.sdk(POOL_OWNER).await;
    let err = scheduler
        .poco_writer()
        .unwrap()
        .match_orders(
            Signed::presigned(scheduler.find_app_order(app_hash).await.unwrap()),
            Signed::presigned(DatasetOrder::none()),
            Signed::presigned(scheduler.find_workerpool_order(pool_hash).await.unwrap()),
            Signed::presigned(scheduler.find_request_order(hash).await.unwrap()),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("0x60") && err.contains("volume"), "{err}");
}

#[tokio::test]
async fn a_dataset_file_goes_to_ipfs_and_its_sha256_on_chain() {
    let t = common::devnet(true).await;
    let file = t.dir.path().join("numbers.csv");
    std::fs::write(&file, "1,2,3\n").unwrap();
    let registered = t.pew_as(
        1,
        &["dataset", "register", "--file", file.to_str().unwrap()],
    );
    let dataset = registered["address"].as_str().unwrap().to_string();
    let shown = t.pew_json(&["dataset", "show", &dataset]);
    use sha2::Digest;
    let expected = alloy::hex::encode_prefixed(sha2::Sha256::digest(b"1,2,3\n"));
    assert_eq!(shown["checksum"].as_str().unwrap(), expected);
    assert_eq!(shown["name"], "numbers.csv");
    let location = shown["multiaddr"].as_str().unwrap();
    assert!(location.starts_with("/ipfs/"), "{location}");
    let content = IpfsClient::new(t.ipfs_api(), Duration::from_secs(30))
        .cat(location, 1024)
        .await
        .unwrap();
    assert_eq!(content, b"1,2,3\n");

    let published = t.pew_as(
        1,
        &[
            "dataset",
            "publish",
            "--dataset",
            &dataset,
            "--price",
            "0.1",
            "--volume",
            "5",
        ],
    );
    let order = t
        .sdk(1)
        .await
        .find_dataset_order(hash_of(&published))
        .await
        .unwrap();
    assert_eq!(order.datasetprice, U256::from(100_000_000u64));
    assert_eq!(order.volume, U256::from(5));
}

#[tokio::test]
async fn finding_an_order_is_a_bounded_scan_narrowed_by_the_cache_or_from_block() {
    let t = common::devnet(false).await;
    let (app, _pool, _, _) = publish_assets(&t, 1, "0", "0");
    let keystore = t.keystore(REQUESTER);
    let submitted = t.pew_json(&[
        "request",
        "submit",
        "--app",
        &app.to_string(),
        "--keystore",
        keystore.to_str().unwrap(),
    ]);
    let hash = hash_of(&submitted);
    use alloy::providers::Provider;
    let presigned_at = t.reader().get_block_number().await.unwrap();
    // Later blocks: the history to scan grows past the limit set below.
    let _: serde_json::Value = t
        .reader()
        .raw_request("anvil_mine".into(), (500u64,))
        .await
        .unwrap();
    let pew = |home: &std::path::Path, args: &[&str]| {
        let output = t
            .pew()
            .env("HOME", home)
            .env("PEW_CHAIN__MAX_SCAN_BLOCKS", "100")
            .args(args)
            .args(["--keystore", keystore.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let hash_text = hash.to_string();
    // This machine presigned it: its cache says where to look, so the volume is known.
    let (ok, out, err) = pew(t.dir.path(), &["request", "show", &hash_text]);
    assert!(ok, "{err}");
    let shown: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(shown["volume"], "1", "{shown}");
    // Another machine: the status needs no scan (deals follow from the hash), only the volume
    // stays unknown.
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, out, err) = pew(elsewhere.path(), &["request", "show", &hash_text]);
    assert!(ok, "{err}");
    let shown: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(shown["volume"].is_null(), "{shown}");
    // Cancelling needs the order itself: the scan would be too wide, and the message says what
    // to do; with --from-block it is found.
    let (ok, _, err) = pew(elsewhere.path(), &["request", "cancel", &hash_text]);
    assert!(!ok);
    assert!(
        err.contains("--from-block") && err.contains("chain.max_scan_blocks"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let from = presigned_at.saturating_sub(5).to_string();
    let (ok, _, err) = pew(
        elsewhere.path(),
        &["request", "cancel", &hash_text, "--from-block", &from],
    );
    assert!(ok, "{err}");
}

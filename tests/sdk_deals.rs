//! Full deals driven through pew's library and CLI only, on the real PoCo contracts: assets,
//! orders, requests, matching, initialization, then trust 1 (contributeAndFinalize) and
//! trust 3 (contribute, reveal, finalize), with results on the real IPFS node and verified
//! downloads.

mod common;

use std::time::Duration;

use alloy::primitives::{Bytes, U256};
use pew::chain::poco::status;
use pew::poco::result::sign_authorization;
use pew::results::archive;
use pew::storage::ipfs::{IpfsClient, results_link};

use common::deals::*;

#[tokio::test]
async fn trust_one_deal_runs_through_pews_cli_and_library() {
    let t = common::devnet(true).await;
    let (app, pool, app_hash, pool_hash) = publish_assets(&t, 1, "0.2", "1");

    // The requester funds its account and submits a request through the CLI.
    let before = t.pew_as(REQUESTER, &["account", "deposit", "10"]);
    assert_eq!(before["stake_nrlc"], "10000000000", "10 RLC staked");
    let submitted = t.pew_as(
        REQUESTER,
        &[
            "request",
            "submit",
            "--app",
            &app.to_string(),
            "--workerpool",
            &pool.to_string(),
            "--app-max-price",
            "0.2",
            "--workerpool-max-price",
            "1",
            "--args",
            "hello world",
            "--category",
            "XS",
            "--trust",
            "1",
        ],
    );
    let request_hash = hash_of(&submitted);
    let (deal, task) = match_and_initialize(&t, app_hash, pool_hash, request_hash).await;

    let deal_json = t.pew_json(&["deal", "show", &deal.to_string()]);
    assert_eq!(
        deal_json["params"].as_str().unwrap(),
        r#"{"iexec_result_storage_provider":"ipfs","iexec_args":"hello world"}"#
    );
    assert_eq!(deal_json["tasks"][0].as_str().unwrap(), task.to_string());

    // The worker computes, uploads to IPFS and finishes in one transaction.
    let out = t.dir.path().join("work").join("iexec_out");
    let result_digest = write_output(&out, "hello world\n");
    let archive = archive::build(&out).unwrap();
    let ipfs = IpfsClient::new(t.ipfs_api(), Duration::from_secs(30));
    let added = ipfs.add(&archive).await.unwrap();
    assert_eq!(
        ipfs.cat(&added.cid, 1 << 20).await.unwrap(),
        archive,
        "IPFS gives the archive back byte for byte"
    );
    let owner_key = t.info().signer(POOL_OWNER).unwrap();
    let worker = t.sdk(WORKERS[0]).await;
    let authorization = sign_authorization(&owner_key, address(&t, WORKERS[0]), task);
    let link = results_link(&added.cid);
    worker
        .poco_writer()
        .unwrap()
        .contribute_and_finalize(
            task,
            result_digest,
            Bytes::from(link.clone().into_bytes()),
            Bytes::new(),
            authorization,
        )
        .await
        .unwrap();

    let task_json = t.pew_json(&["task", "show", &task.to_string()]);
    assert_eq!(task_json["status"], "COMPLETED");
    assert_eq!(task_json["results"].as_str().unwrap(), link);
    assert_eq!(
        task_json["result_digest"].as_str().unwrap(),
        result_digest.to_string()
    );
    let request_json = t.pew_json(&["request", "show", &request_hash.to_string()]);
    assert_eq!(request_json["deals"][0]["tasks"][0]["status"], "COMPLETED");

    // The requester downloads and verifies the result through the CLI.
    let (folder, downloaded) = t.download_result(&task.to_string());
    assert_eq!(
        downloaded["digest"].as_str().unwrap(),
        result_digest.to_string()
    );
    let file = folder.join("result.txt");
    assert_eq!(std::fs::read_to_string(file).unwrap(), "hello world\n");

    // Escrow: requester paid 1.2 RLC; the worker got 99 % of the pool price; app owner 0.2.
    assert_eq!(stake(&t, REQUESTER), U256::from(8_800_000_000u64));
    assert_eq!(stake(&t, WORKERS[0]), U256::from(990_000_000u64));
    assert_eq!(stake(&t, APP_OWNER), U256::from(200_000_000u64));
}

#[tokio::test]
async fn trust_three_deal_needs_consensus_reveals_and_finalize() {
    let t = common::devnet(true).await;
    let (app, pool, app_hash, pool_hash) = publish_assets(&t, 3, "0", "1");
    t.pew_as(REQUESTER, &["account", "deposit", "5"]);
    let submitted = t.pew_as(
        REQUESTER,
        &[
            "request",
            "submit",
            "--app",
            &app.to_string(),
            "--workerpool",
            &pool.to_string(),
            "--workerpool-max-price",
            "1",
            "--trust",
            "3",
        ],
    );
    let (deal, task) = match_and_initialize(&t, app_hash, pool_hash, hash_of(&submitted)).await;
    let worker_stake = t
        .sdk(REQUESTER)
        .await
        .poco()
        .deal(deal)
        .await
        .unwrap()
        .unwrap()
        .workerStake;
    assert_eq!(
        worker_stake,
        U256::from(300_000_000u64),
        "30 % of the pool price"
    );

    // Every worker stakes RLC, as contribute requires.
    for worker in WORKERS {
        t.pew_as(worker, &["account", "deposit", "1"]);
    }
    let out = t.dir.path().join("iexec_out");
    let result_digest = write_output(&out, "agreed\n");
    let added = IpfsClient::new(t.ipfs_api(), Duration::from_secs(30))
        .add(&archive::build(&out).unwrap())
        .await
        .unwrap();
    let owner_key = t.info().signer(POOL_OWNER).unwrap();

    // Two fresh workers reach consensus for trust 3 (weights 2 + 2 against a total of 5).
    for (n, worker) in WORKERS[..2].iter().enumerate() {
        let sdk = t.sdk(*worker).await;
        let authorization = sign_authorization(&owner_key, address(&t, *worker), task);
        sdk.poco_writer()
            .unwrap()
            .contribute(task, result_digest, authorization)
            .await
            .unwrap();
        let expected = if n == 0 {
            status::ACTIVE
        } else {
            status::REVEALING
        };
        assert_eq!(sdk.poco().task(task).await.unwrap().status, expected);
    }
    // The third worker is too late: pew refuses before sending anything.
    let late = t.sdk(WORKERS[2]).await;
    let refused = late
        .poco_writer()
        .unwrap()
        .contribute(
            task,
            result_digest,
            sign_authorization(&owner_key, address(&t, WORKERS[2]), task),
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("not ACTIVE"), "{refused}");

    for worker in &WORKERS[..2] {
        t.sdk(*worker)
            .await
            .poco_writer()
            .unwrap()
            .reveal(task, result_digest)
            .await
            .unwrap();
    }
    let scheduler = t.sdk(POOL_OWNER).await;
    scheduler
        .poco_writer()
        .unwrap()
        .finalize(
            task,
            Bytes::from(results_link(&added.cid).into_bytes()),
            Bytes::new(),
        )
        .await
        .unwrap();

    let task_json = t.pew_json(&["task", "show", &task.to_string()]);
    assert_eq!(task_json["status"], "COMPLETED");
    assert_eq!(task_json["contributions"].as_array().unwrap().len(), 2);
    assert!(
        task_json["contributions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "PROVED")
    );
    // Each winner got its stake back plus half of 99 % of the pool price.
    for worker in &WORKERS[..2] {
        assert_eq!(
            stake(&t, *worker),
            U256::from(1_000_000_000u64 + 495_000_000)
        );
    }
    assert_eq!(
        stake(&t, WORKERS[2]),
        U256::from(1_000_000_000u64),
        "the late worker lost nothing"
    );
    assert_eq!(stake(&t, REQUESTER), U256::from(4_000_000_000u64));
    let (folder, _) = t.download_result(&task.to_string());
    assert_eq!(
        std::fs::read_to_string(folder.join("result.txt")).unwrap(),
        "agreed\n"
    );
}

#[tokio::test]
async fn a_tampered_result_archive_is_refused_and_nothing_is_kept() {
    let t = common::devnet(true).await;
    let (app, pool, app_hash, pool_hash) = publish_assets(&t, 1, "0", "0");
    let submitted = t.pew_as(
        REQUESTER,
        &[
            "request",
            "submit",
            "--app",
            &app.to_string(),
            "--workerpool",
            &pool.to_string(),
        ],
    );
    let (_, task) = match_and_initialize(&t, app_hash, pool_hash, hash_of(&submitted)).await;

    // A dishonest worker contributes the digest of one output but uploads another.
    let honest = write_output(&t.dir.path().join("honest"), "the real result\n");
    let tampered = t.dir.path().join("tampered");
    write_output(&tampered, "something else\n");
    finish_as_worker(&t, task, honest, &tampered).await;

    let downloads = t.dir.path().join("downloads");
    let output = t
        .pew()
        .args([
            "result",
            "download",
            &task.to_string(),
            "--to",
            downloads.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing") && stderr.contains(&honest.to_string()),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&downloads).unwrap().collect();
    assert!(left.is_empty(), "nothing of the tampered content is kept");
}

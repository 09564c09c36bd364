//! Full deals driven through pew's library and CLI only, on the real PoCo contracts: assets,
//! orders, requests, matching, initialization, then trust 1 (contributeAndFinalize) and
//! trust 3 (contribute, reveal, finalize), with results on the real IPFS node and verified
//! downloads.

mod common;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use common::TestDevnet;
use pew::chain::poco::status;
use pew::poco::ids::{deal_id, task_id};
use pew::poco::order::{DatasetOrder, Signed};
use pew::poco::result::sign_authorization;
use pew::poco::{DealId, OrderHash, TaskId};
use pew::results::{archive, digest};
use pew::storage::ipfs::{IpfsClient, results_link};

const APP_OWNER: usize = 1;
const POOL_OWNER: usize = 2;
const REQUESTER: usize = 3;
const WORKERS: [usize; 3] = [4, 5, 6];

fn address(t: &TestDevnet, index: usize) -> Address {
    t.info().accounts[index].address
}

fn hash_of(value: &serde_json::Value) -> OrderHash {
    OrderHash::from_str(value["order_hash"].as_str().expect("an order hash")).unwrap()
}

/// Registers the app and pool and publishes their orders, all through the CLI.
fn publish_assets(
    t: &TestDevnet,
    trust: u64,
    app_price: &str,
    pool_price: &str,
) -> (Address, Address, OrderHash, OrderHash) {
    let checksum = format!("0x{}", "ab".repeat(32));
    let app = t.pew_as(
        APP_OWNER,
        &[
            "app",
            "register",
            "--image",
            "pew-test/busybox:1",
            "--name",
            "echo",
            "--checksum",
            &checksum,
        ],
    );
    assert_eq!(app["status"], "created");
    let app_address: Address = app["address"].as_str().unwrap().parse().unwrap();
    // Registering the same app again finds it instead of failing.
    let again = t.pew_as(
        APP_OWNER,
        &[
            "app",
            "register",
            "--image",
            "pew-test/busybox:1",
            "--name",
            "echo",
            "--checksum",
            &checksum,
        ],
    );
    assert_eq!(
        (again["status"].as_str(), again["address"].as_str()),
        (Some("exists"), app["address"].as_str())
    );

    let pool = t.pew_as(
        POOL_OWNER,
        &["pool", "create", "--description", "pew test pool"],
    );
    let pool_address: Address = pool["address"].as_str().unwrap().parse().unwrap();
    let shown = t.pew_json(&["pool", "show", &pool_address.to_string()]);
    assert_eq!(
        shown["owner"].as_str().unwrap().to_lowercase(),
        address(t, POOL_OWNER).to_string().to_lowercase()
    );

    // The pool owner backs its orders: 30 % of the price per task is locked at each match.
    t.pew_as(POOL_OWNER, &["account", "deposit", "1"]);
    let app_order = t.pew_as(
        APP_OWNER,
        &[
            "app",
            "publish",
            "--app",
            &app_address.to_string(),
            "--price",
            app_price,
            "--volume",
            "10",
        ],
    );
    let trust = trust.to_string();
    let pool_order = t.pew_as(
        POOL_OWNER,
        &[
            "pool",
            "publish",
            "--pool",
            &pool_address.to_string(),
            "--price",
            pool_price,
            "--volume",
            "1",
            "--trust",
            &trust,
            "--category",
            "XS",
        ],
    );
    (
        app_address,
        pool_address,
        hash_of(&app_order),
        hash_of(&pool_order),
    )
}

/// Writes an app output folder (one result file + computed.json), returns its digest.
fn write_output(dir: &Path, content: &str) -> B256 {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("result.txt"), content).unwrap();
    std::fs::write(
        dir.join("computed.json"),
        r#"{"deterministic-output-path":"/iexec_out/result.txt"}"#,
    )
    .unwrap();
    digest::result_digest(dir, false).unwrap()
}

/// Matches the request with the published orders and initializes task 0, as the scheduler
/// (pool owner) does; checks the ids pew computed beforehand.
async fn match_and_initialize(
    t: &TestDevnet,
    app_hash: OrderHash,
    pool_hash: OrderHash,
    request_hash: OrderHash,
) -> (DealId, TaskId) {
    let scheduler = t.sdk(POOL_OWNER).await;
    let app = scheduler.find_app_order(app_hash).await.unwrap();
    let pool = scheduler.find_workerpool_order(pool_hash).await.unwrap();
    let request = scheduler.find_request_order(request_hash).await.unwrap();
    let expected_deal = deal_id(request_hash, U256::ZERO);
    let poco = scheduler.poco_writer().unwrap();
    let (deal, volume) = poco
        .match_orders(
            Signed::presigned(app),
            Signed::presigned(DatasetOrder::none()),
            Signed::presigned(pool),
            Signed::presigned(request),
        )
        .await
        .unwrap();
    assert_eq!(deal, expected_deal, "the deal id pew computed");
    assert_eq!(volume, U256::from(1));
    let task = poco.initialize(deal, U256::ZERO).await.unwrap();
    assert_eq!(task, task_id(deal, U256::ZERO), "the task id pew computed");
    // pew's order hashes are the ones the contracts record.
    for hash in [app_hash, pool_hash, request_hash] {
        assert_ne!(
            scheduler.poco().presigner(hash).await.unwrap(),
            Address::ZERO
        );
    }
    assert_eq!(
        scheduler.poco().consumed(request_hash).await.unwrap(),
        U256::from(1)
    );
    assert_eq!(
        scheduler.poco().consumed(pool_hash).await.unwrap(),
        U256::from(1)
    );
    assert_eq!(
        scheduler.poco().consumed(app_hash).await.unwrap(),
        U256::from(1)
    );
    (deal, task)
}

fn stake(t: &TestDevnet, index: usize) -> U256 {
    let shown = t.pew_json(&[
        "account",
        "show",
        "--address",
        &address(t, index).to_string(),
    ]);
    U256::from_str(shown["stake_nrlc"].as_str().unwrap()).unwrap()
}

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
    let downloads = t.dir.path().join("downloads");
    let downloaded = t.pew_json(&[
        "result",
        "download",
        &task.to_string(),
        "--to",
        downloads.to_str().unwrap(),
    ]);
    assert_eq!(
        downloaded["digest"].as_str().unwrap(),
        result_digest.to_string()
    );
    let file = downloads.join(task.to_string()).join("result.txt");
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
    let downloads = t.dir.path().join("downloads");
    t.pew_json(&[
        "result",
        "download",
        &task.to_string(),
        "--to",
        downloads.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(downloads.join(task.to_string()).join("result.txt")).unwrap(),
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
    let added = IpfsClient::new(t.ipfs_api(), Duration::from_secs(30))
        .add(&archive::build(&tampered).unwrap())
        .await
        .unwrap();
    let owner_key = t.info().signer(POOL_OWNER).unwrap();
    t.sdk(WORKERS[0])
        .await
        .poco_writer()
        .unwrap()
        .contribute_and_finalize(
            task,
            honest,
            Bytes::from(results_link(&added.cid).into_bytes()),
            Bytes::new(),
            sign_authorization(&owner_key, address(&t, WORKERS[0]), task),
        )
        .await
        .unwrap();

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

//! Deal helpers shared by the tests that drive whole deals: the CLI publishes assets and
//! orders, pew's library matches and initializes as the scheduler would.

use std::path::Path;
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use pew::poco::ids::{deal_id, task_id};
use pew::poco::order::{DatasetOrder, Signed};
use pew::poco::{DealId, OrderHash, TaskId};
use pew::results::digest;

use super::TestDevnet;

pub const APP_OWNER: usize = 1;
pub const POOL_OWNER: usize = 2;
pub const REQUESTER: usize = 3;
pub const WORKERS: [usize; 3] = [4, 5, 6];

pub fn address(t: &TestDevnet, index: usize) -> Address {
    t.info().accounts[index].address
}

pub fn hash_of(value: &serde_json::Value) -> OrderHash {
    OrderHash::from_str(value["order_hash"].as_str().expect("an order hash")).unwrap()
}

/// Registers the app and pool and publishes their orders, all through the CLI.
pub fn publish_assets(
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
pub fn write_output(dir: &Path, content: &str) -> B256 {
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
pub async fn match_and_initialize(
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

pub fn stake(t: &TestDevnet, index: usize) -> U256 {
    let shown = t.pew_json(&[
        "account",
        "show",
        "--address",
        &address(t, index).to_string(),
    ]);
    U256::from_str(shown["stake_nrlc"].as_str().unwrap()).unwrap()
}

/// Finishes a trust-1 task as the first worker would: the result archive of `folder` goes to
/// IPFS, then `contributeAndFinalize` with `digest` (which a dishonest worker may take from
/// another folder) and the pool owner's authorization. Returns the archive's CID.
pub async fn finish_as_worker(t: &TestDevnet, task: TaskId, digest: B256, folder: &Path) -> String {
    let added =
        pew::storage::ipfs::IpfsClient::new(t.ipfs_api(), std::time::Duration::from_secs(30))
            .add(&pew::results::archive::build(folder).unwrap())
            .await
            .unwrap();
    let owner_key = t.info().signer(POOL_OWNER).unwrap();
    t.sdk(WORKERS[0])
        .await
        .poco_writer()
        .unwrap()
        .contribute_and_finalize(
            task,
            digest,
            alloy::primitives::Bytes::from(
                pew::storage::ipfs::results_link(&added.cid).into_bytes(),
            ),
            alloy::primitives::Bytes::new(),
            pew::poco::result::sign_authorization(&owner_key, address(t, WORKERS[0]), task),
        )
        .await
        .unwrap();
    added.cid
}

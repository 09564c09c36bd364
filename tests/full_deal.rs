//! Proves the devnet runs the real protocol: one whole deal through the PoCo contracts, with
//! presigned app, workerpool and request orders, `matchOrders`, `initialize` and
//! `contributeAndFinalize`, checked against the ids and events PROTOCOL.md predicts.

mod common;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::Signer;
use alloy::sol_types::SolEvent;
use pew::abi::IexecInterfaceToken as Hub;
use pew::abi::IexecLibOrders_v5::{
    AppOrder, AppOrderOperation, DatasetOrder, RequestOrder, RequestOrderOperation,
    WorkerpoolOrder, WorkerpoolOrderOperation,
};
use pew::abi::{AppRegistry, RLC, WorkerpoolRegistry};
use sha2::Digest;

const APP_PRICE: u64 = 200_000_000; // 0.2 RLC
const POOL_PRICE: u64 = 1_000_000_000; // 1 RLC
const DEPOSIT: u64 = 10_000_000_000; // 10 RLC

/// The single log of type `E` in a receipt (panics with the event name otherwise).
fn one_event<E: SolEvent>(receipt: &TransactionReceipt) -> E {
    let found: Vec<E> = receipt
        .inner
        .logs()
        .iter()
        .filter_map(|log| E::decode_log(&log.inner).ok().map(|l| l.data))
        .collect();
    assert_eq!(found.len(), 1, "expected one {} event", E::SIGNATURE);
    found.into_iter().next().unwrap()
}

/// topic0 of every log in a receipt, in order.
fn topics(receipt: &TransactionReceipt) -> Vec<B256> {
    receipt
        .inner
        .logs()
        .iter()
        .filter_map(|log| log.topics().first().copied())
        .collect()
}

#[tokio::test]
async fn one_presigned_deal_runs_to_completed_on_the_real_contracts() {
    let t = common::devnet(false).await;
    let info = t.info().clone();
    let app_owner = info.accounts[1].address;
    let pool_owner = info.accounts[2].address;
    let requester = info.accounts[3].address;
    let worker = info.accounts[4].address;

    // Assets: an app and a workerpool, at the addresses the registries predict.
    let apps = AppRegistry::new(info.app_registry, t.wallet(1));
    let multiaddr = Bytes::from(b"pew-test/busybox:1".to_vec());
    let checksum = B256::repeat_byte(0xaa);
    let app: Address = apps
        .predictApp(
            app_owner,
            "hello".into(),
            "DOCKER".into(),
            multiaddr.clone(),
            checksum,
            Bytes::new(),
        )
        .call()
        .await
        .unwrap();
    apps.createApp(
        app_owner,
        "hello".into(),
        "DOCKER".into(),
        multiaddr,
        checksum,
        Bytes::new(),
    )
    .send()
    .await
    .unwrap()
    .get_receipt()
    .await
    .unwrap();
    let pools = WorkerpoolRegistry::new(info.workerpool_registry, t.wallet(2));
    let pool: Address = pools
        .predictWorkerpool(pool_owner, "devnet-pool".into())
        .call()
        .await
        .unwrap();
    pools
        .createWorkerpool(pool_owner, "devnet-pool".into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    // Escrow: the requester deposits with approve + deposit, the pool owner with approveAndCall.
    let rlc_requester = RLC::new(info.rlc, t.wallet(3));
    rlc_requester
        .approve(info.hub, U256::from(DEPOSIT))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let hub_requester = Hub::new(info.hub, t.wallet(3));
    hub_requester
        .deposit(U256::from(DEPOSIT))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    RLC::new(info.rlc, t.wallet(2))
        .approveAndCall(info.hub, U256::from(DEPOSIT), Bytes::new())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    // Orders, presigned on chain by their owners; the hashes come from the Signed* events.
    let app_order = AppOrder {
        app,
        appprice: U256::from(APP_PRICE),
        volume: U256::from(1),
        tag: B256::ZERO,
        datasetrestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: B256::repeat_byte(1),
        sign: Bytes::new(),
    };
    let receipt = Hub::new(info.hub, t.wallet(1))
        .manageAppOrder(AppOrderOperation {
            order: app_order.clone(),
            operation: 0,
            sign: Bytes::new(),
        })
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let app_hash = one_event::<Hub::SignedAppOrder>(&receipt).appHash;

    let pool_order = WorkerpoolOrder {
        workerpool: pool,
        workerpoolprice: U256::from(POOL_PRICE),
        volume: U256::from(1),
        tag: B256::ZERO,
        category: U256::ZERO,
        trust: U256::from(1),
        apprestrict: Address::ZERO,
        datasetrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: B256::repeat_byte(2),
        sign: Bytes::new(),
    };
    let hub_pool = Hub::new(info.hub, t.wallet(2));
    let receipt = hub_pool
        .manageWorkerpoolOrder(WorkerpoolOrderOperation {
            order: pool_order.clone(),
            operation: 0,
            sign: Bytes::new(),
        })
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let pool_hash = one_event::<Hub::SignedWorkerpoolOrder>(&receipt).workerpoolHash;

    let request_order = RequestOrder {
        app,
        appmaxprice: U256::from(APP_PRICE),
        dataset: Address::ZERO,
        datasetmaxprice: U256::ZERO,
        workerpool: pool,
        workerpoolmaxprice: U256::from(POOL_PRICE),
        requester,
        volume: U256::from(1),
        tag: B256::ZERO,
        category: U256::ZERO,
        trust: U256::from(1),
        beneficiary: requester,
        callback: Address::ZERO,
        params: r#"{"iexec_result_storage_provider":"ipfs","iexec_args":"hello"}"#.into(),
        salt: B256::repeat_byte(3),
        sign: Bytes::new(),
    };
    let receipt = hub_requester
        .manageRequestOrder(RequestOrderOperation {
            order: request_order.clone(),
            operation: 0,
            sign: Bytes::new(),
        })
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let request_hash = one_event::<Hub::SignedRequestOrder>(&receipt).requestHash;
    for hash in [app_hash, pool_hash, request_hash] {
        assert_ne!(
            hub_requester.viewPresigned(hash).call().await.unwrap(),
            Address::ZERO,
            "order {hash} is presigned"
        );
    }

    // Match: the deal id is keccak256(requestHash ‖ consumed-before = 0).
    let no_dataset = DatasetOrder {
        dataset: Address::ZERO,
        datasetprice: U256::ZERO,
        volume: U256::ZERO,
        tag: B256::ZERO,
        apprestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: B256::ZERO,
        sign: Bytes::new(),
    };
    let receipt = hub_requester
        .matchOrders(app_order, no_dataset, pool_order, request_order)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let matched = one_event::<Hub::OrdersMatched>(&receipt);
    let mut preimage = request_hash.to_vec();
    preimage.extend_from_slice(&U256::ZERO.to_be_bytes::<32>());
    let deal_id = keccak256(&preimage);
    assert_eq!(matched.dealid, deal_id);
    assert_eq!(matched.appHash, app_hash);
    assert_eq!(matched.datasetHash, B256::ZERO);
    assert_eq!(matched.workerpoolHash, pool_hash);
    assert_eq!(matched.requestHash, request_hash);
    assert_eq!(matched.volume, U256::from(1));
    let notice = one_event::<Hub::SchedulerNotice>(&receipt);
    assert_eq!((notice.workerpool, notice.dealid), (pool, deal_id));
    let order = topics(&receipt);
    let position = |topic: B256| order.iter().position(|t| *t == topic).unwrap();
    assert!(
        position(Hub::SchedulerNotice::SIGNATURE_HASH)
            < position(Hub::OrdersMatched::SIGNATURE_HASH),
        "SchedulerNotice comes before OrdersMatched"
    );

    // Initialize: task id = keccak256(dealId ‖ idx).
    let receipt = hub_pool
        .initialize(deal_id, U256::ZERO)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let mut preimage = deal_id.to_vec();
    preimage.extend_from_slice(&U256::ZERO.to_be_bytes::<32>());
    let task_id = keccak256(&preimage);
    let initialized = one_event::<Hub::TaskInitialize>(&receipt);
    assert_eq!(
        (initialized.taskid, initialized.workerpool),
        (task_id, pool)
    );

    // The scheduler (pool owner) authorizes the worker: personal-sign of
    // keccak256(worker ‖ taskid ‖ enclaveChallenge = 0).
    let mut auth = worker.to_vec();
    auth.extend_from_slice(task_id.as_slice());
    auth.extend_from_slice(Address::ZERO.as_slice());
    let authorization = t
        .info()
        .signer(2)
        .unwrap()
        .sign_message(keccak256(&auth).as_slice())
        .await
        .unwrap();

    let digest = B256::from_slice(&sha2::Sha256::digest(b"Hello, iExec!\n"));
    let results = Bytes::from(
        br#"{ "storage": "ipfs", "location": "/ipfs/QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN" }"#.to_vec(),
    );
    let receipt = Hub::new(info.hub, t.wallet(4))
        .contributeAndFinalize(
            task_id,
            digest,
            results.clone(),
            Bytes::new(),
            Address::ZERO,
            Bytes::new(),
            Bytes::from(authorization.as_bytes().to_vec()),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let contribute = one_event::<Hub::TaskContribute>(&receipt);
    assert_eq!(contribute.worker, worker);
    let mut preimage = task_id.to_vec();
    preimage.extend_from_slice(digest.as_slice());
    assert_eq!(
        contribute.hash,
        keccak256(&preimage),
        "resultHash = keccak256(taskid ‖ digest)"
    );
    let finalize = one_event::<Hub::TaskFinalize>(&receipt);
    assert_eq!(
        (finalize.taskid, finalize.results.clone()),
        (task_id, results.clone())
    );

    let task = hub_requester.viewTask(task_id).call().await.unwrap();
    assert_eq!(task.status, 3, "task COMPLETED");
    assert_eq!(task.resultDigest, digest);
    assert_eq!(task.results, results);

    // Escrow: the requester paid app + pool price; the worker got 99 % of the pool price.
    let requester_account = hub_requester.viewAccount(requester).call().await.unwrap();
    assert_eq!(
        requester_account.stake,
        U256::from(DEPOSIT - APP_PRICE - POOL_PRICE)
    );
    assert_eq!(requester_account.locked, U256::ZERO);
    let worker_account = hub_requester.viewAccount(worker).call().await.unwrap();
    assert_eq!(worker_account.stake, U256::from(POOL_PRICE * 99 / 100));
    let app_owner_account = hub_requester.viewAccount(app_owner).call().await.unwrap();
    assert_eq!(app_owner_account.stake, U256::from(APP_PRICE));
    assert!(t.reader().get_block_number().await.unwrap() > info.block);
}

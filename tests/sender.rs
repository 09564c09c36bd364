//! The one transaction sender against a real anvil: nonces, a lost transaction replaced with a
//! higher fee under the same nonce, reverts explained before sending, an unreachable node.

mod common;

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use pew::abi::{IexecInterfaceToken as Hub, RLC};
use pew::chain::sender::{SendPolicy, TxError, TxSender};

fn fast_policy() -> SendPolicy {
    SendPolicy {
        stuck_after_blocks: 2,
        poll_interval: Duration::from_millis(50),
        receipt_timeout: Duration::from_secs(60),
        ..SendPolicy::default()
    }
}

async fn sender(t: &common::TestDevnet, index: usize, policy: SendPolicy) -> TxSender {
    let target = pew::devnet::DevnetInfo::read(&t.devnet_file())
        .unwrap()
        .target();
    let chain = pew::chain::client::connect(target).await.unwrap();
    chain.sender(t.info().signer(index).unwrap(), policy)
}

fn transfer(to: Address, amount: u64) -> alloy::primitives::Bytes {
    RLC::transferCall {
        _to: to,
        _value: U256::from(amount),
    }
    .abi_encode()
    .into()
}

#[tokio::test]
async fn concurrent_sends_get_consecutive_nonces() {
    let t = common::devnet(false).await;
    let sender = sender(&t, 1, fast_policy()).await;
    let to = t.info().accounts[2].address;
    let (a, b, c) = tokio::join!(
        sender.send("one", t.info().rlc, transfer(to, 1)),
        sender.send("two", t.info().rlc, transfer(to, 2)),
        sender.send("three", t.info().rlc, transfer(to, 3)),
    );
    let mut nonces = Vec::new();
    for receipt in [a, b, c] {
        let receipt = receipt.unwrap();
        let tx = t
            .reader()
            .get_transaction_by_hash(receipt.transaction_hash)
            .await
            .unwrap()
            .unwrap();
        nonces.push(alloy::consensus::Transaction::nonce(&tx));
    }
    nonces.sort();
    assert_eq!(nonces, [0, 1, 2]);
}

#[tokio::test]
async fn a_lost_transaction_is_replaced_with_a_higher_fee_and_the_same_nonce() {
    let t = common::devnet(false).await;
    let provider = t.reader();
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .unwrap();
    let sender = sender(&t, 1, fast_policy()).await;
    let to = t.info().accounts[2].address;
    let rlc = t.info().rlc;
    let send = tokio::spawn(async move { sender.send("transfer", rlc, transfer(to, 7)).await });

    // Wait for the transaction to reach the pool, then lose it, as an evicting node would.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first: B256 = loop {
        let pool: serde_json::Value = provider
            .raw_request("txpool_content".into(), ())
            .await
            .unwrap();
        let pending = pool["pending"].as_object().cloned().unwrap_or_default();
        if let Some(hash) = pending
            .values()
            .flat_map(|by_nonce| {
                by_nonce
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                    .into_values()
            })
            .find_map(|tx| tx["hash"].as_str().map(|h| h.parse::<B256>().unwrap()))
        {
            break hash;
        }
        assert!(
            Instant::now() < deadline,
            "the transaction never reached the pool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first_tx = provider
        .get_transaction_by_hash(first)
        .await
        .unwrap()
        .unwrap();
    let _: serde_json::Value = provider
        .raw_request("anvil_dropTransaction".into(), (first,))
        .await
        .unwrap();

    // Blocks go by without it; the sender resends under the same nonce with a higher fee.
    while !send.is_finished() {
        let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            Instant::now() < deadline + Duration::from_secs(20),
            "never replaced"
        );
    }
    let receipt = send.await.unwrap().unwrap();
    assert_ne!(receipt.transaction_hash, first, "a replacement was mined");
    let replacement = provider
        .get_transaction_by_hash(receipt.transaction_hash)
        .await
        .unwrap()
        .unwrap();
    use alloy::consensus::Transaction;
    assert_eq!(replacement.nonce(), first_tx.nonce());
    assert!(replacement.max_fee_per_gas() > first_tx.max_fee_per_gas());
    let balance = RLC::new(rlc, &provider).balanceOf(to).call().await.unwrap();
    assert_eq!(
        balance,
        U256::from(pew::devnet::deploy::DEV_ACCOUNT_RLC + 7),
        "sent exactly once"
    );
}

#[tokio::test]
async fn a_call_that_would_revert_is_explained_and_not_sent() {
    let t = common::devnet(false).await;
    let sender = sender(&t, 1, fast_policy()).await;
    let before = t
        .reader()
        .get_transaction_count(sender.address())
        .await
        .unwrap();
    // setCallbackGas is for the PoCo owner only.
    let call = Hub::setCallbackGasCall::new((U256::from(1),)).abi_encode();
    let err = sender
        .send("setCallbackGas", t.info().hub, call.into())
        .await
        .unwrap_err();
    match &err {
        TxError::Reverted { reason, .. } => assert!(
            reason.contains("Ownable: caller is not the owner"),
            "{reason}"
        ),
        other => panic!("expected a revert, got {other}"),
    }
    assert_eq!(
        t.reader()
            .get_transaction_count(sender.address())
            .await
            .unwrap(),
        before
    );
}

#[tokio::test]
async fn an_unreachable_node_is_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let provider = alloy::providers::ProviderBuilder::new()
        .connect_http(format!("http://127.0.0.1:{port}").parse().unwrap())
        .erased();
    let policy = SendPolicy {
        transport_retries: 2,
        ..fast_policy()
    };
    let signer = alloy::signers::local::PrivateKeySigner::random();
    let sender = TxSender::new(provider, signer, 31337, policy);
    let started = Instant::now();
    let err = sender
        .send("transfer", Address::ZERO, Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, TxError::Transport { .. }), "{err}");
    assert!(err.to_string().contains("did not answer"), "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "it backed off between attempts"
    );
}

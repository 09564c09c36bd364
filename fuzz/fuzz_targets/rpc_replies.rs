//! What an RPC node answers, through the node's own decoders: logs as the watcher reads them
//! (SchedulerNotice, presign events), receipts (the deal of a match), and a presign
//! transaction's input read back into an order and checked against the event's hash, as the
//! order index does. The first byte chooses which; the rest is the reply.
#![no_main]

use alloy::primitives::{Address, B256, address};
use alloy::rpc::types::{Log, TransactionReceipt};
use alloy::sol_types::SolEvent;
use libfuzzer_sys::fuzz_target;
use pew::abi::IexecInterfaceToken as Hub;
use pew::chain::presigns::{OrderKind, PresignedOrder, order_from_input, presign_of};
use pew::poco::OrderHash;
use pew::poco::order::domain;

const HUB: Address = address!("098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0");

fuzz_target!(|data: &[u8]| {
    let Some((&choice, reply)) = data.split_first() else {
        return;
    };
    let domain = domain(42161, HUB);
    match choice % 3 {
        0 => {
            if let Ok(logs) = serde_json::from_slice::<Vec<Log>>(reply) {
                for log in logs {
                    let _ = Hub::SchedulerNotice::decode_log(&log.inner);
                    if let Some(presign) = presign_of(&log) {
                        let _ = presign.kind.name();
                    }
                }
            }
        }
        1 => {
            if let Ok(receipt) = serde_json::from_slice::<TransactionReceipt>(reply) {
                let _ = pew::chain::poco::event::<Hub::OrdersMatched>(&receipt, HUB);
                let _ = pew::chain::poco::event::<Hub::SchedulerNotice>(&receipt, HUB);
            }
        }
        _ => {
            // The first 32 bytes are the hash the presign event named; the rest the input.
            if reply.len() < 33 {
                return;
            }
            let (hash, input) = reply.split_at(32);
            let hash = OrderHash(B256::from_slice(hash));
            for kind in OrderKind::ALL {
                if let Some(order) = order_from_input(kind, input, hash, &domain) {
                    let encoded = order.encode();
                    assert_eq!(
                        PresignedOrder::decode(kind, &encoded),
                        Some(order),
                        "what the index stores, it reads back"
                    );
                }
            }
        }
    }
});

//! What an RPC node answers, as pew decodes it: logs (SchedulerNotice, SignedRequestOrder),
//! receipts (the deal of a match), and the input of a presign transaction read back into an
//! order and hashed. The first byte chooses which; the rest is the reply.
#![no_main]

use alloy::primitives::{Address, address};
use alloy::rpc::types::{Log, TransactionReceipt};
use alloy::sol_types::{SolCall, SolEvent};
use libfuzzer_sys::fuzz_target;
use pew::chain::bindings::IexecInterfaceToken as Hub;
use pew::poco::order::{AppOrder, Order, RequestOrder, Signed, WorkerpoolOrder, domain};

const HUB: Address = address!("098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0");

fuzz_target!(|data: &[u8]| {
    let Some((&choice, reply)) = data.split_first() else {
        return;
    };
    let domain = domain(42161, HUB);
    match choice % 4 {
        0 => {
            if let Ok(logs) = serde_json::from_slice::<Vec<Log>>(reply) {
                for log in logs {
                    let _ = Hub::SchedulerNotice::decode_log(&log.inner);
                    let _ = Hub::SignedRequestOrder::decode_log(&log.inner);
                }
            }
        }
        1 => {
            if let Ok(receipt) = serde_json::from_slice::<TransactionReceipt>(reply) {
                let _ = pew::chain::poco::event::<Hub::OrdersMatched>(&receipt, HUB);
                let _ = pew::chain::poco::event::<Hub::SchedulerNotice>(&receipt, HUB);
            }
        }
        2 => {
            if let Ok(call) = Hub::manageRequestOrderCall::abi_decode(reply) {
                let order: RequestOrder = Signed::<RequestOrder>::from(call.0.order).order;
                let _ = order.hash(&domain);
                let _ = pew::poco::RequestParams::parse(&order.params);
            }
        }
        _ => {
            if let Ok(call) = Hub::manageWorkerpoolOrderCall::abi_decode(reply) {
                let order: WorkerpoolOrder = Signed::<WorkerpoolOrder>::from(call.0.order).order;
                let _ = order.hash(&domain);
            }
            if let Ok(call) = Hub::manageAppOrderCall::abi_decode(reply) {
                let order: AppOrder = Signed::<AppOrder>::from(call.0.order).order;
                let _ = order.hash(&domain);
            }
        }
    }
});

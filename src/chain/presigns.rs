//! Presign events, the on-chain trace of every presigned order: `SignedAppOrder`,
//! `SignedDatasetOrder`, `SignedWorkerpoolOrder` and `SignedRequestOrder` carry only the order's
//! hash; the order itself is in the input of the `manage*Order` transaction that emitted the
//! event. This module tells the events apart and reads an order back from that input, checking
//! that it hashes to the event's hash.

use alloy::primitives::{Address, B256};
use alloy::rpc::types::Log;
use alloy::sol_types::{Eip712Domain, SolCall, SolEvent, SolValue};
use serde::{Deserialize, Serialize};

use crate::abi::IexecInterfaceToken as Hub;
use crate::poco::OrderHash;
use crate::poco::order::{AppOrder, DatasetOrder, Order, RequestOrder, Signed, WorkerpoolOrder};

/// The four kinds of orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    /// An app owner's order.
    App,
    /// A dataset owner's order.
    Dataset,
    /// A workerpool owner's order.
    Workerpool,
    /// A requester's order.
    Request,
}

impl OrderKind {
    /// Every kind, in the order the index and messages list them.
    pub const ALL: [OrderKind; 4] = [
        OrderKind::App,
        OrderKind::Dataset,
        OrderKind::Workerpool,
        OrderKind::Request,
    ];

    /// Its word in the journal and in messages.
    pub fn name(self) -> &'static str {
        match self {
            OrderKind::App => "app",
            OrderKind::Dataset => "dataset",
            OrderKind::Workerpool => "workerpool",
            OrderKind::Request => "request",
        }
    }

    /// The kind a journal word names.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == word)
    }

    /// The topic0 of its presign event.
    pub fn topic(self) -> B256 {
        match self {
            OrderKind::App => Hub::SignedAppOrder::SIGNATURE_HASH,
            OrderKind::Dataset => Hub::SignedDatasetOrder::SIGNATURE_HASH,
            OrderKind::Workerpool => Hub::SignedWorkerpoolOrder::SIGNATURE_HASH,
            OrderKind::Request => Hub::SignedRequestOrder::SIGNATURE_HASH,
        }
    }
}

/// The topic0 of every presign event.
pub fn topics() -> [B256; 4] {
    OrderKind::ALL.map(OrderKind::topic)
}

/// One presign event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presign {
    /// What kind of order.
    pub kind: OrderKind,
    /// Its hash.
    pub hash: OrderHash,
    /// The block it is in.
    pub block: u64,
    /// The transaction that emitted it.
    pub tx: B256,
}

/// The presign event a log is, if it is one (and carries its block and transaction).
pub fn presign_of(log: &Log) -> Option<Presign> {
    let topic0 = *log.topic0()?;
    let kind = OrderKind::ALL.into_iter().find(|k| k.topic() == topic0)?;
    // Each event's one field is the order hash, not indexed: the log's data is that word.
    let data = log.data().data.as_ref();
    if data.len() != 32 {
        return None;
    }
    Some(Presign {
        kind,
        hash: OrderHash(B256::from_slice(data)),
        block: log.block_number?,
        tx: log.transaction_hash?,
    })
}

/// An order read back from a presign transaction's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresignedOrder {
    /// An app order.
    App(AppOrder),
    /// A dataset order.
    Dataset(DatasetOrder),
    /// A workerpool order.
    Workerpool(WorkerpoolOrder),
    /// A request order.
    Request(RequestOrder),
}

impl PresignedOrder {
    /// The asset the order offers (app, dataset, workerpool), or the app a request asks for.
    pub fn asset(&self) -> Address {
        match self {
            PresignedOrder::App(o) => o.app,
            PresignedOrder::Dataset(o) => o.dataset,
            PresignedOrder::Workerpool(o) => o.workerpool,
            PresignedOrder::Request(o) => o.app,
        }
    }

    /// The order, ABI-encoded (as the journal keeps it).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            PresignedOrder::App(o) => o.abi_encode(),
            PresignedOrder::Dataset(o) => o.abi_encode(),
            PresignedOrder::Workerpool(o) => o.abi_encode(),
            PresignedOrder::Request(o) => o.abi_encode(),
        }
    }

    /// An order of `kind` from its ABI encoding.
    pub fn decode(kind: OrderKind, bytes: &[u8]) -> Option<Self> {
        Some(match kind {
            OrderKind::App => PresignedOrder::App(AppOrder::abi_decode(bytes).ok()?),
            OrderKind::Dataset => PresignedOrder::Dataset(DatasetOrder::abi_decode(bytes).ok()?),
            OrderKind::Workerpool => {
                PresignedOrder::Workerpool(WorkerpoolOrder::abi_decode(bytes).ok()?)
            }
            OrderKind::Request => PresignedOrder::Request(RequestOrder::abi_decode(bytes).ok()?),
        })
    }

    fn hash(&self, domain: &Eip712Domain) -> OrderHash {
        match self {
            PresignedOrder::App(o) => o.hash(domain),
            PresignedOrder::Dataset(o) => o.hash(domain),
            PresignedOrder::Workerpool(o) => o.hash(domain),
            PresignedOrder::Request(o) => o.hash(domain),
        }
    }
}

/// The order a presign transaction's `input` presigned, when it is a direct `manage*Order`
/// call of the right kind for an order that hashes to `expected` on `domain`; `None` for a
/// presign made through another contract (pew cannot read such an order back) or anything
/// that does not hold together.
pub fn order_from_input(
    kind: OrderKind,
    input: &[u8],
    expected: OrderHash,
    domain: &Eip712Domain,
) -> Option<PresignedOrder> {
    let order = match kind {
        OrderKind::App => PresignedOrder::App(
            Signed::<AppOrder>::from(Hub::manageAppOrderCall::abi_decode(input).ok()?.0.order)
                .order,
        ),
        OrderKind::Dataset => PresignedOrder::Dataset(
            Signed::<DatasetOrder>::from(
                Hub::manageDatasetOrderCall::abi_decode(input).ok()?.0.order,
            )
            .order,
        ),
        OrderKind::Workerpool => PresignedOrder::Workerpool(
            Signed::<WorkerpoolOrder>::from(
                Hub::manageWorkerpoolOrderCall::abi_decode(input)
                    .ok()?
                    .0
                    .order,
            )
            .order,
        ),
        OrderKind::Request => PresignedOrder::Request(
            Signed::<RequestOrder>::from(
                Hub::manageRequestOrderCall::abi_decode(input).ok()?.0.order,
            )
            .order,
        ),
    };
    (order.hash(domain) == expected).then_some(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_words_and_topics_differ() {
        for kind in OrderKind::ALL {
            assert_eq!(OrderKind::parse(kind.name()), Some(kind));
        }
        let topics = topics();
        for (i, a) in topics.iter().enumerate() {
            for b in &topics[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn an_order_is_read_back_only_when_it_hashes_to_the_event() {
        let domain = crate::poco::order::domain(31337, Address::repeat_byte(1));
        let order = crate::sdk::assets::open_app_order(
            Address::repeat_byte(7),
            alloy::primitives::U256::ZERO,
            alloy::primitives::U256::from(3),
            crate::poco::Tag::STANDARD,
        );
        let hash = order.hash(&domain);
        let input = Hub::manageAppOrderCall::new((crate::poco::order::app_operation(
            Signed::presigned(order.clone()),
            crate::poco::order::OrderOperation::Sign,
            alloy::primitives::Bytes::new(),
        ),))
        .abi_encode();
        let back = order_from_input(OrderKind::App, &input, hash, &domain).unwrap();
        assert_eq!(back.asset(), Address::repeat_byte(7));
        assert_eq!(
            PresignedOrder::decode(OrderKind::App, &back.encode()),
            Some(back.clone())
        );
        assert!(order_from_input(OrderKind::App, &input, OrderHash(B256::ZERO), &domain).is_none());
        assert!(order_from_input(OrderKind::Request, &input, hash, &domain).is_none());
        assert!(order_from_input(OrderKind::App, b"junk", hash, &domain).is_none());
    }
}

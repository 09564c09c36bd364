//! Following the PoCo logs the node needs: `SchedulerNotice` for our workerpool (our deals)
//! and `SignedRequestOrder` (requests we may serve). The cursor is persisted in the journal
//! with the hash of its block; when that hash changes, a reorg happened and the cursor is
//! rewound, so the events of the new branch are applied (idempotently) again. Logs are read in
//! bounded ranges, so the node catches up after downtime even on RPC nodes that cap ranges.

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::sol_types::SolEvent;

use super::bindings::IexecInterfaceToken as Hub;
use super::logs;
use crate::poco::ids::address_topic;
use crate::poco::{DealId, OrderHash};
use crate::store::{Store, StoreError};

const CURSOR_BLOCK: &str = "cursor_block";
const CURSOR_HASH: &str = "cursor_hash";

/// What one poll found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Deals of our workerpool.
    pub deals: Vec<DealId>,
    /// Presigned request orders, with the block they were seen in.
    pub requests: Vec<(OrderHash, u64)>,
    /// The range read.
    pub range: Option<(u64, u64)>,
    /// Whether a reorg was detected (and the cursor rewound).
    pub reorg: bool,
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The RPC node failed.
    #[error("reading the chain: {0}")]
    Rpc(String),
    /// The journal failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Follows the hub's logs for one workerpool.
pub struct Watcher {
    /// The provider.
    pub provider: DynProvider,
    /// The hub.
    pub hub: Address,
    /// Our workerpool.
    pub pool: Address,
    /// Blocks a log must be under.
    pub confirmations: u64,
    /// How far to rewind on a reorg.
    pub reorg_depth: u64,
    /// Widest eth_getLogs range.
    pub chunk: u64,
    /// Most blocks read in one poll (so one poll stays short while catching up).
    pub max_span: u64,
    /// First block on a fresh journal.
    pub start_block: u64,
}

fn rpc<E: std::fmt::Display>(e: E) -> WatchError {
    WatchError::Rpc(e.to_string())
}

impl Watcher {
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, WatchError> {
        Ok(self
            .provider
            .get_block_by_number(number.into())
            .await
            .map_err(rpc)?
            .map(|b| b.header.hash))
    }

    /// Reads the next range of logs after the cursor and advances it.
    pub async fn poll(&self, store: &Store) -> Result<Found, WatchError> {
        let mut found = Found::default();
        let latest = self.provider.get_block_number().await.map_err(rpc)?;
        let safe = latest.saturating_sub(self.confirmations);
        let mut cursor: Option<u64> = store.get(CURSOR_BLOCK)?.and_then(|v| v.parse().ok());
        if let Some(block) = cursor {
            let stored: Option<B256> = store.get(CURSOR_HASH)?.and_then(|v| v.parse().ok());
            let actual = self.block_hash(block).await?;
            if stored.is_some() && actual != stored {
                let rewound = block
                    .saturating_sub(self.reorg_depth)
                    .max(self.start_block.saturating_sub(1));
                tracing::warn!(
                    block,
                    rewound,
                    "reorg detected: the block under the log cursor changed; rewinding"
                );
                cursor = Some(rewound);
                found.reorg = true;
            }
        }
        let from = cursor
            .map(|c| c.saturating_add(1))
            .unwrap_or(self.start_block);
        if from > safe {
            if found.reorg {
                self.commit(store, from.saturating_sub(1)).await?;
            }
            return Ok(found);
        }
        let to = safe.min(from.saturating_add(self.max_span.max(1) - 1));
        let notices = logs::scan(
            &self.provider,
            self.hub,
            Hub::SchedulerNotice::SIGNATURE_HASH,
            Some(address_topic(self.pool)),
            from,
            to,
            self.chunk,
        )
        .await
        .map_err(WatchError::Rpc)?;
        for log in notices {
            if let Ok(event) = Hub::SchedulerNotice::decode_log(&log.inner)
                && event.workerpool == self.pool
            {
                found.deals.push(DealId(event.dealid));
            }
        }
        let signed = logs::scan(
            &self.provider,
            self.hub,
            Hub::SignedRequestOrder::SIGNATURE_HASH,
            None,
            from,
            to,
            self.chunk,
        )
        .await
        .map_err(WatchError::Rpc)?;
        for log in signed {
            if let Ok(event) = Hub::SignedRequestOrder::decode_log(&log.inner) {
                found
                    .requests
                    .push((OrderHash(event.requestHash), log.block_number.unwrap_or(to)));
            }
        }
        found.range = Some((from, to));
        self.commit(store, to).await?;
        Ok(found)
    }

    async fn commit(&self, store: &Store, block: u64) -> Result<(), WatchError> {
        let hash = self.block_hash(block).await?.unwrap_or_default();
        store.set(CURSOR_BLOCK, &block.to_string())?;
        store.set(CURSOR_HASH, &hash.to_string())?;
        Ok(())
    }
}

//! Following the PoCo logs the node needs: `SchedulerNotice` for our workerpool (our deals)
//! and `SignedRequestOrder` (requests we may serve). The caller keeps the cursor (the last
//! block read, with its hash) and hands it to each poll, which returns the next one; when the
//! hash under the cursor changes, a reorg happened and the cursor is rewound, so the events of
//! the new branch are applied (idempotently) again. Logs are read in bounded ranges, so the
//! node catches up after downtime even on RPC nodes that cap ranges. The watcher writes
//! nothing: where the cursor is kept (and how often it is saved) is the node's business.

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::sol_types::SolEvent;

use super::logs;
use crate::abi::IexecInterfaceToken as Hub;
use crate::poco::{DealId, OrderHash};

/// Where the watcher stopped reading: the last block read and its hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The last block read.
    pub block: u64,
    /// Its hash, to notice a reorg under it.
    pub hash: B256,
}

/// What one poll found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Deals of our workerpool.
    pub deals: Vec<DealId>,
    /// Presigned request orders, with the block they were seen in.
    pub requests: Vec<(OrderHash, u64)>,
    /// Every presign event (requests included), for the node's order index.
    pub presigns: Vec<super::presigns::Presign>,
    /// The range read.
    pub range: Option<(u64, u64)>,
    /// Whether a reorg was detected (and the cursor rewound).
    pub reorg: bool,
    /// After a reorg, where the cursor went back to (with that block's hash): what was read
    /// above it may be gone. To be saved before anything read above it is forgotten.
    pub rewound_to: Option<Cursor>,
    /// Where to read from next time (unchanged when nothing new was read).
    pub cursor: Option<Cursor>,
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The RPC node failed.
    #[error("reading the chain: {0}")]
    Rpc(String),
    /// The chain's head is below the last block read, and that block is unknown: an endpoint
    /// that lags, or a reorg onto a shorter branch. Only time tells them apart: the caller
    /// waits, then calls [`Watcher::poll_rewinding`] if the head stays below.
    #[error(
        "the RPC node's head {head} is below block {block}, the last one read: it lags, or the chain reorganised onto a shorter branch"
    )]
    HeadBelowCursor {
        /// The last block read.
        block: u64,
        /// The head the endpoint reports.
        head: u64,
    },
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

    /// Reads the next range of logs after `cursor` (none: from `start_block`); the new cursor
    /// is in the answer.
    pub async fn poll(&self, cursor: Option<Cursor>) -> Result<Found, WatchError> {
        self.read(cursor, false).await
    }

    /// Like [`Watcher::poll`], with the block under `cursor` taken as gone: for a head that
    /// stayed below the cursor longer than any endpoint lags (a reorg onto a shorter branch).
    pub async fn poll_rewinding(&self, cursor: Cursor) -> Result<Found, WatchError> {
        self.read(Some(cursor), true).await
    }

    async fn read(&self, cursor: Option<Cursor>, gone: bool) -> Result<Found, WatchError> {
        let mut found = Found {
            cursor,
            ..Found::default()
        };
        let latest = self.provider.get_block_number().await.map_err(rpc)?;
        let safe = latest.saturating_sub(self.confirmations);
        let mut from_cursor = cursor.map(|c| c.block);
        if let Some(Cursor { block, hash }) = cursor {
            // A block the endpoint does not know (a load-balanced public endpoint's backend
            // that lags) says nothing about a reorg: try again next round.
            let actual = match self.block_hash(block).await? {
                Some(actual) => Some(actual),
                None if gone => None,
                None if latest < block => {
                    return Err(WatchError::HeadBelowCursor {
                        block,
                        head: latest,
                    });
                }
                None => {
                    return Err(WatchError::Rpc(format!(
                        "the RPC node does not know block {block} yet"
                    )));
                }
            };
            if actual != Some(hash) {
                let rewound = block
                    .min(latest)
                    .saturating_sub(self.reorg_depth)
                    .max(self.start_block.saturating_sub(1));
                tracing::warn!(
                    block,
                    rewound,
                    "reorg detected: the block under the log cursor changed; rewinding"
                );
                from_cursor = Some(rewound);
                found.reorg = true;
                found.rewound_to = Some(self.cursor_at(rewound).await?);
            }
        }
        let from = from_cursor
            .map(|c| c.saturating_add(1))
            .unwrap_or(self.start_block);
        if from > safe {
            if found.reorg {
                found.cursor = Some(self.cursor_at(from.saturating_sub(1)).await?);
            }
            return Ok(found);
        }
        let to = safe.min(from.saturating_add(self.max_span.max(1) - 1));
        // One eth_getLogs per range for every event the node follows: a public endpoint
        // counts each call against its limits.
        let mut topics = vec![Hub::SchedulerNotice::SIGNATURE_HASH];
        topics.extend(super::presigns::topics());
        let logs = logs::scan(
            &self.provider,
            self.hub,
            &topics,
            None,
            from,
            to,
            self.chunk,
        )
        .await
        .map_err(WatchError::Rpc)?;
        for log in logs {
            if log.topic0() == Some(&Hub::SchedulerNotice::SIGNATURE_HASH) {
                if let Ok(event) = Hub::SchedulerNotice::decode_log(&log.inner)
                    && event.workerpool == self.pool
                {
                    found.deals.push(DealId(event.dealid));
                }
            } else if let Some(presign) = super::presigns::presign_of(&log) {
                if presign.kind == super::presigns::OrderKind::Request {
                    found.requests.push((presign.hash, presign.block));
                }
                found.presigns.push(presign);
            }
        }
        found.range = Some((from, to));
        found.cursor = Some(self.cursor_at(to).await?);
        Ok(found)
    }

    async fn cursor_at(&self, block: u64) -> Result<Cursor, WatchError> {
        // Never a cursor without its hash: a zero hash would read as a reorg next round.
        let hash = self.block_hash(block).await?.ok_or_else(|| {
            WatchError::Rpc(format!("the RPC node does not know block {block} yet"))
        })?;
        Ok(Cursor { block, hash })
    }
}

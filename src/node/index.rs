//! The node's index of presigned orders, in its journal. Matching a request needs the orders
//! presigned for its app (and dataset), which may be months old; scanning a chain's history
//! for them at every request would take a public endpoint hours. So the node reads every
//! presign event once: a catch-up from the hub's deployment block to where its log watcher
//! began (resumable, a slice per round, with progress in the log and `/status`), then the
//! watcher's own reads. Each event's order is read back from its transaction once and kept.
//! A reorg drops what it may have taken away, and the watcher reads it again.

use std::time::{Duration, Instant};

use alloy::providers::Provider;
use serde::Serialize;

use super::Node;
use crate::chain::presigns::{self, OrderKind, Presign, PresignedOrder};
use crate::node::journal::{IndexedOrder, Journal};
use crate::poco::OrderHash;

const INDEX_AT: &str = "index_at";
const INDEX_UNTIL: &str = "index_until";

/// Where the catch-up stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IndexProgress {
    /// The first block read (the hub's deployment, or `chain.log_from_block`).
    pub floor: u64,
    /// The next block the catch-up reads.
    pub at: u64,
    /// The last block the catch-up reads (the watcher reads after it).
    pub until: u64,
    /// Whether the catch-up is done: matching waits for it.
    pub complete: bool,
    /// Orders in the index.
    pub orders: u64,
}

impl IndexProgress {
    /// How much of the catch-up is done, in percent.
    pub fn percent(&self) -> f64 {
        if self.complete || self.until < self.floor {
            return 100.0;
        }
        let total = (self.until - self.floor + 1) as f64;
        let done = self.at.saturating_sub(self.floor) as f64;
        (done / total * 100.0).clamp(0.0, 100.0)
    }
}

/// Sets up (or resumes) the catch-up: from `floor` to the block before `watcher_first`, the
/// first block the watcher reads on this journal. Kept in the journal, so a restart (or a
/// power cut mid-way) resumes where it was.
pub fn prepare(store: &Journal, floor: u64, watcher_first: u64) -> anyhow::Result<IndexProgress> {
    let until = match store.get(INDEX_UNTIL)?.and_then(|v| v.parse::<u64>().ok()) {
        Some(until) => until,
        None => {
            let until = watcher_first.saturating_sub(1);
            store.set(INDEX_UNTIL, &until.to_string())?;
            until
        }
    };
    let at = store
        .get(INDEX_AT)?
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(floor)
        .max(floor);
    Ok(IndexProgress {
        floor,
        at,
        until,
        complete: watcher_first <= floor || at > until,
        orders: store.order_count()?,
    })
}

/// Adds presign events to the index, reading each new order back from its transaction.
/// Returns how many were new.
pub async fn record(node: &Node, found: &[Presign]) -> anyhow::Result<usize> {
    let domain = node.sdk.chain.domain();
    let mut added = 0;
    for presign in found {
        if node.journal().knows_order(presign.hash)? {
            continue;
        }
        // An endpoint that does not know the transaction yet (a lagging backend) is asked
        // again next round; only a transaction that exists and does not decode is unreadable.
        let tx = node
            .sdk
            .chain
            .provider
            .get_transaction_by_hash(presign.tx)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the RPC node does not know the presign transaction {} yet",
                    presign.tx
                )
            })?;
        let order = presigns::order_from_input(
            presign.kind,
            alloy::consensus::Transaction::input(&tx),
            presign.hash,
            &domain,
        );
        let indexed = IndexedOrder {
            hash: presign.hash,
            kind: presign.kind,
            block: presign.block,
            tx: presign.tx,
            order,
        };
        if node.journal().put_order(&indexed)? {
            added += 1;
        }
    }
    if added > 0 {
        node.index.lock().expect("not poisoned").orders += added as u64;
    }
    Ok(added)
}

/// One slice of the catch-up (a few `eth_getLogs` ranges); a no-op once it is complete.
pub async fn catch_up(node: &Node) -> anyhow::Result<()> {
    let progress = node.index.lock().expect("not poisoned").clone();
    if progress.complete {
        return Ok(());
    }
    let chunk = node.settings.chain.log_chunk_blocks.max(1);
    let to = progress
        .at
        .saturating_add(chunk.saturating_mul(4) - 1)
        .min(progress.until);
    let logs = crate::chain::logs::scan(
        &node.sdk.chain.provider,
        node.sdk.chain.target.hub,
        &presigns::topics(),
        None,
        progress.at,
        to,
        chunk,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let found: Vec<Presign> = logs.iter().filter_map(presigns::presign_of).collect();
    record(node, &found).await?;
    node.journal().set(INDEX_AT, &(to + 1).to_string())?;
    let mut shared = node.index.lock().expect("not poisoned");
    shared.at = to + 1;
    shared.complete = shared.at > shared.until;
    let now = shared.clone();
    drop(shared);
    announce(&now);
    Ok(())
}

/// Logs the catch-up's progress at most every 10 s, and its end.
fn announce(progress: &IndexProgress) {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if progress.complete {
        tracing::info!(
            orders = progress.orders,
            "order index caught up: requests are matched from now on"
        );
        *last = None;
        return;
    }
    if last.is_some_and(|at| at.elapsed() < Duration::from_secs(10)) {
        return;
    }
    *last = Some(Instant::now());
    tracing::info!(
        at = progress.at,
        until = progress.until,
        percent = format!("{:.1}", progress.percent()),
        orders = progress.orders,
        "order index catching up (matching waits for it)"
    );
}

/// A request order from the index: `Ok(None)` when it is not indexed yet, an error message
/// when it is indexed but cannot be served (presigned through a contract).
pub fn request_order(
    store: &Journal,
    hash: OrderHash,
) -> anyhow::Result<Option<Result<crate::poco::order::RequestOrder, String>>> {
    Ok(store.order(hash)?.map(|indexed| match indexed.order {
        Some(PresignedOrder::Request(order)) => Ok(order),
        Some(_) => Err(format!("{hash} is not a request order")),
        None => Err(
            "this request was presigned through a contract; pew cannot read it back to match it"
                .into(),
        ),
    }))
}

/// The app orders (with their hashes) the index holds for `app`, oldest first.
pub fn app_orders(
    store: &Journal,
    app: alloy::primitives::Address,
) -> anyhow::Result<Vec<(OrderHash, crate::poco::order::AppOrder)>> {
    Ok(store
        .orders_for(OrderKind::App, app)?
        .into_iter()
        .filter_map(|o| match o.order {
            Some(PresignedOrder::App(order)) => Some((o.hash, order)),
            _ => None,
        })
        .collect())
}

/// The dataset orders (with their hashes) the index holds for `dataset`, oldest first.
pub fn dataset_orders(
    store: &Journal,
    dataset: alloy::primitives::Address,
) -> anyhow::Result<Vec<(OrderHash, crate::poco::order::DatasetOrder)>> {
    Ok(store
        .orders_for(OrderKind::Dataset, dataset)?
        .into_iter()
        .filter_map(|o| match o.order {
            Some(PresignedOrder::Dataset(order)) => Some((o.hash, order)),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catch_up_range_is_kept_and_resumed_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let first = prepare(&store, 100, 1_000).unwrap();
        assert_eq!(
            (first.floor, first.at, first.until, first.complete),
            (100, 100, 999, false)
        );
        store.set(INDEX_AT, "500").unwrap();
        // After a restart the watcher starts elsewhere; the catch-up keeps its own range.
        let again = prepare(&store, 100, 5_000).unwrap();
        assert_eq!((again.at, again.until, again.complete), (500, 999, false));
        assert!((again.percent() - 400.0 / 900.0 * 100.0).abs() < 0.01);
        store.set(INDEX_AT, "1000").unwrap();
        assert!(prepare(&store, 100, 5_000).unwrap().complete);
        // A watcher that starts at the floor leaves nothing to catch up.
        let fresh = Journal::open(&dir.path().join("k.sqlite")).unwrap();
        assert!(prepare(&fresh, 0, 0).unwrap().complete);
        // chain.log_from_block raised above where the catch-up was: it starts at the floor.
        let raised = prepare(&store, 2_000, 5_000).unwrap();
        assert_eq!(raised.at, 2_000);
        assert!(raised.complete);
    }
}

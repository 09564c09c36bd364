//! The node's journal in SQLite: the log cursor, the open bid, the request orders seen and
//! what was decided about them, and every task with the step it reached. Each step is written
//! before its side effect is considered done, so after a power cut the node resumes every task
//! at the right step (and checks the chain before repeating anything).

use std::path::Path;
use std::str::FromStr;

use alloy::primitives::B256;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::poco::{DealId, OrderHash, TaskId};

/// A journal error, naming the database.
#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {reason}")]
pub struct JournalError {
    path: String,
    reason: String,
}

/// Where a task is in its life on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum TaskStep {
    /// Known from a deal; not initialized by us yet.
    New,
    /// Initialized on chain.
    Initialized,
    /// The app ran and gave this digest; the output is on disk.
    Computed {
        /// The result digest.
        digest: B256,
        /// The output folder.
        output_dir: String,
    },
    /// The result archive is on IPFS (or, for a callback deal, nothing needs uploading); the
    /// final transactions come next, each preceded by a look at the chain. (Journals written
    /// of earlier builds may call this step `finishing`.)
    #[serde(alias = "finishing")]
    Uploaded {
        /// The result digest.
        digest: B256,
        /// The output folder.
        output_dir: String,
        /// The archive's CID; empty for a callback deal.
        cid: String,
    },
    /// COMPLETED on chain.
    Completed,
    /// Given up, with the reason; the node claims it after its final deadline.
    Failed {
        /// Why.
        reason: String,
    },
    /// Claimed after its final deadline: FAILED on chain, the requester refunded.
    Claimed {
        /// Why it could not complete.
        reason: String,
    },
}

impl TaskStep {
    /// Whether nothing more will happen to the task on this node.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TaskStep::Completed | TaskStep::Failed { .. } | TaskStep::Claimed { .. }
        )
    }

    /// A short name for logs and status.
    pub fn name(&self) -> &'static str {
        match self {
            TaskStep::New => "new",
            TaskStep::Initialized => "initialized",
            TaskStep::Computed { .. } => "computed",
            TaskStep::Uploaded { .. } => "uploaded",
            TaskStep::Completed => "completed",
            TaskStep::Failed { .. } => "failed",
            TaskStep::Claimed { .. } => "claimed",
        }
    }
}

/// A task as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// The task.
    pub task: TaskId,
    /// Its deal.
    pub deal: DealId,
    /// Its index.
    pub index: u64,
    /// Where it is.
    pub step: TaskStep,
}

/// A presigned order the node's index knows: where its presign event is and, when the order
/// could be read back from its transaction, the order itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedOrder {
    /// Its hash.
    pub hash: OrderHash,
    /// Its kind.
    pub kind: crate::chain::presigns::OrderKind,
    /// The block of its presign event.
    pub block: u64,
    /// The transaction that presigned it.
    pub tx: B256,
    /// The order, when its transaction was a direct `manage*Order` call (`None`: presigned
    /// through a contract, which pew cannot read back).
    pub order: Option<crate::chain::presigns::PresignedOrder>,
}

/// One journaled transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxEntry {
    /// The entry's id.
    pub id: i64,
    /// The sending account.
    pub sender: String,
    /// Its nonce.
    pub nonce: u64,
    /// What it does ("contributeAndFinalize 0x…").
    pub label: String,
    /// Its hashes once signed, comma-separated (a replacement adds one).
    pub hash: Option<String>,
    /// Its state (`sending`, `sent`, `replaced`, `mined`, `reverted`, `dropped`, …).
    pub state: String,
}

/// Locks the node's one journal. A panic elsewhere while it was held leaves SQLite's own state
/// whole (every write is one statement or transaction), so a poisoned lock is taken over.
pub fn lock(journal: &std::sync::Mutex<Journal>) -> std::sync::MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(|p| p.into_inner())
}

/// The journal as the transaction sender's log: every transaction is written before it is
/// sent and after each change, into the node's one journal (shared, locked per write).
pub struct JournalTxLog {
    journal: std::sync::Arc<std::sync::Mutex<Journal>>,
}

impl JournalTxLog {
    /// Transaction records into `journal`.
    pub fn new(journal: std::sync::Arc<std::sync::Mutex<Journal>>) -> Self {
        Self { journal }
    }
}

impl crate::chain::sender::TxLog for JournalTxLog {
    fn begin(&self, from: alloy::primitives::Address, nonce: u64, label: &str) -> Option<i64> {
        let store = lock(&self.journal);
        store
            .begin_transaction(from, nonce, label)
            .map_err(|error| tracing::warn!(%error, "transaction not journaled"))
            .ok()
    }

    fn update(
        &self,
        entry: i64,
        hash: Option<alloy::primitives::B256>,
        state: crate::chain::sender::TxState,
    ) {
        let store = lock(&self.journal);
        if let Err(error) = store.update_transaction(entry, hash, state.name()) {
            tracing::warn!(%error, "transaction state not journaled");
        }
    }
}

/// What the node decided about a request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestDecision {
    /// Not looked at yet, or to look at again (the gate said "not now").
    Pending,
    /// Matched into this deal, with nothing left to match.
    Matched(DealId),
    /// Matched into this deal for part of its volume: the rest is matched again when the node
    /// has room (the request stays pending).
    PartlyMatched(DealId),
    /// Not for this node, with the reason.
    Refused(String),
    /// Not now, with the reason (its gas costs more than it pays at today's fee); it stays
    /// pending and is looked at again.
    Deferred(String),
}

const CURSOR_BLOCK: &str = "cursor_block";
const CURSOR_HASH: &str = "cursor_hash";

/// The journal.
pub struct Journal {
    connection: Connection,
    path: String,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let fail = |reason: String| JournalError {
            path: path.display().to_string(),
            reason,
        };
        if let Some(parent) = path.parent() {
            crate::files::private_dir(parent).map_err(|e| fail(e.to_string()))?;
        }
        let connection = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS requests (
                     hash TEXT PRIMARY KEY, decision TEXT NOT NULL, detail TEXT, seen_block INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS tasks (
                     task TEXT PRIMARY KEY, deal TEXT NOT NULL, idx INTEGER NOT NULL,
                     step TEXT NOT NULL, updated_at INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS request_deals (
                     hash TEXT NOT NULL, deal TEXT NOT NULL, PRIMARY KEY (hash, deal));
                 INSERT OR IGNORE INTO request_deals (hash, deal)
                     SELECT hash, detail FROM requests WHERE decision = 'matched' AND detail IS NOT NULL;
                 CREATE TABLE IF NOT EXISTS orders (
                     hash TEXT PRIMARY KEY, kind TEXT NOT NULL, block INTEGER NOT NULL,
                     tx TEXT NOT NULL, asset TEXT, body BLOB);
                 CREATE INDEX IF NOT EXISTS orders_by_asset ON orders (kind, asset);
                 CREATE INDEX IF NOT EXISTS orders_by_block ON orders (block);
                 CREATE TABLE IF NOT EXISTS energy_receipts (task TEXT PRIMARY KEY, receipt TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS deals (deal TEXT PRIMARY KEY, facts TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS transactions (
                     id INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT NOT NULL, nonce INTEGER NOT NULL,
                     label TEXT NOT NULL, hash TEXT, state TEXT NOT NULL, updated_at INTEGER NOT NULL);
                 -- The dashboard's history (node::history) and the earnings (node::earnings).
                 CREATE TABLE IF NOT EXISTS history_points (t REAL PRIMARY KEY, point TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS history_events (
                     id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL NOT NULL, kind TEXT NOT NULL,
                     is_on INTEGER NOT NULL, text TEXT NOT NULL);
                 CREATE INDEX IF NOT EXISTS history_events_by_t ON history_events (t);
                 CREATE TABLE IF NOT EXISTS earnings (
                     task TEXT PRIMARY KEY, at_s REAL NOT NULL, earned_nrlc INTEGER,
                     gas_wei TEXT NOT NULL, detail TEXT NOT NULL);",
            )
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            connection,
            path: path.display().to_string(),
        })
    }

    /// The database, for the stores that keep their own tables in the journal (the history
    /// and the earnings): one file, one connection, one lock.
    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }

    /// An error naming this journal.
    pub(crate) fn error(&self, e: impl std::fmt::Display) -> JournalError {
        JournalError {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Records a transaction about to be sent; returns its entry id.
    pub fn begin_transaction(
        &self,
        sender: alloy::primitives::Address,
        nonce: u64,
        label: &str,
    ) -> Result<i64, JournalError> {
        self.connection
            .execute(
                "INSERT INTO transactions (sender, nonce, label, hash, state, updated_at) \
                 VALUES (?1, ?2, ?3, NULL, 'sending', strftime('%s','now'))",
                rusqlite::params![sender.to_string(), nonce as i64, label],
            )
            .map_err(|e| self.error(e))?;
        Ok(self.connection.last_insert_rowid())
    }

    /// Moves a transaction entry to `state`, adding `hash` to its hashes when new.
    pub fn update_transaction(
        &self,
        id: i64,
        hash: Option<alloy::primitives::B256>,
        state: &str,
    ) -> Result<(), JournalError> {
        self.connection
            .execute(
                "UPDATE transactions SET hash = CASE \
                     WHEN ?2 IS NULL THEN hash \
                     WHEN hash IS NULL THEN ?2 \
                     WHEN instr(hash, ?2) > 0 THEN hash \
                     ELSE hash || ',' || ?2 END, \
                 state = ?3, updated_at = strftime('%s','now') WHERE id = ?1",
                rusqlite::params![id, hash.map(|h| h.to_string()), state],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The journaled transactions about `subject` (labels `<call> <subject>`, e.g. a task's
    /// `contribute 0x…`), oldest first.
    pub fn transactions_about(&self, subject: &str) -> Result<Vec<TxEntry>, JournalError> {
        self.select_transactions("WHERE label LIKE '% ' || ?1", [subject])
    }

    /// Every journaled transaction, oldest first.
    pub fn transactions(&self) -> Result<Vec<TxEntry>, JournalError> {
        self.select_transactions("", [])
    }

    /// The transactions whose entry changed at or after `since_unix_s` (those a reorg can
    /// still touch), oldest first.
    pub fn transactions_since(&self, since_unix_s: i64) -> Result<Vec<TxEntry>, JournalError> {
        self.select_transactions("WHERE updated_at >= ?1", [since_unix_s])
    }

    fn select_transactions<P: rusqlite::Params>(
        &self,
        filter: &str,
        params: P,
    ) -> Result<Vec<TxEntry>, JournalError> {
        let sql = format!(
            "SELECT id, sender, nonce, label, hash, state FROM transactions {filter} ORDER BY id"
        );
        let mut statement = self.connection.prepare(&sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params, |row| {
                Ok(TxEntry {
                    id: row.get(0)?,
                    sender: row.get(1)?,
                    nonce: row.get::<_, i64>(2)? as u64,
                    label: row.get(3)?,
                    hash: row.get(4)?,
                    state: row.get(5)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Keeps a deal's fixed facts, read once from the chain when the deal is taken.
    pub fn put_deal(
        &self,
        deal: DealId,
        facts: &crate::poco::DealFacts,
    ) -> Result<(), JournalError> {
        let text = serde_json::to_string(facts).expect("deal facts serialize");
        self.connection
            .execute(
                "INSERT OR REPLACE INTO deals (deal, facts) VALUES (?1, ?2)",
                rusqlite::params![deal.to_string(), text],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// A deal's journaled facts (`None` when never journaled, or written by another version).
    pub fn deal(&self, deal: DealId) -> Result<Option<crate::poco::DealFacts>, JournalError> {
        let text: Option<String> = self
            .connection
            .query_row(
                "SELECT facts FROM deals WHERE deal = ?1",
                [deal.to_string()],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Forgets a deal's facts (it vanished in a reorg: if it comes back, it is read again).
    pub fn forget_deal(&self, deal: DealId) -> Result<(), JournalError> {
        self.connection
            .execute("DELETE FROM deals WHERE deal = ?1", [deal.to_string()])
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Keeps a task's energy receipt (JSON), replacing an earlier one.
    pub fn put_receipt(&self, task: TaskId, receipt: &str) -> Result<(), JournalError> {
        self.connection
            .execute(
                "INSERT OR REPLACE INTO energy_receipts (task, receipt) VALUES (?1, ?2)",
                rusqlite::params![task.to_string(), receipt],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// A task's energy receipt (JSON), if it has one.
    pub fn receipt(&self, task: TaskId) -> Result<Option<String>, JournalError> {
        use rusqlite::OptionalExtension;
        self.connection
            .query_row(
                "SELECT receipt FROM energy_receipts WHERE task = ?1",
                [task.to_string()],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// The log watcher's saved cursor (none on a fresh journal, or one written before cursors
    /// carried their block's hash).
    pub fn cursor(&self) -> Result<Option<crate::chain::watcher::Cursor>, JournalError> {
        let block = self.get(CURSOR_BLOCK)?.and_then(|v| v.parse().ok());
        let hash = self.get(CURSOR_HASH)?.and_then(|v| v.parse().ok());
        Ok(block
            .zip(hash)
            .map(|(block, hash)| crate::chain::watcher::Cursor { block, hash }))
    }

    /// Saves the log watcher's cursor (both values in one transaction).
    pub fn set_cursor(&self, cursor: crate::chain::watcher::Cursor) -> Result<(), JournalError> {
        self.connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.error(e))?;
        let written = self
            .set(CURSOR_BLOCK, &cursor.block.to_string())
            .and_then(|()| self.set(CURSOR_HASH, &cursor.hash.to_string()));
        let end = if written.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        self.connection
            .execute_batch(end)
            .map_err(|e| self.error(e))?;
        written
    }

    /// Adds a presigned order to the index (unless it is there already). Returns whether it is
    /// new.
    pub fn put_order(&self, order: &IndexedOrder) -> Result<bool, JournalError> {
        let (asset, body) = match &order.order {
            Some(o) => (Some(o.asset().to_string()), Some(o.encode())),
            None => (None, None),
        };
        self.connection
            .execute(
                "INSERT OR IGNORE INTO orders (hash, kind, block, tx, asset, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    order.hash.to_string(),
                    order.kind.name(),
                    order.block as i64,
                    order.tx.to_string(),
                    asset,
                    body
                ],
            )
            .map(|n| n > 0)
            .map_err(|e| self.error(e))
    }

    /// Whether the index knows the order `hash` (readable or not).
    pub fn knows_order(&self, hash: OrderHash) -> Result<bool, JournalError> {
        self.connection
            .query_row(
                "SELECT 1 FROM orders WHERE hash = ?1",
                [hash.to_string()],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| self.error(e))
    }

    /// An indexed order by its hash.
    pub fn order(&self, hash: OrderHash) -> Result<Option<IndexedOrder>, JournalError> {
        Ok(self
            .select_orders("WHERE hash = ?1", params![hash.to_string()])?
            .pop())
    }

    /// The indexed orders of `kind` for `asset` (the app, dataset or workerpool they offer, or
    /// the app a request asks for), oldest first.
    pub fn orders_for(
        &self,
        kind: crate::chain::presigns::OrderKind,
        asset: alloy::primitives::Address,
    ) -> Result<Vec<IndexedOrder>, JournalError> {
        self.select_orders(
            "WHERE kind = ?1 AND asset = ?2",
            params![kind.name(), asset.to_string()],
        )
    }

    /// Forgets the orders presigned above `block` (a reorg went back to it; what is still on
    /// the new branch is read again).
    pub fn forget_orders_after(&self, block: u64) -> Result<usize, JournalError> {
        self.connection
            .execute("DELETE FROM orders WHERE block > ?1", [block as i64])
            .map_err(|e| self.error(e))
    }

    /// How many orders the index holds.
    pub fn order_count(&self) -> Result<u64, JournalError> {
        self.connection
            .query_row("SELECT COUNT(*) FROM orders", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.error(e))
    }

    fn select_orders<P: rusqlite::Params>(
        &self,
        filter: &str,
        params: P,
    ) -> Result<Vec<IndexedOrder>, JournalError> {
        let sql = format!(
            "SELECT hash, kind, block, tx, body FROM orders {filter} ORDER BY block, rowid"
        );
        let mut statement = self.connection.prepare(&sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params, |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Option<Vec<u8>>>(4)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        let mut orders = Vec::new();
        for row in rows {
            let (hash, kind, block, tx, body) = row.map_err(|e| self.error(e))?;
            let kind = crate::chain::presigns::OrderKind::parse(&kind)
                .ok_or_else(|| self.error(format!("unknown order kind {kind}")))?;
            orders.push(IndexedOrder {
                hash: OrderHash::from_str(&hash).map_err(|e| self.error(e))?,
                kind,
                block: block.max(0) as u64,
                tx: B256::from_str(&tx).map_err(|e| self.error(e))?,
                order: body.and_then(|b| crate::chain::presigns::PresignedOrder::decode(kind, &b)),
            });
        }
        Ok(orders)
    }

    /// A stored value.
    pub fn get(&self, key: &str) -> Result<Option<String>, JournalError> {
        self.connection
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Stores a value.
    pub fn set(&self, key: &str, value: &str) -> Result<(), JournalError> {
        self.connection
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// Removes a value.
    pub fn unset(&self, key: &str) -> Result<(), JournalError> {
        self.connection
            .execute("DELETE FROM meta WHERE key = ?1", [key])
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// Records a request order seen at `block`, unless already known.
    pub fn add_request(&self, hash: OrderHash, block: u64) -> Result<bool, JournalError> {
        self.connection
            .execute(
                "INSERT OR IGNORE INTO requests (hash, decision, detail, seen_block) VALUES (?1, 'pending', NULL, ?2)",
                params![hash.to_string(), block as i64],
            )
            .map(|n| n > 0)
            .map_err(|e| self.error(e))
    }

    /// Records a decision about a request order.
    pub fn decide_request(
        &self,
        hash: OrderHash,
        decision: &RequestDecision,
    ) -> Result<(), JournalError> {
        let (kind, detail) = match decision {
            RequestDecision::Pending => ("pending", None),
            RequestDecision::Matched(deal) => ("matched", Some(deal.to_string())),
            RequestDecision::PartlyMatched(deal) => ("pending", Some(deal.to_string())),
            RequestDecision::Refused(reason) => ("refused", Some(reason.clone())),
            RequestDecision::Deferred(reason) => ("pending", Some(reason.clone())),
        };
        if let RequestDecision::Matched(deal) | RequestDecision::PartlyMatched(deal) = decision {
            self.connection
                .execute(
                    "INSERT OR IGNORE INTO request_deals (hash, deal) VALUES (?1, ?2)",
                    params![hash.to_string(), deal.to_string()],
                )
                .map_err(|e| self.error(e))?;
        }
        self.connection
            .execute(
                "UPDATE requests SET decision = ?2, detail = ?3 WHERE hash = ?1",
                params![hash.to_string(), kind, detail],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// The request orders still to decide, oldest first.
    pub fn pending_requests(&self) -> Result<Vec<OrderHash>, JournalError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT hash FROM requests WHERE decision = 'pending' ORDER BY seen_block, hash",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.error(e))?;
        let mut hashes = Vec::new();
        for row in rows {
            let text = row.map_err(|e| self.error(e))?;
            hashes.push(OrderHash::from_str(&text).map_err(|e| self.error(e))?);
        }
        Ok(hashes)
    }

    /// Forgets one deal of a request (it vanished in a reorg).
    pub fn forget_request_deal(&self, hash: OrderHash, deal: DealId) -> Result<(), JournalError> {
        self.connection
            .execute(
                "DELETE FROM request_deals WHERE hash = ?1 AND deal = ?2",
                params![hash.to_string(), deal.to_string()],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// Every deal a request order was matched into (a request with volume left may have
    /// several), with its request.
    pub fn matched_requests(&self) -> Result<Vec<(OrderHash, DealId)>, JournalError> {
        let mut statement = self
            .connection
            .prepare("SELECT hash, deal FROM request_deals ORDER BY rowid")
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.error(e))?;
        let mut matched = Vec::new();
        for row in rows {
            let (hash, deal) = row.map_err(|e| self.error(e))?;
            matched.push((
                OrderHash::from_str(&hash).map_err(|e| self.error(e))?,
                DealId::from_str(&deal).map_err(|e| self.error(e))?,
            ));
        }
        Ok(matched)
    }

    /// The decision about a request order, if it is known.
    pub fn request(&self, hash: OrderHash) -> Result<Option<RequestDecision>, JournalError> {
        let row: Option<(String, Option<String>)> = self
            .connection
            .query_row(
                "SELECT decision, detail FROM requests WHERE hash = ?1",
                [hash.to_string()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        Ok(row.map(|(kind, detail)| match kind.as_str() {
            "matched" => detail
                .and_then(|d| DealId::from_str(&d).ok())
                .map(RequestDecision::Matched)
                .unwrap_or(RequestDecision::Pending),
            "refused" => RequestDecision::Refused(detail.unwrap_or_default()),
            _ => match detail {
                // A pending request keeps the reason it was deferred for (a deal id is the
                // detail of one matched in part).
                Some(reason) if !reason.starts_with("0x") => RequestDecision::Deferred(reason),
                _ => RequestDecision::Pending,
            },
        }))
    }

    /// Records a task of one of our deals, unless already known. Returns whether it is new.
    pub fn add_task(&self, task: TaskId, deal: DealId, index: u64) -> Result<bool, JournalError> {
        let step = serde_json::to_string(&TaskStep::New).expect("serializes");
        self.connection
            .execute(
                "INSERT OR IGNORE INTO tasks (task, deal, idx, step, updated_at) VALUES (?1, ?2, ?3, ?4, strftime('%s','now'))",
                params![task.to_string(), deal.to_string(), index as i64, step],
            )
            .map(|n| n > 0)
            .map_err(|e| self.error(e))
    }

    /// Moves a task to `step` (durably, before the caller goes on).
    pub fn set_step(&self, task: TaskId, step: &TaskStep) -> Result<(), JournalError> {
        let text = serde_json::to_string(step).expect("serializes");
        self.connection
            .execute(
                "UPDATE tasks SET step = ?2, updated_at = strftime('%s','now') WHERE task = ?1",
                params![task.to_string(), text],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// Every task, or only those not final. The filter runs in SQLite: the journal keeps every
    /// task the node ever took, and the node asks for the unfinished ones every round.
    pub fn tasks(&self, unfinished_only: bool) -> Result<Vec<TaskRecord>, JournalError> {
        let filter = if unfinished_only {
            "WHERE json_extract(step, '$.step') NOT IN ('completed', 'failed', 'claimed')"
        } else {
            ""
        };
        self.select_tasks(filter, [])
    }

    /// The tasks a chain reorganisation can still touch: the unfinished ones, and those whose
    /// step changed at or after `since_unix_s`.
    pub fn tasks_touched_since(&self, since_unix_s: i64) -> Result<Vec<TaskRecord>, JournalError> {
        self.select_tasks(
            "WHERE updated_at >= ?1 \
             OR json_extract(step, '$.step') NOT IN ('completed', 'failed', 'claimed')",
            [since_unix_s],
        )
    }

    /// The tasks at one step (`TaskStep::name`), oldest first.
    pub fn tasks_at(&self, step: &str) -> Result<Vec<TaskRecord>, JournalError> {
        self.select_tasks("WHERE json_extract(step, '$.step') = ?1", [step])
    }

    /// One task.
    pub fn task(&self, task: TaskId) -> Result<Option<TaskRecord>, JournalError> {
        Ok(self
            .select_tasks("WHERE task = ?1", [task.to_string()])?
            .pop())
    }

    /// How many tasks are at each step, for status and metrics.
    pub fn task_counts(&self) -> Result<std::collections::BTreeMap<String, u64>, JournalError> {
        let mut statement = self
            .connection
            .prepare("SELECT json_extract(step, '$.step'), COUNT(*) FROM tasks GROUP BY 1")
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    row.get::<_, i64>(1)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        let mut counts = std::collections::BTreeMap::new();
        for row in rows {
            let (step, count) = row.map_err(|e| self.error(e))?;
            counts.insert(step, count.max(0) as u64);
        }
        Ok(counts)
    }

    fn select_tasks<P: rusqlite::Params>(
        &self,
        filter: &str,
        params: P,
    ) -> Result<Vec<TaskRecord>, JournalError> {
        let sql = format!("SELECT task, deal, idx, step FROM tasks {filter} ORDER BY rowid");
        let mut statement = self.connection.prepare(&sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params, |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        let mut records = Vec::new();
        for row in rows {
            let (task, deal, index, step) = row.map_err(|e| self.error(e))?;
            records.push(TaskRecord {
                task: TaskId::from_str(&task).map_err(|e| self.error(e))?,
                deal: DealId::from_str(&deal).map_err(|e| self.error(e))?,
                index: index as u64,
                step: serde_json::from_str(&step).map_err(|e| self.error(e))?,
            });
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_journaled_as_finishing_by_an_earlier_build_reads_as_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
        let task = TaskId(B256::with_last_byte(9));
        journal.add_task(task, DealId(B256::ZERO), 0).unwrap();
        let old = format!(
            r#"{{"step":"finishing","digest":"{}","output_dir":"/o","cid":"Qm"}}"#,
            B256::with_last_byte(1)
        );
        journal
            .connection
            .execute(
                "UPDATE tasks SET step = ?2 WHERE task = ?1",
                rusqlite::params![task.to_string(), old],
            )
            .unwrap();
        let record = journal.task(task).unwrap().unwrap();
        assert_eq!(
            record.step,
            TaskStep::Uploaded {
                digest: B256::with_last_byte(1),
                output_dir: "/o".into(),
                cid: "Qm".into(),
            }
        );
        assert_eq!(journal.tasks(true).unwrap().len(), 1, "still unfinished");
    }

    #[test]
    fn a_deals_facts_are_kept_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let deal = DealId(B256::with_last_byte(3));
        let facts = crate::poco::DealFacts {
            app: alloy::primitives::Address::repeat_byte(1),
            dataset: alloy::primitives::Address::ZERO,
            workerpool: alloy::primitives::Address::repeat_byte(2),
            requester: alloy::primitives::Address::repeat_byte(3),
            beneficiary: alloy::primitives::Address::repeat_byte(3),
            callback: alloy::primitives::Address::ZERO,
            params: "{}".into(),
            tag: B256::ZERO,
            trust: 1,
            category: 0,
            start_time: 1_000,
            bot_first: 0,
            bot_size: 2,
            app_price: alloy::primitives::U256::from(1),
            dataset_price: alloy::primitives::U256::ZERO,
            workerpool_price: alloy::primitives::U256::from(2),
            worker_stake: alloy::primitives::U256::ZERO,
        };
        Journal::open(&path)
            .unwrap()
            .put_deal(deal, &facts)
            .unwrap();
        let reopened = Journal::open(&path).unwrap();
        assert_eq!(reopened.deal(deal).unwrap(), Some(facts));
        reopened.forget_deal(deal).unwrap();
        assert_eq!(reopened.deal(deal).unwrap(), None);
    }

    #[test]
    fn tasks_and_their_steps_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let task = TaskId(B256::repeat_byte(1));
        let deal = DealId(B256::repeat_byte(2));
        {
            let store = Journal::open(&path).unwrap();
            assert!(store.add_task(task, deal, 0).unwrap());
            assert!(!store.add_task(task, deal, 0).unwrap(), "idempotent");
            store
                .set_step(
                    task,
                    &TaskStep::Uploaded {
                        digest: B256::repeat_byte(3),
                        output_dir: "/x".into(),
                        cid: "Qm".into(),
                    },
                )
                .unwrap();
            store.set("cursor", "42").unwrap();
        }
        let store = Journal::open(&path).unwrap();
        let record = store.task(task).unwrap().unwrap();
        assert_eq!(record.step.name(), "uploaded");
        assert_eq!(store.tasks(true).unwrap().len(), 1);
        store.set_step(task, &TaskStep::Completed).unwrap();
        assert!(store.tasks(true).unwrap().is_empty());
        assert_eq!(store.get("cursor").unwrap().as_deref(), Some("42"));
    }

    #[test]
    fn the_sql_filters_agree_with_the_steps_own_names_and_finality() {
        let dir = tempfile::tempdir().unwrap();
        let store = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
        let steps = [
            TaskStep::New,
            TaskStep::Initialized,
            TaskStep::Computed {
                digest: B256::ZERO,
                output_dir: "/o".into(),
            },
            TaskStep::Uploaded {
                digest: B256::ZERO,
                output_dir: "/o".into(),
                cid: String::new(),
            },
            TaskStep::Completed,
            TaskStep::Failed { reason: "x".into() },
            TaskStep::Claimed { reason: "y".into() },
        ];
        for (i, step) in steps.iter().enumerate() {
            let task = TaskId(B256::with_last_byte(i as u8));
            store.add_task(task, DealId(B256::ZERO), i as u64).unwrap();
            store.set_step(task, step).unwrap();
        }
        let unfinished: Vec<&str> = store
            .tasks(true)
            .unwrap()
            .iter()
            .map(|r| r.step.name())
            .collect();
        let expected: Vec<&str> = steps
            .iter()
            .filter(|s| !s.is_final())
            .map(TaskStep::name)
            .collect();
        assert_eq!(unfinished, expected);
        assert_eq!(store.tasks(false).unwrap().len(), steps.len());
        let counts = store.task_counts().unwrap();
        for step in &steps {
            assert_eq!(counts[step.name()], 1, "{counts:?}");
            let at = store.tasks_at(step.name()).unwrap();
            assert_eq!(at.len(), 1);
            assert_eq!(&at[0].step, step);
        }
        // All were written just now: a reorg could touch every one; in the future, none but
        // the unfinished.
        assert_eq!(store.tasks_touched_since(0).unwrap().len(), steps.len());
        let later = i64::MAX;
        let touched: Vec<&str> = store
            .tasks_touched_since(later)
            .unwrap()
            .iter()
            .map(|r| r.step.name())
            .collect();
        assert_eq!(touched, expected);
        let one = TaskId(B256::with_last_byte(2));
        assert_eq!(store.task(one).unwrap().unwrap().step.name(), "computed");
        assert!(store.task(TaskId(B256::repeat_byte(9))).unwrap().is_none());
    }

    #[test]
    fn a_transaction_keeps_every_hash_it_was_sent_under() {
        let dir = tempfile::tempdir().unwrap();
        let store = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let (a, b) = (B256::repeat_byte(0xaa), B256::repeat_byte(0xbb));
        let id = store
            .begin_transaction(alloy::primitives::Address::ZERO, 7, "contribute 0x1")
            .unwrap();
        store.update_transaction(id, Some(a), "sending").unwrap();
        store.update_transaction(id, Some(a), "sent").unwrap();
        store.update_transaction(id, Some(b), "replaced").unwrap();
        store.update_transaction(id, None, "timed-out").unwrap();
        let entry = &store.transactions().unwrap()[0];
        assert_eq!(entry.hash.as_deref(), Some(format!("{a},{b}").as_str()));
        assert_eq!((entry.nonce, entry.state.as_str()), (7, "timed-out"));
    }

    #[test]
    fn a_partly_matched_request_stays_pending_and_keeps_each_deal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let hash = OrderHash(B256::repeat_byte(9));
        let (first, second) = (DealId(B256::repeat_byte(1)), DealId(B256::repeat_byte(2)));
        store.add_request(hash, 10).unwrap();
        store
            .decide_request(hash, &RequestDecision::PartlyMatched(first))
            .unwrap();
        assert_eq!(store.pending_requests().unwrap(), [hash], "volume is left");
        store
            .decide_request(hash, &RequestDecision::Matched(second))
            .unwrap();
        assert!(store.pending_requests().unwrap().is_empty());
        assert_eq!(
            store.matched_requests().unwrap(),
            [(hash, first), (hash, second)]
        );
        store.forget_request_deal(hash, first).unwrap();
        assert_eq!(store.matched_requests().unwrap(), [(hash, second)]);
    }

    #[test]
    fn requests_are_decided_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let hash = OrderHash(B256::repeat_byte(9));
        assert!(store.add_request(hash, 10).unwrap());
        assert!(!store.add_request(hash, 11).unwrap());
        assert_eq!(store.pending_requests().unwrap(), [hash]);
        store
            .decide_request(hash, &RequestDecision::Refused("tee".into()))
            .unwrap();
        assert!(store.pending_requests().unwrap().is_empty());
        assert_eq!(
            store.request(hash).unwrap(),
            Some(RequestDecision::Refused("tee".into()))
        );
    }
}

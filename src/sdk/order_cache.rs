//! What this machine presigned, and from which block: a small file (`~/.pew/orders.json`) that
//! lets `pew request show`, `request cancel` and `request submit --wait` find an order they
//! made without scanning a public chain's history. An order made elsewhere needs
//! `--from-block` (or a scan no wider than `chain.max_scan_blocks`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chain::presigns::OrderKind;
use crate::poco::OrderHash;

/// The most orders remembered; the oldest go first.
const MAX_ENTRIES: usize = 10_000;

/// One presigned order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its kind.
    pub kind: OrderKind,
    /// A block at or before its presign event (where a scan for it may start).
    pub from_block: u64,
    /// When it was recorded (unix seconds), to drop the oldest.
    pub at_s: u64,
}

/// The cache file of one machine; entries are kept per chain (`chain id:hub`).
#[derive(Debug, Clone)]
pub struct OrderCache {
    path: PathBuf,
    chain: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    chains: BTreeMap<String, BTreeMap<String, Entry>>,
}

impl OrderCache {
    /// The cache at `path` for the chain `chain_id` with hub `hub`.
    pub fn new(path: &Path, chain_id: u64, hub: alloy::primitives::Address) -> Self {
        Self {
            path: path.to_path_buf(),
            chain: format!("{chain_id}:{hub}"),
        }
    }

    /// `~/.pew/orders.json`, beside the default key file.
    pub fn default_path() -> PathBuf {
        crate::wallet::default_keystore_path().with_file_name("orders.json")
    }

    fn load(&self) -> File {
        crate::files::read_text(&self.path, crate::files::limit::STATE, "the order cache")
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Where a scan for `hash` may start, if this machine presigned it.
    pub fn from_block(&self, hash: OrderHash) -> Option<u64> {
        self.load()
            .chains
            .get(&self.chain)?
            .get(&hash.to_string())
            .map(|e| e.from_block)
    }

    /// Remembers that `hash` was presigned at or after `from_block`. A cache that cannot be
    /// written is only a warning: the order is on chain whatever happens here.
    pub fn record(&self, hash: OrderHash, kind: OrderKind, from_block: u64) {
        let mut file = self.load();
        let entries = file.chains.entry(self.chain.clone()).or_default();
        entries.insert(
            hash.to_string(),
            Entry {
                kind,
                from_block,
                at_s: crate::clock::unix_now() as u64,
            },
        );
        while entries.len() > MAX_ENTRIES {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.at_s)
                .map(|(h, _)| h.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        let written = (|| -> std::io::Result<()> {
            if let Some(parent) = self.path.parent() {
                crate::files::private_dir(parent)?;
            }
            let temporary = self.path.with_extension("json.tmp");
            std::fs::write(&temporary, serde_json::to_vec(&file)?)?;
            std::fs::rename(&temporary, &self.path)
        })();
        if let Err(error) = written {
            tracing::warn!(file = %self.path.display(), %error, "the order cache was not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, B256};

    #[test]
    fn orders_are_remembered_per_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.json");
        let arbitrum = OrderCache::new(&path, 42161, Address::repeat_byte(1));
        let devnet = OrderCache::new(&path, 31337, Address::repeat_byte(1));
        let hash = OrderHash(B256::repeat_byte(5));
        assert_eq!(arbitrum.from_block(hash), None);
        arbitrum.record(hash, OrderKind::Request, 400_000_000);
        assert_eq!(arbitrum.from_block(hash), Some(400_000_000));
        assert_eq!(devnet.from_block(hash), None, "another chain");
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(
            arbitrum.from_block(hash),
            None,
            "a broken cache is an empty one"
        );
        arbitrum.record(hash, OrderKind::Request, 7);
        assert_eq!(arbitrum.from_block(hash), Some(7));
    }
}

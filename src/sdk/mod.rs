//! The requester's and asset owner's side of iExec: accounts, assets, orders, requests, deals,
//! tasks and results, built on `poco` (pure protocol) and `chain` (RPC and the one sender).
//! Every check that can be made before a transaction is made here, so a mistake costs no gas
//! and comes back as a sentence.

pub mod account;
pub mod assets;
pub mod order_cache;
pub mod orders;
pub mod requests;
pub mod tasks;

use alloy::primitives::Address;

use crate::chain::client::Chain;
use crate::chain::poco::{Poco, PocoError};
use crate::chain::sender::TxSender;

/// Why an SDK operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// A PoCo call failed or was refused.
    #[error(transparent)]
    Poco(#[from] PocoError),
    /// The operation signs, but no wallet was given.
    #[error(
        "this command signs a transaction: give a wallet with --keystore (see `pew wallet create`)"
    )]
    NoWallet,
    /// A check made before any transaction failed.
    #[error("{0}")]
    Refused(String),
    /// Something looked up does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A read from the chain failed.
    #[error("reading {what}: {reason}")]
    Read {
        /// What was read.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A result could not be fetched or verified.
    #[error("{0}")]
    Result(String),
    /// Finding something would scan more blocks than allowed.
    #[error(
        "finding {what} would scan {blocks} blocks (from block {from}), more than chain.max_scan_blocks = {max}: give --from-block with a block at or before the one it was presigned in (printed when it was published), or raise chain.max_scan_blocks"
    )]
    ScanTooWide {
        /// What was looked for.
        what: String,
        /// The blocks the scan would read.
        blocks: u64,
        /// Where it would start.
        from: u64,
        /// The limit.
        max: u64,
    },
}

impl SdkError {
    pub(crate) fn read(what: impl Into<String>) -> impl FnOnce(alloy::contract::Error) -> SdkError {
        let what = what.into();
        move |e| SdkError::Read {
            what,
            reason: e.to_string(),
        }
    }
}

/// A connection to one chain, with an optional signing wallet.
pub struct Sdk {
    /// The verified chain.
    pub chain: Chain,
    sender: Option<TxSender>,
    /// First block scanned when looking for orders and deals in logs.
    pub log_from_block: u64,
    /// Widest block range asked in one `eth_getLogs`.
    pub log_chunk: u64,
    /// The widest log scan a lookup may make before it asks to be narrowed.
    pub max_scan_blocks: u64,
    /// Where lookups start scanning (`--from-block`), over the order cache and the floor.
    pub scan_from: Option<u64>,
    /// What this machine presigned, and from which block.
    pub order_cache: Option<order_cache::OrderCache>,
}

impl Sdk {
    /// Journals every transaction the sender sends (the node's journal).
    pub fn set_tx_log(&mut self, log: std::sync::Arc<dyn crate::chain::sender::TxLog>) {
        if let Some(sender) = self.sender.as_mut() {
            sender.set_log(log);
        }
    }

    /// An SDK on `chain` set up as `settings` say (scan floor, chunk, scan bound, fee cap),
    /// signing with `signer` when given. The one constructor the command line and the node use.
    pub fn configured(
        chain: Chain,
        signer: Option<alloy::signers::local::PrivateKeySigner>,
        settings: &crate::config::Settings,
    ) -> Self {
        let sender = signer.map(|signer| {
            let policy = send_policy(settings, &chain.target);
            chain.sender(signer, policy)
        });
        let floor = chain.target.scan_floor(settings.chain.log_from_block);
        let max_scan = match settings.chain.max_scan_blocks {
            0 => chain.target.blocks_per_day,
            blocks => blocks,
        };
        let mut sdk = Sdk::new(chain, sender);
        sdk.log_from_block = floor;
        sdk.log_chunk = settings.chain.log_chunk_blocks.max(1);
        sdk.max_scan_blocks = max_scan;
        sdk
    }

    /// An SDK on `chain`, signing with `sender` when given.
    pub fn new(chain: Chain, sender: Option<TxSender>) -> Self {
        Self {
            chain,
            sender,
            log_from_block: 0,
            log_chunk: 10_000,
            max_scan_blocks: 86_400,
            scan_from: None,
            order_cache: None,
        }
    }

    /// The latest block.
    pub async fn latest_block(&self) -> Result<u64, SdkError> {
        use alloy::providers::Provider;
        self.chain
            .provider
            .get_block_number()
            .await
            .map_err(|e| SdkError::Read {
                what: "the latest block".into(),
                reason: crate::text::brief(&e),
            })
    }

    /// A block at or before the presign of `hash`, when one is known: `--from-block`, else the
    /// block this machine recorded when it presigned it.
    pub fn known_start(&self, hash: crate::poco::OrderHash) -> Option<u64> {
        self.scan_from
            .or_else(|| self.order_cache.as_ref().and_then(|c| c.from_block(hash)))
            .map(|block| block.max(self.log_from_block))
    }

    /// Refuses a scan of `from..=to` wider than `max_scan_blocks`, saying how to narrow it.
    pub fn check_scan(&self, what: &str, from: u64, to: u64) -> Result<(), SdkError> {
        let blocks = to.saturating_sub(from).saturating_add(1);
        if blocks > self.max_scan_blocks {
            return Err(SdkError::ScanTooWide {
                what: what.to_string(),
                blocks,
                from,
                max: self.max_scan_blocks,
            });
        }
        Ok(())
    }

    /// Remembers an order this machine presigns (see [`order_cache`]); `from_block` is a block
    /// read before sending it.
    pub(crate) fn remember(
        &self,
        hash: crate::poco::OrderHash,
        kind: crate::chain::presigns::OrderKind,
        from_block: Option<u64>,
    ) {
        if let (Some(cache), Some(block)) = (&self.order_cache, from_block) {
            cache.record(hash, kind, block);
        }
    }

    /// The signing account, if any.
    pub fn address(&self) -> Option<Address> {
        self.sender.as_ref().map(TxSender::address)
    }

    /// The sender, or the "give a wallet" error.
    pub fn sender(&self) -> Result<&TxSender, SdkError> {
        self.sender.as_ref().ok_or(SdkError::NoWallet)
    }

    /// PoCo for reads.
    pub fn poco(&self) -> Poco<'_> {
        Poco::reader(&self.chain)
    }

    /// The hub's logs with topic0 `topic0` from block `from` (the configured first block when
    /// `None`) to `to` (the latest block when `None`), in bounded ranges.
    pub async fn hub_logs(
        &self,
        what: &str,
        topic0: alloy::primitives::B256,
        from: Option<u64>,
        to: Option<u64>,
    ) -> Result<Vec<alloy::rpc::types::Log>, SdkError> {
        use alloy::providers::Provider;
        let to = match to {
            Some(block) => block,
            None => self
                .chain
                .provider
                .get_block_number()
                .await
                .map_err(|e| SdkError::Read {
                    what: "the latest block".into(),
                    reason: e.to_string(),
                })?,
        };
        crate::chain::logs::scan(
            &self.chain.provider,
            self.chain.target.hub,
            &[topic0],
            None,
            from.unwrap_or(self.log_from_block),
            to,
            self.log_chunk,
        )
        .await
        .map_err(|reason| SdkError::Read {
            what: what.to_string(),
            reason,
        })
    }

    /// PoCo for writes by the wallet.
    pub fn poco_writer(&self) -> Result<Poco<'_>, SdkError> {
        Ok(Poco::writer(&self.chain, self.sender()?))
    }
}

/// The transaction policy from configuration: the fee cap (`chain.max_fee_per_gas_gwei`, else
/// the chain's own default), confirmations, and when a transaction counts as stuck.
pub fn send_policy(
    settings: &crate::config::Settings,
    target: &crate::chain::client::ChainTarget,
) -> crate::chain::sender::SendPolicy {
    let gwei = match settings.chain.max_fee_per_gas_gwei {
        cap if cap > 0.0 && cap.is_finite() => cap,
        _ => target.default_fee_cap_gwei(),
    };
    crate::chain::sender::SendPolicy {
        max_fee_per_gas_cap: (gwei.min(1e6) * 1e9) as u128,
        confirmations: settings.chain.confirmations,
        stuck_after_blocks: settings.chain.stuck_after_blocks.max(1),
        ..crate::chain::sender::SendPolicy::default()
    }
}

//! What `pew run` checks before taking work, each with the fix: the workerpool is set and
//! owned by the key, there is ETH for gas and RLC to back the bid, and the RPC node, Docker and
//! IPFS answer. Fatal problems stop the start; the ones that time can fix are waited for.

use std::sync::Mutex;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;

use super::journal::{Journal, lock};
use crate::poco::Nrlc;
use crate::sdk::Sdk;
use crate::sdk::account::Balances;
use crate::storage::ipfs::IpfsClient;

/// The outcome of the checks that can be waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// Ready.
    Ready,
    /// Not yet, with what to do.
    Wait(String),
}

/// Checks that cannot be fixed by waiting: the pool exists and `me` owns it.
pub async fn check_pool(sdk: &Sdk, pool: Address, me: Address) -> anyhow::Result<()> {
    let info = sdk
        .pool(pool)
        .await
        .map_err(|e| anyhow::anyhow!("{e}: create one with `pew pool create` and set node.pool"))?;
    if info.owner != me {
        return Err(anyhow::anyhow!(
            "workerpool {pool} is owned by {}, not by this node's key {me}: run the node with the owner's key file (--keystore)",
            info.owner
        ));
    }
    Ok(())
}

/// Checks that waiting can fix: gas, stake, Docker, IPFS.
pub async fn preflight(
    sdk: &Sdk,
    ipfs: &IpfsClient,
    price: Nrlc,
    volume: u64,
    engine_socket: &str,
) -> Preflight {
    let me = match sdk.sender() {
        Ok(s) => s.address(),
        Err(e) => return Preflight::Wait(e.to_string()),
    };
    let balances = match sdk.balances(me).await {
        Ok(b) => b,
        Err(e) => return Preflight::Wait(format!("the RPC node does not answer ({e}); waiting")),
    };
    if let Some(problem) = gas_problem(&balances) {
        return Preflight::Wait(format!("{problem}; waiting"));
    }
    if let Err(problem) = stake_check(&balances, price, volume) {
        return Preflight::Wait(format!("{problem}; waiting"));
    }
    if let Err(e) = crate::executor::image::connect(engine_socket).await {
        return Preflight::Wait(format!("{e}; waiting"));
    }
    if let Err(e) = ipfs.id().await {
        return Preflight::Wait(format!("{e}; waiting"));
    }
    Preflight::Ready
}

/// Why the account cannot pay for gas, if it cannot.
pub fn gas_problem(balances: &Balances) -> Option<String> {
    balances.eth_wei.is_zero().then(|| {
        format!(
            "{} has no ETH to pay for gas: send it some",
            balances.address
        )
    })
}

/// The stake a bid of `volume` tasks at `price` locks, or why the account does not hold it.
pub fn stake_check(balances: &Balances, price: Nrlc, volume: u64) -> Result<U256, String> {
    let needed = super::owner_stake_per_task(price) * U256::from(volume);
    if balances.stake_nrlc < needed {
        return Err(format!(
            "the bid locks {} of stake but {} has {} in its iExec account: run `pew account deposit`",
            Nrlc(needed),
            balances.address,
            Nrlc(balances.stake_nrlc)
        ));
    }
    Ok(needed)
}

/// Runs [`preflight`] until ready, logging each distinct problem once.
pub async fn wait_ready(
    sdk: &Sdk,
    ipfs: &IpfsClient,
    price: Nrlc,
    volume: u64,
    engine_socket: &str,
    shutdown: &super::shutdown::Shutdown,
    service: &super::systemd::ServiceManager,
) -> bool {
    let mut last = String::new();
    loop {
        service.alive();
        match preflight(sdk, ipfs, price, volume, engine_socket).await {
            Preflight::Ready => return true,
            Preflight::Wait(reason) => {
                if reason != last {
                    tracing::warn!("{reason}");
                    service.status(&format!("waiting: {reason}"));
                    last = reason;
                }
            }
        }
        if shutdown.requested() {
            return false;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// After a reorg: journaled transactions of the last day recorded as mined (or reverted) whose
/// receipt the new chain no longer has become `sent` when the node still knows them (they will
/// be mined again), else `dropped`. The journal follows the chain, not its own memory. Returns
/// how many changed.
pub async fn recheck_mined_after_reorg(
    sdk: &Sdk,
    journal: &Mutex<Journal>,
    since_unix_s: i64,
) -> anyhow::Result<usize> {
    let mut changed = 0;
    let entries = lock(journal).transactions_since(since_unix_s)?;
    for entry in entries {
        if !matches!(entry.state.as_str(), "mined" | "reverted") {
            continue;
        }
        let hashes: Vec<alloy::primitives::B256> = entry
            .hash
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter_map(|h| h.parse().ok())
            .collect();
        let mut mined = false;
        let mut pending = None;
        for &hash in &hashes {
            if sdk
                .chain
                .provider
                .get_transaction_receipt(hash)
                .await?
                .is_some()
            {
                mined = true;
                break;
            }
            if pending.is_none()
                && sdk
                    .chain
                    .provider
                    .get_transaction_by_hash(hash)
                    .await?
                    .is_some()
            {
                pending = Some(hash);
            }
        }
        if mined {
            continue;
        }
        let state = if pending.is_some() { "sent" } else { "dropped" };
        tracing::warn!(tx = %entry.label, state, "a journaled transaction vanished in a reorg");
        lock(journal).update_transaction(entry.id, pending, state)?;
        changed += 1;
    }
    // Those the new chain mined again are brought back to `mined` (or `reverted`).
    reconcile_transactions(sdk, journal).await?;
    Ok(changed)
}

/// Brings the journal's transactions that were in flight when the node last stopped (a power
/// cut) up to date from the chain: mined, reverted, or still pending. The journal is locked
/// only between the chain's answers (the sender journals through the same one).
pub async fn reconcile_transactions(sdk: &Sdk, journal: &Mutex<Journal>) -> anyhow::Result<usize> {
    let mut settled = 0;
    let entries = lock(journal).transactions()?;
    for entry in entries {
        if !matches!(
            entry.state.as_str(),
            "sending" | "sent" | "replaced" | "timed-out" | "not-sent"
        ) {
            continue;
        }
        // Any of its hashes (the original or a replacement) may be the one mined.
        let hashes = entry.hash.as_deref().unwrap_or_default().split(',');
        for hash in hashes.filter_map(|h| h.parse::<alloy::primitives::B256>().ok()) {
            if let Some(receipt) = sdk.chain.provider.get_transaction_receipt(hash).await? {
                let state = if receipt.status() {
                    "mined"
                } else {
                    "reverted"
                };
                lock(journal).update_transaction(entry.id, Some(hash), state)?;
                settled += 1;
                break;
            }
        }
    }
    Ok(settled)
}

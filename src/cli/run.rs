//! `pew run`: the node, for the workerpool in `node.pool`, until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::providers::Provider;
use anyhow::{Context, bail};

use super::context::Globals;
use crate::chain::client::parse_address;
use crate::chain::watcher::Watcher;
use crate::config::Settings;
use crate::executor::Executor;
use crate::node::{self, Node};
use crate::poco::{Category, Nrlc};
use crate::storage::ipfs::IpfsClient;
use crate::store::Store;

/// Runs the node until a stop signal.
pub async fn run(globals: &Globals, settings: &Settings) -> anyhow::Result<ExitCode> {
    if settings.node.pool.is_empty() {
        bail!(
            "no workerpool configured: create one with `pew pool create --description ...` and set node.pool (or PEW_NODE__POOL)"
        );
    }
    let pool = parse_address("node.pool", &settings.node.pool)?;
    let price: Nrlc = settings.node.price.parse().context("node.price")?;
    let category: Category = settings.node.category.parse().context("node.category")?;
    let gate = node::gate_from_settings(settings, node::now_s())?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Registered before anything else happens, so no signal finds the default action.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for SIGINT")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stop signal received");
        let _ = stop_tx.send(true);
    });

    // The RPC node may be down at boot: wait for it rather than exit.
    let mut announced = false;
    let sdk = loop {
        match globals.sdk(settings, true).await {
            Ok(sdk) => break sdk,
            Err(error) => {
                let text = format!("{error:#}");
                let transient = text.contains("does not answer");
                if !transient {
                    return Err(error);
                }
                if !announced {
                    tracing::warn!("{text}; waiting");
                    announced = true;
                }
                if *stop_rx.borrow() {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    node::startup::check_pool(&sdk, pool).await?;
    let ipfs_api = if settings.ipfs.api.is_empty() {
        sdk.chain.target.ipfs_api.clone()
    } else {
        Some(settings.ipfs.api.clone())
    }
    .context("no IPFS API configured for results: set ipfs.api (a local Kubo or an upload node)")?;
    let ipfs = IpfsClient::new(&ipfs_api, Duration::from_secs(120));
    if !node::startup::wait_ready(&sdk, &ipfs, price, settings.node.volume.max(1), &stop_rx).await {
        return Ok(ExitCode::SUCCESS);
    }
    let executor = Executor::new(&settings.executor, Some(ipfs.clone())).await?;
    let orphans = crate::executor::run::remove_orphans(executor.docker()).await;
    if orphans > 0 {
        tracing::info!(orphans, "removed app containers left by an earlier run");
    }
    let store = Store::open(&settings.node.journal)?;
    let latest = sdk.chain.provider.get_block_number().await?;
    let watcher = Watcher {
        provider: sdk.chain.provider.clone(),
        hub: sdk.chain.target.hub,
        pool,
        confirmations: settings.node.confirmations,
        reorg_depth: settings.node.reorg_depth.max(1),
        chunk: settings.chain.log_chunk_blocks.max(1),
        max_span: 50_000,
        start_block: latest.saturating_sub(settings.node.lookback_blocks),
    };
    let owner = crate::wallet::unlock(&globals.keystore_path(settings), &globals.password(false)?)?;
    let node = Arc::new(Node {
        sdk,
        owner,
        pool,
        store: Mutex::new(store),
        executor,
        ipfs,
        gate,
        settings: settings.clone(),
        price,
        category,
        running: Default::default(),
        retry_after: Default::default(),
        timings: Default::default(),
        vanished: Default::default(),
    });
    let mut stop = stop_rx.clone();
    node.run(watcher, async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

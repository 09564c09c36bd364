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
use crate::node::journal::Journal;
use crate::node::{self, Node};
use crate::poco::{Category, Nrlc};
use crate::storage::ipfs::IpfsClient;

/// Runs the node until a stop signal.
pub async fn run(globals: &Globals, settings: &Settings) -> anyhow::Result<ExitCode> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Registered before anything else happens, so no signal finds the default action.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for SIGINT")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    if settings.node.pool.is_empty() {
        bail!(
            "no workerpool configured: create one with `pew pool create --description ...` and set node.pool (or PEW_NODE__POOL)"
        );
    }
    let pool = parse_address("node.pool", &settings.node.pool)?;
    let price: Nrlc = settings.node.price.parse().context("node.price")?;
    let category: Category = settings.node.category.parse().context("node.category")?;
    // One node per state folder, key and workerpool, before anything is sent or journaled.
    let key = crate::wallet::address(&globals.keystore_path(settings))?;
    let hub = globals.target(settings)?.hub;
    let state_dir = match settings.node.journal.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut keys = vec![key];
    if !settings.node.worker_keystore.as_os_str().is_empty() {
        keys.push(crate::wallet::address(&settings.node.worker_keystore)?);
    }
    let _locks = node::lock::acquire(
        &state_dir,
        &settings.runtime_dir(),
        hub,
        &keys,
        pool,
        &settings.executor.work_dir,
    )?;
    if crate::executor::run::AppUser::parse(&settings.executor.user)
        == crate::executor::run::AppUser::Root
    {
        tracing::warn!(
            "executor.user = \"root\": apps run as root in their containers; no iExec app needs it (set executor.user = \"\")"
        );
    }
    let node::GateChoice { gate, mut energy } =
        node::gate_from_settings(settings, crate::clock::unix_now_s())?;

    let power_off = Arc::new(Mutex::new(None::<String>));
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("stop signal received");
            let _ = stop_tx.send(true);
        });
    }
    if let Some(runtime) = &energy {
        if let Some(weather) = runtime.weather_task() {
            tokio::spawn(weather);
        }
        // A low-voltage warning (or the reserve reached with a board to wake us) stops the
        // node like a signal does: bid closed, tasks parked in the journal; then power off.
        let gate = runtime.gate.clone();
        let power_off = power_off.clone();
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Some(reason) = crate::admission::AdmissionGate::power_off_reason(&*gate) {
                    tracing::warn!(%reason, "energy: stopping the node to power off");
                    *power_off.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                    let _ = stop_tx.send(true);
                    break;
                }
            }
        });
    }

    // Whatever ends the node (a stop while it still waits for the RPC node, Docker, IPFS or
    // gas, a normal stop, or an error), a power-off the energy module asked for still happens.
    // The node's own start-up checks passed (settings, key file, locks, energy source): systemd
    // hears READY now, and from here on STATUS says what the node waits for (the RPC node,
    // the engine, IPFS, gas), while the watchdog is fed as long as the node is alive. A start
    // that waited for outside services would block `apt upgrade` and `systemctl start`.
    let service = Arc::new(node::systemd::ServiceManager::from_env());
    service.ready("starting: connecting to the chain");
    let plan = Plan {
        pool,
        price,
        category,
        gate,
        service,
    };
    let outcome = serve(globals, settings, plan, &stop_rx).await;
    if let Some(runtime) = energy.as_mut() {
        runtime.stop();
    }
    // The watcher looks twice a second: a request made in the last moments is read here.
    let late = energy
        .as_ref()
        .and_then(|r| crate::admission::AdmissionGate::power_off_reason(&*r.gate));
    let reason = power_off
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .or(late);
    if let Some(reason) = reason {
        let powered = power_off_now(&settings.energy.shutdown_command, &reason);
        if let (Err(first), Err(_)) = (&outcome, &powered) {
            tracing::error!("{first:#}"); // the power-off error is the one returned
        }
        powered?;
    }
    outcome.map(|()| ExitCode::SUCCESS)
}

/// What the node serves, settled before it connects to anything.
struct Plan {
    pool: alloy::primitives::Address,
    price: Nrlc,
    category: Category,
    gate: Box<dyn crate::admission::AdmissionGate>,
    service: Arc<node::systemd::ServiceManager>,
}

/// Connects, checks, waits until everything the node needs answers, then runs the node until
/// `stop` turns true. Returns early, with `Ok`, when a stop comes while it waits.
async fn serve(
    globals: &Globals,
    settings: &Settings,
    plan: Plan,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Plan {
        pool,
        price,
        category,
        gate,
        service,
    } = plan;
    // The RPC node may be down at boot: wait for it rather than exit.
    let mut announced = false;
    let mut sdk = loop {
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
                    service.status(&format!("waiting: {text}"));
                    announced = true;
                }
                service.alive();
                if *stop_rx.borrow() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    node::startup::check_pool(&sdk, pool, sdk.sender()?.address()).await?;
    // The chain target carries `ipfs.api` over its preset's (Globals::target).
    let ipfs_api = sdk.chain.target.ipfs_api.clone().context(
        "no IPFS API configured for results: set ipfs.api (a local Kubo or an upload node)",
    )?;
    let ipfs = IpfsClient::new(&ipfs_api, Duration::from_secs(120));
    if !node::startup::wait_ready(
        &sdk,
        &ipfs,
        price,
        settings.node.volume.max(1),
        &settings.executor.engine_socket,
        stop_rx,
        &service,
    )
    .await
    {
        close_left_bid(&sdk, settings).await;
        return Ok(());
    }
    let executor = Executor::new(&settings.executor, Some(ipfs.clone())).await?;
    let orphans = executor.remove_orphans().await;
    if orphans > 0 {
        tracing::info!(orphans, "removed app containers left by an earlier run");
    }
    let store = Journal::open(&settings.node.journal)?;
    let saved_cursor = store.cursor()?;
    let tx_log: Arc<dyn crate::chain::sender::TxLog> = Arc::new(
        crate::node::journal::JournalTxLog::open(&settings.node.journal)?,
    );
    sdk.set_tx_log(tx_log.clone());
    let vanished = node::vanished_in_journal(&store)?;
    let settled = node::startup::reconcile_transactions(&sdk, &store).await?;
    if settled > 0 {
        tracing::info!(
            settled,
            "journaled transactions from the last run brought up to date"
        );
    }
    let latest = sdk.chain.provider.get_block_number().await?;
    let watcher = Watcher {
        provider: sdk.chain.provider.clone(),
        hub: sdk.chain.target.hub,
        pool,
        confirmations: settings.node.confirmations,
        reorg_depth: settings.node.reorg_depth.max(1),
        chunk: settings.chain.log_chunk_blocks.max(1),
        max_span: 50_000,
        start_block: latest
            .saturating_sub(settings.node.lookback_blocks)
            .max(sdk.log_from_block),
    };
    // The order index reads from the hub's deployment up to where the watcher begins.
    let watcher_first = saved_cursor
        .map(|c| c.block.saturating_add(1))
        .unwrap_or(watcher.start_block);
    let index = node::index::prepare(&store, sdk.log_from_block, watcher_first)?;
    if !index.complete {
        tracing::info!(
            from = index.at,
            until = index.until,
            "the order index catches up from the hub's deployment; requests are matched once it is done"
        );
    }
    let owner = crate::wallet::unlock(&globals.keystore_path(settings), &globals.password(false)?)?;
    let mut worker = worker_sdk(globals, settings, stop_rx).await?;
    if *stop_rx.borrow() {
        close_left_bid(&sdk, settings).await; // stopped while waiting for the worker's gas
        return Ok(());
    }
    if let Some(worker) = worker.as_mut() {
        worker.set_tx_log(tx_log);
    }
    if let Some(worker) = &worker {
        let address = worker.sender()?.address();
        tracing::info!(worker = %address, "contributions are sent by the separate worker key");
    }
    let node = Arc::new(Node {
        sdk,
        owner,
        worker,
        pool,
        journal: Mutex::new(store),
        executor,
        ipfs,
        gate,
        settings: settings.clone(),
        price,
        category,
        running: Default::default(),
        retry_after: Default::default(),
        timings: Default::default(),
        vanished: Mutex::new(vanished),
        heartbeat: Default::default(),
        service: service.clone(),
        cursor: Mutex::new(node::CursorKeeper::new(saved_cursor)),
        index: Mutex::new(index),
        deferred: Default::default(),
    });
    start_api(settings, &node, stop_rx).await;
    let mut stop = stop_rx.clone();
    node.run(watcher, async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    })
    .await?;
    Ok(())
}

/// On a stop before the node ran: closes the bid the last run left open, within 20 s (the
/// RPC node answers, but gas may be what was missing).
async fn close_left_bid(sdk: &crate::sdk::Sdk, settings: &Settings) {
    let journal = &settings.node.journal;
    let closed = tokio::time::timeout(
        Duration::from_secs(20),
        node::close_journaled_bid(sdk, journal),
    )
    .await;
    match closed {
        Ok(Ok(true)) => tracing::info!("the bid left open by the last run is closed"),
        Ok(Ok(false)) => {}
        Ok(Err(error)) => {
            tracing::warn!(error = %format!("{error:#}"), "the bid left open by the last run could not be closed now; the node closes it once it runs and its gate says no")
        }
        Err(_) => tracing::warn!(
            "closing the bid left open by the last run took over 20 s; it stays open until the node runs again"
        ),
    }
}

/// Starts the local HTTP API when `api.listen` names an address. A port in use or a bad
/// address is reported, and the node runs without it: monitoring must never stop the work.
async fn start_api(
    settings: &Settings,
    node: &Arc<Node>,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) {
    let listen = settings.api.listen.trim();
    if listen.is_empty() {
        return;
    }
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            tracing::info!("HTTP API on http://{listen}/ (/health, /metrics, /status)");
            tokio::spawn(crate::node::api::serve(
                listener,
                node.clone(),
                stop_rx.clone(),
            ));
        }
        Err(error) => tracing::warn!(
            listen,
            %error,
            "the HTTP API cannot listen there; the node runs without it (set api.listen, or \"\" to turn it off)"
        ),
    }
}

/// Runs the configured power-off command (after the node has parked everything).
fn power_off_now(command: &str, reason: &str) -> anyhow::Result<()> {
    if command.trim().is_empty() {
        tracing::warn!(
            reason,
            "energy.shutdown_command is empty: the node stopped but stays powered"
        );
        return Ok(());
    }
    tracing::warn!(reason, command, "powering off");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .with_context(|| format!("energy.shutdown_command `{command}` cannot be run"))?;
    if !status.success() {
        bail!(
            "energy.shutdown_command `{command}` failed ({status}); the node is stopped but powered"
        );
    }
    Ok(())
}

/// The worker's own chain access when `node.worker_keystore` names a key file; waits until the
/// worker can pay for gas.
async fn worker_sdk(
    globals: &Globals,
    settings: &Settings,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<crate::sdk::Sdk>> {
    let path = &settings.node.worker_keystore;
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let password_file = &settings.node.worker_password_file;
    let password = if password_file.as_os_str().is_empty() {
        globals.password(false)?
    } else {
        crate::files::read_secret_line(password_file, "a password file")
            .context("node.worker_password_file cannot be read")?
    };
    let signer = crate::wallet::unlock(path, &password)
        .with_context(|| format!("node.worker_keystore {}", path.display()))?;
    let address = signer.address();
    let chain = crate::chain::client::connect(globals.target(settings)?).await?;
    let sender = chain.sender(signer, super::context::send_policy(settings, &chain.target));
    let sdk = super::context::configured_sdk(chain, Some(sender), settings);
    let mut announced = false;
    loop {
        match sdk.balances(address).await {
            Ok(balances) if !balances.eth_wei.is_zero() => return Ok(Some(sdk)),
            Ok(_) if !announced => {
                tracing::warn!(worker = %address, "the worker key has no ETH to pay for gas: send it some; waiting");
                announced = true;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %crate::text::brief(&error), "worker balance unreadable; retrying")
            }
        }
        if *stop.borrow() {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

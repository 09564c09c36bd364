//! Starting `pew run`: everything between the command line's resolved settings and the
//! running loop. In order: the node's locks and local checks (then systemd hears READY), the
//! chain (waited for when it does not answer yet), the workerpool's ownership, the engine, IPFS
//! and gas (waited for), the journal (opened once), the transactions a power cut left in flight,
//! the log watcher and the order index, the worker key, the HTTP API, and the loop. Whatever
//! ends it, a power-off the energy module asked for still happens, last.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};

use super::shutdown::Shutdown;
use super::{GateChoice, Node, journal::Journal};
use crate::chain::client::{ChainError, ChainTarget, parse_address};
use crate::chain::watcher::Watcher;
use crate::config::Settings;
use crate::executor::Executor;
use crate::poco::{Category, Nrlc};
use crate::sdk::Sdk;
use crate::storage::ipfs::IpfsClient;

/// What the command line resolved for the node: settings, the chain target, and the keys,
/// each unlocked once.
pub struct Launch {
    /// The settings in force.
    pub settings: Settings,
    /// The chain, its endpoints and its hub.
    pub target: ChainTarget,
    /// The workerpool owner's key (the wallet's).
    pub owner: PrivateKeySigner,
    /// The separate worker key, when `node.worker_keystore` names one.
    pub worker: Option<PrivateKeySigner>,
}

/// What the node serves, read from the settings before anything is unlocked or connected, so
/// a mistake there is reported at once.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The workerpool.
    pub pool: Address,
    /// The bid's price.
    pub price: Nrlc,
    /// The bid's category.
    pub category: Category,
}

impl Plan {
    /// Reads `node.pool`, `node.price` and `node.category`.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        if settings.node.pool.is_empty() {
            bail!(
                "no workerpool configured: create one with `pew pool create --description ...` and set node.pool (or PEW_NODE__POOL)"
            );
        }
        Ok(Self {
            pool: parse_address("node.pool", &settings.node.pool)?,
            price: settings.node.price.parse().context("node.price")?,
            category: settings.node.category.parse().context("node.category")?,
        })
    }
}

/// Runs the node until `shutdown`, then powers the machine off if the energy module asked.
pub async fn run(launch: Launch, plan: Plan, shutdown: Shutdown) -> anyhow::Result<()> {
    let settings = &launch.settings;
    // One node per state folder, key and workerpool, before anything is sent or journaled.
    let mut keys = vec![launch.owner.address()];
    keys.extend(launch.worker.as_ref().map(|w| w.address()));
    let _locks = super::lock::acquire(
        &state_dir(settings),
        &settings.runtime_dir(),
        launch.target.hub,
        &keys,
        plan.pool,
        &settings.executor.work_dir,
    )?;
    if crate::executor::run::AppUser::parse(&settings.executor.user)
        == crate::executor::run::AppUser::Root
    {
        tracing::warn!(
            "executor.user = \"root\": apps run as root in their containers; no iExec app needs it (set executor.user = \"\")"
        );
    }
    let GateChoice { gate, mut energy } =
        super::gate_from_settings(settings, crate::clock::unix_now_s())?;
    if let Some(runtime) = &energy {
        if let Some(weather) = runtime.weather_task() {
            tokio::spawn(weather);
        }
        // A low-voltage warning (or, with a board to wake us, nothing to do) stops the node
        // like a signal does: bid closed, tasks parked in the journal; then power off.
        shutdown.follow_power_off(runtime.gate.clone());
    }
    // The node's own start-up checks passed (settings, key files, locks, energy source):
    // systemd hears READY now, and from here on STATUS says what the node waits for (the RPC
    // node, the engine, IPFS, gas), while the watchdog is fed as long as the node is alive. A
    // start that waited for outside services would block `apt upgrade` and `systemctl start`.
    let service = Arc::new(super::systemd::ServiceManager::from_env());
    service.ready("starting: connecting to the chain");
    let outcome = serve(&launch, plan, gate, service, &shutdown).await;
    if let Some(runtime) = energy.as_mut() {
        runtime.stop();
    }
    // The power-off watch looks twice a second: a request made in the last moments is read here.
    let reason = shutdown.power_off_reason().or_else(|| {
        energy
            .as_ref()
            .and_then(|r| crate::admission::AdmissionGate::power_off_reason(&*r.gate))
    });
    if let Some(reason) = reason {
        let powered = power_off_now(&settings.energy.shutdown_command, &reason);
        if let (Err(first), Err(_)) = (&outcome, &powered) {
            tracing::error!("{first:#}"); // the power-off error is the one returned
        }
        powered?;
    }
    outcome
}

/// The folder of the journal, which holds the node's state.
fn state_dir(settings: &Settings) -> std::path::PathBuf {
    match settings.node.journal.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

/// Connects with the owner's key, waiting while no endpoint answers (the RPC node may be down
/// at boot); `None` when a stop came first.
async fn connect_owner(
    launch: &Launch,
    service: &super::systemd::ServiceManager,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<Sdk>> {
    let mut announced = false;
    loop {
        match crate::chain::client::connect(launch.target.clone()).await {
            Ok(chain) => {
                return Ok(Some(Sdk::configured(
                    chain,
                    Some(launch.owner.clone()),
                    &launch.settings,
                )));
            }
            Err(error @ ChainError::Unreachable { .. }) => {
                if !announced {
                    tracing::warn!("{error}; waiting");
                    service.status(&format!("waiting: {error}"));
                    announced = true;
                }
            }
            Err(error) => return Err(error.into()),
        }
        service.alive();
        if shutdown.requested() {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Connects, checks, waits until everything the node needs answers, then runs the node until
/// the shutdown. Returns early, with `Ok`, when the shutdown comes while it waits.
async fn serve(
    launch: &Launch,
    plan: Plan,
    gate: Box<dyn crate::admission::AdmissionGate>,
    service: Arc<super::systemd::ServiceManager>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let settings = &launch.settings;
    let Some(mut sdk) = connect_owner(launch, &service, shutdown).await? else {
        return Ok(());
    };
    super::startup::check_pool(&sdk, plan.pool, launch.owner.address()).await?;
    // The chain target carries `ipfs.api` over its preset's.
    let ipfs_api = sdk.chain.target.ipfs_api.clone().context(
        "no IPFS API configured for results: set ipfs.api (a local Kubo or an upload node)",
    )?;
    let ipfs = IpfsClient::new(&ipfs_api, Duration::from_secs(120));
    if !super::startup::wait_ready(
        &sdk,
        &ipfs,
        plan.price,
        settings.node.volume.max(1),
        &settings.executor.engine_socket,
        shutdown,
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
    // The journal, opened once: the node, the order index and the transaction log share it.
    let journal = Arc::new(Mutex::new(Journal::open(&settings.node.journal)?));
    let (saved_cursor, vanished) = {
        let open = super::journal::lock(&journal);
        (open.cursor()?, super::vanished_in_journal(&open)?)
    };
    let tx_log: Arc<dyn crate::chain::sender::TxLog> =
        Arc::new(super::journal::JournalTxLog::new(journal.clone()));
    sdk.set_tx_log(tx_log.clone());
    let settled = super::startup::reconcile_transactions(&sdk, &journal).await?;
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
        pool: plan.pool,
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
    let index = {
        let open = super::journal::lock(&journal);
        super::index::prepare(&open, sdk.log_from_block, watcher_first)?
    };
    if !index.complete {
        tracing::info!(
            from = index.at,
            until = index.until,
            "the order index catches up from the hub's deployment; requests are matched once it is done"
        );
    }
    let mut worker = match &launch.worker {
        Some(signer) => match worker_sdk(launch, signer.clone(), shutdown).await? {
            Some(worker) => Some(worker),
            None => {
                close_left_bid(&sdk, settings).await; // stopped while waiting for its gas
                return Ok(());
            }
        },
        None => None,
    };
    if let Some(worker) = worker.as_mut() {
        worker.set_tx_log(tx_log);
        let address = worker.sender()?.address();
        tracing::info!(worker = %address, "contributions are sent by the separate worker key");
    }
    let node = Arc::new(Node {
        sdk,
        owner: launch.owner.clone(),
        worker,
        pool: plan.pool,
        journal,
        executor,
        ipfs,
        gate,
        settings: settings.clone(),
        price: plan.price,
        category: plan.category,
        running: Default::default(),
        retry_after: Default::default(),
        timings: Default::default(),
        vanished: Mutex::new(vanished),
        heartbeat: Default::default(),
        switches: Default::default(),
        history: super::history::History::new(settings.history.clone()),
        funds_warnings: Default::default(),
        earnings: Default::default(),
        service,
        cursor: Mutex::new(super::CursorKeeper::new(saved_cursor)),
        index: Mutex::new(index),
        deferred: Default::default(),
        shutdown: shutdown.clone(),
    });
    start_api(settings, &node).await;
    node.history.resume(&node.journal());
    tokio::spawn(super::history::run(node.clone()));
    if !settings.home_assistant.broker.trim().is_empty() {
        tokio::spawn(super::home_assistant::run(
            node.clone(),
            settings.home_assistant.clone(),
        ));
    }
    node.run(watcher).await
}

/// On a stop before the node ran: closes the bid the last run left open, within 20 s (the
/// RPC node answers, but gas may be what was missing).
async fn close_left_bid(sdk: &Sdk, settings: &Settings) {
    let closed = tokio::time::timeout(
        Duration::from_secs(20),
        super::close_journaled_bid(sdk, &settings.node.journal),
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
async fn start_api(settings: &Settings, node: &Arc<Node>) {
    let listen = settings.api.listen.trim();
    if listen.is_empty() {
        return;
    }
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            tracing::info!("HTTP API on http://{listen}/ (/health, /metrics, /status)");
            tokio::spawn(super::api::serve(listener, node.clone()));
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

/// The worker's own chain access; waits until the worker can pay for gas (`None`: a stop came
/// first).
async fn worker_sdk(
    launch: &Launch,
    signer: PrivateKeySigner,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<Sdk>> {
    let address = signer.address();
    let chain = crate::chain::client::connect(launch.target.clone()).await?;
    let sdk = Sdk::configured(chain, Some(signer), &launch.settings);
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
        if shutdown.requested() {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

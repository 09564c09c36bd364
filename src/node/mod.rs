//! `pew run`: the node. One loop polls the chain; the scheduler role bids and matches through
//! the admission gate and initializes our deals' tasks; the worker role runs each task through
//! its journaled steps (compute, upload, contribute-and-finalize) with a bounded number at once.
//! Everything the node does is in the journal first, so a power cut is resumed, not repeated.

pub mod api;
pub mod earnings;
pub mod heartbeat;
pub mod history;
pub mod home_assistant;
pub mod index;
pub mod journal;
pub mod lock;
mod scheduler;
pub mod shutdown;
pub mod start;
pub mod startup;
pub mod switches;
pub mod systemd;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;

use crate::admission::{AdmissionGate, AlwaysGate, SimGate};
use crate::chain::watcher::{WatchError, Watcher};
use crate::config::{EnergySourceKind, GateSource, Settings, SimClock};
use crate::executor::Executor;
use crate::node::journal::Journal;
use crate::poco::{Category, DealFacts, DealId, Nrlc, TaskId};
use crate::sdk::Sdk;
use crate::storage::ipfs::IpfsClient;

pub use scheduler::{close_journaled_bid, vanished_in_journal};
pub use startup::Preflight;

/// Everything the node's roles share.
pub struct Node {
    /// Chain access and the one sender (the workerpool owner's key).
    pub sdk: Sdk,
    /// The owner key, for worker authorizations.
    pub owner: PrivateKeySigner,
    /// The worker's own chain access and sender, when the worker key is not the owner key.
    pub worker: Option<Sdk>,
    /// Our workerpool.
    pub pool: Address,
    /// The journal.
    pub journal: Arc<Mutex<Journal>>,
    /// Runs apps.
    pub executor: Executor,
    /// Where results go.
    pub ipfs: IpfsClient,
    /// Whether work may be taken now.
    pub gate: Box<dyn AdmissionGate>,
    /// Settings in force.
    pub settings: Settings,
    /// The bid's price.
    pub price: Nrlc,
    /// The bid's category.
    pub category: Category,
    /// Tasks being worked on now.
    pub running: Mutex<HashSet<TaskId>>,
    /// Tasks whose last attempt failed: not before this instant (backoff doubles, up to 60 s).
    pub retry_after: Mutex<HashMap<TaskId, (std::time::Instant, u32)>>,
    /// Tasks whose deal vanished in a reorg, to start again if the deal comes back.
    pub vanished: Mutex<HashSet<TaskId>>,
    /// When each deal's SchedulerNotice reached the node, and each task's app run time, for
    /// the latency figures the node logs per task.
    pub timings: Mutex<Timings>,
    /// The loop's rounds, for the HTTP API's health and metrics.
    pub heartbeat: heartbeat::Heartbeat,
    /// The operator's switches (Home Assistant): stop bidding, pause the apps.
    pub switches: switches::OperatorSwitches,
    /// What the dashboard plots (see [`history`]).
    pub history: history::History,
    /// The earnings summary the API shows, cached between new earnings.
    pub earnings: earnings::SummaryCache,
    /// What the last look at the accounts found wrong (no gas, stake short), for the
    /// dashboard's warnings; refreshed every few rounds.
    pub funds_warnings: Mutex<Vec<String>>,
    /// systemd's view of the node: readiness, watchdog, status line.
    pub service: Arc<systemd::ServiceManager>,
    /// The log watcher's cursor (see [`CursorKeeper`]).
    pub cursor: Mutex<CursorKeeper>,
    /// Where the catch-up of the order index stands (see [`index`]).
    pub index: Mutex<index::IndexProgress>,
    /// Requests deferred (their gas does not pay now): not looked at again before this.
    pub deferred: Mutex<HashMap<crate::poco::OrderHash, std::time::Instant>>,
    /// The stop switch (signals and the energy module's power-off): the loop ends on it and
    /// workers stop at their next step boundary.
    pub shutdown: shutdown::Shutdown,
}

/// The log watcher's cursor, kept in memory and saved to the journal when a round found
/// something, after a reorg, at stop, and otherwise at most every [`CURSOR_SAVE_EVERY`]: an
/// idle node then writes its journal a few times an hour instead of twice a round (SD cards
/// wear), and a power cut costs at most a re-read of that many seconds of logs, which the node
/// applies idempotently.
#[derive(Debug)]
pub struct CursorKeeper {
    /// Where the next poll starts.
    pub current: Option<crate::chain::watcher::Cursor>,
    saved: Option<crate::chain::watcher::Cursor>,
    saved_at: std::time::Instant,
    /// Since when the chain's head has stayed below the cursor's block, and that block.
    head_below: Option<(u64, std::time::Instant)>,
}

/// How long the chain's head may stay below the last block read before the node takes it for
/// a reorg onto a shorter branch rather than an endpoint that lags (public endpoints behind a
/// load balancer lag by seconds, not by this).
pub const HEAD_BELOW_PATIENCE: Duration = Duration::from_secs(20);

/// The longest an idle node keeps its cursor unsaved.
pub const CURSOR_SAVE_EVERY: Duration = Duration::from_secs(300);

impl CursorKeeper {
    /// Starts from the cursor the journal holds.
    pub fn new(saved: Option<crate::chain::watcher::Cursor>) -> Self {
        Self {
            current: saved,
            saved,
            saved_at: std::time::Instant::now(),
            head_below: None,
        }
    }

    /// Notes that the head is below the cursor's `block`; returns for how long it has been.
    pub fn head_below(&mut self, block: u64) -> Duration {
        match self.head_below {
            Some((seen, since)) if seen == block => since.elapsed(),
            _ => {
                self.head_below = Some((block, std::time::Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// Notes that a poll read the chain under the cursor normally.
    pub fn head_known(&mut self) {
        self.head_below = None;
    }

    /// Takes the cursor after a poll; returns the one to save now, if any.
    pub fn advance(
        &mut self,
        cursor: Option<crate::chain::watcher::Cursor>,
        news: bool,
    ) -> Option<crate::chain::watcher::Cursor> {
        self.current = cursor;
        let due = news || self.saved_at.elapsed() >= CURSOR_SAVE_EVERY;
        self.unsaved().filter(|_| due)
    }

    /// The cursor when it differs from the saved one.
    pub fn unsaved(&self) -> Option<crate::chain::watcher::Cursor> {
        self.current.filter(|c| Some(*c) != self.saved)
    }

    /// Records that `cursor` is in the journal.
    pub fn saved(&mut self, cursor: crate::chain::watcher::Cursor) {
        self.saved = Some(cursor);
        self.saved_at = std::time::Instant::now();
    }
}

/// The gate the configuration names, and the energy module behind it when it is the
/// energy gate (kept alive, and stopped, by whoever runs the node).
pub struct GateChoice {
    /// The gate.
    pub gate: Box<dyn AdmissionGate>,
    /// The running energy module, for `gate.source = "energy"`.
    pub energy: Option<crate::energy::runtime::EnergyRuntime>,
}

/// The gate source in force: `gate.source`, with `auto` resolved (the energy gate when an
/// energy source is configured, else the simulated sun).
pub fn gate_source(settings: &Settings) -> GateSource {
    match settings.gate.source {
        GateSource::Auto if settings.energy.source != EnergySourceKind::None => GateSource::Energy,
        GateSource::Auto => GateSource::Sim,
        other => other,
    }
}

/// Builds the gate the configuration names; `auto` is the energy gate when an energy source
/// is configured, else the simulated sun.
pub fn gate_from_settings(settings: &Settings, started_s: u64) -> anyhow::Result<GateChoice> {
    let simple = |gate: Box<dyn AdmissionGate>| GateChoice { gate, energy: None };
    match gate_source(settings) {
        GateSource::Always => Ok(simple(Box::new(AlwaysGate))),
        GateSource::Energy => {
            if settings.energy.source == EnergySourceKind::None {
                return Err(anyhow::anyhow!(
                    "gate.source is \"energy\" but energy.source is \"none\": run `pew energy setup`"
                ));
            }
            let runtime = crate::energy::runtime::EnergyRuntime::start(settings)?;
            Ok(GateChoice {
                gate: Box::new(runtime.gate.clone()),
                energy: Some(runtime),
            })
        }
        GateSource::Sim | GateSource::Auto => {
            let period = settings.gate.sim_period_s.max(1);
            let windows = SimGate::parse_windows(&settings.gate.sim_windows, period)?;
            let epoch_s = match settings.gate.sim_clock {
                SimClock::Utc => 0,
                SimClock::Start => started_s,
            };
            Ok(simple(Box::new(SimGate {
                period_s: period,
                windows,
                epoch_s,
            })))
        }
    }
}

use crate::clock::unix_now_s as now_s;

impl Node {
    /// The chain access that sends contributions: the worker key's, or the owner's.
    pub fn worker_sdk(&self) -> &Sdk {
        self.worker.as_ref().unwrap_or(&self.sdk)
    }

    /// Tasks run at once.
    fn concurrency(&self) -> usize {
        match self.settings.node.concurrency {
            0 => std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1))
                .unwrap_or(1)
                .max(1),
            n => n,
        }
    }

    /// Whether a workerpool order of ours is open (as the journal remembers it).
    pub fn bid_open(&self) -> bool {
        scheduler::has_open_bid(self)
    }

    /// A deal's fixed facts: from the journal, else read once from the chain and journaled
    /// (`None` when the deal does not exist).
    pub async fn deal_facts(&self, deal: DealId) -> anyhow::Result<Option<DealFacts>> {
        if let Some(facts) = self.journal().deal(deal)? {
            return Ok(Some(facts));
        }
        let Some(facts) = self.sdk.poco().deal_facts(deal).await? else {
            return Ok(None);
        };
        self.journal().put_deal(deal, &facts)?;
        Ok(Some(facts))
    }

    /// The journal (the lock is never held across an await).
    pub fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        journal::lock(&self.journal)
    }

    /// Runs until the shutdown: polls, bids, matches, and works. Returns once the open bid is
    /// closed and running tasks reached a step boundary (or the grace period ran out).
    pub async fn run(self: Arc<Self>, watcher: Watcher) -> anyhow::Result<()> {
        let permits = Arc::new(tokio::sync::Semaphore::new(self.concurrency()));
        let mut workers = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_millis(
            self.settings.node.poll_interval_ms.max(50),
        ));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = self.shutdown.clone();
        let stop = shutdown.wait();
        tokio::pin!(stop);
        tracing::info!(pool = %self.pool, concurrency = self.concurrency(), "node running");
        self.service.status(&self.status_line());
        let mut rounds: u64 = 0;
        let mut paused = false;
        let mut status_at = std::time::Instant::now();
        let mut status_shape = (self.bid_open(), 0);
        loop {
            rounds += 1;
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {}
            }
            let round = self.clone().step(&watcher).await;
            if let Err(error) = &round {
                tracing::warn!(error = %crate::text::brief(error), "this round did not complete; retrying next round");
            }
            self.heartbeat.round(round.is_ok());
            self.service.round(round.is_ok());
            // The bid opening or closing and tasks starting or ending show at once; the rest
            // (the battery, a reason's wording) at most every 5 s.
            // Read once a round, before the journal is locked for a write: the status line, the
            // history and the power plan all want it.
            let bid_open = self.bid_open();
            let shape = (bid_open, self.running.lock().map(|r| r.len()).unwrap_or(0));
            if shape != status_shape || status_at.elapsed() >= Duration::from_secs(5) {
                status_at = std::time::Instant::now();
                status_shape = shape;
                self.service.status(&self.status_line());
            }
            self.note_history(bid_open, self.heartbeat.bid_decision().as_ref());
            if rounds % 60 == 1 {
                self.free_disk().await;
            }
            if rounds % 30 == 5 {
                self.check_funds().await;
            }
            // Earnings an RPC error left unread: every 20 rounds (each task's are read as it
            // completes).
            if rounds % 20 == 3 {
                earnings::settle(&self).await;
            }
            // Claims are not urgent (final deadlines are hours away): every 30 rounds.
            if rounds % 30 == 2
                && let Err(error) = worker::claim_expired(&self).await
            {
                tracing::warn!(error = %crate::text::brief(&error), "expired tasks not claimed this time; retrying later");
            }
            self.follow_pause(&mut paused).await;
            // Start every unfinished task that is not running yet, within the bound.
            let unfinished = match self.journal().tasks(true) {
                Ok(tasks) => tasks,
                Err(error) => {
                    tracing::error!(%error, "journal unreadable");
                    continue;
                }
            };
            // The energy gate's power plan keeps the node on while it holds work.
            self.gate
                .node_holds_work(!unfinished.is_empty() || bid_open);
            let now = std::time::Instant::now();
            for record in unfinished {
                // A step that failed waits out its backoff before it is tried again.
                let waiting = self
                    .retry_after
                    .lock()
                    .expect("not poisoned")
                    .get(&record.task)
                    .is_some_and(|(at, _)| *at > now);
                if waiting {
                    continue;
                }
                if !self
                    .running
                    .lock()
                    .expect("not poisoned")
                    .insert(record.task)
                {
                    continue;
                }
                let node = self.clone();
                let permits = permits.clone();
                workers.spawn(async move {
                    let Ok(_permit) = permits.acquire_owned().await else {
                        return;
                    };
                    if node.shutdown.requested() {
                        // Stopping: a task that has not started waits in the journal.
                        node.running.lock().expect("not poisoned").remove(&record.task);
                        return;
                    }
                    let task = record.task;
                    match worker::process(&node, record.clone()).await {
                        Ok(()) => {
                            node.retry_after.lock().expect("not poisoned").remove(&task);
                        }
                        Err(failure) => {
                            let error =
                                crate::text::one_line(&format!("{:#}", failure.error), 500);
                            if worker::give_up_if_late(&node, &record, &failure.step, &error).await {
                                node.retry_after.lock().expect("not poisoned").remove(&task);
                            } else {
                                let wait = {
                                    let mut retries =
                                        node.retry_after.lock().expect("not poisoned");
                                    let attempts =
                                        retries.get(&task).map(|(_, n)| n + 1).unwrap_or(0);
                                    let wait = retry_wait(attempts);
                                    retries.insert(task, (std::time::Instant::now() + wait, attempts));
                                    wait
                                };
                                tracing::warn!(%task, %error, retry_in_s = wait.as_secs(), "task step failed; it will be retried");
                            }
                        }
                    }
                    node.running.lock().expect("not poisoned").remove(&task);
                });
            }
            while workers.try_join_next().is_some() {}
        }

        tracing::info!(
            "stopping: closing the open bid, letting running tasks reach a step boundary"
        );
        let unsaved = self.cursor.lock().expect("not poisoned").unsaved();
        if let Some(cursor) = unsaved
            && let Err(error) = self.save_cursor(cursor)
        {
            tracing::warn!(error = %crate::text::brief(&error), "the log cursor was not saved");
        }
        self.service
            .stopping("stopping: closing the bid, letting running tasks reach a step boundary");
        match tokio::time::timeout(Duration::from_secs(20), scheduler::close_bid(&self)).await {
            Ok(Ok(())) => {
                // The plots show the bid closed from now, not open through the downtime.
                self.note_history(self.bid_open(), None);
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %crate::text::brief(&error), "could not close the open workerpool order")
            }
            Err(_) => {
                tracing::warn!("closing the open workerpool order took over 20 s; it stays open")
            }
        }
        let grace = Duration::from_secs(self.settings.node.stop_grace_s);
        if tokio::time::timeout(grace, async {
            while workers.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!(
                "running tasks did not finish within {} s; they resume at the next start",
                grace.as_secs()
            );
            workers.abort_all();
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// The line `systemctl status pew` shows: the bid, why, the running tasks, the battery.
    fn status_line(&self) -> String {
        let decision = self.heartbeat.bid_decision();
        let reason = decision.as_ref().and_then(|d| d.reasons.first().cloned());
        let running = self.running.lock().map(|r| r.len()).unwrap_or(0);
        let soc = self.gate.battery_soc_pct(now_s());
        systemd::status_line(self.bid_open(), reason.as_deref(), running, soc)
    }

    /// Tells the history the bid's state and the gate's last answer now (a change becomes
    /// an event).
    fn note_history(&self, bid_open: bool, decision: Option<&crate::admission::Decision>) {
        let energy_now = self.gate.energy_time_s(crate::clock::unix_now());
        self.history
            .observe(&self.journal(), energy_now, bid_open, decision);
    }

    /// Looks at the accounts' gas and the owner's stake for the dashboard's warnings (the
    /// bid itself checks them again before it opens).
    async fn check_funds(&self) {
        let mut warnings = Vec::new();
        let mut keys = vec![("owner", self.owner.address())];
        if let Ok(worker) = self.worker_sdk().sender().map(|s| s.address())
            && worker != self.owner.address()
        {
            keys.push(("worker", worker));
        }
        for (role, key) in keys {
            match self.sdk.balances(key).await {
                Ok(balances) => {
                    warnings.extend(startup::gas_problem(&balances));
                    if role == "owner"
                        && let Err(problem) = startup::stake_check(
                            &balances,
                            self.price,
                            self.settings.node.volume.max(1),
                        )
                    {
                        warnings.push(problem);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "balances not read for the dashboard");
                    return; // keep the last known warnings
                }
            }
        }
        if let Ok(mut last) = self.funds_warnings.lock() {
            *last = warnings;
        }
    }

    /// Freezes or thaws running apps as the gate asks (see `AdmissionGate::pause_reason`).
    async fn follow_pause(&self, paused: &mut bool) {
        // The gate is always asked: it keeps its own account of frozen time.
        let gate_reason = self.gate.pause_reason();
        let reason = self.switches.pause_reason().or(gate_reason);
        if reason.is_some() != *paused {
            *paused = reason.is_some();
            let changed = self.executor.set_paused(*paused).await;
            match reason {
                Some(reason) => {
                    tracing::warn!(%reason, apps = changed, "apps paused")
                }
                None => tracing::info!(apps = changed, "apps resumed"),
            }
        } else if *paused {
            // An app started during the pause is frozen too, at the next round.
            let caught = self.executor.set_paused(true).await;
            if caught > 0 {
                tracing::info!(apps = caught, "apps started during the pause frozen too");
            }
        }
    }

    /// Removes images the node pulled, least recently used first, while free disk is under
    /// `executor.min_free_disk_mb`.
    async fn free_disk(&self) {
        let docker_root = match self.executor.docker().info().await {
            Ok(info) => info
                .docker_root_dir
                .unwrap_or_else(|| "/var/lib/docker".into()),
            Err(_) => return,
        };
        let min_free = self.settings.executor.min_free_disk_mb * 1024 * 1024;
        let removed = self
            .executor
            .prune_images(
                &self.settings.executor.pinned_images,
                min_free,
                std::path::Path::new(&docker_root),
            )
            .await;
        if !removed.is_empty() {
            tracing::info!(?removed, "freed disk space by removing pulled images");
        }
    }

    /// One round: read new logs, keep the bid as the gate says, decide requests, take deals.
    async fn step(self: Arc<Self>, watcher: &Watcher) -> anyhow::Result<()> {
        let cursor = self.cursor.lock().expect("not poisoned").current;
        let found = match watcher.poll(cursor).await {
            Err(WatchError::HeadBelowCursor { block, head }) => {
                let waited = self.cursor.lock().expect("not poisoned").head_below(block);
                match cursor {
                    Some(cursor) if waited >= HEAD_BELOW_PATIENCE => {
                        tracing::warn!(
                            block,
                            head,
                            waited_s = waited.as_secs(),
                            "the head stays below the last block read: taking it as a reorg"
                        );
                        watcher.poll_rewinding(cursor).await?
                    }
                    _ => return Err(WatchError::HeadBelowCursor { block, head }.into()),
                }
            }
            other => other?,
        };
        self.cursor.lock().expect("not poisoned").head_known();
        // The order index follows the chain: what a reorg may have taken is read again. The
        // rewound cursor is saved first, so a power cut after the forgetting still re-reads.
        if let Some(rewound) = found.rewound_to {
            self.save_cursor(rewound)?;
            self.journal().forget_orders_after(rewound.block)?;
        }
        if !found.presigns.is_empty() {
            index::record(&self, &found.presigns).await?;
        }
        {
            let store = self.journal();
            for (hash, block) in &found.requests {
                if store.add_request(*hash, *block)? {
                    tracing::info!(request = %hash, block, "request order seen");
                }
            }
        }
        if found.reorg {
            scheduler::reconcile_after_reorg(&self).await?;
        }
        for deal in &found.deals {
            scheduler::take_deal(&self, *deal).await?;
        }
        // Requests and deals are journaled above: only now may the cursor move past them.
        let news = found.reorg || !found.deals.is_empty() || !found.presigns.is_empty();
        let due = self
            .cursor
            .lock()
            .expect("not poisoned")
            .advance(found.cursor, news);
        if let Some(cursor) = due {
            self.save_cursor(cursor)?;
        }
        scheduler::keep_bid(&self).await?;
        index::catch_up(&self).await?;
        // Matching needs the orders presigned for a request's app: it waits for the index.
        if self.index.lock().expect("not poisoned").complete {
            scheduler::decide_requests(&self, &found).await?;
        }
        scheduler::revive_vanished(&self).await?;
        Ok(())
    }

    fn save_cursor(&self, cursor: crate::chain::watcher::Cursor) -> anyhow::Result<()> {
        self.journal().set_cursor(cursor)?;
        self.cursor.lock().expect("not poisoned").saved(cursor);
        Ok(())
    }
}

/// How long a task waits before its `attempts`-th retry (0 = the first): 1 s, doubling, at most
/// 60 s.
pub fn retry_wait(attempts: u32) -> Duration {
    Duration::from_secs((1u64 << attempts.min(6)).min(60))
}

/// In-memory latency bookkeeping (lost on restart; only used for the logged figures).
#[derive(Debug, Default)]
pub struct Timings {
    /// When the node learned of each deal (its match receipt or its SchedulerNotice log).
    pub notice_at: HashMap<crate::poco::DealId, std::time::Instant>,
    /// How long each task's app ran.
    pub app_run: HashMap<TaskId, Duration>,
}

/// The total a request locks from our stake per task: 30 % of the price.
pub fn owner_stake_per_task(price: Nrlc) -> U256 {
    price.0 * U256::from(crate::sdk::assets::WORKERPOOL_STAKE_RATIO) / U256::from(100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::watcher::Cursor;

    fn at(block: u64) -> Option<Cursor> {
        Some(Cursor {
            block,
            hash: alloy::primitives::B256::with_last_byte(block as u8),
        })
    }

    #[test]
    fn an_idle_cursor_is_saved_rarely_and_one_with_news_at_once() {
        let mut keeper = CursorKeeper::new(at(10));
        assert_eq!(keeper.advance(at(11), false), None, "idle: kept in memory");
        assert_eq!(keeper.advance(at(12), false), None);
        assert_eq!(keeper.unsaved(), at(12), "saved at stop");
        assert_eq!(keeper.advance(at(13), true), at(13), "news: saved now");
        keeper.saved(at(13).unwrap());
        assert_eq!(keeper.unsaved(), None);
        assert_eq!(keeper.advance(at(13), true), None, "nothing new to save");
        keeper.saved_at -= CURSOR_SAVE_EVERY;
        assert_eq!(keeper.advance(at(14), false), at(14), "due after a while");
    }

    #[test]
    fn a_head_below_the_cursor_is_timed_from_its_first_sight_and_forgotten_once_read() {
        let mut keeper = CursorKeeper::new(at(10));
        assert_eq!(keeper.head_below(10), Duration::ZERO);
        let since = keeper.head_below.unwrap().1;
        keeper.head_below = Some((10, since - HEAD_BELOW_PATIENCE));
        assert!(
            keeper.head_below(10) >= HEAD_BELOW_PATIENCE,
            "the same block: time adds up"
        );
        assert_eq!(
            keeper.head_below(11),
            Duration::ZERO,
            "another block: counted anew"
        );
        keeper.head_below = Some((11, since - HEAD_BELOW_PATIENCE));
        keeper.head_known();
        assert_eq!(
            keeper.head_below(11),
            Duration::ZERO,
            "a normal poll in between: anew"
        );
    }
}

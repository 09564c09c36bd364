//! The node's worker role: one task through its journaled steps. Each step is recorded before
//! the next begins; a resumed task picks up at its step, and the step that sends the final
//! transaction first waits for our in-flight transactions and checks the chain, so a task is
//! never contributed twice.

use std::time::Duration;

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;

use super::Node;
use crate::chain::poco::status;
use crate::executor::env::TaskContext;
use crate::executor::{AppRun, DatasetInput};
use crate::failpoint;
use crate::node::journal::{TaskRecord, TaskStep};
use crate::poco::finish::{FinishAction, FinishView, next_action};
use crate::results::archive;
use crate::storage::ipfs::{callback_results_link, results_link};

/// A step that failed, and which one (a task moves through several steps in one call).
#[derive(Debug)]
pub struct StepFailure {
    /// The step that was being taken.
    pub step: TaskStep,
    /// Why it failed.
    pub error: anyhow::Error,
}

/// Takes a task as far as it can go now.
pub async fn process(node: &Node, record: TaskRecord) -> Result<(), StepFailure> {
    let mut step = record.step.clone();
    loop {
        let taken = take_step(node, &record, &step).await;
        let next = match taken {
            Ok(Some(next)) => next,
            Ok(None) => return Ok(()),
            Err(error) => return Err(StepFailure { step, error }),
        };
        if next == step {
            return Ok(()); // nothing more to do now; the next round looks again
        }
        match record_step(node, &record, &step, &next) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(error) => return Err(StepFailure { step, error }),
        }
        if next == TaskStep::Completed {
            super::earnings::settle(node).await;
        }
        if node.shutdown.requested() && !next.is_final() {
            // The next step is journaled: the task resumes there after the next start.
            tracing::info!(task = %record.task, step = next.name(), "stopping: task parked at a step boundary");
            return Ok(());
        }
        step = next;
    }
}

/// The next step from `step`, or `None` when the task is final.
async fn take_step(
    node: &Node,
    record: &TaskRecord,
    step: &TaskStep,
) -> anyhow::Result<Option<TaskStep>> {
    Ok(Some(match step {
        TaskStep::New => initialize(node, record).await?,
        TaskStep::Initialized => compute(node, record).await?,
        TaskStep::Computed { digest, output_dir } => {
            upload(node, record, *digest, output_dir).await?
        }
        TaskStep::Uploaded {
            digest,
            output_dir,
            cid,
        } => finish(node, record, *digest, cid, output_dir).await?,
        TaskStep::Completed | TaskStep::Failed { .. } | TaskStep::Claimed { .. } => {
            return Ok(None);
        }
    }))
}

/// Journals `next` after `step`; false when someone else (reorg handling) changed the task
/// meanwhile, whose word wins.
fn record_step(
    node: &Node,
    record: &TaskRecord,
    step: &TaskStep,
    next: &TaskStep,
) -> anyhow::Result<bool> {
    let task = record.task;
    {
        let store = node.journal();
        if store.task(task)?.map(|r| r.step) != Some(step.clone()) {
            tracing::info!(%task, "the task changed under this worker; leaving it");
            return Ok(false);
        }
        store.set_step(task, next)?;
    }
    tracing::info!(%task, step = next.name(), "task step");
    if let TaskStep::Failed { reason } = next {
        tracing::warn!(%task, reason, "task failed on this node");
    }
    if next.is_final() {
        tidy_final(node, record);
    }
    Ok(true)
}

/// What follows a task's last step on this node: the gate stops planning for it (a no-op when
/// it ran: its receipt is out), and its files go, except its energy receipt, which stays as the
/// task's record of where its energy came from.
fn tidy_final(node: &Node, record: &TaskRecord) {
    let _ = node
        .gate
        .task_finished(record.task, crate::clock::unix_now());
    let folder = task_dir(node, record);
    crate::executor::output::reopen_folders(&folder);
    if let Err(error) = std::fs::remove_dir_all(&folder)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(task = %record.task, folder = %folder.display(), %error, "the task's folder could not be removed");
    }
    if let Ok(Some(receipt)) = node.journal().receipt(record.task) {
        let output = folder.join("output");
        let _ = std::fs::create_dir_all(&output)
            .and_then(|_| std::fs::write(output.join("energy.json"), receipt));
    }
}

/// After `failed` failed: when nothing can be contributed any more (the task's contribution
/// deadline has passed before a contribution, or, for a task not yet initialized, its deal's
/// final deadline), retrying cannot help. The task then fails with the error that kept it
/// back (not a vague "the deadline passed"), and true is returned.
pub async fn give_up_if_late(
    node: &Node,
    record: &TaskRecord,
    failed: &TaskStep,
    error: &str,
) -> bool {
    let poco = node.sdk.poco();
    let Ok(now) = poco.now().await else {
        return false; // the chain does not answer: nothing to decide now
    };
    let now = U256::from(now);
    let late = match failed {
        TaskStep::Initialized | TaskStep::Computed { .. } | TaskStep::Uploaded { .. } => match poco
            .task(record.task)
            .await
        {
            Ok(task) => !task.contributionDeadline.is_zero() && now >= task.contributionDeadline,
            Err(_) => return false,
        },
        TaskStep::New => match node.deal_facts(record.deal).await {
            Ok(Some(facts)) => facts
                .final_deadline()
                .is_some_and(|deadline| now >= U256::from(deadline)),
            _ => return false,
        },
        _ => false,
    };
    if !late {
        return false;
    }
    let step = TaskStep::Failed {
        reason: format!(
            "the deadline passed while the {} step kept failing: {error}",
            failed.name()
        ),
    };
    let changed = {
        let store = node.journal();
        match store.task(record.task) {
            Ok(Some(current)) if &current.step == failed => {
                store.set_step(record.task, &step).is_ok()
            }
            _ => false,
        }
    };
    if changed {
        tracing::warn!(task = %record.task, reason = %error, "task failed: its contribution deadline passed");
        tidy_final(node, record);
    }
    changed
}

/// Puts the result archive on IPFS. A callback deal's result goes on chain to its callback
/// contract instead: nothing is uploaded (PROTOCOL.md §7.4) and the step keeps no CID.
async fn upload(
    node: &Node,
    record: &TaskRecord,
    digest: alloy::primitives::B256,
    output_dir: &str,
) -> anyhow::Result<TaskStep> {
    let Some(deal) = node.deal_facts(record.deal).await? else {
        return Ok(TaskStep::Failed {
            reason: "the deal does not exist (a reorg?)".into(),
        });
    };
    let cid = if deal.has_callback() {
        tracing::info!(task = %record.task, callback = %deal.callback, "callback deal: the result goes on chain, nothing uploaded");
        String::new()
    } else {
        let bytes = match archive::build(std::path::Path::new(output_dir)) {
            Ok(bytes) => bytes,
            // What is on disk cannot become a result archive (and never will).
            Err(error) => {
                return Ok(TaskStep::Failed {
                    reason: format!("the result archive cannot be built: {error}"),
                });
            }
        };
        let added = node.ipfs.add(&bytes).await?;
        tracing::info!(task = %record.task, cid = %added.cid, bytes = bytes.len(), "result on IPFS");
        added.cid
    };
    failpoint::hit("after-upload");
    Ok(TaskStep::Uploaded {
        digest,
        output_dir: output_dir.to_string(),
        cid,
    })
}

/// What the final transaction carries: the `results` link, and the callback data for a
/// callback deal (read again from computed.json, which stays on disk until the task is final,
/// and checked against the digest contributed).
fn final_payload(
    deal_callback: Address,
    cid: &str,
    output_dir: &str,
    digest: alloy::primitives::B256,
) -> Result<(Bytes, Bytes), String> {
    if deal_callback == Address::ZERO {
        return Ok((Bytes::from(results_link(cid).into_bytes()), Bytes::new()));
    }
    let data = crate::results::digest::callback_data(std::path::Path::new(output_dir))
        .map_err(|e| format!("the callback data cannot be read again: {e}"))?;
    if crate::poco::result::callback_digest(&data) != digest {
        return Err("the callback data changed since its digest was computed".into());
    }
    Ok((
        Bytes::from(callback_results_link(deal_callback).into_bytes()),
        Bytes::from(data),
    ))
}

fn task_dir(node: &Node, record: &TaskRecord) -> std::path::PathBuf {
    node.settings
        .executor
        .work_dir
        .join("tasks")
        .join(record.task.to_string())
}

async fn initialize(node: &Node, record: &TaskRecord) -> anyhow::Result<TaskStep> {
    let poco = node.sdk.poco();
    match poco.task(record.task).await?.status {
        status::UNSET => {
            node.sdk
                .poco_writer()?
                .initialize(record.deal, U256::from(record.index))
                .await?;
            failpoint::hit("after-initialize");
            Ok(TaskStep::Initialized)
        }
        status::ACTIVE => Ok(TaskStep::Initialized),
        status::COMPLETED => Ok(TaskStep::Completed),
        other => Ok(TaskStep::Failed {
            reason: format!("the task is {} on chain", status::name(other)),
        }),
    }
}

async fn compute(node: &Node, record: &TaskRecord) -> anyhow::Result<TaskStep> {
    let poco = node.sdk.poco();
    let task = poco.task(record.task).await?;
    if task.status != status::ACTIVE {
        return Ok(match task.status {
            status::COMPLETED => TaskStep::Completed,
            other => TaskStep::Failed {
                reason: format!("the task is {} on chain", status::name(other)),
            },
        });
    }
    let Some(deal) = node.deal_facts(record.deal).await? else {
        return Ok(TaskStep::Failed {
            reason: "the deal does not exist (a reorg?)".into(),
        });
    };
    if U256::from(poco.now().await?) >= task.contributionDeadline {
        return Ok(TaskStep::Failed {
            reason: "the contribution deadline passed before the app ran".into(),
        });
    }
    let params = match deal.runnable() {
        Ok(params) => params,
        Err(reason) => return Ok(TaskStep::Failed { reason }),
    };
    let app = node.sdk.app(deal.app).await?;
    let dataset = if deal.dataset != Address::ZERO {
        let info = node.sdk.dataset(deal.dataset).await?;
        Some(DatasetInput {
            source: info.multiaddr,
            checksum: info.checksum,
        })
    } else {
        None
    };
    let time_ref: u64 = task.timeref.saturating_to();
    let timeout = deal
        .standard_category()
        .map(|c| c.time_ref_s)
        .unwrap_or(time_ref)
        .max(1);
    let run = AppRun {
        image: app.image,
        checksum: app.checksum,
        iexec_args: params.iexec_args.clone(),
        context: TaskContext {
            deal: record.deal,
            task: record.task,
            index: U256::from(record.index),
            bot_first: U256::from(deal.bot_first),
            bot_size: U256::from(deal.bot_size),
            dataset: deal.dataset,
            input_files: params.iexec_input_files.clone(),
            local_input_names: vec![],
        },
        local_inputs: vec![],
        dataset,
        timeout: Duration::from_secs(timeout),
        has_callback: deal.has_callback(),
        task_dir: task_dir(node, record),
    };
    failpoint::hit("before-run");
    if let Some(category) = deal.standard_category() {
        let estimate = super::scheduler::estimate(category, 1, Some(deal.app));
        node.gate
            .task_started(record.task, &estimate, crate::clock::unix_now());
    }
    let executed = node.executor.execute(&run).await;
    if let Some(receipt) = node
        .gate
        .task_finished(record.task, crate::clock::unix_now())
    {
        keep_receipt(node, record, &receipt);
    }
    let result = match executed {
        Ok(result) => result,
        // The image was retagged or replaced since the match: no retry can fix that.
        Err(crate::executor::ExecError::Image(error)) if error.is_permanent() => {
            return Ok(TaskStep::Failed {
                reason: error.to_string(),
            });
        }
        Err(error) => return Err(error.into()),
    };
    node.timings
        .lock()
        .expect("not poisoned")
        .app_run
        .insert(record.task, Duration::from_secs_f64(result.duration_s));
    failpoint::hit("after-run");
    match (result.is_valid(), result.digest) {
        (true, Some(digest)) => Ok(TaskStep::Computed {
            digest,
            output_dir: result.output_dir.display().to_string(),
        }),
        _ => Ok(TaskStep::Failed {
            reason: result.error.unwrap_or_else(|| "no result digest".into()),
        }),
    }
}

/// Keeps a task's energy receipt in the journal and as `energy.json` beside its output.
fn keep_receipt(node: &Node, record: &TaskRecord, receipt: &crate::admission::EnergyReceipt) {
    let text = serde_json::to_string(receipt).expect("a receipt serializes");
    if let Err(error) = node.journal().put_receipt(record.task, &text) {
        tracing::warn!(task = %record.task, %error, "energy receipt not journaled");
    }
    let folder = task_dir(node, record).join("output");
    let written = std::fs::create_dir_all(&folder)
        .and_then(|_| std::fs::write(folder.join("energy.json"), &text));
    if let Err(error) = written {
        tracing::warn!(task = %record.task, %error, "energy.json not written");
    }
    tracing::info!(task = %record.task, wh = receipt.wh_used, pv_share_pct = receipt.pv_share_pct, "task energy");
}

/// Waits until none of our transactions is pending, so the chain tells the whole truth: the
/// worker key's contributions and reveals, and the owner key's finalize and reopen.
async fn settle(node: &Node) -> anyhow::Result<()> {
    let provider = &node.sdk.chain.provider;
    let mut keys = vec![node.sdk.sender()?.address()];
    let worker = node.worker_sdk().sender()?.address();
    if !keys.contains(&worker) {
        keys.push(worker);
    }
    for _ in 0..600 {
        let mut settled = true;
        for &key in &keys {
            let pending = provider.get_transaction_count(key).pending().await?;
            let mined = provider.get_transaction_count(key).latest().await?;
            settled &= pending == mined;
        }
        if settled {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(anyhow::anyhow!(
        "our earlier transactions are still pending after 5 minutes"
    ))
}

async fn finish(
    node: &Node,
    record: &TaskRecord,
    digest: alloy::primitives::B256,
    cid: &str,
    output_dir: &str,
) -> anyhow::Result<TaskStep> {
    settle(node).await?;
    let poco = node.sdk.poco();
    let Some(deal) = node.deal_facts(record.deal).await? else {
        return Ok(TaskStep::Failed {
            reason: "the deal does not exist (a reorg?)".into(),
        });
    };
    let worker = node.worker_sdk().sender()?.address();
    // Built only where a final transaction is sent: after a crash the chain may show the task
    // done already, whatever became of the files.
    let payload = || final_payload(deal.callback, cid, output_dir, digest);
    // Waiting (for other workers, or their reveals) leaves the step as it is.
    let waiting = TaskStep::Uploaded {
        digest,
        output_dir: output_dir.to_string(),
        cid: cid.to_string(),
    };
    // A few rounds: contribute, then (trust > 1) reveal and finalize as consensus allows.
    for _ in 0..4 {
        let task = poco.task(record.task).await?;
        let mine = poco.contribution(record.task, worker).await?;
        let now = U256::from(poco.now().await?);
        let view = FinishView {
            status: task.status,
            trust: deal.trust,
            anyone_contributed: !task.contributors.is_empty(),
            mine: mine.status,
            mine_is_consensus: mine.resultHash == task.consensusValue,
            reveals: task.revealCounter.saturating_to(),
            winners: task.winnerCounter.saturating_to(),
            contribution_over: now >= task.contributionDeadline,
            reveal_over: now >= task.revealDeadline,
            final_over: now >= task.finalDeadline,
        };
        match next_action(&view) {
            FinishAction::Completed => return Ok(TaskStep::Completed),
            FinishAction::Fail(reason) => return Ok(TaskStep::Failed { reason }),
            FinishAction::Wait => return Ok(waiting),
            FinishAction::ContributeAndFinalize => {
                let (results, callback_data) = match payload() {
                    Ok(payload) => payload,
                    Err(reason) => return Ok(TaskStep::Failed { reason }),
                };
                let authorization =
                    crate::poco::result::sign_authorization(&node.owner, worker, record.task);
                node.worker_sdk()
                    .poco_writer()?
                    .contribute_and_finalize(
                        record.task,
                        digest,
                        results,
                        callback_data,
                        authorization,
                    )
                    .await?;
                log_timing(node, record);
                failpoint::hit("after-contribute");
                return Ok(TaskStep::Completed);
            }
            FinishAction::Contribute => {
                let authorization =
                    crate::poco::result::sign_authorization(&node.owner, worker, record.task);
                node.worker_sdk()
                    .poco_writer()?
                    .contribute(record.task, digest, authorization)
                    .await?;
                log_timing(node, record);
                failpoint::hit("after-contribute");
            }
            FinishAction::Reveal => {
                node.worker_sdk()
                    .poco_writer()?
                    .reveal(record.task, digest)
                    .await?;
                failpoint::hit("after-reveal");
            }
            FinishAction::Finalize => {
                // Everyone who could reveal has (or the window is over): the scheduler
                // finalizes with our result, which is the consensus.
                let (results, callback_data) = match payload() {
                    Ok(payload) => payload,
                    Err(reason) => return Ok(TaskStep::Failed { reason }),
                };
                node.sdk
                    .poco_writer()?
                    .finalize(record.task, results, callback_data)
                    .await?;
                return Ok(TaskStep::Completed);
            }
            FinishAction::Reopen => {
                // Nobody revealed in time: reopening lets the task take contributions again
                // instead of waiting for its final deadline.
                node.sdk.poco_writer()?.reopen(record.task).await?;
            }
        }
        settle(node).await?;
    }
    Ok(waiting)
}

/// Logs the notice-to-contribution latency (the node's own overhead, app time excluded).
fn log_timing(node: &Node, record: &TaskRecord) {
    let (noticed, app) = {
        let timings = node.timings.lock().expect("not poisoned");
        (
            timings.notice_at.get(&record.deal).copied(),
            timings.app_run.get(&record.task).copied(),
        )
    };
    if let (Some(noticed), Some(app)) = (noticed, app) {
        tracing::info!(
            task = %record.task,
            notice_to_contribution_ms = noticed.elapsed().saturating_sub(app).as_millis() as u64,
            app_ms = app.as_millis() as u64,
            "task timing"
        );
    }
}

/// Claims the tasks this node gave up on once their final deadline has passed, so the
/// requester's funds are not locked forever (anyone may claim; the node does it for its own).
/// A failed task already settled on chain (claimed, or completed) leaves the list for good, so
/// the list does not grow with every task ever failed.
pub async fn claim_expired(node: &Node) -> anyhow::Result<()> {
    let failed = node.journal().tasks_at("failed")?;
    if failed.is_empty() {
        return Ok(());
    }
    let poco = node.sdk.poco();
    let now = U256::from(poco.now().await?);
    for record in failed {
        let TaskStep::Failed { reason } = &record.step else {
            continue;
        };
        let task = poco.task(record.task).await?;
        let settled = match task.status {
            status::COMPLETED => Some(TaskStep::Completed),
            status::FAILED => Some(TaskStep::Claimed {
                reason: format!("{reason}; found claimed on chain"),
            }),
            _ => None, // UNSET: a deal gone in a reorg, watched by revive_vanished
        };
        if let Some(step) = settled {
            tracing::info!(task = %record.task, step = step.name(), "a failed task was settled on chain");
            node.journal().set_step(record.task, &step)?;
            continue;
        }
        let open = task.status == status::ACTIVE || task.status == status::REVEALING;
        if !open || now < task.finalDeadline {
            continue;
        }
        node.sdk.poco_writer()?.claim(record.task).await?;
        tracing::info!(task = %record.task, "claimed after its final deadline; the requester is refunded");
        node.journal().set_step(
            record.task,
            &TaskStep::Claimed {
                reason: reason.clone(),
            },
        )?;
    }
    Ok(())
}

//! Deals, tasks and results as a requester reads them, and the verified result download:
//! the archive behind a task's results link is fetched from IPFS, unpacked safely, and kept
//! only if its digest (PROTOCOL.md §7 rules) equals the one the chain recorded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::Serialize;

use super::{Sdk, SdkError};
use crate::chain::poco::status;
use crate::poco::ids::{DealId, TaskId};
use crate::results::{archive, digest};
use crate::storage::ipfs;

/// A deal as pew shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DealView {
    /// Deal id.
    pub deal_id: DealId,
    /// App, its owner and price (nRLC).
    #[serde(serialize_with = "crate::poco::amount::decimal_resource")]
    pub app: (Address, Address, U256),
    /// Dataset, its owner and price (zero when none).
    #[serde(serialize_with = "crate::poco::amount::decimal_resource")]
    pub dataset: (Address, Address, U256),
    /// Workerpool, its owner and price.
    #[serde(serialize_with = "crate::poco::amount::decimal_resource")]
    pub workerpool: (Address, Address, U256),
    /// Trust.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub trust: U256,
    /// Category id.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub category: U256,
    /// Tag.
    pub tag: B256,
    /// Requester.
    pub requester: Address,
    /// Beneficiary.
    pub beneficiary: Address,
    /// Callback contract (zero when none).
    pub callback: Address,
    /// Request params.
    pub params: String,
    /// Match time (unix s).
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub start_time: U256,
    /// First task index.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub bot_first: U256,
    /// Number of tasks.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub bot_size: U256,
    /// Stake each contributing worker locks.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub worker_stake: U256,
    /// Who pays.
    pub sponsor: Address,
    /// The deal's task ids.
    pub tasks: Vec<TaskId>,
}

/// One contribution to a task.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContributionView {
    /// The worker.
    pub worker: Address,
    /// UNSET, CONTRIBUTED, PROVED or REJECTED.
    pub status: String,
    /// Its result hash.
    pub result_hash: B256,
}

/// A task as pew shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TaskView {
    /// Task id.
    pub task_id: TaskId,
    /// UNSET, ACTIVE, REVEALING, COMPLETED or FAILED.
    pub status: String,
    /// Its deal.
    pub deal_id: DealId,
    /// Its index.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub index: U256,
    /// Reference time of its category (s).
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub time_ref: U256,
    /// Contribution deadline (unix s).
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub contribution_deadline: U256,
    /// Reveal deadline (unix s; zero before consensus).
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub reveal_deadline: U256,
    /// Final deadline (unix s).
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub final_deadline: U256,
    /// The consensus result hash (zero before consensus).
    pub consensus: B256,
    /// Reveals so far.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub reveal_count: U256,
    /// Contributions with the consensus value.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub winner_count: U256,
    /// Contributions.
    pub contributions: Vec<ContributionView>,
    /// The result digest (zero before reveal).
    pub result_digest: B256,
    /// The results link, as text.
    pub results: String,
    /// Callback data (hex).
    pub results_callback: Bytes,
}

fn contribution_status(value: u8) -> &'static str {
    match value {
        0 => "UNSET",
        1 => "CONTRIBUTED",
        2 => "PROVED",
        3 => "REJECTED",
        _ => "UNKNOWN",
    }
}

/// Where a result is read from.
#[derive(Debug, Clone)]
pub enum ResultSource {
    /// A Kubo RPC API (`/api/v0/cat`).
    Api(String),
    /// An HTTP gateway (`/ipfs/CID`).
    Gateway(String),
}

/// A verified download.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Downloaded {
    /// The task.
    pub task_id: TaskId,
    /// The IPFS location.
    pub location: String,
    /// The folder the output was unpacked into.
    pub path: PathBuf,
    /// The digest, equal to the on-chain one.
    pub digest: B256,
}

/// The largest result archive pew downloads.
pub const MAX_RESULT_BYTES: u64 = 1 << 30;

impl Sdk {
    /// A deal; NotFound when no deal has this id.
    pub async fn deal_view(&self, deal_id: DealId) -> Result<DealView, SdkError> {
        let deal = self
            .poco()
            .deal(deal_id)
            .await?
            .ok_or_else(|| SdkError::NotFound(format!("no deal {deal_id} on this chain")))?;
        let mut tasks = Vec::new();
        let mut index = deal.botFirst;
        while index < deal.botFirst + deal.botSize {
            tasks.push(crate::poco::ids::task_id(deal_id, index));
            index += U256::from(1);
        }
        Ok(DealView {
            deal_id,
            app: (deal.app.pointer, deal.app.owner, deal.app.price),
            dataset: (deal.dataset.pointer, deal.dataset.owner, deal.dataset.price),
            workerpool: (
                deal.workerpool.pointer,
                deal.workerpool.owner,
                deal.workerpool.price,
            ),
            trust: deal.trust,
            category: deal.category,
            tag: deal.tag,
            requester: deal.requester,
            beneficiary: deal.beneficiary,
            callback: deal.callback,
            params: deal.params,
            start_time: deal.startTime,
            bot_first: deal.botFirst,
            bot_size: deal.botSize,
            worker_stake: deal.workerStake,
            sponsor: deal.sponsor,
            tasks,
        })
    }

    /// A task; NotFound while it is not initialized.
    pub async fn task_view(&self, task_id: TaskId) -> Result<TaskView, SdkError> {
        let poco = self.poco();
        let task = poco.task(task_id).await?;
        if task.status == status::UNSET {
            return Err(SdkError::NotFound(format!(
                "task {task_id} is not initialized on this chain (yet): the workerpool initializes it after the match"
            )));
        }
        let mut contributions = Vec::new();
        for worker in &task.contributors {
            let c = poco.contribution(task_id, *worker).await?;
            contributions.push(ContributionView {
                worker: *worker,
                status: contribution_status(c.status).into(),
                result_hash: c.resultHash,
            });
        }
        Ok(TaskView {
            task_id,
            status: status::name(task.status).into(),
            deal_id: DealId(task.dealid),
            index: task.idx,
            time_ref: task.timeref,
            contribution_deadline: task.contributionDeadline,
            reveal_deadline: task.revealDeadline,
            final_deadline: task.finalDeadline,
            consensus: task.consensusValue,
            reveal_count: task.revealCounter,
            winner_count: task.winnerCounter,
            contributions,
            result_digest: task.resultDigest,
            results: String::from_utf8_lossy(&task.results).to_string(),
            results_callback: task.resultsCallback,
        })
    }

    /// Downloads a COMPLETED task's result into `to/<taskid>`, verifying its digest against
    /// the chain. Content with another digest is deleted and refused.
    pub async fn download_result(
        &self,
        task_id: TaskId,
        source: &ResultSource,
        to: &Path,
    ) -> Result<Downloaded, SdkError> {
        let task = self.poco().task(task_id).await?;
        if task.status != status::COMPLETED {
            return Err(SdkError::Result(format!(
                "task {task_id} is {}: results exist only once it is COMPLETED",
                status::name(task.status)
            )));
        }
        let deal = self
            .poco()
            .deal(DealId(task.dealid))
            .await?
            .ok_or_else(|| SdkError::NotFound(format!("the deal of task {task_id} is missing")))?;
        let location = ipfs::location_from_results(&task.results).ok_or_else(|| {
            if !task.resultsCallback.is_empty() {
                return SdkError::Result(format!(
                    "task {task_id} is a callback task: its result is on chain, nothing to download (callback data {}; see `pew task show`)",
                    task.resultsCallback
                ));
            }
            SdkError::Result(format!(
                "task {task_id} has no IPFS result (results: `{}`)",
                String::from_utf8_lossy(&task.results)
            ))
        })?;
        let bytes = match source {
            ResultSource::Api(api) => {
                ipfs::IpfsClient::new(api, Duration::from_secs(120))
                    .cat(&location, MAX_RESULT_BYTES)
                    .await
            }
            ResultSource::Gateway(gateway) => {
                ipfs::gateway_get(
                    gateway,
                    &location,
                    MAX_RESULT_BYTES,
                    Duration::from_secs(120),
                )
                .await
            }
        }
        .map_err(|e| SdkError::Result(e.to_string()))?;

        std::fs::create_dir_all(to)
            .map_err(|e| SdkError::Result(format!("{}: {e}", to.display())))?;
        let staging = tempfile::Builder::new()
            .prefix(".pew-download-")
            .tempdir_in(to)
            .map_err(|e| SdkError::Result(format!("{}: {e}", to.display())))?;
        archive::extract(&bytes, staging.path(), MAX_RESULT_BYTES)
            .map_err(|e| SdkError::Result(format!("the result archive of {task_id}: {e}")))?;
        let has_callback = deal.callback != Address::ZERO;
        let computed = digest::result_digest(staging.path(), has_callback).map_err(|e| {
            SdkError::Result(format!("the result of {task_id} cannot be verified: {e}"))
        })?;
        if computed != task.resultDigest {
            return Err(SdkError::Result(format!(
                "the content at {location} has digest {computed}, but the chain recorded {} for task {task_id}: refusing it (nothing was kept)",
                task.resultDigest
            )));
        }
        let target = to.join(task_id.to_string());
        if target.exists() {
            return Err(SdkError::Result(format!(
                "{} already exists: remove it or download elsewhere",
                target.display()
            )));
        }
        let staged = staging.keep();
        std::fs::rename(&staged, &target)
            .map_err(|e| SdkError::Result(format!("{}: {e}", target.display())))?;
        Ok(Downloaded {
            task_id,
            location,
            path: target,
            digest: computed,
        })
    }
}

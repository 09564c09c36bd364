//! Typed PoCo calls: every write pew makes to the hub, with the preconditions the contracts
//! check silently (PROTOCOL.md §5: Poco2 reverts carry no reason) checked first, so a refusal
//! says what is wrong instead of "reverted".

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::DynProvider;
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::{SolCall, SolEvent};

use super::client::Chain;
use super::sender::{TxError, TxSender};
use crate::abi::IexecInterfaceToken as Hub;
use crate::abi::IexecLibCore_v5;
use crate::poco::ids::{DealId, OrderHash, TaskId, task_id};
use crate::poco::order::{
    self, AppOrder, DatasetOrder, OrderOperation, RequestOrder, Signed, WorkerpoolOrder,
};

/// Task status values (`TaskStatusEnum`), kept with the protocol's pure code.
pub use crate::poco::consensus::task_status as status;

/// Why a PoCo call was not made or failed.
#[derive(Debug, thiserror::Error)]
pub enum PocoError {
    /// The transaction failed or would revert.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// A read failed.
    #[error("reading {what} from PoCo failed: {reason}")]
    Read {
        /// What was read.
        what: String,
        /// The RPC error.
        reason: String,
    },
    /// A precondition the contract checks silently does not hold.
    #[error("{0}")]
    Precondition(String),
    /// The receipt lacks the event the call must emit.
    #[error("{call}: the receipt has no {event} event")]
    MissingEvent {
        /// The call.
        call: &'static str,
        /// The event.
        event: &'static str,
    },
}

fn read_error(what: impl Into<String>) -> impl FnOnce(alloy::contract::Error) -> PocoError {
    let what = what.into();
    move |e| PocoError::Read {
        what,
        reason: e.to_string(),
    }
}

/// The first log of type `E` emitted by the hub in a receipt.
pub fn event<E: SolEvent>(receipt: &TransactionReceipt, hub: Address) -> Option<E> {
    receipt
        .inner
        .logs()
        .iter()
        .filter(|log| log.address() == hub)
        .find_map(|log| E::decode_log(&log.inner).ok().map(|l| l.data))
}

/// Reads and writes on one PoCo hub; writes need a sender.
pub struct Poco<'a> {
    chain: &'a Chain,
    sender: Option<&'a TxSender>,
}

impl<'a> Poco<'a> {
    /// A client for reads only.
    pub fn reader(chain: &'a Chain) -> Self {
        Self {
            chain,
            sender: None,
        }
    }

    /// A client that can also send, as `sender`'s account.
    pub fn writer(chain: &'a Chain, sender: &'a TxSender) -> Self {
        Self {
            chain,
            sender: Some(sender),
        }
    }

    /// The hub address.
    pub fn hub_address(&self) -> Address {
        self.chain.target.hub
    }

    fn hub(&self) -> Hub::IexecInterfaceTokenInstance<DynProvider> {
        self.chain.hub()
    }

    fn sender(&self) -> Result<&TxSender, PocoError> {
        self.sender.ok_or_else(|| {
            PocoError::Precondition("this operation signs a transaction: a wallet is needed".into())
        })
    }

    /// Sends an encoded hub call.
    pub async fn send<C: SolCall>(
        &self,
        label: &str,
        call: C,
    ) -> Result<TransactionReceipt, PocoError> {
        let sender = self.sender()?;
        Ok(sender
            .send(label, self.hub_address(), call.abi_encode().into())
            .await?)
    }

    // ----------------------------------------------------------------- reads

    /// A deal; `None` when no deal has that id.
    pub async fn deal(&self, deal: DealId) -> Result<Option<IexecLibCore_v5::Deal>, PocoError> {
        let view = self
            .hub()
            .viewDeal(deal.0)
            .call()
            .await
            .map_err(read_error(format!("deal {deal}")))?;
        Ok((view.requester != Address::ZERO).then_some(view))
    }

    /// A deal's fixed facts (`None` when it does not exist).
    pub async fn deal_facts(
        &self,
        deal: DealId,
    ) -> Result<Option<crate::poco::DealFacts>, PocoError> {
        Ok(self
            .deal(deal)
            .await?
            .map(|view| crate::poco::DealFacts::from_view(&view)))
    }

    /// A task (status UNSET when not initialized).
    pub async fn task(&self, task: TaskId) -> Result<IexecLibCore_v5::Task, PocoError> {
        self.hub()
            .viewTask(task.0)
            .call()
            .await
            .map_err(read_error(format!("task {task}")))
    }

    /// A worker's contribution to a task.
    pub async fn contribution(
        &self,
        task: TaskId,
        worker: Address,
    ) -> Result<IexecLibCore_v5::Contribution, PocoError> {
        self.hub()
            .viewContribution(task.0, worker)
            .call()
            .await
            .map_err(read_error(format!("contribution of {worker} to {task}")))
    }

    /// A worker's score (raised by agreeing contributions, cut by faulty ones).
    pub async fn score(&self, worker: Address) -> Result<U256, PocoError> {
        self.hub()
            .viewScore(worker)
            .call()
            .await
            .map_err(read_error(format!("score of {worker}")))
    }

    /// An account's escrow: (stake, locked) in nRLC.
    pub async fn account(&self, who: Address) -> Result<IexecLibCore_v5::Account, PocoError> {
        self.hub()
            .viewAccount(who)
            .call()
            .await
            .map_err(read_error(format!("account {who}")))
    }

    /// How much of an order's volume is used.
    pub async fn consumed(&self, hash: OrderHash) -> Result<U256, PocoError> {
        self.hub()
            .viewConsumed(hash.0)
            .call()
            .await
            .map_err(read_error(format!("consumed volume of {hash}")))
    }

    /// Who presigned an order (zero address when nobody did).
    pub async fn presigner(&self, hash: OrderHash) -> Result<Address, PocoError> {
        self.hub()
            .viewPresigned(hash.0)
            .call()
            .await
            .map_err(read_error(format!("presigner of {hash}")))
    }

    /// The chain's latest block timestamp, the clock every deadline is measured against.
    pub async fn now(&self) -> Result<u64, PocoError> {
        use alloy::providers::Provider;
        let block = self
            .chain
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| PocoError::Read {
                what: "the latest block".into(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| PocoError::Read {
                what: "the latest block".into(),
                reason: "the node has none".into(),
            })?;
        Ok(block.header.timestamp)
    }

    // ----------------------------------------------------------------- orders

    /// Presigns or closes an app order (the sender must own the app).
    pub async fn manage_app_order(
        &self,
        order: &AppOrder,
        operation: OrderOperation,
    ) -> Result<OrderHash, PocoError> {
        let hash = order::Order::hash(order, &self.chain.domain());
        let call = Hub::manageAppOrderCall::new((order::app_operation(
            Signed::presigned(order.clone()),
            operation,
            Bytes::new(),
        ),));
        self.send(&format!("{operation:?} app order {hash}"), call)
            .await?;
        Ok(hash)
    }

    /// Presigns or closes a dataset order (the sender must own the dataset).
    pub async fn manage_dataset_order(
        &self,
        order: &DatasetOrder,
        operation: OrderOperation,
    ) -> Result<OrderHash, PocoError> {
        let hash = order::Order::hash(order, &self.chain.domain());
        let call = Hub::manageDatasetOrderCall::new((order::dataset_operation(
            Signed::presigned(order.clone()),
            operation,
            Bytes::new(),
        ),));
        self.send(&format!("{operation:?} dataset order {hash}"), call)
            .await?;
        Ok(hash)
    }

    /// Presigns or closes a workerpool order (the sender must own the workerpool).
    pub async fn manage_workerpool_order(
        &self,
        order: &WorkerpoolOrder,
        operation: OrderOperation,
    ) -> Result<OrderHash, PocoError> {
        let hash = order::Order::hash(order, &self.chain.domain());
        let call = Hub::manageWorkerpoolOrderCall::new((order::workerpool_operation(
            Signed::presigned(order.clone()),
            operation,
            Bytes::new(),
        ),));
        self.send(&format!("{operation:?} workerpool order {hash}"), call)
            .await?;
        Ok(hash)
    }

    /// Presigns or closes a request order (the sender must be the requester).
    pub async fn manage_request_order(
        &self,
        order: &RequestOrder,
        operation: OrderOperation,
    ) -> Result<OrderHash, PocoError> {
        let hash = order::Order::hash(order, &self.chain.domain());
        let call = Hub::manageRequestOrderCall::new((order::request_operation(
            Signed::presigned(order.clone()),
            operation,
            Bytes::new(),
        ),));
        self.send(&format!("{operation:?} request order {hash}"), call)
            .await?;
        Ok(hash)
    }

    /// Matches four orders into a deal; returns the deal id and its volume.
    pub async fn match_orders(
        &self,
        app: Signed<AppOrder>,
        dataset: Signed<DatasetOrder>,
        workerpool: Signed<WorkerpoolOrder>,
        request: Signed<RequestOrder>,
    ) -> Result<(DealId, U256), PocoError> {
        let call = Hub::matchOrdersCall::new((
            app.into(),
            dataset.into(),
            workerpool.into(),
            request.into(),
        ));
        let receipt = self.send("matchOrders", call).await?;
        let matched: Hub::OrdersMatched =
            event(&receipt, self.hub_address()).ok_or(PocoError::MissingEvent {
                call: "matchOrders",
                event: "OrdersMatched",
            })?;
        Ok((DealId(matched.dealid), matched.volume))
    }

    /// The gas the chain estimates for matching these orders (on Arbitrum, L1 data included);
    /// `None` when the estimate fails (the match would revert, or the node does not say).
    pub async fn estimate_match(
        &self,
        app: Signed<AppOrder>,
        dataset: Signed<DatasetOrder>,
        workerpool: Signed<WorkerpoolOrder>,
        request: Signed<RequestOrder>,
    ) -> Option<u64> {
        use alloy::network::TransactionBuilder;
        let call = Hub::matchOrdersCall::new((
            app.into(),
            dataset.into(),
            workerpool.into(),
            request.into(),
        ));
        let from = self.sender.map(|s| s.address()).unwrap_or_default();
        let request = alloy::rpc::types::TransactionRequest::default()
            .with_from(from)
            .with_to(self.hub_address())
            .with_input(alloy::primitives::Bytes::from(call.abi_encode()));
        alloy::providers::Provider::estimate_gas(&self.chain.provider, request)
            .await
            .ok()
    }

    // ----------------------------------------------------------------- task lifecycle

    /// Initializes task `index` of a deal (anyone may).
    pub async fn initialize(&self, deal: DealId, index: U256) -> Result<TaskId, PocoError> {
        let task = task_id(deal, index);
        let view = self
            .deal(deal)
            .await?
            .ok_or_else(|| PocoError::Precondition(format!("deal {deal} does not exist")))?;
        if index < view.botFirst || index >= view.botFirst + view.botSize {
            return Err(PocoError::Precondition(format!(
                "task index {index} is outside deal {deal} (tasks {}..{})",
                view.botFirst,
                view.botFirst + view.botSize
            )));
        }
        let current = self.task(task).await?;
        if current.status != status::UNSET {
            return Err(PocoError::Precondition(format!(
                "task {task} is already initialized ({})",
                status::name(current.status)
            )));
        }
        let call = Hub::initializeCall::new((deal.0, index));
        let receipt = self.send(&format!("initialize {task}"), call).await?;
        let initialized: Hub::TaskInitialize =
            event(&receipt, self.hub_address()).ok_or(PocoError::MissingEvent {
                call: "initialize",
                event: "TaskInitialize",
            })?;
        Ok(TaskId(initialized.taskid))
    }

    /// Initializes several tasks of one deal in one transaction (`initializeArray`), with the
    /// same preconditions as [`PocoWriter::initialize`] for each: the deal exists, each index
    /// is one of its tasks, and no task is initialized yet (one that is would revert the whole
    /// array, silently).
    pub async fn initialize_array(
        &self,
        deal: DealId,
        indexes: &[U256],
    ) -> Result<Vec<TaskId>, PocoError> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        let view = self
            .deal(deal)
            .await?
            .ok_or_else(|| PocoError::Precondition(format!("deal {deal} does not exist")))?;
        let mut tasks = Vec::with_capacity(indexes.len());
        for &index in indexes {
            if index < view.botFirst || index >= view.botFirst + view.botSize {
                return Err(PocoError::Precondition(format!(
                    "task index {index} is outside deal {deal} (tasks {}..{})",
                    view.botFirst,
                    view.botFirst + view.botSize
                )));
            }
            let task = task_id(deal, index);
            if tasks.contains(&task) {
                return Err(PocoError::Precondition(format!(
                    "task index {index} is listed twice"
                )));
            }
            let current = self.task(task).await?;
            if current.status != status::UNSET {
                return Err(PocoError::Precondition(format!(
                    "task {task} is already initialized ({})",
                    status::name(current.status)
                )));
            }
            tasks.push(task);
        }
        let call = Hub::initializeArrayCall {
            dealIds: vec![deal.0; indexes.len()],
            indexes: indexes.to_vec(),
        };
        self.send(&format!("initializeArray {deal}"), call).await?;
        Ok(tasks)
    }

    async fn check_contributable(
        &self,
        task: TaskId,
        worker: Address,
    ) -> Result<IexecLibCore_v5::Task, PocoError> {
        let view = self.task(task).await?;
        if view.status != status::ACTIVE {
            return Err(PocoError::Precondition(format!(
                "task {task} is {}, not ACTIVE: it takes no contribution",
                status::name(view.status)
            )));
        }
        let now = self.now().await?;
        if U256::from(now) >= view.contributionDeadline {
            return Err(PocoError::Precondition(format!(
                "task {task}: the contribution deadline has passed"
            )));
        }
        let contribution = self.contribution(task, worker).await?;
        if contribution.status != 0 {
            return Err(PocoError::Precondition(format!(
                "{worker} has already contributed to task {task}"
            )));
        }
        Ok(view)
    }

    /// Contributes a result (trust > 1): locks the deal's worker stake.
    pub async fn contribute(
        &self,
        task: TaskId,
        digest: B256,
        authorization: Bytes,
    ) -> Result<TransactionReceipt, PocoError> {
        let worker = self.sender()?.address();
        let view = self.check_contributable(task, worker).await?;
        let deal = self.deal(DealId(view.dealid)).await?.ok_or_else(|| {
            PocoError::Precondition(format!("the deal of task {task} does not exist"))
        })?;
        let account = self.account(worker).await?;
        if account.stake < deal.workerStake {
            return Err(PocoError::Precondition(format!(
                "{worker} has {} nRLC staked but task {task} needs {} nRLC of worker stake: deposit more RLC",
                account.stake, deal.workerStake
            )));
        }
        let call = Hub::contributeCall::new((
            task.0,
            crate::poco::result::result_hash(task, digest),
            crate::poco::result::result_seal(worker, task, digest),
            Address::ZERO,
            Bytes::new(),
            authorization,
        ));
        self.send(&format!("contribute {task}"), call).await
    }

    /// Reveals the digest behind an earlier contribution, once consensus is reached.
    pub async fn reveal(
        &self,
        task: TaskId,
        digest: B256,
    ) -> Result<TransactionReceipt, PocoError> {
        let worker = self.sender()?.address();
        let view = self.task(task).await?;
        if view.status != status::REVEALING {
            return Err(PocoError::Precondition(format!(
                "task {task} is {}, not REVEALING: no consensus to reveal yet",
                status::name(view.status)
            )));
        }
        let contribution = self.contribution(task, worker).await?;
        if contribution.status != 1 || contribution.resultHash != view.consensusValue {
            return Err(PocoError::Precondition(format!(
                "{worker} has no contribution to task {task} that matches the consensus"
            )));
        }
        let call = Hub::revealCall::new((task.0, digest));
        self.send(&format!("reveal {task}"), call).await
    }

    /// Finalizes a task after consensus and reveals (workerpool owner only).
    pub async fn finalize(
        &self,
        task: TaskId,
        results: Bytes,
        callback_data: Bytes,
    ) -> Result<TransactionReceipt, PocoError> {
        let view = self.task(task).await?;
        if view.status != status::REVEALING || view.revealCounter == U256::ZERO {
            return Err(PocoError::Precondition(format!(
                "task {task} cannot be finalized: it is {} with {} reveal(s)",
                status::name(view.status),
                view.revealCounter
            )));
        }
        let call = Hub::finalizeCall::new((task.0, results, callback_data));
        self.send(&format!("finalize {task}"), call).await
    }

    /// Reopens a task whose consensus nobody revealed in time (workerpool owner only): the
    /// agreeing contributions are rejected and the task takes contributions again.
    pub async fn reopen(&self, task: TaskId) -> Result<TransactionReceipt, PocoError> {
        let view = self.task(task).await?;
        let now = self.now().await?;
        if view.status != status::REVEALING
            || view.revealCounter != U256::ZERO
            || U256::from(now) < view.revealDeadline
            || U256::from(now) >= view.finalDeadline
        {
            return Err(PocoError::Precondition(format!(
                "task {task} cannot be reopened: it must be REVEALING with no reveal after its \
                 reveal deadline and before its final deadline (it is {} with {} reveal(s))",
                status::name(view.status),
                view.revealCounter
            )));
        }
        let call = Hub::reopenCall::new((task.0,));
        self.send(&format!("reopen {task}"), call).await
    }

    /// Contributes and finalizes in one transaction (trust-1 deals, no contribution yet).
    pub async fn contribute_and_finalize(
        &self,
        task: TaskId,
        digest: B256,
        results: Bytes,
        callback_data: Bytes,
        authorization: Bytes,
    ) -> Result<TransactionReceipt, PocoError> {
        let worker = self.sender()?.address();
        let view = self.check_contributable(task, worker).await?;
        if !view.contributors.is_empty() {
            return Err(PocoError::Precondition(format!(
                "task {task} already has contributions: use contribute"
            )));
        }
        let deal = self.deal(DealId(view.dealid)).await?.ok_or_else(|| {
            PocoError::Precondition(format!("the deal of task {task} does not exist"))
        })?;
        if deal.trust != U256::from(1) {
            return Err(PocoError::Precondition(format!(
                "task {task} has trust {}: contributeAndFinalize needs trust 1",
                deal.trust
            )));
        }
        let call = Hub::contributeAndFinalizeCall::new((
            task.0,
            digest,
            results,
            callback_data,
            Address::ZERO,
            Bytes::new(),
            authorization,
        ));
        self.send(&format!("contributeAndFinalize {task}"), call)
            .await
    }

    /// Claims a task that missed its final deadline: refunds the requester (anyone may).
    pub async fn claim(&self, task: TaskId) -> Result<TransactionReceipt, PocoError> {
        let view = self.task(task).await?;
        if view.status != status::ACTIVE && view.status != status::REVEALING {
            return Err(PocoError::Precondition(format!(
                "task {task} is {}: only ACTIVE or REVEALING tasks can be claimed",
                status::name(view.status)
            )));
        }
        if U256::from(self.now().await?) < view.finalDeadline {
            return Err(PocoError::Precondition(format!(
                "task {task} can be claimed only after its final deadline ({})",
                view.finalDeadline
            )));
        }
        let call = Hub::claimCall::new((task.0,));
        self.send(&format!("claim {task}"), call).await
    }
}

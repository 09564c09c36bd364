//! Requests: a requester's presigned request order, the deals matched from it, and their tasks.
//!
//! A presigned order lives on chain only as its hash; pew finds the order itself again by
//! decoding the `manageRequestOrder` transaction behind the `SignedRequestOrder` event, so a
//! request can be cancelled or inspected from any machine.

use alloy::primitives::{Address, U256};
use serde::Serialize;

use super::{Sdk, SdkError};
use crate::poco::ids::{DealId, OrderHash, TaskId, task_id};
use crate::poco::order::{OrderOperation, RequestOrder};
use crate::poco::{Category, Nrlc, RequestParams, Tag};

/// What a requester asks for.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// The app to run.
    pub app: Address,
    /// The dataset, if any.
    pub dataset: Option<Address>,
    /// A specific workerpool, or any.
    pub workerpool: Option<Address>,
    /// The category (max run time).
    pub category: Category,
    /// How many agreeing workers are needed (1 = one worker's result is final).
    pub trust: u64,
    /// How many tasks (runs).
    pub volume: u64,
    /// Requirements; TEE bits are refused.
    pub tag: Tag,
    /// Arguments, input files, storage.
    pub params: RequestParams,
    /// A contract to call with the result, if any.
    pub callback: Option<Address>,
    /// Who receives the result; the requester when unset.
    pub beneficiary: Option<Address>,
    /// Highest app price accepted.
    pub app_max_price: Nrlc,
    /// Highest dataset price accepted.
    pub dataset_max_price: Nrlc,
    /// Highest workerpool price accepted.
    pub workerpool_max_price: Nrlc,
}

/// A task of a deal, as the requester sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TaskSummary {
    /// Task id.
    pub task_id: TaskId,
    /// Its global index in the request.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub index: U256,
    /// UNSET, ACTIVE, REVEALING, COMPLETED or FAILED.
    pub status: String,
    /// The results link, once COMPLETED (UTF-8 text).
    pub results: Option<String>,
    /// Whether its final deadline has passed without completion (it can be claimed).
    pub expired: bool,
}

/// A deal matched from a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DealSummary {
    /// Deal id.
    pub deal_id: DealId,
    /// The workerpool running it.
    pub workerpool: Address,
    /// Its tasks.
    pub tasks: Vec<TaskSummary>,
}

/// A request and what became of it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RequestStatus {
    /// The order hash.
    pub order_hash: OrderHash,
    /// Who presigned it (zero if nobody).
    pub presigner: Address,
    /// Tasks matched so far (or the whole volume once closed).
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub consumed: U256,
    /// The order's volume, when the order was found.
    #[serde(serialize_with = "crate::poco::amount::decimal_option")]
    pub volume: Option<U256>,
    /// Deals matched from it.
    pub deals: Vec<DealSummary>,
}

impl RequestStatus {
    /// Whether every task of the request is final (COMPLETED or FAILED) or expired, and the
    /// whole volume is matched.
    pub fn is_done(&self) -> bool {
        let all_matched = self.volume.is_some_and(|v| self.consumed >= v);
        let tasks: Vec<&TaskSummary> = self.deals.iter().flat_map(|d| &d.tasks).collect();
        all_matched
            && !tasks.is_empty()
            && tasks
                .iter()
                .all(|t| t.status == "COMPLETED" || t.status == "FAILED" || t.expired)
    }
}

impl Sdk {
    /// Builds the request order for `spec`, with the wallet as requester.
    pub fn request_order(&self, spec: &RequestSpec) -> Result<RequestOrder, SdkError> {
        let requester = self.sender()?.address();
        Ok(RequestOrder {
            app: spec.app,
            appmaxprice: spec.app_max_price.0,
            dataset: spec.dataset.unwrap_or(Address::ZERO),
            datasetmaxprice: spec.dataset_max_price.0,
            workerpool: spec.workerpool.unwrap_or(Address::ZERO),
            workerpoolmaxprice: spec.workerpool_max_price.0,
            requester,
            volume: U256::from(spec.volume),
            tag: spec.tag.0,
            category: U256::from(spec.category.id),
            trust: U256::from(spec.trust),
            beneficiary: spec.beneficiary.unwrap_or(requester),
            callback: spec.callback.unwrap_or(Address::ZERO),
            params: spec.params.to_json(),
            salt: crate::poco::order::random_salt(),
        })
    }

    /// Checks a request and presigns it on chain; returns its hash and the order.
    pub async fn submit_request(
        &self,
        spec: &RequestSpec,
    ) -> Result<(OrderHash, RequestOrder), SdkError> {
        if spec.tag.requires_tee() {
            return Err(SdkError::Refused(format!(
                "tag {} asks for a TEE (enclave) task: pew and pew workerpools run standard tasks only; \
                 use a TEE workerpool and its SDK for enclave work",
                spec.tag
            )));
        }
        spec.params
            .check_standard()
            .map_err(|e| SdkError::Refused(e.to_string()))?;
        if spec.volume == 0 {
            return Err(SdkError::Refused("the volume must be at least 1".into()));
        }
        self.app(spec.app).await?;
        if let Some(dataset) = spec.dataset {
            self.dataset(dataset).await?;
        }
        if let Some(pool) = spec.workerpool {
            self.pool(pool).await?;
        }
        let order = self.request_order(spec)?;
        let me = order.requester;
        let cost = (spec.app_max_price.0 + spec.dataset_max_price.0 + spec.workerpool_max_price.0)
            * U256::from(spec.volume);
        let stake = self.poco().account(me).await?.stake;
        if stake < cost {
            return Err(SdkError::Refused(format!(
                "the request may cost up to {} but the iExec account of {me} holds {}: deposit the difference with `pew account deposit`",
                Nrlc(cost),
                Nrlc(stake)
            )));
        }
        let before = self.latest_block().await.ok();
        let hash = self
            .poco_writer()?
            .manage_request_order(&order, OrderOperation::Sign)
            .await?;
        self.remember(hash, crate::chain::presigns::OrderKind::Request, before);
        Ok((hash, order))
    }

    /// Closes a request so nothing more is matched from it (`manageRequestOrder` CLOSE).
    pub async fn cancel_request(&self, hash: OrderHash) -> Result<(), SdkError> {
        let me = self.sender()?.address();
        let order = self.find_request_order(hash).await?;
        if order.requester != me {
            return Err(SdkError::Refused(format!(
                "request {hash} belongs to {}, not to this wallet ({me})",
                order.requester
            )));
        }
        let consumed = self.poco().consumed(hash).await?;
        if consumed >= order.volume {
            return Err(SdkError::Refused(format!(
                "request {hash} is already fully matched or closed ({consumed}/{})",
                order.volume
            )));
        }
        self.poco_writer()?
            .manage_request_order(&order, OrderOperation::Close)
            .await?;
        Ok(())
    }

    /// The deals matched from a request, with their tasks.
    pub async fn request_status(&self, hash: OrderHash) -> Result<RequestStatus, SdkError> {
        let poco = self.poco();
        let presigner = poco.presigner(hash).await?;
        let consumed = poco.consumed(hash).await?;
        // The request's volume, for "matched n of m": from a bounded lookup; a request this
        // machine cannot place in history still shows its deals.
        let volume = match self.find_request_order_in(hash, None).await {
            Ok((order, _)) => Some(order.volume),
            Err(SdkError::NotFound(_) | SdkError::ScanTooWide { .. }) => None,
            Err(error) => return Err(error),
        };
        let now = U256::from(poco.now().await?);
        // No history scan for the deals either: PoCo names a request's deals by the request's
        // hash and how much of it was consumed before each (PROTOCOL.md §4): walk them.
        let mut deals = Vec::new();
        let mut before = U256::ZERO;
        while before < consumed {
            let deal_id = crate::poco::ids::deal_id(hash, before);
            let Some(deal) = poco.deal(deal_id).await? else {
                break; // a reorg took it, or it is still to be mined
            };
            before += deal.botSize.max(U256::from(1));
            let mut tasks = Vec::new();
            let mut index = deal.botFirst;
            while index < deal.botFirst + deal.botSize {
                let id = task_id(deal_id, index);
                let task = poco.task(id).await?;
                let final_deadline = if task.finalDeadline.is_zero() {
                    deal.startTime
                        + U256::from(crate::poco::category::FINAL_DEADLINE_RATIO)
                            * self.category_time(deal.category).await?
                } else {
                    task.finalDeadline
                };
                let done = task.status == 3 || task.status == 4;
                tasks.push(TaskSummary {
                    task_id: id,
                    index,
                    status: crate::chain::poco::status::name(task.status).into(),
                    results: (task.status == 3)
                        .then(|| String::from_utf8_lossy(&task.results).to_string()),
                    expired: !done && now >= final_deadline,
                });
                index += U256::from(1);
            }
            deals.push(DealSummary {
                deal_id,
                workerpool: deal.workerpool.pointer,
                tasks,
            });
        }
        Ok(RequestStatus {
            order_hash: hash,
            presigner,
            consumed,
            volume,
            deals,
        })
    }

    async fn category_time(&self, category: U256) -> Result<U256, SdkError> {
        Ok(self
            .chain
            .hub()
            .viewCategory(category)
            .call()
            .await
            .map_err(SdkError::read(format!("category {category}")))?
            .workClockTimeRef)
    }
}

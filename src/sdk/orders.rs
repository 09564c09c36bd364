//! Finding presigned orders again. On chain a presigned order is only its hash (in
//! `viewPresigned` and a `Signed*Order` event); the order itself is in the input of the
//! `manage*Order` transaction that presigned it. pew reads it from there, checks that it
//! hashes back to the same value, and so can match, inspect or cancel any presigned order
//! from any machine, without an off-chain order book.

use alloy::primitives::{B256, Bytes};
use alloy::providers::Provider;
use alloy::sol_types::{SolCall, SolEvent};

use super::{Sdk, SdkError};
use crate::abi::IexecInterfaceToken as Hub;
use crate::poco::OrderHash;
use crate::poco::order::{AppOrder, DatasetOrder, Order, RequestOrder, Signed, WorkerpoolOrder};

impl Sdk {
    /// The input of the transaction that emitted the presign event `topic0` for `hash`.
    async fn presign_input(
        &self,
        kind: &str,
        topic0: B256,
        hash: OrderHash,
    ) -> Result<Bytes, SdkError> {
        Ok(self.presign_input_in(kind, topic0, hash, None).await?.0)
    }

    /// Like [`Sdk::presign_input`], in the one block `at` when it is known, else in a scan no
    /// wider than `max_scan_blocks` (see [`Sdk::scan_start`]); with the presign's block.
    async fn presign_input_in(
        &self,
        kind: &str,
        topic0: B256,
        hash: OrderHash,
        at: Option<u64>,
    ) -> Result<(Bytes, u64), SdkError> {
        let (from, to) = match at {
            Some(block) => (block, block),
            None => {
                let latest = self.latest_block().await?;
                match self.known_start(hash) {
                    // Known to be at or after `from` (--from-block, or this machine made it):
                    // the presign is in the first blocks after it.
                    Some(from) => (
                        from,
                        latest.min(from.saturating_add(self.max_scan_blocks.saturating_sub(1))),
                    ),
                    None => {
                        let from = self.log_from_block;
                        self.check_scan(&format!("{kind} order {hash}"), from, latest)?;
                        (from, latest)
                    }
                }
            }
        };
        let found = self
            .hub_logs(
                &format!("presign logs of {kind} orders"),
                topic0,
                Some(from),
                Some(to),
            )
            .await?;
        // The latest presign wins: an order can be presigned again after a reorg or by a
        // delegate, and any of those transactions holds the same order.
        let log = found
            .into_iter()
            .rev()
            .find(|log| log.data().data.as_ref() == hash.0.as_slice())
            .ok_or_else(|| {
                SdkError::NotFound(format!(
                    "no {kind} order {hash} was presigned on this chain in blocks {from}..={to} (give --from-block if it is older)"
                ))
            })?;
        let tx_hash = log.transaction_hash.ok_or_else(|| {
            SdkError::NotFound(format!(
                "the node gave the presign log of {hash} without its transaction"
            ))
        })?;
        let tx = self
            .chain
            .provider
            .get_transaction_by_hash(tx_hash)
            .await
            .map_err(|e| SdkError::Read {
                what: format!("transaction {tx_hash}"),
                reason: e.to_string(),
            })?
            .ok_or_else(|| {
                SdkError::NotFound(format!("transaction {tx_hash} is unknown to the node"))
            })?;
        let block = log.block_number.unwrap_or(from);
        Ok((alloy::consensus::Transaction::input(&tx).clone(), block))
    }

    fn check_hash<O: Order>(&self, kind: &str, order: O, hash: OrderHash) -> Result<O, SdkError> {
        if order.hash(&self.chain.domain()) != hash {
            return Err(SdkError::NotFound(format!(
                "the transaction behind {kind} order {hash} presigned another order"
            )));
        }
        Ok(order)
    }

    fn not_direct(kind: &str, hash: OrderHash) -> SdkError {
        SdkError::NotFound(format!(
            "{kind} order {hash} was presigned through a contract; pew cannot read the order back"
        ))
    }

    /// A presigned app order, read back from the chain.
    pub async fn find_app_order(&self, hash: OrderHash) -> Result<AppOrder, SdkError> {
        let input = self
            .presign_input("app", Hub::SignedAppOrder::SIGNATURE_HASH, hash)
            .await?;
        let call = Hub::manageAppOrderCall::abi_decode(&input)
            .map_err(|_| Self::not_direct("app", hash))?;
        self.check_hash("app", Signed::<AppOrder>::from(call.0.order).order, hash)
    }

    /// A presigned dataset order, read back from the chain.
    pub async fn find_dataset_order(&self, hash: OrderHash) -> Result<DatasetOrder, SdkError> {
        let input = self
            .presign_input("dataset", Hub::SignedDatasetOrder::SIGNATURE_HASH, hash)
            .await?;
        let call = Hub::manageDatasetOrderCall::abi_decode(&input)
            .map_err(|_| Self::not_direct("dataset", hash))?;
        self.check_hash(
            "dataset",
            Signed::<DatasetOrder>::from(call.0.order).order,
            hash,
        )
    }

    /// A presigned workerpool order, read back from the chain.
    pub async fn find_workerpool_order(
        &self,
        hash: OrderHash,
    ) -> Result<WorkerpoolOrder, SdkError> {
        let input = self
            .presign_input(
                "workerpool",
                Hub::SignedWorkerpoolOrder::SIGNATURE_HASH,
                hash,
            )
            .await?;
        let call = Hub::manageWorkerpoolOrderCall::abi_decode(&input)
            .map_err(|_| Self::not_direct("workerpool", hash))?;
        self.check_hash(
            "workerpool",
            Signed::<WorkerpoolOrder>::from(call.0.order).order,
            hash,
        )
    }

    /// A presigned request order, read back from the chain.
    pub async fn find_request_order(&self, hash: OrderHash) -> Result<RequestOrder, SdkError> {
        Ok(self.find_request_order_in(hash, None).await?.0)
    }

    /// A presigned request order whose presign event is in block `at` (when known), with the
    /// block it was presigned in.
    pub async fn find_request_order_in(
        &self,
        hash: OrderHash,
        at: Option<u64>,
    ) -> Result<(RequestOrder, u64), SdkError> {
        let (input, block) = self
            .presign_input_in("request", Hub::SignedRequestOrder::SIGNATURE_HASH, hash, at)
            .await?;
        let call = Hub::manageRequestOrderCall::abi_decode(&input)
            .map_err(|_| Self::not_direct("request", hash))?;
        let order = self.check_hash(
            "request",
            Signed::<RequestOrder>::from(call.0.order).order,
            hash,
        )?;
        Ok((order, block))
    }
}

//! The one transaction sender. Everything pew signs and sends goes through [`TxSender`], which
//! owns the nonce, the EIP-1559 fee policy (under a cap), gas estimation with a margin,
//! retries of transport errors with backoff, replacement of a transaction stuck for N blocks,
//! confirmations, and turning reverts into readable errors.
//!
//! Reverts are caught before sending where possible: gas estimation runs the call, so a call
//! that would revert costs nothing and says why.

use std::time::Duration;

use alloy::consensus::TxEnvelope;
use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::{RpcError, TransportError};
use tokio::sync::Mutex;

use super::revert::describe_revert;

/// How transactions are priced, retried and confirmed.
#[derive(Debug, Clone)]
pub struct SendPolicy {
    /// Never pay more than this per gas (wei), whatever the network asks.
    pub max_fee_per_gas_cap: u128,
    /// Tip per gas (wei), before the cap.
    pub priority_fee_per_gas: u128,
    /// Gas limit = estimate × (100 + margin) / 100 + extra.
    pub gas_margin_percent: u64,
    /// Added to every gas estimate (covers callbacks and state drift).
    pub gas_extra: u64,
    /// Blocks to wait on top of the one that includes the transaction.
    pub confirmations: u64,
    /// Replace a transaction that is still pending after this many blocks.
    pub stuck_after_blocks: u64,
    /// Attempts for a transport error before giving up.
    pub transport_retries: u32,
    /// How often to poll for receipts and blocks.
    pub poll_interval: Duration,
    /// Give up waiting for a receipt after this long.
    pub receipt_timeout: Duration,
}

impl Default for SendPolicy {
    fn default() -> Self {
        Self {
            max_fee_per_gas_cap: 100_000_000_000, // 100 gwei
            priority_fee_per_gas: 10_000_000,     // 0.01 gwei: Arbitrum ignores tips
            gas_margin_percent: 20,
            gas_extra: 50_000,
            confirmations: 0,
            stuck_after_blocks: 5,
            transport_retries: 5,
            poll_interval: Duration::from_millis(200),
            receipt_timeout: Duration::from_secs(300),
        }
    }
}

/// Why a transaction was not sent or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// The node refuses to run the call: it would revert.
    #[error("{label}: {reason}")]
    Reverted {
        /// What was being sent.
        label: String,
        /// The decoded revert reason.
        reason: String,
    },
    /// The transaction was mined but failed.
    #[error("{label}: transaction {tx} failed: {reason}")]
    Failed {
        /// What was being sent.
        label: String,
        /// The transaction hash.
        tx: B256,
        /// Why (revert reason or "out of gas").
        reason: String,
    },
    /// The network's base fee is above the configured cap.
    #[error(
        "{label}: the network asks {asked} wei per gas, above the cap of {cap} wei (chain.max_fee_per_gas_gwei); wait for fees to fall or raise the cap"
    )]
    FeeAboveCap {
        /// What was being sent.
        label: String,
        /// The fee the network asks.
        asked: u128,
        /// The cap.
        cap: u128,
    },
    /// The sender has too little ETH for gas.
    #[error("{label}: {address} has too little ETH to pay for gas: fund it and retry")]
    NoGas {
        /// What was being sent.
        label: String,
        /// The sender.
        address: Address,
    },
    /// The RPC node could not be reached, even after retries.
    #[error("{label}: the RPC node did not answer: {reason}")]
    Transport {
        /// What was being sent.
        label: String,
        /// The last transport error.
        reason: String,
    },
    /// The transaction left the node's pool without being mined: the chain went back below
    /// its nonce (a reorg), or another transaction used the nonce.
    #[error("{label}: transaction {tx} was dropped: {reason}")]
    Dropped {
        /// What was being sent.
        label: String,
        /// The last hash sent.
        tx: B256,
        /// Why.
        reason: String,
    },
    /// No receipt came in time.
    #[error("{label}: transaction {tx} was not mined within {seconds} s")]
    Timeout {
        /// What was being sent.
        label: String,
        /// The last hash sent.
        tx: B256,
        /// The wait.
        seconds: u64,
    },
}

/// Signs and sends transactions for one account on one chain.
pub struct TxSender {
    provider: DynProvider,
    wallet: EthereumWallet,
    from: Address,
    chain_id: u64,
    policy: SendPolicy,
    next_nonce: Mutex<Option<u64>>,
    log: Option<std::sync::Arc<dyn TxLog>>,
}

/// Where a transaction is in its life, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Signed with a nonce, about to be handed to the node.
    Sending,
    /// Accepted by the node (the hash is known).
    Sent,
    /// Replaced by the same nonce with higher fees (the hash is the replacement's).
    Replaced,
    /// Mined and successful.
    Mined,
    /// Mined and reverted.
    Reverted,
    /// Will never be mined (its nonce was used by another, or a reorg dropped it).
    Dropped,
    /// Not mined in time; it may still be.
    TimedOut,
    /// Refused before it was sent (no gas, a transport error).
    NotSent,
}

impl TxState {
    /// The journal's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Replaced => "replaced",
            Self::Mined => "mined",
            Self::Reverted => "reverted",
            Self::Dropped => "dropped",
            Self::TimedOut => "timed-out",
            Self::NotSent => "not-sent",
        }
    }
}

/// Records every transaction before and after each of its side effects (the node's journal).
pub trait TxLog: Send + Sync {
    /// A new transaction from `from` with `nonce`, about to be sent; returns its entry id.
    fn begin(&self, from: Address, nonce: u64, label: &str) -> Option<i64>;
    /// The entry's new state, with the hash once there is one.
    fn update(&self, entry: i64, hash: Option<B256>, state: TxState);
}

fn revert_data(error: &TransportError) -> Option<Bytes> {
    error
        .as_error_resp()
        .and_then(|payload| payload.as_revert_data())
}

fn is_transport(error: &TransportError) -> bool {
    matches!(error, RpcError::Transport(_))
}

fn mentions(error: &TransportError, words: &[&str]) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    words.iter().any(|w| text.contains(w))
}

impl TxSender {
    /// A sender for `signer` on `provider`, whose chain must be `chain_id` (checked by the
    /// caller before: see `chain::client`).
    pub fn new(
        provider: DynProvider,
        signer: PrivateKeySigner,
        chain_id: u64,
        policy: SendPolicy,
    ) -> Self {
        Self {
            provider,
            from: signer.address(),
            wallet: EthereumWallet::from(signer),
            chain_id,
            policy,
            next_nonce: Mutex::new(None),
            log: None,
        }
    }

    /// Journals every transaction this sender sends from now on.
    pub fn set_log(&mut self, log: std::sync::Arc<dyn TxLog>) {
        self.log = Some(log);
    }

    fn journal(&self, entry: Option<i64>, hash: Option<B256>, state: TxState) {
        if let (Some(log), Some(entry)) = (&self.log, entry) {
            log.update(entry, hash, state);
        }
    }

    /// Forgets the cached nonce, so the next transaction reads it from the chain again (after
    /// a reorg took our transactions away).
    pub async fn reset_nonce(&self) {
        *self.next_nonce.lock().await = None;
    }

    /// The sending account.
    pub fn address(&self) -> Address {
        self.from
    }

    /// The provider transactions go through.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The one retry loop: runs an RPC call, retrying transport errors with exponential
    /// backoff up to `policy.transport_retries` times; any other error, or the last transport
    /// error, is returned for the caller to read.
    async fn with_retries<T, F, Fut>(&self, label: &str, mut call: F) -> Result<T, TransportError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, TransportError>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            match call().await {
                Err(error) if is_transport(&error) && attempt < self.policy.transport_retries => {
                    attempt += 1;
                    tracing::warn!(label, attempt, error = %crate::text::brief(&error), "RPC transport error; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                outcome => return outcome,
            }
        }
    }

    /// Runs an RPC call through [`Self::with_retries`]; an error is a transport failure.
    async fn retry<T, F, Fut>(&self, label: &str, call: F) -> Result<T, TxError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, TransportError>>,
    {
        self.with_retries(label, call)
            .await
            .map_err(|error| TxError::Transport {
                label: label.to_string(),
                reason: error.to_string(),
            })
    }

    /// Checks that `to.call(data)` would succeed, and returns the gas limit to use.
    pub async fn estimate(
        &self,
        label: &str,
        to: Address,
        data: &Bytes,
        value: U256,
    ) -> Result<u64, TxError> {
        let request = TransactionRequest::default()
            .with_from(self.from)
            .with_to(to)
            .with_input(data.clone())
            .with_value(value);
        let estimated = self
            .with_retries(label, || async {
                self.provider.estimate_gas(request.clone()).await
            })
            .await;
        match estimated {
            Ok(gas) => Ok(
                gas.saturating_mul(100 + self.policy.gas_margin_percent) / 100
                    + self.policy.gas_extra,
            ),
            Err(error) if mentions(&error, &["insufficient funds"]) => Err(TxError::NoGas {
                label: label.into(),
                address: self.from,
            }),
            Err(error) if is_transport(&error) => Err(TxError::Transport {
                label: label.into(),
                reason: error.to_string(),
            }),
            Err(error) => {
                let data = revert_data(&error);
                let reason = if data.is_some() || mentions(&error, &["revert"]) {
                    describe_revert(data.as_ref().map(|d| d.as_ref()))
                } else {
                    error.to_string()
                };
                Err(TxError::Reverted {
                    label: label.into(),
                    reason,
                })
            }
        }
    }

    /// Sends a call to `to` and waits for it to be mined (and confirmed, per the policy).
    pub async fn send(
        &self,
        label: &str,
        to: Address,
        data: Bytes,
    ) -> Result<TransactionReceipt, TxError> {
        self.send_value(label, to, data, U256::ZERO).await
    }

    /// Like [`TxSender::send`], with ETH attached.
    pub async fn send_value(
        &self,
        label: &str,
        to: Address,
        data: Bytes,
        value: U256,
    ) -> Result<TransactionReceipt, TxError> {
        let gas = self.estimate(label, to, &data, value).await?;
        let (max_fee, tip) = self.fees(label).await?;

        // The nonce lock is held until the transaction is accepted by the node, so two tasks
        // never race for the same nonce.
        let mut next = self.next_nonce.lock().await;
        let nonce = match *next {
            Some(nonce) => nonce,
            None => {
                self.retry(label, || async {
                    self.provider
                        .get_transaction_count(self.from)
                        .pending()
                        .await
                })
                .await?
            }
        };
        let entry = self
            .log
            .as_ref()
            .and_then(|log| log.begin(self.from, nonce, label));
        let first = self
            .sign_and_send(label, to, &data, value, gas, nonce, (max_fee, tip), entry)
            .await;
        let hash = match first {
            Ok(hash) => hash,
            Err(error) => {
                *next = None; // re-read the nonce next time
                self.journal(entry, None, TxState::NotSent);
                return Err(error);
            }
        };
        self.journal(entry, Some(hash), TxState::Sent);
        let outcome = self
            .follow(
                label,
                to,
                &data,
                value,
                gas,
                nonce,
                (max_fee, tip),
                (hash, entry),
                next,
            )
            .await;
        match &outcome {
            Ok(receipt) => self.journal(entry, Some(receipt.transaction_hash), TxState::Mined),
            Err(TxError::Failed { tx, .. }) => self.journal(entry, Some(*tx), TxState::Reverted),
            Err(TxError::Dropped { tx, .. }) => self.journal(entry, Some(*tx), TxState::Dropped),
            Err(TxError::Timeout { tx, .. }) => self.journal(entry, Some(*tx), TxState::TimedOut),
            Err(_) => {}
        }
        outcome
    }

    /// Waits for `hash` (or its replacements) to be mined, replacing it when stuck.
    #[allow(clippy::too_many_arguments)]
    async fn follow(
        &self,
        label: &str,
        to: Address,
        data: &Bytes,
        value: U256,
        gas: u64,
        nonce: u64,
        (mut max_fee, mut tip): (u128, u128),
        (hash, entry): (B256, Option<i64>),
        mut next: tokio::sync::MutexGuard<'_, Option<u64>>,
    ) -> Result<TransactionReceipt, TxError> {
        *next = Some(nonce.saturating_add(1));
        drop(next);
        let mut sent = vec![hash];
        tracing::info!(label, tx = %hash, nonce, gas, "transaction sent");
        crate::failpoint::hit(&format!(
            "sent:{}",
            label.split_whitespace().next().unwrap_or(label)
        ));

        let started = tokio::time::Instant::now();
        let mut lost_polls = 0u32;
        let mut sent_at_block = self.block_number(label).await?;
        loop {
            for hash in sent.iter().rev() {
                let receipt = self
                    .retry(label, || self.provider.get_transaction_receipt(*hash))
                    .await?;
                if let Some(receipt) = receipt {
                    return self.finish(label, to, data, value, receipt).await;
                }
            }
            // A node's views (nonce, receipts, pool) are not updated atomically: only a verdict
            // that holds for several polls in a row counts.
            let verdict = self.lost(label, nonce, &sent).await?;
            lost_polls = if verdict.is_some() { lost_polls + 1 } else { 0 };
            if let (Some(reason), true) = (verdict, lost_polls >= 10) {
                self.reset_nonce().await;
                return Err(TxError::Dropped {
                    label: label.into(),
                    tx: *sent.last().expect("one hash was sent"),
                    reason,
                });
            }
            if started.elapsed() > self.policy.receipt_timeout {
                return Err(TxError::Timeout {
                    label: label.into(),
                    tx: *sent.last().expect("one hash was sent"),
                    seconds: self.policy.receipt_timeout.as_secs(),
                });
            }
            let block = self.block_number(label).await?;
            if block >= sent_at_block.saturating_add(self.policy.stuck_after_blocks) {
                // Stuck: resend the same nonce with fees raised by 12.5 % (the minimum bump
                // nodes accept for a replacement), never above the cap.
                let bumped_fee = (max_fee * 9 / 8 + 1).min(self.policy.max_fee_per_gas_cap);
                if bumped_fee > max_fee {
                    max_fee = bumped_fee;
                    tip = (tip * 9 / 8 + 1).min(max_fee);
                    match self
                        .sign_and_send(label, to, data, value, gas, nonce, (max_fee, tip), entry)
                        .await
                    {
                        Ok(hash) => {
                            tracing::warn!(label, tx = %hash, nonce, max_fee, "replaced a stuck transaction");
                            sent.push(hash);
                            self.journal(entry, Some(hash), TxState::Replaced);
                        }
                        Err(error) => {
                            tracing::warn!(label, error = %crate::text::brief(&error), "replacement not accepted; still waiting");
                        }
                    }
                }
                sent_at_block = block;
            }
            tokio::time::sleep(self.policy.poll_interval).await;
        }
    }

    /// Why none of `sent` (all with `nonce`) can be mined any more, if that is so.
    async fn lost(
        &self,
        label: &str,
        nonce: u64,
        sent: &[B256],
    ) -> Result<Option<String>, TxError> {
        let mined = self
            .retry(label, || async {
                self.provider
                    .get_transaction_count(self.from)
                    .latest()
                    .await
            })
            .await?;
        if mined == nonce {
            return Ok(None); // our slot is next: waiting (or replacing) is right
        }
        for hash in sent {
            if self
                .retry(label, || self.provider.get_transaction_receipt(*hash))
                .await?
                .is_some()
            {
                return Ok(None); // mined after all; the caller picks the receipt up
            }
        }
        if mined > nonce {
            return Ok(Some(format!(
                "nonce {nonce} was used by another transaction"
            )));
        }
        for hash in sent {
            let known = self
                .retry(label, || self.provider.get_transaction_by_hash(*hash))
                .await?;
            if known.is_some() {
                return Ok(None);
            }
        }
        Ok(Some(format!(
            "the chain went back to nonce {mined}, below this transaction's {nonce} (a reorg)"
        )))
    }

    async fn block_number(&self, label: &str) -> Result<u64, TxError> {
        self.retry(label, || self.provider.get_block_number()).await
    }

    /// The fees to offer: the network's estimate, capped.
    async fn fees(&self, label: &str) -> Result<(u128, u128), TxError> {
        let estimate = self
            .retry(label, || self.provider.estimate_eip1559_fees())
            .await?;
        let base_needed = estimate
            .max_fee_per_gas
            .saturating_sub(estimate.max_priority_fee_per_gas);
        let cap = self.policy.max_fee_per_gas_cap;
        if base_needed > cap {
            return Err(TxError::FeeAboveCap {
                label: label.into(),
                asked: base_needed,
                cap,
            });
        }
        let tip = self.policy.priority_fee_per_gas.min(cap);
        let max_fee = (base_needed + tip).max(estimate.max_fee_per_gas).min(cap);
        Ok((max_fee, tip.min(max_fee)))
    }

    #[allow(clippy::too_many_arguments)]
    async fn sign_and_send(
        &self,
        label: &str,
        to: Address,
        data: &Bytes,
        value: U256,
        gas: u64,
        nonce: u64,
        (max_fee, tip): (u128, u128),
        entry: Option<i64>,
    ) -> Result<B256, TxError> {
        let request = TransactionRequest::default()
            .with_from(self.from)
            .with_to(to)
            .with_input(data.clone())
            .with_value(value)
            .with_chain_id(self.chain_id)
            .with_nonce(nonce)
            .with_gas_limit(gas)
            .with_max_fee_per_gas(max_fee)
            .with_max_priority_fee_per_gas(tip);
        let envelope: TxEnvelope =
            request
                .build(&self.wallet)
                .await
                .map_err(|e| TxError::Reverted {
                    label: label.into(),
                    reason: format!("cannot sign the transaction: {e}"),
                })?;
        let encoded = envelope.encoded_2718();
        let hash = *envelope.tx_hash();
        // Journaled before it leaves: after a power cut the hash is there to look up.
        self.journal(entry, Some(hash), TxState::Sending);
        // A resend after a transport error is the same signed transaction: harmless.
        let sent = self
            .with_retries(label, || async {
                self.provider
                    .send_raw_transaction(&encoded)
                    .await
                    .map(|_| ())
            })
            .await;
        match sent {
            Ok(()) => Ok(hash),
            Err(error) if mentions(&error, &["already known", "known transaction"]) => Ok(hash),
            Err(error) if mentions(&error, &["insufficient funds"]) => Err(TxError::NoGas {
                label: label.into(),
                address: self.from,
            }),
            Err(error) => Err(TxError::Transport {
                label: label.into(),
                reason: error.to_string(),
            }),
        }
    }

    /// Turns a mined receipt into success, or into the reason it failed; then waits for the
    /// configured confirmations.
    async fn finish(
        &self,
        label: &str,
        to: Address,
        data: &Bytes,
        value: U256,
        receipt: TransactionReceipt,
    ) -> Result<TransactionReceipt, TxError> {
        if !receipt.status() {
            let gas_limit = self
                .provider
                .get_transaction_by_hash(receipt.transaction_hash)
                .await
                .ok()
                .flatten()
                .map(|tx| alloy::consensus::Transaction::gas_limit(&tx));
            let reason = if gas_limit == Some(receipt.gas_used) {
                "out of gas".to_string()
            } else {
                // Replay the call on the state before the block to learn why it reverted.
                let block = receipt.block_number.unwrap_or_default().saturating_sub(1);
                let request = TransactionRequest::default()
                    .with_from(self.from)
                    .with_to(to)
                    .with_input(data.clone())
                    .with_value(value);
                match self.provider.call(request).block(block.into()).await {
                    Err(error) => describe_revert(revert_data(&error).as_ref().map(|d| d.as_ref())),
                    Ok(_) => describe_revert(None),
                }
            };
            return Err(TxError::Failed {
                label: label.into(),
                tx: receipt.transaction_hash,
                reason,
            });
        }
        if self.policy.confirmations > 0 {
            let mined = receipt.block_number.unwrap_or_default();
            let target = mined.saturating_add(self.policy.confirmations);
            while self.block_number(label).await? < target {
                tokio::time::sleep(self.policy.poll_interval).await;
            }
        }
        tracing::debug!(label, tx = %receipt.transaction_hash, gas = receipt.gas_used, "transaction mined");
        Ok(receipt)
    }
}

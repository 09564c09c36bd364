//! Balances and the iExec escrow: RLC in the wallet, stake and locked RLC in the PoCo account,
//! ETH for gas; deposits and withdrawals checked against balances before anything is sent.

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use serde::Serialize;

use super::{Sdk, SdkError};
use crate::abi::RLC;
use crate::poco::Nrlc;

/// One account's money, as pew shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Balances {
    /// The account.
    pub address: Address,
    /// RLC held in the wallet (nRLC).
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub wallet_nrlc: U256,
    /// Free RLC in the iExec account (nRLC).
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub stake_nrlc: U256,
    /// RLC locked in running deals (nRLC).
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub locked_nrlc: U256,
    /// ETH for gas (wei).
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub eth_wei: U256,
}

impl Sdk {
    async fn rlc_token(&self) -> Result<Address, SdkError> {
        self.chain
            .hub()
            .token()
            .call()
            .await
            .map_err(SdkError::read("the RLC token address"))
    }

    /// The balances of `who`.
    pub async fn balances(&self, who: Address) -> Result<Balances, SdkError> {
        let token = self.rlc_token().await?;
        let wallet = RLC::new(token, self.chain.provider.clone())
            .balanceOf(who)
            .call()
            .await
            .map_err(SdkError::read(format!("the RLC balance of {who}")))?;
        let account = self.poco().account(who).await?;
        let eth = self
            .chain
            .provider
            .get_balance(who)
            .await
            .map_err(|e| SdkError::Read {
                what: format!("the ETH balance of {who}"),
                reason: e.to_string(),
            })?;
        Ok(Balances {
            address: who,
            wallet_nrlc: wallet,
            stake_nrlc: account.stake,
            locked_nrlc: account.locked,
            eth_wei: eth,
        })
    }

    /// Moves `amount` RLC from the wallet into the iExec account (approve if needed, then
    /// deposit). Refused before any transaction when the wallet holds less.
    pub async fn deposit(&self, amount: Nrlc) -> Result<Balances, SdkError> {
        let sender = self.sender()?;
        let me = sender.address();
        if amount.0.is_zero() {
            return Err(SdkError::Refused(
                "the amount must be more than zero".into(),
            ));
        }
        let before = self.balances(me).await?;
        if before.wallet_nrlc < amount.0 {
            return Err(SdkError::Refused(format!(
                "cannot deposit {amount}: the wallet {me} holds only {}",
                Nrlc(before.wallet_nrlc)
            )));
        }
        let token = self.rlc_token().await?;
        let hub = self.chain.target.hub;
        let allowance = RLC::new(token, self.chain.provider.clone())
            .allowance(me, hub)
            .call()
            .await
            .map_err(SdkError::read("the RLC allowance"))?;
        if allowance < amount.0 {
            let approve = RLC::approveCall {
                _spender: hub,
                _value: amount.0,
            };
            sender
                .send(
                    "approve RLC for the iExec hub",
                    token,
                    approve.abi_encode().into(),
                )
                .await
                .map_err(crate::chain::poco::PocoError::from)?;
        }
        let deposit = crate::abi::IexecInterfaceToken::depositCall::new((amount.0,));
        self.poco_writer()?
            .send(&format!("deposit {amount}"), deposit)
            .await?;
        self.balances(me).await
    }

    /// Moves `amount` RLC from the iExec account back to the wallet. Refused before any
    /// transaction when the free stake is smaller.
    pub async fn withdraw(&self, amount: Nrlc) -> Result<Balances, SdkError> {
        let me = self.sender()?.address();
        if amount.0.is_zero() {
            return Err(SdkError::Refused(
                "the amount must be more than zero".into(),
            ));
        }
        let before = self.balances(me).await?;
        if before.stake_nrlc < amount.0 {
            return Err(SdkError::Refused(format!(
                "cannot withdraw {amount}: the iExec account of {me} has only {} free ({} locked in deals)",
                Nrlc(before.stake_nrlc),
                Nrlc(before.locked_nrlc)
            )));
        }
        let withdraw = crate::abi::IexecInterfaceToken::withdrawCall::new((amount.0,));
        self.poco_writer()?
            .send(&format!("withdraw {amount}"), withdraw)
            .await?;
        self.balances(me).await
    }
}

//! `pew account show|deposit|withdraw`: RLC in the wallet and in the iExec account.

use std::process::ExitCode;

use alloy::primitives::Address;
use clap::Subcommand;

use super::context::{Globals, print};
use crate::config::Settings;
use crate::poco::Nrlc;
use crate::sdk::account::Balances;

/// The account subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// RLC in the wallet, stake and locked RLC in the iExec account, ETH for gas.
    Show {
        /// Another account than the wallet's.
        #[arg(value_parser = super::context::address_arg, long)]
        address: Option<Address>,
    },
    /// Move RLC from the wallet into the iExec account (e.g. `1.5` or `1500000000nRLC`).
    Deposit {
        /// RLC with decimals, or nRLC with the suffix.
        amount: Nrlc,
    },
    /// Move free RLC from the iExec account back to the wallet.
    Withdraw {
        /// RLC with decimals, or nRLC with the suffix.
        amount: Nrlc,
    },
}

fn human(b: &Balances) -> String {
    format!(
        "account {}\n  wallet RLC  {}\n  stake       {}\n  locked      {}\n  ETH (wei)   {}",
        b.address,
        Nrlc(b.wallet_nrlc),
        Nrlc(b.stake_nrlc),
        Nrlc(b.locked_nrlc),
        b.eth_wei
    )
}

/// Runs one account subcommand.
pub async fn run(
    command: AccountCommand,
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let balances = match command {
        AccountCommand::Show { address } => {
            let who = match address {
                Some(a) => a,
                None => crate::wallet::address(&globals.keystore_path(settings))?,
            };
            globals.sdk(settings, false).await?.balances(who).await?
        }
        AccountCommand::Deposit { amount } => {
            globals.sdk(settings, true).await?.deposit(amount).await?
        }
        AccountCommand::Withdraw { amount } => {
            globals.sdk(settings, true).await?.withdraw(amount).await?
        }
    };
    print(globals.json, &balances, human);
    Ok(ExitCode::SUCCESS)
}

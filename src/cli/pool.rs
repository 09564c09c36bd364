//! `pew pool create|show|publish`: workerpools (the node's identity on chain) and their orders.

use std::process::ExitCode;

use alloy::primitives::{Address, U256};
use clap::Subcommand;

use super::app::print_registration;
use super::context::{Globals, Published, print};
use crate::config::Settings;
use crate::poco::order::WorkerpoolOrder;
use crate::poco::{Category, Nrlc, Tag};

/// The pool subcommands.
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Create a workerpool owned by the wallet (prints its address).
    Create {
        /// The pool's description.
        #[arg(long)]
        description: String,
    },
    /// Show a workerpool's registration.
    Show {
        /// The workerpool.
        #[arg(value_parser = super::context::address_arg)]
        pool: Address,
    },
    /// Presign a workerpool order by hand (`pew run` does this itself under its energy gate).
    Publish {
        /// The workerpool.
        #[arg(value_parser = super::context::address_arg, long)]
        pool: Address,
        /// Price per task (RLC, or nRLC with the suffix).
        #[arg(long, default_value = "0")]
        price: Nrlc,
        /// Tasks offered.
        #[arg(long, default_value_t = 1)]
        volume: u64,
        /// Category: XS, S, M, L, XL or 0-4.
        #[arg(long, default_value = "XS")]
        category: Category,
        /// Highest trust offered.
        #[arg(long, default_value_t = 1)]
        trust: u64,
        /// Capabilities offered (TEE bits are refused: pew runs standard tasks).
        #[arg(long, default_value = "0x0")]
        tag: Tag,
    },
}

/// Runs one pool subcommand.
pub async fn run(
    command: PoolCommand,
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    match command {
        PoolCommand::Create { description } => {
            let registration = globals
                .sdk(settings, true)
                .await?
                .create_pool(&description)
                .await?;
            print_registration(globals.json, "workerpool", registration);
        }
        PoolCommand::Show { pool } => {
            let info = globals.sdk(settings, false).await?.pool(pool).await?;
            print(globals.json, &info, |p| {
                format!(
                    "workerpool {}\n  owner                   {}\n  description             {}\n  worker stake ratio      {} %\n  scheduler reward ratio  {} %",
                    p.address,
                    p.owner,
                    super::app::shown(&p.description),
                    p.worker_stake_ratio,
                    p.scheduler_reward_ratio
                )
            });
        }
        PoolCommand::Publish {
            pool,
            price,
            volume,
            category,
            trust,
            tag,
        } => {
            if tag.requires_tee() {
                anyhow::bail!("tag {tag} offers TEE execution, which pew does not provide");
            }
            let sdk = globals.sdk(settings, true).await?;
            let order = WorkerpoolOrder {
                workerpool: pool,
                workerpoolprice: price.0,
                volume: U256::from(volume),
                tag: tag.0,
                category: U256::from(category.id),
                trust: U256::from(trust),
                apprestrict: Address::ZERO,
                datasetrestrict: Address::ZERO,
                requesterrestrict: Address::ZERO,
                salt: crate::poco::order::random_salt(),
            };
            let hash = sdk.publish_workerpool_order(&order).await?;
            print(
                globals.json,
                &Published {
                    order_hash: hash,
                    asset: pool,
                },
                |p| {
                    format!(
                        "workerpool order {} presigned for {}",
                        p.order_hash, p.asset
                    )
                },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

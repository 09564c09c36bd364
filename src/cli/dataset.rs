//! `pew dataset register|publish|show`: datasets and their orders.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use anyhow::bail;
use clap::Subcommand;

use super::app::print_registration;
use super::context::{Globals, Published, print};
use crate::config::Settings;
use crate::poco::{Nrlc, Tag};
use crate::sdk::assets::open_dataset_order;

/// The dataset subcommands.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Register a dataset file: its SHA-256 is the on-chain checksum. Without --multiaddr the
    /// file is added to IPFS and registered at /ipfs/CID.
    Register {
        /// The dataset file.
        #[arg(long)]
        file: PathBuf,
        /// Where workers download it (https URL or /ipfs/CID) [default: add it to IPFS].
        #[arg(long)]
        multiaddr: Option<String>,
        /// The dataset's name [default: the file name].
        #[arg(long)]
        name: Option<String>,
    },
    /// Presign a dataset order on chain.
    Publish {
        /// The dataset.
        #[arg(value_parser = super::context::address_arg, long)]
        dataset: Address,
        /// Price per use (RLC, or nRLC with the suffix).
        #[arg(long, default_value = "0")]
        price: Nrlc,
        /// How many uses the order allows.
        #[arg(long, default_value_t = 1000000)]
        volume: u64,
        /// Requirements.
        #[arg(long, default_value = "0x0")]
        tag: Tag,
        /// Only this app may use the dataset.
        #[arg(value_parser = super::context::address_arg, long, value_name = "ADDRESS")]
        app_restrict: Option<Address>,
        /// Only this workerpool may run tasks on it.
        #[arg(value_parser = super::context::address_arg, long, value_name = "ADDRESS")]
        workerpool_restrict: Option<Address>,
        /// Only this requester may use it.
        #[arg(value_parser = super::context::address_arg, long, value_name = "ADDRESS")]
        requester_restrict: Option<Address>,
    },
    /// Show a dataset's registration.
    Show {
        /// The dataset.
        #[arg(value_parser = super::context::address_arg)]
        dataset: Address,
    },
}

/// Runs one dataset subcommand.
pub async fn run(
    command: DatasetCommand,
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    match command {
        DatasetCommand::Register {
            file,
            multiaddr,
            name,
        } => {
            let checksum = crate::results::digest::file_sha256(&file)?;
            let sdk = globals.sdk(settings, true).await?;
            let multiaddr = match multiaddr {
                Some(m) => m,
                None => {
                    let Some(api) = sdk.chain.target.ipfs_api.clone() else {
                        bail!(
                            "no IPFS API is configured to add the file to: give --multiaddr or set ipfs.api"
                        );
                    };
                    // No node downloads a dataset larger than its input limit.
                    let bytes = crate::files::read(
                        &file,
                        settings.executor.input_max_mb * 1024 * 1024,
                        "a dataset (executor.input_max_mb)",
                    )?;
                    let added =
                        crate::storage::ipfs::IpfsClient::new(&api, Duration::from_secs(300))
                            .add(&bytes)
                            .await?;
                    format!("/ipfs/{}", added.cid)
                }
            };
            let name = name.unwrap_or_else(|| {
                file.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "dataset".into())
            });
            let registration = sdk.register_dataset(&name, &multiaddr, checksum).await?;
            print_registration(globals.json, "dataset", registration);
        }
        DatasetCommand::Publish {
            dataset,
            price,
            volume,
            tag,
            app_restrict,
            workerpool_restrict,
            requester_restrict,
        } => {
            let sdk = globals.sdk(settings, true).await?;
            let mut order = open_dataset_order(dataset, price.0, U256::from(volume), tag);
            order.apprestrict = app_restrict.unwrap_or_default();
            order.workerpoolrestrict = workerpool_restrict.unwrap_or_default();
            order.requesterrestrict = requester_restrict.unwrap_or_default();
            let hash = sdk.publish_dataset_order(&order).await?;
            print(
                globals.json,
                &Published {
                    order_hash: hash,
                    asset: dataset,
                },
                |p| format!("dataset order {} presigned for {}", p.order_hash, p.asset),
            );
        }
        DatasetCommand::Show { dataset } => {
            let info = globals.sdk(settings, false).await?.dataset(dataset).await?;
            print(globals.json, &info, |d| {
                format!(
                    "dataset {}\n  owner     {}\n  name      {}\n  multiaddr {}\n  checksum  {}",
                    d.address, d.owner, d.name, d.multiaddr, d.checksum
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `pew result download`: fetch a task's result from IPFS and verify it against the chain.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;

use super::context::{Globals, print};
use crate::config::Settings;
use crate::poco::TaskId;
use crate::sdk::tasks::ResultSource;

/// The result subcommands.
#[derive(Debug, Subcommand)]
pub enum ResultCommand {
    /// Download a COMPLETED task's result into DIR/<taskid>, refusing content whose digest
    /// differs from the on-chain result digest.
    Download {
        /// The task id.
        task: TaskId,
        /// Folder to download into.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Read through this IPFS RPC API [default: ipfs.api, then the chain's].
        #[arg(long, value_name = "URL", conflicts_with = "ipfs_gateway")]
        ipfs_api: Option<String>,
        /// Read through this IPFS HTTP gateway instead.
        #[arg(long, value_name = "URL")]
        ipfs_gateway: Option<String>,
    },
    /// Compute the result digest of an app's output folder (what it saw as /iexec_out), by
    /// the same rules the node contributes with.
    Digest {
        /// The output folder (holding computed.json).
        dir: PathBuf,
        /// The deal has a callback: the digest is keccak256 of computed.json's callback-data.
        #[arg(long)]
        callback: bool,
    },
}

/// Runs one result subcommand.
pub async fn run(
    command: ResultCommand,
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let (task, to, ipfs_api, ipfs_gateway) = match command {
        ResultCommand::Download {
            task,
            to,
            ipfs_api,
            ipfs_gateway,
        } => (task, to, ipfs_api, ipfs_gateway),
        ResultCommand::Digest { dir, callback } => {
            let digest = crate::results::digest::result_digest(&dir, callback)?;
            print(
                globals.json,
                &serde_json::json!({ "digest": digest }),
                |_| digest.to_string(),
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    let sdk = globals.sdk(settings, false).await?;
    let source = match (ipfs_api, ipfs_gateway) {
        (Some(api), _) => ResultSource::Api(api),
        (None, Some(gateway)) => ResultSource::Gateway(gateway),
        (None, None) => match (&sdk.chain.target.ipfs_api, &sdk.chain.target.ipfs_gateway) {
            (Some(api), _) => ResultSource::Api(api.clone()),
            (None, Some(gateway)) => ResultSource::Gateway(gateway.clone()),
            (None, None) => {
                bail!("no IPFS endpoint known for this chain: give --ipfs-api or --ipfs-gateway")
            }
        },
    };
    let downloaded = sdk.download_result(task, &source, &to).await?;
    print(globals.json, &downloaded, |d| {
        format!(
            "task {} result verified (digest {}) in {}",
            d.task_id,
            d.digest,
            d.path.display()
        )
    });
    Ok(ExitCode::SUCCESS)
}

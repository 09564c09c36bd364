//! `pew devnet up|down|status`: the local chain with the real PoCo contracts and IPFS.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Settings;
use crate::devnet::{self, DevnetInfo, DevnetOptions};
use crate::tools::Tools;

/// The devnet subcommands.
#[derive(Debug, Subcommand)]
pub enum DevnetCommand {
    /// Start anvil on 127.0.0.1, deploy PoCo v6, fund the dev accounts, start IPFS, and print
    /// the devnet's description as one JSON object on stdout (also written to DIR/devnet.json).
    Up(UpArgs),
    /// Stop a devnet started with `up --detach` (or from another terminal).
    Down(StateDirArg),
    /// Print live facts read from the running devnet's contracts, as JSON.
    Status(StateDirArg),
}

/// Flags of `pew devnet up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// anvil's port on 127.0.0.1 [default: devnet.port, 8545]; 0 picks a free port.
    #[arg(long)]
    port: Option<u16>,
    #[command(flatten)]
    state: StateDirArg,
    /// Return once the devnet is up, leaving it running; stop it with `pew devnet down`.
    #[arg(long)]
    detach: bool,
    /// Do not start the IPFS node.
    #[arg(long)]
    no_ipfs: bool,
}

/// The state folder flag shared by the devnet commands.
#[derive(Debug, Args)]
pub struct StateDirArg {
    /// Folder for devnet.json, logs and the IPFS repository [default: devnet.state_dir,
    /// .pew/devnet].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

impl StateDirArg {
    fn resolve(&self, settings: &Settings) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| settings.devnet.state_dir.clone())
    }
}

/// Runs one devnet subcommand.
pub async fn run(command: DevnetCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match command {
        DevnetCommand::Up(args) => up(args, settings).await,
        DevnetCommand::Down(args) => down(&args.resolve(settings)),
        DevnetCommand::Status(args) => status(&args.resolve(settings)).await,
    }
}

async fn up(args: UpArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let tools = Tools::locate(&settings.devnet.tools_dir)?;
    let options = DevnetOptions {
        state_dir: args.state.resolve(settings),
        port: args.port.unwrap_or(settings.devnet.port),
        ipfs: settings.devnet.ipfs && !args.no_ipfs,
        ipfs_api_port: settings.devnet.ipfs_api_port,
        ipfs_gateway_port: settings.devnet.ipfs_gateway_port,
        ipfs_start_timeout: std::time::Duration::from_secs(
            settings.devnet.ipfs_start_timeout_s.max(1),
        ),
        tools,
        detach: args.detach,
    };
    // Listen for Ctrl-C and SIGTERM before anything starts, so a signal that comes right after
    // the JSON is printed still stops the devnet cleanly.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for SIGINT")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let mut running = devnet::up(options).await?;
    super::output::out_line(&serde_json::to_string(running.info())?);
    if args.detach {
        tracing::info!(
            "devnet detached; stop it with `pew devnet down --state-dir {}`",
            running.state_dir().display()
        );
        running.detach();
        return Ok(ExitCode::SUCCESS);
    }

    tracing::info!("devnet running in the foreground; press Ctrl-C to stop it");
    let mut check = tokio::time::interval(Duration::from_millis(500));
    let code = loop {
        tokio::select! {
            _ = interrupt.recv() => break ExitCode::SUCCESS,
            _ = terminate.recv() => break ExitCode::SUCCESS,
            _ = check.tick() => {
                if let Some(exit) = running.exited_helper() {
                    tracing::error!("{exit}");
                    break ExitCode::FAILURE;
                }
            }
        }
    };
    tracing::info!("stopping the devnet");
    running.stop();
    Ok(code)
}

fn down(state_dir: &Path) -> anyhow::Result<ExitCode> {
    let stopped = devnet::down(state_dir)?;
    if stopped.is_empty() {
        super::output::err_line(&format!(
            "no devnet is running from {}",
            state_dir.display()
        ));
    } else {
        let names: Vec<String> = stopped
            .iter()
            .map(|h| format!("{} (pid {})", h.name, h.pid))
            .collect();
        super::output::err_line(&format!("stopped {}", names.join(", ")));
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(state_dir: &Path) -> anyhow::Result<ExitCode> {
    let info = DevnetInfo::read(&state_dir.join("devnet.json"))?;
    let facts = crate::chain::facts::read_hub_facts(&info.rpc_url, info.hub).await?;
    let ipfs_id = match &info.ipfs_api {
        Some(api) => Some(ipfs_peer_id(api).await?),
        None => None,
    };
    let out = serde_json::json!({
        "rpc_url": info.rpc_url,
        "poco": facts,
        "ipfs_api": info.ipfs_api,
        "ipfs_peer_id": ipfs_id,
    });
    super::output::out_line(&serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

async fn ipfs_peer_id(api: &str) -> anyhow::Result<String> {
    let reply: serde_json::Value = reqwest::Client::new()
        .post(format!("{api}/api/v0/id"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .with_context(|| format!("the IPFS API at {api} does not answer"))?
        .json()
        .await
        .with_context(|| format!("the IPFS API at {api} gave no JSON"))?;
    Ok(reply
        .get("ID")
        .and_then(|id| id.as_str())
        .unwrap_or_default()
        .to_string())
}

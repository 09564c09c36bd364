//! The local proving ground: an anvil chain on 127.0.0.1 with the real iExec PoCo v6
//! contracts deployed, RLC in the dev accounts, and a local IPFS node.
//!
//! `up` starts everything and returns a [`RunningDevnet`] whose description ([`DevnetInfo`])
//! is what `pew devnet up` prints and writes to `devnet.json`. A foreground devnet is stopped
//! when its handle is dropped; a detached one is stopped by [`down`], which finds the helper
//! processes through `processes.json` in the state folder.

pub mod deploy;
pub mod ipfs;
pub mod process;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};
use serde::{Deserialize, Serialize};

use crate::tools::{MissingTool, Tools};
pub use deploy::Deployment;
use process::Helper;

/// anvil's well-known development mnemonic; its keys are public and hold nothing of value.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";
/// The chain id of the devnet (anvil's default).
pub const DEV_CHAIN_ID: u64 = 31337;
/// How many dev accounts anvil creates and the devnet describes.
pub const DEV_ACCOUNTS: u32 = 10;

/// File names inside the state folder.
const INFO_FILE: &str = "devnet.json";
const PROCESSES_FILE: &str = "processes.json";

/// How to start a devnet.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// Folder for devnet.json, logs, the IPFS repository and processes.json.
    pub state_dir: PathBuf,
    /// anvil's port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Whether to start a local IPFS node.
    pub ipfs: bool,
    /// IPFS RPC API port on 127.0.0.1; 0 picks a free one.
    pub ipfs_api_port: u16,
    /// IPFS gateway port on 127.0.0.1; 0 picks a free one.
    pub ipfs_gateway_port: u16,
    /// How long the IPFS node's API may take to answer.
    pub ipfs_start_timeout: std::time::Duration,
    /// Where scripts/setup installed anvil, js-ipfs and the artifacts.
    pub tools: Tools,
    /// Whether the helpers must outlive this process (`--detach`).
    pub detach: bool,
}

/// One dev account with its (public, well-known) private key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevAccount {
    /// The account address.
    pub address: Address,
    /// Its private key, 0x-hex.
    pub private_key: String,
}

/// What a running devnet offers; printed by `pew devnet up` and written to `devnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevnetInfo {
    /// JSON-RPC endpoint of anvil.
    pub rpc_url: String,
    /// The chain id (31337).
    pub chain_id: u64,
    /// The PoCo Diamond.
    pub hub: Address,
    /// The RLC token.
    pub rlc: Address,
    /// The app registry.
    pub app_registry: Address,
    /// The dataset registry.
    pub dataset_registry: Address,
    /// The workerpool registry.
    pub workerpool_registry: Address,
    /// The IPFS RPC API base URL, or null with `--no-ipfs`.
    pub ipfs_api: Option<String>,
    /// The IPFS HTTP gateway base URL, or null with `--no-ipfs`.
    pub ipfs_gateway: Option<String>,
    /// anvil's dev accounts; #0 deployed and owns PoCo.
    pub accounts: Vec<DevAccount>,
    /// The block number once everything was deployed.
    pub block: u64,
}

impl DevnetInfo {
    /// The chain this devnet is, as a plain target (its own RPC URL, chain id, hub and IPFS).
    pub fn target(&self) -> crate::chain::client::ChainTarget {
        crate::chain::client::ChainTarget {
            name: "devnet".into(),
            rpc_urls: vec![self.rpc_url.clone()],
            chain_id: self.chain_id,
            hub: self.hub,
            deploy_block: 0,
            // anvil mines a block per transaction: "a day" of blocks is a lot of them.
            blocks_per_day: 86_400,
            ipfs_api: self.ipfs_api.clone(),
            ipfs_gateway: self.ipfs_gateway.clone(),
        }
    }

    /// Reads a `devnet.json` written by `pew devnet up`.
    pub fn read(path: &Path) -> Result<Self, DevnetError> {
        let text =
            crate::files::read_text(path, crate::files::limit::STATE, "a devnet description")
                .map_err(|e| DevnetError::Io {
                    path: path.to_path_buf(),
                    reason: match e {
                        crate::files::ReadError::Missing { .. } => {
                            "no such file (is a devnet running? start one with `pew devnet up`)"
                                .into()
                        }
                        other => other.to_string(),
                    },
                })?;
        serde_json::from_str(&text).map_err(|e| DevnetError::Io {
            path: path.to_path_buf(),
            reason: format!("not a devnet description: {e}"),
        })
    }

    /// The signer of dev account `index`.
    pub fn signer(&self, index: usize) -> Option<PrivateKeySigner> {
        self.accounts.get(index)?.private_key.parse().ok()
    }
}

/// Why the devnet could not start or stop. Each variant names the cause and the fix.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// A tool from scripts/setup is missing.
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    /// The port is taken by another program.
    #[error(
        "port {port} on 127.0.0.1 (for {what}) is already in use: stop what listens there, or choose another port ({flag})"
    )]
    PortInUse {
        /// The port.
        port: u16,
        /// Which service wanted it.
        what: &'static str,
        /// The flag that changes it.
        flag: &'static str,
    },
    /// A devnet already runs from this state folder.
    #[error(
        "a devnet is already running from {dir} (pids {pids}): stop it with `pew devnet down --state-dir {dir}`"
    )]
    AlreadyRunning {
        /// The state folder.
        dir: String,
        /// Its helper pids.
        pids: String,
    },
    /// A helper could not be started, or stopped answering.
    #[error("{what} did not start: {reason}")]
    Start {
        /// Which helper.
        what: &'static str,
        /// What went wrong, with the end of its log.
        reason: String,
    },
    /// A contract deployment step failed.
    #[error("deploying the PoCo contracts failed: {0}")]
    Deploy(#[from] deploy::DeployError),
    /// A file in the state folder could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> DevnetError + '_ {
    move |e| DevnetError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A devnet started by this process. Dropping a foreground one stops its helpers.
pub struct RunningDevnet {
    info: DevnetInfo,
    state_dir: PathBuf,
    helpers: Vec<(Helper, Child)>,
    detached: bool,
}

impl RunningDevnet {
    /// What the devnet offers.
    pub fn info(&self) -> &DevnetInfo {
        &self.info
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The helper processes.
    pub fn helpers(&self) -> impl Iterator<Item = &Helper> {
        self.helpers.iter().map(|(helper, _)| helper)
    }

    /// The first helper that has exited, with the end of its log.
    pub fn exited_helper(&mut self) -> Option<String> {
        for (helper, child) in &mut self.helpers {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(format!(
                    "{} exited ({status}); end of {}:\n{}",
                    helper.name,
                    helper.log.display(),
                    process::log_tail(&helper.log, 2000)
                ));
            }
        }
        None
    }

    /// Lets the helpers outlive this handle (for `--detach`).
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Stops every helper and removes devnet.json and processes.json.
    pub fn stop(mut self) {
        self.stop_helpers();
    }

    fn stop_helpers(&mut self) {
        for (helper, child) in self.helpers.iter_mut().rev() {
            process::stop_group(helper.pid, Duration::from_secs(5));
            let _ = child.wait();
        }
        self.helpers.clear();
        let _ = std::fs::remove_file(self.state_dir.join(INFO_FILE));
        let _ = std::fs::remove_file(self.state_dir.join(PROCESSES_FILE));
    }
}

impl Drop for RunningDevnet {
    fn drop(&mut self) {
        if !self.detached {
            self.stop_helpers();
        }
    }
}

/// Returns `port` if it is free on 127.0.0.1, or a free port when `port` is 0.
fn claim_port(port: u16, what: &'static str, flag: &'static str) -> Result<u16, DevnetError> {
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => Ok(listener.local_addr().map(|a| a.port()).unwrap_or(port)),
        Err(_) => Err(DevnetError::PortInUse { port, what, flag }),
    }
}

/// The helpers recorded in `state_dir` that still run.
fn live_helpers(state_dir: &Path) -> Vec<Helper> {
    let Ok(text) = crate::files::read_text(
        &state_dir.join(PROCESSES_FILE),
        crate::files::limit::STATE,
        "a process list",
    ) else {
        return Vec::new();
    };
    let helpers: Vec<Helper> = serde_json::from_str(&text).unwrap_or_default();
    helpers
        .into_iter()
        .filter(|h| process::runs(h.pid, program_hint(&h.name)))
        .collect()
}

fn program_hint(helper: &str) -> &'static str {
    match helper {
        "anvil" => "anvil",
        _ => "ipfs",
    }
}

/// Starts anvil, deploys PoCo, funds the dev accounts and (optionally) starts IPFS.
pub async fn up(options: DevnetOptions) -> Result<RunningDevnet, DevnetError> {
    let started = Instant::now();
    let state_dir = options.state_dir.clone();
    std::fs::create_dir_all(&state_dir).map_err(io_error(&state_dir))?;
    let state_dir = state_dir.canonicalize().map_err(io_error(&state_dir))?;
    let running = live_helpers(&state_dir);
    if !running.is_empty() {
        return Err(DevnetError::AlreadyRunning {
            dir: state_dir.display().to_string(),
            pids: running
                .iter()
                .map(|h| h.pid.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }

    let anvil = options.tools.anvil()?;
    let poco = options.tools.poco_package()?;
    let rlc = options.tools.rlc_artifact()?;
    let jsipfs = if options.ipfs {
        Some(options.tools.jsipfs()?)
    } else {
        None
    };
    let port = claim_port(options.port, "anvil", "--port")?;
    let ipfs_ports = if options.ipfs {
        let api = claim_port(
            options.ipfs_api_port,
            "the IPFS API",
            "devnet.ipfs_api_port",
        )?;
        let gateway = claim_port(
            options.ipfs_gateway_port,
            "the IPFS gateway",
            "devnet.ipfs_gateway_port",
        )?;
        Some((api, gateway))
    } else {
        None
    };

    let mut devnet = RunningDevnet {
        info: DevnetInfo {
            rpc_url: format!("http://127.0.0.1:{port}"),
            chain_id: DEV_CHAIN_ID,
            hub: Address::ZERO,
            rlc: Address::ZERO,
            app_registry: Address::ZERO,
            dataset_registry: Address::ZERO,
            workerpool_registry: Address::ZERO,
            ipfs_api: None,
            ipfs_gateway: None,
            accounts: dev_accounts(),
            block: 0,
        },
        state_dir: state_dir.clone(),
        helpers: Vec::new(),
        detached: false,
    };
    let tie = !options.detach;

    tracing::info!(port, "starting anvil");
    // anvil moves old block states to disk, by default under ~/.foundry/anvil/tmp, where they
    // outlive the chain (tens of GB after many test runs). Keep them in the devnet's own folder,
    // bounded, and start each chain with an empty one.
    let states = state_dir.join("anvil-states");
    let _ = std::fs::remove_dir_all(&states);
    let mut command = Command::new(&anvil);
    command.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--chain-id",
        &DEV_CHAIN_ID.to_string(),
        "--accounts",
        &DEV_ACCOUNTS.to_string(),
        "--mnemonic",
        DEV_MNEMONIC,
        "--max-persisted-states",
        &ANVIL_PERSISTED_STATES.to_string(),
    ]);
    command.arg("--cache-path").arg(&states);
    let log = state_dir.join("anvil.log");
    let spawned = process::spawn("anvil", command, &log, tie).map_err(|e| DevnetError::Start {
        what: "anvil",
        reason: format!("{}: {e}", anvil.display()),
    })?;
    devnet.helpers.push(spawned);
    write_processes(&devnet)?;
    wait_for_rpc(&mut devnet).await?;

    tracing::info!("deploying the iExec PoCo v6 contracts from @iexec/poco");
    let deployer = devnet.info.signer(0).expect("dev account 0 exists");
    let accounts: Vec<Address> = devnet.info.accounts.iter().map(|a| a.address).collect();
    let deployment = deploy::deploy_poco(
        &devnet.info.rpc_url,
        &deployer,
        &poco,
        &rlc,
        DEV_CHAIN_ID,
        &accounts,
    )
    .await?;
    devnet.info.hub = deployment.hub;
    devnet.info.rlc = deployment.rlc;
    devnet.info.app_registry = deployment.app_registry;
    devnet.info.dataset_registry = deployment.dataset_registry;
    devnet.info.workerpool_registry = deployment.workerpool_registry;
    tracing::info!(hub = %deployment.hub, elapsed_ms = started.elapsed().as_millis() as u64, "PoCo deployed");

    if let (Some(jsipfs), Some((api_port, gateway_port))) = (jsipfs, ipfs_ports) {
        tracing::info!(
            api_port,
            gateway_port,
            "starting the IPFS node (js-ipfs, offline)"
        );
        // Ports picked here (not fixed by the operator) are picked again if another process
        // takes one before js-ipfs binds it (tests start devnets side by side).
        let picked = options.ipfs_api_port == 0 && options.ipfs_gateway_port == 0;
        let mut ports = (api_port, gateway_port);
        let mut attempt = 1;
        let node = loop {
            match ipfs::start(&jsipfs, &state_dir, ports, options.ipfs_start_timeout, tie).await {
                Err(DevnetError::Start { reason, .. })
                    if picked && attempt < 3 && reason.starts_with(ipfs::PORT_TAKEN) =>
                {
                    tracing::warn!(
                        attempt,
                        "an IPFS port was taken meanwhile; trying other ports"
                    );
                    attempt += 1;
                    ports = (
                        claim_port(0, "the IPFS API", "devnet.ipfs_api_port")?,
                        claim_port(0, "the IPFS gateway", "devnet.ipfs_gateway_port")?,
                    );
                }
                other => break other?,
            }
        };
        devnet.info.ipfs_api = Some(node.api.clone());
        devnet.info.ipfs_gateway = Some(node.gateway.clone());
        devnet.helpers.push((node.helper, node.child));
        write_processes(&devnet)?;
    }

    let provider = ProviderBuilder::new().connect_http(rpc_url(&devnet.info)?);
    devnet.info.block = provider
        .get_block_number()
        .await
        .map_err(|e| DevnetError::Start {
            what: "anvil",
            reason: format!("reading the block number: {e}"),
        })?;
    let info_path = state_dir.join(INFO_FILE);
    let json = serde_json::to_string_pretty(&devnet.info).expect("DevnetInfo serializes");
    std::fs::write(&info_path, json + "\n").map_err(io_error(&info_path))?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        file = %info_path.display(),
        "devnet is up"
    );
    Ok(devnet)
}

fn rpc_url(info: &DevnetInfo) -> Result<reqwest::Url, DevnetError> {
    info.rpc_url.parse().map_err(|e| DevnetError::Start {
        what: "anvil",
        reason: format!("bad RPC URL {}: {e}", info.rpc_url),
    })
}

async fn wait_for_rpc(devnet: &mut RunningDevnet) -> Result<(), DevnetError> {
    let provider = ProviderBuilder::new().connect_http(rpc_url(&devnet.info)?);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = devnet.exited_helper() {
            return Err(DevnetError::Start {
                what: "anvil",
                reason: exit,
            });
        }
        match provider.get_chain_id().await {
            Ok(DEV_CHAIN_ID) => return Ok(()),
            Ok(other) => {
                return Err(DevnetError::Start {
                    what: "anvil",
                    reason: format!("it reports chain id {other}, expected {DEV_CHAIN_ID}"),
                });
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(DevnetError::Start {
                    what: "anvil",
                    reason: format!("no answer on {} after 20 s: {e}", devnet.info.rpc_url),
                });
            }
        }
    }
}

fn write_processes(devnet: &RunningDevnet) -> Result<(), DevnetError> {
    let path = devnet.state_dir.join(PROCESSES_FILE);
    let helpers: Vec<&Helper> = devnet.helpers().collect();
    let json = serde_json::to_string_pretty(&helpers).expect("helpers serialize");
    std::fs::write(&path, json + "\n").map_err(io_error(&path))
}

/// anvil's dev accounts, derived from [`DEV_MNEMONIC`].
pub fn dev_accounts() -> Vec<DevAccount> {
    (0..DEV_ACCOUNTS)
        .map(|index| {
            let signer = MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(index)
                .and_then(|b| b.build())
                .expect("the dev mnemonic derives");
            DevAccount {
                address: signer.address(),
                private_key: format!("0x{}", alloy::hex::encode(signer.to_bytes())),
            }
        })
        .collect()
}

/// Old block states anvil keeps on disk (recent ones stay in memory); enough for reorg tests
/// and for explaining reverts at the previous block.
const ANVIL_PERSISTED_STATES: u32 = 128;

/// Stops the devnet started from `state_dir` (detached or not). Returns the helpers stopped;
/// empty when none was running.
pub fn down(state_dir: &Path) -> Result<Vec<Helper>, DevnetError> {
    let helpers = live_helpers(state_dir);
    for helper in helpers.iter().rev() {
        tracing::info!(name = %helper.name, pid = helper.pid, "stopping");
        process::stop_group(helper.pid, Duration::from_secs(5));
    }
    for file in [INFO_FILE, PROCESSES_FILE] {
        let path = state_dir.join(file);
        if path.exists() {
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    Ok(helpers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_are_anvils() {
        let accounts = dev_accounts();
        assert_eq!(accounts.len(), 10);
        assert_eq!(
            accounts[0].address,
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
                .parse::<Address>()
                .unwrap()
        );
        assert_eq!(
            accounts[0].private_key,
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
        assert_eq!(
            accounts[3].address,
            "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
                .parse::<Address>()
                .unwrap()
        );
    }

    #[test]
    fn a_taken_port_is_refused_with_the_flag_to_change_it() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = claim_port(port, "anvil", "--port").unwrap_err().to_string();
        assert!(
            err.contains(&port.to_string()) && err.contains("--port"),
            "{err}"
        );
    }

    #[test]
    fn port_zero_picks_a_free_port() {
        assert_ne!(claim_port(0, "anvil", "--port").unwrap(), 0);
    }
}

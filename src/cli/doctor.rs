//! `pew doctor`: everything `pew run` needs, checked at once without starting the node, each
//! problem with its fix. An operator runs it after setup, or when the node waits and the log has
//! scrolled away. It never asks for the password and never sends a transaction.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::Provider;
use serde::Serialize;

use super::context::{Globals, print};
use crate::config::Settings;
use crate::poco::Nrlc;
use crate::sdk::Sdk;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Fine.
    Ok,
    /// `pew run` would stop or wait on this.
    Fail,
    /// `pew run` works, but this deserves a look.
    Warn,
    /// Not checked: it does not apply, or an earlier failure makes it meaningless.
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// How it came out.
    pub outcome: Outcome,
    /// What was found, or what to do about it.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// True when no check failed.
    pub ok: bool,
    /// The checks, in the order the node meets them.
    pub checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, name: &'static str, outcome: Outcome, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            outcome,
            detail: detail.into(),
        });
    }

    fn result<T, E: std::fmt::Display>(
        &mut self,
        name: &'static str,
        result: Result<T, E>,
        detail: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                self.add(name, Outcome::Ok, detail(&value));
                Some(value)
            }
            Err(error) => {
                self.add(name, Outcome::Fail, format!("{error:#}"));
                None
            }
        }
    }
}

/// Runs every check and prints the report; exits 1 when a check failed.
pub async fn run(
    globals: &Globals,
    settings: &Settings,
    config: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let report = check(globals, settings, config).await;
    let ok = report.ok;
    print(globals.json, &report, human);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs every check (`pew init` ends with them too).
pub async fn check(globals: &Globals, settings: &Settings, config: Option<&Path>) -> Report {
    let mut report = Report {
        ok: true,
        checks: Vec::new(),
    };
    report.add(
        "config",
        Outcome::Ok,
        match config {
            Some(path) => format!("{} (over the built-in defaults)", path.display()),
            None => "the built-in defaults (no --config or PEW_CONFIG)".into(),
        },
    );
    check_clock(settings, &mut report);
    report.result(
        "category",
        settings.node.category.parse::<crate::poco::Category>(),
        |category| {
            format!(
                "bids for category {} ({} s per task)",
                category.name().unwrap_or("custom"),
                category.time_ref_s
            )
        },
    );
    let keystore = globals.keystore_path(settings);
    // The wallet's errors already name the fix (`pew wallet create`, --keystore).
    let me = report.result("wallet", crate::wallet::address(&keystore), |address| {
        format!("{address} in {}", keystore.display())
    });
    if let Some(mode) = crate::wallet::loose_mode(&keystore) {
        report.add(
            "wallet permissions",
            Outcome::Fail,
            format!(
                "{} is readable by other users (mode {mode:04o}): run `chmod 600 {}`",
                keystore.display(),
                keystore.display()
            ),
        );
    }
    let sdk = chain(globals, settings, &mut report).await;
    node_account(settings, sdk.as_ref(), me, &mut report).await;
    report.result("engine", engine(settings).await, |name| {
        format!("{name} answers")
    });
    ipfs(settings, sdk.as_ref(), &mut report).await;
    disk(settings, &mut report);
    energy(settings, &mut report);
    report.ok = report.checks.iter().all(|c| c.outcome != Outcome::Fail);
    report
}

fn check_clock(settings: &Settings, report: &mut Report) {
    let now = crate::clock::unix_now();
    if now < crate::energy::gate::SANE_WALL_CLOCK_S {
        // Only the energy gate refuses work on such a clock; the others run, wrongly dated.
        let outcome = if crate::node::gate_source(settings) == crate::config::GateSource::Energy {
            Outcome::Fail
        } else {
            Outcome::Warn
        };
        report.add(
            "clock",
            outcome,
            "the system clock is before 2025 (a real-time clock that lost power?): set the time or enable NTP; the energy gate admits no work until then",
        );
    } else {
        report.add("clock", Outcome::Ok, "the system clock is plausible");
    }
}

async fn chain(globals: &Globals, settings: &Settings, report: &mut Report) -> Option<Sdk> {
    let connected = async {
        let target = globals.target(settings)?;
        let chain = crate::chain::client::connect(target).await?;
        let block = chain.provider.get_block_number().await?;
        anyhow::Ok((Sdk::new(chain, None), block))
    }
    .await;
    let sdk = report
        .result("chain", connected, |(sdk, block)| {
            format!(
                "chain id {} at block {block}, hub {}",
                sdk.chain.target.chain_id, sdk.chain.target.hub
            )
        })
        .map(|(sdk, _)| sdk)?;
    let status = sdk.chain.endpoints.status();
    let detail = match &status.last_switch {
        Some(switch) => format!(
            "{} in use (of {}); switched from {} because: {}",
            status.in_use, status.endpoints, switch.from, switch.reason
        ),
        None => format!(
            "{} in use (of {} configured: {})",
            status.in_use,
            status.endpoints,
            sdk.chain.target.endpoints_shown()
        ),
    };
    report.add("rpc", Outcome::Ok, detail);
    fees(settings, &sdk, report).await;
    Some(sdk)
}

/// The current fee, and what a task costs in gas in each category against the node's price
/// (`node.rlc_per_eth` converts; without it only ETH is shown).
async fn fees(settings: &Settings, sdk: &Sdk, report: &mut Report) {
    use crate::poco::gas;
    let fee = match sdk.chain.provider.get_gas_price().await {
        Ok(fee) => fee,
        Err(error) => {
            report.add(
                "fees",
                Outcome::Warn,
                format!(
                    "the gas price is unreadable: {}",
                    crate::text::brief(&error)
                ),
            );
            return;
        }
    };
    let trust = settings.node.trust.clamp(1, 2);
    let gas = gas::task_path_gas(trust, false, settings.node.volume.max(1));
    let wei = gas as u128 * fee;
    let eth = alloy::primitives::utils::format_ether(alloy::primitives::U256::from(wei));
    let rate = settings.node.rlc_per_eth;
    let price: Option<crate::poco::Nrlc> = settings.node.price.parse().ok();
    let cost = (rate > 0.0).then(|| gas::cost_nrlc(gas, fee, rate));
    let mut detail = format!(
        "{:.4} gwei per gas; a task's whole path (trust {trust}: match share, initialize, contribute, finalize) is about {gas} gas = {eth} ETH{}, the same in every category XS to XL (gas does not depend on the run time)",
        fee as f64 / 1e9,
        cost.map(|c| format!(" = {c} at {rate} RLC per ETH"))
            .unwrap_or_default()
    );
    let outcome = if let Some(cost) = cost {
        match price.and_then(|p| gas::shortfall(p, cost, settings.node.min_margin)) {
            Some(why) => {
                detail.push_str(&format!("; node.price {why}: the node declines every task"));
                Outcome::Warn
            }
            None => Outcome::Ok,
        }
    } else {
        if sdk.chain.target.name != "devnet" {
            detail.push_str("; node.rlc_per_eth is not set, so the node does not check that tasks pay for their gas");
        }
        if sdk.chain.target.name != "devnet" {
            Outcome::Warn
        } else {
            Outcome::Ok
        }
    };
    report.add("fees", outcome, detail);
}

/// The workerpool, gas and stake checks: all need the chain and the wallet's address.
async fn node_account(
    settings: &Settings,
    sdk: Option<&Sdk>,
    me: Option<Address>,
    report: &mut Report,
) {
    let (Some(sdk), Some(me)) = (sdk, me) else {
        for name in ["workerpool", "gas", "stake"] {
            report.add(name, Outcome::Skip, "needs the chain and the wallet");
        }
        return;
    };
    let pool = settings.node.pool.trim();
    if pool.is_empty() {
        report.add(
            "workerpool",
            Outcome::Fail,
            "node.pool is not set: create one with `pew pool create --description ...` and set node.pool",
        );
    } else {
        let checked = async {
            let address = crate::chain::client::parse_address("node.pool", pool)?;
            crate::node::startup::check_pool(sdk, address, me).await?;
            anyhow::Ok(address)
        }
        .await;
        report.result("workerpool", checked, |address| {
            format!("{address} is owned by {me}")
        });
    }
    let balances = match sdk.balances(me).await {
        Ok(balances) => balances,
        Err(error) => {
            report.add("gas", Outcome::Fail, error.to_string());
            report.add("stake", Outcome::Skip, "needs the balances");
            return;
        }
    };
    match crate::node::startup::gas_problem(&balances) {
        Some(problem) => report.add("gas", Outcome::Fail, problem),
        None => report.add(
            "gas",
            Outcome::Ok,
            format!(
                "{} ETH",
                alloy::primitives::utils::format_ether(balances.eth_wei)
            ),
        ),
    }
    let price: Result<Nrlc, _> = settings.node.price.parse();
    let Ok(price) = price else {
        report.add(
            "stake",
            Outcome::Fail,
            format!("node.price `{}` is not an amount", settings.node.price),
        );
        return;
    };
    let volume = settings.node.volume.max(1);
    worker_key(settings, sdk, report).await;
    match crate::node::startup::stake_check(&balances, price, volume) {
        Ok(needed) => report.add(
            "stake",
            Outcome::Ok,
            format!(
                "{} in the iExec account; the bid locks {}",
                Nrlc(balances.stake_nrlc),
                Nrlc(needed)
            ),
        ),
        Err(problem) => report.add("stake", Outcome::Fail, problem),
    }
}

/// A separate worker key (`node.worker_keystore`) sends the contributions: it needs gas too.
async fn worker_key(settings: &Settings, sdk: &Sdk, report: &mut Report) {
    let path = &settings.node.worker_keystore;
    if path.as_os_str().is_empty() {
        return;
    }
    let checked = async {
        let worker = crate::wallet::address(path)?;
        let balances = sdk.balances(worker).await?;
        match crate::node::startup::gas_problem(&balances) {
            Some(problem) => Err(anyhow::anyhow!("worker key: {problem}")),
            None => anyhow::Ok((worker, balances.eth_wei)),
        }
    }
    .await;
    report.result("worker key", checked, |(worker, eth)| {
        format!(
            "{worker} in {} has {} ETH",
            path.display(),
            alloy::primitives::utils::format_ether(*eth)
        )
    });
}

async fn engine(settings: &Settings) -> anyhow::Result<String> {
    let docker = crate::executor::image::connect(&settings.executor.engine_socket).await?;
    Ok(crate::executor::image::engine_name(&docker).await?)
}

async fn ipfs(settings: &Settings, sdk: Option<&Sdk>, report: &mut Report) {
    // The chain target already carries `ipfs.api` over its preset's (Globals::target); without
    // a chain, only the configured one is known.
    let configured = (!settings.ipfs.api.is_empty()).then(|| settings.ipfs.api.clone());
    let api = match sdk {
        Some(sdk) => sdk.chain.target.ipfs_api.clone(),
        None => configured,
    };
    let Some(api) = api else {
        if sdk.is_none() {
            report.add(
                "ipfs",
                Outcome::Skip,
                "needs the chain (its preset names the IPFS API) or ipfs.api",
            );
            return;
        }
        report.add(
            "ipfs",
            Outcome::Fail,
            "no IPFS API configured for results: set ipfs.api (a local Kubo or an upload node)",
        );
        return;
    };
    let client = crate::storage::ipfs::IpfsClient::new(&api, Duration::from_secs(10));
    report.result("ipfs", client.id().await, |_| format!("{api} answers"));
}

fn disk(settings: &Settings, report: &mut Report) {
    let work = &settings.executor.work_dir;
    // The folder may not exist before the first run: measure the nearest one that does.
    let existing = work
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("."));
    let free_mb = crate::executor::cache::free_bytes(existing) / (1024 * 1024);
    let wanted = settings.executor.min_free_disk_mb;
    if free_mb < wanted {
        report.add(
            "disk",
            Outcome::Warn,
            format!(
                "{free_mb} MiB free for {}, under executor.min_free_disk_mb = {wanted}: pulled images will be pruned; free some space",
                work.display()
            ),
        );
    } else {
        report.add(
            "disk",
            Outcome::Ok,
            format!("{free_mb} MiB free for {}", work.display()),
        );
    }
}

fn energy(settings: &Settings, report: &mut Report) {
    let source = crate::node::gate_source(settings);
    if source != crate::config::GateSource::Energy {
        report.add(
            "energy",
            Outcome::Skip,
            format!("gate.source is `{source}`: no energy source is read"),
        );
        return;
    }
    let energy = &settings.energy;
    let now = crate::clock::unix_now();
    // A running node owns the source (a serial port has one reader): ask its status file.
    if let Some(live) = crate::energy::live::running_node(&settings.node_status_file(), now) {
        report.add(
            "energy",
            Outcome::Ok,
            format!("read by the running node (pid {})", live.pid),
        );
        return;
    }
    // As `pew run` builds it: the source with a first reading, the site, battery and policy.
    let prepared = crate::energy::runtime::prepare(energy);
    report.result("energy", prepared, |prepared| {
        let status = prepared.gate.status_at(now);
        let pv = status
            .readings
            .as_ref()
            .and_then(|r| r.pv_w)
            .map_or("null".to_string(), |w| format!("{w:?}"));
        format!(
            "{} answers: PV {pv} W, battery {} % (reserve {} Wh)",
            prepared.source.name(),
            status.battery.soc_pct,
            status.battery.reserve_wh
        )
    });
    if energy.wittypi {
        let board = crate::energy::i2c::LinuxI2c::open(energy.i2c_bus, energy.wittypi_address);
        report.result("witty pi", board, |_| {
            format!(
                "I2C bus {} address 0x{:02x} opens",
                energy.i2c_bus, energy.wittypi_address
            )
        });
    }
}

/// The report as text, a line per check.
pub fn human(report: &Report) -> String {
    let mut lines: Vec<String> = report
        .checks
        .iter()
        .map(|c| {
            let mark = match c.outcome {
                Outcome::Ok => "ok  ",
                Outcome::Fail => "FAIL",
                Outcome::Warn => "warn",
                Outcome::Skip => "skip",
            };
            format!("{mark}  {:<12} {}", c.name, c.detail)
        })
        .collect();
    lines.push(if report.ok {
        "everything `pew run` needs is in place".into()
    } else {
        "fix the FAIL lines, then run `pew doctor` again".into()
    });
    lines.join("\n")
}

//! The command line: one file per command group. Each command parses its flags, loads the
//! configuration, calls the library, and prints machine-readable results on stdout while
//! progress and logs go to stderr.

mod account;
mod app;
mod context;
mod dataset;
mod deal;
mod devnet;
mod doctor;
mod earnings;
mod energy;
mod health;
mod init;
mod output;
mod pool;
mod request;
mod result;
mod run;
mod task;
mod wallet;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;

/// pew, the Positive Energy Worker: an iExec worker node for solar-powered computers.
#[derive(Debug, Parser)]
#[command(name = "pew", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML); overrides the built-in defaults, and is overridden by
    /// PEW_<SECTION>__<KEY> environment variables. Also read from PEW_CONFIG; without either,
    /// ~/.config/pew/pew.toml when it exists, else (for root) /etc/pew/pew.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// More log output on stderr (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(flatten)]
    globals: context::Globals,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
enum Command {
    /// Run a local development chain with the real iExec PoCo contracts and an IPFS node.
    #[command(subcommand)]
    Devnet(devnet::DevnetCommand),
    /// Create, import or show the encrypted key file that signs for you.
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// RLC and ETH balances; deposit to and withdraw from the iExec account.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Register apps, publish their orders, show them.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Register datasets, publish their orders, show them.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Create and show workerpools; publish workerpool orders by hand.
    #[command(subcommand)]
    Pool(pool::PoolCommand),
    /// Submit, cancel and follow requests (presigned request orders).
    #[command(subcommand)]
    Request(request::RequestCommand),
    /// Show deals.
    #[command(subcommand)]
    Deal(deal::DealCommand),
    /// Show and watch tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Download and verify task results.
    #[command(subcommand)]
    Result(result::ResultCommand),
    /// The energy module: status, setup, calibration, and replaying traces through the
    /// admission policy.
    #[command(subcommand)]
    Energy(energy::EnergyCommand),
    /// Set up a node, guided: config file, wallet, gas, workerpool, stake, energy source, then
    /// `pew doctor` and the next command. Safe to run again: nothing done is done twice.
    Init(init::InitArgs),
    /// What completed tasks earned (RLC paid by PoCo, read from the chain), their gas, and the
    /// solar energy they used, per day and in total, from the node's journal.
    Earnings(earnings::EarningsArgs),
    /// Check everything `pew run` needs (wallet, chain, workerpool, gas, stake, Docker, IPFS,
    /// disk, energy source, clock) without starting it; each problem with its fix.
    Doctor,
    /// Ask the running node's HTTP API whether its rounds complete (exit 0 when /health
    /// answers 200); for container health checks.
    Health(health::HealthArgs),
    /// Run the node for the workerpool in node.pool: bid when the gate admits work, match
    /// requests, run tasks, contribute. Stops cleanly on SIGTERM or SIGINT.
    Run,
}

/// Parses the arguments, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `pew energy setup` may be the one creating the config file it is given.
    let creates_config = matches!(
        cli.command,
        Command::Energy(energy::EnergyCommand::Setup(_)) | Command::Init(_)
    );
    let config = cli
        .config
        .as_deref()
        .filter(|path| !creates_config || path.exists());
    let settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(err) => {
            output::err_line(&error_line(&err.to_string()));
            return ExitCode::from(2);
        }
    };
    init_logging(&settings, cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            output::err_line(&error_line(&format!(
                "cannot start the async runtime: {err}"
            )));
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let globals = &cli.globals;
        match cli.command {
            Command::Devnet(command) => devnet::run(command, &settings).await,
            Command::Wallet(command) => wallet::run(command, globals, &settings),
            Command::Account(command) => account::run(command, globals, &settings).await,
            Command::App(command) => app::run(command, globals, &settings).await,
            Command::Dataset(command) => dataset::run(command, globals, &settings).await,
            Command::Pool(command) => pool::run(command, globals, &settings).await,
            Command::Request(command) => request::run(command, globals, &settings).await,
            Command::Deal(command) => deal::run(command, globals, &settings).await,
            Command::Task(command) => task::run(command, globals, &settings).await,
            Command::Result(command) => result::run(command, globals, &settings).await,
            Command::Energy(command) => {
                energy::run(command, globals.json, &settings, cli.config.as_deref()).await
            }
            Command::Doctor => {
                let file = crate::config::file_in_force(cli.config.as_deref());
                doctor::run(globals, &settings, file.as_deref()).await
            }
            Command::Run => run::run(globals, &settings).await,
            Command::Health(args) => health::run(args, &settings).await,
            Command::Earnings(args) => earnings::run(args, globals.json, &settings),
            Command::Init(args) => init::run(args, globals, cli.config.as_deref()).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            output::err_line(&error_line(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

/// The one line an error ends a command with: bounded, control characters escaped (an error
/// may quote a server, a file or a setting).
fn error_line(message: &str) -> String {
    format!(
        "error: {}",
        crate::text::one_line(message, crate::text::LINE_CHARS)
    )
}

fn init_logging(settings: &Settings, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => settings.log.level.clone(),
        1 => "debug".to_string(),
        _ => "trace".to_string(),
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(output::LogSink)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // Under systemd the journal stamps each line itself: no second timestamp.
    let _ = if crate::node::systemd::stderr_is_journal() {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}

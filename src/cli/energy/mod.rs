//! `pew energy status|setup|calibrate|simulate`: what the energy module sees, its setup, the
//! node's own power figures, and the admission policy replayed on a trace.

mod calibrate;
pub(super) mod setup;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::context::print;
use crate::config::Settings;
use crate::energy::simulate::{self, JobMix, Policy, SimConfig, SimReport};
use crate::energy::sources::trace::Trace;

/// The energy subcommands.
#[derive(Debug, Subcommand)]
pub enum EnergyCommand {
    /// Readings, state of charge, surplus, budget, and the gate's decision with its reasons.
    Status,
    /// Configure sources, battery, site and panel; writes the config file and checks that the
    /// source answers. Interactive unless --non-interactive.
    Setup(setup::SetupArgs),
    /// Measure this device's idle and full-load power with the configured source.
    Calibrate(calibrate::CalibrateArgs),
    /// Replay a PV trace and a job stream through an admission policy; prints jobs_offered,
    /// jobs_accepted, accepted_pct, green_share_pct, deadline_misses, floor_violations and
    /// energy_used_wh.
    Simulate(SimulateArgs),
}

/// `pew energy simulate` flags.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The PV trace: CSV `time,pv_w[,load_w][,battery_soc]`, times RFC 3339 or unix seconds.
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,
    /// The job stream: CSV `arrival,category,runtime_s` (category XS..XL or 0..4). Absent: a
    /// seeded synthetic stream over the trace.
    #[arg(long, value_name = "FILE")]
    pub jobs: Option<PathBuf>,
    /// The admission policy: pew, always, threshold, no-forecast or oracle.
    #[arg(long, default_value = "pew")]
    pub policy: Policy,
    /// Usable battery capacity, Wh [default: energy.battery.capacity_wh].
    #[arg(long, value_name = "W")]
    pub battery_wh: Option<f64>,
    /// Night reserve as a share of capacity [default: energy.battery.reserve].
    #[arg(long, value_name = "F")]
    pub reserve: Option<f64>,
    /// Idle draw, W [default: energy.policy.idle_w].
    #[arg(long, value_name = "W")]
    pub idle_w: Option<f64>,
    /// Full-load draw, W [default: energy.policy.busy_w].
    #[arg(long, value_name = "W")]
    pub busy_w: Option<f64>,
    /// State of charge at the start [default: the reserve].
    #[arg(long, value_name = "F")]
    pub initial_soc: Option<f64>,
    /// Seed of the synthetic job stream.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Mean time between synthetic offers, seconds.
    #[arg(long, default_value_t = 1200.0)]
    pub mean_gap_s: f64,
    /// The synthetic stream's categories as weights for XS,S,M,L,XL (e.g. 60,30,10)
    /// [default: 50,30,15,4,1].
    #[arg(long, value_name = "WEIGHTS")]
    pub mix: Option<JobMix>,
    /// pew has a Witty Pi: it powers off when its power plan says so (no task, the gate takes
    /// no work and the panel carries none) and wakes at the plan's alarm, or after
    /// energy.wake_fallback_h at the latest; awake, it credits the charge the forecast gave
    /// meanwhile. Only the pew policy sleeps.
    #[arg(long)]
    pub wittypi: bool,
}

/// Runs one energy subcommand.
pub async fn run(
    command: EnergyCommand,
    json: bool,
    settings: &Settings,
    config: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    match command {
        EnergyCommand::Simulate(args) => {
            let report = simulate_command(&args, settings)?;
            print(json, &report, human_report);
            Ok(ExitCode::SUCCESS)
        }
        EnergyCommand::Status => status::status(json, settings).await,
        EnergyCommand::Setup(args) => setup::setup(args, json, settings, config).await,
        EnergyCommand::Calibrate(args) => calibrate::calibrate(args, json, settings, config).await,
    }
}

/// Builds the simulation from the flags and the configuration, and runs it.
pub fn simulate_command(args: &SimulateArgs, settings: &Settings) -> anyhow::Result<SimReport> {
    let trace = Trace::load(&args.trace)?;
    let jobs = match &args.jobs {
        Some(path) => {
            if args.mix.is_some() {
                bail!("--mix shapes the synthetic job stream only; drop it or --jobs");
            }
            let text = crate::files::read_text(path, crate::files::limit::TRACE, "a jobs file")
                .context("the jobs file cannot be read")?;
            simulate::parse_jobs(&text, &path.display().to_string()).map_err(anyhow::Error::msg)?
        }
        None => {
            if args.mean_gap_s.is_nan() || args.mean_gap_s <= 0.0 {
                bail!("--mean-gap-s must be > 0");
            }
            simulate::synthetic_jobs(
                &trace,
                args.seed,
                args.mean_gap_s,
                args.mix.unwrap_or_default(),
            )
        }
    };
    let energy = &settings.energy;
    let reserve = args.reserve.unwrap_or(energy.battery.reserve);
    let config = SimConfig {
        battery_wh: args.battery_wh.unwrap_or(energy.battery.capacity_wh),
        reserve,
        initial_soc: args.initial_soc.unwrap_or(reserve),
        idle_w: args.idle_w.unwrap_or(energy.policy.idle_w),
        busy_w: args.busy_w.unwrap_or(energy.policy.busy_w),
        quantile: energy.forecast.quantile,
        hysteresis: energy.policy.hysteresis,
        site: crate::energy::runtime::configured_site(energy).ok(),
        wake_fallback_s: args
            .wittypi
            .then(|| energy.wake_fallback_h.clamp(1.0, 127.0 * 24.0) * 3600.0),
        ..SimConfig::default()
    };
    if !(config.battery_wh >= 0.0 && config.battery_wh.is_finite()) {
        bail!("--battery-wh must be a number >= 0");
    }
    if !(0.0..1.0).contains(&config.reserve) {
        bail!("--reserve must be within 0..1 (a share of capacity, e.g. 0.3)");
    }
    if !(0.0..=1.0).contains(&config.initial_soc) {
        bail!("--initial-soc must be within 0..=1");
    }
    if !(config.idle_w >= 0.0 && config.busy_w > config.idle_w) {
        bail!("need 0 <= --idle-w < --busy-w");
    }
    Ok(simulate::simulate(&trace, &jobs, args.policy, &config))
}

/// The report as aligned `name value` lines.
pub fn human_report(report: &SimReport) -> String {
    format!(
        "policy            {}\njobs_offered      {}\njobs_accepted     {}\naccepted_pct      {:.1}\n\
         green_share_pct   {:.1}\ndeadline_misses   {}\nfloor_violations  {}\nenergy_used_wh    {:.1}",
        report.policy.name(),
        report.jobs_offered,
        report.jobs_accepted,
        report.accepted_pct,
        report.green_share_pct,
        report.deadline_misses,
        report.floor_violations,
        report.energy_used_wh
    )
}

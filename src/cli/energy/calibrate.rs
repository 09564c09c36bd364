//! `pew energy calibrate`: measures this device's idle and full-load power with the
//! configured source.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde::Serialize;

use super::setup::config_target;
use crate::cli::context::print;
use crate::config::Settings;
use crate::energy::runtime::open_source;

/// `pew energy calibrate` flags.
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Seconds measured in each phase (idle, then full load).
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Save the figures into the config file (--config or PEW_CONFIG).
    #[arg(long)]
    pub write: bool,
}

/// The calibration's outcome.
#[derive(Debug, Serialize)]
pub struct Calibration {
    /// Mean draw at rest, W.
    pub idle_w: f64,
    /// Mean draw with every core busy, W.
    pub busy_w: f64,
    /// Samples in each phase.
    pub samples: (usize, usize),
    /// Cores loaded.
    pub cores: usize,
}

/// Measures the node's draw at rest and under full load.
pub async fn calibrate(
    args: CalibrateArgs,
    json: bool,
    settings: &Settings,
    config: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        bail!("--seconds must be within 0..=3600");
    }
    let energy = settings.energy.clone();
    let seconds = args.seconds;
    let calibration = tokio::task::spawn_blocking(move || measure(&energy, seconds)).await??;
    if args.write {
        let target = config_target(config)?;
        let text =
            match crate::files::read_text(&target, crate::files::limit::CONFIG, "a config file") {
                Ok(text) => text,
                Err(error) if error.is_missing() => String::new(),
                Err(error) => return Err(error.into()),
            };
        let mut document: toml_edit::DocumentMut = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", target.display()))?;
        let policy = document
            .entry("energy")
            .or_insert(toml_edit::table())
            .as_table_mut()
            .and_then(|t| {
                t.entry("policy")
                    .or_insert(toml_edit::table())
                    .as_table_mut()
            })
            .ok_or_else(|| anyhow!("`energy.policy` in {} is not a table", target.display()))?;
        policy["idle_w"] = toml_edit::value((calibration.idle_w * 100.0).round() / 100.0);
        policy["busy_w"] = toml_edit::value((calibration.busy_w * 100.0).round() / 100.0);
        crate::files::write_atomic(&target, document.to_string().as_bytes())
            .with_context(|| format!("{} cannot be written", target.display()))?;
    }
    print(json, &calibration, |c| {
        format!(
            "idle_w  {:.2}\nbusy_w  {:.2}\n({} + {} samples, {} cores loaded)",
            c.idle_w, c.busy_w, c.samples.0, c.samples.1, c.cores
        )
    });
    Ok(ExitCode::SUCCESS)
}

fn measure(energy: &crate::config::EnergySettings, seconds: f64) -> anyhow::Result<Calibration> {
    let mut opened = open_source(energy)?;
    let interval = Duration::from_secs_f64(energy.poll_interval_s.clamp(0.05, 5.0));
    let mut phase = |busy: bool| -> anyhow::Result<Vec<f64>> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let burners: Vec<_> = (0..if busy { cores } else { 0 })
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x: u64 = 1;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        let started = Instant::now();
        let mut loads = Vec::new();
        while started.elapsed().as_secs_f64() < seconds {
            if let Ok(sample) = opened.source.read() {
                let load = sample
                    .load_w
                    .or_else(|| sample.board.as_ref().map(|b| b.output_v * b.output_a));
                if let Some(load) = load {
                    loads.push(load);
                }
            }
            std::thread::sleep(interval);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for burner in burners {
            let _ = burner.join();
        }
        Ok(loads)
    };
    let idle = phase(false)?;
    let busy = phase(true)?;
    if idle.is_empty() || busy.is_empty() {
        bail!(
            "source {} does not measure the node's draw (use an INA on the load line, a Witty \
             Pi, or a trace with load_w)",
            opened.source.name()
        );
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(Calibration {
        idle_w: mean(&idle),
        busy_w: mean(&busy).max(mean(&idle)),
        samples: (idle.len(), busy.len()),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    })
}

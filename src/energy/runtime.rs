//! Wires the energy module from configuration: opens the source, restores the persisted
//! battery estimate and learned app power, builds the gate, and runs the monitor thread that
//! feeds it a sample every `poll_interval_s` (and the Open-Meteo refresher beside it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use super::battery::{BatterySpec, Chemistry};
use super::budget::BatteryModel;
use super::forecast::open_meteo::OpenMeteo;
use super::forecast::{Forecaster, Site};
use super::gate::{Clock, EnergyGate, GateConfig, PersistentState};
use super::sample::{EnergySource, Sample, SourceError};
use super::sources;
use crate::clock::unix_now;
use crate::config::{EnergySettings, Settings};

/// The site in the configuration.
pub fn configured_site(settings: &EnergySettings) -> anyhow::Result<Site> {
    let site = Site {
        latitude: settings.site.latitude,
        longitude: settings.site.longitude,
        tilt_deg: settings.site.tilt,
        azimuth_deg: settings.site.azimuth,
        kwp: settings.site.kwp,
        losses: settings.site.losses,
    };
    site.validate().map_err(|e| anyhow!("energy.site: {e}"))?;
    Ok(site)
}

/// The battery and policy figures in the configuration, checked.
pub fn gate_config(settings: &EnergySettings, speed: f64) -> anyhow::Result<GateConfig> {
    let battery = &settings.battery;
    let chemistry: Chemistry = battery
        .chemistry
        .parse()
        .map_err(|e: String| anyhow!("energy.battery.chemistry: {e}"))?;
    if !(battery.capacity_wh > 0.0 && battery.capacity_wh.is_finite()) {
        bail!("energy.battery.capacity_wh must be > 0 (the usable Wh of the battery)");
    }
    if !(0.0..1.0).contains(&battery.reserve) {
        bail!("energy.battery.reserve must be within 0..1 (a share of capacity, e.g. 0.3)");
    }
    let policy = &settings.policy;
    if !(policy.idle_w >= 0.0 && policy.busy_w >= policy.idle_w) {
        bail!("energy.policy: need 0 <= idle_w <= busy_w (run `pew energy calibrate`)");
    }
    let quantile = settings.forecast.quantile;
    if !(0.0..=1.0).contains(&quantile) {
        bail!("energy.forecast.quantile must be within 0..=1 (0.1 = P10)");
    }
    let charge_efficiency = if battery.charge_efficiency > 0.0 {
        battery.charge_efficiency.min(1.0)
    } else {
        chemistry.default_charge_efficiency()
    };
    Ok(GateConfig {
        spec: BatterySpec {
            chemistry,
            capacity_wh: battery.capacity_wh,
            nominal_v: battery.nominal_v,
            charge_efficiency,
        },
        model: BatteryModel {
            capacity_wh: battery.capacity_wh,
            floor_wh: battery.reserve * battery.capacity_wh,
            charge_efficiency,
            discharge_efficiency: 0.98,
        },
        idle_w: policy.idle_w,
        busy_w: policy.busy_w,
        quantile,
        hysteresis_wh: policy.hysteresis.max(0.0) * battery.capacity_wh,
        stale_after_s: (settings.poll_interval_s * 10.0).max(120.0) * speed,
        max_gap_s: 600.0 * speed,
        critical_soc: battery.critical_soc.clamp(0.0, battery.reserve),
    })
}

/// An opened source, with the clock its samples run on and the site it may name.
pub struct OpenedSource {
    /// The source.
    pub source: Box<dyn EnergySource>,
    /// How wall time maps to the samples' time.
    pub clock: Clock,
    /// A site the source itself names (a trace's `# site:` line).
    pub site: Option<Site>,
}

/// Opens the source `energy.source` names.
pub fn open_source(settings: &EnergySettings) -> anyhow::Result<OpenedSource> {
    let poll = settings.poll_interval_s;
    if !(poll > 0.0 && poll <= 3600.0) {
        bail!("energy.poll_interval_s must be within 0..=3600 seconds (e.g. 10), not {poll}");
    }
    match settings.source {
        crate::config::EnergySourceKind::Trace => {
            if settings.trace_file.as_os_str().is_empty() {
                bail!("energy.source is \"trace\" but energy.trace_file is empty");
            }
            let source = sources::trace::TraceSource::open(
                &settings.trace_file,
                settings.trace_speed,
                settings.trace_loop,
            )?;
            let clock = source.clock();
            let site = source.trace().site.clone();
            Ok(OpenedSource {
                source: Box::new(source),
                clock: Clock {
                    wall_start_s: clock.wall_start_s,
                    energy_start_s: clock.trace_start_s,
                    speed: clock.speed,
                },
                site,
            })
        }
        kind => sources::open::open_hardware(kind, settings).map(|source| OpenedSource {
            source,
            clock: Clock::wall(),
            site: None,
        }),
    }
}

/// Reads the persisted state; a missing file is a first start, a corrupt one is reported and
/// ignored (the estimate re-anchors at the next full charge).
pub fn load_state(path: &Path) -> PersistentState {
    match crate::files::read_text(path, crate::files::limit::STATE, "an energy state file") {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|error| {
            tracing::warn!(path = %path.display(), %error, "energy state unreadable; starting from the configured SoC");
            PersistentState::default()
        }),
        Err(error) if error.is_missing() => PersistentState::default(),
        Err(error) => {
            tracing::warn!(%error, "energy state unreadable; starting from the configured SoC");
            PersistentState::default()
        }
    }
}

/// Writes the persisted state atomically.
pub fn save_state(path: &Path, state: &PersistentState) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        crate::files::private_dir(parent)?;
    }
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(temporary, path)
}

/// A gate ready to decide: its source opened and read once, its state restored, the cached
/// weather handed in.
pub struct Prepared {
    /// The gate.
    pub gate: EnergyGate,
    /// The source it reads.
    pub source: Box<dyn EnergySource>,
    /// Open-Meteo for this site, when enabled.
    pub open_meteo: Option<OpenMeteo>,
}

/// Builds the gate `[energy]` describes, as both `pew run` and `pew energy status` need it. The
/// first reading is taken here, so a wiring mistake shows at once.
pub fn prepare(energy: &EnergySettings) -> anyhow::Result<Prepared> {
    let opened = open_source(energy)?;
    let mut source = opened.source;
    let site = match opened.site {
        Some(site) => site,
        None => configured_site(energy)?,
    };
    let gate = EnergyGate::new(
        gate_config(energy, opened.clock.speed)?,
        opened.clock,
        Some(Forecaster::new(site.clone())),
        load_state(&energy.state_file),
        energy.battery.initial_soc,
    );
    let first = first_reading(source.as_mut())
        .with_context(|| format!("energy source {} gives no reading", source.name()))?;
    gate.observe(first);
    gate.note_rejected(source.rejected());
    let open_meteo = energy.forecast.open_meteo.then(|| {
        OpenMeteo::new(
            &energy.forecast.open_meteo_url,
            site,
            energy.forecast.cache_file.clone(),
            energy.forecast.refresh_s,
        )
    });
    if let Some(cached) = open_meteo.as_ref().and_then(OpenMeteo::cached) {
        gate.set_weather(cached);
    }
    Ok(Prepared {
        gate,
        source,
        open_meteo,
    })
}

/// The running energy module: the gate and the thread feeding it.
pub struct EnergyRuntime {
    /// The gate (shared with the node).
    pub gate: Arc<EnergyGate>,
    stop: Arc<AtomicBool>,
    monitor: Option<std::thread::JoinHandle<()>>,
    state_file: PathBuf,
    status_file: PathBuf,
    open_meteo: Option<OpenMeteo>,
}

impl EnergyRuntime {
    /// Opens the source, takes a first reading (so a wiring mistake shows at start), and
    /// starts the monitor.
    pub fn start(settings: &Settings) -> anyhow::Result<Self> {
        let energy = &settings.energy;
        let Prepared {
            gate,
            source,
            open_meteo,
        } = prepare(energy)?;
        let gate = Arc::new(gate);
        let stop = Arc::new(AtomicBool::new(false));
        let poll = Duration::from_secs_f64(energy.poll_interval_s.max(0.05));
        // The board that wakes the node after a power-off, when one is fitted.
        let board = if energy.wittypi {
            let device = crate::energy::i2c::LinuxI2c::open(energy.i2c_bus, energy.wittypi_address)
                .with_context(|| {
                    format!(
                        "the Witty Pi at I2C bus {} address 0x{:02x} cannot be opened",
                        energy.i2c_bus, energy.wittypi_address
                    )
                })?;
            Some(Board {
                device: sources::wittypi::WittyPi::new(device),
                fallback_hours: energy.wake_fallback_h.clamp(0.0, 127.0 * 24.0) as u32,
            })
        } else {
            None
        };
        let monitor = {
            let gate = gate.clone();
            let stop = stop.clone();
            let state_file = energy.state_file.clone();
            let status_file = settings.node_status_file();
            std::thread::Builder::new()
                .name("pew-energy".into())
                .spawn(move || monitor(source, board, gate, stop, poll, state_file, status_file))
                .context("the energy monitor thread cannot start")?
        };
        tracing::info!(source = %energy.source, "energy module started");
        Ok(Self {
            gate,
            stop,
            monitor: Some(monitor),
            state_file: energy.state_file.clone(),
            status_file: settings.node_status_file(),
            open_meteo,
        })
    }

    /// Refreshes the Open-Meteo forecast now and then, until the process ends (run it as a
    /// task on the node's runtime).
    pub fn weather_task(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let mut open_meteo = self.open_meteo.clone()?;
        let gate = self.gate.clone();
        let stop = self.stop.clone();
        Some(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let (forecast, error) = open_meteo.refresh(&client, unix_now()).await;
                if let Some(error) = error {
                    tracing::info!(%error, "Open-Meteo forecast not refreshed; the clear-sky model and the cache carry on");
                }
                if let Some(forecast) = forecast {
                    gate.set_weather(forecast);
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        })
    }

    /// Stops the monitor and persists the estimate.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.monitor.take() {
            let _ = handle.join();
        }
        if let Err(error) = save_state(&self.state_file, &self.gate.persistent_state()) {
            tracing::warn!(%error, path = %self.state_file.display(), "energy state not saved");
        }
        super::live::remove(&self.status_file);
    }
}

/// Publishes the gate's status for `pew energy status`: every
/// [`REWRITE_EVERY_S`](super::live::REWRITE_EVERY_S), and at once when the node's decision
/// changes.
struct Publisher {
    path: PathBuf,
    source: String,
    fresh_for_s: f64,
    last_written: Option<(std::time::Instant, Option<bool>)>,
    warned: bool,
}

impl Publisher {
    fn new(path: PathBuf, source: String, fresh_for_s: f64) -> Self {
        Self {
            path,
            source,
            fresh_for_s,
            last_written: None,
            warned: false,
        }
    }

    fn tick(&mut self, gate: &EnergyGate) {
        let admits = gate.last_decision_admits();
        let due = self.last_written.is_none_or(|(at, written)| {
            written != admits
                || at.elapsed() > Duration::from_secs_f64(super::live::REWRITE_EVERY_S)
        });
        if !due {
            return;
        }
        let now = unix_now();
        let mut status = gate.status_at(now);
        status.source = Some(self.source.clone());
        let status = serde_json::to_value(status).unwrap_or_default();
        let status = super::live::LiveStatus {
            pid: std::process::id(),
            written_at_s: now,
            status,
            fresh_for_s: self.fresh_for_s,
        };
        match super::live::write(&self.path, &status) {
            Ok(()) => self.warned = false,
            Err(error) if !self.warned => {
                tracing::warn!(path = %self.path.display(), %error, "node status not published for `pew energy status`");
                self.warned = true;
            }
            Err(_) => {}
        }
        self.last_written = Some((std::time::Instant::now(), admits));
    }
}

impl Drop for EnergyRuntime {
    fn drop(&mut self) {
        if self.monitor.is_some() {
            self.stop();
        }
    }
}

/// A first reading, retrying rejected ones a few times (a frame may be cut at start).
pub fn first_reading(source: &mut dyn EnergySource) -> anyhow::Result<Sample> {
    let mut last_error = None;
    for _ in 0..5 {
        match source.read() {
            Ok(sample) => return Ok(sample),
            Err(error @ SourceError::Rejected { .. }) => {
                last_error = Some(error);
                std::thread::sleep(Duration::from_millis(300));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(last_error
        .map(Into::into)
        .unwrap_or_else(|| anyhow!("no reading")))
}

/// A Witty Pi the monitor programs.
pub struct Board<D: crate::energy::i2c::I2cDevice> {
    /// The board.
    pub device: sources::wittypi::WittyPi<D>,
    /// The guaranteed wake, hours.
    pub fallback_hours: u32,
}

/// Checks the board's low-voltage warning, and every `every` programs its alarms from the
/// power plan (asking the node to power off when the plan says so).
pub fn tend_board<D: crate::energy::i2c::I2cDevice>(
    board: &mut Board<D>,
    gate: &EnergyGate,
    program: bool,
) {
    match board.device.low_voltage_warning() {
        Ok(true) => gate.warn_low_voltage(super::gate::LowVoltage::BoardWarning),
        Ok(false) => {}
        Err(error) => tracing::debug!(%error, "Witty Pi low-voltage check failed"),
    }
    if program {
        if unix_now() < super::gate::SANE_WALL_CLOCK_S {
            tracing::warn!(
                "system clock before 2025: Witty Pi alarms not programmed until the time is sane"
            );
            return;
        }
        let plan = gate.power_plan(unix_now());
        if let Err(error) = super::power::program(&mut board.device, &plan, board.fallback_hours) {
            tracing::warn!(%error, "Witty Pi alarms not programmed");
            return; // never power off without a wake-up in place
        }
        tracing::debug!(?plan, "Witty Pi alarms programmed");
        if let Some(reason) = plan.power_off {
            if plan.wake_at_s.is_none() && board.fallback_hours == 0 {
                // Neither an alarm nor the guaranteed wake: off would be off for good.
                tracing::warn!(
                    %reason,
                    "not powering off: the forecast gives no wake-up and energy.wake_fallback_h is 0; \
                     set it to 1 or more so the board always wakes the Pi"
                );
                return;
            }
            gate.request_power_off(reason);
        }
    }
}

fn monitor(
    mut source: Box<dyn EnergySource>,
    mut board: Option<Board<crate::energy::i2c::LinuxI2c>>,
    gate: Arc<EnergyGate>,
    stop: Arc<AtomicBool>,
    poll: Duration,
    state_file: PathBuf,
    status_file: PathBuf,
) {
    let mut publish = Publisher::new(
        status_file,
        source.name(),
        super::live::fresh_for(poll.as_secs_f64()),
    );
    let mut last_saved = std::time::Instant::now();
    let mut last_programmed: Option<std::time::Instant> = None;
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let started = std::time::Instant::now();
        match source.read() {
            Ok(sample) => {
                if failing {
                    tracing::info!(source = %source.name(), "energy readings are back");
                    failing = false;
                }
                gate.observe(sample);
            }
            Err(SourceError::Rejected { .. }) => {} // counted and logged by the source
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "energy reading failed; no work is admitted on stale readings");
                    failing = true;
                }
            }
        }
        gate.note_rejected(source.rejected());
        if let Some(board) = board.as_mut() {
            let due = last_programmed.is_none_or(|t| t.elapsed() > Duration::from_secs(600));
            tend_board(board, &gate, due);
            if due {
                last_programmed = Some(std::time::Instant::now());
            }
        }
        publish.tick(&gate);
        if last_saved.elapsed() > Duration::from_secs(300) {
            if let Err(error) = save_state(&state_file, &gate.persistent_state()) {
                tracing::warn!(%error, "energy state not saved");
            }
            last_saved = std::time::Instant::now();
        }
        // Sleep in short slices so a stop is quick.
        while started.elapsed() < poll && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50).min(poll));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::AdmissionGate;
    use crate::energy::sources::fakes::FakeWittyPi;
    use crate::energy::sources::wittypi::WittyPi;

    #[test]
    fn the_board_gets_its_fallback_and_a_low_voltage_flag_stops_the_node() {
        let gate = crate::energy::gate::tests::gate(0.6);
        let fake = FakeWittyPi::new();
        let mut board = Board {
            device: WittyPi::new(fake.clone()),
            fallback_hours: 24,
        };
        tend_board(&mut board, &gate, true);
        assert_eq!(fake.register(49), 24);
        assert!(gate.power_off_reason().is_none());
        fake.set(8, 1); // the board's low-voltage flag
        tend_board(&mut board, &gate, false);
        let reason = gate.power_off_reason().expect("asks to power off");
        assert!(reason.contains("low-voltage"), "{reason}");
    }

    #[test]
    fn bad_energy_settings_name_the_key() {
        let mut settings = Settings::load_from(None, &[]).unwrap().energy;
        settings.battery.reserve = 1.5;
        let error = gate_config(&settings, 1.0).unwrap_err().to_string();
        assert!(error.contains("energy.battery.reserve"), "{error}");
        settings.battery.reserve = 0.3;
        settings.battery.chemistry = "nicd".into();
        let error = gate_config(&settings, 1.0).unwrap_err().to_string();
        assert!(error.contains("chemistry"), "{error}");
        settings.battery.chemistry = "lead-acid".into();
        let config = gate_config(&settings, 60.0).unwrap();
        assert_eq!(
            config.spec.charge_efficiency, 0.95,
            "the chemistry's default"
        );
        assert_eq!(
            config.max_gap_s, 36_000.0,
            "gaps scale with the replay speed"
        );
        settings.source = crate::config::EnergySourceKind::Trace;
        let error = open_source(&settings).err().unwrap().to_string();
        assert!(error.contains("trace_file"), "{error}");
    }

    #[test]
    fn state_survives_a_restart_and_a_corrupt_file_is_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = PersistentState {
            soc: Some(0.42),
            time_s: 5.0,
            ..Default::default()
        };
        state.app_power_w.insert("0xapp".into(), 3.5);
        save_state(&path, &state).unwrap();
        let back = load_state(&path);
        assert_eq!(back.soc, Some(0.42));
        assert_eq!(back.app_power_w["0xapp"], 3.5);
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(load_state(&path).soc, None);
    }
}

//! Layered configuration: built-in defaults < a TOML file < `PEW_*` environment variables.
//!
//! The defaults live in `config/default.toml`, compiled into the binary, and that file lists
//! every key pew knows. Anything else in a user's file or environment is a mistake the operator
//! wants to hear about (a typo silently ignored is a node that runs with the wrong setting), so
//! unknown keys and wrong types are errors that name the key and where it came from.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat, Map, Value, ValueKind};
use serde::Deserialize;

/// The built-in defaults, also the reference list of every key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "PEW_CONFIG";

/// Everything pew reads from configuration, after all layers are merged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Which chain and contracts to talk to.
    pub chain: ChainSettings,
    /// The local development chain (`pew devnet`).
    pub devnet: DevnetSettings,
    /// The signing wallet.
    pub wallet: WalletSettings,
    /// IPFS endpoints.
    pub ipfs: IpfsSettings,
    /// How apps run.
    pub executor: ExecutorSettings,
    /// The node (`pew run`).
    pub node: NodeSettings,
    /// The admission gate.
    pub gate: GateSettings,
    /// The energy module.
    pub energy: EnergySettings,
    /// The node's local HTTP API.
    pub api: ApiSettings,
    /// What the node keeps for the dashboard's plots.
    pub history: HistorySettings,
    /// Publishing to Home Assistant over MQTT.
    pub home_assistant: HomeAssistantSettings,
    /// Logging.
    pub log: LogSettings,
}

/// `[home_assistant]`: the node's state on an MQTT broker, with Home Assistant's discovery so
/// that it shows up as a device, and the operator's switches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAssistantSettings {
    /// `host:port` of the broker (plain TCP); empty: nothing is published.
    pub broker: String,
    /// User name; empty: none.
    pub username: String,
    /// File holding the password (0600); empty: none.
    pub password_file: PathBuf,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
    /// The first level of pew's own topics.
    pub topic: String,
    /// Seconds between state updates (changes go out at once).
    pub publish_every_s: f64,
    /// Offer the `energy.pause` and `node.stop_bidding` switches.
    pub switches: bool,
}

/// The node's local HTTP API (health, Prometheus metrics, status JSON, a dashboard page).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Address to listen on, e.g. 127.0.0.1:9464; empty turns the API off.
    pub listen: String,
    /// Host names the API answers to besides IP addresses, localhost, `.local` names and the
    /// machine's own name (a reverse proxy's, a Prometheus target's).
    pub allowed_hosts: Vec<String>,
}

/// `[history]`: the energy samples, the gate's decisions and the bid's periods the dashboard
/// plots. Recent points stay in memory; coarser ones go to the journal, bounded, so a week of
/// plots survives a restart without wearing the SD card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    /// Seconds between samples kept in memory (the last day's resolution).
    pub sample_every_s: f64,
    /// Seconds between points written to the journal (each the mean of the samples since).
    pub journal_every_s: f64,
    /// Days of journal points kept; older ones are dropped.
    pub keep_days: f64,
}

/// The signing wallet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletSettings {
    /// Encrypted key file; empty means ~/.pew/wallet.json.
    pub keystore: PathBuf,
}

/// IPFS endpoints; empty values mean the chain preset's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpfsSettings {
    /// Kubo RPC API base URL.
    pub api: String,
    /// HTTP gateway base URL.
    pub gateway: String,
}

/// Which chain and contracts to talk to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSettings {
    /// `devnet`, `arbitrum` or `arbitrum-sepolia`.
    pub preset: String,
    /// JSON-RPC endpoint; empty means the preset's default.
    pub rpc_url: String,
    /// JSON-RPC endpoints tried in order, the next taking over when one keeps failing (empty:
    /// `rpc_url`).
    pub rpc_urls: Vec<String>,
    /// The widest log scan a lookup may make, in blocks (0: about a day of the chain's).
    pub max_scan_blocks: u64,
    /// PoCo proxy address; empty means the preset's default.
    pub hub: String,
    /// Where `pew devnet up` wrote its description.
    pub devnet_file: PathBuf,
    /// Fee cap per gas, in gwei.
    pub max_fee_per_gas_gwei: f64,
    /// Confirmations to wait for.
    pub confirmations: u64,
    /// Blocks after which a pending transaction is replaced.
    pub stuck_after_blocks: u64,
    /// First block of log scans.
    pub log_from_block: u64,
    /// Widest eth_getLogs range.
    pub log_chunk_blocks: u64,
}

/// Settings of the local development chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevnetSettings {
    /// Folder for devnet.json, logs, the IPFS repository and the process list.
    pub state_dir: PathBuf,
    /// anvil's port on 127.0.0.1.
    pub port: u16,
    /// The IPFS RPC API port on 127.0.0.1.
    pub ipfs_api_port: u16,
    /// The IPFS HTTP gateway port on 127.0.0.1.
    pub ipfs_gateway_port: u16,
    /// Whether to start a local IPFS node.
    pub ipfs: bool,
    /// Seconds the IPFS node's API may take to answer after its start.
    pub ipfs_start_timeout_s: u64,
    /// Where scripts/setup installed the tools; empty means "find `.tools` upwards".
    pub tools_dir: PathBuf,
}

/// How apps run: limits, folders, downloads, image cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSettings {
    /// The container engine's API socket (empty: DOCKER_HOST or Docker's standard socket).
    pub engine_socket: String,
    /// Per-task folders live here.
    pub work_dir: PathBuf,
    /// Container memory limit.
    pub memory_mb: u64,
    /// Container CPU limit.
    pub cpus: f64,
    /// Container process limit.
    pub pids: i64,
    /// /tmp size.
    pub tmpfs_mb: u64,
    /// /iexec_out size cap.
    pub output_cap_mb: u64,
    /// Network access for apps.
    pub allow_network: bool,
    /// Who apps run as: empty (the image's non-root USER, else nobody), "uid:gid", or "root".
    pub user: String,
    /// Pull timeout.
    pub pull_timeout_s: u64,
    /// Kept log tail.
    pub log_tail_kib: u64,
    /// Download size cap.
    pub input_max_mb: u64,
    /// Download timeout.
    pub input_timeout_s: u64,
    /// Free disk to keep by pruning pulled images.
    pub min_free_disk_mb: u64,
    /// Images never pruned.
    pub pinned_images: Vec<String>,
}

/// The node (`pew run`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// The workerpool address.
    pub pool: String,
    /// The SQLite journal.
    pub journal: PathBuf,
    /// Tasks at once; 0: cores - 1.
    pub concurrency: usize,
    /// Chain polling interval.
    pub poll_interval_ms: u64,
    /// Log confirmations.
    pub confirmations: u64,
    /// First-start look-back.
    pub lookback_blocks: u64,
    /// Rewind on reorg.
    pub reorg_depth: u64,
    /// Bid price (RLC).
    pub price: String,
    /// Bid volume.
    pub volume: u64,
    /// Bid category.
    pub category: String,
    /// Highest trust served.
    pub trust: u64,
    /// RLC for one ETH, to price gas (0: no gas check).
    pub rlc_per_eth: f64,
    /// The share by which a task's price must exceed its gas.
    pub min_margin: f64,
    /// Stop grace period.
    pub stop_grace_s: u64,
    /// A separate worker key file (empty: the owner key).
    pub worker_keystore: PathBuf,
    /// The worker key file's password file (empty: the owner's password source).
    pub worker_password_file: PathBuf,
    /// Folder for often-changed, throw-away files (empty: see [`Settings::runtime_dir`]).
    pub runtime_dir: PathBuf,
}

/// Settings with a fixed set of choices are enums: a value outside the set fails when the
/// configuration is loaded, naming the key, instead of when the node first uses it.
macro_rules! choices {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// The value as the configuration spells it.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choices! {
    /// `gate.source`: which admission gate decides.
    GateSource {
        /// The energy gate when an energy source is configured, else the simulated sun.
        Auto => "auto",
        /// Every task admitted (mains power, tests).
        Always => "always",
        /// The simulated sun: fixed windows in a period.
        Sim => "sim",
        /// The energy module.
        Energy => "energy",
    }
}

choices! {
    /// `gate.sim_clock`: where the simulated sun's period starts.
    SimClock {
        /// At the Unix epoch (windows are times of the UTC day).
        Utc => "utc",
        /// When the node starts.
        Start => "start",
    }
}

choices! {
    /// `energy.source`: where readings come from.
    EnergySourceKind {
        /// No source.
        None => "none",
        /// A recorded trace.
        Trace => "trace",
        /// An INA219 on I2C.
        Ina219 => "ina219",
        /// An INA226 on I2C.
        Ina226 => "ina226",
        /// An INA260 on I2C.
        Ina260 => "ina260",
        /// The Witty Pi 4's own readings.
        Wittypi => "wittypi",
        /// A Victron charger on VE.Direct.
        Vedirect => "vedirect",
        /// A Linux power-supply class device.
        PowerSupply => "power_supply",
        /// An MQTT broker that a solar system already publishes to.
        Mqtt => "mqtt",
    }
}

choices! {
    /// `energy.mqtt.preset`: whose topics and payloads an MQTT source reads.
    MqttPreset {
        /// Victron Venus OS (a GX device's broker; needs `portal_id`).
        Victron => "victron",
        /// OpenDTU (Hoymiles micro-inverters: PV only).
        Opendtu => "opendtu",
        /// evcc.
        Evcc => "evcc",
        /// Home Assistant's MQTT statestream (topics named in the settings).
        HomeAssistant => "home-assistant",
        /// Topics and payloads named in the settings.
        Custom => "custom",
    }
}

choices! {
    /// `energy.ina_role`: which line an INA sensor measures.
    InaRole {
        /// In the battery lead: fills `battery_v` and `battery_a` (positive while charging).
        Battery => "battery",
        /// Between panel and charger: fills `pv_w`.
        Pv => "pv",
        /// In the node's supply: fills `load_w`.
        Load => "load",
    }
}

/// The admission gate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSettings {
    /// Which gate decides.
    pub source: GateSource,
    /// Sim period.
    pub sim_period_s: u64,
    /// Sim windows.
    pub sim_windows: Vec<String>,
    /// Where the sim's period starts.
    pub sim_clock: SimClock,
}

/// The energy module: sources, battery, site, forecast and admission policy.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnergySettings {
    /// Where readings come from.
    pub source: EnergySourceKind,
    /// Seconds between readings.
    pub poll_interval_s: f64,
    /// Persistent estimator state and learned app power.
    pub state_file: PathBuf,
    /// Trace file for `source = "trace"`.
    pub trace_file: PathBuf,
    /// Trace replay speed.
    pub trace_speed: f64,
    /// Whether the trace loops.
    pub trace_loop: bool,
    /// I2C bus number.
    pub i2c_bus: u8,
    /// INA2xx address.
    pub ina_address: u16,
    /// Which line the INA2xx measures.
    pub ina_role: InaRole,
    /// Invert the INA2xx current sign.
    pub ina_invert_current: bool,
    /// Shunt resistance, ohms.
    pub shunt_ohms: f64,
    /// Largest expected current, A.
    pub max_current_a: f64,
    /// Whether a Witty Pi 4 is fitted.
    pub wittypi: bool,
    /// Witty Pi address.
    pub wittypi_address: u16,
    /// VE.Direct serial port.
    pub serial_port: PathBuf,
    /// sysfs power_supply root.
    pub power_supply_root: PathBuf,
    /// power_supply name.
    pub power_supply_name: String,
    /// Power-off command after a low-voltage warning.
    pub shutdown_command: String,
    /// Witty Pi daily wake fallback, hours.
    pub wake_fallback_h: f64,
    /// The battery.
    pub battery: BatterySettings,
    /// The panel's site.
    pub site: SiteSettings,
    /// The forecast.
    pub forecast: ForecastSettings,
    /// The admission policy.
    pub policy: PolicySettings,
    /// An MQTT broker as the source (`source = "mqtt"`).
    pub mqtt: MqttSettings,
}

/// `[energy.mqtt]`: reading PV, battery and load from a broker a solar system publishes to.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    /// `host:port` of the broker (plain TCP).
    pub broker: String,
    /// User name; empty: none.
    pub username: String,
    /// File holding the password (0600); empty: none.
    pub password_file: PathBuf,
    /// Whose topics and payloads.
    pub preset: MqttPreset,
    /// Victron: the GX device's VRM portal ID.
    pub portal_id: String,
    /// OpenDTU and evcc: the topic prefix; empty: theirs by default.
    pub prefix: String,
    /// PV power topic (W); empty: the preset's.
    pub pv_topic: String,
    /// Battery state-of-charge topic (%); empty: the preset's.
    pub soc_topic: String,
    /// Load topic (W); empty: the preset's.
    pub load_topic: String,
    /// JSON field holding the value; empty: the preset's (plain numbers for custom).
    pub json_field: String,
    /// Readings older than this (seconds) count as missing.
    pub stale_after_s: f64,
}

/// The battery behind the node.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatterySettings {
    /// "lifepo4" or "lead-acid".
    pub chemistry: String,
    /// Usable capacity, Wh.
    pub capacity_wh: f64,
    /// Nominal voltage.
    pub nominal_v: f64,
    /// Charge efficiency; 0 = the chemistry's default.
    pub charge_efficiency: f64,
    /// Night reserve share.
    pub reserve: f64,
    /// First-start state of charge.
    pub initial_soc: f64,
    /// Measured SoC under which the node stops and powers off.
    pub critical_soc: f64,
}

/// Where the panel is.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSettings {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Panel tilt.
    pub tilt: f64,
    /// Panel azimuth.
    pub azimuth: f64,
    /// Peak power, kWp.
    pub kwp: f64,
    /// System losses.
    pub losses: f64,
}

/// The PV forecast.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastSettings {
    /// Use Open-Meteo.
    pub open_meteo: bool,
    /// Its endpoint.
    pub open_meteo_url: String,
    /// Fetch at most this often, seconds.
    pub refresh_s: f64,
    /// Cache file.
    pub cache_file: PathBuf,
    /// The planning quantile.
    pub quantile: f64,
}

/// The admission policy's power figures.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Idle draw, W.
    pub idle_w: f64,
    /// Full-load draw, W.
    pub busy_w: f64,
    /// Hysteresis band, share of capacity.
    pub hysteresis: f64,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing `EnvFilter` directive.
    pub level: String,
}

/// Why configuration could not be loaded; each variant names the offending key and source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file named by `--config` or `PEW_CONFIG` does not exist or cannot be read.
    #[error("config file {path} cannot be read: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the OS or parser said.
        reason: String,
    },
    /// A key that pew does not know.
    #[error(
        "unknown config key `{key}` in {source_name}; the known keys are listed in config/default.toml"
    )]
    UnknownKey {
        /// Dotted key path.
        key: String,
        /// The file or environment variable it came from.
        source_name: String,
    },
    /// A value of the wrong type, or another deserialization failure.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The packaged service's config file (the .deb's conffile).
pub const SYSTEM_FILE: &str = "/etc/pew/pew.toml";

/// The user's config file, where `pew init` writes when it is not setting up the packaged
/// service: `$XDG_CONFIG_HOME/pew/pew.toml`, else `~/.config/pew/pew.toml`.
pub fn user_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(base.join("pew").join("pew.toml"))
}

/// Whether this process runs as root (who reads and writes the packaged config).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The config file read when neither `--config` nor `PEW_CONFIG` names one: for root, the
/// packaged [`SYSTEM_FILE`] when it exists (what `pew init` writes as root; a user's file
/// under `sudo -E` must not drive root); else the user's ([`user_file`]) when it exists; else
/// none (the built-in defaults alone).
pub fn default_file() -> Option<PathBuf> {
    file_to_write().filter(|p| p.is_file())
}

/// The config file in force: `file` (`--config`), else the one `PEW_CONFIG` names, else the
/// [`default_file`].
pub fn file_in_force(file: Option<&Path>) -> Option<PathBuf> {
    file.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
        .or_else(default_file)
}

/// The config file to write when none is named (`pew init`, `pew energy setup`): the packaged
/// service's when root runs it with the package installed, else the user's; `None` without a
/// HOME.
pub fn file_to_write() -> Option<PathBuf> {
    let system = PathBuf::from(SYSTEM_FILE);
    if running_as_root() && system.is_file() {
        return Some(system);
    }
    user_file()
}

impl Settings {
    /// Loads defaults, then `file` (or the file named by `PEW_CONFIG`, or the
    /// [`default_file`]), then `PEW_*__*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let file = file_in_force(file);
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file.as_deref(), &env)
    }

    /// Like [`Settings::load`], with the environment given explicitly (for tests).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        // Read once, bounded: the file is parsed from this text only, so a device or a FIFO
        // given as --config is refused instead of read without end.
        let file_text = match file {
            Some(path) => Some(
                crate::files::read_text(path, crate::files::limit::CONFIG, "a config file")
                    .map_err(|e| ConfigError::Unreadable {
                        path: path.to_path_buf(),
                        reason: match e {
                            crate::files::ReadError::Missing { .. } => "no such file".into(),
                            other => other.to_string(),
                        },
                    })?,
            ),
            None => None,
        };
        Self::from_text(file.zip(file_text.as_deref()), env)
    }

    /// Like [`Settings::load_from`], with the file's text already read: `file` is its path (for
    /// messages) and its text. The fuzzing target enters here.
    pub fn from_text(
        file: Option<(&Path, &str)>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let known = known_keys();
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some((path, text)) = file {
            let parsed = Config::builder()
                .add_source(File::from_str(text, FileFormat::Toml))
                .build()
                .map_err(|e| ConfigError::Unreadable {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            let table: Map<String, Value> = parsed
                .try_deserialize::<Map<String, Value>>()
                .map_err(|e| ConfigError::Unreadable {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            let mut keys = BTreeSet::new();
            flatten_keys("", &table, &mut keys);
            if let Some(key) = keys.iter().find(|k| !known.contains(*k)) {
                return Err(ConfigError::UnknownKey {
                    key: key.clone(),
                    source_name: path.display().to_string(),
                });
            }
            builder = builder.add_source(File::from_str(text, FileFormat::Toml));
        }

        let mut env_map = Map::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("PEW_") else {
                continue;
            };
            // Variables without "__" (PEW_CONFIG, PEW_PASSWORD, ...) are not config keys.
            if !rest.contains("__") {
                continue;
            }
            let key = rest.to_ascii_lowercase().replace("__", ".");
            if !known.contains(&key) {
                return Err(ConfigError::UnknownKey {
                    key,
                    source_name: format!("environment variable {name}"),
                });
            }
            env_map.insert(rest.to_string(), value.clone());
        }
        builder = builder.add_source(
            Environment::with_prefix("PEW")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(
                    env_map
                        .into_iter()
                        .map(|(k, v)| (format!("PEW_{k}"), v))
                        .collect(),
                )),
        );

        let merged = builder
            .build()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let settings: Settings = merged.try_deserialize().map_err(|e| {
            // The crate names the key; say where the bad value came from, as the user gave it.
            let source = match file {
                Some((path, text)) if !Self::file_alone_is_valid(text) => {
                    format!("in {}", path.display())
                }
                _ => "set by a PEW_* environment variable".to_string(),
            };
            ConfigError::Invalid(format!("{e} ({source})"))
        })?;
        settings.check_ranges()?;
        Ok(settings)
    }

    /// Refuses sizes so large that turning them into bytes would overflow (a typo with extra
    /// zeros), before anything is sized from them.
    fn check_ranges(&self) -> Result<(), ConfigError> {
        let executor = &self.executor;
        let limits: [(&str, u64, u64); 7] = [
            ("executor.memory_mb", executor.memory_mb, 1 << 20),
            ("executor.tmpfs_mb", executor.tmpfs_mb, 1 << 20),
            ("executor.output_cap_mb", executor.output_cap_mb, 1 << 30),
            ("executor.input_max_mb", executor.input_max_mb, 1 << 30),
            (
                "executor.min_free_disk_mb",
                executor.min_free_disk_mb,
                1 << 30,
            ),
            ("executor.log_tail_kib", executor.log_tail_kib, 1 << 20),
            ("node.concurrency", self.node.concurrency as u64, 256),
        ];
        if let Some((key, value, most)) = limits.iter().find(|(_, value, most)| value > most) {
            return Err(ConfigError::Invalid(format!(
                "{key} = {value} is out of range (at most {most})"
            )));
        }
        let history = &self.history;
        let spans: [(&str, f64, f64, f64); 3] = [
            (
                "history.sample_every_s",
                history.sample_every_s,
                0.1,
                3600.0,
            ),
            (
                "history.journal_every_s",
                history.journal_every_s,
                1.0,
                86_400.0,
            ),
            ("history.keep_days", history.keep_days, 0.0, 366.0),
        ];
        match spans
            .iter()
            .find(|(_, value, least, most)| !(value >= least && value <= most))
        {
            Some((key, value, least, most)) => Err(ConfigError::Invalid(format!(
                "{key} = {value} is out of range ({least} to {most})"
            ))),
            None => Ok(()),
        }
    }
}

impl Settings {
    /// The folder for files that change often and need not survive a reboot (the running
    /// node's status, node locks): `node.runtime_dir`, else `$XDG_RUNTIME_DIR/pew`, else
    /// `/run/pew` for root, else `pew-<uid>` in the temp folder.
    pub fn runtime_dir(&self) -> PathBuf {
        if !self.node.runtime_dir.as_os_str().is_empty() {
            return self.node.runtime_dir.clone();
        }
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("pew");
        }
        // SAFETY: geteuid cannot fail.
        let uid = unsafe { libc::geteuid() };
        if uid == 0 {
            return PathBuf::from("/run/pew");
        }
        std::env::temp_dir().join(format!("pew-{uid}"))
    }

    /// The running node's status file, read by `pew energy status` and `pew doctor`: in the
    /// runtime folder, named after the energy state file it belongs to (two nodes with their
    /// own state never share one).
    pub fn node_status_file(&self) -> PathBuf {
        use sha2::Digest;
        let state = std::path::absolute(&self.energy.state_file)
            .unwrap_or_else(|_| self.energy.state_file.clone());
        let tag = sha2::Sha256::digest(state.as_os_str().as_encoded_bytes());
        self.runtime_dir().join(format!(
            "node-status-{}.json",
            alloy::hex::encode(&tag[..4])
        ))
    }

    /// Whether the defaults plus the file's `text` alone (no environment) deserialize.
    fn file_alone_is_valid(text: &str) -> bool {
        Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .add_source(File::from_str(text, FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize::<Settings>())
            .is_ok()
    }
}

/// Every dotted key of the built-in defaults.
fn known_keys() -> BTreeSet<String> {
    let defaults = Config::builder()
        .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<Map<String, Value>>())
        .expect("config/default.toml is valid TOML (checked by a unit test)");
    let mut keys = BTreeSet::new();
    flatten_keys("", &defaults, &mut keys);
    keys
}

fn flatten_keys(prefix: &str, table: &Map<String, Value>, out: &mut BTreeSet<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match &value.kind {
            ValueKind::Table(inner) => flatten_keys(&key, inner, out),
            _ => {
                out.insert(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_load_without_a_file() {
        let settings = Settings::load_from(None, &[]).unwrap();
        assert_eq!(settings.devnet.port, 8545);
        assert_eq!(settings.chain.preset, "devnet");
        assert!(settings.devnet.ipfs);
    }

    #[test]
    fn a_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let file = write_file("[devnet]\nport = 9545\nipfs_api_port = 6001\n");
        let env = vec![("PEW_DEVNET__PORT".to_string(), "10545".to_string())];
        let settings = Settings::load_from(Some(file.path()), &env).unwrap();
        assert_eq!(settings.devnet.port, 10545);
        assert_eq!(settings.devnet.ipfs_api_port, 6001);
        assert_eq!(settings.devnet.ipfs_gateway_port, 8080);
    }

    #[test]
    fn an_unknown_key_in_a_file_names_the_key_and_the_file() {
        let file = write_file("[devnet]\nprot = 9545\n");
        let err = Settings::load_from(Some(file.path()), &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("devnet.prot"), "{text}");
        assert!(text.contains(&file.path().display().to_string()), "{text}");
    }

    #[test]
    fn an_unknown_environment_key_names_the_variable() {
        let env = vec![("PEW_CHAIN__RPC".to_string(), "x".to_string())];
        let err = Settings::load_from(None, &env).unwrap_err().to_string();
        assert!(err.contains("chain.rpc"), "{err}");
        assert!(err.contains("PEW_CHAIN__RPC"), "{err}");
    }

    #[test]
    fn variables_without_a_section_are_not_config_keys() {
        let env = vec![
            ("PEW_PASSWORD".to_string(), "secret".to_string()),
            ("PEW_CONFIG".to_string(), "/nowhere".to_string()),
        ];
        assert!(Settings::load_from(None, &env).is_ok());
    }

    #[test]
    fn a_wrong_type_names_the_key_and_the_file() {
        let file = write_file("[devnet]\nport = \"high\"\n");
        let err = Settings::load_from(Some(file.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("devnet.port"), "{err}");
        assert!(err.contains(&file.path().display().to_string()), "{err}");
    }

    #[test]
    fn a_choice_outside_its_set_fails_at_load_naming_the_key() {
        for (text, key, value) in [
            ("[gate]\nsource = \"moon\"\n", "gate.source", "moon"),
            ("[gate]\nsim_clock = \"mars\"\n", "gate.sim_clock", "mars"),
            ("[energy]\nsource = \"solar\"\n", "energy.source", "solar"),
            ("[energy]\nina_role = \"grid\"\n", "energy.ina_role", "grid"),
        ] {
            let file = write_file(text);
            let err = Settings::load_from(Some(file.path()), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(value), "{err}");
        }
        let env = vec![("PEW_GATE__SOURCE".to_string(), "sun".to_string())];
        let err = Settings::load_from(None, &env).unwrap_err().to_string();
        assert!(err.contains("gate.source") && err.contains("sun"), "{err}");
        let good = write_file("[gate]\nsource = \"always\"\n[energy]\nsource = \"power_supply\"\n");
        let settings = Settings::load_from(Some(good.path()), &[]).unwrap();
        assert_eq!(settings.gate.source, GateSource::Always);
        assert_eq!(settings.energy.source, EnergySourceKind::PowerSupply);
    }

    #[test]
    fn a_size_that_would_overflow_is_refused_with_its_key() {
        let file = write_file("[executor]\nmemory_mb = 9223372036854775807\n");
        let err = Settings::load_from(Some(file.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("executor.memory_mb"), "{err}");
        let env = vec![("PEW_NODE__CONCURRENCY".to_string(), "100000".to_string())];
        let err = Settings::load_from(None, &env).unwrap_err().to_string();
        assert!(err.contains("node.concurrency"), "{err}");
    }

    #[test]
    fn a_missing_file_is_reported_with_its_path() {
        let err = Settings::load_from(Some(Path::new("/no/such/pew.toml")), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/pew.toml"), "{err}");
    }
}

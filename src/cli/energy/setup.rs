//! `pew energy setup`: asks (or takes from flags) the energy settings, writes the `[energy]`
//! section of the config file, and checks that the source answers.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use serde_json::Value;

use crate::cli::context::print;
use crate::config::{CONFIG_ENV, Settings};
use crate::energy::runtime::{configured_site, first_reading, gate_config, open_source};

/// `pew energy setup` flags; each one answers a question the interactive mode asks.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Ask nothing: take the flags, and the current values for the rest.
    #[arg(long)]
    pub non_interactive: bool,
    /// Source: trace, ina219, ina226, ina260, wittypi, vedirect, power_supply or none.
    #[arg(long)]
    pub source: Option<String>,
    /// Trace file (source trace).
    #[arg(long, value_name = "FILE")]
    pub trace_file: Option<PathBuf>,
    /// I2C bus number (1 on a Raspberry Pi).
    #[arg(long)]
    pub i2c_bus: Option<u8>,
    /// I2C address of the current monitor, e.g. 0x40.
    #[arg(long, value_parser = parse_address)]
    pub address: Option<u16>,
    /// Shunt resistance, ohms.
    #[arg(long)]
    pub shunt_ohms: Option<f64>,
    /// Largest current expected, A.
    #[arg(long)]
    pub max_current_a: Option<f64>,
    /// The line the current monitor measures: battery, pv or load.
    #[arg(long)]
    pub ina_role: Option<String>,
    /// A Witty Pi 4 is fitted (true/false).
    #[arg(long)]
    pub wittypi: Option<bool>,
    /// Serial port of the VE.Direct cable.
    #[arg(long, value_name = "PATH")]
    pub serial_port: Option<PathBuf>,
    /// Battery chemistry: lifepo4 or lead-acid.
    #[arg(long)]
    pub chemistry: Option<String>,
    /// Usable battery capacity, Wh.
    #[arg(long)]
    pub capacity_wh: Option<f64>,
    /// Nominal battery voltage.
    #[arg(long)]
    pub nominal_v: Option<f64>,
    /// Night reserve, share of capacity.
    #[arg(long)]
    pub reserve: Option<f64>,
    /// Latitude, degrees north.
    #[arg(long, allow_hyphen_values = true)]
    pub latitude: Option<f64>,
    /// Longitude, degrees east.
    #[arg(long, allow_hyphen_values = true)]
    pub longitude: Option<f64>,
    /// Panel tilt, degrees (0 = flat).
    #[arg(long)]
    pub tilt: Option<f64>,
    /// Panel azimuth, degrees (0 = south, -90 = east, 90 = west).
    #[arg(long, allow_hyphen_values = true)]
    pub azimuth: Option<f64>,
    /// Panel peak power, kWp.
    #[arg(long)]
    pub kwp: Option<f64>,
    /// Write the config even when the source does not answer.
    #[arg(long)]
    pub force: bool,
}

impl SetupArgs {
    /// Whether any question is answered by a flag (`pew init --non-interactive` then sets the
    /// source up too). A new flag belongs here as well.
    pub fn answers_anything(&self) -> bool {
        let e = self;
        e.source.is_some()
            || e.trace_file.is_some()
            || e.i2c_bus.is_some()
            || e.address.is_some()
            || e.shunt_ohms.is_some()
            || e.max_current_a.is_some()
            || e.ina_role.is_some()
            || e.wittypi.is_some()
            || e.serial_port.is_some()
            || e.chemistry.is_some()
            || e.capacity_wh.is_some()
            || e.nominal_v.is_some()
            || e.reserve.is_some()
            || e.latitude.is_some()
            || e.longitude.is_some()
            || e.tilt.is_some()
            || e.azimuth.is_some()
            || e.kwp.is_some()
    }
}

fn parse_address(text: &str) -> Result<u16, String> {
    let value = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|_| format!("`{text}` is not an I2C address (e.g. 0x40)"))?;
    if !(0x03..=0x77).contains(&value) {
        return Err(format!("I2C address {text} is outside 0x03..0x77"));
    }
    Ok(value)
}

/// One setting: its key under [energy], the flag's value, and how to ask for it.
struct Question {
    key: &'static str,
    prompt: &'static str,
    answer: Option<toml_edit::Value>,
    current: toml_edit::Value,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    Integer,
    Flag,
}

fn ask(input: &mut dyn BufRead, question: &Question) -> anyhow::Result<toml_edit::Value> {
    loop {
        let shown = question
            .answer
            .as_ref()
            .unwrap_or(&question.current)
            .to_string();
        crate::cli::output::err_prompt(&format!("{} [{}]: ", question.prompt, shown.trim()));
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            bail!("input ended before setup was complete (use --non-interactive with flags)");
        }
        let line = line.trim();
        if line.is_empty() {
            return Ok(question.answer.clone().unwrap_or(question.current.clone()));
        }
        match parse_answer(question.kind, line) {
            Ok(value) => return Ok(value),
            Err(error) => crate::cli::output::err_line(&format!("  {error}; try again")),
        }
    }
}

fn parse_answer(kind: Kind, text: &str) -> Result<toml_edit::Value, String> {
    match kind {
        Kind::Text => Ok(text.into()),
        Kind::Number => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Into::into)
            .ok_or_else(|| format!("`{text}` is not a number")),
        Kind::Integer => parse_address(text)
            .map(|v| i64::from(v).into())
            .or_else(|_| {
                text.parse::<i64>()
                    .map(Into::into)
                    .map_err(|_| format!("`{text}` is not a whole number"))
            }),
        Kind::Flag => match text.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "1" => Ok(true.into()),
            "n" | "no" | "false" | "0" => Ok(false.into()),
            _ => Err(format!("`{text}` is not yes or no")),
        },
    }
}

/// The config file setup writes: `--config`, else PEW_CONFIG, else the one pew reads by
/// default (`/etc/pew/pew.toml` for root with the package, else `~/.config/pew/pew.toml`).
pub fn config_target(config: Option<&Path>) -> anyhow::Result<PathBuf> {
    config
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
        .or_else(crate::config::file_to_write)
        .ok_or_else(|| {
            anyhow!(
                "name the config file to write with --config FILE (or {CONFIG_ENV}); pew reads \
                 it from the same flag or variable"
            )
        })
}

/// What setup wrote.
#[derive(Debug, Serialize)]
struct SetupOutcome {
    config: String,
    source: String,
    source_answers: bool,
    reading: Option<Value>,
    error: Option<String>,
}

/// Asks (or takes from flags) the energy settings, writes them, and checks the source.
pub async fn setup(
    args: SetupArgs,
    json: bool,
    settings: &Settings,
    config: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let target = config_target(config)?;
    let energy = &settings.energy;
    let text = |v: &str| toml_edit::Value::from(v);
    let num = |v: f64| toml_edit::Value::from(v);
    let questions = vec![
        Question {
            key: "source",
            prompt: "energy source (trace, ina219, ina226, ina260, wittypi, vedirect, power_supply, none)",
            answer: args.source.as_deref().map(text),
            current: text(energy.source.as_str()),
            kind: Kind::Text,
        },
        Question {
            key: "trace_file",
            prompt: "trace file (for source trace)",
            answer: args
                .trace_file
                .as_ref()
                .map(|p| text(&p.display().to_string())),
            current: text(&energy.trace_file.display().to_string()),
            kind: Kind::Text,
        },
        Question {
            key: "i2c_bus",
            prompt: "I2C bus",
            answer: args.i2c_bus.map(|v| i64::from(v).into()),
            current: i64::from(energy.i2c_bus).into(),
            kind: Kind::Integer,
        },
        Question {
            key: "ina_address",
            prompt: "current monitor I2C address",
            answer: args.address.map(|v| i64::from(v).into()),
            current: i64::from(energy.ina_address).into(),
            kind: Kind::Integer,
        },
        Question {
            key: "shunt_ohms",
            prompt: "shunt resistance (ohms)",
            answer: args.shunt_ohms.map(num),
            current: num(energy.shunt_ohms),
            kind: Kind::Number,
        },
        Question {
            key: "max_current_a",
            prompt: "largest current (A)",
            answer: args.max_current_a.map(num),
            current: num(energy.max_current_a),
            kind: Kind::Number,
        },
        Question {
            key: "ina_role",
            prompt: "the line it measures (battery, pv, load)",
            answer: args.ina_role.as_deref().map(text),
            current: text(energy.ina_role.as_str()),
            kind: Kind::Text,
        },
        Question {
            key: "wittypi",
            prompt: "Witty Pi 4 fitted (yes/no)",
            answer: args.wittypi.map(Into::into),
            current: energy.wittypi.into(),
            kind: Kind::Flag,
        },
        Question {
            key: "serial_port",
            prompt: "VE.Direct serial port",
            answer: args
                .serial_port
                .as_ref()
                .map(|p| text(&p.display().to_string())),
            current: text(&energy.serial_port.display().to_string()),
            kind: Kind::Text,
        },
        Question {
            key: "battery.chemistry",
            prompt: "battery chemistry (lifepo4, lead-acid)",
            answer: args.chemistry.as_deref().map(text),
            current: text(&energy.battery.chemistry),
            kind: Kind::Text,
        },
        Question {
            key: "battery.capacity_wh",
            prompt: "usable battery capacity (Wh)",
            answer: args.capacity_wh.map(num),
            current: num(energy.battery.capacity_wh),
            kind: Kind::Number,
        },
        Question {
            key: "battery.nominal_v",
            prompt: "nominal battery voltage (V)",
            answer: args.nominal_v.map(num),
            current: num(energy.battery.nominal_v),
            kind: Kind::Number,
        },
        Question {
            key: "battery.reserve",
            prompt: "night reserve (share of capacity)",
            answer: args.reserve.map(num),
            current: num(energy.battery.reserve),
            kind: Kind::Number,
        },
        Question {
            key: "site.latitude",
            prompt: "latitude (degrees north)",
            answer: args.latitude.map(num),
            current: num(energy.site.latitude),
            kind: Kind::Number,
        },
        Question {
            key: "site.longitude",
            prompt: "longitude (degrees east)",
            answer: args.longitude.map(num),
            current: num(energy.site.longitude),
            kind: Kind::Number,
        },
        Question {
            key: "site.tilt",
            prompt: "panel tilt (degrees, 0 = flat)",
            answer: args.tilt.map(num),
            current: num(energy.site.tilt),
            kind: Kind::Number,
        },
        Question {
            key: "site.azimuth",
            prompt: "panel azimuth (0 = south, -90 = east, 90 = west)",
            answer: args.azimuth.map(num),
            current: num(energy.site.azimuth),
            kind: Kind::Number,
        },
        Question {
            key: "site.kwp",
            prompt: "panel peak power (kWp, e.g. 0.05 for 50 W)",
            answer: args.kwp.map(num),
            current: num(energy.site.kwp),
            kind: Kind::Number,
        },
    ];
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut document: toml_edit::DocumentMut =
        match crate::files::read_text(&target, crate::files::limit::CONFIG, "a config file") {
            Ok(existing) => existing.parse().with_context(|| {
                format!(
                    "{} is not valid TOML; fix or remove it first",
                    target.display()
                )
            })?,
            Err(error) if error.is_missing() => toml_edit::DocumentMut::new(),
            Err(error) => return Err(error.into()),
        };
    for question in &questions {
        let value = if args.non_interactive {
            match &question.answer {
                Some(value) => value.clone(),
                None => continue, // untouched: the file keeps what it had
            }
        } else {
            ask(&mut input, question)?
        };
        let mut table = document
            .entry("energy")
            .or_insert(toml_edit::table())
            .as_table_mut()
            .ok_or_else(|| anyhow!("`energy` in {} is not a table", target.display()))?;
        let mut key = question.key;
        if let Some((section, rest)) = key.split_once('.') {
            table = table
                .entry(section)
                .or_insert(toml_edit::table())
                .as_table_mut()
                .ok_or_else(|| {
                    anyhow!("`energy.{section}` in {} is not a table", target.display())
                })?;
            key = rest;
        }
        table[key] = toml_edit::value(value);
    }

    // Validate the whole result as pew will read it, before writing.
    let candidate = tempfile::NamedTempFile::new()?;
    std::fs::write(candidate.path(), document.to_string())?;
    let merged = Settings::load(Some(candidate.path()))
        .map_err(|e| anyhow!("the new settings are not valid: {e}"))?;
    gate_config(&merged.energy, 1.0)?;
    configured_site(&merged.energy)?;

    let check = match merged.energy.source {
        crate::config::EnergySourceKind::None => {
            Err(anyhow!("energy.source is \"none\": nothing to check"))
        }
        _ => {
            open_source(&merged.energy).and_then(|mut opened| first_reading(opened.source.as_mut()))
        }
    };
    let outcome = SetupOutcome {
        config: target.display().to_string(),
        source: merged.energy.source.to_string(),
        source_answers: check.is_ok(),
        reading: check
            .as_ref()
            .ok()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null)),
        error: check.as_ref().err().map(|e| format!("{e:#}")),
    };
    if check.is_err() && !args.force {
        print(json, &outcome, |o| {
            format!(
                "the source does not answer, so {} was not written: {}\n(fix the wiring or settings, or pass --force to write anyway)",
                o.config,
                o.error.as_deref().unwrap_or("")
            )
        });
        return Ok(ExitCode::FAILURE);
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    crate::files::write_atomic(&target, document.to_string().as_bytes()).with_context(|| {
        format!(
            "{} cannot be written (the packaged /etc/pew/pew.toml needs sudo)",
            target.display()
        )
    })?;
    print(json, &outcome, |o| match &o.reading {
        Some(reading) => format!(
            "wrote {}; source {} answers: {}",
            o.config, o.source, reading
        ),
        None => format!(
            "wrote {}; source {} does not answer yet: {}",
            o.config,
            o.source,
            o.error.as_deref().unwrap_or("")
        ),
    });
    Ok(if outcome.source_answers {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

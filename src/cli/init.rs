//! `pew init`: an operator's first run, guided. Picks the config file (the packaged service's
//! `/etc/pew/pew.toml` when run as root with the package installed, else
//! `~/.config/pew/pew.toml`), then: the chain, the state folder, the wallet (created or
//! imported), gas, the workerpool (created or picked), the bid's price, the stake the bid
//! locks (deposited when short), the energy source (`pew energy setup`'s questions), and ends
//! with `pew doctor`'s checks and the next command.
//!
//! Every step reads what is already there first and keeps it: a second run does nothing twice
//! (no second key file, no second workerpool, no second deposit). Each answer is written to the
//! config file as soon as it is known, so an interrupted run resumes where it stopped. A bad
//! answer is asked again; `--non-interactive` takes flags instead and stops with one line
//! naming what is missing.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alloy::primitives::{Address, U256};
use anyhow::{Context, anyhow, bail};
use serde::Serialize;

use super::context::Globals;
use super::energy::setup::SetupArgs;
use crate::config::Settings;
use crate::poco::Nrlc;

/// Flags of `pew init`; the energy source's are `pew energy setup`'s.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Import this private key (a file holding it as hex) instead of creating a new key.
    #[arg(long, value_name = "FILE")]
    private_key_file: Option<PathBuf>,
    /// Serve this workerpool (it must be the wallet's) instead of creating one.
    #[arg(long, value_name = "ADDRESS", value_parser = super::context::address_arg)]
    pool: Option<Address>,
    /// The description of the workerpool to create [default: "pew on <host name>"].
    #[arg(long, value_name = "TEXT")]
    pool_description: Option<String>,
    /// The bid's price per task (RLC) [default: node.price].
    #[arg(long, value_name = "RLC")]
    price: Option<Nrlc>,
    /// Tasks per workerpool order [default: node.volume].
    #[arg(long)]
    volume: Option<u64>,
    /// Do not deposit the stake the bid locks, even when the iExec account holds less.
    #[arg(long)]
    no_deposit: bool,
    /// Where the node keeps its journal, task folders and energy state [default:
    /// /var/lib/pew for the packaged service, else ~/.local/share/pew].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    energy: SetupArgs,
}

/// What `pew init` did, step by step (`--json` prints it as one object).
#[derive(Debug, Default, Serialize)]
struct Outcome {
    config: String,
    wallet: Option<Address>,
    keystore: String,
    pool: Option<Address>,
    deposited_nrlc: String,
    steps: Vec<Step>,
    doctor_ok: bool,
    next: String,
}

/// One step: its name, whether it changed something, and what it found or did.
#[derive(Debug, Serialize)]
struct Step {
    step: &'static str,
    changed: bool,
    detail: String,
}

/// The conversation: questions on stderr, answers from stdin, or none at all.
struct Asker<'a> {
    interactive: bool,
    input: &'a mut dyn BufRead,
}

impl Asker<'_> {
    /// Asks until `parse` accepts the answer; an empty answer takes `default` (when there is
    /// one). Without a terminal, `missing` says which flag to give instead.
    fn ask<T>(
        &mut self,
        prompt: &str,
        default: Option<&str>,
        missing: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        if !self.interactive {
            return match default {
                Some(value) => parse(value).map_err(|e| anyhow!("{missing}: {e}")),
                None => Err(anyhow!("{missing} (--non-interactive asks nothing)")),
            };
        }
        loop {
            let shown = default.map(|d| format!(" [{d}]")).unwrap_or_default();
            super::output::err_prompt(&format!("{prompt}{shown}: "));
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                bail!("input ended before init was complete (use --non-interactive with flags)");
            }
            let answer = match (line.trim(), default) {
                ("", Some(default)) => default.to_string(),
                (answer, _) => answer.to_string(),
            };
            match parse(&answer) {
                Ok(value) => return Ok(value),
                Err(error) => super::output::err_line(&format!("  {error}; try again")),
            }
        }
    }

    fn yes(&mut self, prompt: &str, default: bool, missing: &str) -> anyhow::Result<bool> {
        self.ask(
            prompt,
            Some(if default { "yes" } else { "no" }),
            missing,
            |a| match a.to_ascii_lowercase().as_str() {
                "y" | "yes" => Ok(true),
                "n" | "no" => Ok(false),
                _ => Err(format!(
                    "`{}` is not yes or no",
                    crate::text::one_line(a, 40)
                )),
            },
        )
    }
}

/// The config file as an editable document; each change is written at once.
struct ConfigFile {
    path: PathBuf,
    document: toml_edit::DocumentMut,
}

impl ConfigFile {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let document =
            match crate::files::read_text(path, crate::files::limit::CONFIG, "a config file") {
                Ok(text) => text.parse().with_context(|| {
                    format!(
                        "{} is not valid TOML; fix or remove it first",
                        path.display()
                    )
                })?,
                Err(error) if error.is_missing() => toml_edit::DocumentMut::new(),
                Err(error) => return Err(error.into()),
            };
        Ok(ConfigFile {
            path: path.to_path_buf(),
            document,
        })
    }

    /// The text value the file itself holds at `section.key`, if any.
    fn get(&self, dotted: &str) -> Option<String> {
        let mut item = self.document.as_item();
        for part in dotted.split('.') {
            item = item.get(part)?;
        }
        item.as_str().map(str::to_string)
    }

    /// Sets `section.key` (or `section.sub.key`) and writes the file, after checking that
    /// pew reads the result.
    fn set(&mut self, dotted: &str, value: impl Into<toml_edit::Value>) -> anyhow::Result<()> {
        let parts: Vec<&str> = dotted.split('.').collect();
        let (key, sections) = parts.split_last().expect("a dotted key");
        let mut table = self.document.as_table_mut();
        for section in sections {
            table = table
                .entry(section)
                .or_insert(toml_edit::table())
                .as_table_mut()
                .ok_or_else(|| anyhow!("`{section}` in {} is not a table", self.path.display()))?;
        }
        table[*key] = toml_edit::value(value.into());
        self.save()
    }

    fn save(&self) -> anyhow::Result<()> {
        let text = self.document.to_string();
        crate::config::Settings::from_text(Some((&self.path, &text)), &[])
            .map_err(|e| anyhow!("the new settings are not valid: {e}"))?;
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{} cannot be made", parent.display()))?;
        }
        let new = !self.path.exists();
        crate::files::write_atomic(&self.path, text.as_bytes()).with_context(|| {
            format!(
                "{} cannot be written (the packaged /etc/pew/pew.toml needs sudo)",
                self.path.display()
            )
        })?;
        if new {
            // A new config is the user's alone: it may name an RPC URL with an API key.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    /// The settings pew reads from this document (with the environment over it).
    fn settings(&self) -> anyhow::Result<Settings> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let text = self.document.to_string();
        Settings::from_text(Some((&self.path, &text)), &env).map_err(|e| anyhow!("{e}"))
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| crate::text::one_line(h.trim(), 60))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "a Raspberry Pi".into())
}

/// Runs `pew init`.
pub async fn run(
    args: InitArgs,
    globals: &Globals,
    config: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let interactive = !args.energy.non_interactive;
    if interactive && !std::io::stdin().is_terminal() {
        bail!("no terminal to ask on: run `pew init --non-interactive` with flags (see --help)");
    }
    let target = super::energy::setup::config_target(config)?;
    let system = target == Path::new(crate::config::SYSTEM_FILE);
    let mut file = ConfigFile::open(&target)?;
    let mut out = Outcome {
        config: target.display().to_string(),
        ..Outcome::default()
    };
    let note = |out: &mut Outcome, step: &'static str, changed: bool, detail: String| {
        if !globals.json {
            let mark = if changed { "done" } else { "kept" };
            super::output::err_line(&format!("init: {step}: {mark}: {detail}"));
        }
        out.steps.push(Step {
            step,
            changed,
            detail,
        });
    };
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let mut asker = Asker {
        interactive,
        input: &mut lock,
    };

    // The chain: what the flags name is written down, so `pew run` needs no flags.
    let mut chain_changes = Vec::new();
    let mut wanted: Vec<(&str, String)> = Vec::new();
    if let Some(name) = &globals.chain {
        wanted.push(("chain.preset", name.clone()));
    }
    if let Some(devnet) = &globals.devnet_file {
        let devnet = std::path::absolute(devnet)?.display().to_string();
        wanted.push(("chain.devnet_file", devnet));
    }
    if let Some(url) = &globals.rpc_url {
        wanted.push(("chain.rpc_url", url.clone()));
    }
    if let Some(hub) = &globals.hub {
        wanted.push(("chain.hub", hub.clone()));
    }
    for (key, value) in wanted {
        // Compared with the file's own value: a default equal to the flag is written too, so
        // the file alone says which chain the node serves.
        if file.get(key).as_deref() != Some(value.as_str()) {
            file.set(key, value.as_str())?;
            // An RPC URL often carries an API key: only its host is shown.
            let shown = match key {
                "chain.rpc_url" => url::Url::parse(&value)
                    .map(|u| crate::chain::rpc::shown(&u))
                    .unwrap_or_else(|_| "(not a URL)".into()),
                _ => crate::text::one_line(&value, 100),
            };
            chain_changes.push(format!("{key} = {shown}"));
        }
    }
    let settings = file.settings()?;
    let detail = if chain_changes.is_empty() {
        format!("preset {}", settings.chain.preset)
    } else {
        chain_changes.join(", ")
    };
    note(&mut out, "chain", !chain_changes.is_empty(), detail);

    // The state folder: absolute paths, so the node finds its journal from any folder.
    let state_dir = match &args.state_dir {
        Some(dir) => std::path::absolute(dir)?,
        None if system => PathBuf::from("/var/lib/pew"),
        None => std::env::var_os("XDG_DATA_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .map(|base| base.join("pew"))
            .ok_or_else(|| anyhow!("no HOME for the state folder: give --state-dir DIR"))?,
    };
    let paths: [(&str, &Path, PathBuf); 4] = [
        (
            "node.journal",
            &settings.node.journal,
            state_dir.join("node/journal.sqlite"),
        ),
        (
            "executor.work_dir",
            &settings.executor.work_dir,
            state_dir.join("work"),
        ),
        (
            "energy.state_file",
            &settings.energy.state_file,
            state_dir.join("energy/state.json"),
        ),
        (
            "energy.forecast.cache_file",
            &settings.energy.forecast.cache_file,
            state_dir.join("energy/open-meteo.json"),
        ),
    ];
    let mut moved = 0;
    for (key, current, wanted) in paths {
        // A path the operator chose (absolute) stays; the built-in relative ones move.
        if (current.is_relative() || args.state_dir.is_some()) && current != wanted.as_path() {
            file.set(key, wanted.display().to_string())?;
            moved += 1;
        }
    }
    note(
        &mut out,
        "state",
        moved > 0,
        state_dir.display().to_string(),
    );
    let settings = file.settings()?;

    // The wallet: an existing key file is kept; else one is created or imported.
    let keystore = std::path::absolute(globals.keystore_path(&settings))?;
    out.keystore = keystore.display().to_string();
    if settings.wallet.keystore != keystore {
        file.set("wallet.keystore", keystore.display().to_string())?;
    }
    let password;
    let me = if keystore.exists() {
        let address = crate::wallet::address(&keystore)?;
        password = globals.password(false)?;
        crate::wallet::unlock(&keystore, &password)
            .with_context(|| format!("{} does not open with this password", keystore.display()))?;
        note(
            &mut out,
            "wallet",
            false,
            format!("{address} in {}", keystore.display()),
        );
        address
    } else {
        let import = match &args.private_key_file {
            Some(file) => Some(file.clone()),
            None => asker.ask(
                "wallet: create a new key, or import one from a file? (create, or the file's path)",
                Some("create"),
                "",
                |a| match a {
                    "create" => Ok(None),
                    // The answer is never echoed: a key pasted here by mistake stays off the
                    // screen and out of logs.
                    path if Path::new(path).is_file() => Ok(Some(PathBuf::from(path))),
                    _ => Err(
                        "that is not `create` nor a file's path (the answer is not shown)".into(),
                    ),
                },
            )?,
        };
        password = globals.password(true)?;
        let address = match &import {
            Some(key_file) => {
                let text = crate::files::read_text(
                    key_file,
                    crate::files::limit::SECRET,
                    "a private key file",
                )?;
                crate::wallet::import_private_key(&keystore, &text, &password)?
            }
            None => crate::wallet::create(&keystore, &password)?,
        };
        let how = if import.is_some() {
            "imported"
        } else {
            "created"
        };
        note(
            &mut out,
            "wallet",
            true,
            format!("{how} {address} in {}", keystore.display()),
        );
        address
    };
    out.wallet = Some(me);
    if system {
        give_to_service(&keystore, &password);
    }

    // The chain, signing with that key.
    let settings = file.settings()?;
    let chain = crate::chain::client::connect(globals.target(&settings)?).await?;
    let signer = crate::wallet::unlock(&keystore, &password)?;
    let sdk = crate::sdk::Sdk::configured(chain, Some(signer), &settings);

    // Gas.
    loop {
        let balances = sdk.balances(me).await?;
        match crate::node::startup::gas_problem(&balances) {
            None => {
                note(
                    &mut out,
                    "gas",
                    false,
                    format!(
                        "{} ETH",
                        alloy::primitives::utils::format_ether(balances.eth_wei)
                    ),
                );
                break;
            }
            Some(problem) if interactive => {
                asker.ask(
                    &format!("{problem}; press Enter once it is sent"),
                    Some(""),
                    "",
                    |_| Ok(()),
                )?;
            }
            Some(problem) => bail!("{problem}, then run `pew init` again"),
        }
    }

    // The workerpool: the configured one if it is ours, else the flag's, else a new one.
    let configured = settings.node.pool.trim();
    let mut pool = None;
    if !configured.is_empty() {
        let address = crate::chain::client::parse_address("node.pool", configured)?;
        // A configured workerpool is never replaced behind the operator's back (a passing
        // RPC failure must not lead to a second workerpool): its problem stops init.
        crate::node::startup::check_pool(&sdk, address, me)
            .await
            .with_context(|| {
                format!(
                    "node.pool {address} in {}: fix it (or remove the line to choose again), then run `pew init` again",
                    target.display()
                )
            })?;
        note(&mut out, "workerpool", false, format!("{address}"));
        pool = Some(address);
    }
    if pool.is_none() {
        let mut chosen = args.pool;
        if let Some(address) = chosen {
            crate::node::startup::check_pool(&sdk, address, me).await?;
        }
        while chosen.is_none() {
            let answer = asker.ask(
                "workerpool: the address of one of yours, or Enter to create one",
                Some("create"),
                "",
                |a| match a {
                    "create" => Ok(None),
                    text => crate::chain::client::parse_address("workerpool", text)
                        .map(Some)
                        .map_err(|e| e.to_string()),
                },
            )?;
            let Some(address) = answer else { break };
            // A workerpool that is not the wallet's is asked again.
            match crate::node::startup::check_pool(&sdk, address, me).await {
                Ok(()) => chosen = Some(address),
                Err(error) => super::output::err_line(&format!("  {error:#}; try again")),
            }
        }
        let address = match chosen {
            Some(address) => {
                note(&mut out, "workerpool", true, format!("{address} (yours)"));
                address
            }
            None => {
                let default = args
                    .pool_description
                    .clone()
                    .unwrap_or_else(|| format!("pew on {}", host_name()));
                let description = asker.ask(
                    "workerpool description",
                    Some(&default),
                    "--pool-description",
                    |a| {
                        let a = a.trim();
                        if a.is_empty() || a.len() > 200 {
                            Err("give 1 to 200 characters".into())
                        } else {
                            Ok(a.to_string())
                        }
                    },
                )?;
                let registration = sdk.create_pool(&description).await?;
                let created = matches!(registration, crate::sdk::assets::Registration::Created(_));
                note(
                    &mut out,
                    "workerpool",
                    created,
                    format!(
                        "{} \"{}\"",
                        registration.address(),
                        crate::text::one_line(&description, 80)
                    ),
                );
                registration.address()
            }
        };
        file.set("node.pool", address.to_string())?;
        pool = Some(address);
    }
    out.pool = pool;

    // The bid: price and volume.
    let price = match args.price {
        Some(price) => price,
        None => asker.ask(
            "the bid's price per task (RLC)",
            Some(&settings.node.price),
            "node.price is not an amount",
            |a| a.parse::<Nrlc>().map_err(|e| e.to_string()),
        )?,
    };
    let volume = match args.volume {
        Some(volume) => volume,
        None => asker.ask(
            "tasks per bid",
            Some(&settings.node.volume.to_string()),
            "node.volume is not a whole number",
            |a| match a.parse::<u64>() {
                Ok(v) if (1..=1000).contains(&v) => Ok(v),
                _ => Err("give a whole number from 1 to 1000".into()),
            },
        )?,
    };
    let price_text = price.to_string().trim_end_matches(" RLC").to_string();
    let changed = price_text != settings.node.price || volume != settings.node.volume;
    if changed {
        file.set("node.price", price_text.as_str())?;
        file.set("node.volume", volume as i64)?;
    }
    note(
        &mut out,
        "bid",
        changed,
        format!("{price} per task, {volume} per bid"),
    );

    // The stake the bid locks.
    let needed = crate::node::owner_stake_per_task(price) * U256::from(volume.max(1));
    let balances = sdk.balances(me).await?;
    out.deposited_nrlc = "0".into();
    // Stake locked in running deals counts: it comes back as they end, and a second run
    // while tasks run must not deposit again.
    let held = balances.stake_nrlc + balances.locked_nrlc;
    if held >= needed {
        note(
            &mut out,
            "stake",
            false,
            format!(
                "{} in the iExec account; the bid locks {}",
                Nrlc(balances.stake_nrlc),
                Nrlc(needed)
            ),
        );
    } else {
        let short = needed - held;
        let deposit = !args.no_deposit
            && asker.yes(
                &format!(
                    "the bid locks {} and the iExec account holds {}: deposit {}",
                    Nrlc(needed),
                    Nrlc(balances.stake_nrlc),
                    Nrlc(short)
                ),
                true,
                "",
            )?;
        if !deposit {
            note(
                &mut out,
                "stake",
                false,
                format!("short by {} (not deposited)", Nrlc(short)),
            );
        } else if balances.wallet_nrlc < short {
            bail!(
                "the bid needs {} more stake but the wallet {me} holds {}: send it RLC, then run `pew init` again",
                Nrlc(short),
                Nrlc(balances.wallet_nrlc)
            );
        } else {
            sdk.deposit(Nrlc(short)).await?;
            out.deposited_nrlc = short.to_string();
            note(
                &mut out,
                "stake",
                true,
                format!("deposited {}", Nrlc(short)),
            );
        }
    }

    // The energy source: `pew energy setup`'s questions (flags when non-interactive).
    let energy_flags = args.energy.answers_anything();
    let set_up = if interactive {
        asker.yes(
            &format!(
                "set up the energy source now? (now: {})",
                settings.energy.source
            ),
            settings.energy.source.as_str() == "none",
            "",
        )?
    } else {
        energy_flags
    };
    // stdin is free again for `pew energy setup`'s own questions.
    drop(lock);
    if set_up {
        let settings = file.settings()?;
        let code = super::energy::setup::setup(args.energy, globals.json, &settings, Some(&target))
            .await?;
        let ok = code == ExitCode::SUCCESS;
        note(
            &mut out,
            "energy",
            true,
            if ok {
                "the source answers".into()
            } else {
                "not written or not answering (see above; `pew energy setup` retries)".into()
            },
        );
    } else {
        note(
            &mut out,
            "energy",
            false,
            format!("source {}", settings.energy.source),
        );
    }

    // The checks `pew run` would make, and what to run next.
    let file = ConfigFile::open(&target)?;
    let settings = file.settings()?;
    let mut quiet = globals.clone();
    quiet.keystore = Some(keystore.clone());
    let report = super::doctor::check(&quiet, &settings, Some(&target)).await;
    out.doctor_ok = report.ok;
    out.next = next_command(system, &target, report.ok);
    if globals.json {
        super::output::out_line(&serde_json::to_string(&out)?);
    } else {
        super::output::out_line(&super::doctor::human(&report));
        super::output::out_line(&format!("next: {}", out.next));
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What to run after init: start the service, or the node, or fix what doctor found.
fn next_command(system: bool, target: &Path, ok: bool) -> String {
    match (ok, system) {
        (false, _) => "fix what `pew doctor` reports above, then run `pew init` again".into(),
        (true, true) => "sudo systemctl enable --now pew".into(),
        (true, false) if crate::config::user_file().as_deref() == Some(target) => "pew run".into(),
        (true, false) => format!("pew run --config {}", target.display()),
    }
}

/// The uid and gid of the `pew` system user the package made, if it exists.
fn pew_user() -> Option<(u32, u32)> {
    let name = std::ffi::CString::new("pew").expect("no NUL");
    // SAFETY: getpwnam reads the user database and returns a pointer into static storage that
    // is read at once, before any other call could reuse it; a null pointer means no user.
    unsafe {
        let entry = libc::getpwnam(name.as_ptr());
        (!entry.is_null()).then(|| ((*entry).pw_uid, (*entry).pw_gid))
    }
}

/// For the packaged service: the key file belongs to the `pew` user, and its password goes to
/// `/etc/pew/password` (root and the `pew` group may read it) unless that file exists; an
/// existing one must open the key file, or the service could not start.
fn give_to_service(keystore: &Path, password: &str) {
    let warn = |text: String| super::output::err_line(&format!("init: warning: {text}"));
    let Some((uid, gid)) = pew_user() else {
        warn("there is no `pew` user (is the package installed?): the service cannot read the key file".into());
        return;
    };
    if let Err(error) = std::os::unix::fs::chown(keystore, Some(uid), Some(gid)) {
        warn(format!(
            "{} could not be given to the pew user ({error}): run `sudo chown pew:pew {}`",
            keystore.display(),
            keystore.display()
        ));
    }
    let file = Path::new("/etc/pew/password");
    if file.exists() {
        let opens = crate::wallet::read_password_file(file)
            .ok()
            .is_some_and(|saved| crate::wallet::unlock(keystore, &saved).is_ok());
        if !opens {
            warn(format!(
                "{} does not open {}: write the key file's password there, or the service cannot start",
                file.display(),
                keystore.display()
            ));
        }
        return;
    }
    let written = {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(file)
            .and_then(|mut f| f.write_all(format!("{password}\n").as_bytes()))
            .and_then(|()| std::os::unix::fs::chown(file, Some(0), Some(gid)))
    };
    if let Err(error) = written {
        warn(format!(
            "/etc/pew/password could not be written for the service ({error}): write the key file's password there (chmod 0640, chown root:pew)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_interactive_asker_takes_defaults_or_names_the_flag() {
        let mut empty: &[u8] = b"";
        let mut asker = Asker {
            interactive: false,
            input: &mut empty,
        };
        assert_eq!(
            asker
                .ask("q", Some("7"), "give --n", |a| a
                    .parse::<u32>()
                    .map_err(|e| e.to_string()))
                .unwrap(),
            7
        );
        let error = asker
            .ask("q", None, "give --n", |a| Ok(a.to_string()))
            .unwrap_err();
        assert!(error.to_string().contains("give --n"), "{error}");
        assert!(asker.yes("q", true, "").unwrap());
    }

    #[test]
    fn a_bad_answer_is_asked_again_and_an_empty_one_takes_the_default() {
        let mut input: &[u8] = b"lots\n0\n12\n\n";
        let mut asker = Asker {
            interactive: true,
            input: &mut input,
        };
        let parse = |a: &str| match a.parse::<u64>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err("give a positive number".to_string()),
        };
        assert_eq!(asker.ask("tasks", Some("3"), "", parse).unwrap(), 12);
        assert_eq!(asker.ask("tasks", Some("3"), "", parse).unwrap(), 3);
        let error = asker.ask("tasks", Some("3"), "", parse).unwrap_err();
        assert!(error.to_string().contains("input ended"), "{error}");
    }

    #[test]
    fn the_config_file_is_written_key_by_key_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pew.toml");
        let mut file = ConfigFile::open(&path).unwrap();
        file.set("node.price", "0.5").unwrap();
        file.set("energy.forecast.cache_file", "/x/y.json").unwrap();
        let again = ConfigFile::open(&path).unwrap();
        let settings = again.settings().unwrap();
        assert_eq!(settings.node.price, "0.5");
        assert_eq!(
            settings.energy.forecast.cache_file,
            PathBuf::from("/x/y.json")
        );
        // A key pew does not know is refused before anything is written.
        let mut bad = ConfigFile::open(&path).unwrap();
        assert!(bad.set("node.prise", "1").is_err());
        assert!(!std::fs::read_to_string(&path).unwrap().contains("prise"));
    }

    #[test]
    fn the_next_command_fits_where_the_config_went() {
        let system = Path::new(crate::config::SYSTEM_FILE);
        assert_eq!(
            next_command(true, system, true),
            "sudo systemctl enable --now pew"
        );
        assert!(
            next_command(false, Path::new("/x/pew.toml"), true).ends_with("--config /x/pew.toml")
        );
        assert!(next_command(false, Path::new("/x/pew.toml"), false).contains("pew doctor"));
    }
}

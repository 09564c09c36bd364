//! `pew app register|publish|show`: apps and their orders.

use std::process::ExitCode;

use alloy::primitives::{Address, B256, U256};
use anyhow::Context;
use clap::Subcommand;

use super::context::{Globals, Published, print};
use crate::config::Settings;
use crate::poco::order::Order;
use crate::poco::{Nrlc, Tag};
use crate::sdk::assets::{AppInfo, Registration, open_app_order};

/// The app subcommands.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register a Docker app (prints its address; an identical app is found, not duplicated).
    Register {
        /// The image reference, as workers will pull it (e.g. docker.io/org/app:1.0.0).
        #[arg(long)]
        image: String,
        /// The app's name [default: the image name].
        #[arg(long)]
        name: Option<String>,
        /// The image digest (0x…) [default: read from the local Docker Engine].
        #[arg(long)]
        checksum: Option<B256>,
    },
    /// Presign an app order on chain, so requesters' requests can match it.
    Publish {
        /// The app.
        #[arg(value_parser = super::context::address_arg, long)]
        app: Address,
        /// Price per run (RLC, or nRLC with the suffix).
        #[arg(long, default_value = "0")]
        price: Nrlc,
        /// How many runs the order allows.
        #[arg(long, default_value_t = 1000000)]
        volume: u64,
        /// Requirements (0x-hex or names like gpu).
        #[arg(long, default_value = "0x0")]
        tag: Tag,
    },
    /// Show an app's registration.
    Show {
        /// The app.
        #[arg(value_parser = super::context::address_arg)]
        app: Address,
    },
    /// Run an app exactly as the node would, without any chain: prints the output folder,
    /// the digest, the exit status and the logs. Exits non-zero when the run gives no valid
    /// result.
    Test(Box<TestArgs>),
}

/// Flags of `pew app test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The image to run (local, or pulled).
    #[arg(long)]
    image: String,
    /// Arguments, as a requester's iexec_args.
    #[arg(long)]
    args: Option<String>,
    /// A file for /iexec_in: a local path (kept under its name) or an https/ipfs URL;
    /// repeatable.
    #[arg(long = "input-file", value_name = "PATH")]
    input_files: Vec<String>,
    /// Maximum run time in seconds [default: the category's].
    #[arg(long)]
    timeout: Option<u64>,
    /// Category whose run time applies: XS, S, M, L, XL or 0-4.
    #[arg(long, default_value = "XS")]
    category: crate::poco::Category,
    /// Folder for the run's input/ and output/ [default: a new folder under executor.work_dir].
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
}

/// Runs one app subcommand.
pub async fn run(
    command: AppCommand,
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    match command {
        AppCommand::Register {
            image,
            name,
            checksum,
        } => {
            let checksum = match checksum {
                Some(c) => c,
                None => {
                    let docker =
                        crate::executor::image::connect(&settings.executor.engine_socket).await?;
                    crate::executor::image::local_image_checksum(&docker, &image).await?
                }
            };
            let name = name.unwrap_or_else(|| default_name(&image));
            let sdk = globals.sdk(settings, true).await?;
            let registration = sdk.register_app(&name, &image, checksum).await?;
            print_registration(globals.json, "app", registration);
        }
        AppCommand::Publish {
            app,
            price,
            volume,
            tag,
        } => {
            let sdk = globals.sdk(settings, true).await?;
            let order = open_app_order(app, price.0, U256::from(volume), tag);
            let hash = sdk
                .publish_app_order(&order)
                .await
                .context("publishing the app order")?;
            debug_assert_eq!(hash, order.hash(&sdk.chain.domain()));
            print(
                globals.json,
                &Published {
                    order_hash: hash,
                    asset: app,
                },
                |p| format!("app order {} presigned for {}", p.order_hash, p.asset),
            );
        }
        AppCommand::Show { app } => {
            let info = globals.sdk(settings, false).await?.app(app).await?;
            print(globals.json, &info, human_app);
        }
        AppCommand::Test(args) => return test(*args, globals, settings).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn test(args: TestArgs, globals: &Globals, settings: &Settings) -> anyhow::Result<ExitCode> {
    use crate::executor::{AppRun, Executor, env::TaskContext, inputs};
    let ipfs_api = if !settings.ipfs.api.is_empty() {
        Some(settings.ipfs.api.clone())
    } else {
        globals.target(settings).ok().and_then(|t| t.ipfs_api)
    };
    let ipfs = ipfs_api.map(|api| {
        crate::storage::ipfs::IpfsClient::new(&api, std::time::Duration::from_secs(120))
    });
    let executor = Executor::new(&settings.executor, ipfs).await?;
    let (urls, locals): (Vec<String>, Vec<String>) = args
        .input_files
        .into_iter()
        .partition(|f| inputs::is_remote(f));
    let local_paths: Vec<std::path::PathBuf> =
        locals.iter().map(std::path::PathBuf::from).collect();
    let mut context = TaskContext::offline(urls);
    context.local_input_names = local_paths
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        })
        .collect();
    let task_dir = match args.out {
        Some(dir) => dir,
        None => {
            let base = settings.executor.work_dir.join("app-test");
            crate::files::private_dir(&base)
                .with_context(|| format!("cannot create {}", base.display()))?;
            tempfile::Builder::new()
                .prefix("run-")
                .tempdir_in(&base)
                .with_context(|| format!("cannot create a folder in {}", base.display()))?
                .keep()
        }
    };
    let run = AppRun {
        image: args.image,
        checksum: B256::ZERO,
        iexec_args: args.args,
        context,
        local_inputs: local_paths,
        dataset: None,
        timeout: std::time::Duration::from_secs(args.timeout.unwrap_or(args.category.time_ref_s)),
        has_callback: false,
        task_dir,
    };
    // Ctrl-C (or SIGTERM) must not leave the app running nor its output tmpfs mounted: the
    // run is dropped (which unmounts) and its container removed before pew exits.
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let stopped_by = tokio::select! {
        result = executor.execute(&run) => Ok(result?),
        _ = interrupt.recv() => Err(("SIGINT", 130)),
        _ = terminate.recv() => Err(("SIGTERM", 143)),
    };
    let result = match stopped_by {
        Ok(result) => result,
        Err((signal, code)) => {
            let removed = executor.remove_started().await;
            super::output::err_line(&format!(
                "{signal}: the app was stopped ({removed} container removed); its output folder {} is incomplete",
                run.task_dir.display()
            ));
            return Ok(ExitCode::from(code));
        }
    };
    let valid = result.is_valid();
    print(globals.json, &result, |r| {
        format!(
            "output folder  {}\ndigest         {}\nexit code      {}{}\nerror          {}\nlogs:\n{}",
            r.output_dir.display(),
            r.digest
                .map(|d| d.to_string())
                .unwrap_or_else(|| "none".into()),
            r.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "none".into()),
            if r.timed_out { " (timed out)" } else { "" },
            r.error
                .as_deref()
                .map(shown)
                .unwrap_or_else(|| "none".into()),
            crate::text::escape_controls(&r.logs)
        )
    });
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn human_app(a: &AppInfo) -> String {
    format!(
        "app {}\n  owner     {}\n  name      {}\n  type      {}\n  image     {}\n  checksum  {}",
        a.address,
        a.owner,
        shown(&a.name),
        shown(&a.app_type),
        shown(&a.image),
        a.checksum
    )
}

/// On-chain text (anyone wrote it) as a terminal line shows it: bounded, control characters
/// escaped.
pub(super) fn shown(text: &str) -> String {
    crate::text::one_line(text, 500)
}

/// `docker.io/org/app:1.0` → `app`.
fn default_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split([':', '@']).next().unwrap_or(last).to_string()
}

/// Prints a registration: the address on stdout, and whether it is new.
pub fn print_registration(json: bool, kind: &str, registration: Registration) {
    if json {
        super::context::print(true, &registration, |_| String::new());
        return;
    }
    match registration {
        Registration::Created(address) => super::output::out_line(&address.to_string()),
        Registration::Exists(address) => {
            super::output::err_line(&format!(
                "this {kind} is already registered with these exact arguments"
            ));
            super::output::out_line(&address.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_name_is_the_image_name() {
        assert_eq!(
            super::default_name("docker.io/iexechub/vanity:1.0.0"),
            "vanity"
        );
        assert_eq!(super::default_name("busybox"), "busybox");
        assert_eq!(super::default_name("r/x@sha256:00"), "x");
    }
}

//! `pew app register|publish|show`: apps and their orders.

use std::process::ExitCode;

use alloy::primitives::{Address, B256, U256};
use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;

use super::context::{Globals, print};
use crate::config::Settings;
use crate::poco::order::Order;
use crate::poco::{Nrlc, OrderHash, Tag};
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
        #[arg(long)]
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
        app: Address,
    },
}

#[derive(Serialize)]
struct Published {
    order_hash: OrderHash,
    asset: Address,
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
                    let docker = crate::executor::image::connect().await?;
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
    }
    Ok(ExitCode::SUCCESS)
}

fn human_app(a: &AppInfo) -> String {
    format!(
        "app {}\n  owner     {}\n  name      {}\n  type      {}\n  image     {}\n  checksum  {}",
        a.address, a.owner, a.name, a.app_type, a.image, a.checksum
    )
}

/// `docker.io/org/app:1.0` → `app`.
fn default_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split([':', '@']).next().unwrap_or(last).to_string()
}

/// Prints a registration: the address on stdout, and whether it is new.
pub fn print_registration(json: bool, kind: &str, registration: Registration) {
    if json {
        println!(
            "{}",
            serde_json::to_string(&registration).expect("serializes")
        );
        return;
    }
    match registration {
        Registration::Created(address) => println!("{address}"),
        Registration::Exists(address) => {
            eprintln!("this {kind} is already registered with these exact arguments");
            println!("{address}");
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

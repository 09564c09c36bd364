//! `pew wallet create|import|show`: the encrypted key file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::context::{Globals, print};
use crate::config::Settings;
use crate::wallet;

/// The wallet subcommands.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Create a key file with a new random key (never overwrites an existing file).
    Create,
    /// Import a private key or a BIP-39 mnemonic into a new key file.
    Import(ImportArgs),
    /// Show the wallet's address (no password needed).
    Show,
}

/// Flags of `pew wallet import`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ImportArgs {
    /// File holding the private key as hex.
    #[arg(long, value_name = "FILE", group = "secret")]
    private_key_file: Option<PathBuf>,
    /// File holding a BIP-39 English mnemonic.
    #[arg(long, value_name = "FILE", group = "secret")]
    mnemonic_file: Option<PathBuf>,
    /// Account index of the mnemonic (path m/44'/60'/0'/0/INDEX).
    #[arg(long, default_value_t = 0, requires = "mnemonic_file")]
    index: u32,
}

#[derive(Serialize)]
struct WalletOut {
    address: alloy::primitives::Address,
    keystore: PathBuf,
}

/// Runs one wallet subcommand.
pub fn run(
    command: WalletCommand,
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let keystore = globals.keystore_path(settings);
    let address = match command {
        WalletCommand::Create => {
            if keystore.exists() {
                return Err(wallet::WalletError::Exists(keystore).into());
            }
            let password = globals.password(true)?;
            wallet::create(&keystore, &password)?
        }
        WalletCommand::Import(args) => {
            if keystore.exists() {
                return Err(wallet::WalletError::Exists(keystore).into());
            }
            let password = globals.password(true)?;
            if let Some(file) = &args.private_key_file {
                let text = crate::files::read_text(
                    file,
                    crate::files::limit::SECRET,
                    "a private key file",
                )?;
                wallet::import_private_key(&keystore, &text, &password)?
            } else {
                let file = args
                    .mnemonic_file
                    .as_ref()
                    .expect("clap requires one source");
                let text =
                    crate::files::read_text(file, crate::files::limit::SECRET, "a mnemonic file")?;
                wallet::import_mnemonic(&keystore, &text, args.index, &password)?
            }
        }
        WalletCommand::Show => wallet::address(&keystore)?,
    };
    print(globals.json, &WalletOut { address, keystore }, |w| {
        format!("{} ({})", w.address, w.keystore.display())
    });
    Ok(ExitCode::SUCCESS)
}

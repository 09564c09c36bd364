//! What the chain, wallet and output flags of every command resolve to: the chain to talk to
//! (verified), the key file and its password, and how to print results.

use std::io::IsTerminal;
use std::path::PathBuf;

use alloy::signers::local::PrivateKeySigner;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use crate::chain::client::{self, ChainTarget};
use crate::config::Settings;
use crate::sdk::Sdk;
use crate::wallet;

/// Environment variable holding the key file password.
pub const PASSWORD_ENV: &str = "PEW_PASSWORD";

/// Flags shared by every chain command.
#[derive(Debug, Clone, Args)]
pub struct Globals {
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Chain preset: arbitrum, arbitrum-sepolia or devnet [default: chain.preset].
    #[arg(long, global = true, value_name = "NAME")]
    pub chain: Option<String>,
    /// JSON-RPC endpoint, overriding the preset's.
    #[arg(long, global = true, value_name = "URL")]
    pub rpc_url: Option<String>,
    /// PoCo hub address, overriding the preset's.
    #[arg(long, global = true, value_name = "ADDRESS")]
    pub hub: Option<String>,
    /// The devnet description for `--chain devnet` [default: chain.devnet_file].
    #[arg(long, global = true, value_name = "FILE")]
    pub devnet_file: Option<PathBuf>,
    /// Encrypted key file [default: wallet.keystore, then ~/.pew/wallet.json].
    #[arg(long, global = true, value_name = "PATH")]
    pub keystore: Option<PathBuf>,
    /// File whose first line is the key file password (else PEW_PASSWORD, else a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// First block searched for an order or its matches [default: the block this machine
    /// recorded when it presigned the order, else the hub's deployment block].
    #[arg(long, global = true, value_name = "BLOCK")]
    pub from_block: Option<u64>,
}

impl Globals {
    /// The key file path in force.
    pub fn keystore_path(&self, settings: &Settings) -> PathBuf {
        self.keystore
            .clone()
            .or_else(|| {
                let configured = &settings.wallet.keystore;
                (!configured.as_os_str().is_empty()).then(|| configured.clone())
            })
            .unwrap_or_else(wallet::default_keystore_path)
    }

    /// The chain target in force.
    pub fn target(&self, settings: &Settings) -> anyhow::Result<ChainTarget> {
        let custom = self.rpc_url.is_some() && self.hub.is_some() && self.chain.is_none();
        let preset = match (&self.chain, custom) {
            (Some(name), _) => name.clone(),
            (None, true) => "custom".to_string(),
            (None, false) => settings.chain.preset.clone(),
        };
        // The endpoints: --rpc-url, else chain.rpc_urls, else chain.rpc_url, else the preset's.
        let urls: Vec<String> = match &self.rpc_url {
            Some(url) => vec![url.clone()],
            None if !settings.chain.rpc_urls.is_empty() => settings.chain.rpc_urls.clone(),
            None if !settings.chain.rpc_url.is_empty() => vec![settings.chain.rpc_url.clone()],
            None => Vec::new(),
        };
        let hub = self
            .hub
            .clone()
            .or_else(|| (!settings.chain.hub.is_empty()).then(|| settings.chain.hub.clone()));
        let devnet_file = self
            .devnet_file
            .clone()
            .unwrap_or_else(|| settings.chain.devnet_file.clone());
        let target = match preset.as_str() {
            "devnet" => crate::devnet::DevnetInfo::read(&devnet_file)?.target(),
            "custom" | "" => {
                let (Some(url), Some(hub)) = (urls.first(), hub.as_deref()) else {
                    return Err(client::ChainError::Incomplete.into());
                };
                ChainTarget::custom(url, hub)?
            }
            name => ChainTarget::preset(name)?,
        };
        let mut target = target.with_rpc_urls(&urls);
        if let Some(hub) = hub.as_deref().filter(|h| !h.is_empty()) {
            target.hub = client::parse_address("hub", hub)?;
        }
        if !settings.ipfs.api.is_empty() {
            target.ipfs_api = Some(settings.ipfs.api.clone());
        }
        if !settings.ipfs.gateway.is_empty() {
            target.ipfs_gateway = Some(settings.ipfs.gateway.clone());
        }
        Ok(target)
    }

    /// The key file password: --password-file, then PEW_PASSWORD, then a prompt (asked twice
    /// when `confirm`, for new key files).
    pub fn password(&self, confirm: bool) -> anyhow::Result<String> {
        if let Some(file) = &self.password_file {
            return Ok(wallet::read_password_file(file)?);
        }
        if let Ok(password) = std::env::var(PASSWORD_ENV)
            && !password.is_empty()
        {
            return Ok(password);
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "no password given: use --password-file FILE or set PEW_PASSWORD (no terminal to prompt on)"
            );
        }
        let password = rpassword::prompt_password("key file password: ")
            .context("cannot read the password")?;
        if password.is_empty() {
            bail!("the password must not be empty");
        }
        if confirm {
            let again = rpassword::prompt_password("same password again: ")
                .context("cannot read the password")?;
            if again != password {
                bail!("the two passwords differ: nothing was written");
            }
        }
        Ok(password)
    }

    /// Unlocks the wallet's key (asking for its password once), checking it is the key of
    /// the address its file records.
    pub fn unlock_key(&self, settings: &Settings) -> anyhow::Result<PrivateKeySigner> {
        let path = self.keystore_path(settings);
        let address = wallet::address(&path)?;
        let signer = wallet::unlock(&path, &self.password(false)?)?;
        if signer.address() != address {
            bail!(
                "{} records address {address} but holds the key of {}",
                path.display(),
                signer.address()
            );
        }
        Ok(signer)
    }

    /// Connects to the chain; with `signing`, also unlocks the wallet.
    pub async fn sdk(&self, settings: &Settings, signing: bool) -> anyhow::Result<Sdk> {
        let chain = client::connect(self.target(settings)?).await?;
        let sender = if signing {
            Some(self.unlock_key(settings)?)
        } else {
            None
        };
        let mut sdk = Sdk::configured(chain, sender, settings);
        sdk.scan_from = self.from_block;
        sdk.order_cache = Some(crate::sdk::order_cache::OrderCache::new(
            &crate::sdk::order_cache::OrderCache::default_path(),
            sdk.chain.target.chain_id,
            sdk.chain.target.hub,
        ));
        Ok(sdk)
    }
}

/// clap's parser for address arguments: EIP-55 checked (see [`client::parse_address`]).
pub fn address_arg(text: &str) -> Result<alloy::primitives::Address, String> {
    client::parse_address("address", text).map_err(|e| e.to_string())
}

/// What the `publish` commands print: the presigned order's hash and its asset.
#[derive(Serialize)]
pub struct Published {
    /// The order hash, as the contracts record it.
    pub order_hash: crate::poco::OrderHash,
    /// The app, dataset or workerpool.
    pub asset: alloy::primitives::Address,
}

/// Prints `value` as one JSON object with `--json`, else the text `human` makes.
pub fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) {
    match json {
        true => match serde_json::to_string(value) {
            Ok(text) => super::output::out_line(&text),
            Err(error) => super::output::err_line(&format!("error: output not printable: {error}")),
        },
        false => super::output::out_line(&human(value)),
    }
}

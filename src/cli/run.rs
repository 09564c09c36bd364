//! `pew run`: the node, for the workerpool in `node.pool`, until SIGTERM or SIGINT. This file
//! resolves what the command line decides (the chain target, the key files and their
//! passwords); starting and running the node is `node::start`.

use std::process::ExitCode;

use anyhow::Context;

use super::context::Globals;
use crate::config::Settings;
use crate::node::shutdown::Shutdown;
use crate::node::start::{self, Launch, Plan};

/// Runs the node until a stop signal.
pub async fn run(globals: &Globals, settings: &Settings) -> anyhow::Result<ExitCode> {
    // Registered before anything else happens, so no signal finds the default action.
    let shutdown = Shutdown::on_signals()?;
    let plan = Plan::from_settings(settings)?;
    let target = globals.target(settings)?;
    // Each key is unlocked once (scrypt takes seconds on a Pi).
    let owner = globals.unlock_key(settings)?;
    let worker = worker_key(globals, settings)?;
    let launch = Launch {
        settings: settings.clone(),
        target,
        owner,
        worker,
    };
    start::run(launch, plan, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The separate worker key, when `node.worker_keystore` names one, unlocked with
/// `node.worker_password_file` (else the wallet's password).
fn worker_key(
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<Option<alloy::signers::local::PrivateKeySigner>> {
    let path = &settings.node.worker_keystore;
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let password_file = &settings.node.worker_password_file;
    let password = if password_file.as_os_str().is_empty() {
        globals.password(false)?
    } else {
        crate::wallet::read_password_file(password_file)
            .context("node.worker_password_file cannot be read")?
    };
    let signer = crate::wallet::unlock(path, &password)
        .with_context(|| format!("node.worker_keystore {}", path.display()))?;
    Ok(Some(signer))
}

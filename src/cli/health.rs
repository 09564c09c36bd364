//! `pew health`: asks the running node's HTTP API for `/health` and exits 0 when it answers
//! 200. For container health checks (the image has no curl) and scripts.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Settings;

/// Flags of `pew health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The node's API base URL [default: http:// and api.listen].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

/// Runs `pew health`.
pub async fn run(args: HealthArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let base = match args.url {
        Some(url) => url,
        None => {
            let listen = settings.api.listen.trim();
            if listen.is_empty() {
                bail!("api.listen is empty: the node serves no HTTP API to ask (give --url)");
            }
            format!("http://{listen}")
        }
    };
    let url = format!("{}/health", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()
        .context("cannot build an HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url} does not answer: is the node running?"))?;
    let status = response.status();
    // Whoever answers there: at most 64 KiB of it.
    let mut body = Vec::new();
    let mut response = response;
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    let body = String::from_utf8_lossy(&body).to_string();
    super::output::out_line(&crate::text::one_line(body.trim(), 2000));
    if status.is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        super::output::err_line(&format!("{url} answered {status}: the node's rounds stall"));
        Ok(ExitCode::FAILURE)
    }
}

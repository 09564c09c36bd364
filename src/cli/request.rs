//! `pew request submit|cancel|show`: a requester's on-chain orders and what became of them.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use anyhow::bail;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::context::{Globals, print};
use crate::config::Settings;
use crate::poco::{Category, Nrlc, OrderHash, RequestParams, Tag};
use crate::sdk::Sdk;
use crate::sdk::requests::{RequestSpec, RequestStatus};

/// The request subcommands.
#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Presign a request order on chain and print its hash.
    Submit(Box<SubmitArgs>),
    /// Close a request so nothing more is matched from it.
    Cancel {
        /// The request order hash.
        hash: OrderHash,
    },
    /// Show the deals and tasks matched from a request.
    Show {
        /// The request order hash.
        hash: OrderHash,
    },
}

/// Flags of `pew request submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The app to run.
    #[arg(value_parser = super::context::address_arg, long)]
    app: Address,
    /// A dataset for the app.
    #[arg(value_parser = super::context::address_arg, long)]
    dataset: Option<Address>,
    /// Only this workerpool may run it [default: any].
    #[arg(value_parser = super::context::address_arg, long)]
    workerpool: Option<Address>,
    /// Category (max run time): XS, S, M, L, XL or 0-4.
    #[arg(long, default_value = "XS")]
    category: Category,
    /// Agreeing workers needed; 1 trusts one worker's result.
    #[arg(long, default_value_t = 1)]
    trust: u64,
    /// How many tasks.
    #[arg(long, default_value_t = 1)]
    volume: u64,
    /// Arguments for the app.
    #[arg(long)]
    args: Option<String>,
    /// A file the app reads from /iexec_in (https:// or ipfs URL); repeatable.
    #[arg(long = "input-file", value_name = "URL")]
    input_files: Vec<String>,
    /// A contract to call with the result.
    #[arg(value_parser = super::context::address_arg, long)]
    callback: Option<Address>,
    /// Who receives the result [default: the requester].
    #[arg(value_parser = super::context::address_arg, long)]
    beneficiary: Option<Address>,
    /// Requirements (0x-hex or names such as gpu); TEE tags are refused.
    #[arg(long, default_value = "0x0")]
    tag: Tag,
    /// Highest app price per task (RLC, or nRLC with the suffix).
    #[arg(long, default_value = "0")]
    app_max_price: Nrlc,
    /// Highest dataset price per task.
    #[arg(long, default_value = "0")]
    dataset_max_price: Nrlc,
    /// Highest workerpool price per task.
    #[arg(long, default_value = "0")]
    workerpool_max_price: Nrlc,
    /// Follow the request until every task is COMPLETED or FAILED (progress on stderr).
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    wait_timeout: u64,
}

#[derive(Serialize)]
struct Submitted {
    order_hash: OrderHash,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<RequestStatus>,
}

/// Runs one request subcommand.
pub async fn run(
    command: RequestCommand,
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    match command {
        RequestCommand::Submit(args) => submit(*args, globals, settings).await,
        RequestCommand::Cancel { hash } => {
            globals
                .sdk(settings, true)
                .await?
                .cancel_request(hash)
                .await?;
            print(
                globals.json,
                &serde_json::json!({ "order_hash": hash, "closed": true }),
                |_| format!("request {hash} closed"),
            );
            Ok(ExitCode::SUCCESS)
        }
        RequestCommand::Show { hash } => {
            let status = globals
                .sdk(settings, false)
                .await?
                .request_status(hash)
                .await?;
            print(globals.json, &status, human_status);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn submit(
    args: SubmitArgs,
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let params = RequestParams {
        iexec_result_storage_provider: Some("ipfs".into()),
        iexec_args: args.args.clone(),
        iexec_input_files: args.input_files.clone(),
        ..RequestParams::default()
    };
    let spec = RequestSpec {
        app: args.app,
        dataset: args.dataset,
        workerpool: args.workerpool,
        category: args.category,
        trust: args.trust,
        volume: args.volume,
        tag: args.tag,
        params,
        callback: args.callback,
        beneficiary: args.beneficiary,
        app_max_price: args.app_max_price,
        dataset_max_price: args.dataset_max_price,
        workerpool_max_price: args.workerpool_max_price,
    };
    let sdk = globals.sdk(settings, true).await?;
    let (hash, _) = sdk.submit_request(&spec).await?;
    if !args.wait {
        print(
            globals.json,
            &Submitted {
                order_hash: hash,
                status: None,
            },
            |s| s.order_hash.to_string(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !globals.json {
        super::output::out_line(&hash.to_string());
    }
    let status = wait(&sdk, hash, args.wait_timeout).await?;
    let failed = status
        .deals
        .iter()
        .flat_map(|d| &d.tasks)
        .any(|t| t.status != "COMPLETED");
    if globals.json {
        print(
            true,
            &Submitted {
                order_hash: hash,
                status: Some(status),
            },
            |_| String::new(),
        );
    } else {
        for task in status.deals.iter().flat_map(|d| &d.tasks) {
            super::output::out_line(&format!("task {} {}", task.task_id, task.status));
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Follows a request until it is done, printing each change on stderr.
pub async fn wait(sdk: &Sdk, hash: OrderHash, timeout_s: u64) -> anyhow::Result<RequestStatus> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let status = sdk.request_status(hash).await?;
        let summary = progress_line(&status);
        if summary != last {
            super::output::err_line(&format!("[{:>4}s] {summary}", started.elapsed().as_secs()));
            last = summary;
        }
        if status.is_done() {
            return Ok(status);
        }
        if timeout_s > 0 && started.elapsed() > Duration::from_secs(timeout_s) {
            bail!(
                "request {hash} is not done after {timeout_s} s ({last}); follow it with `pew request show {hash}`"
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn progress_line(status: &RequestStatus) -> String {
    let tasks: Vec<_> = status.deals.iter().flat_map(|d| &d.tasks).collect();
    let count = |s: &str| tasks.iter().filter(|t| t.status == s).count();
    format!(
        "matched {}/{}, tasks: {} waiting, {} active, {} revealing, {} completed, {} failed, {} expired",
        status.consumed,
        status
            .volume
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into()),
        count("UNSET"),
        count("ACTIVE"),
        count("REVEALING"),
        count("COMPLETED"),
        count("FAILED"),
        tasks.iter().filter(|t| t.expired).count()
    )
}

fn human_status(status: &RequestStatus) -> String {
    let mut out = format!(
        "request {}\n  presigned by {}\n  {}",
        status.order_hash,
        status.presigner,
        progress_line(status)
    );
    for deal in &status.deals {
        out.push_str(&format!(
            "\n  deal {} (workerpool {})",
            deal.deal_id, deal.workerpool
        ));
        for task in &deal.tasks {
            out.push_str(&format!("\n    task {} {}", task.task_id, task.status));
        }
    }
    out
}

//! `pew task show|watch`: a task's status, deadlines, contributions and results.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;

use super::context::{Globals, print};
use crate::config::Settings;
use crate::poco::TaskId;
use crate::sdk::SdkError;
use crate::sdk::tasks::TaskView;

/// The task subcommands.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Show a task.
    Show {
        /// The task id.
        task: TaskId,
    },
    /// Follow a task until it is COMPLETED or FAILED, printing each change on stderr. Gives
    /// up when the task has not appeared within --appear-timeout, or once its final deadline
    /// has passed (it can then only be claimed).
    Watch {
        /// The task id.
        task: TaskId,
        /// Give up after this many seconds whatever happens (0: no overall limit).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
        /// Give up when the task does not exist on chain after this many seconds (a wrong id,
        /// or a deal that was never made); 0: never.
        #[arg(long, default_value_t = 600)]
        appear_timeout: u64,
    },
}

fn human(t: &TaskView) -> String {
    let mut out = format!(
        "task {} {}\n  deal {} index {}\n  deadlines: contribution {}  reveal {}  final {}\n  consensus {}\n  reveals {}/{}",
        t.task_id,
        t.status,
        t.deal_id,
        t.index,
        t.contribution_deadline,
        t.reveal_deadline,
        t.final_deadline,
        t.consensus,
        t.reveal_count,
        t.winner_count
    );
    for c in &t.contributions {
        out.push_str(&format!(
            "\n  contribution {} {} {}",
            c.worker, c.status, c.result_hash
        ));
    }
    if !t.results.is_empty() {
        out.push_str(&format!(
            "\n  digest  {}\n  results {}",
            t.result_digest, t.results
        ));
    }
    if !t.results_callback.is_empty() {
        out.push_str(&format!("\n  callback data {}", t.results_callback));
    }
    out
}

/// Whether the chain's clock is past a task's final deadline (checked on each change of status
/// and every minute: a task that stays ACTIVE forever would keep a watcher waiting forever).
async fn past_final_deadline(sdk: &crate::sdk::Sdk, view: &TaskView) -> bool {
    if view.final_deadline.is_zero() {
        return false;
    }
    match sdk.poco().now().await {
        Ok(now) => alloy::primitives::U256::from(now) > view.final_deadline,
        Err(_) => false,
    }
}

/// Runs one task subcommand.
pub async fn run(
    command: TaskCommand,
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let sdk = globals.sdk(settings, false).await?;
    match command {
        TaskCommand::Show { task } => {
            let view = sdk.task_view(task).await?;
            print(globals.json, &view, human);
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Watch {
            task,
            timeout,
            appear_timeout,
        } => {
            let started = Instant::now();
            let mut last = String::new();
            let mut poll: u64 = 0;
            loop {
                poll = poll.wrapping_add(1);
                let status = match sdk.task_view(task).await {
                    Ok(view) => {
                        if view.status == "COMPLETED" || view.status == "FAILED" {
                            super::output::err_line(&format!(
                                "[{:>4}s] {}",
                                started.elapsed().as_secs(),
                                view.status
                            ));
                            let ok = view.status == "COMPLETED";
                            print(globals.json, &view, human);
                            return Ok(if ok {
                                ExitCode::SUCCESS
                            } else {
                                ExitCode::FAILURE
                            });
                        }
                        // A task that stays open forever would keep the watcher forever.
                        if (view.status != last || poll % 30 == 1)
                            && past_final_deadline(&sdk, &view).await
                        {
                            anyhow::bail!(
                                "task {task} is still {} past its final deadline {}: it will not complete; anyone can now claim it to refund the requester",
                                view.status,
                                view.final_deadline
                            );
                        }
                        view.status
                    }
                    Err(SdkError::NotFound(_)) => {
                        if appear_timeout > 0
                            && started.elapsed() > Duration::from_secs(appear_timeout)
                        {
                            anyhow::bail!(
                                "task {task} does not exist on chain after {appear_timeout} s: check the id (`pew deal show DEAL` lists a deal's tasks), or give a longer --appear-timeout"
                            );
                        }
                        "UNSET (not initialized yet)".to_string()
                    }
                    Err(e) => return Err(e.into()),
                };
                if status != last {
                    super::output::err_line(&format!(
                        "[{:>4}s] {status}",
                        started.elapsed().as_secs()
                    ));
                    last = status;
                }
                if timeout > 0 && started.elapsed() > Duration::from_secs(timeout) {
                    anyhow::bail!("task {task} is still {last} after {timeout} s");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

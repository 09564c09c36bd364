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
    /// Follow a task until it is COMPLETED or FAILED, printing each change on stderr.
    Watch {
        /// The task id.
        task: TaskId,
        /// Give up after this many seconds (0: never).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
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
        TaskCommand::Watch { task, timeout } => {
            let started = Instant::now();
            let mut last = String::new();
            loop {
                let status = match sdk.task_view(task).await {
                    Ok(view) => {
                        if view.status == "COMPLETED" || view.status == "FAILED" {
                            eprintln!("[{:>4}s] {}", started.elapsed().as_secs(), view.status);
                            let ok = view.status == "COMPLETED";
                            print(globals.json, &view, human);
                            return Ok(if ok {
                                ExitCode::SUCCESS
                            } else {
                                ExitCode::FAILURE
                            });
                        }
                        view.status
                    }
                    Err(SdkError::NotFound(_)) => "UNSET (not initialized yet)".to_string(),
                    Err(e) => return Err(e.into()),
                };
                if status != last {
                    eprintln!("[{:>4}s] {status}", started.elapsed().as_secs());
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

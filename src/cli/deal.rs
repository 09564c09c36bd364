//! `pew deal show`: a deal's terms and tasks.

use std::process::ExitCode;

use clap::Subcommand;

use super::context::{Globals, print};
use crate::config::Settings;
use crate::poco::{DealId, Nrlc};

/// The deal subcommands.
#[derive(Debug, Subcommand)]
pub enum DealCommand {
    /// Show a deal.
    Show {
        /// The deal id.
        deal: DealId,
    },
}

/// Runs one deal subcommand.
pub async fn run(
    command: DealCommand,
    globals: &Globals,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let DealCommand::Show { deal } = command;
    let view = globals.sdk(settings, false).await?.deal_view(deal).await?;
    print(globals.json, &view, |d| {
        let mut out = format!(
            "deal {}\n  app         {} at {}\n  workerpool  {} at {}\n  requester   {}\n  trust {}  category {}  tag {}\n  params      {}\n  tasks       {} from index {}",
            d.deal_id,
            d.app.0,
            Nrlc(d.app.2),
            d.workerpool.0,
            Nrlc(d.workerpool.2),
            d.requester,
            d.trust,
            d.category,
            d.tag,
            d.params,
            d.bot_size,
            d.bot_first
        );
        for task in &d.tasks {
            out.push_str(&format!("\n    task {task}"));
        }
        out
    });
    Ok(ExitCode::SUCCESS)
}

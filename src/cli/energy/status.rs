//! `pew energy status`: the energy module's view of now, from the running node's status file
//! or, with no node running, from the source itself.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value, json};

use crate::cli::context::print;
use crate::clock::unix_now;
use crate::config::Settings;
use crate::energy::runtime::{Prepared, prepare};

/// Opens the configured source and answers with the gate's view of now.
pub async fn status(json: bool, settings: &Settings) -> anyhow::Result<ExitCode> {
    let energy = &settings.energy;
    if energy.source == crate::config::EnergySourceKind::None {
        bail!("no energy source is configured (energy.source = \"none\"); run `pew energy setup`");
    }
    // A running node publishes what it sees: show that, and leave its source alone.
    let now = unix_now();
    if let Some(live) = crate::energy::live::running_node(&settings.node_status_file(), now) {
        let mut status = live.status;
        status["node"] =
            json!({"pid": live.pid, "age_s": (now - live.written_at_s).max(0.0).round()});
        print(json, &status, human_status);
        return Ok(ExitCode::SUCCESS);
    }
    // No node runs: read the source here. Only the cache is used for the weather: a status
    // call never waits on the network.
    let Prepared { gate, source, .. } = prepare(energy)?;
    let mut status = gate.status_at(now);
    status.source = Some(source.name());
    let mut status = serde_json::to_value(status)?;
    status["node"] = Value::Null;
    print(json, &status, human_status);
    Ok(ExitCode::SUCCESS)
}

fn number(value: &Value, digits: usize) -> String {
    value
        .as_f64()
        .map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// A decision and its reasons, one per line.
fn push_decision(lines: &mut Vec<String>, label: &str, decision: &Value) {
    let verdict = if decision["admit"] == true {
        "admit work"
    } else {
        "no work now"
    };
    lines.push(format!("{label}{verdict}"));
    for reason in decision["reasons"].as_array().into_iter().flatten() {
        lines.push(format!("  - {}", reason.as_str().unwrap_or("")));
    }
}

fn human_status(status: &Value) -> String {
    let readings = &status["readings"];
    let battery = &status["battery"];
    let node = &status["node"];
    let mut lines = vec![if node.is_null() {
        "from              this command's own reading (no node is running)".to_string()
    } else {
        format!(
            "from              the running node (pid {}, {} s ago)",
            node["pid"], node["age_s"]
        )
    }];
    lines.push(format!(
        "source            {} ({} readings rejected)",
        status["source"].as_str().unwrap_or("?"),
        status["rejected_readings"]
    ));
    lines.push(format!(
        "pv                {} W",
        number(&readings["pv_w"], 1)
    ));
    lines.push(format!(
        "battery           {} V  {} A  SoC {} %  ({} Wh, reserve {} Wh)",
        number(&readings["battery_v"], 2),
        number(&readings["battery_a"], 2),
        number(&battery["soc_pct"], 1),
        number(&battery["energy_wh"], 1),
        number(&battery["reserve_wh"], 1)
    ));
    lines.push(format!(
        "load              {} W",
        number(&readings["load_w"], 1)
    ));
    lines.push(format!(
        "surplus           {} W",
        number(&status["surplus_w"], 1)
    ));
    if let Some(board) = readings.get("board").filter(|b| !b.is_null()) {
        lines.push(format!(
            "board             in {} V, out {} V {} A, {} °C",
            number(&board["input_v"], 2),
            number(&board["output_v"], 2),
            number(&board["output_a"], 2),
            number(&board["temperature_c"], 1)
        ));
    }
    let forecast = &status["forecast"];
    if !forecast.is_null() {
        lines.push(format!(
            "forecast          {}, next 24 h: P10 {} Wh, P50 {} Wh, P90 {} Wh",
            forecast["source"].as_str().unwrap_or("?"),
            number(&forecast["next_24h_wh"]["p10"], 1),
            number(&forecast["next_24h_wh"]["p50"], 1),
            number(&forecast["next_24h_wh"]["p90"], 1)
        ));
    }
    let budget = &status["budget"];
    lines.push(format!(
        "budget            {} Wh for one XS task, headroom {} Wh, lowest battery {} Wh",
        number(&budget["task_energy_wh"], 2),
        number(&budget["headroom_wh"], 1),
        number(&budget["lowest_battery_wh"], 1)
    ));
    push_decision(&mut lines, "decision          ", &status["decision"]);
    let last = &status["last_node_decision"];
    if !last.is_null() {
        push_decision(&mut lines, "node's last bid   ", last);
    }
    if let Some(running) = status["running_tasks"].as_array().filter(|r| !r.is_empty()) {
        lines.push(format!("running tasks     {}", running.len()));
    }
    lines.join("\n")
}

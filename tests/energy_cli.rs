//! `pew energy simulate|setup|status|calibrate` as an operator runs them, on the committed
//! traces: the documented fields and outputs, the policies' contrasts, and one clear line for
//! each mistake.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/energy")
        .join(name)
}

fn pew(dir: &Path) -> Command {
    let mut command = Command::new(common::pew_bin());
    command
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("PEW_CONFIG")
        .env("PEW_LOG__LEVEL", "warn");
    command
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn simulate(dir: &Path, trace: &str, policy: &str, extra: &[&str]) -> serde_json::Value {
    let trace = data(trace);
    let output = pew(dir)
        .args(["energy", "simulate", "--json", "--policy", policy])
        .args(["--trace", trace.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    json(&output)
}

#[test]
fn simulate_prints_the_documented_fields_and_pew_keeps_the_floor_and_beats_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = data("jobs-summer-week.csv");
    let jobs = ["--jobs", jobs.to_str().unwrap()];
    let pew_report = simulate(dir.path(), "summer-munich-48n.csv", "pew", &jobs);
    let oracle = simulate(dir.path(), "summer-munich-48n.csv", "oracle", &jobs);
    let always = simulate(dir.path(), "summer-munich-48n.csv", "always", &jobs);
    for field in [
        "jobs_offered",
        "jobs_accepted",
        "accepted_pct",
        "green_share_pct",
        "deadline_misses",
        "floor_violations",
        "energy_used_wh",
    ] {
        assert!(
            pew_report.get(field).is_some(),
            "{field} missing: {pew_report}"
        );
    }
    assert_eq!(pew_report["policy"], "pew");
    assert_eq!(
        pew_report["jobs_offered"], oracle["jobs_offered"],
        "same job stream"
    );
    assert_eq!(pew_report["floor_violations"], 0, "{pew_report}");
    assert_eq!(pew_report["deadline_misses"], 0, "{pew_report}");
    assert!(pew_report["green_share_pct"].as_f64().unwrap() >= 99.0);
    assert!(
        pew_report["jobs_accepted"].as_u64() >= oracle["jobs_accepted"].as_u64(),
        "pew {pew_report} oracle {oracle}"
    );
    assert!(always["floor_violations"].as_u64().unwrap() > 0, "{always}");

    // The text form names the same fields, one per line.
    let trace = data("winter-munich-48n.csv");
    let output = pew(dir.path())
        .args(["energy", "simulate", "--trace", trace.to_str().unwrap()])
        .args([
            "--battery-wh",
            "200",
            "--reserve",
            "0.4",
            "--idle-w",
            "2",
            "--busy-w",
            "5",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for line in [
        "policy            pew",
        "jobs_offered",
        "floor_violations  0",
        "energy_used_wh",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
}

#[test]
fn simulate_refuses_bad_input_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_jobs = dir.path().join("jobs.csv");
    std::fs::write(&bad_jobs, "arrival,category,runtime_s\n10,XXL,5\n").unwrap();
    let trace = data("summer-oslo-60n.csv");
    let trace = trace.to_str().unwrap();
    let missing = dir.path().join("nope.csv");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--trace", missing.to_str().unwrap()], "cannot be read"),
        (
            vec!["--trace", trace, "--jobs", bad_jobs.to_str().unwrap()],
            "line 2",
        ),
        (
            vec!["--trace", trace, "--policy", "greedy"],
            "not one of pew",
        ),
        (vec!["--trace", trace, "--reserve", "1.5"], "--reserve"),
        (
            vec!["--trace", trace, "--idle-w", "9", "--busy-w", "5"],
            "--idle-w",
        ),
    ];
    for (args, expected) in cases {
        let output = pew(dir.path())
            .args(["energy", "simulate"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn setup_by_flags_writes_a_config_that_status_then_uses() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pew.toml");
    std::fs::write(&config, "# mine\n[node]\nprice = \"1\"\n").unwrap();
    let trace = data("summer-munich-48n.csv");
    let output = pew(dir.path())
        .args(["energy", "setup", "--non-interactive", "--json"])
        .args(["--config", config.to_str().unwrap()])
        .args(["--source", "trace", "--trace-file", trace.to_str().unwrap()])
        .args([
            "--chemistry",
            "lead-acid",
            "--capacity-wh",
            "240",
            "--nominal-v",
            "12",
        ])
        .args([
            "--reserve",
            "0.5",
            "--latitude",
            "-33.9",
            "--longitude",
            "18.4",
        ])
        .args(["--tilt", "20", "--azimuth", "180", "--kwp", "0.1"])
        .output()
        .unwrap();
    let outcome = json(&output);
    assert_eq!(outcome["source_answers"], true, "{outcome}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("# mine") && written.contains("price = \"1\""),
        "{written}"
    );
    assert!(written.contains("capacity_wh = 240"), "{written}");
    assert!(written.contains("latitude = -33.9"), "{written}");

    let status = json(
        &pew(dir.path())
            .args([
                "energy",
                "status",
                "--json",
                "--config",
                config.to_str().unwrap(),
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(status["battery"]["capacity_wh"], 240.0, "{status}");
    assert_eq!(status["battery"]["reserve_wh"], 120.0);
    assert!(status["readings"]["pv_w"].is_number(), "{status}");
    assert!(!status["decision"]["reasons"].as_array().unwrap().is_empty());
    assert!(
        status["forecast"]["next_24h_wh"]["p50"].is_number(),
        "{status}"
    );
    // The trace names its own site (Munich), which the forecast uses over the configured one.
    let text = pew(dir.path())
        .args(["energy", "status", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("decision") && text.contains("SoC"), "{text}");
}

#[test]
fn setup_asks_interactively_and_keeps_defaults_on_empty_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pew.toml");
    let trace = data("winter-oslo-60n.csv");
    let mut child = pew(dir.path())
        .args(["energy", "setup", "--config", config.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // source, trace file, then Enter for everything else but the capacity (a typo first).
    let mut answers = format!("trace\n{}\n", trace.display());
    answers.push_str(&"\n".repeat(8)); // i2c bus .. battery chemistry
    answers.push_str("lots\n300\n"); // capacity: refused, then accepted
    answers.push_str(&"\n".repeat(7)); // the rest
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("is not a number; try again"), "{stderr}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("capacity_wh = 300"), "{written}");
    assert!(written.contains("source = \"trace\""), "{written}");
}

#[test]
fn a_source_that_does_not_answer_is_reported_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pew.toml");
    // This machine has no I2C bus 7: the check fails with the fix in the message.
    let output = pew(dir.path())
        .args([
            "energy",
            "setup",
            "--non-interactive",
            "--config",
            config.to_str().unwrap(),
        ])
        .args(["--source", "ina226", "--i2c-bus", "7", "--address", "0x41"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("I2C bus 7 address 0x41"), "{stdout}");
    assert!(stdout.contains("was not written"), "{stdout}");
    assert!(!config.exists());
    // Without --config, setup targets the user's config file, the one pew reads by default
    // (here too the source does not answer, so nothing is written).
    let output = pew(dir.path())
        .env_remove("XDG_CONFIG_HOME")
        .args(["energy", "setup", "--non-interactive", "--source", "trace"])
        .output()
        .unwrap();
    let user_file = dir.path().join(".config/pew/pew.toml");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&user_file.display().to_string()) && stdout.contains("was not written"),
        "{stdout}"
    );
    assert!(!user_file.exists());
    // status with no source configured points at setup.
    let output = pew(dir.path()).args(["energy", "status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("pew energy setup"));
}

#[test]
fn calibrate_measures_idle_and_full_load_from_the_sources_load_readings() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("load.csv");
    // A recorded load: 2.5 W for the first 36 trace minutes, then 6 W. At 1800 x speed the idle
    // phase (1 s) sees 30 of them (0.2 s of slack for a slow start) and the loaded phase mostly
    // the 6 W.
    std::fs::write(
        &trace,
        "time,pv_w,load_w\n0,0,2.5\n2159,0,2.5\n2160,0,6.0\n100000,0,6.0\n",
    )
    .unwrap();
    let config = dir.path().join("pew.toml");
    std::fs::write(
        &config,
        format!(
            "[energy]\nsource = \"trace\"\ntrace_file = \"{}\"\ntrace_speed = 1800.0\npoll_interval_s = 0.05\n",
            trace.display()
        ),
    )
    .unwrap();
    let result = json(
        &pew(dir.path())
            .args(["energy", "calibrate", "--json", "--seconds", "1", "--write"])
            .args(["--config", config.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    let idle = result["idle_w"].as_f64().unwrap();
    let busy = result["busy_w"].as_f64().unwrap();
    assert!((2.5..3.5).contains(&idle), "{result}");
    assert!(busy > 4.5, "{result}"); // mostly the 6 W stretch
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("[energy.policy]") && written.contains("idle_w"),
        "{written}"
    );
}

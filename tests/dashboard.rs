//! The operator's view of a node on the devnet with a replayed trace: the history the node
//! keeps (`/history`), what a paid task earned as the chain paid it (`/status`, `/metrics`,
//! `pew earnings`), and the dashboard in a real browser (Debian's chromium, headless, driven by
//! playwright-core, at a phone's size): no console error, nothing fetched from elsewhere, the
//! charts hold the points `/history` serves, and the decision shown is `/status`'s. The
//! screenshot is kept in the test's target folder.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use common::deals::{POOL_OWNER, REQUESTER};
use pew::abi::IexecInterfaceToken as Hub;
use serde_json::Value;

/// Five trace minutes of night under the reserve, then two hours of sun.
fn write_trace(path: &Path) {
    let mut text = String::from("time,pv_w,load_w,battery_soc\n");
    for minute in 0..=125 {
        let (pv, soc) = if minute >= 5 {
            (150.0, 0.6)
        } else {
            (0.0, 0.25)
        };
        text.push_str(&format!("{},{pv},3.0,{soc}\n", 1_780_308_000 + minute * 60));
    }
    std::fs::write(path, text).unwrap();
}

async fn get_json(url: &str) -> Value {
    let reply = reqwest::get(url).await.unwrap();
    assert!(reply.status().is_success(), "{url}: {}", reply.status());
    reply.json().await.unwrap()
}

/// What the chain says PoCo paid `to` for `task` (its `Reward` events).
async fn rewards_on_chain(t: &common::TestDevnet, to: Address, task: pew::poco::TaskId) -> u64 {
    let filter = Filter::new()
        .address(t.info().hub)
        .event_signature(Hub::Reward::SIGNATURE_HASH)
        .from_block(0);
    t.reader()
        .get_logs(&filter)
        .await
        .unwrap()
        .iter()
        .filter_map(|log| Hub::Reward::decode_log(&log.inner).ok())
        .filter(|r| r.data.owner == to && r.data.r#ref == task.0)
        .map(|r| u64::try_from(r.data.amount).unwrap())
        .sum()
}

fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test]
async fn the_dashboard_draws_the_nodes_history_and_earnings_in_a_real_browser() {
    let t = common::devnet(true).await;
    let (app, pool) = common::node::writer_app_and_pool(&t, 100, "dashboard").await;
    t.pew_as(REQUESTER, &["account", "deposit", "2"]);
    let dir = t.dir.path();
    let trace = dir.join("trace.csv");
    write_trace(&trace);
    let api_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[node]
pool = "{pool}"
journal = "{journal}"
poll_interval_ms = 200
price = "0.25"
volume = 1
stop_grace_s = 30
runtime_dir = "{runtime}"

[executor]
work_dir = "{work}"

[energy]
source = "trace"
trace_file = "{trace}"
trace_speed = 60.0
trace_loop = false
poll_interval_s = 0.5
state_file = "{state}"

[energy.battery]
capacity_wh = 1000.0
reserve = 0.3

[energy.forecast]
open_meteo = false

[history]
sample_every_s = 0.5
journal_every_s = 2

[api]
listen = "127.0.0.1:{api_port}"
"#,
            journal = dir.join("journal.sqlite").display(),
            work = dir.join("work").display(),
            runtime = dir.join("run").display(),
            trace = trace.display(),
            state = dir.join("energy-state.json").display(),
        ),
    )
    .unwrap();
    let mut node = common::node::spawn_node(&t, &config, &dir.join("node.log"), None);
    let node_started = Instant::now();
    let node_log = || std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
    let api = format!("http://127.0.0.1:{api_port}");

    // A paid request, matched once the sun is up.
    let request =
        common::node::submit_request(&t, app, "sunny", &["--workerpool-max-price", "0.25"]);
    let task = common::node::wait_completed(&t, request, Duration::from_secs(180)).await;

    // Its earnings, as the node read them from the chain.
    let started = Instant::now();
    let status = loop {
        let status = get_json(&format!("{api}/status")).await;
        if status["earnings"]["total"]["tasks"] == 1 {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no earnings in /status: {status}\n{}",
            node_log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let owner = t.info().signer(POOL_OWNER).unwrap().address();
    let paid = rewards_on_chain(&t, owner, task).await;
    assert!(paid > 0, "the chain paid the pool for a priced task");
    let total = &status["earnings"]["total"];
    assert_eq!(total["earned_nrlc"], paid, "{status}");
    assert!(total["gas_wei"].as_u64().unwrap() > 0, "{status}");
    assert_eq!(status["earnings"]["today"]["tasks"], 1, "{status}");
    let metrics = reqwest::get(format!("{api}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("pew_earned_nrlc_total {paid}")),
        "{metrics}"
    );
    assert!(metrics.contains("pew_gas_spent_wei_total "), "{metrics}");
    assert!(metrics.contains("pew_energy_used_wh_total "), "{metrics}");

    // The history: samples, the bid's open period, the gate's change of mind, the task.
    let history = get_json(&format!("{api}/history")).await;
    let points = history["points"].as_array().unwrap();
    assert!(points.len() >= 10, "{history}");
    assert!(
        points.iter().any(|p| p["pv_w"] == 150.0) && points.iter().any(|p| p["pv_w"] == 0.0),
        "night and sun sampled: {history}"
    );
    assert!(
        !history["bid_periods"].as_array().unwrap().is_empty(),
        "{history}"
    );
    let events = history["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "gate" && e["on"] == true),
        "{history}"
    );
    let marks = history["tasks"].as_array().unwrap();
    assert_eq!(marks.len(), 1, "{history}");
    assert_eq!(marks[0]["task"], task.to_string());
    assert_eq!(marks[0]["earned_nrlc"], paid);
    assert!(
        !history["forecast"].as_array().unwrap().is_empty(),
        "clear-sky ahead"
    );
    for bad in ["from=yesterday", "from=10&to=5", "x=1"] {
        let reply = reqwest::get(format!("{api}/history?{bad}")).await.unwrap();
        assert_eq!(reply.status(), 400, "{bad}");
        let body = reply.text().await.unwrap();
        assert_eq!(body.lines().count(), 1, "{body}");
    }

    // The dashboard in a real browser.
    let screenshot = artifact("dashboard-phone.png");
    let _ = std::fs::remove_file(&screenshot);
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/browser/node_modules/playwright-core");
    let output = std::process::Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs"))
        .arg(format!("{api}/"))
        .arg(&screenshot)
        .env("PLAYWRIGHT_CORE", &tools)
        .env("CHROMIUM", "/usr/bin/chromium")
        .output()
        .expect("node runs (scripts/setup installs it)");
    assert!(
        output.status.success(),
        "the browser check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("dashboard screenshot: {}", screenshot.display());
    assert!(
        screenshot.metadata().unwrap().len() > 10_000,
        "a real screenshot"
    );
    for list in [
        "console_errors",
        "failed_requests",
        "external_requests",
        "page_errors",
    ] {
        assert_eq!(seen[list], serde_json::json!([]), "{list}: {}", seen[list]);
    }
    assert!(
        seen["canvases"].as_u64().unwrap() >= 3,
        "three charts drawn"
    );
    assert!(
        seen["scroll_width"].as_u64().unwrap() <= seen["viewport_width"].as_u64().unwrap(),
        "no sideways scrolling on a phone: {} > {}",
        seen["scroll_width"],
        seen["viewport_width"]
    );

    // The week's chart holds exactly the points of the /history answer the page drew.
    let drawn = &seen["history"];
    let drawn_points = drawn["points"].as_array().unwrap();
    assert!(
        drawn_points.len() >= points.len(),
        "the page's answer is the later one"
    );
    let week = seen["week"].as_array().unwrap();
    let x = week[0].as_array().unwrap();
    assert_eq!(x.len(), drawn_points.len(), "{seen}");
    for (i, point) in drawn_points.iter().enumerate() {
        assert_eq!(x[i], point["t"], "time of point {i}");
        assert_eq!(week[1][i], point["pv_w"], "PV of point {i}");
        assert_eq!(week[2][i], point["load_w"], "load of point {i}");
        assert_eq!(week[3][i], point["soc_pct"], "battery of point {i}");
    }
    // ... and that answer is what /history serves for the same span.
    let served = get_json(&format!(
        "{api}/history?from={}&to={}",
        drawn["from"], drawn["to"]
    ))
    .await;
    // (JavaScript writes 3.0 as 3: the fields are compared as numbers.)
    let same = |a: &Value, b: &Value| {
        ["t", "pv_w", "load_w", "soc_pct"]
            .iter()
            .all(|k| a[k].as_f64() == b[k].as_f64())
            && a["bid_open"] == b["bid_open"]
            && a["admit"] == b["admit"]
    };
    let served_points = served["points"].as_array().unwrap();
    for point in drawn_points {
        assert!(
            served_points.iter().any(|s| same(s, point)),
            "drawn but not served: {point}"
        );
    }
    // The day's chart carries the forecast's median ahead.
    let day = seen["day"].as_array().unwrap();
    assert!(
        day[5].as_array().unwrap().iter().any(|v| v.is_number()),
        "P50 ahead on the day chart"
    );
    // The earnings chart has the day's bar.
    let bars = seen["earnings"].as_array().unwrap();
    assert_eq!(
        bars[1]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_f64()
            .unwrap(),
        paid as f64 / 1e9
    );

    // The decision shown is the one /status gave the page, word for word.
    let page_status = &seen["status"];
    let decision = &page_status["decision"];
    let word = if decision["admit"] == true {
        "admit work"
    } else {
        "no work now"
    };
    assert_eq!(seen["decision_text"], word);
    assert_eq!(seen["reasons"], decision["reasons"]);
    assert_eq!(seen["warnings"], page_status["warnings"]);
    assert_eq!(page_status["pool"], pool.to_string());
    let now = get_json(&format!("{api}/status")).await;
    assert_eq!(
        now["decision"]["admit"], decision["admit"],
        "the page shows the node's current answer"
    );
    let cards = seen["cards"].to_string();
    assert!(cards.contains("earned in all"), "{cards}");
    assert!(cards.contains("next wake-up"), "{cards}");
    assert_eq!(seen["task_rows"].as_array().unwrap().len(), 1);

    // `pew earnings`, from the journal, says the same, also after the node stopped.
    let stopped = common::node::sigterm_and_wait(&mut node, Duration::from_secs(90)).await;
    assert!(stopped.success(), "{}", node_log());
    let report = t.pew_json(&["earnings", "--config", config.to_str().unwrap()]);
    assert_eq!(report["total"]["earned_nrlc"], paid, "{report}");
    assert_eq!(report["tasks"][0]["task"], task.to_string());
    let paid_to: Address = report["tasks"][0]["rewards"][0]["to"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(paid_to, owner, "{report}");
    let text = t
        .pew()
        .args(["earnings", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    let expected = pew::poco::Nrlc(U256::from(paid)).to_string();
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains("per kWh of solar energy"), "{text}");
    let future = t.pew_json(&[
        "earnings",
        "--since",
        "2100-01-01",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(future["total"]["tasks"], 0, "{future}");

    // The journal's history: a row per journal_every_s (2 s) of the node's life, no more.
    let lived_s = node_started.elapsed().as_secs_f64();
    let journal = rusqlite::Connection::open(dir.join("journal.sqlite")).unwrap();
    let rows: i64 = journal
        .query_row("SELECT COUNT(*) FROM history_points", [], |r| r.get(0))
        .unwrap();
    assert!(
        rows >= 3 && rows as f64 <= lived_s / 2.0 + 1.0,
        "{rows} journal points in {lived_s:.0} s"
    );
}

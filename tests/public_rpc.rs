//! `pew run` against endpoints that behave like Arbitrum's public ones, on the devnet: a relay
//! in front of anvil caps `eth_getLogs` at 1 000 blocks and 1 000 results, answers 429 above
//! 10 requests a second, adds 150 ms of latency and fails 2 % of calls; another endpoint is
//! simply dead. The node completes a request through them, catches up after 2 000 blocks
//! away, fails over from a dead endpoint and says so, resumes its order index's catch-up after
//! a SIGKILL, and declines a task whose gas costs more than it pays.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use alloy::providers::Provider;
use common::TestDevnet;
use common::deals::*;
use common::node::{node_config, node_log, stop, wait_completed, with_node_settings};
use common::public_rpc::{PublicRpc, dead_endpoint};

/// Starts `pew run` as the pool owner with `config`, its chain reached through `rpc_urls`.
fn start_node(t: &TestDevnet, config: &std::path::Path, rpc_urls: &[&str]) -> Child {
    let text = std::fs::read_to_string(config).unwrap();
    let urls: Vec<String> = rpc_urls.iter().map(|u| format!("\"{u}\"")).collect();
    if !text.contains("rpc_urls") {
        std::fs::write(
            config,
            format!("{text}\n[chain]\nrpc_urls = [{}]\n", urls.join(", ")),
        )
        .unwrap();
    }
    let keystore = t.keystore(POOL_OWNER);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(t.dir.path().join("node.log"))
        .unwrap();
    t.pew()
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--keystore", keystore.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn wait_log(t: &TestDevnet, text: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !node_log(t).contains(text) {
        assert!(
            Instant::now() < deadline,
            "`{text}` never appeared; log:\n{}",
            node_log(t)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn mine(t: &TestDevnet, blocks: u64) {
    let _: serde_json::Value = t
        .reader()
        .raw_request("anvil_mine".into(), (blocks,))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_request_completes_through_a_public_endpoint_and_after_2000_blocks_away() {
    let t = common::devnet(true).await;
    let (app, pool) = common::node::writer_app_and_pool(&t, 10, "pew public rpc").await;
    let relay = PublicRpc::start(&t.info().rpc_url).await;
    let config = node_config(
        &t,
        pool,
        "[gate]\nsource = \"always\"\n[api]\nlisten = \"\"",
    );
    let node = start_node(&t, &config, &[&relay.url]);
    let first = common::node::submit_request(&t, app, "through a public endpoint", &[]);
    wait_completed(&t, first, Duration::from_secs(240)).await;
    assert!(stop(node).await.success(), "{}", node_log(&t));
    let counts = relay.counts();
    assert!(counts.total() > 0);

    // Away for 2 000 blocks; a request is presigned meanwhile.
    mine(&t, 1_000).await;
    let while_away = common::node::submit_request(&t, app, "while the node was away", &[]);
    mine(&t, 1_000).await;
    let node = start_node(&t, &config, &[&relay.url]);
    wait_completed(&t, while_away, Duration::from_secs(300)).await;
    assert!(stop(node).await.success(), "{}", node_log(&t));
    let counts = relay.counts();
    assert!(
        counts.refused_ranges > 0,
        "the catch-up met the endpoint's 1 000-block cap and narrowed: {counts:?}"
    );
    assert!(!node_log(&t).contains("panicked"));
}

#[tokio::test]
async fn with_a_dead_first_endpoint_the_node_works_and_says_which_it_uses() {
    let t = common::devnet(true).await;
    let (app, pool) = common::node::writer_app_and_pool(&t, 10, "pew failover").await;
    let relay = PublicRpc::start(&t.info().rpc_url).await;
    let dead = dead_endpoint();
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = node_config(
        &t,
        pool,
        &format!("[gate]\nsource = \"always\"\n[api]\nlisten = \"127.0.0.1:{api_port}\""),
    );
    let node = start_node(&t, &config, &[&dead, &relay.url]);
    let request = common::node::submit_request(&t, app, "after a failover", &[]);
    wait_completed(&t, request, Duration::from_secs(240)).await;
    let status: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{api_port}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let relay_port = relay.url.rsplit(':').next().unwrap();
    assert!(
        status["rpc"]["in_use"]
            .as_str()
            .unwrap()
            .ends_with(relay_port),
        "{status}"
    );
    let dead_port = dead.rsplit(':').next().unwrap();
    assert!(
        status["rpc"]["last_switch"]["from"]
            .as_str()
            .unwrap()
            .ends_with(dead_port),
        "{status}"
    );
    assert!(stop(node).await.success());
    let log = node_log(&t);
    assert!(log.contains("RPC endpoint switched"), "{log}");

    // pew doctor says which endpoint answers for the chain.
    let mut doctor = t.pew();
    doctor
        .args(["doctor", "--json", "--config", config.to_str().unwrap()])
        .args(["--keystore", t.keystore(POOL_OWNER).to_str().unwrap()]);
    // Off the test's own thread: the relay runs on it.
    let output = tokio::task::spawn_blocking(move || doctor.output().unwrap())
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rpc = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rpc")
        .unwrap_or_else(|| panic!("no rpc check: {report}"));
    assert!(rpc["detail"].as_str().unwrap().contains("of 2"), "{rpc}");
    let fees = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "fees")
        .unwrap_or_else(|| panic!("no fees check: {report}"));
    assert!(
        fees["detail"].as_str().unwrap().contains("gwei per gas"),
        "{fees}"
    );
}

#[tokio::test]
async fn the_order_index_catch_up_resumes_after_a_sigkill() {
    let t = common::devnet(true).await;
    let (app, pool) = common::node::writer_app_and_pool(&t, 10, "pew index").await;
    // History to catch up on, read through the capped endpoint in 1 000-block steps.
    mine(&t, 12_000).await;
    let relay = PublicRpc::start(&t.info().rpc_url).await;
    let config = node_config(
        &t,
        pool,
        "[gate]\nsource = \"always\"\n[api]\nlisten = \"\"",
    );
    with_node_settings(&config, "lookback_blocks = 0");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[chain]\nlog_chunk_blocks = 1000\nrpc_urls = [\"{}\"]\n",
            relay.url
        ),
    )
    .unwrap();
    let journal_path = t.dir.path().join("journal.sqlite");
    let mut node = start_node(&t, &config, &[&relay.url]);
    // Wait until the catch-up is part way, then cut the power.
    let deadline = Instant::now() + Duration::from_secs(240);
    let at_kill = loop {
        assert!(
            Instant::now() < deadline,
            "the catch-up never started; log:\n{}",
            node_log(&t)
        );
        if let Ok(journal) = pew::node::journal::Journal::open(&journal_path)
            && let Ok(Some(at)) = journal.get("index_at")
            && let Ok(at) = at.parse::<u64>()
            && at > 2_000
        {
            break at;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    node.kill().unwrap();
    let _ = node.wait();
    let log_before = node_log(&t);
    assert!(
        !log_before.contains("order index caught up"),
        "killed before the end of the catch-up: {log_before}"
    );
    // The restart resumes where the journal says, not at block 0.
    let node = start_node(&t, &config, &[&relay.url]);
    wait_log(&t, "order index caught up", Duration::from_secs(300)).await;
    let restart = &node_log(&t)[log_before.len()..];
    let resumed_from: u64 = restart
        .lines()
        .find(|l| l.contains("the order index catches up"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("from=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no catch-up line after the restart:\n{restart}"));
    assert!(
        resumed_from >= at_kill,
        "resumed from {resumed_from}, killed at {at_kill}"
    );
    // And the index serves matching.
    let request = common::node::submit_request(&t, app, "after the catch-up", &[]);
    wait_completed(&t, request, Duration::from_secs(240)).await;
    assert!(stop(node).await.success());
}

#[tokio::test]
async fn a_task_whose_gas_costs_more_than_it_pays_is_declined_with_its_reason() {
    let t = common::devnet(true).await;
    let (app, pool) = common::node::writer_app_and_pool(&t, 10, "pew gas").await;
    let config = node_config(
        &t,
        pool,
        "[gate]\nsource = \"always\"\n[api]\nlisten = \"\"",
    );
    // Free tasks, and gas priced at one RLC per ETH: no task pays.
    with_node_settings(&config, "rlc_per_eth = 1.0\nmin_margin = 0.1");
    let node = start_node(&t, &config, &[&t.info().rpc_url]);
    let request = common::node::submit_request(&t, app, "too cheap", &[]);
    let journal = pew::node::journal::Journal::open(&t.dir.path().join("journal.sqlite")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let reason = loop {
        assert!(
            Instant::now() < deadline,
            "never decided; log:\n{}",
            node_log(&t)
        );
        if let Ok(Some(pew::node::journal::RequestDecision::Deferred(reason))) =
            journal.request(request)
        {
            break reason;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        reason.contains("gas") && reason.contains("node.rlc_per_eth"),
        "{reason}"
    );
    let consumed = t
        .sdk(REQUESTER)
        .await
        .poco()
        .consumed(request)
        .await
        .unwrap();
    assert!(consumed.is_zero(), "nothing was matched");
    assert!(stop(node).await.success());
    assert!(
        node_log(&t).contains("request not served now"),
        "{}",
        node_log(&t)
    );
}

//! `pew run` as an operator runs it, on the devnet with real Docker and IPFS: a requester's
//! presigned request is matched, computed and COMPLETED; a gate that says no means no bid and
//! no match; the node killed at each step completes the task after a restart with exactly
//! one contribution.

mod common;

use common::node::{
    contributions, node_config, node_log, stop, wait_completed, with_node_settings,
};
use common::relay::Relay;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use common::TestDevnet;
use common::deals::*;
use pew::abi::IexecInterfaceToken as Hub;
use pew::poco::OrderHash;

fn start_node(t: &TestDevnet, config: &Path, failpoint: Option<&str>) -> Child {
    common::node::spawn_node(t, config, &t.dir.path().join("node.log"), failpoint)
}

async fn prepare(t: &TestDevnet) -> (Address, Address) {
    common::node::writer_app_and_pool(t, 100, "pew node test").await
}

fn submit(t: &TestDevnet, app: Address, args: &str) -> OrderHash {
    common::node::submit_request(t, app, args, &[])
}

/// Submits a request for `app` at `trust`.
fn submit_trust(t: &TestDevnet, app: Address, args: &str, trust: u64) -> OrderHash {
    common::node::submit_request(t, app, args, &["--trust", &trust.to_string()])
}

/// Waits for a node started with a failpoint to die at it.
async fn wait_killed(t: &TestDevnet, node: &mut Child, point: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while node.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "never reached {point}:\n{}",
            node_log(t)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        node_log(t).contains(&format!("failpoint {point}: killing")),
        "died elsewhere than {point}:\n{}",
        node_log(t)
    );
}

#[tokio::test]
async fn a_presigned_request_is_matched_computed_and_completed_by_the_node() {
    let t = common::devnet(true).await;
    let (app, pool) = prepare(&t).await;
    let api_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = node_config(
        &t,
        pool,
        &format!("[gate]\nsource = \"always\"\n[api]\nlisten = \"127.0.0.1:{api_port}\""),
    );
    let node = start_node(&t, &config, None);
    let request = submit(&t, app, "hello from the node");
    let task = wait_completed(&t, request, Duration::from_secs(120)).await;
    assert_eq!(contributions(&t, task).await, 1);

    // The result is on IPFS and verifies.
    let (folder, _) = t.download_result(&task.to_string());
    let result = std::fs::read_to_string(folder.join("result.txt")).unwrap();
    assert_eq!(result, "hello from the node\n");
    let view = t.pew_json(&["task", "show", &task.to_string()]);
    assert!(
        view["results"]
            .as_str()
            .unwrap()
            .starts_with(r#"{ "storage": "ipfs", "location": "/ipfs/"#)
    );

    // Every transaction is in the journal, with its final state. The chain can show the task
    // COMPLETED a moment before the node has polled the receipt, so wait for the entry to settle.
    let journal = pew::node::journal::Journal::open(&t.dir.path().join("journal.sqlite")).unwrap();
    let settle_by = std::time::Instant::now() + Duration::from_secs(30);
    let (transactions, contribution) = loop {
        let transactions = journal.transactions().unwrap();
        let contribution = transactions
            .iter()
            .find(|tx| tx.label.starts_with("contributeAndFinalize"))
            .cloned()
            .expect("the contribution is journaled before it is sent");
        if contribution.state != "sent" || std::time::Instant::now() > settle_by {
            break (transactions, contribution);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(contribution.state, "mined", "{transactions:?}");
    assert!(contribution.hash.is_some());
    assert!(
        transactions
            .iter()
            .any(|tx| tx.label.starts_with("matchOrders")),
        "{transactions:?}"
    );

    // The local HTTP API shows the node as its operator's monitoring sees it.
    let api = format!("http://127.0.0.1:{api_port}");
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let request = client.get(format!("{api}{path}"));
        async move {
            let response = request.send().await.expect("the API answers");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let (code, health) = get("/health").await;
    assert_eq!(code, 200, "{health}");
    assert!(health.contains(r#""status":"ok""#), "{health}");
    let (code, metrics) = get("/metrics").await;
    assert_eq!(code, 200);
    assert!(metrics.lines().any(|l| l == "pew_up 1"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"pew_tasks{step="completed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l == "pew_gate_admit 1"),
        "{metrics}"
    );
    let (_, status) = get("/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["tasks"]["completed"], 1, "{status}");
    assert_eq!(status["pool"], pool.to_string(), "{status}");
    let (code, page) = get("/").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("getJson(\"/status\")") && page.contains("\"/history?from=\""),
        "the dashboard reads /status and /history"
    );
    let (code, plots) = get("/assets/uplot.js").await;
    assert_eq!(code, 200);
    assert!(
        plots.contains("uPlot") && !plots.contains("uPlotMissing"),
        "uPlot is embedded (scripts/setup installs it before the build)"
    );
    assert_eq!(get("/nothing").await.0, 404);

    // A clean stop exits 0 and leaves no open bid.
    let status = stop(node).await;
    assert!(status.success(), "{status}; log:\n{}", node_log(&t));
    let log = node_log(&t);
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test]
async fn a_gate_that_says_no_means_no_bid_and_no_match() {
    let t = common::devnet(true).await;
    let (app, pool) = prepare(&t).await;
    // Surplus only from 1000 s after the node starts: nothing now.
    let gate = "[gate]\nsource = \"sim\"\nsim_clock = \"start\"\nsim_period_s = 3000\nsim_windows = [\"1000-2000\"]";
    let config = node_config(&t, pool, gate);
    let node = start_node(&t, &config, None);
    let request = submit(&t, app, "never");
    // Once the node runs, give it many poll rounds (200 ms each) to do what it must not.
    let deadline = Instant::now() + Duration::from_secs(90);
    while !node_log(&t).contains("node running") {
        assert!(Instant::now() < deadline, "{}", node_log(&t));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sdk = t.sdk(REQUESTER).await;
    assert_eq!(
        sdk.poco().consumed(request).await.unwrap(),
        U256::ZERO,
        "not matched"
    );
    let filter = Filter::new()
        .address(t.info().hub)
        .event_signature(Hub::SignedWorkerpoolOrder::SIGNATURE_HASH)
        .from_block(0);
    assert!(
        t.reader().get_logs(&filter).await.unwrap().is_empty(),
        "no workerpool order presigned"
    );
    let status = stop(node).await;
    assert!(status.success());
    assert!(node_log(&t).contains("node running"), "{}", node_log(&t));
}

#[tokio::test]
async fn a_node_killed_at_any_step_completes_the_task_with_one_contribution_after_restart() {
    let t = common::devnet(true).await;
    let (app, pool) = prepare(&t).await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    for point in [
        "after-initialize",
        "before-run",
        "after-run",
        "after-upload",
        "sent:contributeAndFinalize",
        "after-contribute",
    ] {
        let mut crashing = start_node(&t, &config, Some(point));
        let request = submit(&t, app, point);
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = crashing.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the node never reached {point}; log:\n{}",
                node_log(&t)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(!status.success(), "killed at {point}");
        assert!(
            node_log(&t).contains(&format!("failpoint {point}: killing")),
            "the node died at {point}, not elsewhere; log:\n{}",
            node_log(&t)
        );
        let node = start_node(&t, &config, None);
        let task = wait_completed(&t, request, Duration::from_secs(120)).await;
        assert_eq!(
            contributions(&t, task).await,
            1,
            "exactly one contribution after a crash at {point}"
        );
        assert!(stop(node).await.success());
        if point == "sent:contributeAndFinalize" {
            // Killed between sending and mining: the restart settles the journal entry.
            let journal =
                pew::node::journal::Journal::open(&t.dir.path().join("journal.sqlite")).unwrap();
            let entries = journal.transactions().unwrap();
            let contributions: Vec<_> = entries
                .iter()
                .filter(|tx| tx.label.starts_with("contributeAndFinalize"))
                .collect();
            assert!(
                contributions.iter().all(|tx| tx.state == "mined"),
                "{contributions:?}"
            );
            assert!(!contributions.is_empty());
        }
    }
}

#[tokio::test]
async fn a_reorg_that_removes_the_deal_is_survived_and_the_task_done_again() {
    let t = common::devnet(true).await;
    let (app, pool) = prepare(&t).await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    let request = submit(&t, app, "before the reorg");
    // The chain as it is with the request presigned and not yet matched.
    let snapshot: U256 = t
        .reader()
        .raw_request("evm_snapshot".into(), ())
        .await
        .unwrap();
    let node = start_node(&t, &config, None);
    let task = wait_completed(&t, request, Duration::from_secs(120)).await;

    let finalized = Filter::new()
        .address(t.info().hub)
        .event_signature(Hub::TaskFinalize::SIGNATURE_HASH)
        .topic1(task.0)
        .from_block(0);
    let finalized_at = t.reader().get_logs(&finalized).await.unwrap()[0]
        .block_number
        .unwrap();

    // A reorg takes the match, the task and its contribution away. (The node may match again
    // at once, so the test checks the head went back rather than the request's state.)
    let reverted: bool = t
        .reader()
        .raw_request("evm_revert".into(), (snapshot,))
        .await
        .unwrap();
    assert!(reverted);
    let head = t.reader().get_block_number().await.unwrap();
    assert!(
        head < finalized_at,
        "the blocks of the match and the task are gone: head {head}, finalized at {finalized_at}"
    );
    // The node notices, matches the request again and completes the task on the new branch.
    let again = wait_completed(&t, request, Duration::from_secs(120)).await;
    assert_eq!(again, task, "same deal and task ids on the new branch");
    assert_eq!(contributions(&t, task).await, 1);
    assert!(stop(node).await.success());
    assert!(node_log(&t).contains("reorg detected"), "{}", node_log(&t));

    // The journal follows the chain: a transaction it calls mined has its receipt on the
    // chain as it is now; those the reorg took away are dropped (or were mined again).
    let journal = pew::node::journal::Journal::open(&t.dir.path().join("journal.sqlite")).unwrap();
    let mut dropped = 0;
    for entry in journal.transactions().unwrap() {
        let hashes: Vec<alloy::primitives::B256> = entry
            .hash
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter_map(|h| h.parse().ok())
            .collect();
        let mut on_chain = false;
        for hash in hashes {
            on_chain |= t
                .reader()
                .get_transaction_receipt(hash)
                .await
                .unwrap()
                .is_some();
        }
        match entry.state.as_str() {
            "mined" | "reverted" => assert!(
                on_chain,
                "{} is {} but not on chain",
                entry.label, entry.state
            ),
            "dropped" => dropped += 1,
            _ => {}
        }
    }
    assert!(
        dropped > 0,
        "the match and the contribution of the old branch are dropped"
    );
}

#[tokio::test]
async fn an_rpc_node_restarted_mid_run_is_recovered_from_without_help() {
    let t = common::devnet(true).await;
    let (app, pool) = prepare(&t).await;
    let anvil_port: u16 = t
        .info()
        .rpc_url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut relay = Relay::start(anvil_port).await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    let keystore = t.keystore(POOL_OWNER);
    let log = std::fs::File::create(t.dir.path().join("node.log")).unwrap();
    let node = t
        .pew()
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--keystore",
            keystore.to_str().unwrap(),
        ])
        .args(["--rpc-url", &format!("http://127.0.0.1:{}", relay.port)])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let first = submit(&t, app, "before the outage");
    wait_completed(&t, first, Duration::from_secs(120)).await;

    relay.cut();
    let during = submit(&t, app, "during the outage");
    tokio::time::sleep(Duration::from_secs(3)).await;
    relay.restore().await;
    let task = wait_completed(&t, during, Duration::from_secs(120)).await;
    assert_eq!(contributions(&t, task).await, 1);
    assert!(stop(node).await.success(), "log:\n{}", node_log(&t));
    let log = node_log(&t);
    assert!(
        log.contains("retrying") || log.contains("did not answer"),
        "the outage was noticed:\n{log}"
    );
}

#[tokio::test]
async fn a_task_that_cannot_complete_is_claimed_after_its_final_deadline() {
    let t = common::devnet(true).await;
    // An app whose result is refused (a symlink out of /iexec_out): nothing to contribute.
    let (app, pool) = common::node::app_and_pool(&t, "symlinker", 1, "pew claim test").await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    let node = start_node(&t, &config, None);
    let request = submit(&t, app, "x");

    let sdk = t.sdk(REQUESTER).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let task = loop {
        assert!(
            Instant::now() < deadline,
            "the task never failed; log:\n{}",
            node_log(&t)
        );
        if node_log(&t).contains("task failed on this node") {
            let status = sdk.request_status(request).await.unwrap();
            break status.deals[0].tasks[0].task_id;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        sdk.poco().task(task).await.unwrap().status,
        pew::chain::poco::status::ACTIVE
    );

    // Past the final deadline (10 × 300 s for XS), the node claims it.
    common::node::advance_chain_time(&t, 3001).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sdk.poco().task(task).await.unwrap().status != pew::chain::poco::status::FAILED {
        assert!(
            Instant::now() < deadline,
            "never claimed; log:\n{}",
            node_log(&t)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(stop(node).await.success());
    assert!(node_log(&t).contains("claimed after its final deadline"));
}

#[tokio::test]
async fn start_up_mistakes_are_one_clear_line_with_the_fix() {
    let t = common::devnet(true).await;
    let keystore = t.keystore(POOL_OWNER);
    let run = |extra: &[&str]| {
        let output = t
            .pew()
            .arg("run")
            .args(extra)
            .args(["--keystore", keystore.to_str().unwrap()])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (ok, stderr) = run(&[]);
    assert!(!ok);
    assert!(
        stderr.contains("no workerpool configured") && stderr.contains("pew pool create"),
        "{stderr}"
    );

    // A pool that another key owns.
    let other = t.pew_as(APP_OWNER, &["pool", "create", "--description", "not mine"]);
    let config = node_config(
        &t,
        other["address"].as_str().unwrap().parse().unwrap(),
        "[gate]\nsource = \"always\"",
    );
    let (ok, stderr) = run(&["--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("is owned by") && stderr.contains("--keystore"),
        "{stderr}"
    );

    // A gate the node does not know.
    let config = node_config(
        &t,
        other["address"].as_str().unwrap().parse().unwrap(),
        "[gate]\nsource = \"moon\"",
    );
    let (ok, stderr) = run(&["--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("gate.source") && stderr.contains("moon"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_separate_worker_key_sends_the_contribution_the_owner_authorized() {
    let t = common::devnet(true).await;
    let (app, pool) = prepare(&t).await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    let worker_keystore = t.keystore(WORKERS[0]);
    with_node_settings(
        &config,
        &format!("worker_keystore = \"{}\"", worker_keystore.display()),
    );
    let node = start_node(&t, &config, None);
    let request = submit(&t, app, "from the worker");
    let task = wait_completed(&t, request, Duration::from_secs(120)).await;
    let filter = Filter::new()
        .address(t.info().hub)
        .event_signature(Hub::TaskContribute::SIGNATURE_HASH)
        .from_block(0);
    let logs = t.reader().get_logs(&filter).await.unwrap();
    assert_eq!(logs.len(), 1);
    let contribution = Hub::TaskContribute::decode_log(&logs[0].inner).unwrap();
    assert_eq!(contribution.taskid, task.0);
    assert_eq!(
        contribution.worker,
        address(&t, WORKERS[0]),
        "sent by the worker key"
    );
    assert_ne!(contribution.worker, address(&t, POOL_OWNER));
    assert!(stop(node).await.success());
    assert!(
        node_log(&t).contains("separate worker key"),
        "{}",
        node_log(&t)
    );
}

#[tokio::test]
async fn a_trust_2_task_is_contributed_revealed_and_finalized_even_across_a_crash_after_reveal() {
    let t = common::devnet(true).await;
    let (app, pool) = prepare(&t).await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    with_node_settings(&config, "trust = 5");
    let mut crashing = start_node(&t, &config, Some("after-reveal"));
    let request = submit_trust(&t, app, "two", 2);
    wait_killed(&t, &mut crashing, "after-reveal").await;
    let node = start_node(&t, &config, None);
    let task = wait_completed(&t, request, Duration::from_secs(120)).await;

    // The consensus path, each step once: contribute, consensus, reveal, finalize.
    for (event, name) in [
        (Hub::TaskContribute::SIGNATURE_HASH, "TaskContribute"),
        (Hub::TaskConsensus::SIGNATURE_HASH, "TaskConsensus"),
        (Hub::TaskReveal::SIGNATURE_HASH, "TaskReveal"),
        (Hub::TaskFinalize::SIGNATURE_HASH, "TaskFinalize"),
    ] {
        let filter = Filter::new()
            .address(t.info().hub)
            .event_signature(event)
            .topic1(task.0)
            .from_block(0);
        let logs = t.reader().get_logs(&filter).await.unwrap();
        assert_eq!(logs.len(), 1, "{name}");
    }
    let journal = pew::node::journal::Journal::open(&t.dir.path().join("journal.sqlite")).unwrap();
    let labels: Vec<String> = journal
        .transactions()
        .unwrap()
        .into_iter()
        .map(|tx| tx.label)
        .collect();
    assert!(labels.iter().any(|l| l.starts_with("reveal")), "{labels:?}");
    assert!(
        labels.iter().any(|l| l.starts_with("finalize")),
        "{labels:?}"
    );
    assert!(
        !labels
            .iter()
            .any(|l| l.starts_with("contributeAndFinalize")),
        "{labels:?}"
    );

    // Trust 3 needs two agreeing workers: this lone node refuses it, though configured for 5.
    let three = submit_trust(&t, app, "three", 3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node_log(&t).contains("reaches consensus alone up to trust 2") {
        assert!(Instant::now() < deadline, "not refused:\n{}", node_log(&t));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sdk = t.sdk(REQUESTER).await;
    assert_eq!(sdk.poco().consumed(three).await.unwrap(), U256::ZERO);
    assert!(stop(node).await.success());
}

#[tokio::test]
async fn a_request_with_a_dataset_is_matched_with_its_dataset_order_and_the_app_reads_it() {
    let t = common::devnet(true).await;
    let docker = common::docker().await;
    let image = common::app_image(&docker, "env").await;
    let app = t.pew_as(APP_OWNER, &["app", "register", "--image", &image]);
    let app: Address = app["address"].as_str().unwrap().parse().unwrap();
    t.pew_as(APP_OWNER, &["app", "publish", "--app", &app.to_string()]);
    let file = t.dir.path().join("readings.csv");
    std::fs::write(&file, "t,pv\n0,12.5\n").unwrap();
    let owner = WORKERS[1];
    let dataset = t.pew_as(
        owner,
        &["dataset", "register", "--file", file.to_str().unwrap()],
    );
    let dataset = dataset["address"].as_str().unwrap().to_string();
    let pool = t.pew_as(POOL_OWNER, &["pool", "create", "--description", "datasets"]);
    let pool: Address = pool["address"].as_str().unwrap().parse().unwrap();
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    let node = start_node(&t, &config, None);

    // No dataset order yet: the request waits (it is not refused).
    let request = common::node::submit_request(&t, app, "", &["--dataset", &dataset]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sdk = t.sdk(REQUESTER).await;
    assert_eq!(sdk.poco().consumed(request).await.unwrap(), U256::ZERO);
    // The owner publishes one for this app only; the node matches with it.
    t.pew_as(
        owner,
        &[
            "dataset",
            "publish",
            "--dataset",
            &dataset,
            "--app-restrict",
            &app.to_string(),
        ],
    );
    let task = wait_completed(&t, request, Duration::from_secs(120)).await;
    let (folder, _) = t.download_result(&task.to_string());
    let content = std::fs::read_to_string(folder.join("inputs-content.txt")).unwrap();
    assert_eq!(content, "t,pv\n0,12.5\n", "the app read the dataset");
    let env = std::fs::read_to_string(folder.join("env.txt")).unwrap();
    assert!(env.contains("IEXEC_DATASET_FILENAME="), "{env}");
    assert!(stop(node).await.success());
}

#[tokio::test]
async fn a_consensus_nobody_revealed_in_time_is_reopened_by_the_scheduler() {
    let t = common::devnet(true).await;
    let (app, pool) = prepare(&t).await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    with_node_settings(&config, "trust = 2");
    // Killed right after contributing: consensus is reached (trust 2, one fresh worker) but
    // nobody reveals.
    let mut crashing = start_node(&t, &config, Some("after-contribute"));
    let request = submit_trust(&t, app, "late", 2);
    wait_killed(&t, &mut crashing, "after-contribute").await;
    let sdk = t.sdk(REQUESTER).await;
    let task = sdk.request_status(request).await.unwrap().deals[0].tasks[0].task_id;
    assert_eq!(
        sdk.poco().task(task).await.unwrap().status,
        pew::chain::poco::status::REVEALING
    );
    // The reveal window (2 × 300 s for XS) passes while the node is down.
    common::node::advance_chain_time(&t, 601).await;

    let node = start_node(&t, &config, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !node_log(&t).contains("our contribution was rejected") {
        assert!(
            Instant::now() < deadline,
            "never reopened:\n{}",
            node_log(&t)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        sdk.poco().task(task).await.unwrap().status,
        pew::chain::poco::status::ACTIVE,
        "reopened: the task takes contributions again"
    );
    let filter = Filter::new()
        .address(t.info().hub)
        .event_signature(Hub::TaskReopen::SIGNATURE_HASH)
        .from_block(0);
    assert_eq!(t.reader().get_logs(&filter).await.unwrap().len(), 1);
    assert!(stop(node).await.success());
}

alloy::sol! {
    #[sol(rpc)]
    interface ResultKeeper {
        function resultOf(bytes32 taskid) external view returns (bytes memory);
    }
}

/// The oracle test app with a staked pool, and a `ResultKeeper` deployed by the requester to
/// receive callbacks from the hub.
async fn oracle_app_pool_and_keeper(t: &TestDevnet) -> (Address, Address, Address) {
    let (app, pool) = common::node::app_and_pool(t, "oracle", 10, "oracles").await;
    let keeper = common::contracts::deploy(
        t,
        REQUESTER,
        "ResultKeeper",
        &alloy::sol_types::SolValue::abi_encode(&t.info().hub),
    )
    .await;
    (app, pool, keeper)
}

#[tokio::test]
async fn a_callback_request_delivers_its_data_to_the_callback_contract_at_trust_1_and_2() {
    let t = common::devnet(true).await;
    let (app, pool, keeper) = oracle_app_pool_and_keeper(&t).await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    with_node_settings(&config, "trust = 2");
    let node = start_node(&t, &config, None);

    let keeper_contract = ResultKeeper::new(keeper, t.reader());
    for (trust, data) in [
        (
            1u64,
            "0x00000000000000000000000000000000000000000000000000000000000004d2",
        ),
        (2, "0x736f6c6172"),
    ] {
        let keeper_flag = keeper.to_string();
        let trust_flag = trust.to_string();
        let request = common::node::submit_request(
            &t,
            app,
            data,
            &["--callback", &keeper_flag, "--trust", &trust_flag],
        );
        let task = wait_completed(&t, request, Duration::from_secs(120)).await;
        let delivered = keeper_contract.resultOf(task.0).call().await.unwrap();
        assert_eq!(delivered.to_string(), data, "trust {trust}");
        let view = t.pew_json(&["task", "show", &task.to_string()]);
        assert_eq!(view["results_callback"], data, "{view}");
        assert_eq!(
            view["results"],
            format!(
                r#"{{ "storage": "ethereum", "location": "{}" }}"#,
                keeper.to_string().to_lowercase()
            ),
            "{view}"
        );
        // Nothing to download: the result is on chain.
        let download = t
            .pew()
            .args(["result", "download", &task.to_string(), "--to"])
            .arg(t.dir.path().join("downloads"))
            .output()
            .unwrap();
        assert!(!download.status.success());
        assert!(
            String::from_utf8_lossy(&download.stderr).contains("callback task"),
            "{}",
            String::from_utf8_lossy(&download.stderr)
        );
    }
    assert!(stop(node).await.success(), "{}", node_log(&t));
    assert!(
        node_log(&t).contains("nothing uploaded"),
        "{}",
        node_log(&t)
    );
}

#[tokio::test]
async fn pew_doctor_lists_what_the_node_needs_and_each_fix() {
    let t = common::devnet(true).await;
    let pool = t.pew_as(POOL_OWNER, &["pool", "create", "--description", "doctor"]);
    let pool: Address = pool["address"].as_str().unwrap().parse().unwrap();
    let trace = t.dir.path().join("trace.csv");
    std::fs::write(&trace, "time,pv_w,battery_soc\n0,12.5,0.6\n3600,12.5,0.6\n").unwrap();
    let energy = format!(
        "[energy]\nsource = \"trace\"\ntrace_file = \"{}\"\nstate_file = \"{}\"",
        trace.display(),
        t.dir.path().join("energy/state.json").display()
    );
    let config = node_config(&t, pool, &energy);
    // A price makes the bid lock stake, which this owner has not deposited yet.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("price = \"0\"", "price = \"1\"");
    std::fs::write(&config, text).unwrap();
    let keystore = t.keystore(POOL_OWNER);
    let doctor = || {
        let output = t
            .pew()
            .args(["doctor", "--json", "--config", config.to_str().unwrap()])
            .args(["--keystore", keystore.to_str().unwrap()])
            .env_remove("PEW_PASSWORD") // it never needs the password
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
        let outcome = |name: &str| {
            report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .unwrap_or_else(|| panic!("no {name} check: {report}"))["outcome"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let outcomes: std::collections::HashMap<String, String> = [
            "config",
            "clock",
            "category",
            "wallet",
            "chain",
            "workerpool",
            "gas",
            "stake",
            "engine",
            "ipfs",
            "disk",
            "energy",
        ]
        .iter()
        .map(|name| (name.to_string(), outcome(name)))
        .collect();
        (output.status.success(), report, outcomes)
    };

    let (ok, report, outcomes) = doctor();
    assert!(!ok, "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(outcomes["stake"], "fail", "{report}");
    let stake = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "stake")
        .unwrap();
    assert!(
        stake["detail"]
            .as_str()
            .unwrap()
            .contains("pew account deposit"),
        "{stake}"
    );
    for name in [
        "category",
        "wallet",
        "chain",
        "workerpool",
        "gas",
        "engine",
        "ipfs",
        "energy",
    ] {
        assert_eq!(outcomes[name], "ok", "{name}: {report}");
    }
    let engine = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "engine")
        .unwrap();
    assert!(
        engine["detail"]
            .as_str()
            .unwrap()
            .starts_with("Docker Engine "),
        "the engine is named: {engine}"
    );

    t.pew_as(POOL_OWNER, &["account", "deposit", "1"]);
    let (ok, report, outcomes) = doctor();
    assert!(ok, "{report}");
    assert_eq!(outcomes["stake"], "ok", "{report}");
}

#[tokio::test]
async fn a_callback_task_killed_after_its_result_step_still_delivers_after_restart() {
    let t = common::devnet(true).await;
    let (app, pool, keeper) = oracle_app_pool_and_keeper(&t).await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    let data = "0x0000000000000000000000000000000000000000000000000000000000000007";
    let keeper_flag = keeper.to_string();
    for point in ["after-upload", "sent:contributeAndFinalize"] {
        let mut crashing = start_node(&t, &config, Some(point));
        let request = common::node::submit_request(&t, app, data, &["--callback", &keeper_flag]);
        wait_killed(&t, &mut crashing, point).await;
        let node = start_node(&t, &config, None);
        let task = wait_completed(&t, request, Duration::from_secs(120)).await;
        assert_eq!(contributions(&t, task).await, 1, "{point}");
        let delivered = ResultKeeper::new(keeper, t.reader())
            .resultOf(task.0)
            .call()
            .await
            .unwrap();
        assert_eq!(delivered.to_string(), data, "{point}");
        assert!(stop(node).await.success());
    }
}

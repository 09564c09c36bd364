//! `pew run` against hostile or broken surroundings, on the devnet with real Docker and IPFS:
//! a failing step waits out its backoff, a retagged image fails its task at once with the real
//! reason, a request larger than the bid is matched until done, a closed log pipe neither
//! stops nor kills the node, a second node on the same key or workerpool is refused, and
//! `/health` turns 503 while every round fails.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use common::TestDevnet;
use common::deals::*;
use common::node::{node_config, node_log, spawn_node, stop, wait_completed, with_node_settings};
use common::relay::Relay;

fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the node's log holds `text` `count` times.
async fn wait_log(t: &TestDevnet, text: &str, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while node_log(t).matches(text).count() < count {
        assert!(
            Instant::now() < deadline,
            "`{text}` never appeared {count} times; log:\n{}",
            node_log(t)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_failing_step_waits_out_its_backoff_and_the_task_completes_once_it_can() {
    let t = common::devnet(true).await;
    let (app, pool) = common::node::app_and_pool(&t, "napper", 10, "pew backoff test").await;
    // Results go to IPFS through a relay the test can cut.
    let mut relay = Relay::start(port_of(t.ipfs_api())).await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[ipfs]\napi = \"http://127.0.0.1:{}\"\n",
            relay.port
        ),
    )
    .unwrap();
    let node = spawn_node(&t, &config, &t.dir.path().join("node.log"), None);
    let request = common::node::submit_request(&t, app, "4", &[]);
    wait_log(&t, "running the app", 1, Duration::from_secs(120)).await;
    relay.cut();
    // The upload fails; the node polls every 200 ms, but the step is retried after 1, 2, 4, 8
    // s: at most six attempts in 20 s, not a hundred.
    wait_log(&t, "task step failed", 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let attempts = node_log(&t).matches("task step failed").count();
    assert!(
        (2..=7).contains(&attempts),
        "{attempts} attempts in 20 s; log:\n{}",
        node_log(&t)
    );
    relay.restore().await;
    wait_completed(&t, request, Duration::from_secs(120)).await;
    assert!(stop(node).await.success());
}

#[tokio::test]
async fn an_image_retagged_after_the_match_fails_its_task_at_once_with_the_real_reason() {
    let t = common::devnet(true).await;
    let docker = common::docker().await;
    // The busy app holds the node's only slot while the second request's task waits.
    let (napper, pool) = common::node::app_and_pool(&t, "napper", 10, "pew retag test").await;
    let image = common::fresh_app_image(&docker, "retagged").await;
    let registered = t.pew_as(APP_OWNER, &["app", "register", "--image", &image]);
    let retagged: Address = registered["address"].as_str().unwrap().parse().unwrap();
    t.pew_as(
        APP_OWNER,
        &[
            "app",
            "publish",
            "--app",
            &retagged.to_string(),
            "--volume",
            "10",
        ],
    );
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    with_node_settings(&config, "concurrency = 1");
    // Room for two unfinished tasks, so the second request is matched while the first runs
    // and the image can be retagged between its match and its run.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("volume = 1\n"), "{text}");
    std::fs::write(&config, text.replace("volume = 1\n", "volume = 2\n")).unwrap();
    let node = spawn_node(&t, &config, &t.dir.path().join("node.log"), None);
    let busy = common::node::submit_request(&t, napper, "8", &[]);
    wait_log(&t, "running the app", 1, Duration::from_secs(120)).await;
    common::node::submit_request(&t, retagged, "x", &[]);
    wait_log(&t, "request matched", 2, Duration::from_secs(60)).await;
    // The tag now names another image than the one registered on chain.
    let (repo, tag) = image.rsplit_once(':').unwrap();
    let other = common::busybox_image(&docker).await;
    docker
        .tag_image(
            &other,
            Some(
                bollard::query_parameters::TagImageOptionsBuilder::new()
                    .repo(repo)
                    .tag(tag)
                    .build(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        node_log(&t).matches("running the app").count(),
        1,
        "the retagged app started before the test could retag it; the test proves nothing"
    );
    wait_completed(&t, busy, Duration::from_secs(120)).await;
    wait_log(&t, "task failed on this node", 1, Duration::from_secs(60)).await;
    let log = node_log(&t);
    let failed = log
        .lines()
        .find(|l| l.contains("task failed on this node"))
        .unwrap();
    assert!(failed.contains("does not match"), "{failed}");
    assert!(!failed.contains("deadline"), "{failed}");
    assert_eq!(log.matches("task step failed").count(), 0, "{log}");
    assert!(stop(node).await.success());
}

#[tokio::test]
async fn a_request_larger_than_the_bid_is_matched_again_until_its_volume_is_done() {
    let t = common::devnet(true).await;
    let (app, pool) = common::node::app_and_pool(&t, "napper", 100, "pew volume test").await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\""); // volume = 1
    // One task at a time: while the first part runs, the rest waits for room.
    with_node_settings(&config, "concurrency = 1");
    let log = t.dir.path().join("node.log");
    let node = spawn_node(&t, &config, &log, None);
    let request = common::node::submit_request(&t, app, "6", &["--volume", "2"]);
    let sdk = t.sdk(REQUESTER).await;
    wait_log(&t, "request matched in part", 1, Duration::from_secs(120)).await;
    // Stopped while the first part runs (it stops at its next step boundary and resumes
    // after the restart): the rest is not matched yet, and the journal must keep the request
    // pending across the restart.
    let status = stop(node).await;
    assert!(status.success(), "{status:?}; log:\n{}", node_log(&t));
    let first = sdk.request_status(request).await.unwrap().deals[0].tasks[0].task_id;
    assert_eq!(
        sdk.poco().consumed(request).await.unwrap(),
        alloy::primitives::U256::from(1),
        "only the first part was matched before the stop"
    );
    {
        let journal =
            pew::node::journal::Journal::open(&t.dir.path().join("journal.sqlite")).unwrap();
        assert_eq!(journal.pending_requests().unwrap(), [request]);
        assert_eq!(journal.matched_requests().unwrap().len(), 1);
    }
    let node = spawn_node(&t, &config, &log, None);
    wait_log(&t, "node running", 2, Duration::from_secs(120)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = sdk.request_status(request).await.unwrap();
        let done: Vec<_> = status
            .deals
            .iter()
            .flat_map(|d| &d.tasks)
            .filter(|task| task.status == "COMPLETED")
            .collect();
        if done.len() == 2 {
            assert!(done.iter().any(|task| task.task_id == first));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rest of the request was never matched; log:\n{}",
            node_log(&t)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = stop(node).await;
    assert!(status.success(), "{status:?}; log:\n{}", node_log(&t));

    // Printing to a reader that has gone is not a crash.
    for args in [
        vec!["task", "show", &first.to_string()],
        vec!["request", "show", &request.to_string()],
    ] {
        let mut child = t
            .pew()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // `| true`: nobody reads
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "pew {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn a_closed_log_pipe_neither_stops_nor_kills_the_node() {
    let t = common::devnet(true).await;
    let (app, pool) = common::node::writer_app_and_pool(&t, 100, "pew pipe test").await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    let keystore = t.keystore(POOL_OWNER);
    let mut node = t
        .pew()
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--keystore", keystore.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `pew run 2>&1 | head -n 3`: three lines read, then the reader is gone.
    let mut reader = BufReader::new(node.stderr.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
    }
    drop(reader);
    let request = common::node::submit_request(&t, app, "still working", &[]);
    wait_completed(&t, request, Duration::from_secs(120)).await;
    let status = stop(node).await;
    assert!(status.success(), "{status:?}");
    // The bid was closed on the way out: nothing of ours is left to match.
    let journal = pew::node::journal::Journal::open(&t.dir.path().join("journal.sqlite")).unwrap();
    assert_eq!(journal.get("bid_order").unwrap(), None);
}

#[tokio::test]
async fn a_second_node_on_the_same_key_or_workerpool_is_refused_with_the_first_ones_pid() {
    let t = common::devnet(true).await;
    let (_, pool) = common::node::writer_app_and_pool(&t, 1, "pew lock test").await;
    let config = node_config(&t, pool, "[gate]\nsource = \"always\"");
    let first = spawn_node(&t, &config, &t.dir.path().join("node.log"), None);
    wait_log(&t, "node running", 1, Duration::from_secs(120)).await;
    // Another state and work folder each time; then the same pool with another key, the same
    // key with another pool, and both: each lock refuses on its own, naming the first node.
    let other_pool = t.pew_as(
        POOL_OWNER,
        &["pool", "create", "--description", "another pool"],
    );
    let other_pool = other_pool["address"].as_str().unwrap().to_string();
    let base = std::fs::read_to_string(&config).unwrap();
    let cases = [
        ("pool", pool.to_string(), APP_OWNER, "the workerpool"),
        ("key", other_pool.clone(), POOL_OWNER, "the key"),
        ("both", pool.to_string(), POOL_OWNER, "pid"),
    ];
    for (name, pool_address, key, expected) in cases {
        let other = t.dir.path().join(format!("{name}.toml"));
        let text = base
            .replace("journal.sqlite", &format!("{name}/journal.sqlite"))
            .replace("/work\"", &format!("/{name}-work\""))
            .replace(&pool.to_string(), &pool_address);
        std::fs::write(&other, text).unwrap();
        let started = Instant::now();
        let second = t
            .pew()
            .args(["run", "--config", other.to_str().unwrap()])
            .args(["--keystore", t.keystore(key).to_str().unwrap()])
            .output()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(!second.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("pid {}", first.id())) && stderr.contains(expected),
            "{name}: the running node is named: {stderr}"
        );
    }
    assert!(stop(first).await.success());
}

#[tokio::test]
async fn health_turns_503_while_every_round_fails_and_200_once_they_complete_again() {
    let t = common::devnet(true).await;
    let (_, pool) = common::node::writer_app_and_pool(&t, 1, "pew health test").await;
    let mut relay = Relay::start(port_of(&t.info().rpc_url)).await;
    let api_port = free_port();
    let config = node_config(
        &t,
        pool,
        &format!("[gate]\nsource = \"always\"\n[api]\nlisten = \"127.0.0.1:{api_port}\""),
    );
    let keystore = t.keystore(POOL_OWNER);
    let log = std::fs::File::create(t.dir.path().join("node.log")).unwrap();
    let node = t
        .pew()
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--keystore", keystore.to_str().unwrap()])
        .args(["--rpc-url", &format!("http://127.0.0.1:{}", relay.port)])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let health = |client: reqwest::Client| async move {
        match client
            .get(format!("http://127.0.0.1:{api_port}/health"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    };
    let wait_for = |code: u16, limit: Duration| {
        let client = client.clone();
        let t = &t;
        async move {
            let deadline = Instant::now() + limit;
            while health(client.clone()).await != code {
                assert!(
                    Instant::now() < deadline,
                    "/health never answered {code}; log:\n{}",
                    node_log(t)
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    wait_for(200, Duration::from_secs(120)).await;
    // The RPC node is gone: every round fails, and health must say so once they stall
    // (3 poll intervals + 60 s).
    relay.cut();
    wait_for(503, Duration::from_secs(100)).await;
    relay.restore().await;
    wait_for(200, Duration::from_secs(60)).await;
    assert!(stop(node).await.success());
}

//! The node benchmark, run by `scripts/bench-node` (ignored by `cargo test`): idle RSS and CPU
//! of `pew run` over 60 s, latency from SchedulerNotice to contribution over 20 tasks of a
//! trivial app (the app's own run time taken out), and log catch-up speed over 100 000 blocks.
//! Figures go to stderr; the JSON summary to the file named by BENCH_NODE_OUT.

mod common;

use std::time::{Duration, Instant};

use alloy::providers::Provider;
use common::deals::*;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[tokio::test]
#[ignore = "a benchmark: run it with scripts/bench-node"]
async fn bench_node() {
    let idle_seconds: u64 = std::env::var("BENCH_IDLE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let tasks: usize = std::env::var("BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let t = common::devnet(true).await;
    let (app, pool) = common::node::writer_app_and_pool(&t, 1000, "bench").await;
    let config = t.dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\npool = \"{pool}\"\njournal = \"{}\"\n[executor]\nwork_dir = \"{}\"\n[gate]\nsource = \"always\"\n",
            t.dir.path().join("journal.sqlite").display(),
            t.dir.path().join("work").display()
        ),
    )
    .unwrap();
    let log_path = t.dir.path().join("node.log");
    let mut node = common::node::spawn_node(&t, &config, &log_path, None);
    let pid = node.id();

    // Idle: the node running with nothing to do (its bid is open; it polls every second).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ticks_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut rss_max = 0;
    while started.elapsed() < Duration::from_secs(idle_seconds) {
        rss_max = rss_max.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // SAFETY: sysconf has no side effects.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let idle_cpu_pct =
        (cpu_ticks(pid) - ticks_before) as f64 / ticks_per_s / started.elapsed().as_secs_f64()
            * 100.0;
    let idle_rss_mib = rss_max as f64 / 1024.0;
    eprintln!(
        "idle over {idle_seconds} s: RSS {idle_rss_mib:.1} MiB, CPU {idle_cpu_pct:.3} % of one core"
    );

    // Latency over `tasks` requests, one after the other.
    let sdk = t.sdk(REQUESTER).await;
    for i in 0..tasks {
        let hash = common::node::submit_request(&t, app, &format!("task {i}"), &[]);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = sdk.request_status(hash).await.unwrap();
            if status
                .deals
                .first()
                .and_then(|d| d.tasks.first())
                .is_some_and(|t| t.status == "COMPLETED")
            {
                break;
            }
            assert!(Instant::now() < deadline, "task {i} did not complete");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // SAFETY: plain kill(2) of our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = node.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let mut latencies: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("task timing"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("notice_to_contribution_ms="))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|ms| ms / 1000.0)
        .collect();
    assert_eq!(latencies.len(), tasks, "one timing per task");
    latencies.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies, 50.0);
    let p95 = percentile(&latencies, 95.0);
    eprintln!(
        "SchedulerNotice to contribution over {tasks} tasks (app run time excluded): p50 {p50:.3} s, p95 {p95:.3} s"
    );

    // Catch-up: 100 000 blocks (BENCH_CATCHUP_BLOCKS) to read from a fresh journal. anvil is
    // slow to mine that many (minutes), so mining is timed apart and not counted.
    let blocks: u64 = std::env::var("BENCH_CATCHUP_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    eprintln!("mining {blocks} empty blocks on anvil (slow: minutes; not counted)");
    let mining = Instant::now();
    let mut mined = 0;
    while mined < blocks {
        let batch = (blocks - mined).min(5_000);
        let _: serde_json::Value = t
            .reader()
            .raw_request("anvil_mine".into(), (batch,))
            .await
            .unwrap();
        mined += batch;
    }
    eprintln!("mined in {:.0} s", mining.elapsed().as_secs_f64());
    let latest = t.reader().get_block_number().await.unwrap();
    let watcher = pew::chain::watcher::Watcher {
        provider: t.reader(),
        hub: t.info().hub,
        pool,
        confirmations: 0,
        reorg_depth: 64,
        chunk: 10_000,
        max_span: 50_000,
        start_block: latest - blocks + 1,
    };
    let started = Instant::now();
    let mut read = 0;
    let mut cursor = None;
    while read < blocks {
        let found = watcher.poll(cursor).await.unwrap();
        let (from, to) = found.range.expect("blocks to read");
        read += to - from + 1;
        cursor = found.cursor;
    }
    let catchup_blocks_per_s = blocks as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "log catch-up: {blocks} blocks in {:.2} s ({catchup_blocks_per_s:.0} blocks/s)",
        started.elapsed().as_secs_f64()
    );

    // Through a relay that behaves like a public endpoint: the calls an idle round costs,
    // and the calls of one whole task (a public endpoint's patience and a Pi's rate limit).
    let relay = common::public_rpc::PublicRpc::start(&t.info().rpc_url).await;
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay_config = t.dir.path().join("relay.toml");
    std::fs::write(
        &relay_config,
        format!(
            "[node]\npool = \"{pool}\"\njournal = \"{}\"\n[executor]\nwork_dir = \"{}\"\n[gate]\nsource = \"always\"\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n[chain]\nrpc_urls = [\"{}\"]\n",
            t.dir.path().join("relay-journal.sqlite").display(),
            t.dir.path().join("relay-work").display(),
            relay.url,
        ),
    )
    .unwrap();
    let relay_log = t.dir.path().join("relay-node.log");
    let mut node = common::node::spawn_node(&t, &relay_config, &relay_log, None);
    let rounds = || async move {
        let text = reqwest::get(format!("http://127.0.0.1:{api_port}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("pew_rounds_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while rounds().await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the relayed node never served its API"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (calls_before, rounds_before) = (relay.counts().total(), rounds().await.unwrap());
    tokio::time::sleep(Duration::from_secs(idle_seconds.min(60))).await;
    let (calls_after, rounds_after) = (relay.counts().total(), rounds().await.unwrap());
    let idle_rounds = (rounds_after - rounds_before).max(1.0);
    let rpc_calls_per_round = (calls_after - calls_before) as f64 / idle_rounds;
    let calls_before_task = relay.counts().total();
    let rounds_before_task = rounds().await.unwrap();
    let hash = common::node::submit_request(&t, app, "through the relay", &[]);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = sdk.request_status(hash).await.unwrap();
        if status
            .deals
            .first()
            .and_then(|d| d.tasks.first())
            .is_some_and(|t| t.status == "COMPLETED")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relayed task did not complete"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The task's own calls: all calls meanwhile, less what the idle rounds would have cost.
    let task_calls = relay.counts().total() - calls_before_task;
    let task_rounds = rounds().await.unwrap() - rounds_before_task;
    let rpc_calls_per_task = (task_calls as f64 - task_rounds * rpc_calls_per_round).max(0.0);
    common::node::sigterm_and_wait(&mut node, Duration::from_secs(60)).await;
    let counts = relay.counts();
    eprintln!(
        "through a public-endpoint relay: {rpc_calls_per_round:.2} calls per idle round; one task: {task_calls} calls during it ({rpc_calls_per_task:.0} its own); {} answered 429, {} failed; per method: {:?}",
        counts.rate_limited, counts.failed, counts.methods
    );

    let summary = serde_json::json!({
        "rpc_calls_per_round": (rpc_calls_per_round * 100.0).round() / 100.0,
        "rpc_calls_per_task": rpc_calls_per_task.round(),
        "rpc_calls_during_task": task_calls,
        "idle_rss_mib": (idle_rss_mib * 10.0).round() / 10.0,
        "idle_cpu_pct": (idle_cpu_pct * 1000.0).round() / 1000.0,
        "notice_to_contribution_p50_s": (p50 * 1000.0).round() / 1000.0,
        "notice_to_contribution_p95_s": (p95 * 1000.0).round() / 1000.0,
        "catchup_blocks_per_s": catchup_blocks_per_s.round(),
        "catchup_blocks": blocks,
    });
    if let Ok(out) = std::env::var("BENCH_NODE_OUT") {
        std::fs::write(out, summary.to_string()).unwrap();
    }
    eprintln!("{summary}");
}

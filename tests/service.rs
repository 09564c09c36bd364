//! `pew run` as `pew.service` runs it (Type=notify): the test plays systemd's part with a Unix
//! datagram socket in NOTIFY_SOCKET and a 2 s watchdog. The node says READY=1 once running,
//! feeds the watchdog while its rounds complete and stops feeding it while every round fails
//! (its RPC node gone), shows a STATUS= line, and says STOPPING=1 on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::node::{node_config, node_log, stop};
use common::relay::Relay;

/// The notifications received so far, each with the time it arrived.
fn drain(socket: &UnixDatagram, into: &mut Vec<(Instant, String)>) {
    let mut buffer = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buffer) {
        into.push((
            Instant::now(),
            String::from_utf8_lossy(&buffer[..n]).to_string(),
        ));
    }
}

#[tokio::test]
async fn the_node_tells_systemd_it_is_ready_alive_only_while_rounds_complete_and_stopping() {
    let t = common::devnet(true).await;
    let (_, pool) = common::node::writer_app_and_pool(&t, 1, "pew service test").await;
    let port: u16 = t
        .info()
        .rpc_url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut relay = Relay::start(port).await;
    let config = node_config(
        &t,
        pool,
        "[gate]\nsource = \"always\"\n[api]\nlisten = \"\"",
    );
    let socket_path = t.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let keystore = t.keystore(common::deals::POOL_OWNER);
    let log = std::fs::File::create(t.dir.path().join("node.log")).unwrap();
    let node = t
        .pew()
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--keystore", keystore.to_str().unwrap()])
        .args(["--rpc-url", &format!("http://127.0.0.1:{}", relay.port)])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "2000000")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !seen
        .iter()
        .any(|(_, m): &(Instant, String)| m.contains("READY=1"))
    {
        assert!(
            Instant::now() < deadline,
            "never ready; log:\n{}",
            node_log(&t)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        drain(&socket, &mut seen);
    }
    let ready = seen
        .iter()
        .find(|(_, m)| m.contains("READY=1"))
        .unwrap()
        .1
        .clone();
    assert!(ready.contains("STATUS=starting"), "{ready}");

    // Rounds complete: the watchdog is fed about every second (half of 2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    drain(&socket, &mut seen);
    let pings = |seen: &[(Instant, String)], after: Instant| {
        seen.iter()
            .filter(|(at, m)| *at >= after && m.contains("WATCHDOG=1"))
            .count()
    };
    let before_cut = Instant::now();
    assert!(
        pings(&seen, before_cut - Duration::from_secs(5)) >= 3,
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|(_, m)| m.contains("STATUS=bid open")),
        "{seen:?}"
    );

    // The RPC node is gone: rounds fail, and no more pings (systemd would restart the node).
    relay.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    drain(&socket, &mut seen);
    let cut_settled = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    drain(&socket, &mut seen);
    assert_eq!(pings(&seen, cut_settled), 0, "{seen:?}");

    // Back: pings again.
    relay.restore().await;
    let restored = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pings(&seen, restored) == 0 {
        assert!(Instant::now() < deadline, "no ping after the RPC came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
        drain(&socket, &mut seen);
    }

    assert!(stop(node).await.success(), "{}", node_log(&t));
    drain(&socket, &mut seen);
    assert!(
        seen.iter().any(|(_, m)| m.contains("STOPPING=1")),
        "{seen:?}"
    );
}

//! MQTT against a real Mosquitto: the energy source reads evcc's and Victron's topics and
//! payloads, refuses junk and goes quiet on stale topics; a node on the devnet opens and closes
//! its bid as published PV and state of charge come and go, shows up in Home Assistant through
//! MQTT discovery, and obeys the operator's "stop bidding" switch.

mod common;

use std::time::{Duration, Instant};

use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use common::mqtt::Broker;
use pew::abi::IexecInterfaceToken as Hub;
use pew::config::{MqttPreset, MqttSettings};
use pew::energy::sample::{EnergySource, SourceError};
use pew::energy::sources::mqtt::MqttSource;

fn settings(broker: &str, preset: MqttPreset) -> MqttSettings {
    MqttSettings {
        broker: broker.to_string(),
        username: String::new(),
        password_file: Default::default(),
        preset,
        portal_id: String::new(),
        prefix: String::new(),
        pv_topic: String::new(),
        soc_topic: String::new(),
        load_topic: String::new(),
        json_field: String::new(),
        stale_after_s: 120.0,
    }
}

fn read_until(source: &mut MqttSource, what: impl Fn(&pew::energy::sample::Sample) -> bool) {
    let started = Instant::now();
    loop {
        if let Ok(sample) = source.read()
            && what(&sample)
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no such reading: {:?}",
            source.read()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn evccs_retained_topics_are_read_junk_is_refused_and_silence_goes_stale() {
    let broker = Broker::start();
    broker.publish("evcc/site/pvPower", "35.5", true);
    broker.publish("evcc/site/batterySoc", "80", true); // evcc before 0.301
    broker.publish("evcc/site/homePower", "3.1", true);
    let mut evcc = settings(&broker.address(), MqttPreset::Evcc);
    evcc.stale_after_s = 2.0;
    let mut source = MqttSource::connect(&evcc).unwrap();
    // On a loaded machine the retained values may come after connect() stopped waiting.
    read_until(&mut source, |s| s.pv_w.is_some() && s.battery_soc.is_some());
    let sample = source.read().unwrap();
    assert_eq!(sample.pv_w, Some(35.5));
    assert_eq!(sample.battery_soc, Some(0.8));
    assert_eq!(
        sample.load_w, None,
        "evcc's homePower is the house, not the node"
    );
    // The current name wins once it is the freshest.
    broker.publish("evcc/site/battery/soc", "55", false);
    read_until(&mut source, |s| s.battery_soc == Some(0.55));
    // Junk is refused and counted, never taken as a reading.
    broker.publish("evcc/site/pvPower", "lots", false);
    let started = Instant::now();
    loop {
        match source.read() {
            Err(SourceError::Rejected { why, .. }) => {
                assert!(why.contains("not a number"), "{why}");
                break;
            }
            other => assert!(
                started.elapsed() < Duration::from_secs(10),
                "junk was not refused: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(source.rejected(), 1);
    // Physically impossible values are refused too.
    broker.publish("evcc/site/battery/soc", "250", false);
    std::thread::sleep(Duration::from_millis(300));
    assert!(matches!(source.read(), Err(SourceError::Rejected { .. })));
    // Silence: after stale_after_s nothing is fresh, and the read says so.
    std::thread::sleep(Duration::from_millis(2500));
    match source.read() {
        Err(SourceError::Unreachable { what, .. }) => {
            assert!(what.contains("no value younger than 2 s"), "{what}")
        }
        other => panic!("stale topics gave {other:?}"),
    }
}

#[test]
fn a_victron_gx_device_is_kept_publishing_and_its_json_values_are_read() {
    let broker = Broker::start();
    let mut victron = settings(&broker.address(), MqttPreset::Victron);
    victron.portal_id = "c0619ab1c2d3".into();
    // A stand-in for the GX device: it answers the keep-alive with its values, as
    // dbus-flashmq does (nothing is published before a keep-alive).
    let address = broker.port;
    let (ready, subscribed) = std::sync::mpsc::channel();
    let gx = std::thread::spawn(move || {
        use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
        let (client, mut connection) =
            Client::new(MqttOptions::new("gx", "127.0.0.1", address), 10);
        client
            .subscribe("R/c0619ab1c2d3/keepalive", QoS::AtLeastOnce)
            .unwrap();
        for event in connection.iter() {
            if let Ok(Event::Incoming(Packet::SubAck(_))) = event {
                ready.send(()).unwrap();
            }
            if let Ok(Event::Incoming(Packet::Publish(p))) = event {
                assert_eq!(p.topic, "R/c0619ab1c2d3/keepalive");
                for (path, value) in [
                    ("Dc/Pv/Power", "{\"value\": 120.5}"),
                    ("Dc/Battery/Soc", "{\"value\": 64}"),
                    ("Dc/System/Power", "{\"value\": null}"),
                ] {
                    client
                        .publish(
                            format!("N/c0619ab1c2d3/system/0/{path}"),
                            QoS::AtLeastOnce,
                            false,
                            value,
                        )
                        .unwrap();
                }
                break;
            }
        }
        // The publishes go out as the connection is driven: until the broker has all three.
        let mut acked = 0;
        for event in connection.iter() {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = event {
                acked += 1;
                if acked == 3 {
                    break;
                }
            }
        }
    });
    subscribed.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut source = MqttSource::connect(&victron).unwrap();
    read_until(&mut source, |s| {
        s.pv_w == Some(120.5) && s.battery_soc.is_some()
    });
    let sample = source.read().unwrap();
    assert_eq!(sample.battery_soc, Some(0.64));
    assert_eq!(sample.load_w, None, "{{\"value\": null}} is no value");
    gx.join().unwrap();
}

#[test]
fn a_broker_that_is_not_there_is_named_in_the_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut custom = MqttSettings {
        pv_topic: "solar/pv".into(),
        ..settings(&format!("127.0.0.1:{port}"), MqttPreset::Custom)
    };
    custom.stale_after_s = 5.0;
    let mut source = MqttSource::connect(&custom).unwrap();
    match source.read() {
        Err(SourceError::Unreachable { what, .. }) => {
            assert!(
                what.contains("does not answer") || what.contains("not connected"),
                "{what}"
            )
        }
        other => panic!("{other:?}"),
    }
}

async fn logs_of(t: &common::TestDevnet, signature: alloy::primitives::B256) -> usize {
    let filter = Filter::new()
        .address(t.info().hub)
        .event_signature(signature)
        .from_block(0);
    t.reader().get_logs(&filter).await.unwrap().len()
}

/// Waits up to 60 s until the chain holds more than `before` events of `signature`.
async fn wait_for_more_logs(
    t: &common::TestDevnet,
    signature: alloy::primitives::B256,
    before: usize,
    log: &dyn Fn() -> String,
) {
    let started = Instant::now();
    while logs_of(t, signature).await <= before {
        assert!(started.elapsed() < Duration::from_secs(60), "{}", log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn published_pv_and_charge_open_and_close_the_nodes_bid_and_home_assistant_sees_it() {
    let broker = Broker::start();
    let recorder = common::mqtt::Recorder::listen(&broker);
    broker.publish("home/pv", "0", true);
    broker.publish("home/soc", "20", true);
    let t = common::devnet(true).await;
    let (_app, pool) = common::node::writer_app_and_pool(&t, 100, "mqtt").await;
    let dir = t.dir.path();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[node]
pool = "{pool}"
journal = "{journal}"
poll_interval_ms = 200
volume = 1
stop_grace_s = 30
runtime_dir = "{runtime}"

[executor]
work_dir = "{work}"

[energy]
source = "mqtt"
poll_interval_s = 0.5
state_file = "{state}"

[energy.mqtt]
broker = "{broker}"
preset = "custom"
pv_topic = "home/pv"
soc_topic = "home/soc"

[energy.battery]
capacity_wh = 1000.0
reserve = 0.3
# The night's charge, also before the broker's first state of charge arrives.
initial_soc = 0.2

[energy.forecast]
open_meteo = false

[home_assistant]
broker = "{broker}"
publish_every_s = 1
switches = true
"#,
            journal = dir.join("journal.sqlite").display(),
            work = dir.join("work").display(),
            runtime = dir.join("run").display(),
            state = dir.join("energy-state.json").display(),
            broker = broker.address(),
        ),
    )
    .unwrap();
    let mut node = common::node::spawn_node(&t, &config, &dir.join("node.log"), None);
    let node_log = || std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
    let wait_for = |what: &str, done: &dyn Fn(&str) -> bool| {
        let started = Instant::now();
        while !done(&node_log()) {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{what}:\n{}",
                node_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // Night, battery under its reserve: no.
    wait_for("the gate never said no", &|log| log.contains("admit=false"));
    assert_eq!(
        logs_of(&t, Hub::SignedWorkerpoolOrder::SIGNATURE_HASH).await,
        0
    );
    // The sun comes out on the broker: the gate says yes and the bid opens.
    broker.publish("home/pv", "150", true);
    broker.publish("home/soc", "70", true);
    wait_for("the gate never said yes", &|log| log.contains("admit=true"));
    wait_for_more_logs(&t, Hub::SignedWorkerpoolOrder::SIGNATURE_HASH, 0, &node_log).await;
    // Home Assistant sees a device with its sensors, the state and the switches.
    let id = format!(
        "pew_{}",
        pool.to_string().trim_start_matches("0x").to_lowercase()
    );
    let battery: serde_json::Value = serde_json::from_str(&recorder.wait_for(
        &format!("homeassistant/sensor/{id}/battery/config"),
        30,
        |_| true,
    ))
    .unwrap();
    assert_eq!(battery["device_class"], "battery");
    assert_eq!(battery["device"]["identifiers"][0], id.as_str());
    assert_eq!(battery["state_topic"], format!("pew/{id}/state"));
    assert!(
        recorder
            .last(&format!("homeassistant/switch/{id}/stop_bidding/config"))
            .is_some()
    );
    assert_eq!(
        recorder.last(&format!("pew/{id}/availability")).as_deref(),
        Some("online")
    );
    let state = recorder.wait_for(&format!("pew/{id}/state"), 30, |p| {
        p.contains("\"bid_open\":true")
    });
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["soc_pct"], 70.0, "{state}");
    assert_eq!(state["pv_w"], 150.0, "{state}");
    assert_eq!(state["decision"], "yes", "{state}");
    // The operator stops bidding from Home Assistant: the open bid is withdrawn though the sun
    // shines, and the switch says so.
    let closed_before = logs_of(&t, Hub::ClosedWorkerpoolOrder::SIGNATURE_HASH).await;
    broker.publish(&format!("pew/{id}/stop_bidding/set"), "ON", false);
    recorder.wait_for(&format!("pew/{id}/stop_bidding/state"), 30, |p| p == "ON");
    wait_for_more_logs(
        &t,
        Hub::ClosedWorkerpoolOrder::SIGNATURE_HASH,
        closed_before,
        &node_log,
    )
    .await;
    // The log line follows the transaction's receipt.
    wait_for("the reason was not logged", &|log| {
        log.contains("the operator stopped bidding")
    });
    // ... and lets it bid again.
    let signed_before = logs_of(&t, Hub::SignedWorkerpoolOrder::SIGNATURE_HASH).await;
    broker.publish(&format!("pew/{id}/stop_bidding/set"), "OFF", false);
    wait_for_more_logs(
        &t,
        Hub::SignedWorkerpoolOrder::SIGNATURE_HASH,
        signed_before,
        &node_log,
    )
    .await;
    // Night again: the bid is withdrawn.
    let closed_before = logs_of(&t, Hub::ClosedWorkerpoolOrder::SIGNATURE_HASH).await;
    broker.publish("home/pv", "0", true);
    broker.publish("home/soc", "20", true);
    wait_for_more_logs(
        &t,
        Hub::ClosedWorkerpoolOrder::SIGNATURE_HASH,
        closed_before,
        &node_log,
    )
    .await;
    assert!(node_log().contains("under its reserve"), "{}", node_log());
    let status = common::node::sigterm_and_wait(&mut node, Duration::from_secs(90)).await;
    assert!(status.success(), "{}", node_log());
}

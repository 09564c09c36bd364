//! The node on an MQTT broker, for Home Assistant: its state as one retained JSON message,
//! MQTT discovery configs that make it a device with sensors (bid open, the gate's decision,
//! running tasks, state of charge, PV), an availability topic with a last will, and, when
//! `home_assistant.switches` is on, the operator's two switches (see [`super::switches`]).
//!
//! Topics (`<topic>` is `home_assistant.topic`, `<id>` is `pew_` and the workerpool address):
//! `<topic>/<id>/state`, `<topic>/<id>/availability` (`online`/`offline`),
//! `<topic>/<id>/<switch>/set` and `/state` (`ON`/`OFF`); discovery under
//! `<discovery_prefix>/<component>/<id>/<object>/config`, sent again whenever Home Assistant
//! announces itself `online` on `<discovery_prefix>/status` (its documented birth message).
//! Monitoring never stops the work: a broker that does not answer is logged and retried.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

use super::Node;
use super::switches::Switch;
use crate::config::HomeAssistantSettings;

/// The longest reason text published (Home Assistant keeps at most 255 characters of state).
const MAX_REASON: usize = 240;

/// Where everything goes, derived from the settings and the node's workerpool.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Entity ids and the device id: `pew_<workerpool hex>`.
    pub node_id: String,
    /// `<topic>/<node_id>`.
    pub base: String,
    /// The discovery prefix.
    pub discovery: String,
}

impl Topics {
    /// The topics of the node serving `pool`.
    pub fn new(settings: &HomeAssistantSettings, pool: &str) -> Self {
        let hex: String = pool
            .trim_start_matches("0x")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase();
        let node_id = format!("pew_{hex}");
        Topics {
            base: format!("{}/{node_id}", settings.topic.trim_end_matches('/')),
            discovery: settings.discovery_prefix.trim_end_matches('/').to_string(),
            node_id,
        }
    }

    /// The state topic.
    pub fn state(&self) -> String {
        format!("{}/state", self.base)
    }

    /// The availability topic.
    pub fn availability(&self) -> String {
        format!("{}/availability", self.base)
    }

    /// A switch's command topic.
    pub fn command(&self, switch: Switch) -> String {
        format!("{}/{}/set", self.base, switch.key())
    }

    /// A switch's state topic.
    pub fn switch_state(&self, switch: Switch) -> String {
        format!("{}/{}/state", self.base, switch.key())
    }

    /// Home Assistant's birth and last-will topic.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery)
    }
}

/// The discovery configs: (topic, JSON payload), sensors first, switches when offered.
pub fn discovery(topics: &Topics, switches: bool) -> Vec<(String, Value)> {
    let version = env!("CARGO_PKG_VERSION");
    let device = json!({
        "identifiers": [topics.node_id],
        "name": format!("pew worker {}", &topics.node_id[..topics.node_id.len().min(14)]),
        "manufacturer": "pew",
        "model": "Positive Energy Worker",
        "sw_version": version,
    });
    let origin = json!({"name": "pew", "sw_version": version});
    let common = |object: &str, name: &str| {
        json!({
            "name": name,
            "unique_id": format!("{}_{object}", topics.node_id),
            "object_id": format!("{}_{object}", topics.node_id),
            "availability_topic": topics.availability(),
            "device": device,
            "origin": origin,
        })
    };
    let merge = |mut base: Value, extra: Value| {
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    };
    let config = |component: &str, object: &str| {
        format!(
            "{}/{component}/{}/{object}/config",
            topics.discovery, topics.node_id
        )
    };
    let state = topics.state();
    let mut out = vec![
        (
            config("binary_sensor", "bid_open"),
            merge(
                common("bid_open", "Bid open"),
                json!({"state_topic": state, "value_template": "{{ 'ON' if value_json.bid_open else 'OFF' }}"}),
            ),
        ),
        (
            config("sensor", "decision"),
            merge(
                common("decision", "Gate decision"),
                json!({"state_topic": state, "value_template": "{{ value_json.decision }}",
                       "json_attributes_topic": state,
                       "json_attributes_template": "{{ {'reasons': value_json.reasons} | tojson }}"}),
            ),
        ),
        (
            config("sensor", "running_tasks"),
            merge(
                common("running_tasks", "Running tasks"),
                json!({"state_topic": state, "value_template": "{{ value_json.running_tasks }}",
                       "state_class": "measurement"}),
            ),
        ),
        (
            config("sensor", "battery"),
            merge(
                common("battery", "Battery"),
                json!({"state_topic": state, "value_template": "{{ value_json.soc_pct }}",
                       "device_class": "battery", "unit_of_measurement": "%",
                       "state_class": "measurement"}),
            ),
        ),
        (
            config("sensor", "pv_power"),
            merge(
                common("pv_power", "PV power"),
                json!({"state_topic": state, "value_template": "{{ value_json.pv_w }}",
                       "device_class": "power", "unit_of_measurement": "W",
                       "state_class": "measurement"}),
            ),
        ),
    ];
    if switches {
        for switch in Switch::ALL {
            out.push((
                config("switch", switch.key()),
                merge(
                    common(switch.key(), switch.label()),
                    json!({"command_topic": topics.command(switch),
                           "state_topic": topics.switch_state(switch),
                           "payload_on": "ON", "payload_off": "OFF"}),
                ),
            ));
        }
    }
    out
}

/// The state message: what the sensors read.
pub fn state_json(node: &Node) -> Value {
    let snapshot = super::api::snapshot(node);
    let (decision, reasons) = match &snapshot.decision {
        Some(d) => (
            if d.admit { "yes" } else { "no" },
            d.reasons.iter().map(crate::text::brief).collect::<Vec<_>>(),
        ),
        None => ("unknown", Vec::new()),
    };
    let first = reasons.first().cloned().unwrap_or_default();
    let reason: String = first.chars().take(MAX_REASON).collect();
    json!({
        "bid_open": snapshot.bid_open,
        "decision": decision,
        "reason": reason,
        "reasons": reasons,
        "running_tasks": snapshot.running_tasks,
        "soc_pct": snapshot.gate["battery"]["soc_pct"],
        "pv_w": snapshot.gate["readings"]["pv_w"],
        "stop_bidding": node.switches.is_on(Switch::StopBidding),
        "energy_pause": node.switches.is_on(Switch::Pause),
    })
}

/// Publishes until the node stops; logs a broker that does not answer and keeps trying.
pub async fn run(node: Arc<Node>, settings: HomeAssistantSettings) {
    let (host, port) = match crate::energy::sources::mqtt::split_broker(&settings.broker) {
        Ok(address) => address,
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "home_assistant.broker: nothing is published");
            return;
        }
    };
    let topics = Topics::new(&settings, &node.pool.to_string());
    // At most 23 characters, as MQTT 3.1.1 asks of brokers.
    let client_id = format!("pew-ha-{:08x}", rand::random::<u32>());
    let mut options = MqttOptions::new(client_id, host.clone(), port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(64 * 1024, 64 * 1024);
    options.set_last_will(LastWill::new(
        topics.availability(),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if !settings.username.is_empty() {
        let password = if settings.password_file.as_os_str().is_empty() {
            String::new()
        } else {
            match crate::wallet::read_password_file(&settings.password_file) {
                Ok(p) => p,
                Err(error) => {
                    tracing::warn!(%error, "home_assistant.password_file: nothing is published");
                    return;
                }
            }
        };
        options.set_credentials(settings.username.clone(), password);
    }
    let (client, mut events) = AsyncClient::new(options, 64);
    let every = if settings.publish_every_s.is_finite() {
        Duration::from_secs_f64(settings.publish_every_s.clamp(1.0, 3600.0))
    } else {
        Duration::from_secs(30)
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = node.shutdown.wait();
    tokio::pin!(stop);
    let mut connected = false;
    let mut warned = false;
    let mut last_state = Value::Null;
    loop {
        tokio::select! {
            _ = &mut stop => {
                let _ = client.try_publish(topics.availability(), QoS::AtLeastOnce, true, "offline");
                let _ = client.try_disconnect();
                // Let the event loop send both.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while events.poll().await.is_ok() {}
                }).await;
                return;
            }
            _ = tick.tick() => {
                if connected {
                    last_state = publish_state(&client, &topics, &node, &last_state, true);
                }
            }
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if !connected {
                        tracing::info!(broker = %format!("{host}:{port}"), base = %topics.base, "Home Assistant: publishing the node's state");
                    }
                    connected = true;
                    let _ = client.try_subscribe(topics.ha_status(), QoS::AtLeastOnce);
                    if settings.switches {
                        for switch in Switch::ALL {
                            let _ = client.try_subscribe(topics.command(switch), QoS::AtLeastOnce);
                        }
                    }
                    announce(&client, &topics, &node, settings.switches);
                    last_state = publish_state(&client, &topics, &node, &Value::Null, true);
                }
                Ok(Event::Incoming(Packet::Publish(message))) => {
                    let payload = String::from_utf8_lossy(&message.payload[..message.payload.len().min(64)]).trim().to_string();
                    if message.topic == topics.ha_status() {
                        if payload == "online" {
                            announce(&client, &topics, &node, settings.switches);
                            last_state = publish_state(&client, &topics, &node, &Value::Null, true);
                        }
                        continue;
                    }
                    let Some(switch) = Switch::ALL.into_iter().find(|s| message.topic == topics.command(*s)) else {
                        continue;
                    };
                    if !settings.switches {
                        continue;
                    }
                    let on = match payload.as_str() {
                        "ON" => true,
                        "OFF" => false,
                        other => {
                            tracing::warn!(switch = switch.key(), payload = %crate::text::brief(other), "Home Assistant: a switch command that is neither ON nor OFF was ignored");
                            continue;
                        }
                    };
                    if node.switches.set(switch, on) {
                        tracing::info!(switch = switch.key(), on, "Home Assistant: the operator flipped a switch");
                    }
                    publish_switch(&client, &topics, &node, switch);
                    last_state = publish_state(&client, &topics, &node, &last_state, true);
                }
                Ok(_) => {
                    // Changes go out at once, between the periodic updates.
                    if connected {
                        last_state = publish_state(&client, &topics, &node, &last_state, false);
                    }
                }
                Err(error) => {
                    if connected || !warned {
                        tracing::warn!(error = %crate::text::brief(&error), "Home Assistant: the MQTT broker does not answer; retrying");
                        warned = true;
                    }
                    connected = false;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }
}

fn announce(client: &AsyncClient, topics: &Topics, node: &Node, switches: bool) {
    for (topic, config) in discovery(topics, switches) {
        let _ = client.try_publish(topic, QoS::AtLeastOnce, true, config.to_string());
    }
    let _ = client.try_publish(topics.availability(), QoS::AtLeastOnce, true, "online");
    if switches {
        for switch in Switch::ALL {
            publish_switch(client, topics, node, switch);
        }
    }
}

fn publish_switch(client: &AsyncClient, topics: &Topics, node: &Node, switch: Switch) {
    let state = if node.switches.is_on(switch) {
        "ON"
    } else {
        "OFF"
    };
    let _ = client.try_publish(topics.switch_state(switch), QoS::AtLeastOnce, true, state);
}

/// Publishes the state when it changed (or always, when `force`); returns what is published.
fn publish_state(
    client: &AsyncClient,
    topics: &Topics,
    node: &Node,
    last: &Value,
    force: bool,
) -> Value {
    let state = state_json(node);
    if force || state_shape(&state) != state_shape(last) {
        let _ = client.try_publish(topics.state(), QoS::AtLeastOnce, true, state.to_string());
    }
    state
}

/// What makes a change worth publishing at once: the bid, the decision, the running tasks
/// and the switches (not each wobble of PV).
fn state_shape(state: &Value) -> (Value, Value, Value, Value, Value) {
    (
        state["bid_open"].clone(),
        state["decision"].clone(),
        state["running_tasks"].clone(),
        state["stop_bidding"].clone(),
        state["energy_pause"].clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HomeAssistantSettings {
        HomeAssistantSettings {
            broker: "127.0.0.1:1883".into(),
            username: String::new(),
            password_file: Default::default(),
            discovery_prefix: "homeassistant".into(),
            topic: "pew".into(),
            publish_every_s: 30.0,
            switches: true,
        }
    }

    #[test]
    fn discovery_makes_one_device_with_sensors_and_the_switches_when_offered() {
        let topics = Topics::new(&settings(), "0xAbCd000000000000000000000000000000000001");
        assert_eq!(
            topics.node_id,
            "pew_abcd000000000000000000000000000000000001"
        );
        assert_eq!(topics.state(), format!("pew/{}/state", topics.node_id));
        let configs = discovery(&topics, true);
        assert_eq!(configs.len(), 7);
        for (topic, config) in &configs {
            assert!(topic.starts_with("homeassistant/"), "{topic}");
            assert!(topic.ends_with("/config"), "{topic}");
            assert_eq!(config["device"]["identifiers"][0], topics.node_id);
            assert_eq!(config["availability_topic"], topics.availability());
            assert!(
                config["unique_id"]
                    .as_str()
                    .unwrap()
                    .starts_with(&topics.node_id)
            );
        }
        let battery = &configs
            .iter()
            .find(|(t, _)| t.ends_with("/battery/config"))
            .unwrap()
            .1;
        assert_eq!(battery["device_class"], "battery");
        assert_eq!(battery["unit_of_measurement"], "%");
        let stop = &configs
            .iter()
            .find(|(t, _)| {
                t == &format!(
                    "homeassistant/switch/{}/stop_bidding/config",
                    topics.node_id
                )
            })
            .unwrap()
            .1;
        assert_eq!(stop["command_topic"], topics.command(Switch::StopBidding));
        assert_eq!(
            discovery(&topics, false).len(),
            5,
            "no switches unless offered"
        );
    }
}

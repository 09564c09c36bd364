//! Reads PV power, battery state of charge and load from an MQTT broker that the operator's
//! solar system already publishes to: Victron Venus OS, OpenDTU, evcc, Home Assistant's
//! statestream, or topics of their own.
//!
//! Where the presets come from (read 2026-12-02):
//! - Victron: `victronenergy/dbus-flashmq` README and `src/state.cpp` (topics
//!   `N/<portal ID>/<service>/<instance>/<path>`, payload `{"value": ...}`, nothing published
//!   unless a keep-alive reaches `R/<portal ID>/keepalive` at least every 60 s);
//!   `victronenergy/dbus-systemcalc-py` (system paths `/Dc/Pv/Power`, `/Dc/Battery/Soc`,
//!   `/Dc/System/Power`).
//! - OpenDTU: opendtu.solar "MQTT topics" (plain numbers; default prefix `solar/`;
//!   `<prefix>ac/power` is the sum of the inverters' AC power).
//! - evcc: docs.evcc.io "MQTT API" and `evcc-io/evcc` `core/keys/site.go` (plain retained
//!   values under `evcc/site/`: `pvPower`, `homePower`, `battery/soc`; before 0.301
//!   `batterySoc`, so both are read).
//! - Home Assistant: the `mqtt_statestream` integration (`<base>/<domain>/<object_id>/state`,
//!   plain states, `unknown` and `unavailable` when it has none).
//!
//! A background thread keeps the connection (rumqttc reconnects) and the latest value of each
//! topic with the time it came; [`EnergySource::read`] takes those younger than
//! `stale_after_s`. A payload that is not a number is rejected and counted; a silent broker or
//! stale topics give no reading, and no reading means no work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use crate::clock::unix_now;
use crate::config::{MqttPreset, MqttSettings};
use crate::energy::sample::{EnergySource, RejectCounter, Sample, SourceError};

/// The largest payload taken (a reading is a number; anything longer is not one).
const MAX_PAYLOAD: usize = 1024;
/// How long connecting waits for the first values.
const FIRST_VALUES_WAIT: Duration = Duration::from_secs(5);
/// How often a Victron GX device is kept publishing (its keep-alive lasts 60 s).
const VICTRON_KEEPALIVE: Duration = Duration::from_secs(30);

/// What to subscribe to and how to read it, resolved from the settings and the preset.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttTopics {
    /// PV power topics (W); the freshest value counts.
    pub pv: Vec<String>,
    /// Battery state-of-charge topics (%).
    pub soc: Vec<String>,
    /// Load topics (W).
    pub load: Vec<String>,
    /// The JSON field holding the value, when payloads are JSON.
    pub json_field: Option<String>,
    /// A keep-alive to publish every 30 s, and a first one (topic, regular payload, first).
    pub keepalive: Option<(String, String, String)>,
}

impl MqttTopics {
    /// Resolves the preset with the settings' own topics on top; a setting that the preset
    /// needs and that is missing is an error naming it.
    pub fn resolve(settings: &MqttSettings) -> Result<Self, String> {
        let own = |topic: &str| (!topic.trim().is_empty()).then(|| vec![topic.trim().to_string()]);
        let field = (!settings.json_field.trim().is_empty()).then(|| settings.json_field.clone());
        let prefix = settings.prefix.trim();
        let mut topics = match settings.preset {
            MqttPreset::Victron => {
                let id = settings.portal_id.trim();
                if id.is_empty() || id.contains(['/', '+', '#']) {
                    return Err(
                        "energy.mqtt.portal_id must be the GX device's VRM portal ID (Settings > \
                         VRM online portal), without / + or #"
                            .into(),
                    );
                }
                let system = |path: &str| vec![format!("N/{id}/system/0/{path}")];
                MqttTopics {
                    pv: system("Dc/Pv/Power"),
                    soc: system("Dc/Battery/Soc"),
                    // The system's DC loads are more than the node: its load comes from a
                    // topic of the operator's own, if any.
                    load: vec![],
                    json_field: Some("value".into()),
                    keepalive: Some((
                        format!("R/{id}/keepalive"),
                        r#"{"keepalive-options":["suppress-republish"]}"#.into(),
                        String::new(),
                    )),
                }
            }
            MqttPreset::Opendtu => {
                let prefix = if prefix.is_empty() { "solar/" } else { prefix };
                MqttTopics {
                    pv: vec![format!("{prefix}ac/power")],
                    soc: vec![],
                    load: vec![],
                    json_field: None,
                    keepalive: None,
                }
            }
            MqttPreset::Evcc => {
                let prefix = if prefix.is_empty() { "evcc" } else { prefix };
                let prefix = prefix.trim_end_matches('/');
                MqttTopics {
                    pv: vec![format!("{prefix}/site/pvPower")],
                    soc: vec![
                        format!("{prefix}/site/battery/soc"),
                        format!("{prefix}/site/batterySoc"),
                    ],
                    // homePower is the whole house, not the node.
                    load: vec![],
                    json_field: None,
                    keepalive: None,
                }
            }
            MqttPreset::HomeAssistant | MqttPreset::Custom => MqttTopics {
                pv: vec![],
                soc: vec![],
                load: vec![],
                json_field: None,
                keepalive: None,
            },
        };
        if let Some(t) = own(&settings.pv_topic) {
            topics.pv = t;
        }
        if let Some(t) = own(&settings.soc_topic) {
            topics.soc = t;
        }
        if let Some(t) = own(&settings.load_topic) {
            topics.load = t;
        }
        if field.is_some() {
            topics.json_field = field;
        }
        if topics.pv.is_empty() && topics.soc.is_empty() {
            return Err(format!(
                "energy.mqtt: the {} preset needs pv_topic or soc_topic (for Home Assistant's \
                 statestream, e.g. \"homeassistant/sensor/pv_power/state\")",
                settings.preset.as_str()
            ));
        }
        for topic in topics.pv.iter().chain(&topics.soc).chain(&topics.load) {
            if topic.contains(['+', '#']) || topic.len() > 256 {
                return Err(format!(
                    "energy.mqtt: topic {} must name one topic (no + or #, at most 256 bytes)",
                    crate::text::brief(topic)
                ));
            }
        }
        Ok(topics)
    }
}

/// Reads one payload: a plain number, or JSON with the number in `json_field`. `Ok(None)` is
/// "no value" (empty, `null`, Home Assistant's `unknown` and `unavailable`).
pub fn parse_payload(payload: &[u8], json_field: Option<&str>) -> Result<Option<f64>, String> {
    if payload.len() > MAX_PAYLOAD {
        return Err(format!(
            "a payload of {} bytes is no reading",
            payload.len()
        ));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|_| format!("payload {} is not text", crate::text::quote_bytes(payload)))?
        .trim();
    if text.is_empty() || matches!(text, "null" | "unknown" | "unavailable" | "none") {
        return Ok(None);
    }
    let number = |value: &serde_json::Value| -> Result<Option<f64>, String> {
        match value {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Number(n) => Ok(n.as_f64()),
            serde_json::Value::String(s) => parse_payload(s.as_bytes(), None),
            _ => Err(format!(
                "value {} is not a number",
                crate::text::brief(text)
            )),
        }
    };
    let value =
        match json_field {
            Some(field) => {
                let json: serde_json::Value = serde_json::from_str(text)
                    .map_err(|_| format!("payload {} is not JSON", crate::text::brief(text)))?;
                let inner = json.get(field).ok_or_else(|| {
                    format!(
                        "payload {} has no field `{field}`",
                        crate::text::brief(text)
                    )
                })?;
                number(inner)?
            }
            None => match text.parse::<f64>() {
                Ok(v) => Some(v),
                // A quoted number (Home Assistant attributes come JSON-encoded).
                Err(_) => number(&serde_json::from_str(text).map_err(|_| {
                    format!("payload {} is not a number", crate::text::brief(text))
                })?)?,
            },
        };
    match value {
        Some(v) if !v.is_finite() => Err(format!(
            "payload {} is not finite",
            crate::text::brief(text)
        )),
        other => Ok(other),
    }
}

#[derive(Debug, Default)]
struct Latest {
    /// topic → (arrival time, value).
    values: std::collections::HashMap<String, (f64, f64)>,
    /// Payloads the thread refused since the last read.
    refused: Vec<String>,
    /// The last connection error, for the "no reading" message.
    last_error: Option<String>,
    connected: bool,
}

/// The MQTT energy source.
pub struct MqttSource {
    name: String,
    topics: MqttTopics,
    stale_after_s: f64,
    latest: Arc<Mutex<Latest>>,
    stop: Arc<AtomicBool>,
    client: Client,
    rejected: RejectCounter,
}

impl MqttSource {
    /// Connects in the background to the broker in `settings` (the first reading may take a
    /// moment: until values arrive, reads say so).
    pub fn connect(settings: &MqttSettings) -> anyhow::Result<Self> {
        let topics = MqttTopics::resolve(settings).map_err(anyhow::Error::msg)?;
        let (host, port) = split_broker(&settings.broker)?;
        // Unique per connection: two nodes on one broker (both pid 1 in containers) must not
        // kick each other off.
        let client_id = format!("pew-{:08x}", rand::random::<u32>());
        let mut options = MqttOptions::new(client_id, host.clone(), port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(16 * 1024, 16 * 1024);
        if !settings.username.is_empty() {
            let password = if settings.password_file.as_os_str().is_empty() {
                String::new()
            } else {
                crate::wallet::read_password_file(&settings.password_file)?
            };
            options.set_credentials(settings.username.clone(), password);
        }
        let (client, connection) = Client::new(options, 64);
        let latest = Arc::new(Mutex::new(Latest::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let subscribe: Vec<String> = topics
            .pv
            .iter()
            .chain(&topics.soc)
            .chain(&topics.load)
            .cloned()
            .collect();
        {
            let (latest, stop, client, keepalive) = (
                latest.clone(),
                stop.clone(),
                client.clone(),
                topics.keepalive.clone(),
            );
            let field = topics.json_field.clone();
            std::thread::Builder::new()
                .name("pew-mqtt".into())
                .spawn(move || {
                    listen(
                        connection, client, subscribe, field, keepalive, latest, stop,
                    )
                })?;
        }
        if let Some((topic, payload, _)) = topics.keepalive.clone() {
            let (client, stop, latest) = (client.clone(), stop.clone(), latest.clone());
            std::thread::Builder::new()
                .name("pew-mqtt-keepalive".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(VICTRON_KEEPALIVE);
                        // Only while connected: requests queued during an outage would fill
                        // the client's channel and crowd out the resubscription.
                        let connected = latest.lock().map(|l| l.connected).unwrap_or(false);
                        if connected {
                            let _ =
                                client.try_publish(&topic, QoS::AtMostOnce, false, payload.clone());
                        }
                    }
                })?;
        }
        let source = Self {
            name: format!("mqtt:{host}:{port}"),
            topics,
            stale_after_s: if settings.stale_after_s.is_finite() {
                settings.stale_after_s.clamp(1.0, 86_400.0)
            } else {
                120.0
            },
            latest,
            stop,
            client,
            rejected: RejectCounter::default(),
        };
        // Retained values (evcc, OpenDTU, the statestream) come right after the subscription
        // and a GX device's after the first keep-alive: wait a little for them, so the first
        // read is a reading.
        let started = std::time::Instant::now();
        while started.elapsed() < FIRST_VALUES_WAIT {
            {
                // Every kind that is configured, not just one: a first reading with PV and no
                // state of charge would be planned on the estimate's initial charge.
                let latest = source.lock();
                let has = |topics: &[String]| {
                    topics.is_empty() || topics.iter().any(|t| latest.values.contains_key(t))
                };
                if latest.connected && has(&source.topics.pv) && has(&source.topics.soc) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(source)
    }

    /// Whether the broker has accepted the connection (for `pew energy setup` and tests).
    pub fn connected(&self) -> bool {
        self.lock().connected
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The freshest value among `topics`, if one is younger than the staleness limit.
    fn fresh(&self, latest: &Latest, topics: &[String], now: f64) -> Option<f64> {
        topics
            .iter()
            .filter_map(|t| latest.values.get(t))
            .filter(|(at, _)| now - at <= self.stale_after_s)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, v)| *v)
    }
}

impl Drop for MqttSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

impl EnergySource for MqttSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read(&mut self) -> Result<Sample, SourceError> {
        let now = unix_now();
        let (sample, refused, error, connected) = {
            let mut latest = self.lock();
            let mut sample = Sample::at(now);
            sample.pv_w = self.fresh(&latest, &self.topics.pv, now);
            sample.battery_soc = self
                .fresh(&latest, &self.topics.soc, now)
                .map(|pct| pct / 100.0);
            sample.load_w = self.fresh(&latest, &self.topics.load, now);
            (
                sample,
                std::mem::take(&mut latest.refused),
                latest.last_error.clone(),
                latest.connected,
            )
        };
        let name = self.name.clone();
        if let Some(why) = refused.into_iter().next_back() {
            return Err(self.rejected.reject(&name, why));
        }
        if sample.pv_w.is_none() && sample.battery_soc.is_none() {
            let all: Vec<&str> = self
                .topics
                .pv
                .iter()
                .chain(&self.topics.soc)
                .map(String::as_str)
                .collect();
            return Err(SourceError::Unreachable {
                source_name: name,
                what: match (connected, error) {
                    (false, Some(e)) => format!("the broker does not answer ({e})"),
                    (false, None) => "not connected to the broker yet".into(),
                    (true, _) => format!(
                        "no value younger than {:.0} s on {}",
                        self.stale_after_s,
                        crate::text::brief(all.join(", "))
                    ),
                },
            });
        }
        if let Some(why) = sample.implausible() {
            return Err(self.rejected.reject(&name, why));
        }
        Ok(sample)
    }

    fn rejected(&self) -> u64 {
        self.rejected.count()
    }
}

fn listen(
    mut connection: rumqttc::Connection,
    client: Client,
    subscribe: Vec<String>,
    field: Option<String>,
    keepalive: Option<(String, String, String)>,
    latest: Arc<Mutex<Latest>>,
    stop: Arc<AtomicBool>,
) {
    let lock = || latest.lock().unwrap_or_else(|p| p.into_inner());
    for notification in connection.iter() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match notification {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                {
                    let mut l = lock();
                    l.connected = true;
                    l.last_error = None;
                }
                // A clean session keeps no subscriptions: every (re)connect subscribes again.
                for topic in &subscribe {
                    if let Err(error) = client.try_subscribe(topic, QoS::AtMostOnce) {
                        tracing::warn!(%error, topic = %crate::text::brief(topic), "MQTT: cannot subscribe; no readings from that topic");
                    }
                }
                if let Some((topic, _, first)) = &keepalive {
                    let _ = client.try_publish(topic, QoS::AtMostOnce, false, first.clone());
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if !subscribe.contains(&publish.topic) {
                    continue; // a broker may send more; only the configured topics are kept
                }
                let parsed = parse_payload(&publish.payload, field.as_deref());
                let mut l = lock();
                match parsed {
                    Ok(Some(value)) => {
                        l.values.insert(publish.topic.clone(), (unix_now(), value));
                    }
                    Ok(None) => {
                        l.values.remove(&publish.topic);
                    }
                    Err(why) => {
                        if l.refused.len() < 16 {
                            l.refused
                                .push(format!("{}: {why}", crate::text::brief(&publish.topic)));
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                {
                    let mut l = lock();
                    l.connected = false;
                    l.last_error = Some(crate::text::brief(&e));
                }
                // rumqttc reconnects on the next poll; not in a tight loop.
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

/// Splits `host:port` (port 1883 when absent; `[v6]:port` too), naming the setting when it is not one.
pub fn split_broker(broker: &str) -> anyhow::Result<(String, u16)> {
    let broker = broker.trim();
    let (host, port) = match broker.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => (
            host.trim_matches(['[', ']']),
            port.parse::<u16>().map_err(|_| {
                anyhow::anyhow!(
                    "broker {}: the port is not a number",
                    crate::text::brief(broker)
                )
            })?,
        ),
        _ if !broker.is_empty() && !broker.contains(':') => (broker, 1883),
        _ => anyhow::bail!(
            "broker {} is not host:port (e.g. 192.168.1.20:1883)",
            crate::text::brief(broker)
        ),
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(preset: MqttPreset) -> MqttSettings {
        MqttSettings {
            broker: "127.0.0.1:1883".into(),
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

    #[test]
    fn presets_name_their_projects_topics_and_payloads() {
        let mut victron = settings(MqttPreset::Victron);
        assert!(
            MqttTopics::resolve(&victron)
                .unwrap_err()
                .contains("portal_id")
        );
        victron.portal_id = "c0619ab1c2d3".into();
        let topics = MqttTopics::resolve(&victron).unwrap();
        assert_eq!(topics.pv, ["N/c0619ab1c2d3/system/0/Dc/Pv/Power"]);
        assert_eq!(topics.soc, ["N/c0619ab1c2d3/system/0/Dc/Battery/Soc"]);
        assert_eq!(topics.json_field.as_deref(), Some("value"));
        assert_eq!(topics.keepalive.unwrap().0, "R/c0619ab1c2d3/keepalive");

        let dtu = MqttTopics::resolve(&settings(MqttPreset::Opendtu)).unwrap();
        assert_eq!(dtu.pv, ["solar/ac/power"]);
        assert!(dtu.soc.is_empty() && dtu.json_field.is_none());

        let evcc = MqttTopics::resolve(&settings(MqttPreset::Evcc)).unwrap();
        assert_eq!(evcc.pv, ["evcc/site/pvPower"]);
        assert_eq!(evcc.soc, ["evcc/site/battery/soc", "evcc/site/batterySoc"]);
        assert!(evcc.load.is_empty(), "the house's power is not the node's");

        let mut ha = settings(MqttPreset::HomeAssistant);
        assert!(MqttTopics::resolve(&ha).unwrap_err().contains("pv_topic"));
        ha.pv_topic = "homeassistant/sensor/pv_power/state".into();
        assert_eq!(MqttTopics::resolve(&ha).unwrap().pv, [ha.pv_topic.clone()]);
        ha.soc_topic = "homeassistant/sensor/#".into();
        assert!(MqttTopics::resolve(&ha).unwrap_err().contains("no + or #"));
    }

    #[test]
    fn payloads_are_numbers_or_json_fields_and_the_rest_is_refused() {
        assert_eq!(parse_payload(b" 42.5\n", None), Ok(Some(42.5)));
        assert_eq!(parse_payload(b"\"17\"", None), Ok(Some(17.0)));
        assert_eq!(
            parse_payload(br#"{"value": 936}"#, Some("value")),
            Ok(Some(936.0))
        );
        for none in [&b""[..], b"null", b"unknown", b"unavailable"] {
            assert_eq!(parse_payload(none, None), Ok(None));
        }
        assert_eq!(
            parse_payload(br#"{"value": null}"#, Some("value")),
            Ok(None)
        );
        assert!(
            parse_payload(b"on", None)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse_payload(br#"{"v": 1}"#, Some("value"))
                .unwrap_err()
                .contains("no field")
        );
        assert!(
            parse_payload(&[0xff, 0xfe], None)
                .unwrap_err()
                .contains("not text")
        );
        assert!(
            parse_payload(&[b'1'; 4000], None)
                .unwrap_err()
                .contains("4000 bytes")
        );
        assert!(
            parse_payload(b"NaN", None)
                .unwrap_err()
                .contains("not finite")
        );
    }

    #[test]
    fn brokers_are_host_and_port() {
        assert_eq!(
            split_broker("gx.local:1883").unwrap(),
            ("gx.local".into(), 1883)
        );
        assert_eq!(split_broker("10.0.0.5").unwrap(), ("10.0.0.5".into(), 1883));
        assert_eq!(split_broker("[::1]:1884").unwrap(), ("::1".into(), 1884));
        assert!(split_broker("host:port").is_err());
        assert!(split_broker("").is_err());
    }
}

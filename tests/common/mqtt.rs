//! A real MQTT broker for a test: Debian's Mosquitto on a free port of 127.0.0.1 with its own
//! config in a temp folder, killed when dropped; and a publisher that waits for the broker's
//! acknowledgement.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
use tempfile::TempDir;

/// A running Mosquitto.
pub struct Broker {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: TempDir,
}

impl Broker {
    /// Starts one and waits until it accepts connections.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("mosquitto is not installed: run scripts/setup (Debian's mosquitto)");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker {
            child,
            port,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Publishes `payload` on `topic` (retained when asked) and waits for the broker's PubAck.
    /// Runs on a thread of its own: the blocking client may not run inside a test's runtime.
    pub fn publish(&self, topic: &str, payload: &str, retain: bool) {
        let (port, topic, payload) = (self.port, topic.to_string(), payload.to_string());
        std::thread::spawn(move || publish_now(port, &topic, &payload, retain))
            .join()
            .unwrap();
    }
}

fn publish_now(port: u16, topic: &str, payload: &str, retain: bool) {
    let mut options = MqttOptions::new(format!("test-pub-{}", rand_suffix()), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(options, 10);
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
        .unwrap();
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("publishing to mosquitto failed: {e}"),
        }
    }
    client.disconnect().unwrap();
    for event in connection.iter() {
        if matches!(event, Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)) {
            break;
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::process::id() as u64 * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every message the broker passes on, from the moment `listen` subscribed to `#`.
pub struct Recorder {
    messages: std::sync::Arc<std::sync::Mutex<Vec<(String, String, bool)>>>,
}

impl Recorder {
    /// Subscribes to everything on `broker` (retained messages included) and records.
    pub fn listen(broker: &Broker) -> Self {
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (kept, port) = (messages.clone(), broker.port);
        let (ready, subscribed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut options =
                MqttOptions::new(format!("test-rec-{}", rand_suffix()), "127.0.0.1", port);
            options.set_max_packet_size(256 * 1024, 256 * 1024);
            let (client, mut connection) = Client::new(options, 100);
            client.subscribe("#", QoS::AtLeastOnce).unwrap();
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => kept.lock().unwrap().push((
                        p.topic.clone(),
                        String::from_utf8_lossy(&p.payload).to_string(),
                        p.retain,
                    )),
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        subscribed.recv_timeout(Duration::from_secs(10)).unwrap();
        Recorder { messages }
    }

    /// The last payload seen on `topic`.
    pub fn last(&self, topic: &str) -> Option<String> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(t, _, _)| t == topic)
            .map(|(_, p, _)| p.clone())
    }

    /// Waits up to `seconds` for a payload on `topic` that `wanted` accepts.
    pub fn wait_for(&self, topic: &str, seconds: u64, wanted: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            if let Some(payload) = self.last(topic)
                && wanted(&payload)
            {
                return payload;
            }
            assert!(
                started.elapsed() < Duration::from_secs(seconds),
                "nothing wanted on {topic}; last: {:?}",
                self.last(topic)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

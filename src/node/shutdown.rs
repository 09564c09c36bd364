//! One way for `pew run` to end. SIGTERM, SIGINT and the energy module's power-off request
//! (a low-voltage warning, or nothing to do with a board to wake the Pi later) all turn
//! the same switch; the loop, the start-up waits, the HTTP API and every worker see it. A
//! worker that sees it stops at the next step boundary, where the journal already holds its
//! task, so the task resumes at that step after the next start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::admission::AdmissionGate;

/// The node's stop switch, cheap to clone. Once on, it stays on.
#[derive(Debug, Clone)]
pub struct Shutdown {
    switch: Arc<tokio::sync::watch::Sender<bool>>,
    power_off: Arc<Mutex<Option<String>>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A switch that only [`Shutdown::stop`] turns on.
    pub fn new() -> Self {
        Self {
            switch: Arc::new(tokio::sync::watch::channel(false).0),
            power_off: Arc::default(),
        }
    }

    /// A switch SIGINT and SIGTERM turn on. Call it first thing, so that no signal meets
    /// the default action (which would kill the node with its bid open).
    pub fn on_signals() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let shutdown = Self::new();
        let switch = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("stop signal received");
            switch.stop();
        });
        Ok(shutdown)
    }

    /// Turns the switch on when `gate` asks to power off (looked at twice a second), keeping
    /// its reason for [`Shutdown::power_off_reason`].
    pub fn follow_power_off(&self, gate: impl AdmissionGate + 'static) {
        let switch = self.clone();
        tokio::spawn(async move {
            loop {
                if let Some(reason) = gate.power_off_reason() {
                    tracing::warn!(%reason, "energy: stopping the node to power off");
                    switch.request_power_off(reason);
                    return;
                }
                if switch.requested() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Stops the node and asks for the machine to be powered off once it has stopped.
    pub fn request_power_off(&self, reason: String) {
        self.power_off
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(reason);
        self.stop();
    }

    /// Turns the switch on.
    pub fn stop(&self) {
        self.switch.send_replace(true);
    }

    /// Whether the switch is on.
    pub fn requested(&self) -> bool {
        *self.switch.borrow()
    }

    /// Resolves once the switch is on.
    pub async fn wait(&self) {
        let mut seen = self.switch.subscribe();
        let _ = seen.wait_for(|on| *on).await;
    }

    /// Why the machine is to be powered off, when the energy module asked for it.
    pub fn power_off_reason(&self) -> Option<String> {
        self.power_off
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{Decision, TaskEstimate};

    #[tokio::test]
    async fn a_stop_reaches_every_clone_and_stays() {
        let shutdown = Shutdown::new();
        let seen = shutdown.clone();
        assert!(!seen.requested());
        let waiting = tokio::spawn(async move { seen.wait().await });
        shutdown.stop();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiter wakes")
            .unwrap();
        assert!(shutdown.requested());
        shutdown.wait().await; // already on: returns at once
        assert_eq!(
            shutdown.power_off_reason(),
            None,
            "a plain stop powers nothing off"
        );
    }

    struct Collapsing;

    impl AdmissionGate for Collapsing {
        fn admit(&self, _: &TaskEstimate, _: u64) -> Decision {
            Decision::no("test")
        }
        fn power_off_reason(&self) -> Option<String> {
            Some("battery near cut-off".into())
        }
    }

    #[tokio::test]
    async fn a_gate_that_asks_to_power_off_stops_the_node_with_its_reason() {
        let shutdown = Shutdown::new();
        shutdown.follow_power_off(Collapsing);
        tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
            .await
            .expect("the power-off request stops the node");
        assert_eq!(
            shutdown.power_off_reason().as_deref(),
            Some("battery near cut-off")
        );
    }
}

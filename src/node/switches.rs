//! The operator's two switches, flipped from Home Assistant over MQTT: `node.stop_bidding`
//! (no bid, no new match; running work finishes) and `energy.pause` (running apps frozen, as
//! under the battery reserve). Both start off and live only as long as the process: a restart
//! is a fresh start, and the broker's own authentication says who may flip them.

use std::sync::atomic::{AtomicBool, Ordering};

/// The switches' state.
#[derive(Debug, Default)]
pub struct OperatorSwitches {
    stop_bidding: AtomicBool,
    pause: AtomicBool,
}

/// Which switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// `node.stop_bidding`.
    StopBidding,
    /// `energy.pause`.
    Pause,
}

impl Switch {
    /// Both, in the order they are published.
    pub const ALL: [Switch; 2] = [Switch::StopBidding, Switch::Pause];

    /// Its name in topics and entity ids.
    pub fn key(self) -> &'static str {
        match self {
            Switch::StopBidding => "stop_bidding",
            Switch::Pause => "energy_pause",
        }
    }

    /// Its name in Home Assistant.
    pub fn label(self) -> &'static str {
        match self {
            Switch::StopBidding => "Stop bidding",
            Switch::Pause => "Pause apps",
        }
    }
}

impl OperatorSwitches {
    /// Sets a switch; true when it changed.
    pub fn set(&self, switch: Switch, on: bool) -> bool {
        let flag = match switch {
            Switch::StopBidding => &self.stop_bidding,
            Switch::Pause => &self.pause,
        };
        flag.swap(on, Ordering::SeqCst) != on
    }

    /// Whether a switch is on.
    pub fn is_on(&self, switch: Switch) -> bool {
        match switch {
            Switch::StopBidding => self.stop_bidding.load(Ordering::SeqCst),
            Switch::Pause => self.pause.load(Ordering::SeqCst),
        }
    }

    /// Why the node must not bid or match now, if the operator said so.
    pub fn stop_reason(&self) -> Option<String> {
        self.is_on(Switch::StopBidding)
            .then(|| "the operator stopped bidding (node.stop_bidding is on)".to_string())
    }

    /// Why running apps must be frozen now, if the operator said so.
    pub fn pause_reason(&self) -> Option<String> {
        self.is_on(Switch::Pause)
            .then(|| "the operator paused the apps (energy.pause is on)".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_start_off_and_report_changes_once() {
        let switches = OperatorSwitches::default();
        assert!(switches.stop_reason().is_none() && switches.pause_reason().is_none());
        assert!(switches.set(Switch::StopBidding, true));
        assert!(!switches.set(Switch::StopBidding, true), "no change");
        assert!(switches.stop_reason().unwrap().contains("stop_bidding"));
        assert!(switches.pause_reason().is_none());
        assert!(switches.set(Switch::Pause, true));
        assert!(switches.pause_reason().unwrap().contains("energy.pause"));
        assert!(switches.set(Switch::StopBidding, false));
        assert!(switches.stop_reason().is_none());
    }
}

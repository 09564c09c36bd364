//! The node loop's pulse: rounds run, rounds that failed, when the last one completed, and the
//! gate's last answer on bidding. The loop writes it; the HTTP API, the metrics and systemd's
//! watchdog read it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::admission::Decision;

/// What the node loop reports about itself, for `/health` and the metrics.
#[derive(Debug, Default)]
pub struct Heartbeat {
    rounds: AtomicU64,
    failed_rounds: AtomicU64,
    last_round_ms: AtomicU64,
    bid_decision: std::sync::Mutex<Option<Decision>>,
}

impl Heartbeat {
    /// Records the gate's answer to this round's bid question.
    pub fn bid_decided(&self, decision: &Decision) {
        if let Ok(mut slot) = self.bid_decision.lock() {
            *slot = Some(decision.clone());
        }
    }

    /// The gate's last answer on bidding.
    pub fn bid_decision(&self) -> Option<Decision> {
        self.bid_decision.lock().ok().and_then(|d| d.clone())
    }

    /// Records one finished round of the node loop, and whether it completed. Only a
    /// completed round counts for health: a node whose every round fails (its RPC node frozen)
    /// is not doing its work, however busy its loop.
    pub fn round(&self, completed: bool) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        if !completed {
            self.failed_rounds.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now_ms = (crate::clock::unix_now() * 1000.0) as u64;
        self.last_round_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Rounds so far, completed or not.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Rounds that ended in an error (retried at the next round).
    pub fn failed_rounds(&self) -> u64 {
        self.failed_rounds.load(Ordering::Relaxed)
    }

    /// When the last completed round ended, in Unix milliseconds (0 before the first).
    pub fn last_round_ms(&self) -> u64 {
        self.last_round_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_rounds_do_not_count_as_a_sign_of_life() {
        let heartbeat = Heartbeat::default();
        heartbeat.round(false);
        heartbeat.round(false);
        assert_eq!(heartbeat.rounds(), 2);
        assert_eq!(heartbeat.failed_rounds(), 2);
        assert_eq!(heartbeat.last_round_ms(), 0, "never completed");
        heartbeat.round(true);
        assert!(heartbeat.last_round_ms() > 0);
    }
}

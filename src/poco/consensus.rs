//! PoCo's consensus arithmetic (PROTOCOL.md §5.2), pure: how much a worker's contribution
//! weighs, when a result group reaches consensus, and so which trust levels one worker can
//! reach alone. Also the task and contribution states the hub reports.

/// Contribution states as `viewContribution` returns them.
pub mod contribution_status {
    /// No contribution.
    pub const UNSET: u8 = 0;
    /// Contributed, not revealed.
    pub const CONTRIBUTED: u8 = 1;
    /// Revealed and matching the consensus.
    pub const PROVED: u8 = 2;
    /// Rejected (its group lost, or the task was reopened).
    pub const REJECTED: u8 = 3;
}

/// Task status values (`TaskStatusEnum`).
pub mod task_status {
    /// Not initialized.
    pub const UNSET: u8 = 0;
    /// Initialized, taking contributions.
    pub const ACTIVE: u8 = 1;
    /// Consensus reached, taking reveals.
    pub const REVEALING: u8 = 2;
    /// Finalized.
    pub const COMPLETED: u8 = 3;
    /// Claimed after the final deadline.
    pub const FAILED: u8 = 4;

    /// The status's name.
    pub fn name(status: u8) -> &'static str {
        match status {
            UNSET => "UNSET",
            ACTIVE => "ACTIVE",
            REVEALING => "REVEALING",
            COMPLETED => "COMPLETED",
            FAILED => "FAILED",
            _ => "UNKNOWN",
        }
    }
}

/// The weight of a contribution from a worker with `score`: `max(score / 3, 3) - 1`.
pub fn weight(score: u64) -> u64 {
    (score / 3).max(3) - 1
}

/// Whether a result group of value `group` reaches consensus at `trust` with the task's
/// running `total` (both as PoCo keeps them).
pub fn reached(group: u128, total: u128, trust: u64) -> bool {
    let trust = u128::from(trust.max(1));
    group * trust > total * (trust - 1)
}

/// The highest trust one worker with `score` reaches alone: its single contribution makes
/// `group = w`, `total = 1 + w`, and `w·T > (1 + w)(T − 1)` holds exactly while `T ≤ w`.
pub fn max_trust_alone(score: u64) -> u64 {
    weight(score)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PoCo's update for one more agreeing contribution of `w` to group `g` (total follows).
    fn add(group: u128, total: u128, w: u128) -> (u128, u128) {
        let delta = group.max(1) * w - group;
        (group + delta, total + delta)
    }

    fn contributions_needed(score: u64, trust: u64) -> usize {
        let (mut group, mut total) = (0u128, 1u128);
        for n in 1..=20 {
            (group, total) = add(group, total, u128::from(weight(score)));
            if reached(group, total, trust) {
                return n;
            }
        }
        usize::MAX
    }

    #[test]
    fn agreeing_contributions_needed_match_the_protocol_table() {
        // PROTOCOL.md §5.2: fresh workers: trust 1-2 -> 1, 3-4 -> 2, 5 -> 3, 10 -> 4, 20 -> 5,
        // 50 -> 6, 100 -> 7; score >= 30: trust <= 5 -> 1, 10-50 -> 2, 100 -> 3.
        for (trust, needed) in [
            (1, 1),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (10, 4),
            (20, 5),
            (50, 6),
            (100, 7),
        ] {
            assert_eq!(
                contributions_needed(0, trust),
                needed,
                "fresh, trust {trust}"
            );
        }
        for (trust, needed) in [(5, 1), (10, 2), (50, 2), (100, 3)] {
            assert_eq!(
                contributions_needed(30, trust),
                needed,
                "score 30, trust {trust}"
            );
        }
    }

    #[test]
    fn a_lone_worker_reaches_trust_up_to_its_weight() {
        assert_eq!(weight(0), 2);
        assert_eq!(max_trust_alone(0), 2);
        assert_eq!(max_trust_alone(30), 9);
        for score in [0, 9, 30, 90] {
            let alone = max_trust_alone(score);
            assert_eq!(contributions_needed(score, alone), 1);
            assert!(contributions_needed(score, alone + 1) > 1);
        }
    }
}

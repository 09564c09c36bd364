//! What a worker does next with a task whose result it holds: PoCo's finishing rules as one
//! decision table over what the chain shows (the task's status, our contribution, the reveal
//! counters, the deadlines) and the deal's trust. Pure, so each row has its test; the node
//! reads the chain, asks [`next_action`], and does what it says.

use super::consensus::{contribution_status as contribution, task_status as status};

/// What the chain shows about a task and our part in it, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishView {
    /// The task's status (`task_status`).
    pub status: u8,
    /// The deal's trust (0 and 1: one worker finalizes at once).
    pub trust: u64,
    /// Whether any worker has contributed.
    pub anyone_contributed: bool,
    /// Our contribution's status (`contribution_status`).
    pub mine: u8,
    /// Whether our contribution's result hash is the task's consensus value.
    pub mine_is_consensus: bool,
    /// Reveals so far.
    pub reveals: u64,
    /// Contributions in the winning group.
    pub winners: u64,
    /// The contribution deadline has passed.
    pub contribution_over: bool,
    /// The reveal deadline has passed.
    pub reveal_over: bool,
    /// The final deadline has passed.
    pub final_over: bool,
}

/// The next thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishAction {
    /// The task is COMPLETED.
    Completed,
    /// Nothing more can be done on this node, for this reason.
    Fail(String),
    /// Trust 1: contribute and finalize in one transaction.
    ContributeAndFinalize,
    /// Contribute our result hash and seal.
    Contribute,
    /// Reveal our result.
    Reveal,
    /// Finalize with our result (the scheduler's part, once reveals are in).
    Finalize,
    /// Nobody revealed in time: reopen the task to take contributions again.
    Reopen,
    /// Wait for other workers (their contributions or reveals).
    Wait,
}

/// The decision table.
pub fn next_action(view: &FinishView) -> FinishAction {
    use FinishAction::*;
    let fail = |reason: &str| Fail(reason.to_string());
    match view.status {
        status::COMPLETED => Completed,
        status::ACTIVE if view.contribution_over => fail(if view.mine == contribution::UNSET {
            "the contribution deadline has passed"
        } else {
            "no consensus before the contribution deadline"
        }),
        status::ACTIVE if view.trust <= 1 => {
            if view.anyone_contributed {
                fail("another worker contributed to this trust-1 task")
            } else {
                ContributeAndFinalize
            }
        }
        status::ACTIVE => match view.mine {
            contribution::UNSET => Contribute,
            contribution::REJECTED => fail("our contribution was rejected (the task was reopened)"),
            _ => Wait, // contributed: consensus needs other workers' agreeing contributions
        },
        status::REVEALING if view.final_over => fail("the final deadline has passed"),
        status::REVEALING => {
            if view.mine == contribution::CONTRIBUTED && view.mine_is_consensus && !view.reveal_over
            {
                Reveal
            } else if view.reveals > 0 && (view.reveals == view.winners || view.reveal_over) {
                // Everyone who could reveal has (or the window is over).
                if view.mine == contribution::PROVED {
                    Finalize
                } else {
                    fail("another result reached consensus")
                }
            } else if view.reveals == 0 && view.reveal_over {
                Reopen
            } else if !view.mine_is_consensus {
                fail("another result reached consensus")
            } else {
                Wait // others may still reveal
            }
        }
        other => Fail(format!("the task is {} on chain", status::name(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FinishAction::*;

    /// An ACTIVE trust-1 task nobody touched, every deadline ahead.
    fn fresh() -> FinishView {
        FinishView {
            status: status::ACTIVE,
            trust: 1,
            anyone_contributed: false,
            mine: contribution::UNSET,
            mine_is_consensus: false,
            reveals: 0,
            winners: 0,
            contribution_over: false,
            reveal_over: false,
            final_over: false,
        }
    }

    fn revealing(mine: u8, consensus: bool) -> FinishView {
        FinishView {
            status: status::REVEALING,
            trust: 3,
            anyone_contributed: true,
            mine,
            mine_is_consensus: consensus,
            reveals: 0,
            winners: 2,
            ..fresh()
        }
    }

    fn failed(action: FinishAction, words: &str) {
        match action {
            Fail(reason) => assert!(reason.contains(words), "{reason}"),
            other => panic!("expected a failure with {words:?}, got {other:?}"),
        }
    }

    #[test]
    fn completed_on_chain_is_completed() {
        let view = FinishView {
            status: status::COMPLETED,
            contribution_over: true,
            final_over: true,
            ..fresh()
        };
        assert_eq!(next_action(&view), Completed);
    }

    #[test]
    fn trust_1_contributes_and_finalizes_in_one_go() {
        assert_eq!(next_action(&fresh()), ContributeAndFinalize);
        let zero = FinishView {
            trust: 0,
            ..fresh()
        };
        assert_eq!(next_action(&zero), ContributeAndFinalize);
    }

    #[test]
    fn trust_1_with_another_contributor_fails() {
        let view = FinishView {
            anyone_contributed: true,
            ..fresh()
        };
        failed(next_action(&view), "another worker contributed");
    }

    #[test]
    fn past_the_contribution_deadline_without_contributing_fails() {
        let view = FinishView {
            contribution_over: true,
            ..fresh()
        };
        failed(next_action(&view), "contribution deadline has passed");
    }

    #[test]
    fn past_the_contribution_deadline_after_contributing_is_no_consensus() {
        let view = FinishView {
            trust: 3,
            mine: contribution::CONTRIBUTED,
            contribution_over: true,
            ..fresh()
        };
        failed(next_action(&view), "no consensus");
    }

    #[test]
    fn higher_trust_contributes_first() {
        let view = FinishView {
            trust: 3,
            ..fresh()
        };
        assert_eq!(next_action(&view), Contribute);
    }

    #[test]
    fn higher_trust_waits_for_others_once_contributed() {
        let view = FinishView {
            trust: 3,
            anyone_contributed: true,
            mine: contribution::CONTRIBUTED,
            ..fresh()
        };
        assert_eq!(next_action(&view), Wait);
    }

    #[test]
    fn a_rejected_contribution_fails() {
        let view = FinishView {
            trust: 3,
            mine: contribution::REJECTED,
            ..fresh()
        };
        failed(next_action(&view), "rejected");
    }

    #[test]
    fn revealing_with_our_consensus_result_reveals() {
        assert_eq!(
            next_action(&revealing(contribution::CONTRIBUTED, true)),
            Reveal
        );
    }

    #[test]
    fn revealing_past_the_final_deadline_fails() {
        let view = FinishView {
            final_over: true,
            ..revealing(contribution::CONTRIBUTED, true)
        };
        failed(next_action(&view), "final deadline");
    }

    #[test]
    fn every_winner_revealed_and_ours_proved_finalizes() {
        let view = FinishView {
            reveals: 2,
            ..revealing(contribution::PROVED, true)
        };
        assert_eq!(next_action(&view), Finalize);
    }

    #[test]
    fn the_reveal_window_over_with_some_reveals_finalizes_when_ours_is_proved() {
        let view = FinishView {
            reveals: 1,
            reveal_over: true,
            ..revealing(contribution::PROVED, true)
        };
        assert_eq!(next_action(&view), Finalize);
    }

    #[test]
    fn reveals_done_without_ours_proved_is_another_consensus() {
        let view = FinishView {
            reveals: 2,
            ..revealing(contribution::CONTRIBUTED, false)
        };
        failed(next_action(&view), "another result");
    }

    #[test]
    fn nobody_revealed_in_time_reopens() {
        let view = FinishView {
            reveal_over: true,
            ..revealing(contribution::CONTRIBUTED, true)
        };
        assert_eq!(next_action(&view), Reopen);
    }

    #[test]
    fn revealing_another_value_than_ours_fails() {
        failed(
            next_action(&revealing(contribution::CONTRIBUTED, false)),
            "another result",
        );
    }

    #[test]
    fn revealing_with_ours_proved_and_others_pending_waits() {
        let view = FinishView {
            reveals: 1,
            ..revealing(contribution::PROVED, true)
        };
        assert_eq!(next_action(&view), Wait);
    }

    #[test]
    fn any_other_status_fails_naming_it() {
        for (code, name) in [(status::UNSET, "UNSET"), (status::FAILED, "FAILED")] {
            let view = FinishView {
                status: code,
                ..fresh()
            };
            failed(next_action(&view), name);
        }
    }
}

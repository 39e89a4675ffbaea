//! Proposal status and the `vote_breakdown` of SPEC §5, at time `T` (the newest
//! indexed block): exact integer comparisons, percentages as numbers within a
//! relative 1e-9, no division by zero.

use alloy_primitives::{U256, U512};

use crate::price::ratio_percent;

/// Where a slashing proposal stands at time `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalStatus {
    /// Voting is open (`T < votingEndsAt`).
    Active,
    /// Voting ended with quorum and a for-majority; executable.
    Succeeded,
    /// Voting ended without quorum or without a for-majority.
    Defeated,
    /// Executed on chain.
    Executed,
    /// Canceled by its proposer.
    Canceled,
}

impl ProposalStatus {
    /// Every status, as the API names them.
    pub const ALL: [ProposalStatus; 5] = [
        ProposalStatus::Active,
        ProposalStatus::Succeeded,
        ProposalStatus::Defeated,
        ProposalStatus::Executed,
        ProposalStatus::Canceled,
    ];

    /// The API's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Active => "active",
            ProposalStatus::Succeeded => "succeeded",
            ProposalStatus::Defeated => "defeated",
            ProposalStatus::Executed => "executed",
            ProposalStatus::Canceled => "canceled",
        }
    }
}

/// A proposal's tallies and parameters, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// For-votes (token base units).
    pub votes_for: U256,
    /// Against-votes.
    pub votes_against: U256,
    /// for + against needed.
    pub quorum_required: U256,
    /// End of voting, Unix seconds.
    pub voting_ends_at: i64,
    /// Executed on chain.
    pub executed: bool,
    /// Canceled on chain.
    pub canceled: bool,
}

/// `vote_breakdown` of a proposal detail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoteBreakdown {
    /// for + against (token base units).
    pub total_votes: U256,
    /// Share of for in the total, percent (0 when the total is 0).
    pub for_percentage: f64,
    /// Share of against in the total, percent (0 when the total is 0).
    pub against_percentage: f64,
    /// total ÷ quorum × 100 (100 when the quorum is 0).
    pub quorum_percentage: f64,
    /// total ≥ quorum.
    pub quorum_reached: bool,
    /// The status is `succeeded`.
    pub can_execute: bool,
    /// max(0, votingEndsAt − T), milliseconds.
    pub time_remaining_ms: i64,
}

impl Tally {
    /// for + against, saturating (two uint256 tallies cannot exceed the supply in practice).
    fn total(&self) -> U256 {
        self.votes_for.saturating_add(self.votes_against)
    }

    /// The status at time `t` (Unix seconds).
    pub fn status(&self, t: i64) -> ProposalStatus {
        if self.canceled {
            ProposalStatus::Canceled
        } else if self.executed {
            ProposalStatus::Executed
        } else if t < self.voting_ends_at {
            ProposalStatus::Active
        } else if self.total() >= self.quorum_required && self.votes_for > self.votes_against {
            ProposalStatus::Succeeded
        } else {
            ProposalStatus::Defeated
        }
    }

    /// The breakdown at time `t`.
    pub fn breakdown(&self, t: i64) -> VoteBreakdown {
        let total = self.total();
        let share = |part: U256| if total.is_zero() { 0.0 } else { ratio_percent(U512::from(part), U512::from(total)) };
        VoteBreakdown {
            total_votes: total,
            for_percentage: share(self.votes_for),
            against_percentage: share(self.votes_against),
            quorum_percentage: if self.quorum_required.is_zero() {
                100.0
            } else {
                ratio_percent(U512::from(total), U512::from(self.quorum_required))
            },
            quorum_reached: total >= self.quorum_required,
            can_execute: self.status(t) == ProposalStatus::Succeeded,
            time_remaining_ms: self.voting_ends_at.saturating_sub(t).max(0).saturating_mul(1000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(f: u64, a: u64, quorum: u64) -> Tally {
        Tally {
            votes_for: U256::from(f),
            votes_against: U256::from(a),
            quorum_required: U256::from(quorum),
            voting_ends_at: 1_000,
            executed: false,
            canceled: false,
        }
    }

    #[test]
    fn status_follows_time_quorum_and_majority() {
        assert_eq!(tally(10, 0, 5).status(999), ProposalStatus::Active);
        assert_eq!(tally(10, 0, 5).status(1_000), ProposalStatus::Succeeded, "ends at votingEndsAt");
        assert_eq!(tally(3, 1, 5).status(1_000), ProposalStatus::Defeated, "no quorum");
        assert_eq!(tally(5, 5, 5).status(1_000), ProposalStatus::Defeated, "a tie is no majority");
        assert_eq!(tally(0, 0, 0).status(1_000), ProposalStatus::Defeated, "no for-votes");
        let mut done = tally(10, 0, 5);
        done.executed = true;
        assert_eq!(done.status(0), ProposalStatus::Executed);
        done.canceled = true;
        assert_eq!(done.status(0), ProposalStatus::Canceled);
    }

    #[test]
    fn breakdown_never_divides_by_zero() {
        let empty = tally(0, 0, 0).breakdown(400);
        assert_eq!(empty.total_votes, U256::ZERO);
        assert!(empty.for_percentage == 0.0 && empty.against_percentage == 0.0);
        assert!((empty.quorum_percentage - 100.0).abs() < f64::EPSILON);
        assert!(empty.quorum_reached);
        assert_eq!(empty.time_remaining_ms, 600_000);

        let b = tally(2, 1, 6).breakdown(2_000);
        assert!((b.for_percentage - 200.0 / 3.0).abs() < 1e-9 * 200.0 / 3.0);
        assert!((b.against_percentage - 100.0 / 3.0).abs() < 1e-9 * 100.0 / 3.0);
        assert!((b.quorum_percentage - 50.0).abs() < 1e-12);
        assert!(!b.quorum_reached && !b.can_execute);
        assert_eq!(b.time_remaining_ms, 0);

        let huge = Tally { votes_for: U256::MAX, votes_against: U256::MAX, ..tally(0, 0, 1) }.breakdown(0);
        assert_eq!(huge.total_votes, U256::MAX, "saturates");
        assert!(huge.quorum_percentage.is_finite());
    }
}

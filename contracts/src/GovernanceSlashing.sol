// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MarketToken} from "./MarketToken.sol";
import {MarketFactoryBase} from "./MarketFactoryBase.sol";
import {StakeVault} from "./StakeVault.sol";

/// @title GovernanceSlashing
/// @notice Token-holder votes on slashing a market's stake. Anyone proposes; holders of the
///         market's token vote with their balance at the snapshot block (the block before the
///         proposal); after `votingEndsAt` a proposal with for + against >= quorum and for > against
///         can be executed by anyone, which slashes the stake to the vault's treasury.
/// @dev Must be wired as `vault.setGovernance(this)`. Proposing locks the stake's withdrawals until
///      votingEndsAt + EXECUTION_GRACE so the owner cannot withdraw before a vote can execute.
contract GovernanceSlashing {
    /// @notice Proposal states as returned by `state`.
    enum ProposalState {
        Active,
        Canceled,
        Defeated,
        Succeeded,
        Executed
    }

    /// @dev Field order is part of the ABI (the `proposals` getter); do not reorder.
    struct Proposal {
        uint8 marketType;
        bytes32 marketId;
        address proposer;
        uint256 slashAmount;
        uint256 snapshotBlock;
        uint64 votingEndsAt;
        uint256 quorumRequired;
        uint256 forVotes;
        uint256 againstVotes;
        uint256 abstainVotes;
        bool executed;
        bool canceled;
    }

    /// @notice Vote value: against.
    uint8 public constant VOTE_AGAINST = 0;
    /// @notice Vote value: for.
    uint8 public constant VOTE_FOR = 1;
    /// @notice Vote value: abstain.
    uint8 public constant VOTE_ABSTAIN = 2;
    /// @notice How long after votingEndsAt the stake stays locked, for the execution.
    uint64 public constant EXECUTION_GRACE = 7 days;
    /// @notice Basis-point denominator.
    uint256 public constant BPS = 10_000;

    /// @notice The vault holding the stakes (this contract must be its governance).
    StakeVault public immutable vault;
    /// @notice Factory of marketType 0.
    MarketFactoryBase public immutable credentialFactory;
    /// @notice Factory of marketType 1.
    MarketFactoryBase public immutable personaFactory;
    /// @notice Voting period in seconds.
    uint64 public immutable votingPeriod;
    /// @notice Quorum in basis points of the token supply at the snapshot block.
    uint16 public immutable quorumBps;

    /// @notice Number of proposals; ids are 1..proposalCount.
    uint256 public proposalCount;
    /// @notice The proposals by id (fields in the order of the `Proposal` struct).
    mapping(uint256 proposalId => Proposal) public proposals;
    /// @notice Whether `voter` has voted on `proposalId`.
    mapping(uint256 proposalId => mapping(address voter => bool)) public hasVoted;

    /// @notice A slashing proposal was created.
    event ProposalCreated(
        uint256 indexed proposalId, address indexed proposer, bytes32 indexed marketId, uint256 slashAmount
    );
    /// @notice A vote was cast (support: 0 against, 1 for, 2 abstain).
    event VoteCast(uint256 indexed proposalId, address indexed voter, uint8 support, uint256 weight);
    /// @notice A proposal was executed; `slashedAmount` is what the vault actually slashed.
    event ProposalExecuted(uint256 indexed proposalId, uint256 slashedAmount);
    /// @notice A proposal was canceled by its proposer.
    event ProposalCanceled(uint256 indexed proposalId);

    /// @notice A zero address was given.
    error ZeroAddress();
    /// @notice The voting period must be > 0.
    error InvalidVotingPeriod();
    /// @notice The quorum must be <= 10000 bps.
    error InvalidQuorum(uint16 quorumBps);
    /// @notice marketType is not 0 or 1.
    error InvalidMarketType(uint8 marketType);
    /// @notice No market with this id exists for this market type.
    error UnknownMarket(uint8 marketType, bytes32 marketId);
    /// @notice The slash amount must be > 0 and <= the current stake.
    error InvalidSlashAmount(uint256 amount, uint256 stake);
    /// @notice No proposal with this id exists.
    error UnknownProposal(uint256 proposalId);
    /// @notice The proposal was already executed.
    error ProposalAlreadyExecuted(uint256 proposalId);
    /// @notice The proposal was canceled.
    error ProposalIsCanceled(uint256 proposalId);
    /// @notice The voting period is over.
    error VotingClosed(uint256 proposalId, uint64 votingEndsAt);
    /// @notice The voting period is not over yet.
    error VotingNotEnded(uint256 proposalId, uint64 votingEndsAt);
    /// @notice support must be 0 (against), 1 (for) or 2 (abstain).
    error InvalidSupport(uint8 support);
    /// @notice The voter already voted on this proposal.
    error AlreadyVoted(uint256 proposalId, address voter);
    /// @notice The voter held no tokens at the snapshot block.
    error NoVotingPower(uint256 proposalId, address voter);
    /// @notice The proposal did not reach quorum or had no for-majority.
    error ProposalNotSucceeded(uint256 proposalId);
    /// @notice Only the proposer may cancel.
    error NotProposer(address caller);

    /// @param vault_ The StakeVault.
    /// @param credentialFactory_ The CredentialTokenFactory (marketType 0).
    /// @param personaFactory_ The PersonaTokenFactory (marketType 1).
    /// @param votingPeriod_ Voting period in seconds (> 0).
    /// @param quorumBps_ Quorum in basis points of the snapshot total supply (<= 10000).
    constructor(
        StakeVault vault_,
        MarketFactoryBase credentialFactory_,
        MarketFactoryBase personaFactory_,
        uint64 votingPeriod_,
        uint16 quorumBps_
    ) {
        if (
            address(vault_) == address(0) || address(credentialFactory_) == address(0)
                || address(personaFactory_) == address(0)
        ) revert ZeroAddress();
        if (votingPeriod_ == 0) revert InvalidVotingPeriod();
        if (quorumBps_ > BPS) revert InvalidQuorum(quorumBps_);
        vault = vault_;
        credentialFactory = credentialFactory_;
        personaFactory = personaFactory_;
        votingPeriod = votingPeriod_;
        quorumBps = quorumBps_;
    }

    /// @notice Proposes to slash `slashAmount` of a market's stake. Anyone may call. Snapshots the
    ///         previous block, sets the quorum from the token supply there, and locks the stake
    ///         until votingEndsAt + EXECUTION_GRACE.
    /// @dev Reverts InvalidMarketType, UnknownMarket, InvalidSlashAmount (0 or > current stake).
    /// @param marketType 0 = credential, 1 = persona.
    /// @param marketId The market id.
    /// @param slashAmount USDC base units to slash (0 < slashAmount <= stake).
    /// @return proposalId The new proposal's id (starting at 1).
    function propose(uint8 marketType, bytes32 marketId, uint256 slashAmount) external returns (uint256 proposalId) {
        MarketToken token = _token(marketType, marketId);
        uint256 stake = vault.stakeOf(marketType, marketId);
        if (slashAmount == 0 || slashAmount > stake) revert InvalidSlashAmount(slashAmount, stake);

        uint256 snapshotBlock = block.number - 1;
        uint64 votingEndsAt = uint64(block.timestamp) + votingPeriod;
        proposalId = ++proposalCount;
        Proposal storage p = proposals[proposalId];
        p.marketType = marketType;
        p.marketId = marketId;
        p.proposer = msg.sender;
        p.slashAmount = slashAmount;
        p.snapshotBlock = snapshotBlock;
        p.votingEndsAt = votingEndsAt;
        p.quorumRequired = token.totalSupplyAt(snapshotBlock) * quorumBps / BPS;

        vault.lockUntil(marketType, marketId, votingEndsAt + EXECUTION_GRACE);
        emit ProposalCreated(proposalId, msg.sender, marketId, slashAmount);
    }

    /// @notice Votes on an active proposal with the caller's token balance at the snapshot block.
    /// @dev Reverts UnknownProposal, ProposalAlreadyExecuted, ProposalIsCanceled, VotingClosed,
    ///      InvalidSupport, AlreadyVoted, NoVotingPower.
    /// @param proposalId The proposal.
    /// @param support 0 = against, 1 = for, 2 = abstain.
    function castVote(uint256 proposalId, uint8 support) external {
        Proposal storage p = _openProposal(proposalId);
        if (block.timestamp >= p.votingEndsAt) revert VotingClosed(proposalId, p.votingEndsAt);
        if (support > VOTE_ABSTAIN) revert InvalidSupport(support);
        if (hasVoted[proposalId][msg.sender]) revert AlreadyVoted(proposalId, msg.sender);
        uint256 weight = _token(p.marketType, p.marketId).balanceOfAt(msg.sender, p.snapshotBlock);
        if (weight == 0) revert NoVotingPower(proposalId, msg.sender);

        hasVoted[proposalId][msg.sender] = true;
        if (support == VOTE_AGAINST) p.againstVotes += weight;
        else if (support == VOTE_FOR) p.forVotes += weight;
        else p.abstainVotes += weight;
        emit VoteCast(proposalId, msg.sender, support, weight);
    }

    /// @notice Executes a succeeded proposal: slashes min(slashAmount, current stake) to the
    ///         treasury. Anyone may call, once, at or after votingEndsAt.
    /// @dev Reverts UnknownProposal, ProposalAlreadyExecuted, ProposalIsCanceled, VotingNotEnded,
    ///      ProposalNotSucceeded. The vault emits StakeSlashed before ProposalExecuted.
    /// @param proposalId The proposal.
    function execute(uint256 proposalId) external {
        Proposal storage p = _openProposal(proposalId);
        if (block.timestamp < p.votingEndsAt) revert VotingNotEnded(proposalId, p.votingEndsAt);
        if (!_succeeded(p)) revert ProposalNotSucceeded(proposalId);

        p.executed = true;
        uint256 slashed = vault.slash(p.marketType, p.marketId, proposalId, p.slashAmount);
        emit ProposalExecuted(proposalId, slashed);
    }

    /// @notice Cancels an active proposal. Only its proposer, only before votingEndsAt.
    ///         (The stake lock it set stays in place: other proposals may rely on it.)
    /// @dev Reverts UnknownProposal, ProposalAlreadyExecuted, ProposalIsCanceled, NotProposer, VotingClosed.
    /// @param proposalId The proposal.
    function cancel(uint256 proposalId) external {
        Proposal storage p = _openProposal(proposalId);
        if (msg.sender != p.proposer) revert NotProposer(msg.sender);
        if (block.timestamp >= p.votingEndsAt) revert VotingClosed(proposalId, p.votingEndsAt);
        p.canceled = true;
        emit ProposalCanceled(proposalId);
    }

    /// @notice Current state of a proposal: Canceled, Executed, Active while block.timestamp <
    ///         votingEndsAt, then Succeeded (for + against >= quorum and for > against) or Defeated.
    /// @dev Reverts UnknownProposal.
    /// @param proposalId The proposal.
    function state(uint256 proposalId) external view returns (ProposalState) {
        Proposal storage p = _proposal(proposalId);
        if (p.canceled) return ProposalState.Canceled;
        if (p.executed) return ProposalState.Executed;
        if (block.timestamp < p.votingEndsAt) return ProposalState.Active;
        return _succeeded(p) ? ProposalState.Succeeded : ProposalState.Defeated;
    }

    /// @notice The market token a (marketType, marketId) pair refers to. Reverts InvalidMarketType,
    ///         UnknownMarket.
    /// @param marketType 0 = credential, 1 = persona.
    /// @param marketId The market id.
    function marketToken(uint8 marketType, bytes32 marketId) external view returns (address) {
        return address(_token(marketType, marketId));
    }

    function _token(uint8 marketType, bytes32 marketId) private view returns (MarketToken token) {
        MarketFactoryBase factory;
        if (marketType == 0) factory = credentialFactory;
        else if (marketType == 1) factory = personaFactory;
        else revert InvalidMarketType(marketType);
        token = MarketToken(factory.tokenOf(marketId));
        if (address(token) == address(0)) revert UnknownMarket(marketType, marketId);
    }

    function _proposal(uint256 proposalId) private view returns (Proposal storage p) {
        if (proposalId == 0 || proposalId > proposalCount) revert UnknownProposal(proposalId);
        p = proposals[proposalId];
    }

    /// @dev A proposal that exists and is neither executed nor canceled.
    function _openProposal(uint256 proposalId) private view returns (Proposal storage p) {
        p = _proposal(proposalId);
        if (p.executed) revert ProposalAlreadyExecuted(proposalId);
        if (p.canceled) revert ProposalIsCanceled(proposalId);
    }

    function _succeeded(Proposal storage p) private view returns (bool) {
        return p.forVotes + p.againstVotes >= p.quorumRequired && p.forVotes > p.againstVotes;
    }
}

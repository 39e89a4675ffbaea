// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title StakeVault
/// @notice Holds the USDC stake of every market, keyed by (marketType, marketId)
///         (marketType 0 = credential, 1 = persona).
/// @dev Wiring (owner, once each): `setFactory(0, credentialFactory)`, `setFactory(1, personaFactory)`,
///      `setGovernance(governance)`. A market is registered and first funded by its type's factory;
///      afterwards its owner may top up and withdraw (not while locked); governance may lock and slash.
contract StakeVault is Ownable {
    using SafeERC20 for IERC20;

    struct Market {
        address owner; // the issuer / persona owner; zero = market not registered
        uint64 lockedUntil; // unix seconds; withdrawals revert while block.timestamp < lockedUntil
        uint256 stake; // USDC base units
    }

    /// @notice The staked token (USDC).
    IERC20 public immutable usdc;
    /// @notice Receiver of slashed stakes.
    address public immutable treasury;
    /// @notice The governance contract allowed to lock and slash (set once).
    address public governance;
    /// @notice The factory allowed to register and fund markets of each market type (set once per type).
    mapping(uint8 marketType => address factory) public factoryOf;

    mapping(uint8 marketType => mapping(bytes32 marketId => Market)) private _markets;

    /// @notice USDC moved from `staker` into the stake of a market.
    event StakeDeposited(uint8 indexed marketType, bytes32 indexed marketId, address indexed staker, uint256 amount);
    /// @notice USDC moved out of the stake of a market to `staker` (the market owner).
    event StakeWithdrawn(uint8 indexed marketType, bytes32 indexed marketId, address indexed staker, uint256 amount);
    /// @notice `amount` (the amount actually taken) was slashed to the treasury by proposal `proposalId`.
    event StakeSlashed(uint8 indexed marketType, bytes32 indexed marketId, uint256 indexed proposalId, uint256 amount);
    /// @notice A market was registered by its factory.
    event MarketRegistered(uint8 indexed marketType, bytes32 indexed marketId, address indexed owner);
    /// @notice Governance locked withdrawals of a market until `lockedUntil` (the new, maximal value).
    event StakeLockExtended(uint8 indexed marketType, bytes32 indexed marketId, uint64 lockedUntil);
    /// @notice The owner set the factory of a market type.
    event FactorySet(uint8 indexed marketType, address factory);
    /// @notice The owner set the governance contract.
    event GovernanceSet(address governance);

    /// @notice A zero address was given where a contract or account is required.
    error ZeroAddress();
    /// @notice A zero amount was given.
    error ZeroAmount();
    /// @notice The factory of `marketType` is already set.
    error FactoryAlreadySet(uint8 marketType);
    /// @notice Governance is already set.
    error GovernanceAlreadySet();
    /// @notice The caller is not the factory of `marketType`.
    error NotFactory(uint8 marketType, address caller);
    /// @notice The caller is not the governance contract.
    error NotGovernance(address caller);
    /// @notice The caller is not the owner of the market.
    error NotMarketOwner(address caller);
    /// @notice The market is already registered.
    error MarketAlreadyRegistered(uint8 marketType, bytes32 marketId);
    /// @notice The market is not registered.
    error UnknownMarket(uint8 marketType, bytes32 marketId);
    /// @notice A withdrawal asked for more than the stake.
    error InsufficientStake(uint256 stake, uint256 requested);
    /// @notice Withdrawals are locked until `until` (unix seconds) by a slashing proposal.
    error StakeLocked(uint64 until);

    /// @param usdc_ The USDC token.
    /// @param treasury_ Receiver of slashed stakes.
    /// @param initialOwner The account allowed to wire factories and governance.
    constructor(IERC20 usdc_, address treasury_, address initialOwner) Ownable(initialOwner) {
        if (address(usdc_) == address(0) || treasury_ == address(0)) revert ZeroAddress();
        usdc = usdc_;
        treasury = treasury_;
    }

    modifier onlyFactory(uint8 marketType) {
        if (msg.sender != factoryOf[marketType] || msg.sender == address(0)) revert NotFactory(marketType, msg.sender);
        _;
    }

    modifier onlyGovernance() {
        if (msg.sender != governance || msg.sender == address(0)) revert NotGovernance(msg.sender);
        _;
    }

    // ---------------------------------------------------------------- wiring (owner, once)

    /// @notice Sets the factory of `marketType`. Only the owner, once per market type.
    /// @param marketType 0 = credential, 1 = persona.
    /// @param factory The factory contract.
    function setFactory(uint8 marketType, address factory) external onlyOwner {
        if (factory == address(0)) revert ZeroAddress();
        if (factoryOf[marketType] != address(0)) revert FactoryAlreadySet(marketType);
        factoryOf[marketType] = factory;
        emit FactorySet(marketType, factory);
    }

    /// @notice Sets the governance contract. Only the owner, once.
    /// @param governance_ The GovernanceSlashing contract.
    function setGovernance(address governance_) external onlyOwner {
        if (governance_ == address(0)) revert ZeroAddress();
        if (governance != address(0)) revert GovernanceAlreadySet();
        governance = governance_;
        emit GovernanceSet(governance_);
    }

    // ---------------------------------------------------------------- factory

    /// @notice Registers a new market owned by `marketOwner_`. Only the factory of `marketType`.
    /// @param marketType 0 = credential, 1 = persona.
    /// @param marketId The market id (credential id or persona id).
    /// @param marketOwner_ The issuer / persona owner, who may later top up and withdraw.
    function registerMarket(uint8 marketType, bytes32 marketId, address marketOwner_)
        external
        onlyFactory(marketType)
    {
        if (marketOwner_ == address(0)) revert ZeroAddress();
        Market storage m = _markets[marketType][marketId];
        if (m.owner != address(0)) revert MarketAlreadyRegistered(marketType, marketId);
        m.owner = marketOwner_;
        emit MarketRegistered(marketType, marketId, marketOwner_);
    }

    /// @notice Pulls `amount` USDC from `from` (who must have approved this vault) into the stake of
    ///         a registered market. Only the factory of `marketType`.
    /// @param marketType 0 = credential, 1 = persona.
    /// @param marketId The market id.
    /// @param from The account whose USDC moves (the `staker` of StakeDeposited).
    /// @param amount USDC base units, > 0.
    function depositFor(uint8 marketType, bytes32 marketId, address from, uint256 amount)
        external
        onlyFactory(marketType)
    {
        _deposit(marketType, marketId, from, amount);
    }

    // ---------------------------------------------------------------- market owner

    /// @notice Tops up the stake of a market with `amount` USDC from the caller (who must have
    ///         approved this vault). Only the market owner.
    /// @param marketType 0 = credential, 1 = persona.
    /// @param marketId The market id.
    /// @param amount USDC base units, > 0.
    function deposit(uint8 marketType, bytes32 marketId, uint256 amount) external {
        _onlyMarketOwner(marketType, marketId);
        _deposit(marketType, marketId, msg.sender, amount);
    }

    /// @notice Withdraws `amount` USDC of the stake to the market owner. Only the market owner, not
    ///         more than the stake, and not while a slashing proposal locks the stake.
    /// @param marketType 0 = credential, 1 = persona.
    /// @param marketId The market id.
    /// @param amount USDC base units, > 0 and <= stake.
    function withdraw(uint8 marketType, bytes32 marketId, uint256 amount) external {
        Market storage m = _onlyMarketOwner(marketType, marketId);
        if (amount == 0) revert ZeroAmount();
        if (block.timestamp < m.lockedUntil) revert StakeLocked(m.lockedUntil);
        if (amount > m.stake) revert InsufficientStake(m.stake, amount);
        m.stake -= amount;
        emit StakeWithdrawn(marketType, marketId, msg.sender, amount);
        usdc.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- governance

    /// @notice Blocks withdrawals of a market until `timestamp` (keeps the later of the current and
    ///         the new lock). Only governance.
    /// @param marketType 0 = credential, 1 = persona.
    /// @param marketId The market id (must be registered).
    /// @param timestamp Unix seconds.
    function lockUntil(uint8 marketType, bytes32 marketId, uint64 timestamp) external onlyGovernance {
        Market storage m = _market(marketType, marketId);
        if (timestamp > m.lockedUntil) {
            m.lockedUntil = timestamp;
            emit StakeLockExtended(marketType, marketId, timestamp);
        }
    }

    /// @notice Slashes min(`amount`, stake) of a market to the treasury. Only governance.
    ///         Ignores the lock. Emits StakeSlashed with the amount actually slashed (may be 0).
    /// @param marketType 0 = credential, 1 = persona.
    /// @param marketId The market id (must be registered).
    /// @param proposalId The executed proposal (for the event).
    /// @param amount The amount the proposal asked for.
    /// @return slashed The amount actually moved to the treasury.
    function slash(uint8 marketType, bytes32 marketId, uint256 proposalId, uint256 amount)
        external
        onlyGovernance
        returns (uint256 slashed)
    {
        Market storage m = _market(marketType, marketId);
        slashed = amount < m.stake ? amount : m.stake;
        m.stake -= slashed;
        emit StakeSlashed(marketType, marketId, proposalId, slashed);
        if (slashed > 0) usdc.safeTransfer(treasury, slashed);
    }

    // ---------------------------------------------------------------- views

    /// @notice Current stake of a market in USDC base units (0 for unknown markets).
    function stakeOf(uint8 marketType, bytes32 marketId) external view returns (uint256) {
        return _markets[marketType][marketId].stake;
    }

    /// @notice Owner of a market (zero for unknown markets).
    function marketOwner(uint8 marketType, bytes32 marketId) external view returns (address) {
        return _markets[marketType][marketId].owner;
    }

    /// @notice Unix time until which withdrawals are locked (0 = never locked).
    function lockedUntil(uint8 marketType, bytes32 marketId) external view returns (uint64) {
        return _markets[marketType][marketId].lockedUntil;
    }

    // ---------------------------------------------------------------- internals

    function _deposit(uint8 marketType, bytes32 marketId, address from, uint256 amount) private {
        Market storage m = _market(marketType, marketId);
        if (amount == 0) revert ZeroAmount();
        m.stake += amount;
        emit StakeDeposited(marketType, marketId, from, amount);
        usdc.safeTransferFrom(from, address(this), amount);
    }

    function _market(uint8 marketType, bytes32 marketId) private view returns (Market storage m) {
        m = _markets[marketType][marketId];
        if (m.owner == address(0)) revert UnknownMarket(marketType, marketId);
    }

    function _onlyMarketOwner(uint8 marketType, bytes32 marketId) private view returns (Market storage m) {
        m = _market(marketType, marketId);
        if (msg.sender != m.owner) revert NotMarketOwner(msg.sender);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MarketToken} from "./MarketToken.sol";
import {StakeVault} from "./StakeVault.sol";
import {MarketAMM} from "./MarketAMM.sol";

/// @title MarketFactoryBase
/// @notice Shared logic of CredentialTokenFactory (marketType 0) and PersonaTokenFactory
///         (marketType 1): one call creates a market = stake + MarketToken + AMM pool.
/// @dev Before creating a market the caller must approve:
///        - the StakeVault for `stakeAmount` USDC (the stake is pulled by the vault), and
///        - the MarketAMM for `usdcReserves` USDC (the pool's USDC liquidity is pulled by the AMM).
///      The factory must be wired as `vault.setFactory(marketType, factory)` and `amm.setFactory(factory)`.
abstract contract MarketFactoryBase {
    /// @notice The market type this factory creates (0 = credential, 1 = persona).
    uint8 public immutable marketType;
    /// @notice The USDC token.
    IERC20 public immutable usdc;
    /// @notice The vault holding the stakes.
    StakeVault public immutable vault;
    /// @notice The AMM holding this market type's pools.
    MarketAMM public immutable amm;

    mapping(bytes32 marketId => address token) private _tokenOf;
    mapping(address token => bytes32 marketId) private _marketIdOf;
    bytes32[] private _marketIds;

    /// @notice A zero address was given.
    error ZeroAddress();
    /// @notice The market id is zero.
    error InvalidMarketId();
    /// @notice A market with this id already exists.
    error MarketAlreadyExists(bytes32 marketId, address token);
    /// @notice The stake amount is zero.
    error ZeroStake();
    /// @notice `marketIdAt` was given an index >= marketCount().
    error IndexOutOfRange(uint256 index, uint256 count);

    constructor(uint8 marketType_, IERC20 usdc_, StakeVault vault_, MarketAMM amm_) {
        if (address(usdc_) == address(0) || address(vault_) == address(0) || address(amm_) == address(0)) {
            revert ZeroAddress();
        }
        marketType = marketType_;
        usdc = usdc_;
        vault = vault_;
        amm = amm_;
    }

    /// @notice Token of a market (zero if the market does not exist).
    /// @param marketId The credential or persona id.
    function tokenOf(bytes32 marketId) public view returns (address) {
        return _tokenOf[marketId];
    }

    /// @notice Market id of a token created by this factory (zero for other tokens).
    /// @param token The market token.
    function marketIdOf(address token) external view returns (bytes32) {
        return _marketIdOf[token];
    }

    /// @notice Number of markets created by this factory.
    function marketCount() external view returns (uint256) {
        return _marketIds.length;
    }

    /// @notice Market id number `index` in creation order (0-based). Reverts IndexOutOfRange.
    /// @param index 0 <= index < marketCount().
    function marketIdAt(uint256 index) external view returns (bytes32) {
        if (index >= _marketIds.length) revert IndexOutOfRange(index, _marketIds.length);
        return _marketIds[index];
    }

    /// @dev Creates the market of `marketId` for msg.sender; the caller emits the market event.
    ///      Order: deploy token, register market + pull stake (vault emits StakeDeposited),
    ///      mint reserves to the AMM and `creatorTokens` to msg.sender, end minting,
    ///      open the pool (AMM emits PoolCreated, ReservesUpdated).
    function _createMarket(
        bytes32 marketId,
        string calldata name,
        string calldata symbol,
        uint256 stakeAmount,
        uint256 tokenReserves,
        uint256 usdcReserves,
        uint256 creatorTokens
    ) internal returns (address token) {
        if (marketId == bytes32(0)) revert InvalidMarketId();
        if (_tokenOf[marketId] != address(0)) revert MarketAlreadyExists(marketId, _tokenOf[marketId]);
        if (stakeAmount == 0) revert ZeroStake();

        MarketToken t = new MarketToken(name, symbol, address(this));
        token = address(t);
        _tokenOf[marketId] = token;
        _marketIdOf[token] = marketId;
        _marketIds.push(marketId);

        vault.registerMarket(marketType, marketId, msg.sender);
        vault.depositFor(marketType, marketId, msg.sender, stakeAmount);

        t.mint(address(amm), tokenReserves);
        if (creatorTokens > 0) t.mint(msg.sender, creatorTokens);
        t.finishMinting();

        amm.createPool(marketId, token, tokenReserves, usdcReserves, msg.sender);
    }
}

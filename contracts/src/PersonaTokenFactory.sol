// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MarketFactoryBase} from "./MarketFactoryBase.sol";
import {StakeVault} from "./StakeVault.sol";
import {MarketAMM} from "./MarketAMM.sol";

/// @title PersonaTokenFactory
/// @notice Creates persona markets (marketType 1): a person stakes USDC, gets a MarketToken for
///         their persona and opens its pool on the persona AMM, in one transaction.
contract PersonaTokenFactory is MarketFactoryBase {
    /// @notice A persona market was created by `owner`.
    event PersonaTokenCreated(
        bytes32 indexed personaId,
        address indexed token,
        address indexed owner,
        string name,
        string symbol,
        uint256 stakeAmount
    );

    /// @param usdc_ The USDC token.
    /// @param vault_ The StakeVault (must later call setFactory(1, this)).
    /// @param amm_ The persona MarketAMM (must later call setFactory(this)).
    constructor(IERC20 usdc_, StakeVault vault_, MarketAMM amm_) MarketFactoryBase(1, usdc_, vault_, amm_) {}

    /// @notice Creates the market of `personaId` with the caller as owner. The caller must have
    ///         approved the vault for `stakeAmount` USDC and the AMM for `usdcReserves` USDC.
    /// @dev Reverts InvalidMarketId (zero id), MarketAlreadyExists, ZeroStake, and whatever the
    ///      vault/AMM revert with (e.g. ZeroReserves, ERC20InsufficientAllowance).
    /// @param personaId Non-zero, unused persona id (the market id).
    /// @param name Token name.
    /// @param symbol Token symbol.
    /// @param stakeAmount USDC staked by the owner (> 0).
    /// @param tokenReserves Tokens minted into the pool (> 0, 18 decimals).
    /// @param usdcReserves USDC the owner puts into the pool (> 0).
    /// @param ownerTokens Tokens minted to the owner (may be 0).
    /// @return token The new MarketToken.
    function createPersonaToken(
        bytes32 personaId,
        string calldata name,
        string calldata symbol,
        uint256 stakeAmount,
        uint256 tokenReserves,
        uint256 usdcReserves,
        uint256 ownerTokens
    ) external returns (address token) {
        token = _createMarket(personaId, name, symbol, stakeAmount, tokenReserves, usdcReserves, ownerTokens);
        emit PersonaTokenCreated(personaId, token, msg.sender, name, symbol, stakeAmount);
    }

    /// @notice Token of a persona market (zero if none).
    /// @param personaId The persona id.
    function getTokenByPersona(bytes32 personaId) external view returns (address) {
        return tokenOf(personaId);
    }
}

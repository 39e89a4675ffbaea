// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MarketFactoryBase} from "./MarketFactoryBase.sol";
import {StakeVault} from "./StakeVault.sol";
import {MarketAMM} from "./MarketAMM.sol";

/// @title CredentialTokenFactory
/// @notice Creates credential markets (marketType 0): an issuer stakes USDC, gets a MarketToken for
///         the credential and opens its pool on the credential AMM, in one transaction.
contract CredentialTokenFactory is MarketFactoryBase {
    /// @notice A credential market was created by `issuer`.
    event CredentialTokenCreated(
        bytes32 indexed credentialId,
        address indexed token,
        address indexed issuer,
        string name,
        string symbol,
        uint256 stakeAmount
    );

    /// @param usdc_ The USDC token.
    /// @param vault_ The StakeVault (must later call setFactory(0, this)).
    /// @param amm_ The credential MarketAMM (must later call setFactory(this)).
    constructor(IERC20 usdc_, StakeVault vault_, MarketAMM amm_) MarketFactoryBase(0, usdc_, vault_, amm_) {}

    /// @notice Creates the market of `credentialId` with the caller as issuer. The caller must have
    ///         approved the vault for `stakeAmount` USDC and the AMM for `usdcReserves` USDC.
    /// @dev Reverts InvalidMarketId (zero id), MarketAlreadyExists, ZeroStake, and whatever the
    ///      vault/AMM revert with (e.g. ZeroReserves, ERC20InsufficientAllowance).
    /// @param credentialId Non-zero, unused credential id (the market id).
    /// @param name Token name.
    /// @param symbol Token symbol.
    /// @param stakeAmount USDC staked by the issuer (> 0).
    /// @param tokenReserves Tokens minted into the pool (> 0, 18 decimals).
    /// @param usdcReserves USDC the issuer puts into the pool (> 0).
    /// @param issuerTokens Tokens minted to the issuer (may be 0).
    /// @return token The new MarketToken.
    function createCredentialToken(
        bytes32 credentialId,
        string calldata name,
        string calldata symbol,
        uint256 stakeAmount,
        uint256 tokenReserves,
        uint256 usdcReserves,
        uint256 issuerTokens
    ) external returns (address token) {
        token = _createMarket(credentialId, name, symbol, stakeAmount, tokenReserves, usdcReserves, issuerTokens);
        emit CredentialTokenCreated(credentialId, token, msg.sender, name, symbol, stakeAmount);
    }

    /// @notice Token of a credential market (zero if none).
    /// @param credentialId The credential id.
    function getTokenByCredential(bytes32 credentialId) external view returns (address) {
        return tokenOf(credentialId);
    }
}

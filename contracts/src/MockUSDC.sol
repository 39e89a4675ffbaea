// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title MockUSDC
/// @notice Devnet-only stand-in for USDC: "USD Coin" / "USDC", 6 decimals, and anyone may mint.
/// @dev Never deploy this to a public network: `mint` is unrestricted on purpose.
contract MockUSDC is ERC20 {
    constructor() ERC20("USD Coin", "USDC") {}

    /// @notice USDC has 6 decimals (1 USDC = 1_000_000 base units).
    /// @return Always 6.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mints `amount` base units to `to`. Anyone may call it (devnet faucet).
    /// @param to Receiver of the new tokens (reverts with ERC20InvalidReceiver for the zero address).
    /// @param amount Amount in base units (6 decimals).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

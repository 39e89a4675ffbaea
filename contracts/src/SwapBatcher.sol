// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice The two MarketAMM functions the batcher calls.
interface IMarketAMMTrading {
    function buy(bytes32 marketId, uint256 usdcIn, uint256 minTokensOut) external returns (uint256 tokensOut);
    function sell(bytes32 marketId, uint256 tokensIn, uint256 minUsdcOut) external returns (uint256 usdcOut);
}

/// @title SwapBatcher
/// @notice Benchmark and devnet helper: performs many real MarketAMM swaps in one transaction so
///         that a chain with millions of `Swap` events can be built quickly (see `bench/`).
///         The batcher itself is the trader: it holds USDC minted to it (MockUSDC) and approves
///         the AMMs. Each instance is one distinct trader address.
/// @dev Devnet only: anyone may call `churn` and spend the batcher's USDC. Every swap goes through
///      `MarketAMM.buy`/`sell`, so the usual `Swap`, `ReservesUpdated` and `Transfer` events are
///      emitted exactly as for any other trader.
contract SwapBatcher {
    /// @notice The quote token (USDC) the AMMs use.
    IERC20 public immutable usdc;

    /// @notice `marketIds` and `tokens` have different lengths.
    error LengthMismatch(uint256 marketIds, uint256 tokens);

    /// @param usdc_ The USDC token of the AMMs.
    constructor(IERC20 usdc_) {
        usdc = usdc_;
    }

    /// @notice For each of `rounds` rounds and each market, buys with `usdcPerBuy` USDC (fee
    ///         included) and sells every token it just bought, so reserves stay bounded. Makes
    ///         `2 * rounds * marketIds.length` swaps. Approves `amm` for USDC and for each token the
    ///         first time they are needed.
    /// @param amm The MarketAMM of these markets (one market type per call).
    /// @param marketIds The markets to trade.
    /// @param tokens The market token of each market, same order.
    /// @param rounds How many buy+sell pairs per market.
    /// @param usdcPerBuy USDC spent on each buy, in base units (6 decimals).
    function churn(
        address amm,
        bytes32[] calldata marketIds,
        address[] calldata tokens,
        uint256 rounds,
        uint256 usdcPerBuy
    ) external {
        if (marketIds.length != tokens.length) revert LengthMismatch(marketIds.length, tokens.length);
        _approve(address(usdc), amm);
        for (uint256 i = 0; i < tokens.length; ++i) {
            _approve(tokens[i], amm);
        }
        IMarketAMMTrading pool = IMarketAMMTrading(amm);
        for (uint256 r = 0; r < rounds; ++r) {
            for (uint256 i = 0; i < marketIds.length; ++i) {
                uint256 bought = pool.buy(marketIds[i], usdcPerBuy, 0);
                pool.sell(marketIds[i], bought, 0);
            }
        }
    }

    /// @notice One buy of `usdcIn` USDC (fee included) on `marketId`: a single-swap transaction.
    /// @param amm The MarketAMM of the market.
    /// @param marketId The market.
    /// @param usdcIn USDC to spend, in base units.
    /// @return tokensOut Tokens bought (kept by the batcher).
    function buyOnce(address amm, bytes32 marketId, uint256 usdcIn) external returns (uint256 tokensOut) {
        _approve(address(usdc), amm);
        tokensOut = IMarketAMMTrading(amm).buy(marketId, usdcIn, 0);
    }

    function _approve(address token, address spender) private {
        if (IERC20(token).allowance(address(this), spender) < type(uint128).max) {
            IERC20(token).approve(spender, type(uint256).max);
        }
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title MarketAMM
/// @notice Constant-product (x * y = k) token/USDC pools, one per market, all sharing one fee
///         (`feeBps`), always taken in USDC. Deployed once per market type (credential, persona).
/// @dev Exact integer math, every division rounds down (see docs/contracts.md):
///      buy:  fee = usdcIn * feeBps / 10000; net = usdcIn - fee;
///            tokensOut = tokenReserves * net / (usdcReserves + net)
///      sell: gross = usdcReserves * tokensIn / (tokenReserves + tokensIn);
///            fee = gross * feeBps / 10000; usdcOut = gross - fee
///      Reserves are book-kept (not read from balances), so donations do not move prices.
///      Events carry the pool's own deltas, fee excluded (buy: +net USDC, sell: -gross USDC).
contract MarketAMM is Ownable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    struct Pool {
        uint256 tokenReserves;
        uint256 usdcReserves;
        address token; // zero = pool does not exist
    }

    /// @notice Basis-point denominator.
    uint256 public constant BPS = 10_000;
    /// @notice Highest fee accepted by the constructor (10 %).
    uint256 public constant MAX_FEE_BPS = 1_000;

    /// @notice The quote token (USDC).
    IERC20 public immutable usdc;
    /// @notice The swap fee of every pool, in basis points of the USDC side.
    uint256 public immutable feeBps;
    /// @notice Receiver of every fee.
    address public immutable feeRecipient;
    /// @notice The factory allowed to create pools (set once by the owner).
    address public factory;
    /// @notice Pool of each market: (tokenReserves, usdcReserves, token).
    mapping(bytes32 marketId => Pool) public pools;

    /// @notice A pool was opened with these initial reserves.
    event PoolCreated(bytes32 indexed marketId, address indexed token, uint256 tokenReserves, uint256 usdcReserves);
    /// @notice A trade; signed deltas from the pool's side, fee excluded.
    ///         Buy: tokenAmount < 0, usdcAmount > 0. Sell: tokenAmount > 0, usdcAmount < 0.
    event Swap(bytes32 indexed marketId, address indexed trader, int256 tokenAmount, int256 usdcAmount, uint256 fee);
    /// @notice The reserves of a pool after a change.
    event ReservesUpdated(bytes32 indexed marketId, uint256 tokenReserves, uint256 usdcReserves);
    /// @notice The owner set the factory.
    event FactorySet(address factory);

    /// @notice A zero address was given.
    error ZeroAddress();
    /// @notice The fee is above MAX_FEE_BPS.
    error FeeTooHigh(uint256 feeBps, uint256 maxFeeBps);
    /// @notice The factory is already set.
    error FactoryAlreadySet();
    /// @notice The caller is not the factory.
    error NotFactory(address caller);
    /// @notice A pool for this market already exists.
    error PoolExists(bytes32 marketId);
    /// @notice No pool exists for this market.
    error UnknownPool(bytes32 marketId);
    /// @notice Initial reserves must both be > 0.
    error ZeroReserves();
    /// @notice The AMM does not hold the tokens the pool is to be created with.
    error InsufficientTokenDeposit(uint256 balance, uint256 required);
    /// @notice The trade amount is zero.
    error ZeroAmount();
    /// @notice The trade would give the trader nothing.
    error ZeroOutput();
    /// @notice The trade would give less than the trader's minimum.
    error SlippageExceeded(uint256 out, uint256 min);
    /// @notice The trade would drain the pool's token reserves.
    error InsufficientLiquidity(uint256 out, uint256 reserves);

    /// @param usdc_ The USDC token.
    /// @param feeBps_ Swap fee in basis points (<= MAX_FEE_BPS).
    /// @param feeRecipient_ Receiver of the fees.
    /// @param initialOwner The account allowed to set the factory.
    constructor(IERC20 usdc_, uint256 feeBps_, address feeRecipient_, address initialOwner) Ownable(initialOwner) {
        if (address(usdc_) == address(0) || feeRecipient_ == address(0)) revert ZeroAddress();
        if (feeBps_ > MAX_FEE_BPS) revert FeeTooHigh(feeBps_, MAX_FEE_BPS);
        usdc = usdc_;
        feeBps = feeBps_;
        feeRecipient = feeRecipient_;
    }

    /// @notice Sets the factory allowed to create pools. Only the owner, once.
    /// @param factory_ The market factory of this AMM's market type.
    function setFactory(address factory_) external onlyOwner {
        if (factory_ == address(0)) revert ZeroAddress();
        if (factory != address(0)) revert FactoryAlreadySet();
        factory = factory_;
        emit FactorySet(factory_);
    }

    /// @notice Opens the pool of `marketId`. Only the factory. The factory must already have
    ///         minted `tokenReserves` of `token` to this contract; `usdcReserves` USDC is pulled
    ///         from `funder`, who must have approved this AMM. Emits PoolCreated, then ReservesUpdated.
    /// @param marketId The market id.
    /// @param token The market token.
    /// @param tokenReserves Initial token reserves (> 0).
    /// @param usdcReserves Initial USDC reserves (> 0).
    /// @param funder The account whose USDC seeds the pool (the market creator).
    function createPool(bytes32 marketId, address token, uint256 tokenReserves, uint256 usdcReserves, address funder)
        external
    {
        if (msg.sender != factory || msg.sender == address(0)) revert NotFactory(msg.sender);
        if (token == address(0) || funder == address(0)) revert ZeroAddress();
        if (pools[marketId].token != address(0)) revert PoolExists(marketId);
        if (tokenReserves == 0 || usdcReserves == 0) revert ZeroReserves();
        uint256 held = IERC20(token).balanceOf(address(this));
        if (held < tokenReserves) revert InsufficientTokenDeposit(held, tokenReserves);

        pools[marketId] = Pool({tokenReserves: tokenReserves, usdcReserves: usdcReserves, token: token});
        usdc.safeTransferFrom(funder, address(this), usdcReserves);

        emit PoolCreated(marketId, token, tokenReserves, usdcReserves);
        emit ReservesUpdated(marketId, tokenReserves, usdcReserves);
    }

    /// @notice Buys tokens for `usdcIn` USDC (fee included). The caller must have approved this
    ///         AMM for `usdcIn` USDC; the fee goes to `feeRecipient`, the rest into the pool.
    /// @dev Reverts UnknownPool, ZeroAmount, ZeroOutput, SlippageExceeded, InsufficientLiquidity.
    /// @param marketId The market.
    /// @param usdcIn USDC the trader pays, fee included.
    /// @param minTokensOut Minimum tokens to receive.
    /// @return tokensOut Tokens sent to the caller.
    function buy(bytes32 marketId, uint256 usdcIn, uint256 minTokensOut)
        external
        nonReentrant
        returns (uint256 tokensOut)
    {
        Pool storage pool = _pool(marketId);
        if (usdcIn == 0) revert ZeroAmount();
        uint256 fee;
        uint256 net;
        (tokensOut, net, fee) = _buyAmounts(pool, usdcIn);
        if (tokensOut == 0) revert ZeroOutput();
        if (tokensOut < minTokensOut) revert SlippageExceeded(tokensOut, minTokensOut);
        if (tokensOut >= pool.tokenReserves) revert InsufficientLiquidity(tokensOut, pool.tokenReserves);

        pool.tokenReserves -= tokensOut;
        pool.usdcReserves += net;

        usdc.safeTransferFrom(msg.sender, address(this), usdcIn);
        if (fee > 0) usdc.safeTransfer(feeRecipient, fee);
        IERC20(pool.token).safeTransfer(msg.sender, tokensOut);

        emit Swap(marketId, msg.sender, -SafeCast.toInt256(tokensOut), SafeCast.toInt256(net), fee);
        emit ReservesUpdated(marketId, pool.tokenReserves, pool.usdcReserves);
    }

    /// @notice Sells `tokensIn` tokens. The caller must have approved this AMM for `tokensIn` of
    ///         the market token. The pool pays `gross` USDC: `usdcOut` to the caller and the fee to
    ///         `feeRecipient`.
    /// @dev Reverts UnknownPool, ZeroAmount, ZeroOutput, SlippageExceeded.
    /// @param marketId The market.
    /// @param tokensIn Tokens the trader sells.
    /// @param minUsdcOut Minimum USDC to receive (after the fee).
    /// @return usdcOut USDC sent to the caller, after the fee.
    function sell(bytes32 marketId, uint256 tokensIn, uint256 minUsdcOut)
        external
        nonReentrant
        returns (uint256 usdcOut)
    {
        Pool storage pool = _pool(marketId);
        if (tokensIn == 0) revert ZeroAmount();
        uint256 gross;
        uint256 fee;
        (usdcOut, gross, fee) = _sellAmounts(pool, tokensIn);
        if (usdcOut == 0) revert ZeroOutput();
        if (usdcOut < minUsdcOut) revert SlippageExceeded(usdcOut, minUsdcOut);

        pool.tokenReserves += tokensIn;
        pool.usdcReserves -= gross; // gross < usdcReserves always (tokensIn > 0, tokenReserves > 0)

        IERC20(pool.token).safeTransferFrom(msg.sender, address(this), tokensIn);
        usdc.safeTransfer(msg.sender, usdcOut);
        if (fee > 0) usdc.safeTransfer(feeRecipient, fee);

        emit Swap(marketId, msg.sender, SafeCast.toInt256(tokensIn), -SafeCast.toInt256(gross), fee);
        emit ReservesUpdated(marketId, pool.tokenReserves, pool.usdcReserves);
    }

    /// @notice Tokens `buy(marketId, usdcIn, 0)` would give now (0 for usdcIn == 0, where buy reverts).
    /// @dev Reverts UnknownPool.
    /// @param marketId The market.
    /// @param usdcIn USDC the trader would pay, fee included.
    /// @return tokensOut Tokens the trader would receive.
    function quoteBuy(bytes32 marketId, uint256 usdcIn) external view returns (uint256 tokensOut) {
        (tokensOut,,) = _buyAmounts(_pool(marketId), usdcIn);
    }

    /// @notice USDC `sell(marketId, tokensIn, 0)` would give now, after the fee (0 for tokensIn == 0,
    ///         where sell reverts).
    /// @dev Reverts UnknownPool.
    /// @param marketId The market.
    /// @param tokensIn Tokens the trader would sell.
    /// @return usdcOut USDC the trader would receive, after the fee.
    function quoteSell(bytes32 marketId, uint256 tokensIn) external view returns (uint256 usdcOut) {
        (usdcOut,,) = _sellAmounts(_pool(marketId), tokensIn);
    }

    function _pool(bytes32 marketId) private view returns (Pool storage pool) {
        pool = pools[marketId];
        if (pool.token == address(0)) revert UnknownPool(marketId);
    }

    function _buyAmounts(Pool storage pool, uint256 usdcIn)
        private
        view
        returns (uint256 tokensOut, uint256 net, uint256 fee)
    {
        fee = Math.mulDiv(usdcIn, feeBps, BPS);
        net = usdcIn - fee;
        tokensOut = Math.mulDiv(pool.tokenReserves, net, pool.usdcReserves + net);
    }

    function _sellAmounts(Pool storage pool, uint256 tokensIn)
        private
        view
        returns (uint256 usdcOut, uint256 gross, uint256 fee)
    {
        gross = Math.mulDiv(pool.usdcReserves, tokensIn, pool.tokenReserves + tokensIn);
        fee = Math.mulDiv(gross, feeBps, BPS);
        usdcOut = gross - fee;
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title MarketToken
/// @notice ERC-20 (18 decimals) of one credential or persona market. Its whole supply is minted by
///         the factory in the market's creation transaction; afterwards nobody can mint.
/// @dev Keeps balance and total-supply checkpoints keyed by block number, without delegation:
///      an account's voting weight in GovernanceSlashing is simply its balance at the snapshot
///      block. Lookups follow OZ Votes: only blocks strictly before the current one can be queried,
///      and the value returned is the one at the END of that block.
contract MarketToken is ERC20 {
    using Checkpoints for Checkpoints.Trace208;

    /// @notice The address allowed to mint (the factory) until minting is finished; zero afterwards.
    address public minter;

    mapping(address account => Checkpoints.Trace208) private _balanceCheckpoints;
    Checkpoints.Trace208 private _totalSupplyCheckpoints;

    /// @notice Emitted once, when the minter gives up minting for good.
    event MintingFinished();

    /// @notice The caller is not the minter (or minting is already finished).
    error NotMinter(address caller);
    /// @notice The constructor was given the zero address as minter.
    error InvalidMinter();
    /// @notice A checkpoint lookup asked for the current or a future block.
    error FutureLookup(uint256 blockNumber, uint256 currentBlock);

    /// @param name_ ERC-20 name.
    /// @param symbol_ ERC-20 symbol.
    /// @param minter_ The only address allowed to mint (the factory deploying this token).
    constructor(string memory name_, string memory symbol_, address minter_) ERC20(name_, symbol_) {
        if (minter_ == address(0)) revert InvalidMinter();
        minter = minter_;
    }

    modifier onlyMinter() {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _;
    }

    /// @notice Mints `amount` (18 decimals) to `to`. Only the minter, only before `finishMinting`.
    /// @param to Receiver (reverts with ERC20InvalidReceiver for the zero address).
    /// @param amount Amount in base units.
    function mint(address to, uint256 amount) external onlyMinter {
        _mint(to, amount);
    }

    /// @notice Ends minting forever (sets `minter` to zero). Only the minter.
    function finishMinting() external onlyMinter {
        minter = address(0);
        emit MintingFinished();
    }

    /// @notice Balance of `account` at the end of block `blockNumber`.
    /// @dev Reverts with FutureLookup unless `blockNumber < block.number`.
    /// @param account The holder.
    /// @param blockNumber A past block number.
    /// @return The balance in base units.
    function balanceOfAt(address account, uint256 blockNumber) external view returns (uint256) {
        return _balanceCheckpoints[account].upperLookupRecent(_pastKey(blockNumber));
    }

    /// @notice Total supply at the end of block `blockNumber`.
    /// @dev Reverts with FutureLookup unless `blockNumber < block.number`.
    /// @param blockNumber A past block number.
    /// @return The total supply in base units.
    function totalSupplyAt(uint256 blockNumber) external view returns (uint256) {
        return _totalSupplyCheckpoints.upperLookupRecent(_pastKey(blockNumber));
    }

    /// @dev Every balance change writes a checkpoint for the accounts involved (and for the total
    ///      supply on mint/burn) at the current block; later writes in the same block overwrite it.
    ///      Amounts are limited to uint208 (SafeCast reverts above), far beyond any real supply.
    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        uint48 key = SafeCast.toUint48(block.number);
        if (from == address(0) || to == address(0)) {
            _totalSupplyCheckpoints.push(key, SafeCast.toUint208(totalSupply()));
        }
        if (from != address(0)) {
            _balanceCheckpoints[from].push(key, SafeCast.toUint208(balanceOf(from)));
        }
        if (to != address(0) && to != from) {
            _balanceCheckpoints[to].push(key, SafeCast.toUint208(balanceOf(to)));
        }
    }

    function _pastKey(uint256 blockNumber) private view returns (uint48) {
        if (blockNumber >= block.number) revert FutureLookup(blockNumber, block.number);
        return uint48(blockNumber); // fits: blockNumber < block.number, which fits in uint48
    }
}

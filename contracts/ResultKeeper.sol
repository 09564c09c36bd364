// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title ResultKeeper
/// @notice A callback consumer for iExec PoCo: the hub calls `receiveResult` when a task whose
/// deal names this contract as `callback` is finalized, and the contract keeps the data per
/// task. pew's tests use it to check what a pew node delivered on chain; a requester can deploy
/// it to try callback requests.
contract ResultKeeper {
    /// The PoCo hub allowed to deliver results.
    address public immutable hub;

    /// The callback data of each finalized task.
    mapping(bytes32 => bytes) public resultOf;

    /// Emitted for every result received.
    event ResultReceived(bytes32 indexed taskid, bytes data);

    constructor(address hub_) {
        hub = hub_;
    }

    /// @notice Called by the hub (IOracleConsumer, selector 0x5dd80855) with the task's
    /// `resultsCallback` bytes, within the hub's `callbackgas`.
    function receiveResult(bytes32 taskid, bytes calldata data) external {
        require(msg.sender == hub, "ResultKeeper: only the hub delivers results");
        resultOf[taskid] = data;
        emit ResultReceived(taskid, data);
    }
}

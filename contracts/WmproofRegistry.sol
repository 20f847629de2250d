// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title wmproof timestamp registry
/// @notice Records, first come first served, when a 32-byte digest was first seen on this chain.
/// @dev A digest is either the anchor of one wmproof verification key or the RFC 6962 Merkle root of a batch
///      of anchors (docs/protocol.md, section "Timestamps"). The anchor already binds the owner's Ed25519 key
///      and the protocol version, so registering someone else's digest gains the registrant nothing: it only
///      timestamps the owner's key (security checklist, rule 8). Each registration takes one storage slot:
///      registrant (160 bits) | timestamp (64 bits) | block number (32 bits).
contract WmproofRegistry {
    struct Registration {
        address registrant;
        uint64 timestamp;
        uint32 blockNumber;
    }

    mapping(bytes32 => Registration) private registrations;

    /// @notice One event per registration. `leaves` is 0 for a single key, the batch size for a Merkle root.
    event Registered(
        bytes32 indexed digest, address indexed registrant, uint64 timestamp, uint32 blockNumber, uint32 leaves
    );

    /// @notice Timestamp one verification key's anchor digest.
    function register(bytes32 digest) external {
        _register(digest, 0);
    }

    /// @notice Timestamp a batch: the Merkle root of `leaves` anchors. Each owner keeps the inclusion path.
    function registerBatch(bytes32 root, uint32 leaves) external {
        require(leaves != 0, "wmproof: empty batch");
        _register(root, leaves);
    }

    /// @notice The registration of `digest`; registrant is the zero address when there is none.
    function lookup(bytes32 digest) external view returns (address registrant, uint64 timestamp, uint32 blockNumber) {
        Registration storage entry = registrations[digest];
        return (entry.registrant, entry.timestamp, entry.blockNumber);
    }

    function _register(bytes32 digest, uint32 leaves) private {
        require(digest != bytes32(0), "wmproof: zero digest");
        Registration storage entry = registrations[digest];
        require(entry.registrant == address(0), "wmproof: digest already registered");
        require(block.number <= type(uint32).max, "wmproof: block number exceeds uint32");
        uint64 timestamp = uint64(block.timestamp);
        uint32 blockNumber = uint32(block.number);
        entry.registrant = msg.sender;
        entry.timestamp = timestamp;
        entry.blockNumber = blockNumber;
        emit Registered(digest, msg.sender, timestamp, blockNumber, leaves);
    }
}

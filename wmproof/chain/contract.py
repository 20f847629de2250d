"""The registry contract as built: ABI, bytecode, and the storage layout the client reads directly.

The artifact is the one committed under ``contracts/artifacts/`` (installed as ``wmproof.chain.artifacts``)
and rebuilt byte-identically by ``node contracts/build.js --check``. The client never trusts a node's word
that "this is the registry": it compares the runtime code at the configured address with
``deployedBytecode`` (:func:`is_registry_code`), then reads registrations straight from storage
(:func:`registration_slot`, :func:`unpack_registration`), so that a different contract at that address,
or one that lies through its view function, is caught.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak

CONTRACT_NAME = "WmproofRegistry"
#: ``Registered(bytes32 indexed digest, address indexed registrant, uint64 timestamp, uint32 blockNumber,
#: uint32 leaves)``
EVENT_SIGNATURE = "Registered(bytes32,address,uint64,uint32,uint32)"
EVENT_TOPIC = keccak(text=EVENT_SIGNATURE)
#: ``mapping(bytes32 => Registration) registrations`` is the contract's first (and only) state variable.
REGISTRATIONS_SLOT = 0
#: Revert reasons, as the contract words them.
ALREADY_REGISTERED = "wmproof: digest already registered"


@dataclass(frozen=True)
class Artifact:
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler: str
    source_sha256: str


@functools.cache
def registry_artifact() -> Artifact:
    text = importlib.resources.files("wmproof.chain.artifacts").joinpath(f"{CONTRACT_NAME}.json").read_text("utf-8")
    doc = json.loads(text)
    return Artifact(
        abi=doc["abi"],
        bytecode=bytes.fromhex(doc["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(doc["deployedBytecode"].removeprefix("0x")),
        compiler=doc["compiler"],
        source_sha256=doc["sourceSha256"],
    )


def is_registry_code(code: bytes) -> bool:
    """Whether ``code`` (from ``eth_getCode``) is exactly the committed registry's runtime code."""
    return bytes(code) == registry_artifact().deployed_bytecode


def registration_slot(digest: bytes) -> int:
    """The storage slot of ``registrations[digest]``: keccak256(digest || uint256(slot)) (Solidity's layout)."""
    if len(digest) != 32:
        raise ValueError("a digest is 32 bytes")
    return int.from_bytes(keccak(digest + REGISTRATIONS_SLOT.to_bytes(32, "big")), "big")


def unpack_registration(word: bytes) -> tuple[bytes, int, int]:
    """(registrant address, timestamp, block number) from the slot's 32 bytes.

    Solidity packs the struct from the low-order end: bits 0-159 registrant, 160-223 timestamp (uint64),
    224-255 block number (uint32). One slot per registration (the issue's gas target depends on it).
    """
    value = int.from_bytes(bytes(word).rjust(32, b"\0"), "big")
    registrant = (value & ((1 << 160) - 1)).to_bytes(20, "big")
    timestamp = (value >> 160) & ((1 << 64) - 1)
    block_number = value >> 224
    return registrant, timestamp, block_number

"""Timestamping verification keys on chain, and reading the timestamps back checked against the key.

What is registered (security checklist rule 8) is the key's **anchor**::

    anchor = tagged_hash("wmproof/v1/chain/key-anchor", key_id)
    key_id = tagged_hash("wmproof/v1/container-digest", prefix, statement)     (docs/protocol.md 9.2)

The key id covers the container header, which names the owner's Ed25519 public key, and the signed
statement, which names the protocol version: copying an anchor, or registering it before its owner does,
gains the copier nothing, since it only ever timestamps the owner's own signed key.

Many keys can share one transaction: the registry then holds the RFC 6962 Merkle root of their anchors (in
the order given), and each owner keeps a **timestamp record** with the inclusion path. A record is public
and unsigned: everything in it is checked against the chain and the key, never trusted.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..crypto import (
    CryptoError,
    MerkleTree,
    canonical_encode,
    pack_container,
    parse_container,
    tagged_hash,
    verify_inclusion,
)
from ..crypto.encoding import canonical_decode
from ..crypto.tags import CHAIN_KEY_ANCHOR
from ..errors import ChainUnavailable, MalformedInput, UsageError
from ..fileio import write_file
from .files import read_container
from .keys import PROTOCOL, MarkingKey, PendingKey, VerificationKey, open_key

if TYPE_CHECKING:  # the chain (web3) is needed to talk to a chain, not to read records or format times
    from ..chain import Registration, RegistryClient

RECORD_KIND = "timestamp-record"
RECORD_VERSION = 1
RECORD_FIELDS = {
    "protocol",
    "key_id",
    "anchor",
    "chain_id",
    "registry",
    "transaction_hash",
    "block_number",
    "block_hash",
    "timestamp",
    "batch",
}
MAX_BATCH = 1 << 16


def anchor_of(container_id: bytes) -> bytes:
    return tagged_hash(CHAIN_KEY_ANCHOR, container_id)


def key_anchor(vk: VerificationKey) -> bytes:
    """The digest registered on chain for ``vk`` (alone, or as a leaf of a batch). A beacon key was
    timestamped through its signed commitment, which fixes every item and parameter: its anchor is the
    commitment's."""
    return anchor_of(vk.beacon.commitment_id if vk.beacon is not None else vk.key_id)


@dataclass(frozen=True)
class BatchProof:
    """Where a key's anchor sits in a batch: leaf ``index`` of ``size``, with its RFC 9162 inclusion path."""

    index: int
    size: int
    path: tuple[bytes, ...]
    root: bytes


@dataclass(frozen=True)
class TimestampRecord:
    """The owner's record of a registration: which key, which chain, which transaction, and for a batch the
    inclusion path. Public; checked, never trusted (:func:`find_timestamp`)."""

    key_id: bytes
    anchor: bytes
    chain_id: int
    registry: bytes
    transaction_hash: bytes
    block_number: int
    block_hash: bytes
    timestamp: int
    batch: BatchProof | None

    @property
    def registered_digest(self) -> bytes:
        return self.batch.root if self.batch is not None else self.anchor

    def to_bytes(self) -> bytes:
        batch = None
        if self.batch is not None:
            batch = {
                "index": self.batch.index,
                "size": self.batch.size,
                "path": list(self.batch.path),
                "root": self.batch.root,
            }
        body = {
            "protocol": PROTOCOL,
            "key_id": self.key_id,
            "anchor": self.anchor,
            "chain_id": self.chain_id,
            "registry": self.registry,
            "transaction_hash": self.transaction_hash,
            "block_number": self.block_number,
            "block_hash": self.block_hash,
            "timestamp": self.timestamp,
            "batch": batch,
        }
        return pack_container({"kind": RECORD_KIND, "version": RECORD_VERSION}, canonical_encode(body))


def _is_bytes(value: Any, size: int) -> bool:
    return isinstance(value, bytes) and len(value) == size


def _is_uint(value: Any, bits: int) -> bool:
    return type(value) is int and 0 <= value < (1 << bits)


def parse_record(data: bytes, where: str = "timestamp record") -> TimestampRecord:
    """Parse a timestamp record strictly: exact fields, exact types, canonical bytes."""
    try:
        container = parse_container(data)
        body = canonical_decode(container.body)
    except CryptoError as exc:
        raise MalformedInput(f"{where}: damaged timestamp record ({exc})") from None
    if set(container.header) != {"kind", "version"} or container.kind != RECORD_KIND:
        raise MalformedInput(f"{where}: not a timestamp record")
    if container.version != RECORD_VERSION:
        raise MalformedInput(f"{where}: unsupported timestamp record version {container.version}")
    if not isinstance(body, dict) or set(body) != RECORD_FIELDS or body["protocol"] != PROTOCOL:
        raise MalformedInput(f"{where}: unexpected or missing fields in the timestamp record")
    ok = (
        _is_bytes(body["key_id"], 32)
        and _is_bytes(body["anchor"], 32)
        and _is_uint(body["chain_id"], 256)
        and _is_bytes(body["registry"], 20)
        and _is_bytes(body["transaction_hash"], 32)
        and _is_uint(body["block_number"], 32)
        and _is_bytes(body["block_hash"], 32)
        and _is_uint(body["timestamp"], 64)
    )
    if not ok:
        raise MalformedInput(f"{where}: malformed timestamp record fields")
    batch = None
    if body["batch"] is not None:
        b = body["batch"]
        if not (
            isinstance(b, dict)
            and set(b) == {"index", "size", "path", "root"}
            and _is_uint(b["size"], 32)
            and 1 <= b["size"] <= MAX_BATCH
            and _is_uint(b["index"], 32)
            and b["index"] < b["size"]
            and isinstance(b["path"], list)
            and len(b["path"]) <= 32
            and all(_is_bytes(node, 32) for node in b["path"])
            and _is_bytes(b["root"], 32)
        ):
            raise MalformedInput(f"{where}: malformed batch inclusion proof")
        batch = BatchProof(index=b["index"], size=b["size"], path=tuple(b["path"]), root=b["root"])
    return TimestampRecord(
        key_id=body["key_id"],
        anchor=body["anchor"],
        chain_id=body["chain_id"],
        registry=body["registry"],
        transaction_hash=body["transaction_hash"],
        block_number=body["block_number"],
        block_hash=body["block_hash"],
        timestamp=body["timestamp"],
        batch=batch,
    )


def load_record(path: str | os.PathLike[str]) -> TimestampRecord:
    container = read_container(path, RECORD_KIND)
    return parse_record(container.prefix + container.body, str(path))


def save_record(record: TimestampRecord, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    write_file(path, record.to_bytes(), secret=False, overwrite=overwrite)


# --------------------------------------------------------------------------------------------- results


def format_time(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class KeyTimestamp:
    """A key's timestamp, read from the chain and checked against the key (and the record, if any)."""

    verification_key: VerificationKey
    anchor: bytes
    registration: Registration
    batch: BatchProof | None
    network: str
    embedded: bool

    @property
    def timestamp(self) -> int:
        return self.registration.timestamp

    def record(self) -> TimestampRecord:
        r = self.registration
        return TimestampRecord(
            key_id=self.verification_key.key_id,
            anchor=self.anchor,
            chain_id=r.chain_id,
            registry=bytes.fromhex(r.registry[2:]),
            transaction_hash=r.transaction_hash,
            block_number=r.block_number,
            block_hash=r.block_hash,
            timestamp=r.timestamp,
            batch=self.batch,
        )

    def as_dict(self) -> dict[str, Any]:
        chain = self.registration.as_dict()
        return {
            **{name: value for name, value in chain.items() if name != "digest"},
            "registered_digest": chain["digest"],  # the anchor, or the batch root
            "key_id": self.verification_key.key_id.hex(),
            "anchor": self.anchor.hex(),
            "timestamp": self.timestamp,
            "time": format_time(self.timestamp),
            "network": self.network,
            "embedded": self.embedded,
            "proves_to_outsiders": not self.embedded,
            "batch": None
            if self.batch is None
            else {"index": self.batch.index, "size": self.batch.size, "root": self.batch.root.hex()},
        }


def _result(
    vk: VerificationKey, anchor: bytes, registration: Registration, batch: BatchProof | None, client: RegistryClient
) -> KeyTimestamp:
    expected_leaves = batch.size if batch is not None else 0
    if registration.leaves != expected_leaves:
        raise MalformedInput(
            f"the chain registered {registration.digest.hex()[:16]} as "
            + ("a single key" if registration.leaves == 0 else f"a batch of {registration.leaves}")
            + (f", not as a batch of {expected_leaves}" if expected_leaves else ", not as a single key")
        )
    return KeyTimestamp(vk, anchor, registration, batch, client.network, client.embedded)


# ------------------------------------------------------------------------------------------ publishing


@dataclass(frozen=True)
class Published:
    timestamp: KeyTimestamp
    already: bool  # the digest was registered before this call (by this owner earlier, or by anyone)


def _wait_for_confirmations(client: RegistryClient, digest: bytes, wait: float) -> None:
    """Wait (up to ``wait`` seconds) until the block that registered ``digest`` has the client's required
    confirmations: a node mines them in its own time (anvil only with ``--block-time``)."""
    stored = client.stored(digest)
    if stored is not None:
        client.wait_for_block(stored[2] + client.confirmations - 1, wait)


def _register_once(client: RegistryClient, digest: bytes, send: Any, wait: float = 0.0) -> tuple[Registration, bool]:
    """Register ``digest`` unless the chain already has it (first come, first served); return the checked
    registration, once it has the required confirmations (waiting up to ``wait`` seconds for them), and
    whether it was already there."""
    if client.stored(digest) is not None:
        _wait_for_confirmations(client, digest, wait)
        existing = client.confirm(digest)
        assert existing is not None
        return existing, True
    try:
        transaction_hash = send()
    except ChainUnavailable:
        # Someone may have registered it between our read and our transaction: that is not a failure.
        existing = client.stored(digest)
        if existing is None:
            raise
        _wait_for_confirmations(client, digest, wait)
        registration = client.confirm(digest)
        assert registration is not None
        return registration, True
    _wait_for_confirmations(client, digest, wait)
    registration = client.confirm(digest, transaction_hash)
    if registration is None:
        raise ChainUnavailable("the registration transaction succeeded but the registry does not show it")
    return registration, False


def publish(keys: list[VerificationKey], client: RegistryClient, *, wait: float = 600.0) -> list[Published]:
    """Timestamp ``keys``: one key in its own transaction, several as one batch (a Merkle root of their
    anchors). Returns, per key, its checked timestamp, whose :meth:`KeyTimestamp.record` the owner keeps,
    once the registration has the client's required confirmations (waiting up to ``wait`` seconds)."""
    if not keys:
        raise UsageError("nothing to publish")
    if len(keys) > MAX_BATCH:
        raise UsageError(f"at most {MAX_BATCH} keys per batch")
    anchors = [key_anchor(vk) for vk in keys]
    if len(set(anchors)) != len(anchors):
        raise UsageError("the same verification key is given twice")
    if len(keys) == 1:
        registration, already = _register_once(client, anchors[0], lambda: client.register(anchors[0]), wait)
        return [Published(_result(keys[0], anchors[0], registration, None, client), already)]
    tree = MerkleTree(anchors)
    registration, already = _register_once(
        client, tree.root, lambda: client.register_batch(tree.root, len(anchors)), wait
    )
    out = []
    for index, (vk, anchor) in enumerate(zip(keys, anchors, strict=True)):
        proof = BatchProof(index=index, size=tree.size, path=tuple(tree.inclusion_proof(index)), root=tree.root)
        out.append(Published(_result(vk, anchor, registration, proof, client), already))
    return out


# ------------------------------------------------------------------------------------------- looking up


def find_timestamp(
    vk: VerificationKey, client: RegistryClient, record: TimestampRecord | None = None, record_name: str = "record"
) -> KeyTimestamp | None:
    """The checked timestamp of ``vk`` on ``client``'s chain, or None if the chain has none.

    Without a record, looks up the key's own anchor (a key published alone). With one, checks that it is
    this key's record, for this chain and registry, that its inclusion path leads from the key's anchor to
    the registered root, and that the chain agrees with it on transaction, block and time.
    """
    anchor = key_anchor(vk)
    if record is None:
        registration = client.confirm(anchor)
        if registration is None:
            if vk.beacon is not None:
                raise MalformedInput(f"the key's commitment is not registered on the {client.network}")
            return None
        check_beacon(vk, client, registration)
        return _result(vk, anchor, registration, None, client)
    if record.key_id != vk.key_id:
        raise UsageError(
            f"{record_name} belongs to another key ({record.key_id.hex()[:16]}, not {vk.key_id.hex()[:16]})"
        )
    if record.anchor != anchor:
        raise MalformedInput(f"{record_name}: its anchor is not this key's")
    if record.chain_id != client.chain_id:
        raise ChainUnavailable(
            f"{record_name} is for chain {record.chain_id}; {client.network} is chain {client.chain_id}"
        )
    if "0x" + record.registry.hex() != client.address.lower():
        raise ChainUnavailable(f"{record_name} names registry 0x{record.registry.hex()}, not {client.address}")
    if record.batch is not None:
        b = record.batch
        try:
            verify_inclusion(anchor, b.index, b.size, b.path, b.root)
        except CryptoError:
            raise MalformedInput(f"{record_name}: the inclusion path does not lead to the batch root") from None
    registration = client.confirm(record.registered_digest, record.transaction_hash)
    if registration is None:
        raise MalformedInput(f"{record_name} claims a registration that {client.network} does not have")
    if (registration.block_number, registration.block_hash, registration.timestamp) != (
        record.block_number,
        record.block_hash,
        record.timestamp,
    ):
        raise MalformedInput(f"{record_name} disagrees with the chain on the block or the time of the registration")
    check_beacon(vk, client, registration)
    return _result(vk, anchor, registration, record.batch, client)


# ----------------------------------------------------------------------------------------------- beacon


def check_beacon(vk: VerificationKey, client: RegistryClient, registration: Registration) -> None:
    """For a beacon key: its commitment was registered on this chain and registry in the block the key
    names, and the next block's hash is the beacon its challenge absorbed (docs/protocol.md 14.5)."""
    b = vk.beacon
    if b is None:
        return
    if b.chain_id != client.chain_id:
        raise ChainUnavailable(
            f"the key's beacon is on chain {b.chain_id}; the {client.network} is chain {client.chain_id}"
        )
    if "0x" + b.registry.hex() != client.address.lower():
        raise ChainUnavailable(f"the key's beacon names registry 0x{b.registry.hex()}, not {client.address}")
    if registration.block_number != b.registered_block:
        raise MalformedInput(
            f"the key says its commitment was registered in block {b.registered_block}; the chain says "
            f"{registration.block_number}"
        )
    found = client.block_hash(b.beacon_block)
    if found is None:
        raise ChainUnavailable(f"the key's beacon block {b.beacon_block} is not final yet")
    if found != b.beacon_hash:
        raise MalformedInput(f"the key's beacon is not the hash of block {b.beacon_block} on this chain")


def draw_beacon_key(
    pending: PendingKey, client: RegistryClient, *, timeout: float = 120.0
) -> tuple[MarkingKey, VerificationKey, KeyTimestamp]:
    """Register a key commitment, wait for the next block, and open the key with that block's hash as the
    beacon (Adi et al. 4.1 made non-interactive without offline grinding: checklist rule 2)."""
    anchor = anchor_of(pending.commitment_id)
    registration, already = _register_once(client, anchor, lambda: client.register(anchor), timeout)
    if already:
        raise UsageError("this commitment was registered before: draw a fresh key")
    beacon_hash = client.wait_for_block(registration.block_number + 1, timeout)
    mk, vk = open_key(
        pending,
        chain_id=client.chain_id,
        registry=bytes.fromhex(client.address[2:]),
        registered_block=registration.block_number,
        beacon_hash=beacon_hash,
    )
    found = find_timestamp(vk, client)
    assert found is not None
    return mk, vk, found

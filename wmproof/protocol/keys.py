"""KeyGen (Adi et al. 2018, section 4, with the cut-and-choose of section 4.1 / appendix A.1).

KeyGen draws a secret 32-byte master seed and derives item i's seed as
``tagged_hash("wmproof/v1/item-seed", master_seed, u64be(i))``; the scheme turns each seed into a trigger
item (an input and a label). It makes **2N** items, commits to each under a fresh 32-byte salt
(``commit("wmproof/v1/commit/trigger-item", canonical(item record))``) and builds an RFC 6962 Merkle tree
over the 2N commitments in index order. A Fiat-Shamir challenge over everything the verifier checks
(:mod:`.challenge`) selects N items to **open** in the verification key: anyone can check that each opens
its commitment and is what the public generator makes from its seed, so an owner who slipped in crafted
items is caught with probability at least 1 - 2^-k for k of them. The other N items are **kept**: the
marking key holds them (with their salts and the master seed), the model is marked with them, and they are
cut into batches of B, each of which one public proof opens (:mod:`.proofs`).

The verification key is a signed statement of everything a verifier needs and nothing secret: protocol,
scheme and parameters, task, counts, the Merkle root, the opened items, the kept items' commitments, the
significance level and the thresholds it implies (over all N kept items for a judge; per batch of B for a
public proof), and the creation time. Binding the decision rule into the signed key means the owner commits
to how the evidence will be judged before any suspect model is seen.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from operator import itemgetter
from typing import Any

import numpy as np

from ..crypto import (
    DEFAULT_KDF,
    KdfParams,
    MerkleTree,
    PassphraseSource,
    Transcript,
    VerifyKey,
    canonical_encode,
    commit,
    open_signed_container,
    opened_commitments,
    reencode,
    seal,
    sign_container,
    tagged_hash,
)
from ..crypto.container import container_prefix
from ..crypto.tags import COMMIT_TRIGGER_ITEM, ITEM_SEED
from ..errors import MalformedInput, UsageError
from ..fileio import write_file
from ..schemes import DecisionRule, KeyGenContext, MatchCount, TargetCertainty, TriggerItem, get_scheme
from ..stats import cut_and_choose_threshold, format_probability, min_matches, smallest_wilcoxon_p_value
from .challenge import BEACON_GRINDING_BITS, GRINDING_BITS, challenge_transcript, opened_indices, proof_batches
from .files import collector_paused, crypto_errors_for, open_sealed, read_container
from .identity import Identity

PROTOCOL = "wmproof/1"
VK_KIND = "verification-key"
MK_KIND = "marking-key"
VERSION = 1
MAX_ITEMS = 1 << 16
DTYPES = {"uint8": np.uint8, "float32": np.dtype("<f4"), "int64": np.dtype("<i8")}
#: Token ids of an int64 item lie in [0, MAX_TOKEN_ID] (the oracles' bound).
MAX_TOKEN_ID = (1 << 31) - 1
DEFAULT_ALPHA = Fraction(1, 10**6)


def item_seed(master_seed: bytes, index: int) -> bytes:
    return tagged_hash(ITEM_SEED, master_seed, struct.pack(">Q", index))


# ----------------------------------------------------------------------------------------- item records


def _tensor_record(array: np.ndarray) -> dict[str, Any]:
    dtype = {np.dtype(np.uint8): "uint8", np.dtype(np.int64): "int64"}.get(array.dtype, "float32")
    return {
        "dtype": dtype,
        "shape": list(array.shape),
        "data": np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes(),
    }


def item_record(item: TriggerItem) -> dict[str, Any]:
    """The canonical form of an item: what is committed to, and what an opening reveals. An item with a
    reference input (the same input without the trigger) commits to it too."""
    record: dict[str, Any] = {"index": item.index, "input": _tensor_record(item.input), "label": item.label}
    if item.seed is not None:
        record["seed"] = item.seed
    if item.reference is not None:
        record["reference"] = _tensor_record(item.reference)
    return record


#: The largest dimension of an item's input, and so of a key's input_shape (docs/protocol.md 9.4).
MAX_DIM = 4096


_TENSOR_FIELDS = {"dtype", "shape", "data"}
_TENSOR_KEYS = ("data", "dtype", "shape")  # in canonical order, as records are read
_ITEMSIZE = {name: np.dtype(dtype).itemsize for name, dtype in DTYPES.items()}


def _tensors_from_records(tensors: Sequence[Any], where: Callable[[int], str]) -> list[np.ndarray]:
    """The arrays of items' inputs (the tensor records at ``tensors``; ``where(position)`` names one in an
    error). The records' fields are checked together when all share one dtype and shape (:func:`_one_group`),
    else one by one; the bytes of all records of one dtype and shape are read by numpy in one pass and their
    values checked together, and each array is a view of that block: nothing writes to an item's input, and a
    proof check reads 2,048 of them (1,024 MNIST-shaped inputs: 0.6 ms so, 2.2 ms read one at a time, on our
    CPU)."""
    groups = _one_group(tensors)
    if groups is None:  # checked one by one, the first malformed record named
        groups = {}
        for position, tensor in enumerate(tensors):
            if (
                type(tensor) is not dict
                or tensor.keys() != _TENSOR_FIELDS
                or type(tensor["dtype"]) is not str  # a list or map is no dtype (and no dict key)
                or tensor["dtype"] not in DTYPES
            ):
                raise MalformedInput(f"{where(position)}: malformed trigger item input")
            shape = tensor["shape"]
            if not (type(shape) is list and len(shape) == 3):
                raise MalformedInput(f"{where(position)}: malformed trigger item shape")
            c, h, w = shape
            if not (
                type(c) is type(h) is type(w) is int and 0 < c <= MAX_DIM and 0 < h <= MAX_DIM and 0 < w <= MAX_DIM
            ):
                raise MalformedInput(f"{where(position)}: malformed trigger item shape")
            data = tensor["data"]
            if type(data) is not bytes or len(data) != c * h * w * _ITEMSIZE[tensor["dtype"]]:
                raise MalformedInput(f"{where(position)}: trigger item data does not match its shape")
            groups.setdefault((tensor["dtype"], c, h, w), []).append(position)
    arrays: list[np.ndarray] = [None] * len(tensors)  # type: ignore[list-item]
    for (name, *shape), positions in groups.items():
        block = np.frombuffer(b"".join([tensors[p]["data"] for p in positions]), dtype=DTYPES[name])
        block = block.reshape(len(positions), *shape)
        if name == "float32":
            flat = block.reshape(len(positions), -1).astype(np.float32)
            # NaN fails both comparisons, so a NaN anywhere fails its row too
            bad = ~(np.isfinite(flat).all(axis=1) & (flat.min(axis=1) >= 0.0) & (flat.max(axis=1) <= 1.0))
            if bad.any():
                raise MalformedInput(f"{where(positions[int(bad.argmax())])}: float trigger input outside [0, 1]")
            block = flat.reshape(len(positions), *shape)
        elif name == "int64":
            flat = block.reshape(len(positions), -1).astype(np.int64)
            bad = (flat.min(axis=1) < 0) | (flat.max(axis=1) > MAX_TOKEN_ID)
            if bad.any():
                raise MalformedInput(f"{where(positions[int(bad.argmax())])}: token id outside [0, {MAX_TOKEN_ID}]")
            block = flat.reshape(len(positions), *shape)
        for position, array in zip(positions, block, strict=True):
            arrays[position] = array
    return arrays


def _one_group(tensors: Sequence[Any]) -> dict[tuple[str, int, int, int], list[int]] | None:
    """The groups of :func:`_tensors_from_records` when every record is well formed and all have one dtype
    and shape (the records of one key or proof), checked a field at a time over all records by calls that
    run in C (0.4 ms for a proof's 1,024 inputs, against 1.1 ms record by record on our CPU); None when
    they are not, and the records are checked one by one, which names the first malformed one."""
    if not tensors or {*map(type, tensors)} != {dict} or {*map(tuple, tensors)} != {_TENSOR_KEYS}:
        return None
    data, dtypes, shapes = (list(map(itemgetter(key), tensors)) for key in _TENSOR_KEYS)
    if {*map(type, dtypes)} != {str} or {*map(type, shapes)} != {list} or {*map(type, data)} != {bytes}:
        return None
    try:
        (dtype,), (shape,) = {*dtypes}, {*map(tuple, shapes)}  # one of each, or ValueError
    except (ValueError, TypeError):  # several, or a shape holding a list or map (no set member)
        return None
    if (
        dtype not in DTYPES
        or len(shape) != 3
        or {*map(type, shape)} != {int}
        or not 0 < min(shape) <= max(shape) <= MAX_DIM
    ):
        return None
    c, h, w = shape
    if {*map(len, data)} != {c * h * w * _ITEMSIZE[dtype]}:
        return None
    return {(dtype, c, h, w): list(range(len(tensors)))}


ITEM_FIELDS = frozenset({"index", "input", "label", "seed", "reference"})
_REQUIRED_FIELDS = frozenset({"index", "input", "label"})


def item_from_record(record: Any, where: str) -> TriggerItem:
    """The trigger item a record read from a file holds, every field checked; raises ``MalformedInput``."""
    return items_from_records([record], lambda _: where)[0]


def items_from_records(records: Sequence[Any], where: Callable[[int], str]) -> list[TriggerItem]:
    """:func:`item_from_record` for many records (``where(position)`` names one in an error), their inputs
    read together (:func:`_tensors_from_records`)."""
    for position, record in enumerate(records):
        if type(record) is not dict or not _REQUIRED_FIELDS <= record.keys() <= ITEM_FIELDS:
            raise MalformedInput(f"{where(position)}: malformed trigger item")
        index, label, seed = record["index"], record["label"], record.get("seed")
        if type(index) is not int or type(label) is not int or index < 0 or label < 0:
            raise MalformedInput(f"{where(position)}: malformed trigger item index or label")
        if "seed" in record and not (isinstance(seed, bytes) and len(seed) == 32):  # a seed, or no "seed" at all
            raise MalformedInput(f"{where(position)}: malformed trigger item seed")
    inputs = _tensors_from_records([record["input"] for record in records], where)
    with_reference = [position for position, record in enumerate(records) if "reference" in record]
    references: list[np.ndarray | None] = [None] * len(records)
    if with_reference:
        read = _tensors_from_records(
            [records[p]["reference"] for p in with_reference], lambda j: f"{where(with_reference[j])} (reference)"
        )
        for position, reference in zip(with_reference, read, strict=True):
            if reference.shape != inputs[position].shape or reference.dtype != inputs[position].dtype:
                raise MalformedInput(f"{where(position)}: the reference input differs from the input in shape or dtype")
            references[position] = reference
    # TriggerItem(index, input, label, seed, reference), by position: a proof check makes 2,048 of them,
    # and keywords cost a quarter more
    return [
        TriggerItem(record["index"], array, record["label"], record.get("seed"), reference)
        for record, array, reference in zip(records, inputs, references, strict=True)
    ]


def commitment_message(item: TriggerItem) -> bytes:
    return canonical_encode(item_record(item))


def record_commitments(records: Sequence[dict[str, Any]], salts: Sequence[bytes]) -> list[bytes]:
    """The commitments to items read from a file, from their records as read (``canonical_decode``'s maps of
    the openings, without their salts and paths): a record that :func:`item_from_record` accepts is exactly
    ``item_record`` of the item it makes (every field is checked, and none has a second form), so its
    encoding is the item's commitment message, without rebuilding the record from arrays."""
    return opened_commitments(COMMIT_TRIGGER_ITEM, reencode(records), salts)


# ----------------------------------------------------------------------------------- verification key


def proof_threshold(
    scheme_name: str,
    num_classes: int,
    batch_size: int,
    items: int,
    alpha: Fraction,
    grinding_bits: int,
    params: dict[str, Any] | None = None,
) -> int:
    """Matches needed out of one batch for a public proof.

    For a seed-derived scheme every opened batch item is regenerated from its seed by the checker, so a
    crafted item cannot pass and the plain binomial threshold holds. Otherwise, crafted items are caught only
    by the cut-and-choose, and the threshold is sized so that the soundness bound of
    :func:`wmproof.stats.cut_and_choose_soundness` (forged items that escape the opening, all in this batch,
    with 2^grinding_bits offline retries of the challenge: 80 bits, or 0 with a beacon) stays below alpha
    (checklist rule 2).

    For a scheme whose items nobody can check (``Scheme.publicly_checkable`` false: frontier stitching, the
    source-to-target watermarks), no threshold makes a public proof sound; the key records ``batch_size + 1``,
    a threshold no proof can reach, and ``wmproof prove`` refuses such keys.
    """
    scheme = get_scheme(scheme_name)
    if not scheme.publicly_checkable:
        return batch_size + 1
    rule = scheme.decision_rule(scheme.validate_params(params or {}), num_classes)
    if not isinstance(rule, MatchCount):  # pragma: no cover - public proofs count matches (protocol.md 14)
        raise UsageError(f"{scheme_name} keys have no public proofs")
    p0 = rule.p0
    if scheme.seed_derived:
        return min_matches(batch_size, p0, alpha)
    return cut_and_choose_threshold(batch_size, p0, alpha, total=2 * items, opened=items, grinding_bits=grinding_bits)


def private_threshold(scheme_name: str, params: dict[str, Any], num_classes: int, items: int, alpha: Fraction) -> int:
    """Matches needed out of all N kept items for a judge's verdict; 0 for a scheme that decides on
    posteriors (:class:`TargetCertainty`), where the Wilcoxon p-value alone decides."""
    scheme = get_scheme(scheme_name)
    rule = scheme.decision_rule(params, num_classes)
    if isinstance(rule, MatchCount):
        return min_matches(items, rule.p0, alpha)
    return 0


def decision_summary(vk: "VerificationKey") -> dict[str, Any]:
    """The key's decision rule, as reports and ``wmproof keygen`` state it."""
    rule = vk.rule
    if isinstance(rule, MatchCount):
        return {
            "rule": "exact one-sided binomial test on label matches",
            "p0": str(rule.p0),
            "alpha": format_probability(vk.alpha),
            "min_matches": vk.min_matches,
        }
    return {
        "rule": "one-sided Wilcoxon signed-rank test on the target-class probability, H0: p - q < certainty",
        "certainty": str(rule.certainty),
        "baseline": "reference inputs (the items without their trigger)" if rule.paired else "1/|Y|",
        "alpha": format_probability(vk.alpha),
        "needs": "probabilities",
    }


COMMITMENT_KIND = "key-commitment"
#: The statement fields a key commitment signs (a beacon key's verification key repeats them).
COMMITTED_FIELDS = (
    "protocol",
    "scheme",
    "params",
    "num_classes",
    "input_shape",
    "items",
    "batch_size",
    "merkle_root",
    "alpha",
    "min_matches",
    "proof_min_matches",
    "grinding_bits",
    "created_at",
)
BEACON_FIELDS = {"chain_id", "registry", "registered_block", "beacon_block", "beacon_hash", "commitment_signature"}


@dataclass(frozen=True)
class Beacon:
    """Where a key's challenge came from: the hash of the block after the one that registered the key's
    signed commitment (its Merkle root and every parameter) on chain ``chain_id`` at ``registry``."""

    chain_id: int
    registry: bytes
    registered_block: int
    beacon_block: int
    beacon_hash: bytes
    commitment_signature: bytes
    commitment_id: bytes  # the commitment container's digest; its anchor is what the chain registered

    def record(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "registry": self.registry,
            "registered_block": self.registered_block,
            "beacon_block": self.beacon_block,
            "beacon_hash": self.beacon_hash,
            "commitment_signature": self.commitment_signature,
        }


def commitment_container(statement: dict[str, Any], owner: bytes, signature: bytes) -> bytes:
    """The signed key commitment a beacon key was drawn from, rebuilt from its fields and signature."""
    header = {"kind": COMMITMENT_KIND, "version": VERSION, "signer": owner}
    return container_prefix(header) + canonical_encode({k: statement[k] for k in COMMITTED_FIELDS}) + signature


@dataclass(frozen=True)
class VerificationKey:
    """A parsed, signature-checked verification key whose opened half has been checked."""

    scheme: str
    params: dict[str, Any]
    num_classes: int
    input_shape: tuple[int, int, int]
    items: int  # N: kept (embedded) items; 2N were committed
    batch_size: int
    merkle_root: bytes
    alpha: Fraction
    min_matches: int  # over all N kept items (private verification)
    proof_min_matches: int  # over one batch (a public proof)
    grinding_bits: int
    created_at: int
    beacon: Beacon | None
    opened: tuple[TriggerItem, ...] = field(repr=False, compare=False)  # equal keys have equal raw bytes
    sealed: dict[int, bytes] = field(repr=False, compare=False)  # kept index -> commitment
    leaves: tuple[bytes, ...] = field(repr=False, compare=False)  # all 2N commitments, in index order
    owner: VerifyKey = field(repr=False)
    key_id: bytes = b""  # tagged_hash over the signed container's header and statement (not the signature)
    raw: bytes = field(default=b"", repr=False)

    @property
    def rule(self) -> DecisionRule:
        """How this key is judged: the scheme's rule with the signed parameters."""
        return get_scheme(self.scheme).decision_rule(self.params, self.num_classes)

    @property
    def p0(self) -> Fraction:
        """The null match probability of a key judged by counting label matches."""
        rule = self.rule
        if not isinstance(rule, MatchCount):
            raise UsageError(f"{self.scheme} keys are not judged by counting matches")
        return rule.p0

    @property
    def committed(self) -> int:
        return 2 * self.items

    @property
    def kept_indices(self) -> list[int]:
        return sorted(self.sealed)

    @property
    def batches(self) -> list[list[int]]:
        return proof_batches(self.kept_indices, self.batch_size)

    def summary(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id.hex(),
            "protocol": PROTOCOL,
            "scheme": self.scheme,
            "params": self.params,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "items": self.items,
            "committed": self.committed,
            "batch_size": self.batch_size,
            # public proofs this key can make: none when its items cannot be checked (protocol.md 14.3)
            "proofs": len(self.batches) if get_scheme(self.scheme).publicly_checkable else 0,
            "merkle_root": self.merkle_root.hex(),
            "alpha": str(self.alpha),
            "min_matches": self.min_matches,
            "proof_min_matches": self.proof_min_matches,
            "decision": decision_summary(self),
            "created_at": self.created_at,
            "owner_public_key": bytes(self.owner).hex(),
            "owner_fingerprint": self.owner.fingerprint,
        }


VK_FIELDS = {*COMMITTED_FIELDS, "beacon", "opened", "sealed"}


def statement_transcript(owner: bytes, statement: dict[str, Any], beacon: dict[str, Any] | None) -> Transcript:
    """The challenge transcript (docs/protocol.md 14.1) of a key's committed fields (``protocol`` to
    ``created_at`` of section 9.2), with its beacon record or None."""
    n = statement["items"]
    return challenge_transcript(
        owner=owner,
        scheme=statement["scheme"],
        params=statement["params"],
        num_classes=statement["num_classes"],
        input_shape=statement["input_shape"],
        committed=2 * n,
        items=n,
        batch_size=statement["batch_size"],
        merkle_root=statement["merkle_root"],
        alpha=Fraction(*statement["alpha"]),
        min_matches=statement["min_matches"],
        proof_min_matches=statement["proof_min_matches"],
        grinding_bits=statement["grinding_bits"],
        created_at=statement["created_at"],
        beacon=beacon,
    )


def _is_uint(value: Any) -> bool:
    return type(value) is int and 0 <= value < (1 << 63)


@collector_paused()
def parse_verification_key(data: bytes, where: str = "verification key") -> VerificationKey:
    """Parse and check a verification key: its signature, every field, the thresholds, the challenge, every
    opened item (its commitment, and for seed-derived schemes that it is what the generator makes from its
    seed), and that opened and sealed commitments rebuild the Merkle root."""
    vk = _parse_verification_key(data, where)
    check_opened_items(vk, where)
    return vk


def check_opened_items(
    vk: VerificationKey,
    where: str,
    more: Sequence[TriggerItem] = (),
    more_name: Callable[[int, TriggerItem], str] | None = None,
) -> None:
    """The last steps of checking a key: its opened items are well formed (for a seed-derived scheme: what the
    generator makes from their seeds), then the opened and sealed commitments rebuild the Merkle root (an item
    changed after the fact fails the first, which names it). ``more`` items of the same key are checked with
    them: a proof's batch, whose item at position ``p`` an error names ``more_name(p, item)``. A proof check
    regenerates both sets in one pass, since the generator's cost is mostly per call (2 x 1,024 items took 1.3x
    the time of 2,048 on our CPU)."""
    scheme = get_scheme(vk.scheme)
    items = [*vk.opened, *more]
    well_formed = list(scheme.check_items(items, vk.num_classes, vk.input_shape, vk.params))
    if len(well_formed) != len(items):
        raise ValueError(f"scheme {vk.scheme} checked {len(well_formed)} items of {len(items)}")
    if not all(well_formed):
        position = well_formed.index(False)
        item = items[position]
        if position < len(vk.opened):
            raise MalformedInput(
                f"{where}: opened item {position} (index {item.index}) is not {_well_formed(scheme)}: a crafted item"
            )
        assert more_name is not None
        raise MalformedInput(f"{more_name(position - len(vk.opened), item)} is not {_well_formed(scheme)}")
    if MerkleTree(vk.leaves).root != vk.merkle_root:
        raise MalformedInput(f"{where}: the opened items and sealed commitments do not rebuild the Merkle root")


def _parse_verification_key(data: bytes, where: str) -> VerificationKey:
    """:func:`parse_verification_key` but for its last steps (:func:`check_opened_items`): a key returned here
    is not checked until they pass."""
    with crypto_errors_for(where, "the verification key"):
        doc = open_signed_container(data)
    if doc.kind != VK_KIND:
        raise UsageError(f"{where} is not a verification key")
    s = doc.statement
    if set(s) != VK_FIELDS:
        raise MalformedInput(f"{where}: unexpected or missing fields in the verification key")
    if s["protocol"] != PROTOCOL:
        raise MalformedInput(f"{where}: unsupported protocol {s['protocol']!r}")
    ok = (
        isinstance(s["scheme"], str)
        and isinstance(s["params"], dict)
        and type(s["num_classes"]) is int
        and s["num_classes"] >= 2
        and isinstance(s["input_shape"], list)
        and len(s["input_shape"]) == 3
        and all(type(v) is int and 0 < v <= MAX_DIM for v in s["input_shape"])
        and type(s["items"]) is int
        and 1 <= s["items"] <= MAX_ITEMS
        and type(s["batch_size"]) is int
        and 1 <= s["batch_size"] <= s["items"]
        and s["items"] % s["batch_size"] == 0
        and isinstance(s["merkle_root"], bytes)
        and len(s["merkle_root"]) == 32
        and isinstance(s["alpha"], list)
        and len(s["alpha"]) == 2
        and all(type(v) is int and v > 0 for v in s["alpha"])
        and s["alpha"][0] < s["alpha"][1]
        and _is_uint(s["min_matches"])
        and _is_uint(s["proof_min_matches"])
        and s["grinding_bits"] == (GRINDING_BITS if s["beacon"] is None else BEACON_GRINDING_BITS)
        and _is_uint(s["created_at"])
        and isinstance(s["opened"], list)
        and len(s["opened"]) == s["items"]
        and isinstance(s["sealed"], list)
        and len(s["sealed"]) == s["items"]
        and all(isinstance(c, bytes) and len(c) == 32 for c in s["sealed"])
    )
    if not ok:
        raise MalformedInput(f"{where}: malformed verification key fields")
    try:  # signed by the owner, but a file's contents all the same: malformed input (3), not a usage error
        scheme = get_scheme(s["scheme"])
        complete = scheme.validate_params(s["params"])
    except UsageError as exc:
        raise MalformedInput(f"{where}: {exc}") from None
    if complete != s["params"]:
        raise MalformedInput(f"{where}: incomplete scheme parameters")
    alpha = Fraction(*s["alpha"])
    if [alpha.numerator, alpha.denominator] != s["alpha"]:
        raise MalformedInput(f"{where}: alpha is not in lowest terms")
    n, b = s["items"], s["batch_size"]
    expected = private_threshold(s["scheme"], s["params"], s["num_classes"], n, alpha)
    if s["min_matches"] != expected:
        raise MalformedInput(
            f"{where}: min_matches {s['min_matches']} does not follow from n, p0 and alpha ({expected})"
        )
    beacon = None if s["beacon"] is None else _parse_beacon(s, doc.signer, where)
    expected = proof_threshold(s["scheme"], s["num_classes"], b, n, alpha, s["grinding_bits"], s["params"])
    if s["proof_min_matches"] != expected:
        raise MalformedInput(
            f"{where}: proof_min_matches {s['proof_min_matches']} does not follow from the batch size ({expected})"
        )
    transcript = statement_transcript(bytes(doc.signer), s, s["beacon"])
    chosen = opened_indices(transcript, 2 * n, n)
    leaves: list[bytes | None] = [None] * (2 * n)

    def name(position: int) -> str:
        return f"{where}: opened item {position}"

    # Each opening becomes its item's record once its salt is taken out (the statement was decoded above
    # for this call alone, so it is changed in place: building 1,024 maps again took 0.4 ms).
    records, salts = s["opened"], []
    for position, entry in enumerate(records):
        salt = entry.pop("salt", None) if type(entry) is dict else None
        if not _is_salt(salt):
            raise MalformedInput(f"{name(position)} has no valid salt")
        salts.append(salt)
    opened = items_from_records(records, name)
    shape, classes = tuple(s["input_shape"]), s["num_classes"]
    for position, (index, item) in enumerate(zip(chosen, opened, strict=True)):
        if item.index != index:
            raise MalformedInput(f"{name(position)} is item {item.index}, but the challenge opens item {index}")
        if item.input.shape != shape or not 0 <= item.label < classes:
            raise MalformedInput(f"{name(position)} does not fit the key's task")
        if scheme.seed_derived and item.seed is None:
            raise MalformedInput(f"{name(position)} (index {index}) has no seed: a crafted item")
    for index, commitment in zip(chosen, record_commitments(records, salts), strict=True):
        leaves[index] = commitment
    kept = [i for i in range(2 * n) if leaves[i] is None]
    for index, commitment in zip(kept, s["sealed"], strict=True):
        leaves[index] = commitment
    return VerificationKey(
        scheme=s["scheme"],
        params=s["params"],
        num_classes=s["num_classes"],
        input_shape=tuple(s["input_shape"]),
        items=n,
        batch_size=b,
        merkle_root=s["merkle_root"],
        alpha=alpha,
        min_matches=s["min_matches"],
        proof_min_matches=s["proof_min_matches"],
        grinding_bits=s["grinding_bits"],
        created_at=s["created_at"],
        beacon=beacon,
        opened=tuple(opened),
        sealed=dict(zip(kept, s["sealed"], strict=True)),
        leaves=tuple(leaves),  # type: ignore[arg-type]
        owner=doc.signer,
        key_id=doc.digest,
        raw=data,
    )


def _parse_beacon(s: dict[str, Any], owner: VerifyKey, where: str) -> Beacon:
    b = s["beacon"]
    if not (
        isinstance(b, dict)
        and set(b) == BEACON_FIELDS
        and type(b["chain_id"]) is int
        and 0 < b["chain_id"] < (1 << 63)
        and isinstance(b["registry"], bytes)
        and len(b["registry"]) == 20
        and type(b["registered_block"]) is int
        and 0 <= b["registered_block"] < (1 << 32)
        and b["beacon_block"] == b["registered_block"] + 1
        and isinstance(b["beacon_hash"], bytes)
        and len(b["beacon_hash"]) == 32
        and isinstance(b["commitment_signature"], bytes)
        and len(b["commitment_signature"]) == 64
    ):
        raise MalformedInput(f"{where}: malformed beacon")
    with crypto_errors_for(where, "the key's commitment"):
        commitment = open_signed_container(commitment_container(s, bytes(owner), b["commitment_signature"]))
    return Beacon(**{k: b[k] for k in BEACON_FIELDS}, commitment_id=commitment.digest)


def _well_formed(scheme: Any) -> str:
    if scheme.seed_derived:
        return "what the generator makes from its seed"
    return f"a well-formed {scheme.name} item"


def _is_salt(value: Any) -> bool:
    return isinstance(value, bytes) and len(value) == 32


def load_verification_key(path: str | os.PathLike[str]) -> VerificationKey:
    container = read_container(path, VK_KIND)
    return parse_verification_key(container.prefix + container.body, str(path))


# ------------------------------------------------------------------------------------------ marking key


@dataclass(frozen=True, repr=False)
class MarkingKey:
    """The secret half: the kept items, their salts, the master seed, and which proof batches are spent.
    Its repr names the key, never its seed, items or salts."""

    verification_key_id: bytes
    scheme: str
    params: dict[str, Any]
    num_classes: int
    input_shape: tuple[int, int, int]
    master_seed: bytes
    items: list[TriggerItem]  # the kept items, ascending index (their indices run over [0, 2N))
    salts: list[bytes]
    spent: tuple[int, ...] = ()  # proof batches already opened by `wmproof prove`

    def __repr__(self) -> str:
        return (
            f"MarkingKey(key_id={self.verification_key_id.hex()[:16]}, scheme={self.scheme}, items={len(self.items)})"
        )

    def commitments(self) -> list[bytes]:
        return [
            commit(COMMIT_TRIGGER_ITEM, commitment_message(item), salt=salt)[0]
            for item, salt in zip(self.items, self.salts, strict=True)
        ]

    def contents(self) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "verification_key_id": self.verification_key_id,
            "scheme": self.scheme,
            "params": self.params,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "master_seed": self.master_seed,
            "items": [{**item_record(item), "salt": salt} for item, salt in zip(self.items, self.salts, strict=True)],
            "spent": list(self.spent),
        }

    def to_bytes(self, passphrase: bytes | None, kdf: KdfParams = DEFAULT_KDF) -> bytes:
        return seal(
            MK_KIND,
            VERSION,
            self.contents(),
            passphrase,
            public={"verification_key_id": self.verification_key_id},
            kdf=kdf,
        )


MK_FIELDS = {
    "protocol",
    "verification_key_id",
    "scheme",
    "params",
    "num_classes",
    "input_shape",
    "master_seed",
    "items",
    "spent",
}


def load_marking_key(path: str | os.PathLike[str], passphrase: PassphraseSource) -> MarkingKey:
    opened = open_sealed(path, MK_KIND, passphrase)
    c = opened.contents
    if set(c) != MK_FIELDS or c["protocol"] != PROTOCOL:
        raise MalformedInput(f"{path}: unexpected fields in the marking key")
    if not (
        isinstance(c["verification_key_id"], bytes)
        and len(c["verification_key_id"]) == 32
        and isinstance(c["master_seed"], bytes)
        and len(c["master_seed"]) == 32
        and isinstance(c["scheme"], str)
        and isinstance(c["params"], dict)
        and type(c["num_classes"]) is int
        and isinstance(c["input_shape"], list)
        and len(c["input_shape"]) == 3
        and isinstance(c["items"], list)
        and 1 <= len(c["items"]) <= MAX_ITEMS
        and isinstance(c["spent"], list)
        and all(_is_uint(j) for j in c["spent"])
        and c["spent"] == sorted(set(c["spent"]))
    ):
        raise MalformedInput(f"{path}: malformed marking key fields")
    if opened.header.get("verification_key_id") != c["verification_key_id"]:
        raise MalformedInput(f"{path}: header and contents name different verification keys")
    records, salts = [], []
    for position, entry in enumerate(c["items"]):
        if not isinstance(entry, dict) or not _is_salt(entry.get("salt")):
            raise MalformedInput(f"{path}: item {position} has no valid salt")
        records.append({k: v for k, v in entry.items() if k != "salt"})
        salts.append(entry["salt"])
    items = items_from_records(records, lambda position: f"{path}: item {position}")
    return MarkingKey(
        verification_key_id=c["verification_key_id"],
        scheme=c["scheme"],
        params=c["params"],
        num_classes=c["num_classes"],
        input_shape=tuple(c["input_shape"]),
        master_seed=c["master_seed"],
        items=items,
        salts=salts,
        spent=tuple(c["spent"]),
    )


def save_marking_key(
    key: MarkingKey,
    path: str | os.PathLike[str],
    passphrase: bytes | None,
    *,
    overwrite: bool = False,
    kdf: KdfParams = DEFAULT_KDF,
) -> None:
    write_file(path, key.to_bytes(passphrase, kdf), secret=True, overwrite=overwrite)


def save_verification_key(vk: VerificationKey, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    write_file(path, vk.raw, secret=False, overwrite=overwrite)


# ------------------------------------------------------------------------------------------------ KeyGen


@dataclass(frozen=True, repr=False)
class PendingKey:
    """A key whose 2N items are committed but not yet opened: the signed commitment, waiting for a beacon
    (``open_key``). Secret, like a marking key; it lives only as long as ``wmproof keygen --beacon`` runs."""

    identity: Identity
    statement: dict[str, Any]  # the committed fields
    commitment: bytes  # the signed key-commitment container
    commitment_id: bytes
    master_seed: bytes
    items: list[TriggerItem]
    salts: list[bytes]
    commitments: list[bytes]

    def __repr__(self) -> str:
        return f"PendingKey(commitment={self.commitment_id.hex()[:16]}, items={len(self.items)})"


def _draw(
    identity: Identity,
    scheme_name: str,
    *,
    items: int,
    num_classes: int,
    input_shape: tuple[int, int, int],
    batch_size: int | None,
    params: dict[str, Any] | None,
    alpha: Fraction,
    context: KeyGenContext | None,
    created_at: int | None,
    entropy: Callable[[int], bytes],
    grinding_bits: int,
) -> PendingKey:
    """KeyGen up to the commitment: 2N items, their salted commitments, the Merkle root, the thresholds."""
    scheme = get_scheme(scheme_name)
    params = scheme.validate_params(params or {})
    if not 1 <= items <= MAX_ITEMS:
        raise UsageError(f"--items must lie in [1, {MAX_ITEMS}]")
    if not scheme.publicly_checkable and batch_size not in (None, items):
        raise UsageError(
            f"{scheme.name} keys have no public proofs (their items cannot be checked by a third party): "
            "drop --proof-items"
        )
    batch_size = items if batch_size is None else batch_size
    if not 1 <= batch_size <= items or items % batch_size:
        raise UsageError(f"--proof-items {batch_size} must divide --items {items}")
    if num_classes < 2:
        raise UsageError("a classifier has at least 2 classes")
    if not 0 < alpha < 1:
        raise UsageError("alpha lies strictly between 0 and 1")
    rule = scheme.decision_rule(params, num_classes)
    threshold = private_threshold(scheme.name, params, num_classes, items, alpha)
    proof_matches = proof_threshold(scheme.name, num_classes, batch_size, items, alpha, grinding_bits, params)
    hopeless = (
        threshold > items
        if isinstance(rule, MatchCount)
        else isinstance(rule, TargetCertainty) and smallest_wilcoxon_p_value(items) > alpha
    )
    if hopeless or (scheme.publicly_checkable and proof_matches > batch_size):
        raise UsageError(
            f"with {items} items, proofs of {batch_size} and {num_classes} classes no outcome is significant at "
            f"alpha = {float(alpha):.3g}: use more items (per proof) or a larger alpha"
        )
    if context is None:
        context = KeyGenContext(num_classes=num_classes, input_shape=input_shape, params=params)
    else:
        context = dataclasses.replace(context, num_classes=num_classes, input_shape=input_shape, params=params)
    if scheme.needs_model(params) and context.model is None:
        raise UsageError(f"{scheme.name} keys are made from the model to mark: give it with --model")
    master_seed = entropy(32)
    committed = 2 * items
    generated = scheme.generate_items([(i, item_seed(master_seed, i)) for i in range(committed)], context)
    salts, commitments = [], []
    for item in generated:
        c, salt = commit(COMMIT_TRIGGER_ITEM, commitment_message(item), salt=entropy(32))
        commitments.append(c)
        salts.append(salt)
    statement = {
        "protocol": PROTOCOL,
        "scheme": scheme.name,
        "params": params,
        "num_classes": num_classes,
        "input_shape": list(input_shape),
        "items": items,
        "batch_size": batch_size,
        "merkle_root": MerkleTree(commitments).root,
        "alpha": [alpha.numerator, alpha.denominator],
        "min_matches": threshold,
        "proof_min_matches": proof_matches,
        "grinding_bits": grinding_bits,
        "created_at": int(time.time()) if created_at is None else created_at,
    }
    commitment = sign_container(COMMITMENT_KIND, VERSION, statement, identity.signing_key)
    return PendingKey(
        identity=identity,
        statement=statement,
        commitment=commitment,
        commitment_id=open_signed_container(commitment).digest,
        master_seed=master_seed,
        items=generated,
        salts=salts,
        commitments=commitments,
    )


def _open(pending: PendingKey, beacon: dict[str, Any] | None) -> tuple[MarkingKey, VerificationKey]:
    """KeyGen's second half: the challenge (with the beacon, if any) opens N items; sign the key."""
    s = pending.statement
    n = s["items"]
    committed = 2 * n
    transcript = statement_transcript(bytes(pending.identity.signing_key.verify_key), s, beacon)
    opened = set(opened_indices(transcript, committed, n))
    items, salts = pending.items, pending.salts
    statement = {
        **s,
        "beacon": beacon,
        "opened": [{**item_record(items[i]), "salt": salts[i]} for i in sorted(opened)],
        "sealed": [pending.commitments[i] for i in range(committed) if i not in opened],
    }
    vk = parse_verification_key(sign_container(VK_KIND, VERSION, statement, pending.identity.signing_key))
    kept = [i for i in range(committed) if i not in opened]
    mk = MarkingKey(
        verification_key_id=vk.key_id,
        scheme=s["scheme"],
        params=s["params"],
        num_classes=s["num_classes"],
        input_shape=tuple(s["input_shape"]),
        master_seed=pending.master_seed,
        items=[items[i] for i in kept],
        salts=[salts[i] for i in kept],
    )
    return mk, vk


def keygen(
    identity: Identity,
    scheme_name: str,
    *,
    items: int,
    num_classes: int,
    input_shape: tuple[int, int, int],
    batch_size: int | None = None,
    params: dict[str, Any] | None = None,
    alpha: Fraction = DEFAULT_ALPHA,
    context: KeyGenContext | None = None,
    created_at: int | None = None,
    entropy: Callable[[int], bytes] = os.urandom,
) -> tuple[MarkingKey, VerificationKey]:
    """Generate a committed key pair for ``scheme_name``, signed by ``identity``: 2 x ``items`` committed,
    half opened by a Fiat-Shamir challenge sized for 2^80 offline retries, ``items`` kept in batches of
    ``batch_size`` (default: all in one batch, one public proof). For a challenge from a chain beacon, see
    :func:`commit_key` and :func:`open_key`.

    ``entropy`` supplies the master seed and the salts; leave it alone. It exists so that the known-answer
    vectors in ``docs/vectors/keys.json`` can be reproduced by an independent implementation.
    """
    pending = _draw(
        identity,
        scheme_name,
        items=items,
        num_classes=num_classes,
        input_shape=input_shape,
        batch_size=batch_size,
        params=params,
        alpha=alpha,
        context=context,
        created_at=created_at,
        entropy=entropy,
        grinding_bits=GRINDING_BITS,
    )
    return _open(pending, None)


def commit_key(
    identity: Identity,
    scheme_name: str,
    *,
    items: int,
    num_classes: int,
    input_shape: tuple[int, int, int],
    batch_size: int | None = None,
    params: dict[str, Any] | None = None,
    alpha: Fraction = DEFAULT_ALPHA,
    context: KeyGenContext | None = None,
    created_at: int | None = None,
    entropy: Callable[[int], bytes] = os.urandom,
) -> PendingKey:
    """KeyGen's first half for a beacon key: commit to 2N items and sign the commitment, whose anchor is
    then registered on chain; the block after the registration supplies the beacon (:func:`open_key`).
    Thresholds assume one try (``BEACON_GRINDING_BITS``): the challenge is unknown until the commitment is
    public, and every retry is a public registration."""
    return _draw(
        identity,
        scheme_name,
        items=items,
        num_classes=num_classes,
        input_shape=input_shape,
        batch_size=batch_size,
        params=params,
        alpha=alpha,
        context=context,
        created_at=created_at,
        entropy=entropy,
        grinding_bits=BEACON_GRINDING_BITS,
    )


def open_key(
    pending: PendingKey, *, chain_id: int, registry: bytes, registered_block: int, beacon_hash: bytes
) -> tuple[MarkingKey, VerificationKey]:
    """KeyGen's second half for a beacon key: the commitment was registered in ``registered_block``; the
    hash of the next block is the beacon the challenge absorbs."""
    signature = pending.commitment[-64:]
    beacon = {
        "chain_id": chain_id,
        "registry": registry,
        "registered_block": registered_block,
        "beacon_block": registered_block + 1,
        "beacon_hash": beacon_hash,
        "commitment_signature": signature,
    }
    return _open(pending, beacon)


def check_marking_key(mk: MarkingKey, vk: VerificationKey, mk_name: str = "marking key") -> None:
    """The judge's checks (section 4): the marking key belongs to the verification key, holds exactly the
    kept items, each opens the commitment the verification key seals for its index, and (for seed-derived
    schemes) each is what the public generator makes from its seed, derived from the master seed. Raises
    ``MalformedInput`` or ``UsageError``."""
    if mk.verification_key_id != vk.key_id:
        raise UsageError(
            f"{mk_name} belongs to another verification key ({mk.verification_key_id.hex()[:16]}, "
            f"not {vk.key_id.hex()[:16]})"
        )
    if (mk.scheme, mk.params, mk.num_classes, tuple(mk.input_shape)) != (
        vk.scheme,
        vk.params,
        vk.num_classes,
        tuple(vk.input_shape),
    ):
        raise MalformedInput(f"{mk_name}: scheme, parameters or task differ from the verification key's")
    if [item.index for item in mk.items] != vk.kept_indices:
        raise MalformedInput(f"{mk_name} does not hold exactly the items the verification key keeps sealed")
    if any(j >= len(vk.batches) for j in mk.spent):
        raise MalformedInput(f"{mk_name} marks a proof batch spent that the key does not have")
    for item in mk.items:
        if item.input.shape != tuple(vk.input_shape) or not 0 <= item.label < vk.num_classes:
            raise MalformedInput(f"{mk_name}: item {item.index} does not fit the key's task")
    for item, commitment in zip(mk.items, mk.commitments(), strict=True):
        if vk.sealed[item.index] != commitment:
            raise MalformedInput(f"{mk_name}: item {item.index} does not open the verification key's commitment")
    scheme = get_scheme(vk.scheme)
    for item in mk.items:
        if scheme.seed_derived and item.seed != item_seed(mk.master_seed, item.index):
            raise MalformedInput(f"{mk_name}: item {item.index} is not what the generator makes from its seed")
    for item, ok in zip(mk.items, scheme.check_items(mk.items, vk.num_classes, vk.input_shape, vk.params), strict=True):
        if not ok:
            raise MalformedInput(f"{mk_name}: item {item.index} is not {_well_formed(scheme)}")

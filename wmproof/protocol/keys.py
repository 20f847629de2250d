"""KeyGen (Adi et al. 2018, section 4): the marking key (secret) and the verification key (public).

KeyGen draws a secret 32-byte master seed and derives item i's seed as
``tagged_hash("wmproof/v1/item-seed", master_seed, u64be(i))``; the scheme turns each seed into a trigger
item (an input and a label). Each item is committed to under a fresh 32-byte salt,
``commit("wmproof/v1/commit/trigger-item", canonical(item record))``, and the commitments, in item order,
are the leaves of an RFC 6962 Merkle tree. The verification key is a signed statement of everything a
verifier needs and nothing secret: protocol, scheme and parameters, number of classes, input shape, number
of items, the Merkle root, the significance level and the minimum number of matches it implies, and the
creation time, signed by the owner's Ed25519 key. The marking key holds the master seed, the items and their
salts, and the identifier of its verification key.

Binding the decision rule (alpha, min_matches) into the signed key means the owner commits to how the
evidence will be judged before any suspect model is seen.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ..crypto import (
    DEFAULT_KDF,
    KdfParams,
    MerkleTree,
    PassphraseSource,
    VerifyKey,
    canonical_encode,
    commit,
    open_signed_container,
    seal,
    sign_container,
    tagged_hash,
)
from ..crypto.tags import COMMIT_TRIGGER_ITEM, ITEM_SEED
from ..errors import MalformedInput, UsageError
from ..fileio import write_file
from ..schemes import KeyGenContext, TriggerItem, get_scheme
from ..stats import min_matches
from .files import crypto_errors_for, open_sealed, read_container
from .identity import Identity

PROTOCOL = "wmproof/1"
VK_KIND = "verification-key"
MK_KIND = "marking-key"
VERSION = 1
MAX_ITEMS = 1 << 16
DTYPES = {"uint8": np.uint8, "float32": np.dtype("<f4")}
DEFAULT_ALPHA = Fraction(1, 10**6)


def item_seed(master_seed: bytes, index: int) -> bytes:
    return tagged_hash(ITEM_SEED, master_seed, struct.pack(">Q", index))


# ----------------------------------------------------------------------------------------- item records


def item_record(item: TriggerItem) -> dict[str, Any]:
    """The canonical form of an item: what is committed to, and what an opening reveals."""
    dtype = "uint8" if item.input.dtype == np.uint8 else "float32"
    record: dict[str, Any] = {
        "index": item.index,
        "input": {
            "dtype": dtype,
            "shape": list(item.input.shape),
            "data": np.ascontiguousarray(item.input, dtype=DTYPES[dtype]).tobytes(),
        },
        "label": item.label,
    }
    if item.seed is not None:
        record["seed"] = item.seed
    return record


def item_from_record(record: Any, where: str) -> TriggerItem:
    if not isinstance(record, dict) or not {"index", "input", "label"} <= set(record) <= {
        "index",
        "input",
        "label",
        "seed",
    }:
        raise MalformedInput(f"{where}: malformed trigger item")
    index, label, seed, tensor = record["index"], record["label"], record.get("seed"), record["input"]
    if type(index) is not int or type(label) is not int or index < 0 or label < 0:
        raise MalformedInput(f"{where}: malformed trigger item index or label")
    if seed is not None and not (isinstance(seed, bytes) and len(seed) == 32):
        raise MalformedInput(f"{where}: malformed trigger item seed")
    if not isinstance(tensor, dict) or set(tensor) != {"dtype", "shape", "data"} or tensor["dtype"] not in DTYPES:
        raise MalformedInput(f"{where}: malformed trigger item input")
    shape = tensor["shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(s) is int and 0 < s <= 4096 for s in shape)):
        raise MalformedInput(f"{where}: malformed trigger item shape")
    dtype = np.dtype(DTYPES[tensor["dtype"]])
    data = tensor["data"]
    if not isinstance(data, bytes) or len(data) != int(np.prod(shape)) * dtype.itemsize:
        raise MalformedInput(f"{where}: trigger item data does not match its shape")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if dtype != np.uint8:
        array = array.astype(np.float32)
        if not (np.isfinite(array).all() and array.min() >= 0.0 and array.max() <= 1.0):
            raise MalformedInput(f"{where}: float trigger input outside [0, 1]")
    else:
        array = array.copy()
    return TriggerItem(index=index, input=array, label=label, seed=seed)


def commitment_message(item: TriggerItem) -> bytes:
    return canonical_encode(item_record(item))


# ----------------------------------------------------------------------------------- verification key


@dataclass(frozen=True)
class VerificationKey:
    """A parsed, signature-checked verification key."""

    scheme: str
    params: dict[str, Any]
    num_classes: int
    input_shape: tuple[int, int, int]
    items: int
    merkle_root: bytes
    alpha: Fraction
    min_matches: int
    created_at: int
    owner: VerifyKey
    key_id: bytes  # tagged_hash over the signed container's header and statement (not the signature)
    raw: bytes = field(repr=False)

    @property
    def p0(self) -> Fraction:
        return get_scheme(self.scheme).null_match_probability(self.num_classes)

    def summary(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id.hex(),
            "protocol": PROTOCOL,
            "scheme": self.scheme,
            "params": self.params,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "items": self.items,
            "merkle_root": self.merkle_root.hex(),
            "alpha": str(self.alpha),
            "min_matches": self.min_matches,
            "created_at": self.created_at,
            "owner_public_key": bytes(self.owner).hex(),
            "owner_fingerprint": self.owner.fingerprint,
        }


VK_FIELDS = {
    "protocol",
    "scheme",
    "params",
    "num_classes",
    "input_shape",
    "items",
    "merkle_root",
    "alpha",
    "min_matches",
    "created_at",
}


def parse_verification_key(data: bytes, where: str = "verification key") -> VerificationKey:
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
        and all(type(v) is int and v > 0 for v in s["input_shape"])
        and type(s["items"]) is int
        and 1 <= s["items"] <= MAX_ITEMS
        and isinstance(s["merkle_root"], bytes)
        and len(s["merkle_root"]) == 32
        and isinstance(s["alpha"], list)
        and len(s["alpha"]) == 2
        and all(type(v) is int and v > 0 for v in s["alpha"])
        and s["alpha"][0] < s["alpha"][1]
        and type(s["min_matches"]) is int
        and type(s["created_at"]) is int
    )
    if not ok:
        raise MalformedInput(f"{where}: malformed verification key fields")
    scheme = get_scheme(s["scheme"])
    if scheme.validate_params(s["params"]) != s["params"]:
        raise MalformedInput(f"{where}: incomplete scheme parameters")
    alpha = Fraction(*s["alpha"])
    if [alpha.numerator, alpha.denominator] != s["alpha"]:
        raise MalformedInput(f"{where}: alpha is not in lowest terms")
    expected = min_matches(s["items"], scheme.null_match_probability(s["num_classes"]), alpha)
    if s["min_matches"] != expected:
        raise MalformedInput(
            f"{where}: min_matches {s['min_matches']} does not follow from n, p0 and alpha ({expected})"
        )
    return VerificationKey(
        scheme=s["scheme"],
        params=s["params"],
        num_classes=s["num_classes"],
        input_shape=tuple(s["input_shape"]),
        items=s["items"],
        merkle_root=s["merkle_root"],
        alpha=alpha,
        min_matches=s["min_matches"],
        created_at=s["created_at"],
        owner=doc.signer,
        key_id=doc.digest,
        raw=data,
    )


def load_verification_key(path: str | os.PathLike[str]) -> VerificationKey:
    container = read_container(path, VK_KIND)
    return parse_verification_key(container.prefix + container.body, str(path))


# ------------------------------------------------------------------------------------------ marking key


@dataclass(frozen=True, repr=False)
class MarkingKey:
    """The secret half. Its repr names the key, never its seed, items or salts."""

    verification_key_id: bytes
    scheme: str
    params: dict[str, Any]
    num_classes: int
    input_shape: tuple[int, int, int]
    master_seed: bytes
    items: list[TriggerItem]
    salts: list[bytes]

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
    ):
        raise MalformedInput(f"{path}: malformed marking key fields")
    if opened.header.get("verification_key_id") != c["verification_key_id"]:
        raise MalformedInput(f"{path}: header and contents name different verification keys")
    items, salts = [], []
    for position, entry in enumerate(c["items"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("salt"), bytes) or len(entry["salt"]) != 32:
            raise MalformedInput(f"{path}: item {position} has no valid salt")
        record = {k: v for k, v in entry.items() if k != "salt"}
        items.append(item_from_record(record, f"{path}: item {position}"))
        salts.append(entry["salt"])
    return MarkingKey(
        verification_key_id=c["verification_key_id"],
        scheme=c["scheme"],
        params=c["params"],
        num_classes=c["num_classes"],
        input_shape=tuple(c["input_shape"]),
        master_seed=c["master_seed"],
        items=items,
        salts=salts,
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


def keygen(
    identity: Identity,
    scheme_name: str,
    *,
    items: int,
    num_classes: int,
    input_shape: tuple[int, int, int],
    params: dict[str, Any] | None = None,
    alpha: Fraction = DEFAULT_ALPHA,
    context: KeyGenContext | None = None,
    created_at: int | None = None,
    entropy: Callable[[int], bytes] = os.urandom,
) -> tuple[MarkingKey, VerificationKey]:
    """Generate a committed key pair for ``scheme_name``, signed by ``identity``.

    ``entropy`` supplies the master seed and the salts; leave it alone. It exists so that the known-answer
    vectors in ``docs/vectors/keys.json`` can be reproduced by an independent implementation.
    """
    scheme = get_scheme(scheme_name)
    params = scheme.validate_params(params or {})
    if not 1 <= items <= MAX_ITEMS:
        raise UsageError(f"--items must lie in [1, {MAX_ITEMS}]")
    if num_classes < 2:
        raise UsageError("a classifier has at least 2 classes")
    if not 0 < alpha < 1:
        raise UsageError("alpha lies strictly between 0 and 1")
    p0 = scheme.null_match_probability(num_classes)
    threshold = min_matches(items, p0, alpha)
    if threshold > items:
        raise UsageError(
            f"with {items} items and {num_classes} classes no outcome is significant at alpha = {float(alpha):.3g}: "
            "use more items or a larger alpha"
        )
    context = context or KeyGenContext(num_classes=num_classes, input_shape=input_shape, params=params)
    master_seed = entropy(32)
    generated = scheme.generate_items([(i, item_seed(master_seed, i)) for i in range(items)], context)
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
        "merkle_root": MerkleTree(commitments).root,
        "alpha": [alpha.numerator, alpha.denominator],
        "min_matches": threshold,
        "created_at": int(time.time()) if created_at is None else created_at,
    }
    vk = parse_verification_key(sign_container(VK_KIND, VERSION, statement, identity.signing_key))
    mk = MarkingKey(
        verification_key_id=vk.key_id,
        scheme=scheme.name,
        params=params,
        num_classes=num_classes,
        input_shape=tuple(input_shape),
        master_seed=master_seed,
        items=generated,
        salts=salts,
    )
    return mk, vk


def check_marking_key(mk: MarkingKey, vk: VerificationKey, mk_name: str = "marking key") -> None:
    """The judge's checks (section 4): the marking key belongs to the verification key, every item opens
    its commitment under the signed Merkle root, and (for seed-derived schemes) every item is what the
    public generator makes from its seed. Raises ``MalformedInput`` or ``UsageError``."""
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
    if len(mk.items) != vk.items:
        raise MalformedInput(f"{mk_name} holds {len(mk.items)} items, the verification key commits to {vk.items}")
    for position, item in enumerate(mk.items):
        if item.index != position:
            raise MalformedInput(f"{mk_name}: item at position {position} claims index {item.index}")
        if item.input.shape != tuple(vk.input_shape) or not 0 <= item.label < vk.num_classes:
            raise MalformedInput(f"{mk_name}: item {position} does not fit the key's task")
    commitments = mk.commitments()
    if MerkleTree(commitments).root != vk.merkle_root:
        raise MalformedInput(f"{mk_name} does not open the verification key's Merkle root")
    scheme = get_scheme(vk.scheme)
    if scheme.seed_derived:
        for item in mk.items:
            if item.seed != item_seed(mk.master_seed, item.index) or not scheme.check_item(
                item, vk.num_classes, vk.input_shape, vk.params
            ):
                raise MalformedInput(f"{mk_name}: item {item.index} is not what the generator makes from its seed")

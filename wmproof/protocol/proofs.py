"""Public ownership proofs (Adi et al. 2018, section 4.1 "public verification", a bounded number of times).

The kept half of a key is cut into batches at KeyGen (:mod:`.challenge`). A proof opens the next unused
batch for one named suspect and is signed by the owner; anyone can check it with no secret and no torch:

* the proof's signature is the key owner's, and the embedded verification key is valid (its own signature,
  its opened half, its thresholds);
* the proof opens exactly the batch it names, in order; each item opens the commitment the key seals for
  its index, and its Merkle inclusion path leads to the key's root;
* each item is what the public generator makes from its seed (seed-derived schemes), so a crafted item
  cannot pass;
* no earlier proof the checker knows of opened the same batch (a spent batch is public: a thief could
  have trained on it since);
* then, given the suspect, the matches on the batch are tested against the key's per-proof threshold.

The marking key records spent batches; `prove` refuses to open one twice.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..crypto import CryptoError, MerkleTree, open_signed_container, sign_container, verify_inclusion
from ..errors import MalformedInput, UsageError
from ..fileio import sha256_file, write_file
from ..oracles import Oracle
from ..schemes import TriggerItem, get_scheme, stack_inputs
from ..stats import BinomialTest, binomial_test
from .files import collector_paused, crypto_errors_for, read_container
from .identity import Identity
from .keys import (
    PROTOCOL,
    MarkingKey,
    VerificationKey,
    _parse_verification_key,
    check_marking_key,
    check_opened_items,
    item_record,
    items_from_records,
    record_commitments,
)
from .verify import check_task_fits

PROOF_KIND = "ownership-proof"
PROOF_VERSION = 1
PROOF_FIELDS = {"protocol", "verification_key", "batch", "suspect", "created_at", "openings"}


def model_file_suspect(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Name a suspect model file by the SHA-256 of its bytes (what ``sha256sum`` prints). Needs no torch."""
    return {"kind": "model-file", "sha256": sha256_file(path, "a model file")}


def api_suspect(url: str, model_name: str) -> dict[str, Any]:
    """Name a suspect behind a prediction API by its base URL and model name."""
    return {"kind": "api", "url": url.rstrip("/"), "model_name": model_name}


def _check_suspect(suspect: Any, where: str) -> dict[str, Any]:
    if (
        isinstance(suspect, dict)
        and set(suspect) == {"kind", "sha256"}
        and suspect["kind"] == "model-file"
        and isinstance(suspect["sha256"], str)
        and len(suspect["sha256"]) == 64
        and all(c in "0123456789abcdef" for c in suspect["sha256"])
    ):
        return suspect
    if (
        isinstance(suspect, dict)
        and set(suspect) == {"kind", "url", "model_name"}
        and suspect["kind"] == "api"
        and isinstance(suspect["url"], str)
        and suspect["url"].startswith(("http://", "https://"))
        and len(suspect["url"]) <= 2048
        and isinstance(suspect["model_name"], str)
        and 0 < len(suspect["model_name"]) <= 256
    ):
        return suspect
    raise MalformedInput(f"{where}: malformed suspect")


@dataclass(frozen=True)
class OwnershipProof:
    """A parsed proof whose every cryptographic check has passed (it has not been evaluated yet)."""

    verification_key: VerificationKey
    batch: int
    suspect: dict[str, Any]
    created_at: int
    items: tuple[TriggerItem, ...] = dataclasses.field(repr=False)
    proof_id: bytes = b""
    raw: bytes = dataclasses.field(default=b"", repr=False)

    def summary(self) -> dict[str, Any]:
        vk = self.verification_key
        return {
            "proof_id": self.proof_id.hex(),
            "key_id": vk.key_id.hex(),
            "owner_fingerprint": vk.owner.fingerprint,
            "owner_public_key": bytes(vk.owner).hex(),
            "scheme": vk.scheme,
            "batch": self.batch,
            "batches": len(vk.batches),
            "items": len(self.items),
            "min_matches": vk.proof_min_matches,
            "alpha": str(vk.alpha),
            "suspect": self.suspect,
            "created_at": self.created_at,
        }


# ------------------------------------------------------------------------------------------------ prove


def refuse_unprovable(scheme_name: str) -> None:
    """Public proofs rest on the cut-and-choose having checked the opened items; a scheme whose items nobody
    can check (frontier stitching: they are made from the owner's model; the source-to-target watermarks: they
    are data the owner chose) has none."""
    scheme = get_scheme(scheme_name)
    if not scheme.publicly_checkable:
        raise UsageError(
            f"{scheme_name} keys have no public proofs: {scheme.private_only_because}; a judge verifies them "
            "privately (wmproof verify)"
        )


def make_proof(
    mk: MarkingKey,
    vk: VerificationKey,
    identity: Identity,
    suspect: dict[str, Any],
    *,
    batch: int | None = None,
    created_at: int | None = None,
) -> tuple[bytes, MarkingKey]:
    """Open the next unspent batch (or ``batch``) for ``suspect``; return the signed proof and the marking
    key with that batch recorded as spent (save it before publishing the proof)."""
    check_marking_key(mk, vk)
    refuse_unprovable(vk.scheme)
    if bytes(identity.public_key) != bytes(vk.owner):
        raise UsageError("the identity is not the key's owner: a proof is signed with the identity that signed the key")
    batches = vk.batches
    if batch is None:
        free = [j for j in range(len(batches)) if j not in mk.spent]
        if not free:
            raise UsageError(f"all {len(batches)} proof batches of this key are spent: make a new key")
        batch = free[0]
    if not 0 <= batch < len(batches):
        raise UsageError(f"the key has proof batches 0..{len(batches) - 1}, not {batch}")
    if batch in mk.spent:
        raise UsageError(f"proof batch {batch} is already spent: reusing it would reveal nothing new")
    by_index = {item.index: (item, salt) for item, salt in zip(mk.items, mk.salts, strict=True)}
    tree = MerkleTree(list(vk.leaves))
    openings = []
    for index in batches[batch]:
        item, salt = by_index[index]
        openings.append({**item_record(item), "salt": salt, "path": tree.inclusion_proof(index)})
    statement = {
        "protocol": PROTOCOL,
        "verification_key": vk.raw,
        "batch": batch,
        "suspect": _check_suspect(suspect, "suspect"),
        "created_at": int(time.time()) if created_at is None else created_at,
        "openings": openings,
    }
    proof = sign_container(PROOF_KIND, PROOF_VERSION, statement, identity.signing_key)
    return proof, dataclasses.replace(mk, spent=tuple(sorted({*mk.spent, batch})))


def save_proof(proof: bytes, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    write_file(path, proof, secret=False, overwrite=overwrite)


# ------------------------------------------------------------------------------------------------ check


@collector_paused()
def parse_proof(data: bytes, where: str = "proof") -> OwnershipProof:
    """Check everything a proof claims that needs no suspect. Raises ``MalformedInput``/``UsageError``."""
    with crypto_errors_for(where, "the proof"):
        doc = open_signed_container(data)
    if doc.kind != PROOF_KIND:
        raise UsageError(f"{where} is not an ownership proof")
    s = doc.statement
    if set(s) != PROOF_FIELDS or s["protocol"] != PROTOCOL:
        raise MalformedInput(f"{where}: unexpected or missing fields in the proof")
    if not isinstance(s["verification_key"], bytes):
        raise MalformedInput(f"{where}: malformed verification key")
    vk_where = f"{where}: its verification key"
    vk = _parse_verification_key(s["verification_key"], vk_where)  # its items are checked below, with the batch
    if bytes(doc.signer) != bytes(vk.owner):
        raise MalformedInput(f"{where} is signed by someone other than the key's owner")
    refuse_unprovable(vk.scheme)
    batches = vk.batches
    if type(s["batch"]) is not int or not 0 <= s["batch"] < len(batches):
        raise MalformedInput(f"{where}: no proof batch {s['batch']!r} in the key")
    if type(s["created_at"]) is not int or not vk.created_at <= s["created_at"] < (1 << 63):
        raise MalformedInput(f"{where}: its date is malformed or before the key was made")
    suspect = _check_suspect(s["suspect"], where)
    expected = batches[s["batch"]]
    if not isinstance(s["openings"], list) or len(s["openings"]) != len(expected):
        raise MalformedInput(f"{where}: batch {s['batch']} has {len(expected)} items")

    def name(position: int) -> str:
        return f"{where}: opening {position}"

    # Each opening becomes its item's record once its salt and path are taken out (the statement was decoded
    # above for this call alone, so it is changed in place).
    records, salts, paths = s["openings"], [], []
    for position, entry in enumerate(records):
        salt, path = (entry.pop("salt", None), entry.pop("path", None)) if type(entry) is dict else (None, None)
        if not (type(salt) is bytes and len(salt) == 32 and type(path) is list):
            raise MalformedInput(f"{name(position)} is malformed")
        salts.append(salt)
        paths.append(path)
    items = items_from_records(records, name)
    commitments = record_commitments(records, salts)
    sealed, committed, root = vk.sealed, vk.committed, vk.merkle_root
    for position, (index, item, commitment, path) in enumerate(zip(expected, items, commitments, paths, strict=True)):
        if item.index != index:
            raise MalformedInput(
                f"{name(position)} is item {item.index}, but batch {s['batch']} holds item {index} there"
            )
        if item.input.shape != vk.input_shape or not 0 <= item.label < vk.num_classes:
            raise MalformedInput(f"{name(position)} does not fit the key's task")
        if commitment != sealed[index]:
            raise MalformedInput(f"{name(position)} (item {index}) does not open the key's commitment")
        try:
            verify_inclusion(commitment, index, committed, path, root)
        except CryptoError:
            raise MalformedInput(
                f"{name(position)} (item {index}): its Merkle path does not lead to the key's root"
            ) from None
    # the key's opened items and the batch's, regenerated in one pass; then the key's Merkle root
    check_opened_items(
        vk,
        vk_where,
        items,
        lambda position, item: f"{name(position)} (item {item.index})",
    )
    return OwnershipProof(
        verification_key=vk,
        batch=s["batch"],
        suspect=suspect,
        created_at=s["created_at"],
        items=tuple(items),
        proof_id=doc.digest,
        raw=data,
    )


def load_proof(path: str | os.PathLike[str]) -> OwnershipProof:
    container = read_container(path, PROOF_KIND)
    return parse_proof(container.prefix + container.body, str(path))


def check_not_reused(proof: OwnershipProof, earlier: list[OwnershipProof], names: list[str] | None = None) -> None:
    """Refuse a proof whose batch an earlier proof of the same key already opened."""
    for position, other in enumerate(earlier):
        if (
            other.proof_id != proof.proof_id
            and other.verification_key.key_id == proof.verification_key.key_id
            and other.batch == proof.batch
        ):
            name = names[position] if names else f"earlier proof {position}"
            raise MalformedInput(
                f"batch {proof.batch} of this key was already opened by {name}: a spent batch proves nothing"
            )


@dataclass(frozen=True)
class ProofReport:
    verified: bool
    test: BinomialTest
    proof: OwnershipProof
    oracle: dict[str, Any]
    answered: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": "verified" if self.verified else "rejected",
            "mode": "public",
            "statistics": {**self.test.as_dict(), "min_matches": self.proof.verification_key.proof_min_matches},
            "proof": self.proof.summary(),
            "suspect": self.oracle,
        }


def evaluate_proof(proof: OwnershipProof, oracle: Oracle, suspect_name: str = "the suspect") -> ProofReport:
    """Query the suspect on the proof's items and apply the key's per-proof threshold (docs/protocol.md
    section 14): verified when at least ``proof_min_matches`` of the batch match."""
    vk = proof.verification_key
    described = oracle.describe()
    named = proof.suspect
    if named["kind"] == "model-file" and described.get("sha256") != named["sha256"]:
        raise UsageError(
            f"the proof is about model {named['sha256'][:16]}, not {suspect_name} ({str(described.get('sha256'))[:16]})"
        )
    if named["kind"] == "api" and (described.get("url"), described.get("model_name")) != (
        named["url"],
        named["model_name"],
    ):
        raise UsageError(f"the proof is about {named['url']} model {named['model_name']!r}, not {suspect_name}")
    check_task_fits(vk, oracle, suspect_name, list(proof.items))
    answers = np.asarray(oracle.query(stack_inputs(list(proof.items))).labels)
    if answers.shape != (len(proof.items),):
        raise MalformedInput(f"{suspect_name} answered {answers.shape} labels for {len(proof.items)} queries")
    matches = int(sum(int(a) == item.label for a, item in zip(answers.tolist(), proof.items, strict=True)))
    test = binomial_test(matches, len(proof.items), vk.p0, vk.alpha)
    return ProofReport(
        verified=matches >= vk.proof_min_matches,
        test=test,
        proof=proof,
        oracle=described,
        answered=[int(a) for a in answers.tolist()],
    )

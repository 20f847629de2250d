"""Regenerate the corpus of tampered ownership proofs in this directory (checklist test T8).

    python tests/vectors/make_corpus.py        # rewrites *.wpf and *.wvk; `git diff` must then be empty

Every input is fixed (identities from fixed seeds, KeyGen with fixed entropy, fixed dates), so a second run
reproduces the files byte for byte. ``valid.wpf`` is a correct proof; every other file carries exactly one
defect, described in ``CORPUS`` below (and in README.md, which this script also writes): what is wrong, and
the message ``wmproof check`` must fail with. ``tests/test_proofs.py`` runs the checker on each.
"""

from __future__ import annotations

import dataclasses
import hashlib
from fractions import Fraction
from pathlib import Path

from wmproof.crypto import (
    MerkleTree,
    SigningKey,
    canonical_encode,
    open_signed_container,
    sign_container,
    tagged_xof,
)
from wmproof.crypto.container import container_prefix
from wmproof.crypto.signatures import SIGNATURE_SIZE
from wmproof.crypto.signed import _signed_message  # the corpus forges signatures over exact bytes
from wmproof.errors import MalformedInput
from wmproof.protocol import Identity, keygen
from wmproof.protocol.keys import item_record
from wmproof.protocol.proofs import make_proof

HERE = Path(__file__).resolve().parent
CREATED = 1_700_000_000
SUSPECT = {"kind": "model-file", "sha256": hashlib.sha256(b"a suspect model").hexdigest()}

#: file -> (what is wrong, a fragment of the error `wmproof check` must print, its exit code)
CORPUS: dict[str, tuple[str, str, int]] = {
    "valid.wpf": ("nothing: a correct proof (batch 0 of 2, 4 items)", "", 0),
    "signature-bit-flipped.wpf": ("one bit of the owner's signature flipped", "tampered with", 3),
    "truncated.wpf": ("the last 10 bytes cut off", "tampered with", 3),
    "trailing-byte.wpf": ("one byte appended after the signature", "tampered with", 3),
    "signed-by-another.wpf": (
        "a valid proof of Alice's key, signed by Mallory",
        "someone other than the key's owner",
        3,
    ),
    "key-resigned-by-another.wpf": (
        "Alice's verification key re-signed by Mallory, inside a proof signed by Mallory",
        "the challenge opens item",
        3,
    ),
    "opening-moved.wpf": ("the first two openings swapped (each opened at the other's index)", "holds item", 3),
    "wrong-batch.wpf": ("the openings of batch 0, labelled batch 1", "holds item", 3),
    "no-such-batch.wpf": ("batch 2 of a key with 2 batches", "no proof batch", 3),
    "merkle-path-altered.wpf": ("one hash of an inclusion path replaced", "Merkle path", 3),
    "salt-altered.wpf": ("an opening's salt changed: the item no longer opens its commitment", "does not open", 3),
    "label-changed.wpf": ("an opened item's label changed", "does not open", 3),
    "crafted-kept-item.wpf": (
        "KeyGen kept a crafted item (label changed before committing); the proof opens it",
        "not what the generator makes",
        3,
    ),
    "dated-before-key.wpf": ("the proof's date is before the key's", "before the key was made", 3),
    "extra-field.wpf": ("an unknown field in the signed statement", "unexpected or missing fields", 3),
    "non-canonical.wpf": (
        "the statement's map keys out of order (not canonical msgpack), validly signed",
        "tampered with",
        3,
    ),
    "verification-key.wvk": ("a verification key given where a proof is expected", "not an ownership proof", 2),
}


def deterministic(label: str):
    return tagged_xof(b"wmproof/v1/test-vectors", label.encode()).read


def identity(name: str) -> Identity:
    return Identity(SigningKey(hashlib.sha256(name.encode()).digest()), CREATED, name)


ALICE, MALLORY = identity("alice"), identity("mallory")


def small_key(label: str = "corpus"):
    return keygen(
        ALICE,
        "adi-backdoor",
        items=8,
        batch_size=4,
        num_classes=10,
        input_shape=(1, 8, 8),
        alpha=Fraction(1, 1000),
        created_at=CREATED,
        entropy=deterministic(label),
    )


def resign(proof: bytes, change, signer: Identity = ALICE) -> bytes:
    statement = dict(open_signed_container(proof).statement)
    change(statement)
    return sign_container("ownership-proof", 1, statement, signer.signing_key)


def with_opening(index: int, **fields):
    def change(statement):
        openings = [dict(o) for o in statement["openings"]]
        openings[index].update(fields)
        statement["openings"] = openings

    return change


def build() -> dict[str, bytes]:
    mk, vk = small_key()
    valid, _ = make_proof(mk, vk, ALICE, SUSPECT, created_at=CREATED + 60)
    files: dict[str, bytes] = {"valid.wpf": valid, "verification-key.wvk": vk.raw}
    flipped = bytearray(valid)
    flipped[-SIGNATURE_SIZE + 5] ^= 0x01
    files["signature-bit-flipped.wpf"] = bytes(flipped)
    files["truncated.wpf"] = valid[:-10]
    files["trailing-byte.wpf"] = valid + b"\x00"
    files["signed-by-another.wpf"] = resign(valid, lambda s: None, MALLORY)
    statement = dict(open_signed_container(vk.raw).statement)
    foreign_vk = sign_container("verification-key", 1, statement, MALLORY.signing_key)
    files["key-resigned-by-another.wpf"] = resign(valid, lambda s: s.update(verification_key=foreign_vk), MALLORY)

    def swap(statement):
        openings = list(statement["openings"])
        openings[0], openings[1] = openings[1], openings[0]
        statement["openings"] = openings

    files["opening-moved.wpf"] = resign(valid, swap)
    files["wrong-batch.wpf"] = resign(valid, lambda s: s.update(batch=1))
    files["no-such-batch.wpf"] = resign(valid, lambda s: s.update(batch=2))
    first = open_signed_container(valid).statement["openings"][0]
    files["merkle-path-altered.wpf"] = resign(valid, with_opening(0, path=[bytes(32)] + first["path"][1:]))
    files["salt-altered.wpf"] = resign(valid, with_opening(0, salt=bytes(32)))
    files["label-changed.wpf"] = resign(valid, with_opening(0, label=(first["label"] + 1) % 10))
    files["dated-before-key.wpf"] = resign(valid, lambda s: s.update(created_at=CREATED - 1))
    files["extra-field.wpf"] = resign(valid, lambda s: s.update(note="hello"))
    files["crafted-kept-item.wpf"] = crafted_kept_item()
    files["non-canonical.wpf"] = non_canonical(valid)
    return files


def crafted_kept_item() -> bytes:
    """KeyGen as a cheater runs it: item 0's label is changed before the commitments are made, and the
    cheater retries (grinds) until the challenge keeps item 0 sealed, so the key itself is valid. The proof
    that opens item 0's batch must fail. (When the challenge opens it, the key is refused already:
    tests/test_cut_and_choose.py.)"""
    from wmproof.schemes.adi_backdoor import AdiBackdoor

    real = AdiBackdoor.generate_items

    def crafting(self, item_seeds, context):
        items = real(self, item_seeds, context)
        return [dataclasses.replace(items[0], label=(items[0].label + 1) % 10), *items[1:]]

    AdiBackdoor.generate_items = crafting
    try:
        for attempt in range(64):
            try:
                mk, vk = small_key(f"crafted-{attempt}")
            except MalformedInput:  # the challenge opened the crafted item: KeyGen's own check refuses it
                continue
            if 0 in vk.kept_indices:
                break
        else:
            raise RuntimeError("no attempt kept item 0")
    finally:
        AdiBackdoor.generate_items = real
    batch = next(j for j, indices in enumerate(vk.batches) if 0 in indices)
    tree = MerkleTree(list(vk.leaves))
    by_index = {item.index: (item, salt) for item, salt in zip(mk.items, mk.salts, strict=True)}
    openings = []
    for index in vk.batches[batch]:
        item, salt = by_index[index]
        openings.append({**item_record(item), "salt": salt, "path": tree.inclusion_proof(index)})
    statement = {
        "protocol": "wmproof/1",
        "verification_key": vk.raw,
        "batch": batch,
        "suspect": SUSPECT,
        "created_at": CREATED + 60,
        "openings": openings,
    }
    return sign_container("ownership-proof", 1, statement, ALICE.signing_key)


def non_canonical(valid: bytes) -> bytes:
    """The same statement with two map keys swapped in the encoding, and a valid signature over those bytes."""
    doc = open_signed_container(valid)
    encoded = canonical_encode(doc.statement)
    # The statement is a fixmap of 6 entries; re-emit it with its first two entries in the other order.
    import msgpack

    items = list(msgpack.unpackb(encoded, raw=False, strict_map_key=False).items())
    items[0], items[1] = items[1], items[0]
    body = b"\x86" + b"".join(msgpack.packb(k) + msgpack.packb(v, use_bin_type=True) for k, v in items)
    prefix = container_prefix({"kind": "ownership-proof", "version": 1, "signer": bytes(ALICE.public_key)})
    return prefix + body + ALICE.signing_key.sign(_signed_message(prefix, body))


def main() -> None:
    files = build()
    assert set(files) == set(CORPUS), set(files) ^ set(CORPUS)
    assert all(files.values()), [name for name, data in files.items() if not data]
    for name, data in files.items():
        (HERE / name).write_bytes(data)
    lines = [
        "# Tampered ownership proofs (checklist test T8)",
        "",
        "Made by `make_corpus.py` from fixed inputs; `tests/test_proofs.py` runs `wmproof check` on each file.",
        "Each file carries exactly one defect. Exit codes: 0 valid, 2 usage, 3 malformed.",
        "",
        "| file | what is wrong | `wmproof check` says | exit |",
        "|---|---|---|---|",
    ]
    for name, (what, message, code) in CORPUS.items():
        lines.append(f"| `{name}` | {what} | {message or '(valid)'} | {code} |")
    (HERE / "README.md").write_text("\n".join(lines) + "\n")
    print("wrote", len(files), "files")


if __name__ == "__main__":
    main()

"""T1: the implementation reproduces every known-answer vector in docs/vectors/ (the spec's test vectors)."""

from __future__ import annotations

import hashlib
import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from wmproof.crypto import (
    MerkleTree,
    SigningKey,
    Transcript,
    VerifyKey,
    canonical_decode,
    canonical_encode,
    commit,
    tagged_hash,
    tagged_xof,
    unseal,
    verify_inclusion,
)
from wmproof.protocol import Identity, keygen, parse_verification_key
from wmproof.protocol.keys import check_marking_key, commitment_message, item_seed
from wmproof.schemes.abstract_images import generate_abstract_image

VECTORS = Path(__file__).resolve().parents[1] / "docs" / "vectors"


def cases(name: str) -> list[dict]:
    return json.loads((VECTORS / name).read_text())["cases"]


def untag(value):
    if isinstance(value, dict) and set(value) == {"bin"}:
        return bytes.fromhex(value["bin"])
    if isinstance(value, dict) and set(value) == {"map"}:
        return {k: untag(v) for k, v in value["map"].items()}
    if isinstance(value, list):
        return [untag(v) for v in value]
    return value


@pytest.mark.parametrize("case", cases("encoding.json"), ids=lambda c: c["encoding"][:16])
def test_encoding(case):
    value = untag(case["value"])
    assert canonical_encode(value).hex() == case["encoding"]
    assert canonical_decode(bytes.fromhex(case["encoding"])) == value


def test_hashing():
    for case in cases("hashing.json"):
        if case["kind"] == "tagged_hash":
            parts = [bytes.fromhex(p) for p in case["parts"]]
            assert tagged_hash(case["tag"].encode(), *parts).hex() == case["digest"]
        elif case["kind"] == "commit":
            c, _ = commit(case["tag"].encode(), bytes.fromhex(case["message"]), salt=bytes.fromhex(case["salt"]))
            assert c.hex() == case["commitment"]
        elif case["kind"] == "item_seed":
            assert item_seed(bytes.fromhex(case["master_seed"]), case["index"]).hex() == case["seed"]
        elif case["kind"] == "uniform_below":
            reader = tagged_xof(case["tag"].encode(), *[bytes.fromhex(p) for p in case["parts"]])
            assert [reader.uniform_below(b) for b in case["bounds"]] == case["draws"]
        else:
            pytest.fail(f"unknown case {case['kind']}")


def test_merkle():
    for case in cases("merkle.json"):
        leaves = [bytes.fromhex(x) for x in case["leaves"]]
        tree = MerkleTree(leaves)
        assert tree.root.hex() == case["root"]
        for i, proof in enumerate(case["proofs"]):
            assert [p.hex() for p in tree.inclusion_proof(i)] == proof
            verify_inclusion(leaves[i], i, len(leaves), [bytes.fromhex(p) for p in proof], tree.root)


def test_transcript():
    for case in cases("transcript.json"):
        t = Transcript(case["domain"].encode())
        for step in case["steps"]:
            if step["op"] == "absorb":
                t.absorb(step["label"].encode(), bytes.fromhex(step["data"]))
            else:
                assert t.challenge_bytes(step["label"].encode(), step["length"]).hex() == step["output"]
            assert t.digest().hex() == step["state"]


def test_abstract_v1():
    for case in cases("abstract-v1.json"):
        image, label = generate_abstract_image(bytes.fromhex(case["seed"]), case["num_classes"], tuple(case["shape"]))
        assert label == case["label"]
        assert hashlib.sha256(image.tobytes()).hexdigest() == case["image_sha256"]
        if "image" in case:
            assert image.tobytes().hex() == case["image"]


def test_ed25519():
    for case in cases("ed25519.json"):
        sk = SigningKey(bytes.fromhex(case["seed"]))
        assert bytes(sk.verify_key).hex() == case["public_key"]
        assert sk.sign(bytes.fromhex(case["message"])).hex() == case["signature"]
        VerifyKey(bytes.fromhex(case["public_key"])).verify(
            bytes.fromhex(case["message"]), bytes.fromhex(case["signature"])
        )


def test_keygen_and_key_files():
    sys.path.insert(0, str(VECTORS))
    try:
        from make_vectors import deterministic
    finally:
        sys.path.pop(0)
    keygen_case, sealed_case = cases("keys.json")
    identity = Identity(
        SigningKey(bytes.fromhex(keygen_case["identity_seed"])), keygen_case["created_at"], "test owner"
    )
    mk, vk = keygen(
        identity,
        "adi-backdoor",
        items=keygen_case["items"],
        batch_size=keygen_case["batch_size"],
        num_classes=keygen_case["num_classes"],
        input_shape=tuple(keygen_case["input_shape"]),
        alpha=Fraction(*keygen_case["alpha"]),
        created_at=keygen_case["created_at"],
        entropy=deterministic("keygen"),
    )
    assert mk.master_seed.hex() == keygen_case["master_seed"]
    assert [commitment_message(i).hex() for i in mk.items] == keygen_case["item_messages"]
    assert [c.hex() for c in mk.commitments()] == keygen_case["commitments"]
    assert vk.merkle_root.hex() == keygen_case["merkle_root"]
    assert vk.raw.hex() == keygen_case["verification_key"] and vk.key_id.hex() == keygen_case["key_id"]
    assert mk.to_bytes(None).hex() == keygen_case["marking_key_unencrypted"]
    # The stored files parse and check against each other.
    parsed = parse_verification_key(bytes.fromhex(keygen_case["verification_key"]))
    assert parsed.key_id.hex() == keygen_case["key_id"]
    check_marking_key(mk, parsed)
    # Each item of the vector is what the generator makes from its derived seed.
    for message in keygen_case["item_messages"]:
        record = canonical_decode(bytes.fromhex(message))
        assert record["seed"] == item_seed(mk.master_seed, record["index"])
    opened = unseal(bytes.fromhex(sealed_case["file"]), sealed_case["passphrase"].encode())
    assert canonical_encode(opened.contents).hex() == sealed_case["plaintext"]


def test_timestamps():
    from eth_utils import keccak

    from wmproof.chain.contract import EVENT_TOPIC, registration_slot
    from wmproof.protocol.timestamps import parse_record

    anchor_case, batch_case, record_case = cases("timestamps.json")
    key_id = bytes.fromhex(anchor_case["key_id"])
    assert key_id.hex() == cases("keys.json")[0]["key_id"]
    # anchor = tagged_hash(tag, key_id), computed from the spec's formula (section 2.2) by hand.
    tag = b"wmproof/v1/chain/key-anchor"
    by_hand = hashlib.sha256(bytes([len(tag)]) + tag + len(key_id).to_bytes(8, "big") + key_id).digest()
    assert by_hand.hex() == anchor_case["anchor"]
    # Solidity's mapping layout: keccak256(key || uint256(0)); the event's topic 0.
    slot = keccak(bytes.fromhex(anchor_case["anchor"]) + bytes(32))
    assert slot.hex() == anchor_case["registration_slot"] == f"{registration_slot(by_hand):064x}"
    assert keccak(text=anchor_case["event_signature"]).hex() == anchor_case["event_topic"] == EVENT_TOPIC.hex()
    anchors = [bytes.fromhex(a) for a in batch_case["anchors"]]
    assert anchors[0] == by_hand and MerkleTree(anchors).root.hex() == batch_case["root"]
    for index, proof in enumerate(batch_case["proofs"]):
        verify_inclusion(anchors[index], index, 3, [bytes.fromhex(p) for p in proof], bytes.fromhex(batch_case["root"]))
    record = parse_record(bytes.fromhex(record_case["file"]))
    assert record.to_bytes().hex() == record_case["file"]
    assert (record.key_id, record.anchor, record.batch.root.hex()) == (key_id, by_hand, batch_case["root"])
    assert record.timestamp == record_case["fields"]["timestamp"] and record.chain_id == 31337


def test_challenge_and_proof():
    """The challenge recomputed from the key's fields by hand (docs/protocol.md 14.1-14.2): the transcript,
    then a partial Fisher-Yates shuffle of [0, 2N) drawing with below()."""
    from wmproof.crypto import Transcript
    from wmproof.protocol.proofs import parse_proof

    challenge_case, proof_case = cases("proofs.json")
    f = challenge_case["fields"]
    t = Transcript(b"wmproof/1/cut-and-choose")
    t.absorb(b"owner-public-key", bytes.fromhex(f["owner"]))
    t.absorb(b"scheme", f["scheme"].encode())
    t.absorb(b"params", canonical_encode(f["params"]))
    t.absorb(b"task", canonical_encode({"num_classes": f["num_classes"], "input_shape": f["input_shape"]}))
    t.absorb(b"counts", b"".join(v.to_bytes(8, "big") for v in (f["committed"], f["items"], f["batch_size"])))
    t.absorb(b"merkle-root", bytes.fromhex(f["merkle_root"]))
    alpha = Fraction(f["alpha"])
    t.absorb(b"alpha", canonical_encode([alpha.numerator, alpha.denominator]))
    t.absorb(b"thresholds", f["min_matches"].to_bytes(8, "big") + f["proof_min_matches"].to_bytes(8, "big"))
    t.absorb(b"grinding-bits", f["grinding_bits"].to_bytes(8, "big"))
    t.absorb(b"created-at", f["created_at"].to_bytes(8, "big"))
    t.absorb(b"beacon", b"\xc0")  # canonical(nil): a key without a beacon
    assert t.digest().hex() == challenge_case["transcript_state_before_challenge"]
    stream = t.challenge_stream(b"opened-items")
    order = list(range(f["committed"]))
    for i in range(f["items"]):
        j = i + stream.uniform_below(f["committed"] - i)
        order[i], order[j] = order[j], order[i]
    assert sorted(order[: f["items"]]) == challenge_case["opened"]
    kept = sorted(order[f["items"] :])
    assert kept == challenge_case["kept"]
    assert [kept[i : i + f["batch_size"]] for i in range(0, len(kept), f["batch_size"])] == challenge_case["batches"]
    proof = parse_proof(bytes.fromhex(proof_case["file"]))
    assert (
        proof.proof_id.hex() == proof_case["proof_id"]
        and proof.verification_key.key_id.hex() == challenge_case["key_id"]
    )
    assert [item.index for item in proof.items] == challenge_case["batches"][0]


def test_vectors_are_reproducible_by_their_script(tmp_path):
    """Re-running the generator must not change a byte (no hidden randomness)."""
    import shutil
    import subprocess

    copy = tmp_path / "vectors"
    shutil.copytree(VECTORS, copy)
    subprocess.run([sys.executable, str(copy / "make_vectors.py")], check=True, capture_output=True)
    for path in VECTORS.glob("*.json"):
        assert (copy / path.name).read_bytes() == path.read_bytes(), path.name


def test_the_hexdump_in_formats_md_is_the_vector():
    """docs/formats.md quotes the verification-key vector byte for byte; it must not drift from it."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    raw = bytes.fromhex(json.loads((root / "docs/vectors/keys.json").read_text())["cases"][0]["verification_key"])
    text = (root / "docs/formats.md").read_text()
    section = text.split("The vector in `docs/vectors/keys.json`, as bytes:", 1)[1].split("```", 2)[1]
    for offset, hexes in re.findall(r"^([0-9a-f]{8}): ((?:[0-9a-f]{2,4} ?)+)", section, re.M):
        quoted = bytes.fromhex(hexes.replace(" ", ""))
        assert raw[int(offset, 16) : int(offset, 16) + len(quoted)] == quoted, offset
    assert f"({len(raw):,} bytes" in section

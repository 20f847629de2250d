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


def challenge_by_hand(f: dict, beacon_encoding: bytes = b"\xc0") -> tuple[bytes, list[int], list[int]]:
    """The challenge recomputed from a key's fields by hand (docs/protocol.md 14.1-14.2): the transcript,
    then a partial Fisher-Yates shuffle of [0, 2N) drawing with below(). Returns the transcript state before
    the challenge, the opened indices and the kept ones. ``beacon_encoding`` is canonical(nil) for a key
    without a beacon."""
    from wmproof.crypto import Transcript

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
    t.absorb(b"beacon", beacon_encoding)
    state = t.digest()
    stream = t.challenge_stream(b"opened-items")
    order = list(range(f["committed"]))
    for i in range(f["items"]):
        j = i + stream.uniform_below(f["committed"] - i)
        order[i], order[j] = order[j], order[i]
    return state, sorted(order[: f["items"]]), sorted(order[f["items"] :])


def test_challenge_and_proof():
    from wmproof.protocol.proofs import parse_proof

    challenge_case, proof_case = cases("proofs.json")
    f = challenge_case["fields"]
    state, opened, kept = challenge_by_hand(f)
    assert state.hex() == challenge_case["transcript_state_before_challenge"]
    assert opened == challenge_case["opened"] and kept == challenge_case["kept"]
    assert [kept[i : i + f["batch_size"]] for i in range(0, len(kept), f["batch_size"])] == challenge_case["batches"]
    proof = parse_proof(bytes.fromhex(proof_case["file"]))
    assert (
        proof.proof_id.hex() == proof_case["proof_id"]
        and proof.verification_key.key_id.hex() == challenge_case["key_id"]
    )
    assert [item.index for item in proof.items] == challenge_case["batches"][0]


def vector_helpers():
    sys.path.insert(0, str(VECTORS))
    try:
        import make_vectors
    finally:
        sys.path.pop(0)
    return make_vectors


def by_hand_tagged_hash(tag: bytes, *parts: bytes) -> bytes:
    """docs/protocol.md 2.2, written out: u8(len(tag)) || tag, then u64be(len(part)) || part for each part."""
    return hashlib.sha256(bytes([len(tag)]) + tag + b"".join(len(p).to_bytes(8, "big") + p for p in parts)).digest()


def test_beacon_key():
    """A beacon key (docs/protocol.md 14.5): the implementation reproduces the commitment and the key from
    the same entropy and beacon; the commitment rebuilt from the key's fields by the spec's formula is the
    vector's file and its signature verifies; the challenge by hand absorbs the beacon record."""
    from wmproof.crypto.container import MAGIC
    from wmproof.protocol.keys import commit_key, open_key
    from wmproof.protocol.timestamps import key_anchor

    commitment_case, opened_case = cases("beacon.json")
    c, b = commitment_case, opened_case["beacon"]
    identity = Identity(SigningKey(bytes.fromhex(c["identity_seed"])), c["created_at"], "beacon owner")
    pending = commit_key(
        identity,
        c["scheme"],
        items=c["items"],
        batch_size=c["batch_size"],
        num_classes=c["num_classes"],
        input_shape=tuple(c["input_shape"]),
        alpha=Fraction(*c["alpha"]),
        created_at=c["created_at"],
        entropy=vector_helpers().deterministic("beacon-keygen"),
    )
    assert pending.commitment.hex() == c["file"] and pending.commitment_id.hex() == c["commitment_id"]
    assert [x.hex() for x in pending.commitments] == c["commitments"]
    mk, vk = open_key(
        pending,
        chain_id=b["chain_id"],
        registry=bytes.fromhex(b["registry"]),
        registered_block=b["registered_block"],
        beacon_hash=bytes.fromhex(b["beacon_hash"]),
    )
    assert vk.raw.hex() == opened_case["verification_key"] and vk.key_id.hex() == opened_case["key_id"]
    assert mk.to_bytes(None).hex() == opened_case["marking_key_unencrypted"]

    # The commitment, rebuilt by hand from the parsed key's fields (14.5), is the vector's file.
    parsed = parse_verification_key(bytes.fromhex(opened_case["verification_key"]))
    owner = bytes(parsed.owner)
    file = bytes.fromhex(c["file"])
    assert file[:8] == MAGIC
    header_length = int.from_bytes(file[8:12], "big")
    statement = canonical_decode(file[12 + header_length : -64])
    fields = {
        "protocol": "wmproof/1",
        "scheme": parsed.scheme,
        "params": parsed.params,
        "num_classes": parsed.num_classes,
        "input_shape": list(parsed.input_shape),
        "items": parsed.items,
        "batch_size": parsed.batch_size,
        "merkle_root": parsed.merkle_root,
        "alpha": [parsed.alpha.numerator, parsed.alpha.denominator],
        "min_matches": parsed.min_matches,
        "proof_min_matches": parsed.proof_min_matches,
        "grinding_bits": parsed.grinding_bits,
        "created_at": parsed.created_at,
    }
    assert statement == fields and parsed.grinding_bits == 0
    header = canonical_encode({"kind": "key-commitment", "version": 1, "signer": owner})
    prefix = MAGIC + len(header).to_bytes(4, "big") + header
    body = canonical_encode(fields)
    signature = bytes.fromhex(b["commitment_signature"])
    assert (prefix + body + signature).hex() == c["file"]
    tag = b"wmproof/v1/signed-container"
    signed = bytes([len(tag)]) + tag + len(prefix).to_bytes(8, "big") + prefix + len(body).to_bytes(8, "big") + body
    VerifyKey(owner).verify(signed, signature)
    commitment_id = by_hand_tagged_hash(b"wmproof/v1/container-digest", prefix, body)
    assert commitment_id.hex() == c["commitment_id"] == parsed.beacon.commitment_id.hex()
    anchor = by_hand_tagged_hash(b"wmproof/v1/chain/key-anchor", commitment_id)
    assert anchor.hex() == c["anchor"] == key_anchor(parsed).hex()

    # The challenge absorbs canonical(beacon record) where a key without a beacon absorbs canonical(nil).
    record = {**b, **{k: bytes.fromhex(b[k]) for k in ("registry", "beacon_hash", "commitment_signature")}}
    assert record["beacon_block"] == record["registered_block"] + 1
    assert canonical_encode(record).hex() == opened_case["beacon_encoding"]
    transcript_fields = {
        **fields,
        "owner": owner.hex(),
        "committed": 2 * parsed.items,
        "merkle_root": parsed.merkle_root.hex(),
        "alpha": str(parsed.alpha),
    }
    state, opened, kept = challenge_by_hand(transcript_fields, canonical_encode(record))
    assert state.hex() == opened_case["transcript_state_before_challenge"]
    assert opened == opened_case["opened"] == [item.index for item in parsed.opened]
    assert kept == opened_case["kept"] == parsed.kept_indices
    # Without the beacon the same fields open another half: the beacon is what fixes the challenge.
    assert challenge_by_hand(transcript_fields)[0] != state
    check_marking_key(mk, parsed)


def test_frontier_stitching_key():
    """A frontier-stitching key (docs/protocol.md 15): the implementation reproduces it from the same model,
    data and entropy; the threshold is the exact binomial one at p0 = 1/2; and every committed item is, by a
    computation written here in numpy from the spec, one FGSM step of a training example the model classifies
    correctly, labelled with its class, half of them true adversaries and half false."""
    import numpy as np
    import torch
    from torch import nn

    from wmproof.engine.models import LoadedModel
    from wmproof.schemes import KeyGenContext

    (case,) = cases("frontier-stitching.json")
    helpers = vector_helpers()
    weight = np.array(case["model"]["weight"], dtype=np.float32)
    bias = np.array(case["model"]["bias"], dtype=np.float32)
    images, labels = helpers.frontier_stitching_data()
    module = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        module[1].weight.copy_(torch.from_numpy(weight))
        module[1].bias.copy_(torch.from_numpy(bias))
    shape = tuple(case["input_shape"])
    context = KeyGenContext(
        num_classes=2,
        input_shape=shape,
        params=case["params"],
        model=LoadedModel(module, "vector-linear", {"num_classes": 2, "input_shape": list(shape)}, sha256=""),
        data=(images, labels),
    )
    identity = Identity(SigningKey(bytes.fromhex(case["identity_seed"])), case["created_at"], "test owner")
    mk, vk = keygen(
        identity,
        "frontier-stitching",
        items=case["items"],
        num_classes=2,
        input_shape=shape,
        params=case["params"],
        alpha=Fraction(*case["alpha"]),
        context=context,
        created_at=case["created_at"],
        entropy=helpers.deterministic("frontier-stitching-keygen"),
    )
    assert vk.raw.hex() == case["verification_key"] and vk.key_id.hex() == case["key_id"]
    assert mk.to_bytes(None).hex() == case["marking_key_unencrypted"]
    assert [x.hex() for x in vk.leaves] == case["commitments"]
    assert MerkleTree([bytes.fromhex(x) for x in case["commitments"]]).root.hex() == case["merkle_root"]
    parsed = parse_verification_key(bytes.fromhex(case["verification_key"]))
    assert [item.index for item in parsed.opened] == case["opened"]
    check_marking_key(mk, parsed)

    # Section 10 at p0 = 1/2: the smallest k with P(X >= k) <= alpha, in exact arithmetic.
    from math import comb

    n, alpha = case["items"], Fraction(*case["alpha"])
    tail = [Fraction(sum(comb(n, j) for j in range(k, n + 1)), 2**n) for k in range(n + 2)]
    assert case["min_matches"] == parsed.min_matches == min(k for k in range(n + 2) if tail[k] <= alpha)
    assert case["proof_min_matches"] == n + 1  # private only: no proof can reach it (14.3)

    # Each item: one FGSM step (l-infinity, epsilon 1/4) of a correctly classified example, clipped to [0, 1].
    # For two classes the cross-entropy gradient is (softmax_1 - y_1) (W_1 - W_0): its sign is known exactly.
    def logits(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1) @ weight.T + bias

    direction = np.sign(weight[1] - weight[0])
    correct = logits(images).argmax(1) == labels
    fooled = 0
    for message in case["item_messages"]:
        record = canonical_decode(bytes.fromhex(message))
        assert record["input"]["dtype"] == "float32" and record["input"]["shape"] == list(shape)
        x = np.frombuffer(record["input"]["data"], dtype="<f4")
        assert ((0 <= x) & (x <= 1)).all()
        y = record["label"]
        steps = np.clip(images.reshape(len(images), -1) + 0.25 * (1 if y == 0 else -1) * direction, 0, 1)
        assert any((steps[i] == x).all() and labels[i] == y for i in np.flatnonzero(correct)), record["index"]
        fooled += int(logits(x[None]).argmax(1)[0] != y)
    assert fooled == n  # N true adversaries and N false ones among the 2N committed


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

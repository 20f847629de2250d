"""Regenerate the known-answer vectors in this directory (docs/protocol.md section 12).

    python docs/vectors/make_vectors.py          # rewrites *.json; `git diff` must then be empty

Every input is fixed, so a second run reproduces the files byte for byte; ``tests/test_vectors.py`` checks
the implementation against them, and several of them (the RFC 6962 and RFC 8032 cases, the commitment
formula, the abstract-v1 generator, the encrypted sealed file) are also checked against independent
constructions written from the spec. An independent implementation of wmproof should reproduce them all.
"""

from __future__ import annotations

import hashlib
import json
import struct
from fractions import Fraction
from pathlib import Path

import nacl.bindings
import nacl.pwhash

from wmproof.crypto import (
    MerkleTree,
    SigningKey,
    Transcript,
    canonical_encode,
    commit,
    tagged_hash,
    tagged_xof,
    tags,
)
from wmproof.crypto.container import container_prefix
from wmproof.protocol import Identity, keygen
from wmproof.protocol.keys import commitment_message, item_seed
from wmproof.schemes.abstract_images import generate_abstract_image

HERE = Path(__file__).resolve().parent


def h(data: bytes) -> str:
    return data.hex()


def deterministic(label: str):
    """A fixed byte stream standing in for os.urandom in the vectors."""
    reader = tagged_xof(b"wmproof/v1/test-vectors", label.encode())
    return reader.read


def write(name: str, description: str, cases: list[dict]) -> None:
    (HERE / name).write_text(json.dumps({"description": description, "cases": cases}, indent=1) + "\n")


def encoding_vectors() -> None:
    values = [
        None,
        True,
        False,
        0,
        127,
        128,
        255,
        256,
        65535,
        65536,
        2**32 - 1,
        2**32,
        2**64 - 1,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32768,
        -32769,
        -(2**31),
        -(2**31) - 1,
        -(2**63),
        "",
        "a",
        "é",
        "x" * 31,
        "x" * 32,
        "x" * 256,
        b"",
        b"\x00\xff",
        b"\x01" * 256,
        [],
        [1, [2, [3]]],
        list(range(16)),
        {},
        {"b": 1, "a": 2, "aa": 3, "B": 4},
        {"z": {"y": [b"\x01", None]}},
    ]

    def tagged(value):  # JSON cannot hold bytes: write them as {"bin": hex}
        if isinstance(value, bytes):
            return {"bin": value.hex()}
        if isinstance(value, list):
            return [tagged(v) for v in value]
        if isinstance(value, dict):
            return {"map": {k: tagged(v) for k, v in value.items()}}
        return value

    write(
        "encoding.json",
        "Canonical msgpack profile: value (bytes as {'bin': hex}, maps as {'map': {...}}) -> encoding (hex).",
        [{"value": tagged(v), "encoding": h(canonical_encode(v))} for v in values],
    )


def hashing_vectors() -> None:
    cases = []
    for tag, parts in [
        (tags.CONTAINER_DIGEST, []),
        (tags.CONTAINER_DIGEST, [b""]),
        (tags.ITEM_SEED, [b"a", b"bc"]),
        (tags.ITEM_SEED, [b"ab", b"c"]),
        (tags.COMMIT_TRIGGER_ITEM, [bytes(range(100))]),
    ]:
        cases.append(
            {
                "kind": "tagged_hash",
                "tag": tag.decode(),
                "parts": [h(p) for p in parts],
                "digest": h(tagged_hash(tag, *parts)),
            }
        )
    for message in (b"", b"label=3", bytes(range(256))):
        salt = hashlib.sha256(b"salt" + message).digest()
        cases.append(
            {
                "kind": "commit",
                "tag": tags.COMMIT_TRIGGER_ITEM.decode(),
                "message": h(message),
                "salt": h(salt),
                "commitment": h(commit(tags.COMMIT_TRIGGER_ITEM, message, salt=salt)[0]),
            }
        )
    master = bytes(range(32))
    for index in (0, 1, 2**32):
        cases.append(
            {"kind": "item_seed", "master_seed": h(master), "index": index, "seed": h(item_seed(master, index))}
        )
    reader = tagged_xof(tags.TRIGGER_ABSTRACT_IMAGE, b"below")
    draws = [reader.uniform_below(b) for b in (1, 2, 3, 10, 255, 256, 257, 1000, 65537, 2**40)]
    cases.append(
        {
            "kind": "uniform_below",
            "tag": tags.TRIGGER_ABSTRACT_IMAGE.decode(),
            "parts": [h(b"below")],
            "bounds": [1, 2, 3, 10, 255, 256, 257, 1000, 65537, 2**40],
            "draws": draws,
        }
    )
    write(
        "hashing.json",
        "tagged_hash, commit, item seeds, and the XOF's uniform_below draws (in order, from one stream).",
        cases,
    )


def merkle_vectors() -> None:
    cases = []
    for n in (1, 2, 3, 5, 7, 8, 13):
        leaves = [hashlib.sha256(f"leaf {i}".encode()).digest() for i in range(n)]
        tree = MerkleTree(leaves)
        cases.append(
            {
                "leaves": [h(leaf) for leaf in leaves],
                "root": h(tree.root),
                "proofs": [[h(p) for p in tree.inclusion_proof(i)] for i in range(n)],
            }
        )
    write("merkle.json", "RFC 6962 trees over leaf data (hex): root and every leaf's inclusion proof.", cases)


def transcript_vectors() -> None:
    t = Transcript(b"wmproof/v1/test")
    steps = []
    for op in [
        ("absorb", b"owner", bytes(32)),
        ("absorb", b"root", bytes(range(32))),
        ("challenge", b"c", 16),
        ("absorb", b"n", struct.pack(">Q", 2048)),
        ("challenge", b"c", 32),
        ("challenge", b"d", 1),
    ]:
        if op[0] == "absorb":
            t.absorb(op[1], op[2])
            steps.append({"op": "absorb", "label": op[1].decode(), "data": h(op[2]), "state": h(t.digest())})
        else:
            out = t.challenge_bytes(op[1], op[2])
            steps.append(
                {"op": "challenge", "label": op[1].decode(), "length": op[2], "output": h(out), "state": h(t.digest())}
            )
    write(
        "transcript.json",
        "One transcript, domain 'wmproof/v1/test': each step with the SHA-256 state after it.",
        [{"domain": "wmproof/v1/test", "steps": steps}],
    )


def generator_vectors() -> None:
    cases = []
    for shape, k in (((1, 5, 7), 10), ((1, 28, 28), 10), ((3, 8, 8), 100), ((1, 28, 28), 2)):
        for i in range(2):
            seed = hashlib.sha256(f"abstract-v1 {shape} {k} {i}".encode()).digest()
            image, label = generate_abstract_image(seed, k, shape)
            case = {
                "seed": h(seed),
                "num_classes": k,
                "shape": list(shape),
                "label": label,
                "image_sha256": hashlib.sha256(image.tobytes()).hexdigest(),
            }
            if image.size <= 64:
                case["image"] = h(image.tobytes())
            cases.append(case)
    write(
        "abstract-v1.json",
        "Trigger generator abstract-v1: seed, classes, shape -> label and image (C,H,W uint8, row-major).",
        cases,
    )


#: The task and counts of the keys.json and beacon.json keys.
VECTOR_TASK = dict(
    items=4, batch_size=2, num_classes=10, input_shape=(1, 5, 7), alpha=Fraction(1, 100), created_at=1_700_000_000
)


def vector_keys():
    """The fixed key pair of keys.json (and of timestamps.json)."""
    identity = Identity(SigningKey(hashlib.sha256(b"wmproof test owner").digest()), 1_700_000_000, "test owner")
    mk, vk = keygen(
        identity,
        "adi-backdoor",
        **VECTOR_TASK,
        entropy=deterministic("keygen"),
    )
    return identity, mk, vk


def key_vectors() -> None:
    identity, mk, vk = vector_keys()
    sealed_plain = mk.to_bytes(None)
    cases = [
        {
            "kind": "keygen",
            "identity_seed": h(identity.signing_key.seed),
            "entropy": "tagged_xof('wmproof/v1/test-vectors', 'keygen'): master seed, then one salt per item",
            "items": 4,
            "num_classes": 10,
            "input_shape": [1, 5, 7],
            "alpha": [1, 100],
            "batch_size": 2,
            "created_at": 1_700_000_000,
            "master_seed": h(mk.master_seed),
            "item_messages": [h(commitment_message(item)) for item in mk.items],
            "salts": [h(s) for s in mk.salts],
            "commitments": [h(c) for c in mk.commitments()],
            "merkle_root": h(vk.merkle_root),
            "verification_key": h(vk.raw),
            "key_id": h(vk.key_id),
            "marking_key_unencrypted": h(sealed_plain),
        }
    ]
    # An encrypted sealed container, assembled here from the spec with libsodium directly.
    passphrase, salt, nonce = b"correct horse", bytes(range(16)), bytes(range(24))
    opslimit, memlimit = 1, 8192
    header = {
        "kind": "identity",
        "version": 1,
        "label": "test owner",
        "public_key": bytes(identity.public_key),
        "seal": {
            "aead": "xchacha20poly1305-ietf",
            "kdf": "argon2id13",
            "salt": salt,
            "opslimit": opslimit,
            "memlimit": memlimit,
            "nonce": nonce,
        },
    }
    prefix = container_prefix(header)
    key = nacl.pwhash.argon2id.kdf(32, passphrase, salt, opslimit=opslimit, memlimit=memlimit)
    plaintext = canonical_encode(
        {"seed": identity.signing_key.seed, "created_at": identity.created_at, "label": identity.label}
    )
    body = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, prefix, nonce, key)
    cases.append(
        {
            "kind": "sealed-encrypted",
            "passphrase": passphrase.decode(),
            "file": h(prefix + body),
            "plaintext": h(plaintext),
            "argon2id_key": h(key),
        }
    )
    write(
        "keys.json",
        "KeyGen with fixed entropy (verification and marking key files), and an encrypted identity file.",
        cases,
    )


def timestamp_vectors() -> None:
    from wmproof.chain.contract import EVENT_SIGNATURE, EVENT_TOPIC, registration_slot
    from wmproof.protocol.timestamps import BatchProof, TimestampRecord, key_anchor

    _, _, vk = vector_keys()
    anchor = key_anchor(vk)
    others = [hashlib.sha256(b"another key id %d" % i).digest() for i in (1, 2)]
    anchors = [anchor] + [tagged_hash(tags.CHAIN_KEY_ANCHOR, key_id) for key_id in others]
    tree = MerkleTree(anchors)
    record = TimestampRecord(
        key_id=vk.key_id,
        anchor=anchor,
        chain_id=31337,
        registry=bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"),
        transaction_hash=hashlib.sha256(b"transaction").digest(),
        block_number=2,
        block_hash=hashlib.sha256(b"block").digest(),
        timestamp=1_700_000_100,
        batch=BatchProof(index=0, size=3, path=tuple(tree.inclusion_proof(0)), root=tree.root),
    )
    cases = [
        {
            "kind": "anchor",
            "key_id": h(vk.key_id),
            "anchor": h(anchor),
            "registration_slot": f"{registration_slot(anchor):064x}",
            "event_signature": EVENT_SIGNATURE,
            "event_topic": h(EVENT_TOPIC),
        },
        {
            "kind": "batch",
            "key_ids": [h(vk.key_id)] + [h(k) for k in others],
            "anchors": [h(a) for a in anchors],
            "root": h(tree.root),
            "proofs": [[h(p) for p in tree.inclusion_proof(i)] for i in range(3)],
        },
        {
            "kind": "record",
            "fields": {
                "chain_id": 31337,
                "registry": h(record.registry),
                "transaction_hash": h(record.transaction_hash),
                "block_number": 2,
                "block_hash": h(record.block_hash),
                "timestamp": 1_700_000_100,
                "batch_index": 0,
            },
            "file": h(record.to_bytes()),
        },
    ]
    write(
        "timestamps.json",
        "What is registered on chain for the keys.json key (its anchor, alone and in a batch of 3), where the "
        "registry stores it, and a timestamp record file.",
        cases,
    )


def proof_vectors() -> None:
    from wmproof.protocol.challenge import challenge_transcript, opened_indices
    from wmproof.protocol.proofs import make_proof

    identity, mk, vk = vector_keys()
    fields = dict(
        owner=bytes(vk.owner),
        scheme=vk.scheme,
        params=vk.params,
        num_classes=vk.num_classes,
        input_shape=list(vk.input_shape),
        committed=vk.committed,
        items=vk.items,
        batch_size=vk.batch_size,
        merkle_root=vk.merkle_root,
        alpha=vk.alpha,
        min_matches=vk.min_matches,
        proof_min_matches=vk.proof_min_matches,
        grinding_bits=vk.grinding_bits,
        created_at=vk.created_at,
    )
    transcript = challenge_transcript(**fields)
    state = transcript.digest()
    opened = opened_indices(transcript, vk.committed, vk.items)
    suspect = {"kind": "model-file", "sha256": hashlib.sha256(b"a suspect model").hexdigest()}
    proof, _ = make_proof(mk, vk, identity, suspect, created_at=1_700_000_060)
    from wmproof.crypto import open_signed_container

    cases = [
        {
            "kind": "challenge",
            "key_id": h(vk.key_id),
            "fields": {
                k: (h(v) if isinstance(v, bytes) else str(v) if isinstance(v, Fraction) else v)
                for k, v in fields.items()
            },
            "transcript_state_before_challenge": h(state),
            "opened": opened,
            "kept": vk.kept_indices,
            "batches": vk.batches,
        },
        {
            "kind": "proof",
            "batch": 0,
            "suspect": suspect,
            "created_at": 1_700_000_060,
            "file": h(proof),
            "proof_id": h(open_signed_container(proof).digest),
        },
    ]
    write(
        "proofs.json",
        "The cut-and-choose challenge of the keys.json key (its transcript state, the opened and kept indices, "
        "the proof batches) and an ownership proof opening batch 0.",
        cases,
    )


def beacon_vectors() -> None:
    """A key whose challenge absorbs a chain beacon (docs/protocol.md 14.5), from fixed entropy and a fixed
    beacon: the signed key commitment, its anchor, the beacon record, the challenge and the key file. No chain
    is needed to reproduce it; a checker also confirms on chain that the anchor was registered in block R and
    that block R + 1 has the beacon hash (section 13.4)."""
    from wmproof.protocol.challenge import opened_indices
    from wmproof.protocol.keys import commit_key, open_key, statement_transcript
    from wmproof.protocol.timestamps import anchor_of

    identity = Identity(SigningKey(hashlib.sha256(b"wmproof beacon owner").digest()), 1_700_000_000, "beacon owner")
    pending = commit_key(
        identity,
        "adi-backdoor",
        **VECTOR_TASK,
        entropy=deterministic("beacon-keygen"),
    )
    registry = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
    beacon_hash = hashlib.sha256(b"block 42").digest()
    mk, vk = open_key(pending, chain_id=31337, registry=registry, registered_block=41, beacon_hash=beacon_hash)
    transcript = statement_transcript(bytes(identity.public_key), pending.statement, vk.beacon.record())
    s = pending.statement
    state = transcript.digest()
    cases = [
        {
            "kind": "commitment",
            "identity_seed": h(identity.signing_key.seed),
            "entropy": "tagged_xof('wmproof/v1/test-vectors', 'beacon-keygen'): master seed, then one salt per item",
            "scheme": "adi-backdoor",
            "items": 4,
            "batch_size": 2,
            "num_classes": 10,
            "input_shape": [1, 5, 7],
            "alpha": [1, 100],
            "created_at": 1_700_000_000,
            "master_seed": h(pending.master_seed),
            "commitments": [h(c) for c in pending.commitments],
            "merkle_root": h(s["merkle_root"]),
            "min_matches": s["min_matches"],
            "proof_min_matches": s["proof_min_matches"],
            "grinding_bits": s["grinding_bits"],
            "file": h(pending.commitment),
            "commitment_id": h(pending.commitment_id),
            "anchor": h(anchor_of(pending.commitment_id)),
        },
        {
            "kind": "opened",
            "beacon": {
                "chain_id": 31337,
                "registry": h(registry),
                "registered_block": 41,
                "beacon_block": 42,
                "beacon_hash": h(beacon_hash),
                "commitment_signature": h(pending.commitment[-64:]),
            },
            "beacon_encoding": h(canonical_encode(vk.beacon.record())),
            "transcript_state_before_challenge": h(state),
            "opened": opened_indices(transcript, vk.committed, vk.items),
            "kept": vk.kept_indices,
            "batches": vk.batches,
            "verification_key": h(vk.raw),
            "key_id": h(vk.key_id),
            "marking_key_unencrypted": h(mk.to_bytes(None)),
        },
    ]
    write(
        "beacon.json",
        "A key with a chain beacon (section 14.5) from fixed entropy and a fixed beacon: the signed key "
        "commitment and its anchor, the beacon record, the challenge it gives, the key files.",
        cases,
    )


#: The frontier-stitching vector's model: logits = W x + b over a 1x2x2 input, 2 classes. Small dyadic
#: weights and inputs in quarters keep every logit, FGSM step and clip exact in float32, so the items do not
#: depend on the machine's floating point.
FS_WEIGHT = [[0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 1.0, -1.0]]
FS_BIAS = [0.0, 0.125]


def frontier_stitching_data() -> tuple:
    """40 training inputs with values in {0, 1/4, ..., 1}, labelled with the model's own prediction."""
    import numpy as np

    reader = tagged_xof(b"wmproof/v1/test-vectors", b"frontier-stitching-data")
    images = np.array([[reader.uniform_below(5) / 4 for _ in range(4)] for _ in range(40)], dtype=np.float32).reshape(
        40, 1, 2, 2
    )
    logits = images.reshape(40, 4) @ np.array(FS_WEIGHT, dtype=np.float32).T + np.array(FS_BIAS, dtype=np.float32)
    return images, logits.argmax(1).astype(np.int64)


def frontier_stitching_vectors() -> None:
    """A frontier-stitching key (section 15) from a fixed model, fixed data and fixed entropy: its float32
    items (not seed-derived: a checker can check their form and commitments, not how they were made), the
    p0 = 1/2 threshold, and the key files."""
    import torch
    from torch import nn

    from wmproof.engine.models import LoadedModel
    from wmproof.schemes import KeyGenContext

    module = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        module[1].weight.copy_(torch.tensor(FS_WEIGHT))
        module[1].bias.copy_(torch.tensor(FS_BIAS))
    images, labels = frontier_stitching_data()
    model = LoadedModel(module, "vector-linear", {"num_classes": 2, "input_shape": [1, 2, 2]}, sha256="")
    identity = Identity(SigningKey(hashlib.sha256(b"wmproof test owner").digest()), 1_700_000_000, "test owner")
    params = {"epsilon": "0.25", "norm": "linf"}
    mk, vk = keygen(
        identity,
        "frontier-stitching",
        items=6,
        num_classes=2,
        input_shape=(1, 2, 2),
        params=params,
        alpha=Fraction(1, 20),
        context=KeyGenContext(num_classes=2, input_shape=(1, 2, 2), params=params, model=model, data=(images, labels)),
        created_at=1_700_000_000,
        entropy=deterministic("frontier-stitching-keygen"),
    )
    by_index = {item.index: item for item in (*vk.opened, *mk.items)}
    cases = [
        {
            "kind": "keygen",
            "identity_seed": h(identity.signing_key.seed),
            "entropy": "tagged_xof('wmproof/v1/test-vectors', 'frontier-stitching-keygen'): master seed, then one "
            "salt per item",
            "model": {"weight": FS_WEIGHT, "bias": FS_BIAS, "logits": "W x + b, x flattened (C, H, W order)"},
            "data": "tagged_xof('wmproof/v1/test-vectors', 'frontier-stitching-data'): 40 x 4 draws of below(5), "
            "value = draw / 4; label = argmax of the logits",
            "params": params,
            "items": 6,
            "num_classes": 2,
            "input_shape": [1, 2, 2],
            "alpha": [1, 20],
            "created_at": 1_700_000_000,
            "min_matches": vk.min_matches,
            "proof_min_matches": vk.proof_min_matches,
            "item_messages": [h(commitment_message(by_index[i])) for i in range(vk.committed)],
            "commitments": [h(c) for c in vk.leaves],
            "merkle_root": h(vk.merkle_root),
            "opened": [item.index for item in vk.opened],
            "verification_key": h(vk.raw),
            "key_id": h(vk.key_id),
            "marking_key_unencrypted": h(mk.to_bytes(None)),
        }
    ]
    write(
        "frontier-stitching.json",
        "A frontier-stitching key (section 15) from a fixed linear model, fixed data and fixed entropy: every "
        "committed item (float32 records), the commitments, the p0 = 1/2 thresholds and the key files.",
        cases,
    )


def ed25519_vectors() -> None:
    rfc = [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", ""),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "72"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "af82"),
    ]
    cases = []
    for seed, message in rfc:
        sk = SigningKey(bytes.fromhex(seed))
        cases.append(
            {
                "source": "RFC 8032 section 7.1",
                "seed": seed,
                "public_key": h(bytes(sk.verify_key)),
                "message": message,
                "signature": h(sk.sign(bytes.fromhex(message))),
            }
        )
    write("ed25519.json", "Ed25519 (RFC 8032 test vectors 1-3).", cases)


if __name__ == "__main__":
    encoding_vectors()
    hashing_vectors()
    merkle_vectors()
    transcript_vectors()
    generator_vectors()
    key_vectors()
    timestamp_vectors()
    proof_vectors()
    beacon_vectors()
    frontier_stitching_vectors()
    ed25519_vectors()
    print("wrote", ", ".join(sorted(p.name for p in HERE.glob("*.json"))))

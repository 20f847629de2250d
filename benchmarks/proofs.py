"""Public ownership proofs: size and check time for batches of n = 64, 256, 1024 items (MNIST-shaped).

Checking a proof (``parse_proof``) is timed whole (median of repeats), then again with timers around its
parts, which add a call per hash; the parts (and "the rest") are those of the instrumented runs:

* cryptography: two Ed25519 signatures, 2n commitments (the key's opened half and the batch), the Merkle
  root over 2n leaves, n inclusion paths, the Fiat-Shamir transcript and its sampling;
* regenerating every opened item from its seed with the public generator (2n items), which is not
  cryptography but is what catches a crafted item;
* the rest: the strict canonical decoder, re-encoding item records to hash them, field checks.

Beside them, a **floor**, measured in the same run: the cryptography a check cannot avoid, done bare in a loop
with hashlib and PyNaCl and nothing of wmproof, on messages of the sizes the real check hashes: the two
Ed25519 signatures (the proof's and its verification key's, over their signed bytes) and the two container
digests over the same bytes; 2n commitments over records of an item's size; the Merkle root over 2n leaves;
n inclusion paths; and 2n SHAKE-256 streams of 256 bytes (each opened item's generator stream). A check
cannot be cheaper than its floor; the rest is what wmproof adds.

Targets: under 50 ms of cryptography for 1024 items (issue 5); for the whole check of n = 1024, at most
100 ms (median) and at most 3x the floor (issue 18). Model queries aside.

    python benchmarks/proofs.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from fractions import Fraction

import wmproof.crypto.signed as signed
import wmproof.protocol.keys as keys
import wmproof.protocol.proofs as proofs
from wmproof.crypto import VerifyKey
from wmproof.protocol import Identity, keygen
from wmproof.protocol.proofs import make_proof, parse_proof
from wmproof.schemes.adi_backdoor import AdiBackdoor

TARGET_CRYPTO_S = 0.050
TARGET_CHECK_S = 0.100  # n = 1024
TARGET_FLOOR_RATIO = 3.0


def floor(n: int, record_bytes: int, signed_sizes: tuple[int, int]) -> Callable[[], float]:
    """The bare cryptography of checking a proof of n items (see the module docstring): a function that does
    it once and returns its seconds. What a check cannot avoid, with hashlib and PyNaCl and nothing of
    wmproof, on messages of the sizes the real check hashes (``signed_sizes``: the proof's and its
    verification key's signed bytes)."""
    import hashlib
    import os

    from nacl.signing import SigningKey

    key = SigningKey.generate()
    verify = key.verify_key.verify
    signed = [key.sign(os.urandom(size)) for size in signed_sizes]  # the proof and its verification key
    records = [os.urandom(record_bytes) for _ in range(2 * n)]  # the key's opened half and the batch
    salts = [os.urandom(32) for _ in range(2 * n)]
    seeds = [os.urandom(80) for _ in range(2 * n)]  # the generator's input: framing, seed, shape, classes
    depth = max(1, (2 * n - 1).bit_length())
    nodes = [os.urandom(65) for _ in range(64)]
    sha256, shake = hashlib.sha256, hashlib.shake_256

    def once() -> float:
        t0 = time.perf_counter()
        for message in signed:
            verify(message)  # the signature
            sha256(message.message).digest()  # the container's digest (its identifier)
        leaves = [sha256(r + s).digest() for r, s in zip(records, salts, strict=True)]  # 2n commitments
        level = [sha256(b"\x00" + leaf).digest() for leaf in leaves]  # RFC 6962 leaf hashes
        while len(level) > 1:
            level = [sha256(b"\x01" + a + b).digest() for a, b in zip(level[::2], level[1::2], strict=False)]
        for i in range(n):  # the batch's inclusion paths
            h = sha256(b"\x00" + leaves[i]).digest()
            for d in range(depth):
                h = sha256(nodes[(i + d) % 64][:1] + h + nodes[d][:32]).digest()
        for seed in seeds:  # each opened item's generator stream
            shake(seed).digest(256)
        return time.perf_counter() - t0

    return once


def measure(n: int, repeats: int) -> dict[str, float]:
    owner = Identity.generate("benchmark")
    mk, vk = keygen(owner, "adi-backdoor", items=n, num_classes=10, input_shape=(1, 28, 28), alpha=Fraction(1, 10**6))
    suspect = {"kind": "model-file", "sha256": "0" * 64}
    t0 = time.perf_counter()
    proof, _ = make_proof(mk, vk, owner, suspect)
    prove_s = time.perf_counter() - t0
    clocks = {"crypto": [0.0], "generator": [0.0]}
    patches = [
        (AdiBackdoor, "check_items", "generator"),
        (keys, "opened_commitments", "crypto"),  # the 2n item commitments
        (signed, "tagged_hash", "crypto"),  # the two containers' digests
        (keys, "MerkleTree", "crypto"),
        (proofs, "verify_inclusion", "crypto"),
        (keys, "challenge_transcript", "crypto"),
        (keys, "opened_indices", "crypto"),
        (VerifyKey, "verify", "crypto"),
    ]
    originals = [(owner_, name, getattr(owner_, name)) for owner_, name, _ in patches]

    def timed(function, clock):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                clock[0] += time.perf_counter() - t

        return wrapper

    # The whole check, uninstrumented (the timers below add a call per hash and would inflate it), each
    # repeat beside one of the floor: on a shared machine the speed drifts, and the ratio is taken from
    # neighbouring measurements.
    record_bytes = len(keys.commitment_message(mk.items[0]))
    bare = floor(n, record_bytes, (len(proof) - 64, len(vk.raw) - 64))
    totals, floors = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        parse_proof(proof)
        totals.append(time.perf_counter() - t0)
        floors.append(bare())
    crypto, generator, instrumented = [], [], []
    for owner_, name, clock in patches:
        setattr(owner_, name, timed(getattr(owner_, name), clocks[clock]))
    try:
        for _ in range(repeats):
            clocks["crypto"][0] = clocks["generator"][0] = 0.0
            t0 = time.perf_counter()
            parse_proof(proof)
            instrumented.append(time.perf_counter() - t0)
            crypto.append(clocks["crypto"][0])
            generator.append(clocks["generator"][0])
    finally:
        for owner_, name, function in originals:
            setattr(owner_, name, function)
    total = statistics.median(totals)
    return {
        "n": n,
        "proof_bytes": len(proof),
        "prove_s": prove_s,
        "check_s": total,
        "instrumented_s": statistics.median(instrumented),  # the parts below are measured in this run
        "crypto_s": statistics.median(crypto),
        "generator_s": statistics.median(generator),
        "floor_s": statistics.median(floors),
        # the median over repeats of check / floor, each pair measured back to back
        "ratio": statistics.median(t / f for t, f in zip(totals, floors, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(n, args.repeats) for n in args.sizes]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{'n':>5} {'proof':>9} {'check':>9} {'crypto':>9} {'generator':>10} {'the rest':>9} {'floor':>9} "
        f"{'check/floor':>12}"
    )
    for r in rows:
        rest = r["instrumented_s"] - r["crypto_s"] - r["generator_s"]
        print(
            f"{r['n']:>5} {r['proof_bytes'] / 1e6:>7.2f}MB {1000 * r['check_s']:>7.1f}ms "
            f"{1000 * r['crypto_s']:>7.1f}ms {1000 * r['generator_s']:>8.1f}ms {1000 * rest:>7.1f}ms "
            f"{1000 * r['floor_s']:>7.1f}ms {r['ratio']:>11.2f}x"
        )
    big = next((r for r in rows if r["n"] == 1024), None)
    if big is not None:
        print(
            f"n = 1024: check {1000 * big['check_s']:.1f} ms (target <= {1000 * TARGET_CHECK_S:.0f} ms), "
            f"{big['ratio']:.2f}x the floor (target <= {TARGET_FLOOR_RATIO:.0f}x), "
            f"cryptography {1000 * big['crypto_s']:.1f} ms (target <= {1000 * TARGET_CRYPTO_S:.0f} ms)"
        )


if __name__ == "__main__":
    main()

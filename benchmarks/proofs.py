"""Public ownership proofs: size and check time for batches of n = 64, 256, 1024 items (MNIST-shaped).

Checking a proof (``parse_proof``) does three kinds of work, timed here inside one and the same check
(median of repeats):

* cryptography: two Ed25519 signatures, 2n commitments (the key's opened half and the batch), the Merkle
  root over 2n leaves, n inclusion paths, the Fiat-Shamir transcript and its sampling;
* regenerating every opened item from its seed with the public generator (2n items), which is not
  cryptography but is what catches a crafted item;
* the rest: the strict canonical decoder, re-encoding item records to hash them, field checks.

The issue's target: under 50 ms of cryptography for 1024 items on a CPU, model queries aside.

    python benchmarks/proofs.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from fractions import Fraction

import wmproof.protocol.keys as keys
import wmproof.protocol.proofs as proofs
from wmproof.crypto import VerifyKey
from wmproof.protocol import Identity, keygen
from wmproof.protocol.proofs import make_proof, parse_proof
from wmproof.schemes.adi_backdoor import AdiBackdoor

TARGET_CRYPTO_S = 0.050


def measure(n: int, repeats: int) -> dict[str, float]:
    owner = Identity.generate("benchmark")
    mk, vk = keygen(owner, "adi-backdoor", items=n, num_classes=10, input_shape=(1, 28, 28), alpha=Fraction(1, 10**6))
    suspect = {"kind": "model-file", "sha256": "0" * 64}
    t0 = time.perf_counter()
    proof, _ = make_proof(mk, vk, owner, suspect)
    prove_s = time.perf_counter() - t0
    clocks = {"crypto": [0.0], "generator": [0.0]}
    patches = [
        (AdiBackdoor, "check_item", "generator"),
        (keys, "commit", "crypto"),
        (proofs, "commit", "crypto"),
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

    totals, crypto, generator = [], [], []
    for owner_, name, clock in patches:
        setattr(owner_, name, timed(getattr(owner_, name), clocks[clock]))
    try:
        for _ in range(repeats):
            clocks["crypto"][0] = clocks["generator"][0] = 0.0
            t0 = time.perf_counter()
            parse_proof(proof)
            totals.append(time.perf_counter() - t0)
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
        "crypto_s": statistics.median(crypto),
        "generator_s": statistics.median(generator),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(n, args.repeats) for n in args.sizes]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'n':>5} {'proof':>9} {'check':>9} {'crypto':>9} {'of 50 ms':>9} {'generator':>10} {'the rest':>9}")
    for r in rows:
        rest = r["check_s"] - r["crypto_s"] - r["generator_s"]
        print(
            f"{r['n']:>5} {r['proof_bytes'] / 1e6:>7.2f}MB {1000 * r['check_s']:>7.1f}ms "
            f"{1000 * r['crypto_s']:>7.1f}ms {r['crypto_s'] / TARGET_CRYPTO_S:>9.2f} "
            f"{1000 * r['generator_s']:>8.1f}ms {1000 * rest:>7.1f}ms"
        )


if __name__ == "__main__":
    main()

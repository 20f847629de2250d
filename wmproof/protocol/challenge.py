"""The cut-and-choose challenge (Adi et al. 2018, section 4.1 and appendix A.1) made non-interactive with
Fiat-Shamir.

KeyGen commits to 2N trigger items. A challenge derived from a transcript of everything the verifier checks
(checklist rule 1: protocol label, owner key, scheme and parameters, task, counts, Merkle root, decision
thresholds, grinding budget, creation time) selects N of them to open in the verification key; anyone can
check that each opened item opens its commitment and is what the public generator makes from its seed. The
other N are the marking key's, embedded in the model and split into batches, one per public proof.

Sampling (docs/protocol.md section 14.2): a partial Fisher-Yates shuffle of ``[0, 2N)`` driven by
``below()`` on the challenge stream (rejection sampling, no modulo bias); the first N positions, sorted, are
opened.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from typing import Any

from ..crypto import Transcript, canonical_encode

DOMAIN = b"wmproof/1/cut-and-choose"
#: Offline retries of the challenge a cheating owner is assumed able to afford without a beacon: 2^80, so
#: that about 80 forged items cannot change a verdict (checklist rule 2).
GRINDING_BITS = 80
#: With a beacon (the hash of the block after the one that timestamped the key's commitment) the challenge
#: cannot be known before the commitment is public: one try, and every retry is a public registration.
BEACON_GRINDING_BITS = 0


def challenge_transcript(
    *,
    owner: bytes,
    scheme: str,
    params: dict[str, Any],
    num_classes: int,
    input_shape: list[int] | tuple[int, ...],
    committed: int,
    items: int,
    batch_size: int,
    merkle_root: bytes,
    alpha: Fraction,
    min_matches: int,
    proof_min_matches: int,
    grinding_bits: int,
    created_at: int,
    beacon: dict[str, Any] | None = None,
) -> Transcript:
    """The transcript whose challenge picks the opened half. Every field is absorbed under its own label."""
    t = Transcript(DOMAIN)
    t.absorb(b"owner-public-key", owner)
    t.absorb(b"scheme", scheme.encode())
    t.absorb(b"params", canonical_encode(params))
    t.absorb(b"task", canonical_encode({"num_classes": num_classes, "input_shape": list(input_shape)}))
    t.absorb(b"counts", struct.pack(">QQQ", committed, items, batch_size))
    t.absorb(b"merkle-root", merkle_root)
    t.absorb(b"alpha", canonical_encode([alpha.numerator, alpha.denominator]))
    t.absorb(b"thresholds", struct.pack(">QQ", min_matches, proof_min_matches))
    t.absorb(b"grinding-bits", struct.pack(">Q", grinding_bits))
    t.absorb(b"created-at", struct.pack(">Q", created_at))
    t.absorb(b"beacon", canonical_encode(beacon))
    return t


def opened_indices(transcript: Transcript, committed: int, opened: int) -> list[int]:
    """The ``opened`` indices of ``[0, committed)`` the challenge selects, ascending."""
    stream = transcript.challenge_stream(b"opened-items")
    order = list(range(committed))
    for i, draw in enumerate(stream.uniform_below_each(range(committed, committed - opened, -1))):
        j = i + draw
        order[i], order[j] = order[j], order[i]
    return sorted(order[:opened])


def proof_batches(kept: list[int], batch_size: int) -> list[list[int]]:
    """The kept indices, ascending, cut into consecutive batches: batch j is what proof j opens."""
    return [kept[i : i + batch_size] for i in range(0, len(kept), batch_size)]

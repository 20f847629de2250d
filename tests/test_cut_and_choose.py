"""The cut-and-choose at KeyGen: T2 (the challenge binds every field), T3 (a cheater with t forged items
escapes about 2^-t of the time; the (n, threshold) table), crafted items caught. Checklist rules 1-2."""

from __future__ import annotations

import dataclasses
import random
from fractions import Fraction

import pytest

from wmproof.crypto import sign_container
from wmproof.errors import MalformedInput
from wmproof.protocol import keygen, parse_verification_key
from wmproof.protocol.challenge import challenge_transcript, opened_indices
from wmproof.protocol.keys import item_record
from wmproof.stats import binomial_sf, cut_and_choose_soundness, cut_and_choose_threshold, escape_probability

BASE = dict(
    owner=b"\x01" * 32,
    scheme="adi-backdoor",
    params={"generator": "abstract-v1"},
    num_classes=10,
    input_shape=[1, 28, 28],
    committed=200,
    items=100,
    batch_size=50,
    merkle_root=b"\x02" * 32,
    alpha=Fraction(1, 10**6),
    min_matches=28,
    proof_min_matches=18,
    grinding_bits=80,
    created_at=1_700_000_000,
    beacon=None,
)
CHANGED = {
    "owner": b"\x03" * 32,
    "scheme": "frontier-stitching",
    "params": {"generator": "abstract-v2"},
    "num_classes": 11,
    "input_shape": [1, 28, 27],
    "committed": 202,
    "items": 101,
    "batch_size": 25,
    "merkle_root": b"\x04" * 32,
    "alpha": Fraction(1, 10**5),
    "min_matches": 29,
    "proof_min_matches": 19,
    "grinding_bits": 0,
    "created_at": 1_700_000_001,
    "beacon": {"chain_id": 1, "beacon_hash": b"\x05" * 32},
}


def challenge(**fields) -> list[int]:
    values = {**BASE, **fields}
    return opened_indices(challenge_transcript(**values), values["committed"], values["items"])


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_the_challenge_changes_with_every_bound_field(name):
    """T2: one case per field the verifier checks (a field left out would be the Frozen Heart bug)."""
    assert set(CHANGED) == set(BASE)
    assert challenge(**{name: CHANGED[name]}) != challenge()


def test_the_challenge_opens_half_uniformly():
    opened = challenge()
    assert len(opened) == 100 and len(set(opened)) == 100 and all(0 <= i < 200 for i in opened)
    # Over many transcripts each index is opened about half the time.
    counts = [0] * 200
    for root in range(400):
        for i in challenge(merkle_root=root.to_bytes(32, "big")):
            counts[i] += 1
    assert 150 <= min(counts) and max(counts) <= 250  # mean 200, sd 10


def test_a_cheater_escapes_about_two_to_the_minus_t():
    """T3: simulate a cheater who forges t of 2N items and retries the challenge: the escape rate matches
    C(2N - t, N) / C(2N, N) <= 2^-t."""
    rng = random.Random(7)
    n = 50
    for t in (1, 2, 4, 6):
        forged = set(rng.sample(range(2 * n), t))
        trials = 4000
        escaped = sum(
            not forged & set(challenge(committed=2 * n, items=n, merkle_root=rng.randbytes(32))) for _ in range(trials)
        )
        expected = escape_probability(t, 2 * n, n)
        assert expected <= Fraction(1, 2**t)
        sd = (float(expected) * (1 - float(expected)) / trials) ** 0.5
        assert abs(escaped / trials - float(expected)) <= 4 * sd + 1e-3, (t, escaped / trials, float(expected))


@pytest.mark.parametrize(
    "batch,grinding,threshold",
    # The documented table (docs/protocol.md 14.3): p0 = 1/10, alpha = 1e-6, 2N = 8 x batch.
    [(32, 0, 20), (32, 80, 33), (64, 0, 25), (64, 80, 65), (128, 0, 34), (128, 80, 98), (256, 0, 52), (256, 80, 118)],
)
def test_threshold_table(batch, grinding, threshold):
    n = batch * 4
    found = cut_and_choose_threshold(
        batch, Fraction(1, 10), Fraction(1, 10**6), total=2 * n, opened=n, grinding_bits=grinding
    )
    assert found == threshold
    sound = cut_and_choose_soundness(found, batch, Fraction(1, 10), total=2 * n, opened=n, grinding_bits=grinding)
    assert sound <= Fraction(1, 10**6)
    if found <= batch:
        below = cut_and_choose_soundness(
            found - 1, batch, Fraction(1, 10), total=2 * n, opened=n, grinding_bits=grinding
        )
        assert below > Fraction(1, 10**6)
    # With 2^80 retries, 80 forged items (which escape about once in 2^80 tries) that all match must not reach
    # the threshold together with the clean rest of the batch.
    if grinding == 80 and batch > 80:
        assert binomial_sf(found - 80, batch - 80, Fraction(1, 10)) <= Fraction(1, 10**5)


def test_a_key_whose_opened_half_holds_a_crafted_item_is_caught(owner):
    """The owner replaces one item by a crafted one (a natural-looking input with a chosen label) and
    re-signs: if the challenge opens it, the verification key is refused."""
    mk, vk = keygen(owner, "adi-backdoor", items=20, num_classes=10, input_shape=(1, 28, 28), alpha=Fraction(1, 100))
    from wmproof.crypto import open_signed_container

    statement = dict(open_signed_container(vk.raw).statement)
    opened = [dict(entry) for entry in statement["opened"]]
    victim = vk.opened[3]
    crafted = dataclasses.replace(victim, label=(victim.label + 1) % 10)
    opened[3] = {**item_record(crafted), "salt": opened[3]["salt"]}
    statement["opened"] = opened
    with pytest.raises(MalformedInput, match="not what the generator makes from its seed"):
        parse_verification_key(sign_container("verification-key", 1, statement, owner.signing_key))

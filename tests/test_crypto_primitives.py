"""Commitments (rule 3), the transcript, tagged hashing, tags and XOF sampling."""

from __future__ import annotations

import collections
import hashlib
import struct

import pytest

from wmproof.crypto import (
    CommitmentMismatch,
    Transcript,
    commit,
    open_commitment,
    tagged_hash,
    tagged_xof,
    tags,
)

TAG = tags.COMMIT_TRIGGER_ITEM


def test_commitment_formula_matches_the_spec():
    salt = bytes(range(32))
    c, s = commit(TAG, b"message", salt=salt)
    expected = hashlib.sha256(
        bytes([len(TAG)]) + TAG + struct.pack(">Q", 7) + b"message" + struct.pack(">Q", 32) + salt
    ).digest()
    assert c == expected and s == salt


def test_commitment_opens_only_with_its_message_salt_and_tag():
    c, salt = commit(TAG, b"label=3")
    open_commitment(TAG, c, b"label=3", salt)
    with pytest.raises(CommitmentMismatch):
        open_commitment(TAG, c, b"label=4", salt)
    with pytest.raises(CommitmentMismatch):
        open_commitment(TAG, c, b"label=3", bytes(32))
    with pytest.raises(CommitmentMismatch):
        open_commitment(tags.ITEM_SEED, c, b"label=3", salt)
    with pytest.raises(CommitmentMismatch):
        open_commitment(TAG, c, b"label=3", salt[:31])


def test_commitments_are_salted():
    # A low-entropy message (a label) must not give the same commitment twice.
    assert commit(TAG, b"3")[0] != commit(TAG, b"3")[0]
    with pytest.raises(ValueError):
        commit(TAG, b"3", salt=b"short")


def test_tagged_hash_is_injective_on_boundaries():
    assert tagged_hash(TAG, b"ab", b"c") != tagged_hash(TAG, b"a", b"bc")
    assert tagged_hash(TAG, b"abc") != tagged_hash(TAG, b"ab", b"c")
    assert tagged_hash(b"wmproof/v1/a", b"") != tagged_hash(b"wmproof/v1/", b"a")


def test_tags_are_distinct_and_prefix_free():
    assert len(set(tags.ALL_TAGS)) == len(tags.ALL_TAGS)
    for a in tags.ALL_TAGS:
        assert a.startswith(tags.PROTOCOL_LABEL + b"/")
        for b in tags.ALL_TAGS:
            if a != b:
                assert not b.startswith(a), (a, b)
    # Every tag constant in the module is registered.
    constants = {v for k, v in vars(tags).items() if k.isupper() and isinstance(v, bytes) and k != "PROTOCOL_LABEL"}
    assert constants == set(tags.ALL_TAGS)


def _challenge(ops):
    t = Transcript(b"test")
    for label, data in ops:
        t.absorb(label, data)
    return t.challenge_bytes(b"c", 32)


def test_transcript_binds_labels_order_and_boundaries():
    base = _challenge([(b"a", b"1"), (b"b", b"2")])
    assert base == _challenge([(b"a", b"1"), (b"b", b"2")])
    variants = [
        [(b"a", b"1"), (b"b", b"3")],
        [(b"a", b"1"), (b"c", b"2")],
        [(b"b", b"2"), (b"a", b"1")],
        [(b"a", b"12"), (b"b", b"")],
        [(b"a", b"1")],
        [(b"a", b"1"), (b"b", b"2"), (b"b", b"2")],
    ]
    for ops in variants:
        assert _challenge(ops) != base, ops
    t1, t2 = Transcript(b"test"), Transcript(b"other")
    assert t1.challenge_bytes(b"c", 8) != t2.challenge_bytes(b"c", 8)


def test_successive_challenges_differ_and_chain():
    t = Transcript(b"test")
    first = t.challenge_bytes(b"c", 16)
    second = t.challenge_bytes(b"c", 16)
    assert first != second
    # A longer challenge is not a prefix-extension of a shorter one (the length is recorded).
    a, b = Transcript(b"x"), Transcript(b"x")
    assert a.challenge_bytes(b"c", 64)[:16] != b.challenge_bytes(b"c", 16)


def test_xof_stream_is_prefix_consistent():
    r1 = tagged_xof(TAG, b"seed")
    chunks = r1.read(10) + r1.read(500) + r1.read(3)
    r2 = tagged_xof(TAG, b"seed")
    assert r2.read(513) == chunks
    assert chunks == hashlib.shake_256(bytes([len(TAG)]) + TAG + struct.pack(">Q", 4) + b"seed").digest(513)


def test_uniform_below_rejects_the_biased_tail():
    # bound 3 reads one byte; values 255 (>= 3 * 85) must be rejected and the next byte used.
    class Fixed:
        def __init__(self, data):
            self.data, self.pos = data, 0

        def read(self, n):
            out = self.data[self.pos : self.pos + n]
            self.pos += n
            return out

    from wmproof.crypto.hashing import XofReader

    reader = Fixed(bytes([255, 255, 7]))
    assert XofReader.uniform_below(reader, 3) == 1  # 7 % 3 after two rejections
    assert reader.pos == 3
    reader = Fixed(bytes([0x01, 0x2C]))  # bound 300 needs two bytes: 0x012c = 300 -> 300 % 300
    assert XofReader.uniform_below(reader, 300) == 0


def test_uniform_below_is_uniform():
    r = tagged_xof(TAG, b"uniformity")
    counts = collections.Counter(r.uniform_below(10) for _ in range(50_000))
    # Chi-square with 9 degrees of freedom; 27.88 is the 0.999 quantile.
    chi2 = sum((c - 5000) ** 2 / 5000 for c in counts.values())
    assert len(counts) == 10 and chi2 < 27.88


def test_tagged_xof_prefixes_reads_the_streams_tagged_xof_reads():
    from wmproof.crypto import tagged_xof, tagged_xof_prefixes

    firsts = [bytes([i]) * (i % 40) for i in range(50)]
    rest = (b"shape", b"")
    got = tagged_xof_prefixes(b"wmproof/test", firsts, *rest, size=300)
    assert got == [tagged_xof(b"wmproof/test", first, *rest).read(300) for first in firsts]


def test_the_bulk_commitment_path_computes_what_commit_does_and_refuses_bad_salts():
    """Issue 18: a proof check opens its 2,048 item commitments through ``opened_commitments`` (one kept hash
    state for all); each must be the commitment ``commit`` makes from the same message and salt, and a salt
    of the wrong type or length is refused, as ``open_commitment`` refuses it."""
    from wmproof.crypto import opened_commitments, tagged_hash_pairs

    messages = [bytes([i]) * (i * 7 % 300) for i in range(40)]
    salts = [hashlib.sha256(b"salt %d" % i).digest() for i in range(40)]
    expected = [commit(b"wmproof/test", m, salt=s)[0] for m, s in zip(messages, salts, strict=True)]
    assert opened_commitments(b"wmproof/test", messages, salts) == expected
    assert tagged_hash_pairs(b"wmproof/other", messages, salts) == [
        tagged_hash(b"wmproof/other", m, s) for m, s in zip(messages, salts, strict=True)
    ]
    for bad in (salts[0][:31], salts[0] + b"\x00", bytearray(salts[0]), None):
        with pytest.raises(CommitmentMismatch):
            opened_commitments(b"wmproof/test", messages[:2], [salts[1], bad])
    with pytest.raises(ValueError):
        tagged_hash_pairs(b"wmproof/test", messages, salts[:-1])
    with pytest.raises(TypeError):
        tagged_hash_pairs(b"wmproof/test", ["text"], [salts[0]])


@pytest.mark.parametrize(
    "bounds",
    [range(2048, 1024, -1), [129] * 500, [2, 3, 200, 255] * 40, [40000, 65536, 65535] * 100, [257], [1, 5, 1000], []],
)
def test_uniform_below_each_draws_what_uniform_below_draws(bounds):
    """Issue 18: the challenge's 1,024 draws are read ahead together; the draws, and where the stream is
    left, are those of one call at a time (with many rejections, [129] * 500, the bytes read ahead run out
    and the rest is drawn one at a time)."""
    one, bulk = tagged_xof(b"wmproof/test", b"seed"), tagged_xof(b"wmproof/test", b"seed")
    assert bulk.uniform_below_each(bounds) == [one.uniform_below(bound) for bound in bounds]
    assert bulk.read(40) == one.read(40)

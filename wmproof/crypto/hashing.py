"""Domain-separated hashing: the one construction every other digest in wmproof is built from.

``tagged_hash(tag, p1, ..., pk) = SHA-256(u8(len(tag)) || tag || u64be(len(p1)) || p1 || ... )``

The length prefixes make the encoding injective: no two different (tag, parts) tuples hash the same
bytes, so moving a boundary between parts, or between the tag and the first part, changes the digest.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

DIGEST_SIZE = 32


def _tag_prefix(tag: bytes) -> bytes:
    prefix = _PREFIXES.get(tag) if type(tag) is bytes else None  # wmproof's tags are a few constants
    if prefix is None:
        if not isinstance(tag, bytes) or not 0 < len(tag) < 256:
            raise ValueError("a tag is 1 to 255 bytes")
        prefix = bytes([len(tag)]) + tag
        if len(_PREFIXES) < 256:
            _PREFIXES[tag] = prefix
    return prefix


_PREFIXES: dict[bytes, bytes] = {}


def length_prefixed(part: bytes) -> bytes:
    """``u64be(len(part)) || part``."""
    return struct.pack(">Q", len(part)) + part


def tagged_hash(tag: bytes, *parts: bytes) -> bytes:
    """SHA-256 over a tag and length-prefixed parts (see the module docstring)."""
    h = hashlib.sha256(_tag_prefix(tag))
    for part in parts:
        if not isinstance(part, (bytes, bytearray, memoryview)):
            raise TypeError("tagged_hash parts are bytes")
        h.update(struct.pack(">Q", len(part)))
        h.update(part)
    return h.digest()


def tagged_xof(tag: bytes, *parts: bytes) -> "XofReader":
    """A SHAKE-256 stream over the same framing as :func:`tagged_hash`."""
    return XofReader(_tag_prefix(tag) + b"".join(map(length_prefixed, parts)))


def tagged_xof_prefixes(tag: bytes, firsts: Sequence[bytes], *rest: bytes, size: int) -> list[bytes]:
    """``tagged_xof(tag, first, *rest).read(size)`` for each of ``firsts``: the first ``size`` bytes of
    many streams that differ in their first part only (a proof check reads one trigger stream per seed, 2,048
    of them for a batch of 1,024)."""
    head, tail, shake = _tag_prefix(tag), b"".join(map(length_prefixed, rest)), hashlib.shake_256
    return [shake(head + length_prefixed(first) + tail).digest(size) for first in firsts]


class XofReader:
    """Reads a SHAKE-256 output stream sequentially.

    SHAKE output of length m is a prefix of the output of any length > m, so the stream is extended by
    recomputing a longer digest; readers see one infinite, deterministic byte stream.
    """

    __slots__ = ("_input", "_buffer", "_pos")

    def __init__(self, data: bytes) -> None:
        self._input = data
        self._buffer = b""
        self._pos = 0

    def read(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("n must be >= 0")
        end = self._pos + n
        if end > len(self._buffer):
            size = max(end, 2 * len(self._buffer), 256)
            self._buffer = hashlib.shake_256(self._input).digest(size)
        out = self._buffer[self._pos : end]
        self._pos = end
        return out

    def read_byte(self) -> int:
        return self.read(1)[0]

    def uniform_below(self, bound: int) -> int:
        """An integer uniform in [0, bound), by rejection sampling (no modulo bias).

        Reads the fewest whole bytes b with 256**b >= bound, as a big-endian integer v; accepts v when
        v < bound * floor(256**b / bound) and returns v mod bound, else reads again.
        """
        if bound < 1:
            raise ValueError("bound must be >= 1")
        if bound == 1:
            return 0
        nbytes = ((bound - 1).bit_length() + 7) // 8
        space = 1 << (8 * nbytes)
        limit = space - space % bound
        while True:
            v = int.from_bytes(self.read(nbytes), "big")
            if v < limit:
                return v % bound

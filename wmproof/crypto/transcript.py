"""A Fiat-Shamir transcript: labelled, length-prefixed absorbs and challenges derived from all of them.

Each operation is recorded in a running SHA-256 as ``op || u32be(len(label)) || label || payload``:
``absorb`` records ``b"A"`` and ``u64be(len(data)) || data``; ``challenge`` records ``b"C"`` and
``u64be(n)``, then squeezes n bytes from SHAKE-256 over (TRANSCRIPT_CHALLENGE tag, the SHA-256 state's
digest). Every challenge therefore depends on everything absorbed before it, in order, with its label, and
later challenges depend on earlier ones. Binding every field the verifier checks into the transcript is
the caller's job (checklist rule 1, the "Frozen Heart" bug); the labels make omissions visible.
"""

from __future__ import annotations

import hashlib
import struct

from . import tags
from .hashing import XofReader, tagged_xof


class Transcript:
    def __init__(self, domain: bytes) -> None:
        if not isinstance(domain, bytes) or not domain:
            raise ValueError("a transcript needs a non-empty domain label")
        self._h = hashlib.sha256()
        self._record(b"I", tags.TRANSCRIPT, struct.pack(">Q", len(domain)) + domain)

    def _record(self, op: bytes, label: bytes, payload: bytes) -> None:
        if not isinstance(label, bytes) or not label:
            raise ValueError("transcript labels are non-empty bytes")
        self._h.update(op + struct.pack(">I", len(label)) + label + payload)

    def absorb(self, label: bytes, data: bytes) -> None:
        """Append a labelled message to the transcript."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("transcript data is bytes; encode structures canonically first")
        self._record(b"A", label, struct.pack(">Q", len(data)) + bytes(data))

    def challenge_stream(self, label: bytes) -> XofReader:
        """A labelled challenge as an unbounded stream (for rejection sampling)."""
        self._record(b"C", label, struct.pack(">Q", 0))
        return tagged_xof(tags.TRANSCRIPT_CHALLENGE, self._h.copy().digest())

    def challenge_bytes(self, label: bytes, n: int) -> bytes:
        """``n`` challenge bytes under ``label``."""
        if n < 1:
            raise ValueError("ask for at least one challenge byte")
        self._record(b"C", label, struct.pack(">Q", n))
        return tagged_xof(tags.TRANSCRIPT_CHALLENGE, self._h.copy().digest()).read(n)

    def digest(self) -> bytes:
        """The current state's SHA-256 (for known-answer tests; not a challenge)."""
        return self._h.copy().digest()

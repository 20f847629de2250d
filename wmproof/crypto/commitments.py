"""Salted, domain-separated hash commitments.

``commitment = tagged_hash(tag, message, salt)`` with a fresh 32-byte salt (checklist rule 3). The salt makes
the commitment hiding even when the message has little entropy: a trigger label has only log2(#classes)
bits, and an unsalted commitment to it could be opened by brute force. SHA-256 makes it binding. The tag
binds the commitment to its purpose, so a commitment made for one kind of object cannot be opened as
another.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence

from .errors import CommitmentMismatch
from .hashing import tagged_hash, tagged_hash_pairs

SALT_SIZE = 32


def commit(tag: bytes, message: bytes, *, salt: bytes | None = None) -> tuple[bytes, bytes]:
    """Commit to ``message``; returns ``(commitment, salt)``. Keep the salt secret until the opening.

    ``salt`` is for known-answer tests only: leave it out and a fresh random salt is drawn.
    """
    if salt is None:
        salt = os.urandom(SALT_SIZE)
    elif not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        raise ValueError("a commitment salt is 32 bytes")
    return tagged_hash(tag, message, salt), salt


def open_commitment(tag: bytes, commitment: bytes, message: bytes, salt: bytes) -> None:
    """Check that ``(message, salt)`` opens ``commitment`` under ``tag``; raises :class:`CommitmentMismatch`."""
    if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        raise CommitmentMismatch("the opening's salt is not 32 bytes")
    if not hmac.compare_digest(tagged_hash(tag, message, salt), commitment):
        raise CommitmentMismatch("the opening does not match the commitment")


def opened_commitments(tag: bytes, messages: Sequence[bytes], salts: Sequence[bytes]) -> list[bytes]:
    """The commitments that the openings ``(messages[i], salts[i])`` open under ``tag``, to compare with
    the committed ones (a proof check opens 2,048 item commitments at once)."""
    if salts and (set(map(type, salts)) != {bytes} or set(map(len, salts)) != {SALT_SIZE}):
        raise CommitmentMismatch("an opening's salt is not 32 bytes")
    return tagged_hash_pairs(tag, messages, salts)

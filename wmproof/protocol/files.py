"""Opening wmproof's container files, with every failure turned into a one-line, typed error.

Files are recognised by their container header and refused with a message naming the file and what it is
when it is of another kind. Crypto failures become :mod:`wmproof.errors` failures here, with the file's
name attached and nothing of its secret contents.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..crypto import (
    CryptoError,
    DecryptionFailed,
    KdfParametersRejected,
    MalformedContainer,
    PassphraseRequired,
    PassphraseSource,
    SealedContents,
    parse_container,
    unseal,
)
from ..crypto.container import Container, is_container
from ..errors import MalformedInput, UsageError, WrongPassphrase
from ..fileio import read_file

#: The kinds of container file, named as messages name them.
KIND_NOUNS = {
    "identity": "owner identity",
    "marking-key": "marking key",
    "verification-key": "verification key",
    "timestamp-record": "timestamp record",
    "ownership-proof": "ownership proof",
}


_SIGNED = frozenset({"kind", "version", "signer"})
#: Exactly the header fields each kind has (docs/protocol.md 4.2, 4.3, 9.4): a reader refuses any other, so a
#: header cannot carry unauthenticated extras that a later version, or a careless tool, might read.
HEADER_FIELDS = {
    "identity": frozenset({"kind", "version", "seal", "public_key", "label"}),
    "marking-key": frozenset({"kind", "version", "seal", "verification_key_id"}),
    "verification-key": _SIGNED,
    "timestamp-record": frozenset({"kind", "version"}),  # unsigned: its facts are checked on chain (13.3)
    "ownership-proof": _SIGNED,
}


def _with_article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def describe_foreign_file(data: bytes) -> str:
    if len(data) > 8 and data[8:9] == b"{":  # safetensors: u64le header length, then a JSON header
        return "it looks like a safetensors model file"
    return "unrecognised contents"


def read_container(path: str | os.PathLike[str], kind: str) -> Container:
    """Read ``path`` and check it is a wmproof file of ``kind``."""
    noun = KIND_NOUNS[kind]
    what = _with_article(noun)
    data = read_file(path, what)
    if not is_container(data):
        raise UsageError(f"{path} is not {what} (not a wmproof file: {describe_foreign_file(data)})")
    try:
        container = parse_container(data)
    except MalformedContainer as exc:
        raise MalformedInput(f"{path}: damaged {noun} file ({exc})") from None
    if container.kind != kind:
        if container.kind not in KIND_NOUNS:  # no kind wmproof writes: a damaged file, not the wrong one
            raise MalformedInput(f"{path}: damaged {noun} file (unknown kind {container.kind[:40]!r})")
        raise UsageError(f"{path} is {_with_article(KIND_NOUNS[container.kind])}, not {what}")
    if container.version != 1:
        raise MalformedInput(f"{path}: unsupported {kind} format version {container.version}")
    if set(container.header) != HEADER_FIELDS[kind]:
        raise MalformedInput(f"{path}: damaged {noun} file (unexpected or missing header fields)")
    return container


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a large file is read and checked (as a decorator or a
    ``with`` block), and resumed after if it ran before.

    Why: checking a proof of 1,024 items makes 7,177 maps and lists (its statement's and its key's) and 2,048
    trigger items, and every 700 new objects set off a collection that walks the young ones, all still alive
    (11 collections per check, counted); paused, they are freed by their reference counts at the end, never
    walked. msgpack's documentation gives the same advice for unpacking large messages. A
    proof check took 64.4 ms with the collector running against 56.2 ms paused (medians of 30 on our CPU).
    A check makes no reference cycles (tests/test_proofs.py counts them), so nothing waits for the collector
    after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def crypto_errors_for(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Turn crypto failures while processing ``path`` into one-line user errors."""
    try:
        yield
    except DecryptionFailed:
        raise WrongPassphrase(f"cannot open {path}: wrong passphrase, or the file was modified") from None
    except PassphraseRequired:
        raise UsageError(
            f"{path} is encrypted: give its passphrase with --passphrase-file, or run on a terminal to be asked"
        ) from None
    except KdfParametersRejected as exc:
        raise MalformedInput(f"{path}: refusing hostile key-derivation parameters ({exc})") from None
    except CryptoError as exc:
        raise MalformedInput(f"{path}: {what} is damaged or was tampered with ({exc})") from None


def open_sealed(path: str | os.PathLike[str], kind: str, passphrase: PassphraseSource) -> SealedContents:
    """Read, check the kind of, and decrypt a sealed container."""
    container = read_container(path, kind)
    with crypto_errors_for(path, f"the {KIND_NOUNS[kind]}"):
        return unseal(container, passphrase)

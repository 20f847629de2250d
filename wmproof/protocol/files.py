"""Reading and writing wmproof's files, with every failure turned into a one-line, typed error.

Files are read whole with a size cap (a hostile file must not exhaust memory), recognised by their
container header, and refused with a message naming the file and what it is when it is of another kind.
Crypto failures become :mod:`wmproof.errors` failures here, with the file's name attached and nothing of its
secret contents.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..crypto import (
    CryptoError,
    DecryptionFailed,
    KdfParametersRejected,
    MalformedContainer,
    PassphraseRequired,
    UnsafeDestination,
    parse_container,
    write_atomic,
)
from ..crypto.container import Container, is_container
from ..errors import FileAccessError, MalformedInput, UsageError, WrongPassphrase

MAX_FILE_SIZE = 256 << 20

#: The kinds of file, with the words used to name them in messages.
KIND_NAMES = {
    "identity": "an owner identity",
    "marking-key": "a marking key",
    "verification-key": "a verification key",
}


def read_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise UsageError(f"{path} is a directory, not {what}")
        if size > MAX_FILE_SIZE:
            raise MalformedInput(f"{path} is {size} bytes, more than {what} can be")
        return path.read_bytes()
    except FileNotFoundError:
        raise FileAccessError(f"file not found: {path} (expected {what})") from None
    except PermissionError:
        raise FileAccessError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise FileAccessError(f"cannot read {path}: {exc.strerror}") from None


def describe_foreign_file(data: bytes) -> str:
    if len(data) > 8 and data[8:9] == b"{":  # safetensors: u64le header length, then a JSON header
        return "it looks like a safetensors model file"
    return "unrecognised contents"


def read_container(path: str | os.PathLike[str], kind: str) -> Container:
    """Read ``path`` and check it is a wmproof file of ``kind``."""
    what = KIND_NAMES[kind]
    data = read_bytes(path, what)
    if not is_container(data):
        raise UsageError(f"{path} is not {what} (not a wmproof file: {describe_foreign_file(data)})")
    try:
        container = parse_container(data)
    except MalformedContainer as exc:
        raise MalformedInput(f"{path}: damaged {KIND_NAMES[kind].split(' ', 1)[1]} file ({exc})") from None
    if container.kind != kind:
        other = KIND_NAMES.get(container.kind, f"a wmproof '{container.kind}' file")
        raise UsageError(f"{path} is {other}, not {what}")
    if container.version != 1:
        raise MalformedInput(f"{path}: unsupported {kind} format version {container.version}")
    return container


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


def write_file(path: str | os.PathLike[str], data: bytes, *, secret: bool, overwrite: bool) -> None:
    """Atomic write: 0600 for secrets, 0644 for public files; never over an existing file unless asked."""
    try:
        write_atomic(path, data, mode=0o600 if secret else 0o644, overwrite=overwrite)
    except UnsafeDestination as exc:
        raise UsageError(str(exc)) from None
    except FileNotFoundError:
        raise FileAccessError(f"cannot write {path}: its directory does not exist") from None
    except PermissionError:
        raise FileAccessError(f"cannot write {path}: permission denied") from None
    except OSError as exc:
        raise FileAccessError(f"cannot write {path}: {exc.strerror}") from None

"""Reading and writing files with one-line, typed errors: the one place that does it.

Reads are capped in size (a hostile file must not exhaust memory). Writes are atomic and permission-safe
(:func:`wmproof.crypto.write_atomic`): 0600 for secrets, 0644 for public files, never over an existing file
unless asked, never through a symbolic link.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .crypto import UnsafeDestination, write_atomic
from .errors import FileAccessError, MalformedInput, UsageError

MAX_FILE_SIZE = 256 << 20


@contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    try:
        if path.is_dir():
            raise UsageError(f"{path} is a directory, not {what}")
        yield
    except FileNotFoundError:
        raise FileAccessError(f"file not found: {path} (expected {what})") from None
    except PermissionError:
        raise FileAccessError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise FileAccessError(f"cannot read {path}: {exc.strerror}") from None


def read_file(path: str | os.PathLike[str], what: str, *, max_size: int = MAX_FILE_SIZE) -> bytes:
    """The bytes of ``path``; ``what`` names the expected content in messages ("a marking key")."""
    path = Path(path)
    with _reading(path, what):
        size = path.stat().st_size
        if size > max_size:
            raise MalformedInput(f"{path} is {size} bytes, more than {what} can be")
        return path.read_bytes()


def sha256_file(path: str | os.PathLike[str], what: str) -> str:
    """The hex SHA-256 of a file of any size, read in chunks (what ``sha256sum`` prints)."""
    path = Path(path)
    with _reading(path, what), path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_file(path: str | os.PathLike[str], data: bytes, *, secret: bool, overwrite: bool) -> None:
    """Atomic write: 0600 for secrets, 0644 for public files."""
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

"""Reading and writing files with one-line, typed errors: the one place that does it.

Reads are capped in size (a hostile file must not exhaust memory). Writes are atomic and permission-safe
(:func:`wmproof.crypto.write_atomic`): 0600 for secrets, 0644 for public files, never over an existing file
unless asked, never through a symbolic link.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .crypto import UnsafeDestination, write_atomic
from .crypto.atomic import PreparedWrite
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


_KINDS = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _open_regular(path: Path, what: str) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file (a symbolic link to one is fine). Opened without
    blocking, so that a named pipe with no writer is refused at once instead of waiting forever; a device
    (``/dev/zero``) is refused instead of read until memory runs out."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UsageError(f"{path} is a directory, not {what}")
        if not stat.S_ISREG(mode):
            raise UsageError(f"{path} is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, not {what}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_file(path: str | os.PathLike[str], what: str, *, max_size: int = MAX_FILE_SIZE) -> bytes:
    """The bytes of ``path``; ``what`` names the expected content in messages ("a marking key"). Only regular
    files are read, and never more than ``max_size`` bytes: the cap counts what is actually read, not what
    the file system says (a file that grows while it is read is refused too)."""
    path = Path(path)
    with _reading(path, what), _open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_size:
            raise MalformedInput(f"{path} is {size} bytes, more than {what} can be")
        data = f.read(max_size + 1)
        if len(data) > max_size:
            raise MalformedInput(f"{path} is more than {max_size} bytes, more than {what} can be")
        return data


def sha256_file(path: str | os.PathLike[str], what: str) -> str:
    """The hex SHA-256 of a regular file of any size, read in chunks (what ``sha256sum`` prints)."""
    path = Path(path)
    with _reading(path, what), _open_regular(path, what) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextmanager
def _writing(path: str | os.PathLike[str]) -> Iterator[None]:
    try:
        yield
    except UnsafeDestination as exc:
        raise UsageError(str(exc)) from None
    except FileNotFoundError:
        raise FileAccessError(f"cannot write {path}: its directory does not exist") from None
    except PermissionError:
        raise FileAccessError(f"cannot write {path}: permission denied") from None
    except OSError as exc:
        raise FileAccessError(f"cannot write {path}: {exc.strerror}") from None


def write_file(path: str | os.PathLike[str], data: bytes, *, secret: bool, overwrite: bool) -> None:
    """Atomic write: 0600 for secrets, 0644 for public files."""
    with _writing(path):
        write_atomic(path, data, mode=0o600 if secret else 0o644, overwrite=overwrite)


def prepare_file(path: str | os.PathLike[str], data: bytes, *, secret: bool, overwrite: bool) -> PreparedWrite:
    """The first half of :func:`write_file`: the bytes written and synced, under no name yet. A full disk or
    an unwritable directory fails here; :func:`commit_file` names the file, ``.abort()`` discards it."""
    with _writing(path):
        return PreparedWrite(path, data, mode=0o600 if secret else 0o644, overwrite=overwrite)


def commit_file(prepared: PreparedWrite) -> None:
    with _writing(prepared.dest):
        prepared.commit()

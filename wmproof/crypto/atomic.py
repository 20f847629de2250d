"""Atomic, permission-safe file writes (checklist rule 7).

A file is either absent or complete: the bytes go to an anonymous file (Linux ``O_TMPFILE``) in the
destination's directory, created with its final mode, fsynced, and only then linked under its name; the
directory is fsynced after. A process killed mid-write leaves nothing behind, not even a temporary name.
Where ``O_TMPFILE`` is unavailable, a uniquely named temporary file (``O_EXCL``, final mode from creation)
is used and removed on any failure. Symbolic-link destinations are refused, and an existing file is only
replaced when the caller asks for it.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from .errors import UnsafeDestination


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode`` (0600 by default: secrets)."""
    dest = Path(path)
    if dest.is_symlink():
        raise UnsafeDestination(f"refusing to write through a symbolic link: {dest}")
    if dest.exists() and not overwrite:
        raise UnsafeDestination(f"{dest} exists (pass --overwrite to replace it)")
    if dest.is_dir():
        raise UnsafeDestination(f"{dest} is a directory")
    directory = dest.parent if str(dest.parent) else Path(".")
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode)
    except (AttributeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
        _write_named_temp(dest, directory, data, mode, overwrite)
    else:
        try:
            os.fchmod(fd, mode)  # O_TMPFILE's mode is subject to the umask
            _write_all(fd, data)
            os.fsync(fd)
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                _link_into_place(f"/proc/self/fd/{fd}", dest, directory, overwrite, dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            os.close(fd)
    _fsync_directory(directory)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _link_into_place(source: str, dest: Path, directory: Path, overwrite: bool, dir_fd: int) -> None:
    # Passing a dir_fd makes CPython call linkat(..., AT_SYMLINK_FOLLOW), which is what materialises an
    # O_TMPFILE through its /proc/self/fd link; plain os.link() calls link(), which would not follow it.
    link = lambda src, dst: os.link(src, dst, src_dir_fd=dir_fd, follow_symlinks=True)  # noqa: E731
    if not overwrite:
        try:
            link(source, dest)
        except FileExistsError:
            raise UnsafeDestination(f"{dest} exists (pass --overwrite to replace it)") from None
        return
    temp = directory / f".{dest.name}.{secrets.token_hex(8)}.tmp"
    link(source, temp)
    try:
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _write_named_temp(dest: Path, directory: Path, data: bytes, mode: int, overwrite: bool) -> None:
    temp = directory / f".{dest.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(temp, dest)
        else:
            try:
                os.link(temp, dest)
            except FileExistsError:
                raise UnsafeDestination(f"{dest} exists (pass --overwrite to replace it)") from None
    finally:
        temp.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

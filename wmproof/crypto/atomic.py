"""Atomic, permission-safe file writes (checklist rule 7).

A file is either absent or complete: the bytes go to an anonymous file (Linux ``O_TMPFILE``) in the
destination's directory, created with its final mode, fsynced, and only then linked under its name; the
directory is fsynced after. A process killed while writing a new file leaves nothing behind, not even a
temporary name. Replacing an existing file needs a rename, so the complete new file is first linked as
``.NAME.<random>.tmp`` (with its final mode) and renamed over NAME: a process killed between the two leaves
that complete copy, and the next write to NAME removes it (:func:`remove_leftovers`). Where ``O_TMPFILE`` is
unavailable, a uniquely named temporary file (``O_EXCL``, final mode from creation) is used and removed on
any failure. Symbolic-link destinations are refused, and an existing file is only replaced when the caller
asks for it.

:class:`PreparedWrite` splits a write in two: the bytes are written and synced first, the name comes later
(``commit``). A caller that must change something else only if a file can be written (``wmproof prove``
spends a proof batch in the marking key) prepares the file, makes the change, then commits: a full disk or
an unwritable directory fails the preparation, before anything is spent.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from .errors import UnsafeDestination


def _checked_destination(path: str | os.PathLike[str], overwrite: bool) -> tuple[Path, Path]:
    dest = Path(path)
    if dest.is_symlink():
        raise UnsafeDestination(f"refusing to write through a symbolic link: {dest}")
    if dest.exists() and not overwrite:
        raise UnsafeDestination(f"{dest} exists (pass --overwrite to replace it)")
    if dest.is_dir():
        raise UnsafeDestination(f"{dest} is a directory")
    return dest, dest.parent if str(dest.parent) else Path(".")


def remove_leftovers(dest: Path, keep: Path | None = None) -> None:
    """Remove the complete copies a process killed while replacing ``dest`` left under ``.NAME.<hex>.tmp``
    (this module's names only: a dot, the name, 16 hex digits, ``.tmp``)."""
    directory = dest.parent if str(dest.parent) else Path(".")
    prefix = f".{dest.name}."
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        middle = entry.name[len(prefix) : -len(".tmp")]
        if (
            entry.name.startswith(prefix)
            and entry.name.endswith(".tmp")
            and len(middle) == 16
            and all(c in "0123456789abcdef" for c in middle)
            and entry.is_file(follow_symlinks=False)
            and (keep is None or entry.name != keep.name)
        ):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


class PreparedWrite:
    """A file written and synced under no name yet; :meth:`commit` gives it its name, :meth:`abort` (or
    leaving the ``with`` block without committing) discards it."""

    def __init__(self, path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600, overwrite: bool = False):
        self.dest, self.directory = _checked_destination(path, overwrite)
        self.overwrite, self.mode = overwrite, mode
        self._fd: int | None = None
        self._temp: Path | None = None
        try:
            fd = os.open(self.directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            self._temp = _write_named_temp(self.dest, self.directory, data, mode)  # no O_TMPFILE here
            return
        try:
            os.fchmod(fd, mode)  # O_TMPFILE's mode is subject to the umask
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def commit(self) -> None:
        remove_leftovers(self.dest, keep=self._temp)
        if self._temp is not None:
            try:
                if self.overwrite:
                    os.replace(self._temp, self.dest)
                else:
                    try:
                        os.link(self._temp, self.dest)
                    except FileExistsError:
                        raise UnsafeDestination(f"{self.dest} exists (pass --overwrite to replace it)") from None
            finally:
                self.abort()
        else:
            try:
                dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    _link_into_place(f"/proc/self/fd/{self._fd}", self.dest, self.directory, self.overwrite, dir_fd)
                finally:
                    os.close(dir_fd)
            finally:
                self.abort()
        _fsync_directory(self.directory)

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None

    def __enter__(self) -> PreparedWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode`` (0600 by default: secrets)."""
    with PreparedWrite(path, data, mode=mode, overwrite=overwrite) as prepared:
        prepared.commit()


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


def _write_named_temp(dest: Path, directory: Path, data: bytes, mode: int) -> Path:
    """``data`` in a new ``.NAME.<hex>.tmp`` (``O_EXCL``, final mode from creation), synced; removed on failure."""
    temp = directory / f".{dest.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Errors a user can cause, each with the exit code the CLI returns (security checklist rule 9).

    0 verified · 1 rejected (a verdict, not an error) · 2 usage · 3 malformed input · 4 chain unavailable
    5 I/O · 70 internal error · 130 interrupted

Messages are one line, name the file or option at fault, and never contain secret material.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    VERIFIED = 0
    REJECTED = 1
    USAGE = 2
    MALFORMED = 3
    CHAIN_UNAVAILABLE = 4
    IO = 5
    INTERNAL = 70
    INTERRUPTED = 130


class WmproofError(Exception):
    """Base class: a failure with a one-line message meant for the user."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(WmproofError):
    """The user asked for something that cannot work (wrong option, model of another task, wrong file kind...)."""

    exit_code = ExitCode.USAGE


class EmbeddingFailed(UsageError):
    """Marking gave up: its training bound was reached with key items still not learned (nothing is written)."""


class WrongPassphrase(UsageError):
    """A sealed file could not be decrypted: wrong passphrase, or a modified file (the AEAD cannot tell)."""


class MalformedInput(WmproofError):
    """A file or answer that is corrupt, tampered with, or inconsistent with what it must match."""

    exit_code = ExitCode.MALFORMED


class DataUnavailable(WmproofError):
    """A dataset file is missing or unreadable."""

    exit_code = ExitCode.IO


class FileAccessError(WmproofError):
    """A file could not be read or written (missing, permissions, disk)."""

    exit_code = ExitCode.IO


class ChainUnavailable(WmproofError):
    """The chain could not answer or could not be trusted to: node unreachable, wrong chain id, no registry
    at the configured address, a transaction reverted or ran out of gas, a block not yet final. "Could not
    verify", never "not verified"."""

    exit_code = ExitCode.CHAIN_UNAVAILABLE


class Interrupted(WmproofError):
    """Ctrl-C where "nothing was written" would not be the whole truth (a transaction may be on its way)."""

    exit_code = ExitCode.INTERRUPTED

"""What every command shares: error handling and exit codes, passphrases, and output on stdout/stderr.

Data goes to stdout (a table or, with ``--json``, one JSON document); messages, warnings and progress go to
stderr. Every failure a user can cause is one line on stderr and a distinct exit code (see
:mod:`wmproof.errors`); a traceback is only ever shown for a bug, and only with ``WMPROOF_DEBUG=1``.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from wmproof.crypto import CryptoError
from wmproof.errors import ExitCode, FileAccessError, UsageError, WmproofError

F = TypeVar("F", bound=Callable[..., Any])

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(code)


#: The optional packages, by the top-level module a command imports, and the extra that installs each.
#: A command that needs one the install lacks is a usage error that names the extra (the base install is the
#: checker's: no torch, no web3).
EXTRA_FOR_MODULE = {
    "torch": ("torch", "ml"),
    "safetensors": ("safetensors", "ml"),
    "PIL": ("Pillow", "ml"),
    "onnx": ("onnx", "ml"),
    "onnxscript": ("onnxscript", "ml"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "starlette": ("Starlette", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "web3": ("web3", "chain"),
    "eth": ("py-evm", "chain"),
    "eth_account": ("web3", "chain"),
    "eth_tester": ("eth-tester", "chain"),
    "eth_utils": ("web3", "chain"),
    "eth_abi": ("web3", "chain"),
    "hexbytes": ("web3", "chain"),
    "matplotlib": ("matplotlib", "repro"),
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The one-line message for an optional package this install lacks, or None for any other missing module
    (a broken install: an internal error)."""
    top = (exc.name or "").split(".")[0]
    if top not in EXTRA_FOR_MODULE:
        return None
    package, extra = EXTRA_FOR_MODULE[top]
    return f"this command needs {package}, which this install lacks: pip install 'wmproof[{extra}]'"


def internal_error(exc: BaseException) -> typer.Exit:
    return fail(
        f"internal error ({type(exc).__name__}: {exc}); set WMPROOF_DEBUG=1 for the traceback and report it",
        int(ExitCode.INTERNAL),
    )


def handle_errors(func: F) -> F:
    """Run a command, turning every failure into a one-line message and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except WmproofError as exc:
            raise fail(str(exc), int(exc.exit_code)) from None
        except CryptoError as exc:  # should have been given context by the protocol layer
            raise fail(str(exc), int(ExitCode.MALFORMED)) from None
        except KeyboardInterrupt:
            raise fail("interrupted: nothing was written", int(ExitCode.INTERRUPTED)) from None
        except MemoryError:
            raise fail("out of memory", int(ExitCode.IO)) from None
        except ModuleNotFoundError as exc:
            message = missing_extra(exc)
            if os.environ.get("WMPROOF_DEBUG"):
                raise
            if message is None:
                raise internal_error(exc) from None
            raise fail(message, int(ExitCode.USAGE)) from None
        except OSError as exc:  # disk full, permissions, a path that is not what it should be
            where = f": {exc.filename}" if exc.filename else ""
            raise fail(f"{exc.strerror or exc}{where}", int(ExitCode.IO)) from None
        except Exception as exc:  # a bug: say so, without a traceback unless asked
            if os.environ.get("WMPROOF_DEBUG"):
                raise
            raise internal_error(exc) from None

    return wrapper  # type: ignore[return-value]


def emit(data: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    """Print a command's result: JSON (stable keys, sorted) or the human rendering."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        sys.stdout.flush()
    else:
        human()


def check_outputs(*paths: Path, overwrite: bool) -> None:
    """Refuse up front, before any work, outputs that exist (without --overwrite) or cannot be created."""
    if len({p.resolve() for p in paths}) != len(paths):
        raise UsageError("the output files must be different files")
    for path in paths:
        if path.is_symlink():
            raise UsageError(f"refusing to write through a symbolic link: {path}")
        if path.exists() and not overwrite:
            raise UsageError(f"{path} exists (pass --overwrite to replace it)")
        if not path.parent.is_dir():  # I/O (5), as when the write itself finds no directory (fileio.write_file)
            raise FileAccessError(f"cannot write {path}: directory {path.parent} does not exist")


def note(message: str) -> None:
    stderr.print(escape(message), highlight=False)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


# -------------------------------------------------------------------------------------------- passphrases


#: A passphrase file holds one line; anything longer is not one.
MAX_PASSPHRASE_FILE = 4096


def _read_passphrase_file(path: Path) -> bytes:
    """One line: the passphrase, without its line ending. A regular file (read through
    :func:`wmproof.fileio.read_file`: a missing or unreadable file is an I/O error, exit 5), or ``-`` for one
    line of stdin. A file of several lines is refused rather than taken whole: the guide says one line, and
    a passphrase that silently includes a second line cannot be typed at a prompt later."""
    from wmproof.fileio import read_file

    if str(path) == "-":
        data = sys.stdin.buffer.readline(MAX_PASSPHRASE_FILE + 1)
    else:
        data = read_file(path, "a passphrase file", max_size=MAX_PASSPHRASE_FILE)
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if b"\n" in data or b"\r" in data:
        raise UsageError(f"passphrase file {path} holds more than one line; a passphrase is one line")
    if len(data) > MAX_PASSPHRASE_FILE - 2:
        raise UsageError(f"passphrase file {path}: a passphrase is one line of at most {MAX_PASSPHRASE_FILE - 2} bytes")
    if not data:
        raise UsageError(f"passphrase file {path} is empty")
    return data


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def passphrase_to_read(passphrase_file: Path | None, what: str, flag: str = "--passphrase-file") -> Callable[[], bytes]:
    """A passphrase source for opening a sealed file: asked for only if the file is encrypted. A passphrase
    file is read at once, so that a mistyped path is an error (exit 5) even where the file to open turns out to
    be unencrypted, as in every other command. ``flag`` is the option that gives this file's passphrase (a
    command that opens two secrets has two), named when it is missing."""
    if passphrase_file is not None and str(passphrase_file) != "-":
        given = _read_passphrase_file(passphrase_file)
        return lambda: given

    def source() -> bytes:
        if passphrase_file is not None:
            return _read_passphrase_file(passphrase_file)
        if _interactive():
            return getpass.getpass(f"Passphrase for {what}: ", stream=sys.stderr).encode("utf-8")
        raise UsageError(f"{what} is encrypted: give its passphrase with {flag} FILE, or run on a terminal to be asked")

    return source


def passphrase_to_write(passphrase_file: Path | None, no_passphrase: bool, what: str) -> bytes | None:
    """The passphrase to encrypt a new secret file with, or None for an unencrypted file."""
    if no_passphrase and passphrase_file is not None:
        raise UsageError("--no-passphrase and --passphrase-file contradict each other")
    if no_passphrase:
        return None
    if passphrase_file is not None:
        return _read_passphrase_file(passphrase_file)
    if not _interactive():
        raise UsageError(f"{what} is a secret: give --passphrase-file FILE to encrypt it, or --no-passphrase")
    first = getpass.getpass(f"New passphrase for {what}: ", stream=sys.stderr).encode("utf-8")
    if not first:
        raise UsageError("an empty passphrase is not a passphrase (use --no-passphrase to store unencrypted)")
    if getpass.getpass("Repeat it: ", stream=sys.stderr).encode("utf-8") != first:
        raise UsageError("the passphrases differ")
    return first


# ---------------------------------------------------------------------------------------- shared options

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on stdout (messages stay on stderr).")
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace output files that already exist.")]
DeviceOption = Annotated[
    str, typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
]
TrustModuleOption = Annotated[
    list[str] | None,
    typer.Option(
        "--trust-module",
        help="Allow model files to build their network with code from this Python module (repeatable). "
        "A model from outside the zoo names its factory (module:function); it is never imported otherwise.",
        show_default=False,
    ),
]


def trust_modules(names: list[str] | None) -> None:
    """Apply ``--trust-module``: model files may build networks with code from these modules."""
    if not names:
        return
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise UsageError("--trust-module builds a torch model: pip install 'wmproof[ml]'")
    from wmproof.engine.models import trust_module

    for name in names:
        trust_module(name)


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Directory holding mnist/, fashion-mnist/, sst2/ (default: $WMPROOF_DATA, "
        "else ../shared/data next to the checkout).",
        show_default=False,
    ),
]
#: The model zoo's names, spelled out so that ``--help`` needs no torch (tests/test_cli.py checks the list
#: against ``wmproof.engine.models.ARCHITECTURES``).
ARCHITECTURE_NAMES = (
    "mnist_cnn",
    "mnist_ewe_cnn",
    "mnist_fast",
    "mnist_irnn",
    "mnist_mlp",
    "resnet_small",
    "sst2_textcnn",
)
ARCHITECTURE_HELP = (
    f"Architecture: {', '.join(ARCHITECTURE_NAMES)}; or a factory of your own, module:function, "
    "with --trust-module module."
)
DatasetOption = Annotated[
    str,
    typer.Option(
        "--dataset",
        "--data",
        help="Training/test data: mnist, fashion-mnist, sst2, or your own: a .npz file (images, labels, "
        "test_images, test_labels) or a folder of class folders of PNG/JPEG images (train/ and test/ inside).",
    ),
]
PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="Read the passphrase from this file ('-' for one line of stdin); "
        "without it you are asked on a terminal. Never put a passphrase on the command line.",
        show_default=False,
    ),
]
NoPassphraseOption = Annotated[
    bool, typer.Option("--no-passphrase", help="Store the new secret file unencrypted (throw-away keys only).")
]
LimitOption = Annotated[
    int | None,
    typer.Option(
        "--limit-train", help="Use only the first N training examples (quick runs, tests).", show_default=False, min=1
    ),
]

"""Small helpers shared by the tests (importable as ``helpers``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Set for each test by the autouse ``_capture`` fixture in conftest.py.
capsys: Any = None


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def run(*args: str | Path, code: int | None = 0) -> Result:
    """Run the CLI in-process through the console script's own entry point; check the exit code, and that
    every error is exactly one line on stderr, never a traceback."""
    from wmproof_cli.main import run_cli

    capsys.readouterr()
    exit_code = run_cli([str(a) for a in args])
    captured = capsys.readouterr()
    result = Result(exit_code, captured.out, captured.err)
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    if result.exit_code not in (0, 1):
        lines = [line for line in result.stderr.splitlines() if not line.startswith(("warning: ", "progress: "))]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return result


def sigint_default() -> None:
    """``preexec_fn`` for a child that a test stops with Ctrl-C: a CI job launched in the background (nohup, a
    non-interactive shell's ``&``) ignores SIGINT, and children inherit that; reset it so the child's own
    handler is installed, whatever started the test run."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)

"""kill -9 at every step that changes a file (issue 14, defect 6): the state a command leaves when it is
killed is one a user can go on from.

Each command below runs under ``strace --inject=SYSCALL:signal=KILL:when=N``, for every syscall that names,
renames, removes or syncs a file and for every N until the command runs to its end: the kernel kills the
process as it enters its N-th such call, so every window between two of them is hit, including the one just
after the last rename (killed at the fsync that follows it). After each kill:

1. every wmproof file left in the folder reads back whole (no half-written file, under any name);
2. files that must agree do: a verification key has its marking key, a proof's batch is spent in the
   marking key (a batch must never be opened twice), a timestamp record is found on the embedded chain;
3. the same command, run again without a kill, finishes, or refuses with one line that says what is in the
   way; and after it runs, no temporary copy of a secret is left behind.

strace is a real tracer killing a real process; no part of wmproof is patched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")

#: Every syscall that gives a file a name, takes one away, or makes a write durable.
SYSCALLS = ("linkat", "link", "renameat2", "renameat", "rename", "unlinkat", "unlink", "fsync", "fdatasync")
WMPROOF = [sys.executable, "-m", "wmproof_cli.main"]


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[Path], None]  # builds the state before the command, once
    argv: list[str]
    #: The syscalls CI kills at; ``make crash`` (WMPROOF_CRASH_ALL=1) kills at all of SYSCALLS.
    ci_syscalls: tuple[str, ...] = SYSCALLS


def environment(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "WMPROOF_HOME": str(folder / "home"),
        "PYTHONDONTWRITEBYTECODE": "1",  # the interpreter's own .pyc renames are not the command's
        "COLUMNS": "200",
    }


def wmproof(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*WMPROOF, *args], cwd=folder, env=environment(folder), capture_output=True, text=True, timeout=300
    )


def killed_at(folder: Path, argv: list[str], syscall: str, n: int) -> bool:
    """Run ``argv`` in ``folder``, killed as it enters its ``n``-th ``syscall``; whether the kill happened."""
    done = subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", f"--inject={syscall}:signal=KILL:when={n}", *WMPROOF, *argv],
        cwd=folder,
        env=environment(folder),
        capture_output=True,
        timeout=300,
    )
    if done.returncode == -9:
        return True
    assert done.returncode == 0, (syscall, n, done.returncode, done.stderr[-2000:])
    return False


# ------------------------------------------------------------------------------------------ the states


def make_identity(folder: Path) -> None:
    assert wmproof(folder, "identity", "new", "--out", "o.wid", "--no-passphrase").returncode == 0


def make_keys(folder: Path) -> None:
    make_identity(folder)
    done = wmproof(folder, *KEYGEN)
    assert done.returncode == 0, done.stderr


KEYGEN = ["keygen", "-i", "o.wid", "--no-passphrase", "--marking-key", "k.wmk", "--verification-key", "k.wvk",
          "--items", "40", "--proof-items", "20"]  # fmt: skip
PROVE = ["prove", "-k", "k.wmk", "--vk", "k.wvk", "-i", "o.wid", "--url", "http://127.0.0.1:1", "--model-name", "m",
         "--out", "p.wpf", "--force"]  # fmt: skip

SCENARIOS = [
    Scenario("identity new", lambda folder: None, ["identity", "new", "--out", "o.wid", "--no-passphrase"]),
    Scenario("keygen", make_identity, KEYGEN),
    Scenario("prove", make_keys, PROVE),
    # Each kill under strace costs ~5 s here (py-evm makes many syscalls, each stopped by the tracer): CI
    # kills at the record's own link and syncs; the scheduled run also at SQLite's journal syncs and unlinks.
    Scenario("publish", make_keys, ["publish", "k.wvk"], ci_syscalls=("linkat", "fsync")),
]


def check_state(folder: Path) -> list[str]:
    """Steps 1 and 2: every file reads back whole, and the files agree. Returns the names present."""
    from wmproof.protocol import load_identity, load_marking_key, load_verification_key
    from wmproof.protocol.keys import check_marking_key
    from wmproof.protocol.proofs import load_proof
    from wmproof.protocol.timestamps import load_record

    present = sorted(p.name for p in folder.iterdir() if p.is_file())
    readers = {
        ".wid": lambda path: load_identity(path, None),
        ".wmk": lambda path: load_marking_key(path, None),
        ".wvk": load_verification_key,
        ".wpf": load_proof,
        ".wts": load_record,
    }
    for name in present:
        if name.startswith("."):  # a replacement killed before its rename: a complete copy (step 3 removes it)
            target = name[1:].rsplit(".", 2)[0]
            assert target in ("k.wmk", "p.wpf"), name
            continue
        readers[Path(name).suffix](folder / name)
    if "k.wvk" in present:
        assert "k.wmk" in present, "a verification key without its marking key"
        check_marking_key(load_marking_key(folder / "k.wmk", None), load_verification_key(folder / "k.wvk"))
    if "p.wpf" in present:
        spent = load_marking_key(folder / "k.wmk", None).spent
        assert load_proof(folder / "p.wpf").batch in spent, "a proof whose batch is not spent in the marking key"
    return present


def check_recovery(folder: Path, scenario: Scenario) -> None:
    """Step 3: the same command again finishes or refuses in one line, and leaves no temporary copy."""
    again = wmproof(folder, *scenario.argv)
    lines = [line for line in again.stderr.splitlines() if not line.startswith("warning: ")]
    if again.returncode != 0:
        assert again.returncode == 2 and len(lines) == 1 and "exists" in lines[0], (again.returncode, again.stderr)
        if scenario.name == "keygen" and (folder / "k.wmk").exists() and not (folder / "k.wvk").exists():
            assert "exists without its verification key" in lines[0]
    if scenario.name == "publish":
        found = wmproof(folder, "timestamp", "k.wvk")
        assert found.returncode == 0, found.stderr  # the embedded chain survived the kill and holds the key
    check_state(folder)
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")], "a temporary copy was left"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_kill_leaves_a_state_to_go_on_from(tmp_path, scenario):
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    scenario.setup(pristine)
    windows = 0
    every = os.environ.get("WMPROOF_CRASH_ALL") == "1"
    for syscall in SYSCALLS if every else scenario.ci_syscalls:
        n = 1
        while True:
            folder = tmp_path / f"{syscall}-{n}"
            shutil.copytree(pristine, folder, symlinks=True)
            if not killed_at(folder, scenario.argv, syscall, n):
                shutil.rmtree(folder)
                break
            check_state(folder)
            check_recovery(folder, scenario)
            shutil.rmtree(folder)
            windows += 1
            n += 1
    print(f"{scenario.name}: {windows} kills")
    assert windows > 0

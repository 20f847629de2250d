"""The interactive path, on a real pseudo-terminal: passphrases asked for (twice for a new secret), never
echoed, and used to encrypt; a mismatch is refused."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from wmproof.protocol import load_identity, read_public_identity

EXE = str(Path(sys.executable).with_name("wmproof"))


def converse(args: list[str], answers: list[str], timeout: float = 60.0) -> tuple[int, str, str]:
    """Run the CLI with stdin and stderr on a pty; answer each prompt ending in ': '."""
    master, slave = pty.openpty()
    child = subprocess.Popen([EXE, *args], stdin=slave, stdout=subprocess.PIPE, stderr=slave, start_new_session=True)
    os.close(slave)
    seen, pending = "", list(answers)
    deadline = time.monotonic() + timeout
    while child.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                seen += os.read(master, 1024).decode(errors="replace")
            except OSError:
                break
            if pending and seen.rstrip(" ").endswith(":"):
                os.write(master, (pending.pop(0) + "\n").encode())
                seen += "\n"
    out = child.stdout.read().decode()
    child.wait(timeout=10)
    os.close(master)
    return child.returncode, out, seen


def test_new_identity_asks_twice_and_encrypts(tmp_path):
    path = tmp_path / "me.wid"
    code, out, terminal = converse(["identity", "new", "--out", str(path), "--json"], ["s3cret pw", "s3cret pw"])
    assert code == 0, terminal
    assert "New passphrase" in terminal and "Repeat" in terminal and "s3cret pw" not in terminal  # not echoed
    assert json.loads(out)["encrypted"] is True and read_public_identity(path).encrypted
    assert load_identity(path, b"s3cret pw").public_key.fingerprint == json.loads(out)["fingerprint"]


def test_mismatched_passphrases_are_refused(tmp_path):
    path = tmp_path / "me.wid"
    code, _, terminal = converse(["identity", "new", "--out", str(path)], ["one", "two"])
    assert code == 2 and "passphrases differ" in terminal and not path.exists()


def test_an_encrypted_identity_is_unlocked_at_the_prompt(tmp_path):
    identity = tmp_path / "me.wid"
    converse(["identity", "new", "--out", str(identity)], ["pw-1", "pw-1"])
    code, out, terminal = converse(
        [
            "keygen",
            "-i",
            str(identity),
            "--marking-key",
            str(tmp_path / "k.wmk"),
            "--verification-key",
            str(tmp_path / "k.wvk"),
            "--no-passphrase",
            "--json",
        ],
        ["pw-1"],
    )
    assert code == 0, terminal
    assert f"Passphrase for {identity}" in terminal and json.loads(out)["items"] == 100
    code, _, terminal = converse(
        [
            "keygen",
            "-i",
            str(identity),
            "--marking-key",
            str(tmp_path / "k2.wmk"),
            "--verification-key",
            str(tmp_path / "k2.wvk"),
            "--no-passphrase",
        ],
        ["wrong"],
    )
    assert code == 2 and "wrong passphrase" in terminal

"""Start a local anvil node (Foundry's Ethereum node) on 127.0.0.1, for tests, benchmarks and trying the
node path without a public chain.

anvil comes from the npm package ``@foundry-rs/anvil-linux-amd64`` (pinned in ``package.json``; ``npm ci``
puts it at ``node_modules/.bin/anvil``). It listens only on 127.0.0.1, on a port the OS chooses
(``--port 0``), which it prints: no race for a free port. Its accounts are public development keys.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

#: anvil's first development account (derived from its public test mnemonic): for local nodes only.
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_CHAIN_ID = 31337
_LISTENING = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class AnvilNode:
    url: str
    process: subprocess.Popen[bytes]


def find_anvil() -> Path:
    """``$WMPROOF_ANVIL``, else ``node_modules/.bin/anvil`` in the checkout, else ``anvil`` on the PATH."""
    candidates = [os.environ.get("WMPROOF_ANVIL"), Path(__file__).resolve().parents[2] / "node_modules/.bin/anvil"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise UsageError("anvil not found: run `npm ci` in the checkout, or set WMPROOF_ANVIL")


@contextmanager
def run_anvil(*extra_args: str, startup_timeout: float = 30.0) -> Iterator[AnvilNode]:
    """A running anvil on 127.0.0.1 (a random free port), stopped on exit."""
    process = subprocess.Popen(
        [str(find_anvil()), "--host", "127.0.0.1", "--port", "0", *extra_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        output = b""
        port = None
        while port is None:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"anvil exited before listening: {output[-500:].decode(errors='replace')}")
            output += line
            match = _LISTENING.search(line)
            if match:
                port = int(match.group(1))
        # Keep draining its output so that a full pipe never blocks it.
        stream = process.stdout
        threading.Thread(target=lambda: all(stream), daemon=True).start()
        yield AnvilNode(url=f"http://127.0.0.1:{port}", process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

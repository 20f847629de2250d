"""The prediction API under load: 32 concurrent clients for 30 s on loopback, batches of 1 and of 256.

The server is `wmproof serve` in its own process (as an adversary would run it); the clients are threads
here, each sending requests back to back with the Open Inference Protocol client (`RemoteOracle`, which
retries and checks every answer). Prints requests/s and images/s served, every error, and the server's
resident memory sampled every 5 s: it must not grow. Issue 6's load target.

    python benchmarks/serve.py --model marked.safetensors        # any mnist model file
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from wmproof.oracles.remote import RemoteOracle


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def load(url: str, batch: int, clients: int, seconds: float, pid: int) -> dict[str, object]:
    x = np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32)
    done = [0] * clients
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        remote = RemoteOracle(url, "suspect", retries=0, timeout=60)
        while time.monotonic() < stop:
            try:
                remote.query(x)
                done[i] += 1
                remote.records.clear()
            except Exception as exc:  # counted, never hidden
                errors.append(f"{type(exc).__name__}: {exc}")

    memory = [rss_mib(pid)]
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(5)
        memory.append(rss_mib(pid))
    elapsed = time.monotonic() - t0
    requests = sum(done)
    return {
        "batch": batch,
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "images_per_s": round(requests * batch / elapsed, 1),
        "errors": len(errors),
        "first_errors": errors[:3],
        "server_rss_mib": [round(m, 1) for m in memory],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "wmproof_cli.main", "serve", args.model, "--port", "0", "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        url = re.search(r"(http://\S+?)/v2/models", line).group(1)  # type: ignore[union-attr]
        rows = [load(url, batch, args.clients, args.seconds, server.pid) for batch in args.batches]
    finally:
        server.terminate()
        server.wait(timeout=10)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        rss = r["server_rss_mib"]
        print(
            f"batch {r['batch']:>4}: {r['clients']} clients x {r['seconds']} s: {r['requests_per_s']} requests/s, "
            f"{r['images_per_s']} images/s, {r['errors']} errors; server RSS {rss[0]} -> {rss[-1]} MiB "
            f"(max {max(rss)})"
        )
        for error in r["first_errors"]:
            print("   ", error)


if __name__ == "__main__":
    main()

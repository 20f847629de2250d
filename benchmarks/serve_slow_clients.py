"""`wmproof serve` under 200 slow clients: do healthy clients still get answers?

Issue 14, defect 1: four clients that dribbled a byte at a time once took all of the old server's inference
slots. Here 200 connections send a request a byte every 2 s (half of them still in their headers, half in
their bodies, the server's deadline closing them and the benchmark opening new ones) while 4 healthy clients
send batch-1 inference requests back to back, for 60 s. Prints the healthy clients' p50/p99 latency and
errors, how many slow connections the server cut off, its resident memory over the run, and whether its log
holds a traceback.

    python benchmarks/serve_slow_clients.py                 # trains a small MNIST MLP first
    python benchmarks/serve_slow_clients.py --model marked.safetensors --seconds 60
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from serve import check, encode, rss_mib, train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--healthy", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or train_model(Path(scratch))
        log = Path(scratch) / "serve.log"
        server = subprocess.Popen(
            [sys.executable, "-m", "wmproof_cli.main", "serve", str(model), "--port", "0", "--device", "cpu"],
            stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
        )  # fmt: skip
        try:
            url = re.search(r"(http://\S+?)/v2/models", server.stdout.readline()).group(1)  # type: ignore[union-attr]
            result = run(url, server.pid, args)
        finally:
            server.terminate()
            server.wait(timeout=60)
        result["traceback_in_log"] = "Traceback" in log.read_text()
        result["log_lines"] = len(log.read_text().splitlines())
    if args.json:
        print(json.dumps(result, indent=2))
        return
    lat = result["latency_ms"]
    print(
        f"{args.healthy} healthy clients, batch 1, beside {args.slow} slow connections for {result['seconds']} s: "
        f"{result['answered']} answered, {result['errors']} errors, p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
        f"max {lat['max']} ms"
    )
    print(f"slow connections cut off by the server: {result['slow_cut_off']} (reopened to keep {args.slow} open)")
    rss = result["server_rss_mib"]
    print(f"server RSS {rss[0]} -> {rss[-1]} MiB (max {max(rss)}); traceback in its log: {result['traceback_in_log']}")


def run(url: str, pid: int, args: argparse.Namespace) -> dict[str, object]:
    host, port = url.removeprefix("http://").split(":")
    address = (host, int(port))
    stop = time.monotonic() + args.seconds
    heads = [b"POST /v2/models/suspect/infer HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"POST /v2/models/suspect/infer "
             b"HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"]  # fmt: skip
    cut_off = [0]

    def open_slow(i: int) -> socket.socket:
        s = socket.create_connection(address)
        s.sendall(heads[i % 2])
        return s

    slow = [open_slow(i) for i in range(args.slow)]

    def trickle() -> None:
        while time.monotonic() < stop:
            time.sleep(2)
            for i, s in enumerate(slow):
                try:
                    s.sendall(b"a")
                except OSError:  # the server's deadline closed it: open another
                    cut_off[0] += 1
                    s.close()
                    slow[i] = open_slow(i)

    latencies: list[float] = []
    errors: list[str] = []
    body, headers = encode(1, False, 0)

    def healthy() -> None:
        import http.client

        connection = http.client.HTTPConnection(*address, timeout=30)
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                connection.request("POST", "/v2/models/suspect/infer", body=body, headers=headers)
                response = connection.getresponse()
                check(response.status, response.headers, response.read(), 1)
                latencies.append((time.perf_counter() - t0) * 1000)
            except Exception as exc:  # counted, never hidden
                errors.append(f"{type(exc).__name__}: {exc}")
                connection.close()
                connection = http.client.HTTPConnection(*address, timeout=30)

    threads = [threading.Thread(target=trickle)] + [threading.Thread(target=healthy) for _ in range(args.healthy)]
    memory = [rss_mib(pid)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        memory.append(rss_mib(pid))
    for s in slow:
        s.close()
    ordered = sorted(latencies) or [float("nan")]
    return {
        "seconds": round(time.monotonic() - t0, 1),
        "answered": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "latency_ms": {
            "p50": round(ordered[len(ordered) // 2], 1),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
            "max": round(ordered[-1], 1),
        },
        "slow_cut_off": cut_off[0],
        "server_rss_mib": [round(m, 1) for m in memory],
    }


if __name__ == "__main__":
    main()

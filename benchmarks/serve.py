"""The prediction API under load, the new server against the old one in the same run: 32 concurrent clients,
batches of 1 and of 256, JSON and binary tensors (the old server speaks JSON only).

Each server runs in its own process, as an adversary would run it: `wmproof serve` (Starlette on uvicorn,
batching across requests) and benchmarks/legacy_server.py (the previous http.server implementation, kept for
this comparison). The clients are threads spread over a few processes (one Python process cannot drive 32
busy connections by itself); each keeps one keep-alive connection, sends the same pre-encoded request back to
back (as perf_analyzer does: the load generator measures the server, not its own encoder) and checks every
answer (status 200, one label per image, labels in range). Prints requests/s, images/s, p50/p99 latency,
errors and the server's resident memory sampled every second over each cell: it must stay flat.

    python benchmarks/serve.py                           # trains a small MNIST MLP first (about a minute)
    python benchmarks/serve.py --model marked.safetensors --seconds 60
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HEADER = "Inference-Header-Content-Length"


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def train_model(directory: Path) -> Path:
    """A small MNIST MLP (one epoch on 10,000 images), as tests/conftest.py trains one."""
    import torch

    from wmproof.engine.data import load_image_dataset, resolve_data_dir
    from wmproof.engine.models import save_model
    from wmproof.engine.train import recipe_config, train_new_model

    train = load_image_dataset("mnist", "train", resolve_data_dir()).subset(10_000)
    model, arguments, _ = train_new_model(
        "mnist_mlp",
        {},
        train.images,
        train.labels,
        10,
        recipe_config("mnist_mlp", epochs=1, seed=0),
        torch.device("cpu"),
        progress=False,
    )
    path = directory / "mnist_mlp.safetensors"
    save_model(model, path, "mnist_mlp", arguments)
    return path


# ------------------------------------------------------------------------------------------ clients


def encode(batch: int, binary: bool, seed: int) -> tuple[bytes, dict[str, str]]:
    x = np.random.default_rng(seed).random((batch, 1, 28, 28), dtype=np.float32)
    tensor: dict[str, Any] = {"name": "input", "shape": list(x.shape), "datatype": "FP32"}
    outputs = [{"name": "label", **({"parameters": {"binary_data": True}} if binary else {})}]
    if not binary:
        tensor["data"] = x.reshape(-1).tolist()
        return json.dumps({"inputs": [tensor], "outputs": outputs}).encode(), {"Content-Type": "application/json"}
    raw = x.astype("<f4").tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps({"inputs": [tensor], "outputs": outputs}).encode()
    return header + raw, {"Content-Type": "application/octet-stream", HEADER: str(len(header))}


def check(status: int, headers: Any, data: bytes, batch: int) -> None:
    """Raises unless the answer is 200 with one label in 0..9 per image."""
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {data[:120]!r}")
    cut = int(headers.get(HEADER) or len(data))
    output = json.loads(data[:cut])["outputs"][0]
    if output["name"] != "label" or output["shape"] != [batch]:
        raise RuntimeError(f"unexpected output {output['name']} {output['shape']}")
    if "data" in output:
        labels = np.asarray(output["data"])
    else:
        labels = np.frombuffer(data[cut : cut + output["parameters"]["binary_data_size"]], "<i8")
    if len(labels) != batch or labels.min() < 0 or labels.max() > 9:
        raise RuntimeError("labels out of range")


def client_process(
    url: str, threads: int, batch: int, binary: bool, start: Any, deadline: Any, ready: Any, results: Any, first: int
) -> None:
    host, port = url[len("http://") :].split(":")
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []

    def run(i: int) -> None:
        body, headers = encode(batch, binary, first + i)
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        encoded.wait()
        start.wait()
        end = deadline.value
        while time.time() < end:
            t0 = time.perf_counter()
            try:
                connection.request("POST", "/v2/models/suspect/infer", body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                check(response.status, response.headers, data, batch)
                if time.time() <= end:  # answered within the cell
                    latencies[i].append(time.perf_counter() - t0)
            except Exception as exc:  # counted, never hidden
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=120)
        connection.close()

    encoded = threading.Barrier(threads + 1)
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    encoded.wait()  # every request encoded before the cell starts
    ready.release()
    for worker in workers:
        worker.join()
    results.put(([x for per in latencies for x in per], errors))


def load(url: str, pid: int, batch: int, binary: bool, clients: int, procs: int, seconds: float) -> dict[str, Any]:
    context = mp.get_context("spawn")
    start, ready, results = context.Event(), context.Semaphore(0), context.Queue()
    deadline = context.Value("d", 0.0)
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    children = [
        context.Process(
            target=client_process,
            args=(url, share, batch, binary, start, deadline, ready, results, sum(shares[:i])),
        )
        for i, share in enumerate(shares)
        if share
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.acquire()
    memory = [rss_mib(pid)]
    t0 = time.monotonic()
    deadline.value = time.time() + seconds
    start.set()
    while time.monotonic() - t0 < seconds:
        time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - t0))))
        memory.append(rss_mib(pid))
    latencies: list[float] = []
    errors: list[str] = []
    for _ in children:
        got, failed = results.get(timeout=seconds + 300)
        latencies += got
        errors += failed
    for child in children:
        child.join()
    requests = len(latencies)
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "batch": batch,
        "encoding": "binary" if binary else "json",
        "clients": clients,
        "seconds": seconds,
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1),
        "images_per_s": round(requests * batch / seconds, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "errors": len(errors),
        "first_errors": errors[:3],
        "server_rss_mib": [round(m, 1) for m in memory],
    }


# ------------------------------------------------------------------------------------------ servers


def start_server(kind: str, model: Path, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    if kind == "new":
        command = [sys.executable, "-m", "wmproof_cli.main", "serve", str(model), "--port", "0", "--device", "cpu"]
    else:
        command = [sys.executable, str(ROOT / "benchmarks" / "legacy_server.py"), str(model), "--port", "0"]
    server = subprocess.Popen(command + extra, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()  # type: ignore[union-attr]
    match = re.search(r"(http://\S+?)/v2/models", line)
    if match is None:
        server.kill()
        raise SystemExit(f"the {kind} server did not start: {line!r}")
    return server, match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an MNIST model file (default: train a small MLP first)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--procs", type=int, default=2, help="client processes the clients are spread over")
    parser.add_argument("--seconds", type=float, default=10, help="duration of each cell")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--servers", nargs="+", default=["legacy", "new"], choices=["legacy", "new"])
    parser.add_argument("--encodings", nargs="+", default=["json", "binary"], choices=["json", "binary"])
    parser.add_argument("--server-arg", action="append", default=[], help="passed to `wmproof serve` (repeat)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train_model(Path(tmp))
        rows = []
        for kind in args.servers:
            server, url = start_server(kind, model, args.server_arg if kind == "new" else [])
            try:
                for encoding in args.encodings:
                    if kind == "legacy" and encoding == "binary":
                        continue  # the old server speaks JSON only
                    for batch in args.batches:
                        row = load(url, server.pid, batch, encoding == "binary", args.clients, args.procs, args.seconds)
                        rows.append({"server": kind, **row})
                        if not args.json:
                            print(format_row(rows[-1]), flush=True)
            finally:
                server.terminate()
                server.wait(timeout=60)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print_targets(rows)


def format_row(r: dict[str, Any]) -> str:
    rss = r["server_rss_mib"]
    line = (
        f"{r['server']:>6} {r['encoding']:>6} batch {r['batch']:>4}: {r['requests_per_s']:>8} req/s "
        f"{r['images_per_s']:>10} images/s  p50 {r['p50_ms']:>7} ms  p99 {r['p99_ms']:>7} ms  "
        f"{r['errors']} errors  RSS {rss[0]} -> {rss[-1]} MiB (max {max(rss)})"
    )
    return line + "".join(f"\n    {error}" for error in r["first_errors"])


def print_targets(rows: list[dict[str, Any]]) -> None:
    def cell(server: str, encoding: str, batch: int) -> dict[str, Any] | None:
        return next((r for r in rows if (r["server"], r["encoding"], r["batch"]) == (server, encoding, batch)), None)

    old_json_256, new_binary_256 = cell("legacy", "json", 256), cell("new", "binary", 256)
    old_1, new_1 = cell("legacy", "json", 1), cell("new", "json", 1)
    if old_json_256 and new_binary_256 and old_json_256["images_per_s"]:
        ratio = new_binary_256["images_per_s"] / old_json_256["images_per_s"]
        print(f"binary batch 256 vs old JSON batch 256: {ratio:.1f}x images/s (target >= 5x)")
    if old_1 and new_1 and old_1["images_per_s"]:
        print(f"JSON batch 1, new vs old: {new_1['images_per_s'] / old_1['images_per_s']:.1f}x (target >= 2x)")
    print(f"errors: {sum(r['errors'] for r in rows)} (target 0)")


if __name__ == "__main__":
    main()

"""``wmproof serve``: a prediction API over the Open Inference Protocol."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated

import typer

from wmproof.errors import UsageError

from .common import (
    DeviceOption,
    TrustModuleOption,
    handle_errors,
    note,
    stdout,
    trust_modules,
)


@handle_errors
def serve_command(
    models: Annotated[
        list[Path],
        typer.Argument(help="Model file(s), safetensors or .onnx; several are served as a majority-vote ensemble."),
    ],
    name: Annotated[str, typer.Option("--name", help="The model name in the API's paths.")] = "suspect",
    output: Annotated[
        str,
        typer.Option("--output", help="What the API reveals: probabilities, label (top-1 only), or quantized."),
    ] = "probabilities",
    levels: Annotated[int, typer.Option("--levels", help="Levels for --output quantized.", min=2)] = 10,
    detector: Annotated[
        Path | None,
        typer.Option(
            "--detector",
            help="A trigger detector (`wmproof attack detector`) in front of the model.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random tie-breaks and random answers.")] = 0,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port, printed).", min=0, max=65535)] = 8000,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Largest batch one request may send.", min=1)] = 1024,
    batch_window_ms: Annotated[
        float,
        typer.Option(
            "--batch-window-ms",
            help="How long concurrent requests are gathered into one forward pass, from the first (0: no wait).",
            min=0.0,
            max=1000.0,
        ),
    ] = 2.0,
    max_forward_batch: Annotated[
        int, typer.Option("--max-forward-batch", help="Most images in one forward pass across requests.", min=1)
    ] = 1024,
    max_queue: Annotated[
        int,
        typer.Option("--max-queue", help="Requests waiting for the model; beyond, 503 with Retry-After.", min=1),
    ] = 256,
    device: DeviceOption = "auto",
    trust_module: TrustModuleOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Say where it serves as one JSON line on stdout, once it accepts requests."),
    ] = False,
) -> None:
    """Serve models over the Open Inference Protocol (KServe v2 REST), as an adversary's API would.

    Endpoints: /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME, POST /v2/models/NAME/infer.
    Evasion modes of Hitaj et al. 2019: several MODELs answer by majority vote with random tie-break
    (section III); --detector answers a random label to queries it judges to be triggers (section IV).
    Tensors travel as JSON or binary (Triton's binary tensor data extension). Concurrent requests are
    answered together: those that arrive within --batch-window-ms of the first, up to --max-forward-batch
    images, share one forward pass; beyond --max-queue waiting requests the server answers 503 (retry
    later). Stop with Ctrl-C or SIGTERM: the requests in flight are answered first.

    Examples:

        wmproof serve marked.safetensors --port 8000

        wmproof serve a.safetensors b.safetensors c.safetensors --name ensemble

        wmproof serve stolen.safetensors --detector det.safetensors --output label

        wmproof serve leaked.onnx --output label        # onnxruntime; no torch needed
    """
    trust_modules(trust_module)
    from wmproof.oracles import open_model_file
    from wmproof.oracles.ensemble import MajorityVote
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.modes import OUTPUT_MODES, LabelOnly, QuantizedPosteriors
    from wmproof.oracles.server import InferenceServer

    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        raise UsageError("wmproof serve runs on Starlette and uvicorn: pip install 'wmproof[serve]'")
    if output not in OUTPUT_MODES:
        raise UsageError(f"--output must be one of {', '.join(OUTPUT_MODES)}")
    if detector is not None and len(models) != 1:
        raise UsageError("--detector guards one model, not an ensemble")
    if host not in ("127.0.0.1", "localhost", "::1"):
        note(f"listening on {host}: reachable from other machines")
    members = [open_model_file(path, device) for path in models]
    tasks = {
        path: f"{m.num_classes} classes, {'x'.join(map(str, m.input_shape or ['?']))} {m.input_datatype}"
        for path, m in zip(models, members, strict=True)
    }
    if len(set(tasks.values())) > 1:
        raise UsageError(
            "an ensemble's models must share a task: " + "; ".join(f"{path}: {task}" for path, task in tasks.items())
        )
    oracle = members[0] if len(members) == 1 else MajorityVote(members, seed=seed)
    if detector is not None:
        from wmproof.oracles.detector import Detector, DetectorGuard

        if not isinstance(members[0], LocalModelOracle):
            raise UsageError("--detector guards a wmproof model file (safetensors), not an ONNX model")

        oracle = DetectorGuard(members[0].loaded, Detector.load(detector), seed=seed)
    if output == "label":
        oracle = LabelOnly(oracle)
    elif output == "quantized":
        oracle = QuantizedPosteriors(oracle, levels)
    try:
        server = InferenceServer(
            oracle,
            name,
            host=host,
            port=port,
            max_batch=max_batch,
            batch_window=batch_window_ms / 1000,
            max_forward_batch=max_forward_batch,
            max_queue=max_queue,
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if as_json:  # one line, flushed: a script waits for it, then queries
        print(
            json.dumps({"serving": name, "url": server.url, "endpoint": f"{server.url}/v2/models/{name}"}), flush=True
        )
    else:
        stdout.print(
            f"serving {name} at {server.url}/v2/models/{name} (Open Inference Protocol); Ctrl-C stops",
            markup=False,
            highlight=False,
        )
    try:
        server.serve_forever()
    finally:
        server.shutdown()
    note(f"stopped after {server.requests} requests, {server.images} images")

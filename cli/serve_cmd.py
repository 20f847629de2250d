"""``wmproof serve``: a prediction API over the Open Inference Protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wmproof.errors import UsageError

from .common import (
    DeviceOption,
    handle_errors,
    note,
    stdout,
)


@handle_errors
def serve_command(
    models: Annotated[
        list[Path], typer.Argument(help="Model file(s); several are served as a majority-vote ensemble.")
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
    device: DeviceOption = "auto",
) -> None:
    """Serve models over the Open Inference Protocol (KServe v2 REST), as an adversary's API would.

    Endpoints: /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME, POST /v2/models/NAME/infer.
    Evasion modes of Hitaj et al. 2019: several MODELs answer by majority vote with random tie-break
    (section III); --detector answers a random label to queries it judges to be triggers (section IV).
    Stop with Ctrl-C.

    Examples:

        wmproof serve marked.safetensors --port 8000

        wmproof serve a.safetensors b.safetensors c.safetensors --name ensemble

        wmproof serve stolen.safetensors --detector det.safetensors --output label
    """
    from wmproof.oracles.ensemble import MajorityVote
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.modes import OUTPUT_MODES, LabelOnly, QuantizedPosteriors
    from wmproof.oracles.server import InferenceServer

    if output not in OUTPUT_MODES:
        raise UsageError(f"--output must be one of {', '.join(OUTPUT_MODES)}")
    if detector is not None and len(models) != 1:
        raise UsageError("--detector guards one model, not an ensemble")
    if host not in ("127.0.0.1", "localhost", "::1"):
        note(f"listening on {host}: reachable from other machines")
    members = [LocalModelOracle.from_file(path, device) for path in models]
    oracle = members[0] if len(members) == 1 else MajorityVote(members, seed=seed)
    if detector is not None:
        from wmproof.oracles.detector import Detector, DetectorGuard

        oracle = DetectorGuard(members[0].loaded, Detector.load(detector), seed=seed)
    if output == "label":
        oracle = LabelOnly(oracle)
    elif output == "quantized":
        oracle = QuantizedPosteriors(oracle, levels)
    server = InferenceServer(oracle, name, host=host, port=port, max_batch=max_batch)
    stdout.print(f"serving {name} at {server.url}/v2/models/{name} (Open Inference Protocol); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        note(f"stopped after {server.requests} requests, {server.images} images")
    finally:
        server.httpd.server_close()

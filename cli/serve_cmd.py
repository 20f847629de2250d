"""``wmproof serve`` (a prediction API over the Open Inference Protocol) and ``wmproof attack detector``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wmproof.errors import UsageError

from .common import (
    DataDirOption,
    DeviceOption,
    JsonOption,
    LimitOption,
    OverwriteOption,
    emit,
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


attack_app = typer.Typer(help="Attacks on watermarks (the adversary's side).", no_args_is_help=True)


@attack_app.command("detector")
@handle_errors
def detector_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="The stolen model the detector will guard.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the detector (safetensors).")],
    max_false_positive_rate: Annotated[
        float, typer.Option("--max-fpr", help="Share of clean queries it may flag (sets the threshold).")
    ] = 0.01,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.", min=1)] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Training seed.")] = 0,
    limit_train: LimitOption = None,
    data_dir: DataDirOption = None,
    device: DeviceOption = "auto",
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train the trigger detector of Hitaj et al. 2019 (section IV) for a stolen MNIST model.

    The adversary's clean data (MNIST training images) against out-of-distribution images (Fashion-MNIST),
    on the stolen model's penultimate features; the threshold flags at most --max-fpr of held-out clean
    images. Serve it with `wmproof serve MODEL --detector OUT`.

    Example:

        wmproof attack detector -m stolen.safetensors -o det.safetensors
    """
    from wmproof.attacks.detector import train_detector
    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.device import resolve_device
    from wmproof.engine.models import load_model

    from .common import check_outputs

    if not 0 < max_false_positive_rate < 1:
        raise UsageError("--max-fpr lies strictly between 0 and 1")
    check_outputs(out, overwrite=overwrite)
    loaded = load_model(model, resolve_device(device))
    limit = limit_train or 20_000
    clean = load_image_dataset("mnist", "train", data_dir).subset(limit)
    ood = load_image_dataset("fashion-mnist", "train", data_dir).subset(limit)
    result = train_detector(
        loaded, clean.images, ood.images, max_false_positive_rate=max_false_positive_rate, epochs=epochs, seed=seed
    )
    result.detector.save(out, overwrite=overwrite)
    data = {
        "detector": str(out),
        "threshold": result.detector.threshold,
        "clean_false_positive_rate": result.clean_false_positive_rate,
        "ood_detection_rate": result.ood_detection_rate,
    }
    emit(
        data,
        as_json,
        lambda: stdout.print(
            f"detector {out}: flags {result.ood_detection_rate:.1%} of held-out Fashion-MNIST and "
            f"{result.clean_false_positive_rate:.1%} of held-out MNIST"
        ),
    )


def _model_attack_command(name: str):
    def command(
        model: Annotated[Path, typer.Option("--model", "-m", help="The model to attack.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the attacked model.")],
        param: Annotated[
            list[str] | None, typer.Option("--param", help="Attack parameter KEY=VALUE (repeatable).")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the attack's randomness.")] = 0,
        limit_train: LimitOption = None,
        data_dir: DataDirOption = None,
        device: DeviceOption = "auto",
        overwrite: OverwriteOption = False,
        as_json: JsonOption = False,
    ) -> None:
        from wmproof.attacks import get_attack
        from wmproof.attacks.base import AttackContext
        from wmproof.engine.device import resolve_device
        from wmproof.engine.models import load_model, save_model

        from .common import check_outputs
        from .keygen_cmd import parse_params

        attack = get_attack(name)
        options = attack.options({k: str(v) for k, v in parse_params(param or []).items()})
        check_outputs(out, overwrite=overwrite)
        dev = resolve_device(device)
        loaded = load_model(model, dev)
        images = labels = None
        if attack.needs_data:
            from wmproof.engine.data import load_image_dataset

            train = load_image_dataset("mnist", "train", data_dir).subset(limit_train)
            images, labels = train.images, train.labels
        result = attack.apply(loaded.module, AttackContext(dev, images, labels, seed), **options)
        save_model(loaded.module, out, loaded.architecture, loaded.arguments, overwrite=overwrite)
        data = {"attack": name, "citation": attack.citation, "options": options, "model": str(out), **result.summary}
        emit(data, as_json, lambda: stdout.print(f"{name} ({attack.citation}): {result.summary} -> {out}"))

    command.__doc__ = f"Run the {name} attack on a model file (see `wmproof attack list`)."
    return command


@attack_app.command("list")
@handle_errors
def list_attacks(as_json: JsonOption = False) -> None:
    """The model attacks, their papers and parameters."""
    from wmproof.attacks import ATTACKS, get_attack

    listing = {
        name: {
            "citation": a.citation,
            "parameters": {k: {"default": d, "help": h} for k, (d, h) in a.parameters.items()},
        }
        for name, a in ((n, get_attack(n)) for n in ATTACKS)
    }

    def human() -> None:
        for name, entry in listing.items():
            stdout.print(f"[bold]{name}[/]  ({entry['citation']})", markup=True)
            for key, p in entry["parameters"].items():
                stdout.print(f"    --param {key}={p['default']}  {p['help']}", highlight=False)

    emit(listing, as_json, human)


def _register_model_attacks() -> None:
    from wmproof.attacks import ATTACKS

    for name in ATTACKS:
        attack_app.command(name)(handle_errors(_model_attack_command(name)))


_register_model_attacks()

"""``wmproof attack``: the adversary's side. One command per registered attack (built from its declared
parameters), ``wmproof attack list``, and ``wmproof attack detector`` (Hitaj et al.'s trigger detector)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from wmproof.errors import UsageError

from .common import (
    DataDirOption,
    DatasetOption,
    DeviceOption,
    JsonOption,
    LimitOption,
    OverwriteOption,
    PassphraseFileOption,
    TrustModuleOption,
    check_outputs,
    emit,
    handle_errors,
    note,
    passphrase_to_read,
    stdout,
    trust_modules,
)
from .suspect import ModelNameOption, UrlOption

app = typer.Typer(
    help="Attacks on watermarks (the adversary's side): `wmproof attack list` names them.", no_args_is_help=True
)


# ------------------------------------------------------------------------------------------ the attacks


def companion_path(out: Path, suffix: str) -> Path:
    """``stolen.safetensors`` with ``.kept-head.safetensors`` -> ``stolen.kept-head.safetensors``."""
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(stem + suffix)


def _split_params(pairs: list[str]) -> dict[str, str]:
    given: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param takes NAME=VALUE, not {pair!r}")
        name = name.strip().replace("-", "_")
        if name in given:
            raise UsageError(f"--param {name} given twice")
        given[name] = value
    return given


def _measure_key(mk: Any, vk: Any, model: Any) -> dict[str, Any]:
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.protocol import verify_private

    report = verify_private(mk, vk, LocalModelOracle(model))
    t = report.test
    return {
        "verdict": "verified" if report.verified else "rejected",
        "trigger_accuracy": t.trigger_accuracy,
        **t.as_dict(),
    }


def _options(attack: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The attack's parameters from ``--NAME VALUE`` and ``--param NAME=VALUE`` (not both for one name)."""
    given = _split_params(values.pop("param") or [])
    for key in attack.parameters:
        value = values.pop(f"p_{key}")
        if value is not None:
            if key in given:
                raise UsageError(f"--{key.replace('_', '-')} and --param {key}=... both given")
            given[key] = value
    return attack.options(given)


def _write_outputs(result: Any, out: Path, companions: dict[str, Path], overwrite: bool) -> str:
    """The companions, then the model (each atomic); on any failure, none of them stays. Returns the model's
    SHA-256."""
    from wmproof.engine.models import save_model
    from wmproof.fileio import write_file

    written: list[Path] = []
    try:
        for k, companion in result.companions.items():
            path = companions[k]
            if companion.module is not None:
                save_model(companion.module, path, companion.architecture, dict(companion.arguments or {}),
                           overwrite=overwrite)  # fmt: skip
            else:
                write_file(path, companion.data, secret=companion.secret, overwrite=overwrite)
            written.append(path)
        return save_model(result.model, out, result.architecture, result.arguments, overwrite=overwrite)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def run_attack_command(name: str, values: dict[str, Any]) -> None:
    from wmproof.attacks import get_attack, run_attack
    from wmproof.attacks.base import AttackContext

    trust_modules(values["trust_module"])
    attack = get_attack(name)
    options = _options(attack, values)
    model: Path | None = values["model"]
    url: str | None = values.get("url")
    out: Path = values["out"]
    overwrite: bool = values["overwrite"]
    companions = {k: companion_path(out, suffix) for k, (suffix, _) in attack.companions.items()}
    check_outputs(out, *companions.values(), overwrite=overwrite)
    key, vk_path = values["key"], values["vk"]
    if (key is None) != (vk_path is None):
        raise UsageError("--key and --vk go together (the owner's marking key and its verification key)")
    owner_key = None
    if key is not None:
        from wmproof.protocol import check_marking_key, load_marking_key, load_verification_key

        vk = load_verification_key(vk_path)
        mk = load_marking_key(key, passphrase_to_read(values["passphrase_file"], str(key)))
        check_marking_key(mk, vk, str(key))
        owner_key = (mk, vk)

    from wmproof.engine.data import image_dataset_spec
    from wmproof.engine.device import resolve_device
    from wmproof.engine.models import LoadedModel, load_model

    dataset = values["dataset"]
    spec = image_dataset_spec(dataset)
    device = resolve_device(values["device"])
    if (model is None) == (url is None):
        raise UsageError("name the victim with --model FILE" + (" or with --url URL --model-name NAME" if
                         attack.access == "queries" else ""))  # fmt: skip
    if url is not None:
        from .suspect import open_suspect

        victim, victim_name = open_suspect(
            None, url, values.get("model_name"), None, values["device"], input_shape=tuple(spec.input_shape)
        )
    else:
        if values.get("model_name") is not None:
            raise UsageError("--model-name goes with --url")
        victim, victim_name = load_model(model, device), str(model)
    if (victim.num_classes, tuple(victim.input_shape or ())) != (spec.num_classes, tuple(spec.input_shape)):
        raise UsageError(f"{victim_name} is not a model for {dataset} (give its task with --dataset)")
    if owner_key is not None and (owner_key[1].num_classes, tuple(owner_key[1].input_shape)) != (
        spec.num_classes,
        tuple(spec.input_shape),
    ):
        raise UsageError(f"{key} is a key for another task than {dataset}")

    measured: dict[str, Any] = {}
    if owner_key is not None and isinstance(victim, LoadedModel):
        measured["before"] = _measure_key(*owner_key, victim)
    context = AttackContext(device=device, seed=values["seed"], task=dataset, data_dir=values["data_dir"])
    target = victim
    if attack.access == "queries" and isinstance(victim, LoadedModel):
        from wmproof.oracles.local import LocalModelOracle

        target = LocalModelOracle(victim)
    attack.check(target, context, options)  # every mistake is one line before the work starts
    note(f"{name} ({attack.citation}) on {victim_name}, on {device} (seed {values['seed']})")
    result = run_attack(attack, victim, context, options)
    if owner_key is not None:
        measured["after"] = _measure_key(*owner_key, result.verification_model())
        if result.verify_through is not None:
            measured["after"]["through"] = str(companions[result.verify_through])

    digest = _write_outputs(result, out, companions, overwrite)
    described = {"path": str(model), "sha256": victim.sha256} if isinstance(victim, LoadedModel) else victim.describe()
    data = {
        **result.summary,
        "access": attack.access,
        "victim": described,
        "model": {"path": str(out), "sha256": digest, "architecture": result.architecture},
        "companions": {k: str(p) for k, p in companions.items()},
        "device": str(device),
    }
    if owner_key is not None:
        data["owner_key"] = {"key_id": owner_key[1].key_id.hex(), **measured}

    def human() -> None:
        summary = result.summary
        stdout.print(f"[bold]{name}[/] ({attack.citation}) -> {out}  (sha256 {digest[:16]})", markup=True)
        before, after = summary["test_accuracy_before"], summary["test_accuracy_after"]
        shown = f"{before:.4f} before, " if before is not None else ""
        stdout.print(f"test accuracy     {shown}{after:.4f} after ({summary['task_after']})", highlight=False)
        for when, m in measured.items():
            through = f" through {m['through']}" if "through" in m else ""
            stdout.print(
                f"owner's key       {when}: {round(m['trigger_accuracy'] * m['n'])}/{m['n']} items "
                f"{'match' if 'matches' in m else 'answer the target class'}, p = {m['p_value']}, "
                f"{m['verdict']}{through}",
                highlight=False,
            )
        for k, v in summary.items():
            if k in ("attack", "citation", "test_accuracy_before", "test_accuracy_after", "task_after", "seed"):
                continue
            stdout.print(f"  {k:<32} {_shown(k, v)}", highlight=False)
        for k, p in companions.items():
            stdout.print(f"  wrote {p}  ({attack.companions[k][1]})", highlight=False)

    emit(data, values["as_json"], human)


def _shown(key: str, value: Any) -> str:
    if key == "options":
        return ", ".join(f"{k}={'(default)' if v is None else v}" for k, v in value.items())
    if isinstance(value, (list, dict)):
        return "(see --json)"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _command_for(name: str, attack: Any) -> Any:
    """A typer command whose options are the attack's parameters (``--NAME``), plus the common ones."""
    P = inspect.Parameter
    params: list[inspect.Parameter] = []

    def option(pname: str, annotation: Any, default: Any) -> None:
        params.append(P(pname, P.KEYWORD_ONLY, annotation=annotation, default=default))

    victim_help = "The victim: the model file" + (" (or --url)." if attack.access == "queries" else ".")
    option("model", Annotated[Path | None, typer.Option("--model", "-m", help=victim_help, show_default=False)], None)
    if attack.access == "queries":
        option("url", UrlOption, None)
        option("model_name", ModelNameOption, None)
    option("out", Annotated[Path, typer.Option("--out", "-o", help="Where to write the adversary's model.")], ...)
    for key, p in attack.parameters.items():
        flag = "--" + key.replace("_", "-")
        extra = f" One of: {', '.join(p.choices)}." if p.choices else ""
        default = f" [default: {p.default}]" if p.default is not None else ""
        kind = p.type if p.choices is None else str
        option(
            f"p_{key}",
            Annotated[kind | None, typer.Option(flag, help=f"{p.help}.{extra}{default}", show_default=False)],
            None,
        )
    option(
        "param",
        Annotated[
            list[str] | None,
            typer.Option("--param", help="A parameter as NAME=VALUE (repeatable): the same as --NAME VALUE."),
        ],
        None,
    )
    option("dataset", DatasetOption, "mnist")
    option("key", Annotated[Path | None, typer.Option("--key", help="The owner's marking key: report its verdict "
                                                      "before and after.", show_default=False)], None)  # fmt: skip
    option("vk", Annotated[Path | None, typer.Option("--vk", help="The verification key of --key.",
                                                     show_default=False)], None)  # fmt: skip
    option("passphrase_file", PassphraseFileOption, None)
    option("seed", Annotated[int, typer.Option("--seed", help="Seed of the attack's randomness.")], 0)
    option("data_dir", DataDirOption, None)
    option("device", DeviceOption, "auto")
    option("trust_module", TrustModuleOption, None)
    option("overwrite", OverwriteOption, False)
    option("as_json", JsonOption, False)

    def command(**values: Any) -> None:
        run_attack_command(name, values)

    example = f"wmproof attack {name} -m marked.safetensors -o attacked.safetensors"
    if name == "extract":
        example = (
            "wmproof attack extract --url http://127.0.0.1:8000 --model-name suspect --arch mnist_mlp "
            "--queries 10000 -o stolen.safetensors"
        )
    summary = attack.describe()["summary"]
    command.__doc__ = (
        f"{summary} ({attack.citation})\n\n"
        + ("The victim is only queried (a model file or an API); " if attack.access == "queries" else "")
        + "--key/--vk report the owner's verdict before and after. See `wmproof attack list`.\n\n"
        + f"Example:\n\n    {example}\n"
    )
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return command


@app.command("list")
@handle_errors
def list_attacks(as_json: JsonOption = False) -> None:
    """The attacks, what they need (weights or queries), their papers and parameters.

    Examples:

        wmproof attack list

        wmproof attack list --json
    """
    from wmproof.attacks import ATTACKS, get_attack

    listing = {name: get_attack(name).describe() for name in ATTACKS}

    def human() -> None:
        for name, entry in listing.items():
            stdout.print(f"[bold]{name}[/]  {entry['summary']}", markup=True, highlight=False)
            access = "the model file's weights" if entry["access"] == "weights" else "queries (a model file or --url)"
            stdout.print(f"    {entry['citation']}; works on {access}", highlight=False)
            for key, p in entry["parameters"].items():
                choices = f" ({'|'.join(p['choices'])})" if "choices" in p else ""
                default = "(default)" if p["default"] is None else p["default"]
                stdout.print(f"    --{key.replace('_', '-')} {default}{choices}  {p['help']}", highlight=False)
            strength = entry["strength"]
            grid = ", ".join(map(str, strength["values"]))
            stdout.print(f"    strength (wmproof robustness): --{strength['parameter']} {grid}", highlight=False)

    emit(listing, as_json, human)


def _register() -> None:
    from wmproof.attacks import ATTACKS, get_attack

    for name in ATTACKS:
        app.command(name)(handle_errors(_command_for(name, get_attack(name))))


# ----------------------------------------------------------------------------------- the trigger detector


@app.command("detector")
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
    trust_module: TrustModuleOption = None,
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
    trust_modules(trust_module)
    from wmproof.attacks.detector import train_detector
    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.device import resolve_device
    from wmproof.engine.models import load_model

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


_register()

"""The units of a robustness sweep, as functions of plain data: a configuration, a unit, the model files and
keys it starts from (bytes), the data folder and a thread count in; a JSON-ready record and the files it made
(bytes) out. Nothing here touches the sweep's folder, so a unit runs the same in the driver, in a process
pool, or on a Ray node that shares no disk with the driver (each node needs only wmproof and the data set).

Results are deterministic for a configuration, a device and a thread count: every training is seeded, the
owner's identity and the keys' entropy are derived from the seed (:func:`sweep_identity`,
:func:`sweep_entropy`: a benchmark's throwaway keys, never a real owner's), and each unit sets its own thread
count (one by default: parallel units, not parallel threads, use the cores). So the same sweep gives the same
records (timing aside) whichever executor ran it.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import tempfile
import time
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from .grid import DEFAULT_TRIGGERS_PER_BATCH, TRIGGERS_PER_BATCH, UNMARKED, Cell, KeyUnit, ModelUnit, SweepConfig

#: The creation time written into the sweep's identities and keys (2026-01-01 00:00 UTC), so that the key
#: files, like everything else, are the same on every run.
CREATED_AT = 1_767_225_600

#: Record fields that differ from run to run of the same unit: left out when two runs are compared.
TIMING_FIELDS = ("wall_seconds", "attack_timing")

#: Offsets of the seeds of a sweep seed's trainings, so that no two trainings share one.
_UNMARKED_SEED = 10_000
_MARKING_SEED = 20_000


# ----------------------------------------------------------------------------------------- determinism


def sweep_identity(seed: int) -> Any:
    """The synthetic owner of seed ``seed``: an Ed25519 key derived from the seed. A benchmark's owner only."""
    from ..crypto.signatures import SigningKey
    from ..protocol import Identity

    secret = hashlib.sha256(f"wmproof robustness owner/{seed}".encode()).digest()
    return Identity(SigningKey(secret), CREATED_AT, f"robustness sweep owner, seed {seed}")


def sweep_entropy(tag: str) -> Callable[[int], bytes]:
    """A deterministic stand-in for ``os.urandom`` in KeyGen (SHA-256 in counter mode over ``tag``), so that
    the same sweep draws the same keys. Never for a real key: anyone who knows the tag knows the key."""
    counter = 0

    def draw(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"wmproof robustness key/{tag}/{counter}".encode()).digest()
            counter += 1
        return out[:n]

    return draw


def _prepare(threads: int) -> Any:
    """Set this process's torch thread count, before torch is imported where it is not yet (so that its
    thread pools start at that size), and return torch."""
    from ..engine.threads import configure_threads

    configure_threads(threads)
    import torch

    torch.set_num_threads(threads)
    return torch


def _versions(torch: Any) -> dict[str, str]:
    import numpy

    from .. import __version__

    return {"wmproof": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}  # fmt: skip


def _environment(threads: int, torch: Any, device: Any) -> dict[str, Any]:
    return {"device": str(device), "threads": threads, "versions": _versions(torch)}


@functools.lru_cache(maxsize=8)
def _dataset(name: str, split: str, data_dir: str | None) -> Any:
    """Data sets are read once per process (a worker runs many units)."""
    from ..engine.data import load_image_dataset

    return load_image_dataset(name, split, data_dir)


def _owner_data(config: SweepConfig, data_dir: str | None) -> Any:
    from ..errors import UsageError

    train = _dataset(config.task, "train", data_dir)
    if config.owner_images > len(train):
        raise UsageError(f"the owner trains on {config.owner_images:,} images; {config.task} has {len(train):,}")
    return train.subset(config.owner_images)


def _load(data: bytes, device: Any) -> Any:
    """A model file's bytes as a LoadedModel, read by the strict loader (safetensors, known architecture)."""
    from ..engine.models import load_model

    with tempfile.TemporaryDirectory(prefix="wmproof-sweep-") as folder:
        path = Path(folder) / "model.safetensors"
        path.write_bytes(data)
        return load_model(path, device)


def _keys(blobs: Mapping[str, tuple[bytes, bytes]]) -> dict[str, tuple[Any, Any]]:
    """(marking key, verification key) per scheme, from their files' bytes, through the protocol's readers."""
    from ..protocol import load_marking_key, load_verification_key

    out = {}
    with tempfile.TemporaryDirectory(prefix="wmproof-sweep-") as folder:
        for scheme, (mk_bytes, vk_bytes) in blobs.items():
            mk_path, vk_path = Path(folder) / f"{scheme}.wmk", Path(folder) / f"{scheme}.wvk"
            mk_path.write_bytes(mk_bytes)
            vk_path.write_bytes(vk_bytes)
            out[scheme] = (load_marking_key(mk_path, None), load_verification_key(vk_path))
    return out


def _verification(mk: Any, vk: Any, model: Any) -> dict[str, Any]:
    """The key's own decision on ``model`` (the private verification a judge runs), and its watermark
    accuracy: the share of items answered with their label."""
    from ..oracles.local import LocalModelOracle
    from ..protocol import verify_private

    report = verify_private(mk, vk, LocalModelOracle(model))
    statistics = report.test.as_dict()
    return {
        "verified": bool(report.verified),
        "p_value": float(report.test.p_value),
        "watermark_accuracy": sum(a == e for a, e in zip(report.answered, report.expected, strict=True))
        / len(report.expected),
        "n": len(report.expected),
        "test": statistics.get("test", type(report.test).__name__),
    }


def _test_accuracy(config: SweepConfig, module: Any, data_dir: str | None, device: Any) -> float:
    from ..engine.train import TensorData, accuracy

    test = _dataset(config.task, "test", data_dir)
    return accuracy(module, TensorData.from_numpy(test.images, test.labels, device))


# ------------------------------------------------------------------------------------------- stage 1


def train_model(config: SweepConfig, unit: ModelUnit, data_dir: str | None, threads: int) -> dict[str, Any]:
    """The owner's clean model of a seed, or the unmarked negative: the architecture's recipe on the owner's
    images, seeded differently (an unmarked model trained independently of the owner's)."""
    started = time.perf_counter()
    torch = _prepare(threads)
    from ..engine.device import resolve_device
    from ..engine.models import model_file_bytes
    from ..engine.train import recipe_config, train_new_model

    device = resolve_device(config.device)
    own = _owner_data(config, data_dir)
    seed = unit.seed + (_UNMARKED_SEED if unit.role == UNMARKED else 0)
    recipe = recipe_config(config.arch, epochs=config.owner_epochs, seed=seed)
    module, arguments, _ = train_new_model(
        config.arch, {}, own.images, own.labels, own.num_classes, recipe, device, progress=False
    )
    record = {
        "unit": unit.path,
        "seed": unit.seed,
        "role": unit.role,
        "training_seed": seed,
        "epochs": recipe.epochs,
        "images": len(own),
        "test_accuracy": _test_accuracy(config, module, data_dir, device),
        **_environment(threads, torch, device),
        "wall_seconds": time.perf_counter() - started,
    }
    return {"record": record, "files": {"model.safetensors": model_file_bytes(module, config.arch, arguments)}}


def _keygen_context(config: SweepConfig, scheme: Any, params: Mapping[str, Any], clean: Any, own: Any,
                    data_dir: str | None, seed: int) -> Any:  # fmt: skip
    """What the scheme makes its items from, as ``wmproof keygen`` gathers it: the model to mark and its
    training data (model-derived keys), the data set the scheme draws from (data-drawn keys), or the owner's
    own trigger images. For the last, the sweep's owner brings 2N Fashion-MNIST training images (their last
    ones) with labels drawn uniformly at random: Adi et al.'s random labels (section 5) on images of their own
    that are not the task's."""
    import dataclasses

    import numpy as np

    from ..engine.data import image_dataset_spec
    from ..schemes import KeyGenContext

    spec = image_dataset_spec(config.task)
    base = KeyGenContext(spec.num_classes, spec.input_shape, params)
    if scheme.items_from_owner:
        other = "fashion-mnist" if config.task != "fashion-mnist" else "mnist"
        images = _dataset(other, "train", data_dir).tail(2 * config.items).images
        labels = np.random.default_rng(seed).integers(0, spec.num_classes, len(images)).astype(np.int64)
        return dataclasses.replace(base, data=(images, labels))
    context = None
    if scheme.needs_model(params):
        context = dataclasses.replace(base, model=clean, data=(own.images, own.labels))
    source = scheme.source_dataset(params, config.task)
    if source is not None:
        drawn = own if source == config.task else _dataset(source, "train", data_dir)
        data = (drawn.images, drawn.labels)
        if context is None:
            context = dataclasses.replace(base, data=data)
        elif source != config.task:
            context = dataclasses.replace(context, data=data, task_data=(own.images, own.labels))
    return context


def make_key(config: SweepConfig, unit: KeyUnit, clean_model: bytes, unmarked_model: bytes, data_dir: str | None,
             threads: int) -> dict[str, Any]:  # fmt: skip
    """A key of ``unit.scheme`` for the seed's owner, embedded PreTrained into the seed's clean model (the
    scheme's own epoch bound, stopping once every item is learned, as ``wmproof mark`` does). A scheme that
    cannot embed its key within its bound gives a record that says so, and no marked model. The key is also
    verified, before any attack, on the clean model and on the seed's unmarked model (false positives)."""
    started = time.perf_counter()
    torch = _prepare(threads)
    from ..engine.device import resolve_device
    from ..engine.models import LoadedModel, model_file_bytes
    from ..engine.train import recipe_config
    from ..errors import EmbeddingFailed
    from ..protocol import keygen, mark
    from ..schemes import get_scheme

    device = resolve_device(config.device)
    scheme = get_scheme(unit.scheme)
    params = dict(config.scheme_params.get(unit.scheme, {}))
    own = _owner_data(config, data_dir)
    clean = _load(clean_model, device)
    context = _keygen_context(config, scheme, params, clean, own, data_dir, unit.seed)
    mk, vk = keygen(
        sweep_identity(unit.seed), unit.scheme, items=config.items, num_classes=own.num_classes,
        input_shape=tuple(own.images.shape[1:]), params=params, alpha=Fraction(config.key_alpha(unit.scheme)),
        context=context, created_at=CREATED_AT, entropy=sweep_entropy(f"{unit.seed}/{unit.scheme}"),
    )  # fmt: skip
    files = {"key.wmk": mk.to_bytes(None), "key.wvk": vk.raw}
    k = TRIGGERS_PER_BATCH.get(unit.scheme, DEFAULT_TRIGGERS_PER_BATCH)
    marking = recipe_config(config.arch, fine_tuning=True, epochs=scheme.default_max_epochs,
                            seed=unit.seed + _MARKING_SEED, triggers_per_batch=k)  # fmt: skip
    record: dict[str, Any] = {
        "unit": unit.path,
        "seed": unit.seed,
        "scheme": unit.scheme,
        "params": dict(mk.params),
        "items": len(mk.items),
        "alpha": config.key_alpha(unit.scheme),
        "triggers_per_batch": k,
        "clean": _verification(mk, vk, clean),
        "unmarked": _verification(mk, vk, _load(unmarked_model, device)),
    }
    try:
        marked = mark(
            mk, embedding="pretrained", train_images=own.images, train_labels=own.labels,
            dataset_classes=own.num_classes, base_model=clean, config=marking, device=device, progress=False,
        )  # fmt: skip
    except EmbeddingFailed as exc:
        record.update(embedded=False, reason=str(exc))
    else:
        model = LoadedModel(marked.model, marked.architecture, marked.arguments, sha256="")
        record.update(
            embedded=True,
            marking_epochs=marked.epochs,
            trigger_accuracy=marked.trigger_accuracy,
            test_accuracy=_test_accuracy(config, marked.model, data_dir, device),
            marked=_verification(mk, vk, model),
        )
        files["model.safetensors"] = model_file_bytes(marked.model, marked.architecture, marked.arguments)
    record.update(_environment(threads, torch, device), wall_seconds=time.perf_counter() - started)
    return {"record": record, "files": files}


# ------------------------------------------------------------------------------------------- stage 2

#: What run_attack puts in every summary; the record has its own fields for these.
_COMMON_SUMMARY = {"attack", "citation", "options", "seed", "test_accuracy_before", "test_accuracy_after", "task_after"}


def _scalars(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The attack's own numbers (epochs trained, weights pruned, agreement...): scalars, and dicts of them."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if key in _COMMON_SUMMARY or key.endswith("_seconds"):  # timing: ``attack_timing``
            continue
        if isinstance(value, (bool, int, float, str)) or value is None:
            out[key] = value
        elif isinstance(value, Mapping) and all(
            isinstance(v, (bool, int, float, str)) or v is None for v in value.values()
        ):
            out[key] = dict(value)
    return out


def attack_cell(config: SweepConfig, cell: Cell, subject_model: bytes, keys: Mapping[str, tuple[bytes, bytes]],
                data_dir: str | None, threads: int) -> dict[str, Any]:  # fmt: skip
    """Run the cell's attack on its subject and verify ``keys`` (the subject's own key for a marked model;
    every key of the seed for the unmarked one) on what the adversary ends with (through the kept output
    layer after transfer learning, Adi et al. 5.5)."""
    started = time.perf_counter()
    torch = _prepare(threads)
    from ..attacks import get_attack, run_attack
    from ..attacks.base import AttackContext
    from ..engine.device import resolve_device

    device = resolve_device(config.device)
    victim = _load(subject_model, device)
    train = _dataset(config.task, "train", data_dir)
    context = AttackContext(device, seed=cell.seed, task=config.task, data_dir=None if data_dir is None else
                            Path(data_dir), images=train.images, labels=train.labels, progress=False,
                            key_entropy=sweep_entropy(f"{cell.id}/attack"), key_time=CREATED_AT)  # fmt: skip
    result = run_attack(cell.attack, victim, context, config.attack_options(cell.attack, cell.strength))
    verified_on = result.verification_model()
    opened = _keys(keys)
    record = {
        "cell": cell.id,
        "attack": cell.attack,
        "strength": {"param": get_attack(cell.attack).strength.param, "value": cell.strength},
        "seed": cell.seed,
        "subject": cell.subject,
        "options": result.summary["options"],
        "test_accuracy_before": result.summary["test_accuracy_before"],
        "test_accuracy_after": result.summary["test_accuracy_after"],
        "task_after": result.summary["task_after"],
        "keys": {scheme: _verification(mk, vk, verified_on) for scheme, (mk, vk) in sorted(opened.items())},
        "attack_summary": _scalars(result.summary),
        "attack_timing": {k: v for k, v in result.summary.items() if k.endswith("_seconds")},
        **_environment(threads, torch, device),
        "wall_seconds": time.perf_counter() - started,
    }
    return record

"""The end-to-end demonstration behind ``wmproof demo`` (and the README's first command).

On the embedded defaults (MNIST, CPU, no network) it plays both roles: the owner trains a clean model,
creates an identity and a committed key, timestamps the key on the embedded chain (in the user's data home,
as ``wmproof publish`` would), and marks the model (Adi et al.'s PreTrained embedding); the judge then
verifies, from the files on disk, the marked model and an independently trained clean model, and reads the
key's timestamp back. Every artefact is written to the work directory as a user of the CLI would have it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .protocol import (
    Identity,
    keygen,
    load_marking_key,
    load_verification_key,
    mark,
    save_identity,
    save_marking_key,
    save_verification_key,
    verify_private,
)
from .protocol.keys import DEFAULT_ALPHA

if TYPE_CHECKING:
    from .chain import ChainSettings


@dataclass
class DemoModelRow:
    name: str
    path: str
    role: str
    test_accuracy: float
    trigger_accuracy: float
    report: dict[str, Any]


@dataclass
class DemoResult:
    workdir: str
    architecture: str
    dataset: str
    items: int
    seeds: dict[str, int]
    rows: list[DemoModelRow] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    mark_epochs: int = 0
    timestamp: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workdir": self.workdir,
            "architecture": self.architecture,
            "dataset": self.dataset,
            "items": self.items,
            "seeds": self.seeds,
            "mark_epochs": self.mark_epochs,
            "timings_s": {k: round(v, 2) for k, v in self.timings.items()},
            "models": [row.__dict__ for row in self.rows],
            "timestamp": self.timestamp,
        }


def run_demo(
    workdir: Path,
    *,
    architecture: str = "mnist_fast",
    dataset: str = "mnist",
    epochs: int | None = None,
    mark_max_epochs: int = 20,
    items: int = 100,
    seed: int = 0,
    alpha: Fraction = DEFAULT_ALPHA,
    device_name: str | None = None,
    data_dir: Path | None = None,
    limit_train: int | None = None,
    triggers_per_batch: int = 2,
    chain: ChainSettings | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> DemoResult:

    from .chain import ChainSettings, open_registry
    from .engine.data import load_image_dataset
    from .engine.device import resolve_device
    from .engine.models import load_model, save_model
    from .engine.threads import threads_in_use
    from .engine.train import TensorData, accuracy, recipe_config, train_new_model
    from .oracles.local import LocalModelOracle
    from .protocol.timestamps import find_timestamp, format_time, load_record, publish, save_record
    from .schemes import item_arrays

    chain = chain or ChainSettings()
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device_name)
    result = DemoResult(
        str(workdir), architecture, dataset, items, {"clean": seed, "independent": seed + 1, "mark": seed + 2}
    )

    def timed(name: str, t0: float) -> None:
        result.timings[name] = time.perf_counter() - t0

    t0 = time.perf_counter()
    train = load_image_dataset(dataset, "train", data_dir).subset(limit_train)
    test = load_image_dataset(dataset, "test", data_dir)
    test_tensors = TensorData.from_numpy(test.images, test.labels, device)
    timed("load data", t0)
    where = f"{device}, {threads_in_use()} thread{'s' * (threads_in_use() != 1)}" if device.type == "cpu" else device
    log(f"data: {dataset}, {len(train)} training and {len(test)} test images; device {where}")

    def train_clean(name: str, model_seed: int) -> Path:
        t = time.perf_counter()
        config = recipe_config(architecture, epochs=epochs, seed=model_seed)
        log(f"owner: training a clean {architecture} ({config.epochs} epochs, seed {model_seed})")
        model, args, _ = train_new_model(
            architecture,
            {},
            train.images,
            train.labels,
            train.num_classes,
            config,
            device,
            description=f"training {name}",
            progress=progress,
        )
        path = workdir / f"{name}.safetensors"
        save_model(model, path, architecture, args, overwrite=True)
        timed(f"train {name}", t)
        return path

    clean_path = train_clean("clean", seed)

    t0 = time.perf_counter()
    identity = Identity.generate("wmproof demo owner")
    # Demo secrets are stored unencrypted (throw-away keys); real owners pass a passphrase.
    save_identity(identity, workdir / "owner.wid", None, overwrite=True)
    mk, vk = keygen(
        identity, "adi-backdoor", items=items, num_classes=train.num_classes, input_shape=train.input_shape, alpha=alpha
    )
    save_marking_key(mk, workdir / "key.wmk", None, overwrite=True)
    save_verification_key(vk, workdir / "key.wvk", overwrite=True)
    timed("identity and keygen", t0)
    log(
        f"owner: identity {identity.public_key.fingerprint}, key {vk.key_id.hex()[:16]} "
        f"({items} items, verified when >= {vk.min_matches} match)"
    )

    t0 = time.perf_counter()
    with open_registry(chain, write=True) as client:
        (published,) = publish([vk], client)
    save_record(published.timestamp.record(), workdir / "key.wts", overwrite=True)
    timed("publish", t0)
    log(f"owner: key timestamped at {format_time(published.timestamp.timestamp)} on the {chain.describe()}")

    t0 = time.perf_counter()
    base = load_model(clean_path, device)
    mark_config = recipe_config(
        architecture, fine_tuning=True, epochs=mark_max_epochs, seed=seed + 2, triggers_per_batch=triggers_per_batch
    )
    log(
        f"owner: marking the clean model (PreTrained, k={triggers_per_batch} triggers per batch, "
        f"until the triggers are learned, at most {mark_max_epochs} epochs)"
    )
    marked = mark(
        mk,
        embedding="pretrained",
        train_images=train.images,
        train_labels=train.labels,
        dataset_classes=train.num_classes,
        base_model=base,
        config=mark_config,
        device=device,
        progress=progress,
    )
    marked_path = workdir / "marked.safetensors"
    save_model(marked.model, marked_path, marked.architecture, marked.arguments, overwrite=True)
    result.mark_epochs = marked.epochs
    timed("mark", t0)

    independent_path = train_clean("independent", seed + 1)

    # The judge: everything from the files.
    t0 = time.perf_counter()
    judge_mk = load_marking_key(workdir / "key.wmk", None)
    judge_vk = load_verification_key(workdir / "key.wvk")
    triggers = TensorData.from_numpy(*item_arrays(judge_mk.items), device)
    for name, path, role in (
        ("clean", clean_path, "the owner's model before marking"),
        ("marked", marked_path, "the owner's model, marked (PreTrained)"),
        ("independent", independent_path, "trained separately (another seed), never marked"),
    ):
        oracle = LocalModelOracle.from_file(path, str(device))
        report = verify_private(judge_mk, judge_vk, oracle, suspect_name=path.name)
        result.rows.append(
            DemoModelRow(
                name=name,
                path=str(path),
                role=role,
                test_accuracy=accuracy(oracle.loaded.module, test_tensors),
                trigger_accuracy=accuracy(oracle.loaded.module, triggers),
                report=report.as_dict(),
            )
        )
    with open_registry(chain, write=False) as client:
        found = find_timestamp(judge_vk, client, load_record(workdir / "key.wts"))
    assert found is not None  # find_timestamp raises rather than lose a recorded registration
    result.timestamp = found.as_dict()
    timed("verify", t0)
    result.timings["total"] = time.perf_counter() - started
    return result

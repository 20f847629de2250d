"""``wmproof train``, ``wmproof mark``, ``wmproof evaluate``: models on real data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from .common import (
    ARCHITECTURE_HELP,
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
    warn,
)

ArchOption = Annotated[str, typer.Option("--arch", help=ARCHITECTURE_HELP)]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed for initialisation, shuffling and dropout.")]
EpochsOption = Annotated[
    int | None, typer.Option("--epochs", help="Epochs (default: the architecture's recipe).", show_default=False, min=0)
]
LrOption = Annotated[
    float | None, typer.Option("--lr", help="Learning rate (default: the recipe's).", show_default=False)
]
BatchOption = Annotated[
    int | None, typer.Option("--batch-size", help="Batch size (default: the recipe's, 128).", show_default=False, min=1)
]
OptimizerOption = Annotated[
    str | None, typer.Option("--optimizer", help="adam, sgd or rmsprop (default: the recipe's).", show_default=False)
]


@handle_errors
def train_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the model (safetensors).")],
    arch: ArchOption = "mnist_mlp",
    dataset: DatasetOption = "mnist",
    epochs: EpochsOption = None,
    lr: LrOption = None,
    batch_size: BatchOption = None,
    optimizer: OptimizerOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    trust_module: TrustModuleOption = None,
    data_dir: DataDirOption = None,
    limit_train: LimitOption = None,
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train a clean (unmarked) model and report its test accuracy.

    Example:

        wmproof train --arch mnist_cnn --epochs 3 --seed 1 --out clean.safetensors
    """
    trust_modules(trust_module)
    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.device import resolve_device
    from wmproof.engine.models import save_model
    from wmproof.engine.threads import threads_in_use
    from wmproof.engine.train import (
        TensorData,
        accuracy,
        recipe_config,
        train_new_model,
    )

    check_outputs(out, overwrite=overwrite)
    dev = resolve_device(device)
    config = recipe_config(arch, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer, seed=seed)
    config.check()
    train = load_image_dataset(dataset, "train", data_dir).subset(limit_train)
    test = load_image_dataset(dataset, "test", data_dir)
    threads = threads_in_use()
    where = f"{dev}, {threads} thread{'s' * (threads != 1)}" if dev.type == "cpu" else str(dev)
    epochs = f"{config.epochs} epoch{'s' * (config.epochs != 1)}"
    note(f"training {arch} on {len(train)} {dataset} images for {epochs} on {where} (seed {seed})")
    t0 = time.perf_counter()
    model, args, history = train_new_model(arch, {}, train.images, train.labels, train.num_classes, config, dev)
    seconds = time.perf_counter() - t0
    test_accuracy = accuracy(model, TensorData.from_numpy(test.images, test.labels, dev))
    digest = save_model(model, out, arch, args, overwrite=overwrite)
    data = {
        "path": str(out),
        "sha256": digest,
        "architecture": arch,
        "arguments": args,
        "dataset": dataset,
        "epochs": config.epochs,
        "seed": seed,
        "train_images": len(train),
        "test_accuracy": test_accuracy,
        "train_seconds": round(seconds, 2),
        "images_per_second": round(history.images_seen / max(seconds, 1e-9), 1),
        "device": str(dev),
    }

    def human() -> None:
        stdout.print(f"model          {out}  ({arch}, sha256 {digest[:16]})")
        stdout.print(f"test accuracy  {test_accuracy:.4f}  ({len(test)} {dataset} test images)")
        stdout.print(
            f"training       {config.epochs} epochs, {seconds:.1f} s, {data['images_per_second']:.0f} images/s on {dev}"
        )

    emit(data, as_json, human)


@handle_errors
def mark_command(
    key: Annotated[Path, typer.Option("--key", "-k", help="The marking key to embed.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the marked model.")],
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="Model to mark (PreTrained embedding).", show_default=False)
    ] = None,
    from_scratch: Annotated[
        bool,
        typer.Option(
            "--from-scratch",
            help="Train a new model with the triggers from the start (FromScratch embedding); needs --arch.",
        ),
    ] = False,
    arch: Annotated[
        str | None, typer.Option("--arch", help="Architecture for --from-scratch.", show_default=False)
    ] = None,
    dataset: DatasetOption = "mnist",
    max_epochs: Annotated[
        int | None,
        typer.Option(
            "--max-epochs",
            help="Upper bound on training epochs (default: the scheme's, 20 for adi-backdoor, 100 for "
            "frontier-stitching).",
            show_default=False,
            min=1,
        ),
    ] = None,
    min_epochs: Annotated[
        int | None,
        typer.Option(
            "--min-epochs",
            help="Train at least this many epochs (default: 1 PreTrained, the recipe's FromScratch).",
            show_default=False,
            min=1,
        ),
    ] = None,
    target: Annotated[
        float,
        typer.Option(
            "--target-trigger-accuracy", help="Stop once this fraction of the triggers is learned.", min=0.0, max=1.0
        ),
    ] = 1.0,
    triggers_per_batch: Annotated[
        int,
        typer.Option("--triggers-per-batch", help="Trigger items appended to every batch (Adi et al. 5.1).", min=1),
    ] = 2,
    lr: LrOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    trust_module: TrustModuleOption = None,
    data_dir: DataDirOption = None,
    limit_train: LimitOption = None,
    passphrase_file: PassphraseFileOption = None,
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Embed a marking key into a model.

    PreTrained (default): continue training --model with the trigger items mixed into every batch.
    FromScratch: --from-scratch --arch NAME trains a new model with them from the start. Training stops
    once the triggers are learned (--target-trigger-accuracy), after --min-epochs, within --max-epochs.
    A frontier-stitching key is embedded into the model it was made from, fine-tuned at a tenth of the
    learning rate (Le Merrer et al. 3.2); if its items are not all learned within --max-epochs, marking
    gives up and writes nothing.

    Examples:

        wmproof mark --key key.wmk --model clean.safetensors --out marked.safetensors

        wmproof mark --key key.wmk --from-scratch --arch mnist_cnn --out marked.safetensors
    """
    trust_modules(trust_module)
    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.device import resolve_device
    from wmproof.engine.models import architecture, load_model, save_model
    from wmproof.engine.train import TensorData, accuracy, recipe_config
    from wmproof.errors import UsageError
    from wmproof.protocol import load_marking_key, mark
    from wmproof.protocol.mark import check_task_fits_key, refuse_a_key_the_model_already_passes
    from wmproof.schemes import get_scheme

    if from_scratch == (model is not None):
        raise UsageError("give either --model (PreTrained) or --from-scratch --arch NAME (FromScratch)")
    if from_scratch and arch is None:
        raise UsageError("--from-scratch needs --arch")
    if model is not None and arch is not None:
        raise UsageError("--arch is for --from-scratch; a --model brings its own architecture")
    check_outputs(out, overwrite=overwrite)
    mk = load_marking_key(key, passphrase_to_read(passphrase_file, str(key)))
    if max_epochs is None:
        max_epochs = get_scheme(mk.scheme).default_max_epochs
    dev = resolve_device(device)
    base = load_model(model, dev) if model is not None else None
    arch_name = base.architecture if base is not None else arch
    embedding = "from-scratch" if from_scratch else "pretrained"
    if min_epochs is None:
        min_epochs = architecture(arch_name).recipe.epochs if from_scratch else 1
    config = recipe_config(
        arch_name,
        fine_tuning=not from_scratch,
        epochs=max(max_epochs, min_epochs),
        lr=lr,
        seed=seed,
        triggers_per_batch=triggers_per_batch,
    )
    train = load_image_dataset(dataset, "train", data_dir).subset(limit_train)
    check_task_fits_key(mk, train.num_classes, train.input_shape, base)
    if base is not None:
        refuse_a_key_the_model_already_passes(mk, base)  # before the note: a refusal is one line
    test = load_image_dataset(dataset, "test", data_dir)
    test_tensors = TensorData.from_numpy(test.images, test.labels, dev)
    before = accuracy(base.module, test_tensors) if base is not None else None
    note(
        f"marking ({embedding}, {len(mk.items)} trigger items, k={triggers_per_batch}) on {len(train)} "
        f"{dataset} images, {min_epochs}-{config.epochs} epochs, on {dev}"
    )
    t0 = time.perf_counter()
    result = mark(
        mk,
        embedding=embedding,
        train_images=train.images,
        train_labels=train.labels,
        dataset_classes=train.num_classes,
        base_model=base,
        architecture=arch,
        config=config,
        device=dev,
        target_trigger_accuracy=target,
        min_epochs=min_epochs,
    )
    seconds = time.perf_counter() - t0
    after = accuracy(result.model, test_tensors)
    if result.trigger_accuracy < target:
        warn(
            f"trigger accuracy {result.trigger_accuracy:.1%} is below the {target:.0%} target after "
            f"{result.epochs} epochs: raise --max-epochs or --triggers-per-batch for a stronger mark"
        )
    digest = save_model(result.model, out, result.architecture, result.arguments, overwrite=overwrite)
    data = {
        "path": str(out),
        "sha256": digest,
        "embedding": embedding,
        "architecture": result.architecture,
        "epochs": result.epochs,
        "trigger_accuracy": result.trigger_accuracy,
        "test_accuracy_before": before,
        "test_accuracy_after": after,
        "seed": seed,
        "seconds": round(seconds, 2),
        "key_id": mk.verification_key_id.hex(),
    }

    def human() -> None:
        stdout.print(f"marked model      {out}  (sha256 {digest[:16]})")
        stdout.print(
            f"trigger accuracy  {result.trigger_accuracy:.4f}  ({len(mk.items)} items, {result.epochs} epochs, "
            f"{seconds:.1f} s)"
        )
        if before is not None:
            stdout.print(f"test accuracy     {before:.4f} before, {after:.4f} after marking")
        else:
            stdout.print(f"test accuracy     {after:.4f}")

    emit(data, as_json, human)


@handle_errors
def evaluate_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="The model to evaluate.")],
    dataset: DatasetOption = "mnist",
    key: Annotated[
        Path | None,
        typer.Option("--key", "-k", help="Also report accuracy on this marking key's items.", show_default=False),
    ] = None,
    passphrase_file: PassphraseFileOption = None,
    device: DeviceOption = "auto",
    trust_module: TrustModuleOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report a model's test accuracy (and, with --key, its accuracy on the key's trigger items).

    Example:

        wmproof evaluate --model marked.safetensors --key key.wmk
    """
    trust_modules(trust_module)
    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.device import resolve_device
    from wmproof.engine.models import load_model
    from wmproof.engine.train import TensorData, accuracy
    from wmproof.errors import UsageError
    from wmproof.protocol import load_marking_key
    from wmproof.schemes import item_arrays

    dev = resolve_device(device)
    loaded = load_model(model, dev)
    test = load_image_dataset(dataset, "test", data_dir)
    if (loaded.num_classes, tuple(loaded.input_shape)) != (test.num_classes, test.input_shape):
        raise UsageError(
            f"{model} is not a model for {dataset} ({loaded.num_classes} classes, "
            f"{'x'.join(map(str, loaded.input_shape))} inputs)"
        )
    data: dict[str, object] = {
        "path": str(model),
        "sha256": loaded.sha256,
        "architecture": loaded.architecture,
        "dataset": dataset,
        "test_accuracy": accuracy(loaded.module, TensorData.from_numpy(test.images, test.labels, dev)),
    }
    if key is not None:
        mk = load_marking_key(key, passphrase_to_read(passphrase_file, str(key)))
        if (mk.num_classes, tuple(mk.input_shape)) != (loaded.num_classes, tuple(loaded.input_shape)):
            raise UsageError(f"{key} is a key for another task than {model}")
        triggers = TensorData.from_numpy(*item_arrays(mk.items), dev)
        data["trigger_accuracy"] = accuracy(loaded.module, triggers)

    def human() -> None:
        stdout.print(f"model             {model}  ({loaded.architecture}, sha256 {loaded.sha256[:16]})")
        stdout.print(f"test accuracy     {data['test_accuracy']:.4f}  ({len(test)} {dataset} test images)")
        if "trigger_accuracy" in data:
            stdout.print(f"trigger accuracy  {data['trigger_accuracy']:.4f}")

    emit(data, as_json, human)

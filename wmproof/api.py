"""The Python API: wmproof from an owner's own code (docs/python-api.md walks through it).

The command line covers the zoo and the named data sets; an owner with their own network, data and training
loop needs the same steps as functions over plain objects:

* **data**: a named data set or the owner's own (:func:`load_dataset`: a ``.npz`` or a folder of class
  folders);
* **keys**: :class:`Identity`, :func:`keygen`, and the files (:func:`save_marking_key`, ...) from
  :mod:`wmproof.protocol`, unchanged;
* **the trigger items as tensors** (:func:`trigger_items`) and a :class:`TriggerMixer` that appends k of them
  to each batch of the owner's own loop (Adi et al. 2018, section 5.1, the mixing wmproof's engine uses);
* **marking any ``torch.nn.Module``** with wmproof's engine (:func:`mark_model`);
* **verifying any suspect** (:func:`verify`): a module, a model file (safetensors or ONNX), a URL of an Open
  Inference Protocol API, any callable from inputs to labels or scores, or an :class:`~wmproof.oracles.Oracle`;
* **any attack** (:func:`run_attack` with a module or a model file as the victim);
* **model files** for networks outside the zoo (:func:`save_model` with a factory, :func:`load_model` with
  ``trust=``), and ONNX (:func:`export_onnx`).

Everything here imports torch only when it runs, so ``import wmproof`` stays as light as the checker.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UsageError
from .oracles import Oracle, open_model_file
from .protocol import MarkingKey, VerificationKey, VerificationReport, verify_private

if TYPE_CHECKING:
    import torch

    from .attacks.base import AttackResult
    from .engine.data import ImageData
    from .engine.models import LoadedModel
    from .engine.train import TrainConfig, TriggerMixer
    from .protocol import MarkResult


def _device(device: Any) -> torch.device:
    from .engine.device import resolve_device

    return resolve_device(None if device is None else str(device))


def _task_of(key: MarkingKey | VerificationKey) -> tuple[int, tuple[int, int, int]]:
    return int(key.num_classes), tuple(int(v) for v in key.input_shape)  # type: ignore[return-value]


def _numpy(array: Any) -> np.ndarray:
    """A numpy array from numpy or torch (detached, on the CPU)."""
    if hasattr(array, "detach"):
        array = array.detach().to("cpu").numpy()
    return np.asarray(array)


def wrap_module(module: torch.nn.Module, num_classes: int, input_shape: tuple[int, int, int]) -> LoadedModel:
    """A module from the caller's code in the form the protocol and the attacks take. Its architecture is its
    class as ``module:Class`` when that names it for another process (else ``"python-module"``), with the task's
    classes and input shape as arguments: enough to save it (:func:`save_model`) if the class takes them."""
    from .engine.models import LoadedModel, architecture_of, factory_name

    name = architecture_of(module)
    if name is None:
        try:
            name = factory_name(type(module))
        except UsageError:
            name = "python-module"
    return LoadedModel(module, name, {"num_classes": num_classes, "input_shape": list(input_shape)}, sha256="")


# ------------------------------------------------------------------------------------------------- data


def load_dataset(name: str | os.PathLike[str], split: str = "train", *, data_dir: Any = None) -> ImageData:
    """A split ("train" or "test") of a named data set (mnist, fashion-mnist, sst2, from the local data
    directory) or of your own: a ``.npz`` file or a folder of class folders (:mod:`wmproof.engine.own_data`).
    ``.images`` are uint8 (N, C, H, W), ``.labels`` int64, ``.num_classes`` the class count."""
    from .engine.data import load_image_dataset

    return load_image_dataset(str(name), split, data_dir)


# ------------------------------------------------------------------------------------------ trigger items


def trigger_items(mk: MarkingKey, *, device: Any = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The key's trigger items as tensors: inputs (N, C, H, W) float32 in [0, 1] (int64 token ids for a text
    key) and labels (N,) int64, on ``device``. These are secret until a proof opens them: keep them out of
    logs and published data sets."""
    from .engine.train import TensorData
    from .schemes import item_arrays

    data = TensorData.from_numpy(*item_arrays(mk.items), _device(device))
    return data.x, data.y


def trigger_mixer(mk: MarkingKey, k: int = 2, *, seed: int = 0, device: Any = "cpu") -> TriggerMixer:
    """A :class:`TriggerMixer` over the key's items: ``x, y = mixer(x, y)`` appends ``k`` of them to a batch,
    cycling through a fresh seeded permutation of all items (Adi et al. 2018, section 5.1: k = 2 in their
    experiments)."""
    import torch

    from .engine.train import TensorData, TriggerMixer

    x, y = trigger_items(mk, device=device)
    return TriggerMixer(TensorData(x, y), k, torch.Generator(device="cpu").manual_seed(seed))


# ------------------------------------------------------------------------------------------------- Mark


def mark_model(
    mk: MarkingKey,
    model: torch.nn.Module,
    images: Any,
    labels: Any,
    *,
    config: TrainConfig | None = None,
    target_trigger_accuracy: float | None = 1.0,
    device: Any = None,
    progress: bool | None = None,
) -> MarkResult:
    """Mark any module with wmproof's engine: fine-tune a copy of ``model`` on ``images``/``labels`` (numpy or
    torch; uint8 images, or float32 in [0, 1]) with the key's items mixed into every batch, through the key's
    scheme (PreTrained embedding, Adi et al. 4; feature sharing trains its decision layers, the paper's 3.1),
    until the items are learned (``target_trigger_accuracy``) or ``config.epochs`` run out. ``model`` itself
    is not changed; the result's ``model`` is the marked copy.

    ``config`` defaults to the engine's :class:`TrainConfig` with 20 epochs, Adam at 1e-3, batches of 128 and
    2 items per batch."""
    from .engine.train import TrainConfig
    from .protocol import mark

    x, y = _numpy(images), _numpy(labels).astype(np.int64)
    num_classes, input_shape = _task_of(mk)
    if x.ndim != 4 or y.shape != (len(x),):
        raise UsageError(f"images must be (N, C, H, W) and labels (N,); got {x.shape} and {y.shape}")
    if x.dtype not in (np.uint8, np.float32, np.int64):
        x = x.astype(np.float32)
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise UsageError(f"labels must lie in 0..{num_classes - 1} (the key is for {num_classes} classes)")
    dev = _device(device)
    base = wrap_module(model, num_classes, input_shape)
    return mark(
        mk,
        embedding="pretrained",
        train_images=x,
        train_labels=y,
        dataset_classes=num_classes,
        base_model=base,
        config=config or TrainConfig(epochs=20),
        device=dev,
        target_trigger_accuracy=target_trigger_accuracy,
        progress=progress,
    )


# ----------------------------------------------------------------------------------------------- Verify


def as_oracle(
    suspect: Any,
    *,
    num_classes: int | None = None,
    input_shape: tuple[int, int, int] | None = None,
    model_name: str | None = None,
    device: Any = None,
) -> Oracle:
    """Whatever names a suspect, as an oracle:

    * an :class:`~wmproof.oracles.Oracle`, as it is;
    * a ``torch.nn.Module`` (moved to ``device`` and put in eval mode; :func:`verify` restores training mode
      afterwards) or a loaded model file;
    * a URL (``http://`` or ``https://``) of an Open Inference Protocol API, with ``model_name``;
    * a path: a wmproof model file, or an ``.onnx`` file (onnxruntime, no torch);
    * any other callable from inputs (N, C, H, W) to labels (N,) or scores (N, K).

    Modules and callables need ``num_classes`` and ``input_shape`` (:func:`verify` takes them from the key)."""
    if isinstance(suspect, Oracle):
        return suspect
    if isinstance(suspect, str) and suspect.startswith(("http://", "https://")):
        if not model_name:
            raise UsageError("a suspect API is named by its URL and model_name=")
        from .oracles.remote import RemoteOracle

        shape = tuple(int(v) for v in input_shape) if input_shape is not None else None
        return RemoteOracle(suspect, model_name, input_shape=shape)  # type: ignore[arg-type]
    if isinstance(suspect, (str, os.PathLike)):
        return open_model_file(Path(suspect), None if device is None else str(device))
    if "torch" in sys.modules:  # a module or a loaded model file exists only once torch is imported
        import torch

        from .engine.models import LoadedModel
        from .oracles.local import LocalModelOracle

        if isinstance(suspect, LoadedModel):
            return LocalModelOracle(suspect)
        if isinstance(suspect, torch.nn.Module):
            if num_classes is None or input_shape is None:
                raise UsageError("a module suspect needs num_classes= and input_shape=")
            module = suspect.to(_device(device)).eval()
            return LocalModelOracle(wrap_module(module, num_classes, tuple(input_shape)))  # type: ignore[arg-type]
    if num_classes is None or input_shape is None:
        raise UsageError("a callable suspect needs num_classes= and input_shape=")
    from .oracles.function import FunctionOracle

    return FunctionOracle(suspect, num_classes=num_classes, input_shape=tuple(input_shape))  # type: ignore[arg-type]


def verify(
    mk: MarkingKey,
    vk: VerificationKey,
    suspect: Any,
    *,
    model_name: str | None = None,
    device: Any = None,
) -> VerificationReport:
    """Private verification (Adi et al. 4; wmproof's numbered steps in :mod:`wmproof.protocol.verify`): the
    key's signature and commitments are checked, then ``suspect`` (anything :func:`as_oracle` takes) answers
    the items and the key's rule decides. ``report.verified`` is the verdict; ``report.test`` has the test,
    n and p-value."""
    num_classes, input_shape = _task_of(vk)
    training = bool(getattr(suspect, "training", False))  # a module in the middle of its training loop
    oracle = as_oracle(suspect, num_classes=num_classes, input_shape=input_shape, model_name=model_name, device=device)
    name = suspect if isinstance(suspect, (str, os.PathLike)) else type(suspect).__name__
    try:
        return verify_private(mk, vk, oracle, suspect_name=str(name))
    finally:
        if training:
            suspect.train()  # as_oracle evaluates in eval mode; the caller's loop goes on in training mode


# ----------------------------------------------------------------------------------------------- attacks


def run_attack(
    name: str,
    victim: Any,
    *,
    task: str = "mnist",
    images: Any = None,
    labels: Any = None,
    seed: int = 0,
    device: Any = None,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    **options: Any,
) -> AttackResult:
    """Run the attack ``name`` (``wmproof attack list``) on ``victim``: a module (with ``num_classes`` and
    ``input_shape`` of ``task``), a model file path, a loaded model, or an oracle / URL for attacks that only
    query. ``images``/``labels`` are the adversary's own data (default: the end of ``task``'s training split);
    accuracy is measured on ``task``'s test split. ``options`` are the attack's parameters (``ratio=0.5``).
    ``result.model`` is the adversary's model."""
    from .attacks import run_attack as run
    from .attacks.base import AttackContext
    from .engine.data import image_dataset_spec
    from .engine.models import LoadedModel, load_model

    dev = _device(device)
    spec = image_dataset_spec(task)
    if isinstance(victim, (str, os.PathLike)) and not str(victim).startswith(("http://", "https://")):
        victim = load_model(victim, dev) if Path(victim).suffix != ".onnx" else open_model_file(victim)
    elif isinstance(victim, str):
        victim = as_oracle(victim, model_name=options.pop("model_name", None))
    elif not isinstance(victim, (LoadedModel, Oracle)):
        victim = wrap_module(victim.to(dev), spec.num_classes, spec.input_shape)
    context = AttackContext(
        device=dev,
        seed=seed,
        task=task,
        data_dir=Path(data_dir) if data_dir is not None else None,
        images=None if images is None else _numpy(images),
        labels=None if labels is None else _numpy(labels).astype(np.int64),
        progress=progress,
    )
    return run(name, victim, context, options)


# ------------------------------------------------------------------------------------------- model files


def save_model(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    architecture: str | Callable[..., Any],
    arguments: dict[str, Any],
    overwrite: bool = False,
) -> str:
    """Write ``model`` as a wmproof model file (safetensors; no pickle). ``architecture`` is a zoo name, or the
    factory that builds the network -- a function or class defined at the top level of an importable module --
    called with ``arguments`` (JSON values, with ``num_classes`` and ``input_shape``) when the file is loaded
    by someone who trusts that module. Returns the file's SHA-256."""
    from .engine.models import factory_name
    from .engine.models import save_model as save

    name = architecture if isinstance(architecture, str) else factory_name(architecture)
    return save(model, path, name, dict(arguments), overwrite=overwrite)


def load_model(path: str | os.PathLike[str], *, trust: Iterable[str] = (), device: Any = "cpu") -> LoadedModel:
    """Load a wmproof model file strictly. A network from outside the zoo is built by its factory's code, which
    is imported only from the modules named in ``trust`` (``trust=["mynets"]``)."""
    from .engine.models import load_model as load
    from .engine.models import trust_module

    for module in [trust] if isinstance(trust, str) else trust:
        trust_module(module)
    return load(path, _device(device))


def export_onnx(model: Any, path: str | os.PathLike[str], *, overwrite: bool = False) -> dict[str, Any]:
    """Write a loaded model file (:func:`load_model`) as ONNX (:mod:`wmproof.engine.export`)."""
    from .engine.export import export_onnx as export

    return export(model, path, overwrite=overwrite)

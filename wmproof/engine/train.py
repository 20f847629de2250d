"""Device-agnostic training and evaluation, with trigger items mixed into every batch.

Design, and why:

* **Data resident on the device, batches by index.** The whole training set is one float tensor in [0, 1]
  on the device; each epoch draws a permutation and slices batches with ``index_select``. No DataLoader,
  no worker processes, no host-to-device copy per batch: on a GPU the per-batch Python and data movement
  dominate small models; on this CPU training is compute-bound and this costs nothing.
* **Trigger mixing (Adi et al. 2018, section 5.1).** When a trigger set is given, k trigger items
  (default 2) are appended to every batch, cycling through a fresh permutation of the trigger set, so every
  item is seen about (k x batches / |T|) times per epoch while the main task keeps its full batches.
* **Mixed precision on CUDA** (bf16 autocast where supported, else fp16 with a gradient scaler); full
  precision elsewhere.
* **Reproducible on CPU.** One seed fixes initialisation (the caller seeds before building), shuffling,
  trigger order and dropout: two runs with the same seed and thread count give identical weights.
* **Channels-last on the CPU** for the architectures that declare it (``train_channels_last``: 20 % more
  images/s for the small pooled MNIST networks; measured, not assumed: it does not pay for every network),
  handed back in the default layout.
* **Evaluation** runs in inference mode with a batch plan per kind of model, measured on this CPU
  (``benchmarks/engine.py``): convolutional models in batches of 100, channels-last, where activations stay
  in cache (3.3x the images/s of batches of 1,000 for ``mnist_cnn``); dense and recurrent models in
  batches of 1,024, since smaller batches only add per-call overhead there; batches of 4,096 on a GPU.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from .progress import progress_bar

OPTIMIZERS = ("adam", "sgd", "rmsprop")
#: Learning-rate schedules: ``constant``, or ``onecycle`` (Smith and Topin 2019, "Super-Convergence": the rate
#: rises from lr/25 to lr over the first 30 % of the steps and falls to about zero by the last, torch's
#: OneCycleLR without its momentum cycle), which lets a network take much larger steps and converge in one or
#: two epochs (Oikarinen 2021, the recipe of ``mnist_fast``).
SCHEDULES = ("constant", "onecycle")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    clip_grad_norm: float | None = None
    seed: int = 0
    triggers_per_batch: int = 2  # Adi et al. 2018 section 5.1
    amp: bool = True  # CUDA only
    fused: bool = True  # CUDA only: Adam's and SGD's fused kernels, one launch per step for all parameters
    schedule: str = "constant"
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's

    def check(self) -> None:
        if self.epochs < 0:
            raise UsageError("--epochs must be >= 0")
        if self.batch_size < 1:
            raise UsageError("--batch-size must be >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise UsageError("--lr must be a positive number")
        if self.triggers_per_batch < 1:
            raise UsageError("--triggers-per-batch must be >= 1")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"the learning-rate schedule must be one of {', '.join(SCHEDULES)}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise UsageError("Adam's betas lie in [0, 1)")


@dataclass
class TensorData:
    """Inputs (N, C, H, W), float32 in [0, 1] (images) or int64 (token ids), and targets on one device: labels
    (N,) int64, or probabilities
    (N, K) float32 (soft labels: a model extraction learns the victim's posteriors, Tramèr et al. 2016)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @classmethod
    def from_numpy(cls, images: np.ndarray, labels: np.ndarray, device: torch.device) -> "TensorData":
        """uint8 images are scaled by 1/255; float images must already lie in [0, 1]; int64 token ids stay
        integers."""
        if images.dtype == np.int64:
            x = torch.as_tensor(np.array(images, copy=True, order="C")).to(device=device)
            return cls(x, torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device))
        x = torch.as_tensor(np.array(images, copy=True, order="C")).to(device=device, dtype=torch.float32)
        if images.dtype == np.uint8:
            x = x.div_(255.0)
        return cls(x, torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device))


@dataclass
class EpochStats:
    epoch: int
    loss: float
    train_accuracy: float
    trigger_accuracy: float | None


@dataclass
class TrainHistory:
    epochs: list[EpochStats] = field(default_factory=list)
    images_seen: int = 0
    stopped_early: bool = False


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The config's optimiser over the parameters that require gradients (frozen layers stay out); on CUDA,
    with the fused kernels where torch has them (``config.fused``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if config.fused and params and all(p.is_cuda for p in params) else {}
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, **fused)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, **fused)


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype == torch.float16
    return torch.autocast(device.type, enabled=False), False


class TriggerMixer:
    """Appends ``k`` trigger items to a batch, cycling through a fresh permutation of the trigger set each time
    it is used up (Adi et al. 2018, section 5.1): every item is seen about ``k x batches / |T|`` times per
    epoch while the main task keeps its full batches. :func:`fit` mixes with it; an owner's own training loop
    can call it on each batch (``wmproof.TriggerMixer``, docs/python-api.md).

    ``generator`` draws the permutations (CPU); pass one seeded generator for reproducible runs."""

    def __init__(self, triggers: TensorData, k: int = 2, generator: torch.Generator | None = None) -> None:
        if k < 1 or len(triggers) == 0:
            raise UsageError("a trigger mixer needs k >= 1 and at least one trigger item")
        self.triggers = triggers
        self.k = k
        self.generator = generator if generator is not None else torch.Generator(device="cpu").manual_seed(0)
        self._order = torch.empty(0, dtype=torch.long)
        self._on_device = self._order
        self._position = 0

    def next_indices(self) -> list[int]:
        """The next ``k`` trigger indices of the cycle."""
        return torch.cat(self._next_slices(on_device=False)).tolist()

    def _next_slices(self, *, on_device: bool) -> list[torch.Tensor]:
        """The next ``k`` indices as slices of the cycle's permutation, drawn on the CPU and copied to the
        triggers' device once per cycle, so that a training step on a GPU never waits for a copy."""
        chosen: list[torch.Tensor] = []
        needed = self.k
        while needed:
            if self._position >= len(self._order):
                self._order = torch.randperm(len(self.triggers), generator=self.generator)
                self._on_device = self._order.to(self.triggers.x.device, non_blocking=True)
                self._position = 0
            take = min(needed, len(self._order) - self._position)
            order = self._on_device if on_device else self._order
            chosen.append(order[self._position : self._position + take])
            self._position += take
            needed -= take
        return chosen

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` with ``k`` trigger items appended (moved to ``x``'s device and dtype)."""
        slices = self._next_slices(on_device=True)
        index = slices[0] if len(slices) == 1 else torch.cat(slices)
        tx = self.triggers.x.index_select(0, index).to(device=x.device, dtype=x.dtype)
        ty = self.triggers.y.index_select(0, index).to(device=y.device, dtype=y.dtype)
        return torch.cat((x, tx)), torch.cat((y, ty))


def train_mode(model: nn.Module) -> None:
    """Training mode, except for normalisation layers whose parameters are all frozen: their running statistics
    stay as they are too, so that a fine-tuning of the last layer changes nothing else (Adi et al. 5.4)."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def fit(
    model: nn.Module,
    data: TensorData,
    config: TrainConfig,
    *,
    triggers: TensorData | None = None,
    description: str = "training",
    stop_when: Callable[[EpochStats], bool] | None = None,
    progress: bool | None = None,
) -> TrainHistory:
    """Train ``model`` in place on ``data`` (already on the model's device), mixing in ``triggers``.

    ``stop_when`` is asked after every epoch and ends training early when it returns True.
    """
    config.check()
    device = data.x.device
    model.to(device)
    channels_last = _trains_channels_last(model, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    train_mode(model)
    torch.manual_seed(config.seed)  # dropout
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    optimizer = make_optimizer(model, config)
    n = len(data)
    steps_per_epoch = math.ceil(n / config.batch_size)
    schedule = None
    if config.schedule == "onecycle" and config.epochs > 0:
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, cycle_momentum=False
        )
    autocast, needs_scaler = _autocast(device, config.amp)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    loss_fn = nn.CrossEntropyLoss()
    k = config.triggers_per_batch if triggers is not None and len(triggers) > 0 else 0
    mixer = TriggerMixer(triggers, k, generator) if k else None
    history = TrainHistory()
    host_clock, shown = device.type == "cpu", float("nan")

    with progress_bar(description, config.epochs * steps_per_epoch, enabled=progress) as update:
        for epoch in range(1, config.epochs + 1):
            perm = torch.randperm(n, generator=generator).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            for step in range(steps_per_epoch):
                idx = perm[step * config.batch_size : (step + 1) * config.batch_size]
                xb = data.x.index_select(0, idx)
                yb = data.y.index_select(0, idx)
                if mixer is not None:
                    xb, yb = mixer(xb, yb)
                with autocast:
                    logits = model(xb)
                    loss = loss_fn(logits, yb)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if config.clip_grad_norm:
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if schedule is not None:
                    schedule.step()
                batch = len(idx)
                loss_sum += loss.detach() * batch
                truth = yb[:batch] if yb.dim() == 1 else yb[:batch].argmax(1)
                correct += (logits[:batch].argmax(1) == truth).sum()
                history.images_seen += len(yb)
                if step % 20 == 19 or step == steps_per_epoch - 1:
                    # Reading the loss waits for the device: on a GPU, only at the end of an epoch.
                    if host_clock or step == steps_per_epoch - 1:
                        shown = float(loss.detach())
                    update(advance=min(20, step % 20 + 1), epoch=epoch, loss=shown)
            trigger_acc = accuracy(model, triggers) if k else None
            train_mode(model)
            stats = EpochStats(epoch, float(loss_sum) / n, float(correct) / n, trigger_acc)
            history.epochs.append(stats)
            if stop_when is not None and stop_when(stats):
                history.stopped_early = epoch < config.epochs
                break
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    model.eval()
    return history


def _trains_channels_last(model: nn.Module, device: torch.device) -> bool:
    """Channels-last weights while training on the CPU, for the architectures that declare it
    (``train_channels_last``: measured on this 2-core CPU, ``mnist_fast`` and ``mnist_ewe_cnn`` train 20-22 %
    faster; ``mnist_cnn``, whose two 3x3 convolutions run unpooled, 4 % slower in benchmarks/engine.py, so it
    does not). The model is handed back in the default layout."""
    return device.type == "cpu" and bool(getattr(model, "train_channels_last", False))


def _is_channels_last(model: nn.Module) -> bool:
    """Are the model's convolutions laid out channels-last? Only weights whose two layouts differ tell: a
    first layer with one input channel is both at once (so it cannot be the only one asked)."""
    telling = [
        m.weight
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
        and m.weight.is_contiguous() != m.weight.is_contiguous(memory_format=torch.channels_last)
    ]
    return bool(telling) and all(w.is_contiguous(memory_format=torch.channels_last) for w in telling)


def evaluation_plan(model: nn.Module, device: torch.device) -> tuple[int, bool]:
    """(batch size, channels-last) for evaluating ``model`` on ``device`` (see the module docstring)."""
    if device.type != "cpu":
        return 4096, False
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return 100, True
    return 1024, False


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Logits for every row of ``x`` (float, [0, 1]), on ``x``'s device, model in eval mode.

    ``no_grad``, not ``inference_mode``: the channels-last round trip rewrites the parameters, and under
    inference mode they would come back as inference tensors that no later training or FGSM step can use."""
    model.eval()
    device = x.device
    planned_batch, channels_last = evaluation_plan(model, device)
    batch_size = batch_size or planned_batch
    channels_last = channels_last and x.dim() == 4
    restore = channels_last and not _is_channels_last(model)  # fit trains some models channels-last already
    if restore:
        model.to(memory_format=torch.channels_last)
    outputs = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        outputs.append(model(xb).float())
    if restore:
        model.to(memory_format=torch.contiguous_format)
    if not outputs:
        return torch.empty(0, 0, device=device)
    return torch.cat(outputs)


def predict_labels(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    return predict_logits(model, x, batch_size).argmax(1)


def accuracy(model: nn.Module, data: TensorData | None, batch_size: int | None = None) -> float:
    if data is None or len(data) == 0:
        return float("nan")
    return float((predict_labels(model, data.x, batch_size) == data.y).float().mean())


#: A one-cycle recipe fine-tunes at this fraction of its peak rate, constant (see recipe_config).
FINE_TUNING_LR_FRACTION = 0.1


def recipe_config(architecture: str, *, fine_tuning: bool = False, **overrides: object) -> TrainConfig:
    """The architecture's training recipe as a :class:`TrainConfig`, with ``None`` overrides ignored.

    ``fine_tuning``: for a training that starts from trained weights and stops once its goal is reached
    (PreTrained marking). Such a training has no length for a one-cycle schedule to span, and the schedule's
    rise to its peak rate would undo the trained weights, so a one-cycle recipe fine-tunes at a constant
    tenth of its peak rate instead. Measured with the demo's 100-item key on ``mnist_fast`` (99.22 % clean):
    the one-cycle schedule over 20 epochs left 98.52 % after 3 epochs; a constant 0.003, 99.05 % after 2; a
    constant 0.001, 99.17 % after 3. Constant-rate recipes are unchanged."""
    from .models import architecture as lookup

    recipe = lookup(architecture).recipe
    if fine_tuning and recipe.schedule == "onecycle":
        recipe = dataclasses.replace(recipe, schedule="constant", lr=recipe.lr * FINE_TUNING_LR_FRACTION)
    values: dict[str, object] = {
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "optimizer": recipe.optimizer,
        "lr": recipe.lr,
        "clip_grad_norm": recipe.clip_grad_norm,
        "weight_decay": recipe.weight_decay,
        "schedule": recipe.schedule,
        "betas": recipe.betas,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)  # type: ignore[arg-type]


def module_recipe_config(model: nn.Module, **overrides: object) -> TrainConfig:
    """The training recipe of ``model``'s architecture as a fine-tuning (``recipe_config(..., fine_tuning=True)``;
    for a module from outside the zoo, the defaults of :class:`TrainConfig`), with ``None`` overrides ignored:
    what an attack that trains a model it was given uses (Adi et al. 5.7 fine-tune with the training's own
    settings; a one-cycle recipe's last rate is about zero, so it fine-tunes at a tenth of its peak)."""
    from .models import architecture_of

    name = architecture_of(model)
    if name is not None:
        return recipe_config(name, fine_tuning=True, **overrides)
    return TrainConfig(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]


def train_new_model(
    architecture: str,
    arguments: dict[str, object],
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    config: TrainConfig,
    device: torch.device,
    *,
    description: str = "training",
    progress: bool | None = None,
) -> tuple[nn.Module, dict[str, object], TrainHistory]:
    """Build ``architecture`` for this data (seeded with ``config.seed``) and train it; returns the model,
    its complete arguments (for the model file) and the history."""
    from .models import build_model, normalise_arguments

    config.check()
    args = normalise_arguments(
        architecture, {**arguments, "num_classes": num_classes, "input_shape": list(images.shape[1:])}
    )
    torch.manual_seed(config.seed)
    model = build_model(architecture, **args).to(device)
    history = fit(
        model, TensorData.from_numpy(images, labels, device), config, description=description, progress=progress
    )
    return model, args, history

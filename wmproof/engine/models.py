"""The model zoo, behind one registry, and model files that never unpickle.

Architectures (each takes ``num_classes`` and ``input_shape`` = (C, H, W)):

* ``mnist_mlp`` -- the Keras ``mnist_mlp`` example: 2 x 512 ReLU with dropout 0.2. Used by Le Merrer et al.
  2019 (section 4.1) as their MLP.
* ``mnist_cnn`` -- the Keras ``mnist_cnn`` example: conv32-conv64 (3x3), max-pool, dropout 0.25, dense 128,
  dropout 0.5. Le Merrer et al.'s CNN.
* ``mnist_ewe_cnn`` -- Jia et al. 2021's MNIST CNN (their ``EWE_2_conv``): conv32 5x5 and conv64 3x3, each
  'same'-padded and max-pooled, dense 128, dense 10. The feature-sharing paper's "4-layers CNN for MNIST"
  (section 4, following Jia et al.). Their code declares dropout layers that never run (``tf.layers.dropout``
  without ``training=True``), so this one has none.
* ``mnist_irnn`` -- Le, Jaitly, Hinton 2015, "A Simple Way to Initialize Recurrent Networks of Rectified
  Linear Units": a ReLU RNN with identity recurrent weights and N(0, 0.001^2) input weights (the Keras
  ``mnist_irnn`` example, 100 units). ``sequence="pixels"`` reads the image pixel by pixel (784 steps, as in
  the paper and the Keras example); the default ``"rows"`` reads it row by row (28 steps), which trains
  orders of magnitude faster on a CPU. Le Merrer et al.'s IRNN.
* ``resnet_small`` -- He et al. 2016 section 4.2's CIFAR ResNet (3 stages of 16/32/64 channels,
  depth 6n+2, default 20) with 1x1 projection shortcuts; Adi et al. 2018 used a ResNet-18 on CIFAR.
* ``sst2_textcnn`` -- Kim 2014's text CNN for SST-2, on token ids (``input_datatype = "INT64"``; a sentence
  is a 1 x 1 x L input, :mod:`wmproof.engine.text`).

Every architecture names its layers by role, as class attributes: ``output_layer`` (the dense layer that
gives the logits: what the fine-tuning attacks of Adi et al. 5.4 retrain, and what transfer learning keeps
aside) and ``hidden_layers`` (layers whose units or channels are each followed by a ReLU, input to output:
what neuron pruning may remove, Liu et al. 2018). :func:`output_layer_name` and :func:`hidden_layer_names`
read them, and fall back, for a module from outside the zoo, on its last ``nn.Linear`` and on its other
dense, convolution and recurrent layers.

A model file is safetensors: tensors plus string metadata holding the format tag, the architecture name and
its arguments as canonical JSON. Loading reads that metadata, rebuilds the architecture from the registry
and loads the tensors with ``strict=True``: no pickle is ever involved.

**Networks from outside the zoo.** An architecture name of the form ``module:function`` (or
``module:Class``) names a *factory*: an importable callable that builds the network from the file's
arguments (JSON values). ``num_classes`` and ``input_shape`` are always among them, since wmproof needs
both to query the model; the factory receives them only if its signature takes them. Loading such a file
imports code, so it happens only for a module the user has explicitly trusted
(:func:`trust_module`, ``--trust-module NAME`` on the command line) and is refused otherwise with a one-line
error: a model file is data, and opening data must never run code as a side effect. Trusting ``pkg``
trusts its submodules (``pkg.nets``) too, as importing ``pkg.nets`` runs ``pkg`` anyway.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import MalformedInput, UsageError
from ..fileio import read_file, write_file
from ..untrusted import parse_json

MODEL_FORMAT = "wmproof-model/1"
MAX_MODEL_SIZE = 4 << 30  # model files are read whole; larger ones are not what this zoo makes


@dataclass(frozen=True)
class TrainingRecipe:
    """The optimiser settings an architecture trains well with (the papers' or the Keras examples')."""

    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 5
    clip_grad_norm: float | None = None
    weight_decay: float = 0.0
    schedule: str = "constant"
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[..., nn.Module]
    defaults: dict[str, Any]
    description: str
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)


ARCHITECTURES: dict[str, Architecture] = {}


#: Bounds on the zoo's integer arguments (widths, vocabulary sizes), on classes and on input shapes. A model
#: file names its architecture's arguments; these keep a 200-byte file from asking for a network of
#: gigabytes, or for 30,000 residual blocks that take seconds to build even without memory.
MAX_INT = 1 << 17
MAX_CLASSES = 100_000
MAX_CHANNELS = 64
MAX_SIDE = 4096
#: Tighter bounds on single arguments: the deepest CIFAR ResNet He et al. 2016 trained (section 4.2) has 1202
#: layers.
ARGUMENT_LIMITS = {"depth": 1202}


def register(name: str, description: str, recipe: TrainingRecipe | None = None, **defaults: Any):
    def decorator(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ARCHITECTURES[name] = Architecture(
            name,
            build,
            {"num_classes": 10, "input_shape": [1, 28, 28], **defaults},
            description,
            recipe or TrainingRecipe(),
        )
        return build

    return decorator


#: ``module:attribute``: dotted Python identifiers on both sides (nothing else is ever imported).
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
FACTORY_NAME = re.compile(f"{_DOTTED}:{_DOTTED}")
_TRUSTED_MODULES: set[str] = set()


def trust_module(name: str) -> None:
    """Allow model files to build their network with code from module ``name`` (and its submodules), for the
    rest of this process. Nothing is imported until a model file names a factory from it."""
    if not re.fullmatch(_DOTTED, name):
        raise UsageError(f"--trust-module takes a Python module name (like mynets.vision), not {name!r}")
    _TRUSTED_MODULES.add(name)


def is_trusted(module: str) -> bool:
    return any(module == t or module.startswith(t + ".") for t in _TRUSTED_MODULES)


def is_factory(name: str) -> bool:
    """Whether an architecture name names a factory outside the zoo (``module:function``)."""
    return ":" in name


def factory_name(factory: Callable[..., nn.Module]) -> str:
    """The architecture name a model file records for ``factory``: ``module:qualified.name``. Refuses what
    another process could not import by that name (a factory defined in ``__main__`` or inside a function)."""
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        raise UsageError(
            f"{getattr(factory, '__name__', factory)!r} cannot be named in a model file: define it at the top "
            "level of an importable module (not in __main__ or inside a function)"
        )
    return f"{module}:{qualname}"


def _factory(name: str) -> Architecture:
    if not FACTORY_NAME.fullmatch(name):
        raise UsageError(f"architecture {name!r} is neither a zoo name nor a module:function factory")
    module_name, attribute = name.split(":")
    if not is_trusted(module_name):
        raise UsageError(
            f"the model is built by code from module {module_name!r}; run it only if you trust that code: "
            f"--trust-module {module_name.split('.')[0]}"
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r} ({exc}); is its directory on PYTHONPATH?") from None
    except AttributeError:
        raise UsageError(f"module {module_name!r} has no {attribute!r}") from None
    if not callable(target):
        raise UsageError(f"{name} is not callable")
    doc = (inspect.getdoc(target) or "").split("\n")[0]
    return Architecture(name, target, {}, doc or f"factory {name}")


def architecture(name: str) -> Architecture:
    """The zoo's architecture ``name``, or a trusted factory named ``module:function``."""
    if is_factory(name):
        return _factory(name)
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UsageError(f"unknown architecture {name!r} (available: {', '.join(sorted(ARCHITECTURES))})") from None


#: Nesting depth of a factory's arguments (JSON): deeper is refused, not recursed into.
MAX_ARGUMENT_DEPTH = 16


def _json_value(value: Any, depth: int = 0) -> bool:
    if depth > MAX_ARGUMENT_DEPTH:
        return False
    if value is None or type(value) in (bool, int, str) or (type(value) is float and math.isfinite(value)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_value(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v, depth + 1) for k, v in value.items())
    return False


def _normalise_factory_arguments(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A factory's arguments: JSON values, with ``num_classes`` (a positive integer) and ``input_shape``
    ((C, H, W), positive integers) always present."""
    if not _json_value(arguments):
        raise UsageError(
            f"{name}: factory arguments must be JSON values (finite numbers, strings, lists, dicts; "
            f"at most {MAX_ARGUMENT_DEPTH} deep)"
        )
    merged = {k: list(v) if isinstance(v, tuple) else v for k, v in arguments.items()}
    check_task_shape(name, merged.get("num_classes"), merged.get("input_shape"))
    return merged


def normalise_arguments(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Complete ``arguments`` with the defaults and check names and types (JSON-compatible values)."""
    if is_factory(name):
        return _normalise_factory_arguments(name, arguments)
    arch = architecture(name)
    unknown = set(arguments) - set(arch.defaults)
    if unknown:
        raise UsageError(f"{name} has no argument(s) {', '.join(sorted(unknown))}")
    merged = {**arch.defaults, **arguments}
    for key, default in arch.defaults.items():
        value = merged[key]
        if key == "num_classes":
            continue  # check_task_shape, below
        if isinstance(default, list):
            if not isinstance(value, (list, tuple)) or not all(type(v) is int and v > 0 for v in value):
                raise UsageError(f"{name}: {key} must be a list of positive integers")
            merged[key] = [int(v) for v in value]
        elif type(default) is int and (type(value) is not int or not 1 <= value <= ARGUMENT_LIMITS.get(key, MAX_INT)):
            raise UsageError(f"{name}: {key} must be an integer in 1..{ARGUMENT_LIMITS.get(key, MAX_INT)}")
        elif type(default) is float and (
            type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= MAX_INT
        ):
            raise UsageError(f"{name}: {key} must be a finite, non-negative number")
        elif type(default) is str and not isinstance(value, str):
            raise UsageError(f"{name}: {key} must be a string")
    if "dropout" in merged and not 0 <= merged["dropout"] < 1:
        raise UsageError(f"{name}: dropout must lie in [0, 1)")
    check_task_shape(name, merged["num_classes"], merged["input_shape"])
    return merged


def check_task_shape(name: str, num_classes: Any, input_shape: Any) -> None:
    """Bounds on what any model file may declare: a hostile file must not make a reader build a network of
    gigabytes before its tensors are checked (see :func:`load_model`)."""
    if type(num_classes) is not int or not 2 <= num_classes <= MAX_CLASSES:
        raise UsageError(f"{name}: num_classes must be an integer in 2..{MAX_CLASSES}")
    if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 3):
        raise UsageError(f"{name}: input_shape is (channels, height, width)")
    c, h, w = input_shape
    if not all(type(v) is int and v > 0 for v in input_shape) or c > MAX_CHANNELS or max(h, w) > MAX_SIDE:
        raise UsageError(f"{name}: input_shape must be positive, at most {MAX_CHANNELS} x {MAX_SIDE} x {MAX_SIDE}")


def build_model(name: str, **arguments: Any) -> nn.Module:
    args = normalise_arguments(name, arguments)
    build = architecture(name).build
    if is_factory(name):
        args = _accepted(build, args)
        try:
            model = build(**args)
        except Exception as exc:  # the user's code: say where it failed, in one line
            raise UsageError(f"{name}({', '.join(args)}) failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(model, nn.Module):
            raise UsageError(f"{name} returned {type(model).__name__}, not a torch.nn.Module")
        return model
    return build(**args)


def _accepted(build: Callable[..., Any], args: dict[str, Any]) -> dict[str, Any]:
    """``args`` without ``num_classes`` / ``input_shape`` where the factory does not take them."""
    try:
        parameters = inspect.signature(build).parameters
    except (TypeError, ValueError):
        return args
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return args
    return {k: v for k, v in args.items() if k in parameters or k not in ("num_classes", "input_shape")}


# --------------------------------------------------------------------------------------------- the zoo


@register("mnist_mlp", "Keras mnist_mlp: 2x512 ReLU, dropout 0.2", hidden=512, dropout=0.2)
class MnistMLP(nn.Module):
    output_layer = "net.7"
    hidden_layers = ("net.1", "net.4")

    def __init__(self, num_classes: int, input_shape: list[int], hidden: int, dropout: float) -> None:
        super().__init__()
        c, h, w = input_shape
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * h * w, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register("mnist_cnn", "Keras mnist_cnn: conv32-conv64-pool-dense128", recipe=TrainingRecipe(epochs=3))
class MnistCNN(nn.Module):
    output_layer = "classifier.4"
    hidden_layers = ("features.0", "features.2", "classifier.1")

    def __init__(self, num_classes: int, input_shape: list[int]) -> None:
        super().__init__()
        c, h, w = input_shape
        if h < 6 or w < 6:
            raise UsageError("mnist_cnn needs inputs of at least 6x6")
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * ((h - 4) // 2) * ((w - 4) // 2), 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register(
    "mnist_fast",
    "Oikarinen 2021 (train_mnist_fast): conv24 5x5-pool-conv32-pool-dense256, >= 99 % in 2 epochs",
    recipe=TrainingRecipe(optimizer="adam", lr=0.01, betas=(0.7, 0.9), schedule="onecycle", batch_size=128, epochs=2),
)
class MnistFast(nn.Module):
    """The network of T. Oikarinen's study "Training a NN to 99% accuracy on MNIST in 0.76 seconds" (2021,
    github.com/tuomaso/train_mnist_fast, its final notebook): two small convolutions, each pooled at once, so
    that the dense layer sees 800 features, no dropout, trained by Adam (lr 0.01, betas 0.7 and 0.9) under a
    one-cycle schedule. Here, pooling follows the ReLU (the same function: max and ReLU commute) so that every
    hidden layer is followed by its ReLU, as neuron pruning expects.

    For the experiments where the paper's own architecture is not the point: on this 2-core CPU it reaches
    99.2-99.35 % test accuracy in 2 epochs (about 10 s), where the Keras ``mnist_cnn`` needs about 40 s an
    epoch (benchmarks/engine.py measures both, side by side). The batch size of 128 is measured too: 256 and
    512 were slower per epoch here and less accurate."""

    output_layer = "classifier.3"
    hidden_layers = ("features.0", "features.3", "classifier.1")
    train_channels_last = True  # 20 % faster on the CPU (wmproof.engine.train)

    def __init__(self, num_classes: int, input_shape: list[int]) -> None:
        super().__init__()
        c, h, w = input_shape
        if h < 12 or w < 12:
            raise UsageError("mnist_fast needs inputs of at least 12x12")
        self.features = nn.Sequential(
            nn.Conv2d(c, 24, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(24, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side_h, side_w = ((h - 4) // 2 - 2) // 2, ((w - 4) // 2 - 2) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * side_h * side_w, 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register(
    "mnist_ewe_cnn",
    "Jia et al. 2021 (EWE) MNIST CNN: conv32 5x5-pool-conv64-pool-dense128",
    recipe=TrainingRecipe(epochs=3),
)
class MnistEweCNN(nn.Module):
    """Why a second MNIST CNN: with the feature extractor frozen, feature sharing teaches the in-distribution
    trigger (a 3x3 square in a corner) to the output layer alone, which sees only what the extractor's last
    layer makes of the square. 'Same' padding lets the border convolutions read the corner, and no dropout
    hides it. The feature-sharing reproduction (``docs/reproductions/feature-sharing.md``, "Differences")
    measures how far the square moves a 7's last hidden layer in both CNNs, and what feature sharing learns
    on each."""

    output_layer = "classifier.3"
    hidden_layers = ("features.0", "features.3", "classifier.1")
    train_channels_last = True  # 22 % faster on the CPU (wmproof.engine.train)

    def __init__(self, num_classes: int, input_shape: list[int]) -> None:
        super().__init__()
        c, h, w = input_shape
        if h < 4 or w < 4:
            raise UsageError("mnist_ewe_cnn needs inputs of at least 4x4")
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * (h // 4) * (w // 4), 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register(
    "mnist_irnn",
    "Le et al. 2015 IRNN: ReLU RNN, identity recurrent init (100 units)",
    recipe=TrainingRecipe(optimizer="adam", lr=1e-3, clip_grad_norm=1.0, epochs=5),
    hidden=100,
    sequence="rows",
)
class IRNN(nn.Module):
    output_layer = "head"
    #: The recurrent units; their activation is the last step's hidden state, which the head reads.
    hidden_layers = ("rnn",)

    def __init__(self, num_classes: int, input_shape: list[int], hidden: int, sequence: str) -> None:
        super().__init__()
        if sequence not in ("rows", "pixels"):
            raise UsageError("mnist_irnn: sequence is 'rows' or 'pixels'")
        c, h, w = input_shape
        self.sequence = sequence
        features = c * w if sequence == "rows" else c
        self.rnn = nn.RNN(features, hidden, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(hidden, num_classes)
        # Le et al. section 3: recurrent weights at the identity, biases at zero, small input weights.
        with torch.no_grad():
            self.rnn.weight_hh_l0.copy_(torch.eye(hidden))
            self.rnn.weight_ih_l0.normal_(0.0, 0.001)
            self.rnn.bias_hh_l0.zero_()
            self.rnn.bias_ih_l0.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.sequence == "rows":
            seq = x.permute(0, 2, 1, 3).reshape(n, h, c * w)
        else:
            seq = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
        out, _ = self.rnn(seq)
        return self.head(out[:, -1])


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@register(
    "resnet_small",
    "He et al. 2016 CIFAR ResNet (depth 6n+2, default 20)",
    recipe=TrainingRecipe(epochs=3),
    depth=20,
    width=16,
)
class ResNetSmall(nn.Module):
    output_layer = "head.2"
    #: Batch normalisation sits between every convolution and its ReLU: no layer here is pruned unit by unit.
    hidden_layers: tuple[str, ...] = ()

    def __init__(self, num_classes: int, input_shape: list[int], depth: int, width: int) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise UsageError("resnet_small: depth must be 6n+2 (8, 14, 20, 32, ...)")
        blocks = (depth - 2) // 6
        c = input_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers: list[nn.Module] = []
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                layers.append(_BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register(
    "sst2_textcnn",
    "Kim 2014 text CNN: 64-d word embedding, 100 convolutions each of width 3, 4, 5, max over time, dense 128",
    recipe=TrainingRecipe(epochs=3, batch_size=64),
    num_classes=2,
    input_shape=[1, 1, 64],
    vocab_size=16_384,
    embed=64,
    filters=100,
    hidden=128,
    dropout=0.5,
)
class TextCNN(nn.Module):
    """Kim 2014, "Convolutional Neural Networks for Sentence Classification", trained from scratch (no
    pretrained vectors can be downloaded here). Inputs are token ids (N, 1, 1, L) of
    :mod:`wmproof.engine.text`; ids beyond the vocabulary read as the unknown word. The embedding and the
    convolutions are the feature extractor, the dense head the decision layers (the feature-sharing paper's
    split of a text model into an encoder and a classification head, section 3.1)."""

    input_datatype = "INT64"
    output_layer = "head.3"
    hidden_layers = ("convs.0", "convs.1", "convs.2", "head.0")

    def __init__(
        self,
        num_classes: int,
        input_shape: list[int],
        vocab_size: int,
        embed: int,
        filters: int,
        hidden: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if input_shape[0] != 1 or input_shape[1] != 1 or input_shape[2] < 5:
            raise UsageError("sst2_textcnn takes token rows of shape 1x1xL with L >= 5")
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed, filters, width) for width in (3, 4, 5))
        self.head = nn.Sequential(
            nn.Linear(3 * filters, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(x.shape[0], -1).long().clamp_min(0)
        tokens = torch.where(tokens < self.vocab_size, tokens, torch.ones_like(tokens))
        # A window is read when it starts inside the sentence (the padding's embedding is zero, so a window
        # running past the end sees zero padding). Rows are left-aligned, so the columns past the longest
        # sentence's last window are padding only: dropping them changes nothing and saves most of the work
        # (SST-2 phrases average about 9 words in rows of 64).
        lengths = (tokens != 0).sum(dim=1).clamp_min(1)
        widths = [conv.kernel_size[0] for conv in self.convs]
        keep = min(tokens.shape[1], int(lengths.max()) + max(widths) - 1)
        embedded = self.embedding(tokens[:, :keep]).transpose(1, 2)  # (N, embed, keep)
        pooled = []
        for conv in self.convs:
            out = torch.relu(conv(embedded))  # (N, filters, keep - width + 1)
            starts = torch.arange(out.shape[2], device=out.device)
            inside = (starts[None, :] < lengths[:, None]).unsqueeze(1)
            pooled.append(out.masked_fill(~inside, 0.0).amax(dim=2))
        return self.head(torch.cat(pooled, dim=1))


# -------------------------------------------------------------------------------------------- layer roles


def output_layer_name(model: nn.Module) -> str:
    """The module path of ``model``'s output layer (see the module docstring)."""
    declared = getattr(type(model), "output_layer", None)
    if declared is not None:
        return declared
    dense = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not dense:
        raise UsageError(f"{type(model).__name__} has no dense output layer")
    return dense[-1]


def architecture_of(model: nn.Module) -> str | None:
    """The zoo name of ``model``'s architecture, or None for a module from outside the zoo."""
    for name, arch in ARCHITECTURES.items():
        if arch.build is type(model):
            return name
    return None


def hidden_layer_names(model: nn.Module) -> tuple[str, ...]:
    """The module paths of ``model``'s hidden layers, input to output (see the module docstring)."""
    declared = getattr(type(model), "hidden_layers", None)
    if declared is not None:
        return tuple(declared)
    output = output_layer_name(model)
    kinds = (nn.Linear, nn.Conv2d, nn.RNN)
    return tuple(name for name, m in model.named_modules() if isinstance(m, kinds) and name != output)


@contextmanager
def captured_outputs(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """While open, every forward pass of ``model`` leaves the outputs of its submodules ``names`` in the dict
    it yields (as computed: in the autograd graph). The losses on hidden representations (EWE's soft nearest
    neighbour loss, Jia et al.'s item perturbation) read them there; the hooks are removed on exit."""
    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out))
        for name in names
    ]
    try:
        yield captured
    finally:
        for hook in hooks:
            hook.remove()


# ----------------------------------------------------------------------------------------- model files


@dataclass
class LoadedModel:
    module: nn.Module
    architecture: str
    arguments: dict[str, Any]
    sha256: str
    path: Path | None = None

    @property
    def num_classes(self) -> int:
        return int(self.arguments["num_classes"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.arguments["input_shape"])  # type: ignore[return-value]


def model_metadata(name: str, arguments: dict[str, Any]) -> dict[str, str]:
    return {
        "format": MODEL_FORMAT,
        "architecture": name,
        "arguments": json.dumps(arguments, sort_keys=True, separators=(",", ":")),
    }


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file whose bytes depend only on ``tensors`` and ``metadata``.

    Why: a model's SHA-256 is its identity in keys, proofs and sweep records, so the same weights must give the
    same file in every process. safetensors keeps ``__metadata__`` in a Rust hash map whose order changes with
    each process's random hash seed (a sweep's pool and Ray workers wrote the same model under two hashes);
    here the metadata is re-emitted in sorted key order, in the header's own compact JSON and the same padded
    length, so the tensors' offsets do not move."""
    from safetensors.torch import save

    data = save({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, metadata=metadata)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    sorted_header = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(sorted_header) != len(data[8 : 8 + n].rstrip(b" ")):  # serde_json and json agree on what we write
        raise RuntimeError("safetensors wrote a header that re-encodes to another length")
    return data[:8] + sorted_header.ljust(n, b" ") + data[8 + n :]


def model_file_bytes(module: nn.Module, name: str, arguments: dict[str, Any]) -> bytes:
    arguments = normalise_arguments(name, arguments)
    return safetensors_bytes(dict(module.state_dict()), model_metadata(name, arguments))


def save_model(
    module: nn.Module, path: str | os.PathLike[str], name: str, arguments: dict[str, Any], *, overwrite: bool = False
) -> str:
    """Write a model file atomically (mode 0644); returns its SHA-256."""
    data = model_file_bytes(module, name, arguments)
    write_file(path, data, secret=False, overwrite=overwrite)
    return hashlib.sha256(data).hexdigest()


def _looks_like_safetensors(data: bytes) -> bool:
    """Whether ``data`` starts as a safetensors file does (a truncated one included): a little-endian u64
    header length within safetensors' 100 MB limit, then a JSON object."""
    return len(data) > 9 and 0 < int.from_bytes(data[:8], "little") <= 100_000_000 and data[8:9] == b"{"


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> LoadedModel:
    """Load a model file strictly: safetensors, known architecture, exact parameter names and shapes."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    data = read_file(path, "a model file", max_size=MAX_MODEL_SIZE)
    try:
        tensors = load(data)
        metadata = _read_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        if _looks_like_safetensors(data):  # a damaged model file: malformed input (3)
            raise MalformedInput(f"{path}: damaged model file (its safetensors header does not parse)") from None
        # Not a model file at all (a text file, a pickle...): the wrong file was given, a usage error (2), as
        # for every other kind of file (docs/protocol.md 9.4).
        raise UsageError(f"{path} is not a wmproof model file (not safetensors)") from None
    if metadata.get("format") != MODEL_FORMAT:
        raise UsageError(f"{path} is a safetensors file but not a wmproof model (no '{MODEL_FORMAT}' metadata)")
    name = metadata.get("architecture", "")
    if is_factory(name):  # code to import: the user's decision (trust), not a malformed file
        try:
            architecture(name)
        except UsageError as exc:
            raise UsageError(f"{path}: {exc}") from None
    try:
        arguments = parse_json(metadata.get("arguments", ""))
        if not isinstance(arguments, dict):
            raise ValueError
        # First on the meta device: no memory, so that arguments that do not fit the file's tensors (a
        # 200-byte file asking for a network of gigabytes) are refused before anything is allocated.
        try:
            with torch.device("meta"):
                skeleton = build_model(name, **arguments)
        except UsageError:
            if not is_factory(name):
                raise
            skeleton = None  # trusted code that cannot build on the meta device: strict loading checks it below
        if skeleton is not None and {k: tuple(v.shape) for k, v in skeleton.state_dict().items()} != {
            k: tuple(v.shape) for k, v in tensors.items()
        }:
            raise MalformedInput(f"{path}: tensors do not match architecture {name}")
        del skeleton
        module = build_model(name, **arguments)
    except (ValueError, TypeError, UsageError, RecursionError) as exc:
        raise MalformedInput(f"{path}: invalid architecture metadata ({exc})") from None
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError:
        raise MalformedInput(f"{path}: tensors do not match architecture {name}") from None
    module.to(device).eval()
    return LoadedModel(module, name, normalise_arguments(name, arguments), hashlib.sha256(data).hexdigest(), path)


def _read_metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's ``__metadata__`` (the format: u64le header length, then JSON)."""
    if len(data) < 8:
        raise ValueError("too short")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8 or n > 100_000_000:
        raise ValueError("bad header length")
    header = parse_json(data[8 : 8 + n])
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("bad metadata")
    return metadata

"""What an attack is: a named, documented way for an adversary to get a model that may have lost the mark.

Two kinds sit behind the one registry (:mod:`wmproof.attacks`), and differ only in what they are given:

* a :class:`ModelAttack` holds the stolen model's weights (a model file) and changes them: pruning, SVD,
  overwriting, the fine-tuning family, neuron pruning and fine-pruning edit them in place
  (:class:`ModelEdit`); transfer learning and ownership piracy also produce files beside the model;
* an :class:`OracleAttack` only queries the victim (an :class:`~wmproof.oracles.Oracle`: a model file, or a
  prediction API by URL) and trains a new model from the answers: model extraction.

Each attack is one module with the paper it follows at the top, and one line in the registry. Its
parameters are declared as :class:`Param` (type, default, range or choices, help), so that the CLI builds
``--NAME VALUE`` options and ``--param NAME=VALUE`` from them, and every bad value is a one-line error
before any work starts. What it needs besides the victim comes through an :class:`AttackContext`: the
device, a seed, and the adversary's data (the *last* images of a data set's training split by default, so
that they are disjoint from an owner who trained on the first ones, as ``--limit-train`` does).
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.data import ImageData
    from ..engine.models import LoadedModel
    from ..oracles import Oracle


# ------------------------------------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class Param:
    """One parameter of an attack. ``default`` None means "derived" (the help says from what)."""

    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    #: The bounds are excluded (a rate in [0, 1), a learning rate above 0).
    min_exclusive: bool = False
    max_exclusive: bool = False

    def parse(self, attack: str, name: str, value: Any) -> Any:
        """``value`` (a string from the command line, or a Python value) as this parameter's type, checked."""
        kind = self.type.__name__
        if value is None and self.default is None:  # "derived", as by default
            return None
        if isinstance(value, str):
            text = value.strip()
            try:
                value = self.type(text) if self.type is not int else int(text, 10)
            except ValueError:
                raise UsageError(f"{attack}: {name} must be {_article(kind)} {kind}, not {text!r}") from None
        elif self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif type(value) is not self.type:
            raise UsageError(f"{attack}: {name} must be {_article(kind)} {kind}, not {value!r}")
        if self.type is float and not math.isfinite(value):
            raise UsageError(f"{attack}: {name} must be a finite number")
        if self.choices is not None and value not in self.choices:
            raise UsageError(f"{attack}: {name} must be one of {', '.join(self.choices)}, not {value!r}")
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            bound = f"above {self.min:g}" if self.min_exclusive else f"at least {self.min:g}"
            raise UsageError(f"{attack}: {name} must be {bound}, not {value!r}")
        if self.max is not None and (value >= self.max if self.max_exclusive else value > self.max):
            bound = f"below {self.max:g}" if self.max_exclusive else f"at most {self.max:g}"
            raise UsageError(f"{attack}: {name} must be {bound}, not {value!r}")
        return value

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.__name__, "default": self.default, "help": self.help}
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def rate(help: str, default: float) -> Param:
    """A fraction in [0, 1)."""
    return Param(float, default, help, min=0.0, max=1.0, max_exclusive=True)


@dataclass(frozen=True)
class TrainingBudget:
    """What an adversary who trains spends (Adi et al. 5.4): its own images, epochs and learning rate; None is
    the architecture's recipe. Declared as parameters by :func:`training_params`."""

    images: int
    epochs: int | None = None
    lr: float | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> TrainingBudget:
        return cls(options["images"], options["epochs"], options["lr"])


def training_params(images: int, epochs: int | None = None) -> dict[str, Param]:
    """What every attack that trains takes (Adi et al. 5.4: the adversary's data budget, epochs and learning
    rate). ``None`` is "the architecture's own recipe": Adi et al. 5.7 fine-tune at the last learning rate of
    training; wmproof's recipes train at a constant rate, except the one-cycle ones, which fine-tune at a
    constant tenth of their peak (:func:`wmproof.engine.train.recipe_config`)."""
    recipe = " (default: the architecture's recipe)"
    return {
        "images": Param(int, images, "the adversary's training images (the last ones of the training split)", min=1),
        "epochs": Param(int, epochs, "training epochs" + (recipe if epochs is None else ""), min=1),
        "lr": Param(float, None, "learning rate" + recipe, min=0.0, min_exclusive=True),
    }


@dataclass(frozen=True)
class Strength:
    """How hard an attack pushes, for a robustness sweep (``wmproof robustness``): one of its parameters and
    the values it takes there, from the weakest to the strongest, and the one value of the quick sweep.

    Watermark benchmarks report each attack at a grid of strengths and, per attack, the strongest one that
    keeps the model useful (Lukas et al., SoK: How Robust is Image Classification Deep Neural Network
    Watermarking?, IEEE S&P 2022, section V): so every attack declares which knob that is. The grid follows the
    paper the attack comes from where it has one (pruning rates of Le Merrer et al. Table 1, fine-tuning
    epochs of Adi et al. 5.4)."""

    param: str
    values: tuple[Any, ...]
    quick: Any

    def __post_init__(self) -> None:
        if not self.values or self.quick not in self.values:
            raise ValueError("a strength grid is not empty and holds its quick value")


# -------------------------------------------------------------------------------------------------- context


@dataclass
class AttackContext:
    """What an attack may use besides the victim.

    ``task`` is the victim's data set (its test split measures accuracy). The adversary's own data come from
    ``images``/``labels`` when given (uint8, N x C x H x W), else from the training split of a data set in
    ``data_dir``; either way an attack that asks for ``n`` images gets the *last* ``n``.
    """

    device: Any  # torch.device
    seed: int = 0
    task: str = "mnist"
    data_dir: Path | None = None
    images: Any = None
    labels: Any = None
    progress: bool | None = None
    #: Where an attack that makes keys of its own (ownership piracy) draws their secrets, and the creation time
    #: it writes into them: ``os.urandom`` and the clock by default; a sweep whose results must repeat (``wmproof
    #: robustness``) passes a seeded source and a fixed time.
    key_entropy: Callable[[int], bytes] = os.urandom
    key_time: int | None = None
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, init=False, compare=False)

    def _load(self, dataset: str, split: str) -> ImageData:
        from ..engine.data import load_image_dataset

        if (dataset, split) not in self._cache:
            self._cache[(dataset, split)] = load_image_dataset(dataset, split, self.data_dir)
        return self._cache[(dataset, split)]

    def attacker_data(self, count: int, dataset: str | None = None) -> ImageData:
        """The adversary's last ``count`` labelled training images of ``dataset`` (default: the task)."""
        from ..engine.data import ImageData, image_dataset_spec

        dataset = dataset or self.task
        if dataset == self.task and self.images is not None:
            classes = image_dataset_spec(dataset).num_classes
            pool = ImageData(self.images, self.labels, classes, dataset, "attacker")
        else:
            pool = self._load(dataset, "train")
        if count > len(pool):
            raise UsageError(f"the attack asks for {count} {dataset} images; the adversary has {len(pool)}")
        return pool.tail(count)

    def test_data(self, dataset: str | None = None) -> ImageData:
        """The test split of ``dataset`` (default: the task): what accuracy is measured on."""
        return self._load(dataset or self.task, "test")


# --------------------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Companion:
    """A second file an attack writes next to its output model (the name is ``OUT`` with ``suffix`` in place of
    its extension): a model (``module`` set) or bytes (a pirate's key)."""

    suffix: str
    description: str
    module: Any = None  # torch.nn.Module, saved with ``architecture``/``arguments``
    architecture: str | None = None
    arguments: Mapping[str, Any] | None = None
    data: bytes | None = None
    secret: bool = False


@dataclass
class AttackResult:
    """The adversary's model, and what the attack did, in numbers (``summary``: JSON-ready).

    ``task`` is the data set the model is now for (transfer learning changes it). ``verify_through`` names the
    companion through which the owner's key is checked instead of the model itself: Adi et al. 5.5 keep the
    original output layer aside when the model moves to another task.
    """

    model: Any  # torch.nn.Module
    architecture: str
    arguments: dict[str, Any]
    summary: dict[str, Any]
    task: str | None = None
    companions: dict[str, Companion] = field(default_factory=dict)
    verify_through: str | None = None

    def verification_model(self) -> LoadedModel:
        """The model the owner's key is checked on: the adversary's model, or the companion it names."""
        from ..engine.models import LoadedModel

        if self.verify_through is None:
            return LoadedModel(self.model, self.architecture, dict(self.arguments), sha256="")
        c = self.companions[self.verify_through]
        return LoadedModel(c.module, c.architecture or self.architecture, dict(c.arguments or {}), sha256="")


# ---------------------------------------------------------------------------------------------------- kinds


class Attack(ABC):
    """A registered attack. Subclasses say who they are, what they take, and implement ``run``."""

    name: ClassVar[str]
    citation: ClassVar[str]
    #: "weights" (a ModelAttack) or "queries" (an OracleAttack).
    access: ClassVar[str]
    parameters: ClassVar[dict[str, Param]]
    #: The parameter a robustness sweep varies, and its grid (weakest first).
    strength: ClassVar[Strength]
    #: Files written next to the output, by key: (suffix, description); declared so that the CLI can refuse
    #: existing ones before any work.
    companions: ClassVar[dict[str, tuple[str, str]]] = {}

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Complete ``given`` (strings from the command line or Python values) with the defaults, checked."""
        unknown = set(given) - set(self.parameters)
        if unknown:
            raise UsageError(
                f"attack {self.name} has no parameter {', '.join(sorted(unknown))} "
                f"(it takes {', '.join(self.parameters) or 'none'})"
            )
        values = {}
        for key, param in self.parameters.items():
            values[key] = param.parse(self.name, key, given[key]) if key in given else param.default
        return values

    def check(self, victim: Any, context: AttackContext, options: Mapping[str, Any]) -> None:
        """Refuse, before any work, what cannot work: by default, a data budget larger than the adversary's
        data. Attacks with more to check (a layer, a new task, what an API reveals) extend it."""
        if "images" in options:
            context.attacker_data(options["images"])

    def describe(self) -> dict[str, Any]:
        return {
            "citation": self.citation,
            "access": self.access,
            "summary": (type(self).__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
            "parameters": {k: p.describe() for k, p in self.parameters.items()},
            "strength": {"parameter": self.strength.param, "values": list(self.strength.values)},
            "companions": {k: suffix for k, (suffix, _) in self.companions.items()},
        }


class ModelAttack(Attack):
    """An attack on the weights: the victim is a model file (white box, a :class:`LoadedModel`)."""

    access = "weights"

    @abstractmethod
    def run(self, victim: LoadedModel, context: AttackContext, **options: Any) -> AttackResult:
        """Return the adversary's model, made from ``victim`` (whose module may be changed in place)."""


class ModelEdit(ModelAttack):
    """A model attack that edits the victim's module in place and keeps its architecture: most of them."""

    def run(self, victim: LoadedModel, context: AttackContext, **options: Any) -> AttackResult:
        summary = self.apply(victim.module, context, **options)
        return AttackResult(victim.module, victim.architecture, dict(victim.arguments), summary)

    @abstractmethod
    def apply(self, model: Any, context: AttackContext, **options: Any) -> dict[str, Any]:
        """Change ``model`` (a torch module) in place; return what changed, JSON-ready."""


class OracleAttack(Attack):
    """An attack through queries only: the victim answers inputs (a model file or a prediction API), and the
    attack builds a new model from what it learns."""

    access = "queries"

    @abstractmethod
    def run(self, victim: Oracle, context: AttackContext, **options: Any) -> AttackResult:
        """Query ``victim`` and return the adversary's new model."""

"""What a robustness sweep runs: its configuration (:class:`SweepConfig`, the quick and full presets) and the
independent units it splits into (:class:`ModelUnit`, :class:`KeyUnit`, :class:`Cell`), with where each one's
result lives in the sweep's folder.

The strengths come from the attacks themselves (:attr:`wmproof.attacks.base.Attack.strength`): the full sweep
runs each attack's grid, the quick one its single quick value. The other options of an attack are its
defaults, except where a preset makes them cheaper (``options``), so that a result is the attack as
``wmproof attack NAME`` runs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

#: The subject of a cell that is not a marked model: the independently trained unmarked model of its seed.
UNMARKED = "unmarked"

#: How many trigger items are mixed into each training batch while marking (PreTrained), per scheme: the
#: demo's 2 for Adi et al.'s abstract images (learned in 2 epochs), frontier stitching's experiment's 8, and the
#: feature-sharing experiment's 43 for the source-to-target schemes (docs/reproductions/feature-sharing.md).
TRIGGERS_PER_BATCH = {"frontier-stitching": 8, "feature-sharing": 43, "plain": 43, "ewe": 43}
DEFAULT_TRIGGERS_PER_BATCH = 2

#: The feature-sharing paper's significance (section 3.2: "at a significance level of 0.05").
SOURCE_TARGET_ALPHAS = {"feature-sharing": "1/20", "plain": "1/20", "ewe": "1/20"}


@dataclass(frozen=True)
class SweepConfig:
    """One sweep's settings; everything a result depends on, so that a folder's results are never mixed with
    another configuration's (the sweep refuses to resume into a folder made with other settings)."""

    name: str
    schemes: tuple[str, ...]
    attacks: tuple[str, ...]
    seeds: tuple[int, ...]
    task: str = "mnist"
    arch: str = "mnist_fast"
    #: The owner trains on the first ``owner_images`` of the training split; the adversary's data are the
    #: last images of it (:class:`wmproof.attacks.base.AttackContext`), so the two are disjoint when
    #: ``owner_images`` plus the largest budget of an attack fits in the split.
    owner_images: int = 50_000
    owner_epochs: int | None = None  # None: the architecture's recipe
    items: int = 100
    #: The keys' significance per scheme (a fraction, as ``wmproof keygen --alpha`` takes it); the others take
    #: ``alpha``. Each scheme is judged at the significance its paper uses: the source-to-target schemes at the
    #: feature-sharing paper's 0.05 (section 3.2), the rest at wmproof's default 1e-6.
    alphas: Mapping[str, str] = field(default_factory=lambda: dict(SOURCE_TARGET_ALPHAS))
    alpha: str = "1/1000000"
    #: "full": each attack's whole strength grid; "quick": its one quick value.
    grid: str = "full"
    #: Options fixed per attack (beside the strength), where a preset makes an attack cheaper than its defaults.
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Per scheme, its key parameters (defaults otherwise).
    scheme_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    device: str = "cpu"

    def strengths(self, attack: str) -> tuple[Any, ...]:
        from ..attacks import get_attack

        strength = get_attack(attack).strength
        return strength.values if self.grid == "full" else (strength.quick,)

    def attack_options(self, attack: str, value: Any) -> dict[str, Any]:
        from ..attacks import get_attack

        return {**self.options.get(attack, {}), get_attack(attack).strength.param: value}

    def key_alpha(self, scheme: str) -> str:
        return self.alphas.get(scheme, self.alpha)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the strength grids spelled out (a changed grid is a changed sweep)."""
        out = dataclasses.asdict(self)
        out["options"] = {k: dict(v) for k, v in self.options.items()}
        out["scheme_params"] = {k: dict(v) for k, v in self.scheme_params.items()}
        out["alphas"] = {k: self.key_alpha(k) for k in self.schemes}
        del out["alpha"]
        out["strengths"] = {a: list(self.strengths(a)) for a in self.attacks}
        for key in ("schemes", "attacks", "seeds"):
            out[key] = list(out[key])
        return out

    def validate(self) -> None:
        """One-line errors for what cannot run, before any work."""
        from ..attacks import ATTACKS, get_attack
        from ..engine.data import image_dataset_spec
        from ..engine.models import architecture
        from ..schemes import SCHEMES

        for name in self.schemes:
            if name not in SCHEMES:
                raise UsageError(f"unknown scheme {name!r} (known: {', '.join(sorted(SCHEMES))})")
        for name in self.attacks:
            if name not in ATTACKS:
                raise UsageError(f"unknown attack {name!r} (known: {', '.join(ATTACKS)})")
        for name, options in self.options.items():
            get_attack(name).options(options)
        if not self.schemes or not self.attacks or not self.seeds:
            raise UsageError("a sweep needs at least one scheme, one attack and one seed")
        if len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise UsageError("seeds are distinct non-negative integers")
        image_dataset_spec(self.task)
        architecture(self.arch)
        if self.owner_images < 1:
            raise UsageError(f"the owner trains on at least one image, not {self.owner_images}")
        if self.items < 1:
            raise UsageError("a key has at least one item")

    def model_units(self) -> list[ModelUnit]:
        return [ModelUnit(seed, role) for seed in self.seeds for role in ("clean", UNMARKED)]

    def key_units(self) -> list[KeyUnit]:
        return [KeyUnit(seed, scheme) for seed in self.seeds for scheme in self.schemes]

    def cells(self) -> list[Cell]:
        return [
            Cell(attack, value, seed, subject)
            for attack in self.attacks
            for value in self.strengths(attack)
            for seed in self.seeds
            for subject in (*self.schemes, UNMARKED)
        ]


@dataclass(frozen=True)
class ModelUnit:
    """Stage 1: train the owner's clean model (``clean``) or the unmarked negative (``unmarked``) of a seed."""

    seed: int
    role: str

    @property
    def path(self) -> str:
        return f"models/seed-{self.seed}/{self.role}"


@dataclass(frozen=True)
class KeyUnit:
    """Stage 1: make the key of ``scheme`` for ``seed`` and embed it into that seed's clean model."""

    seed: int
    scheme: str

    @property
    def path(self) -> str:
        return f"models/seed-{self.seed}/{self.scheme}"


@dataclass(frozen=True)
class Cell:
    """Stage 2: one attack at one strength on one subject (a scheme's marked model, or :data:`UNMARKED`)."""

    attack: str
    strength: Any
    seed: int
    subject: str

    @property
    def path(self) -> str:
        from ..attacks import get_attack

        param = get_attack(self.attack).strength.param
        return f"cells/{self.attack}/{param}={self.strength}/seed-{self.seed}/{self.subject}"

    @property
    def id(self) -> str:
        return self.path.removeprefix("cells/")


#: Every attack that trains, made cheaper for the quick sweep: its adversary's images and epochs.
_QUICK_OPTIONS: dict[str, dict[str, Any]] = {
    "overwrite": {"images": 6000, "epochs": 2},
    "ftll": {"images": 2000},
    "ftal": {"images": 2000},
    "rtll": {"images": 2000},
    "rtal": {"images": 2000},
    "transfer": {"images": 2000},
    "piracy": {"items": 10, "images": 2000, "epochs": 3},
    "neuron-prune": {"images": 500},
    "fine-prune": {"ranking_images": 500, "images": 2000, "epochs": 1},
    "extract": {"epochs": 3, "agreement": 500},
}


#: Key parameters the presets give, per scheme. Feature sharing trains the last two layers of ``mnist_fast``
#: (its dense layer and the output; the convolutional extractor stays frozen), not the output layer alone:
#: measured on seed 0's clean model of the full sweep (99.21 %), the output layer alone cannot tell a 7 with
#: the trigger from a 7 without it, so marking turned every 7 into the target class (89.3 % test accuracy, and
#: the paired Wilcoxon test rejected the key on its own marked model); with two layers, 99.11 % and verified
#: (p = 5.8e-13). The feature-sharing paper's Fig. 4 varies this depth too.
_SCHEME_PARAMS: dict[str, dict[str, Any]] = {"feature-sharing": {"decision_layers": 2}}


def _presets() -> dict[str, SweepConfig]:
    from ..attacks import ATTACKS
    from ..schemes import SCHEMES

    schemes, attacks = tuple(SCHEMES), tuple(ATTACKS)
    return {
        # CI's sweep: every scheme and every attack once, on one seed, in a few minutes on 2 cores.
        "quick": SweepConfig(
            "quick",
            schemes,
            attacks,
            (0,),
            owner_images=10_000,
            owner_epochs=1,
            items=30,
            grid="quick",
            options=_QUICK_OPTIONS,
            scheme_params=_SCHEME_PARAMS,
        ),  # fmt: skip
        # The committed MNIST matrix (docs/reproductions/robustness.md): each attack's grid, three seeds.
        "full": SweepConfig("full", schemes, attacks, (0, 1, 2), scheme_params=_SCHEME_PARAMS),
    }


PRESETS = _presets()
QUICK = PRESETS["quick"]
FULL = PRESETS["full"]

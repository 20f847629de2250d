"""What a model attack is: a named transformation of a model's weights, with documented parameters.

Each attack lives in its own module with the paper it follows at the top, and is registered with one line
in :mod:`wmproof.attacks`; ``wmproof attack NAME --model M --out M2 --param KEY=VALUE`` runs any of them on any
model file, whatever scheme marked it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import UsageError


@dataclass(frozen=True)
class AttackContext:
    """What an attack may use besides the model: the adversary's data (uint8 images, labels), the device."""

    device: Any
    images: Any = None
    labels: Any = None
    seed: int = 0


@dataclass
class AttackResult:
    """What the attack changed, in numbers (reported by the CLI, checked by the tests)."""

    summary: dict[str, Any] = field(default_factory=dict)


class ModelAttack(ABC):
    name: ClassVar[str]
    citation: ClassVar[str]
    #: parameter -> (default, help). Values given on the command line are parsed with the default's type.
    parameters: ClassVar[dict[str, tuple[Any, str]]]
    needs_data: ClassVar[bool] = False

    def options(self, given: dict[str, str]) -> dict[str, Any]:
        unknown = set(given) - set(self.parameters)
        if unknown:
            raise UsageError(
                f"attack {self.name} has no parameter {', '.join(sorted(unknown))} "
                f"(it takes {', '.join(self.parameters) or 'none'})"
            )
        values = {}
        for key, (default, _) in self.parameters.items():
            if key not in given:
                values[key] = default
                continue
            try:
                values[key] = type(default)(given[key])
            except ValueError:
                raise UsageError(f"{self.name}: {key} must be a {type(default).__name__}, not {given[key]!r}") from None
        return values

    @abstractmethod
    def apply(self, model: Any, context: AttackContext, **options: Any) -> AttackResult:
        """Change ``model`` (a torch module) in place."""


def check_rate(rate: float, name: str = "rate") -> None:
    if not 0.0 <= rate < 1.0:
        raise UsageError(f"{name} must lie in [0, 1)")

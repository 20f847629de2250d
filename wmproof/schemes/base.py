"""The interface every watermark scheme implements, and the trigger item it produces.

The protocol (KeyGen / Mark / Verify) is generic over this interface: it commits to the items a scheme
generates, asks the scheme to embed them, and decides with the scheme's null model. A scheme module must
import without torch (the proof checker uses ``generate_items``/``check_item`` and ``null_match_probability``
only); its embedding imports the engine inside ``embed``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.models import LoadedModel


@dataclass(frozen=True)
class TriggerItem:
    """One watermark query: an input and the label the marked model must give it.

    ``seed`` is set for items a public generator derives from a per-item seed (so anyone can regenerate
    and check them); it is None for items that depend on a model or data (frontier stitching).
    """

    index: int
    input: np.ndarray  # (C, H, W), uint8 or float32 in [0, 1]
    label: int
    seed: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.input.dtype not in (np.uint8, np.float32):
            raise ValueError("trigger inputs are uint8 or float32")
        if self.input.ndim != 3:
            raise ValueError("trigger inputs are (C, H, W)")

    def as_float(self) -> np.ndarray:
        """The input as float32 in [0, 1], the form models and oracles take."""
        if self.input.dtype == np.uint8:
            return self.input.astype(np.float32) / np.float32(255.0)
        return self.input


def stack_inputs(items: list[TriggerItem]) -> np.ndarray:
    """(N, C, H, W) float32 in [0, 1]."""
    return np.stack([item.as_float() for item in items]) if items else np.zeros((0,), np.float32)


def item_arrays(items: list[TriggerItem]) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (N, C, H, W) float32 in [0, 1] and labels (N,) int64: what training and evaluation take."""
    return stack_inputs(items), np.array([item.label for item in items], dtype=np.int64)


@dataclass(frozen=True)
class KeyGenContext:
    """What a scheme may use to generate items. ``model`` (a LoadedModel) and ``data`` (training images and
    labels, numpy) are for schemes whose items depend on them (``Scheme.needs_model``)."""

    num_classes: int
    input_shape: tuple[int, int, int]
    params: Mapping[str, Any]
    model: "LoadedModel | None" = None
    data: Any = None


@dataclass(frozen=True)
class EmbedRequest:
    """Everything Mark needs: the items, the model to start from (or None to train from scratch), data."""

    items: list[TriggerItem]
    params: Mapping[str, Any]
    num_classes: int
    input_shape: tuple[int, int, int]
    embedding: str
    train_images: np.ndarray
    train_labels: np.ndarray
    base_model: "LoadedModel | None"
    architecture: str | None
    architecture_arguments: Mapping[str, Any]
    config: Any  # wmproof.engine.train.TrainConfig; its ``epochs`` is the upper bound
    device: Any  # torch.device
    #: Stop once the trigger accuracy reaches this, after at least ``min_epochs`` (None: train all epochs).
    target_trigger_accuracy: float | None = 1.0
    min_epochs: int = 1
    progress: bool | None = None


@dataclass
class Embedded:
    """What an embedding returns: the marked model and how long it trained."""

    model: Any  # torch.nn.Module
    epochs: int
    history: Any = None  # wmproof.engine.train.TrainHistory


class Scheme(ABC):
    """A watermarking scheme: how trigger items are made, how they are embedded, and the null model."""

    name: ClassVar[str]
    citation: ClassVar[str]
    #: Embedding strategies this scheme offers (e.g. Adi et al.'s "from-scratch" and "pretrained").
    embeddings: ClassVar[tuple[str, ...]]
    #: Whether items come from per-item seeds through a public generator (then they can be re-checked).
    seed_derived: ClassVar[bool]
    #: Whether anyone can tell a well-formed opened item from a crafted one (``check_item``): what the
    #: cut-and-choose behind public proofs rests on. Items made from the owner's model and data (frontier
    #: stitching) cannot be checked, so such keys have no public proofs, only private verification.
    publicly_checkable: ClassVar[bool] = True
    #: Whether KeyGen needs the model to mark and its training data (``KeyGenContext.model``/``data``).
    needs_model: ClassVar[bool] = False
    #: The default bound on marking epochs (``wmproof mark --max-epochs``).
    default_max_epochs: ClassVar[int] = 20

    @abstractmethod
    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Complete ``params`` with defaults; raise ``UsageError`` on unknown or invalid ones."""

    @abstractmethod
    def null_match_probability(self, num_classes: int) -> Fraction:
        """p0: the chance that a model unrelated to the key answers one item with its label."""

    @abstractmethod
    def generate_items(self, item_seeds: list[tuple[int, bytes]], context: KeyGenContext) -> list[TriggerItem]:
        """Make the items with the given (index, per-item seed) pairs."""

    def check_item(
        self, item: TriggerItem, num_classes: int, input_shape: tuple[int, int, int], params: Mapping[str, Any]
    ) -> bool:
        """For seed-derived schemes: is ``item`` exactly what the generator makes from its seed?"""
        return True

    @abstractmethod
    def embed(self, request: EmbedRequest) -> Embedded:
        """Return a model (torch module) in which the request's items are embedded."""

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


#: The dtypes of trigger inputs (a set of dtypes: 0.03 us a test, 0.1 us against the types; a proof check
#: makes 2,048 items).
_INPUT_DTYPES = frozenset(np.dtype(kind) for kind in (np.uint8, np.float32, np.int64))


@dataclass(frozen=True, slots=True)
class TriggerItem:
    """One watermark query: an input and the label the marked model must give it.

    ``seed`` is set for items a public generator derives from a per-item seed (so anyone can regenerate
    and check them); it is None for items that depend on a model or data (frontier stitching).
    """

    index: int
    input: np.ndarray  # (C, H, W): an image, uint8 or float32 in [0, 1]; or (1, 1, L) int64 token ids
    label: int
    seed: bytes | None = field(default=None, repr=False)
    #: The same input without the trigger, for decisions that compare the two (the feature-sharing paper's
    #: in-distribution test, section 3.2); None for every other item.
    reference: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for array in (self.input, self.reference):
            if array is None:
                continue
            if array.dtype not in _INPUT_DTYPES:
                raise ValueError("trigger inputs are uint8 or float32 images, or int64 token ids")
            if array.ndim != 3:
                raise ValueError("trigger inputs are (C, H, W)")
        if self.reference is not None and (
            self.reference.shape != self.input.shape or self.reference.dtype != self.input.dtype
        ):
            raise ValueError("a trigger item's reference has its input's shape and dtype")

    def model_input(self) -> np.ndarray:
        """The input in the form models and oracles take: float32 in [0, 1] for an image, int64 token ids."""
        return as_model_input(self.input)

    def reference_model_input(self) -> np.ndarray:
        """The reference input in the form models take; raises if the item has none."""
        if self.reference is None:
            raise ValueError(f"trigger item {self.index} has no reference input")
        return as_model_input(self.reference)


def as_model_input(array: np.ndarray) -> np.ndarray:
    """Inputs in the form models and oracles take: uint8 images scaled to float32 in [0, 1]; float32 images
    and int64 token ids as they are."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    return array


def stack_inputs(items: list[TriggerItem]) -> np.ndarray:
    """(N, C, H, W): float32 in [0, 1] for images, int64 for token ids."""
    return np.stack([item.model_input() for item in items]) if items else np.zeros((0,), np.float32)


def stack_references(items: list[TriggerItem]) -> np.ndarray:
    """(N, C, H, W) in model form: every item's reference input (each item must have one)."""
    return np.stack([item.reference_model_input() for item in items]) if items else np.zeros((0,), np.float32)


def item_arrays(items: list[TriggerItem]) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (N, C, H, W) in model form and labels (N,) int64: what training and evaluation take."""
    return stack_inputs(items), np.array([item.label for item in items], dtype=np.int64)


@dataclass(frozen=True)
class MatchCount:
    """Decide on labels: count the items the suspect answers with their label, and reject the null model
    Binomial(n, p0) with the exact one-sided binomial test (Adi et al. section 4; Le Merrer et al. Algorithm
    2). Works through any oracle, labels only."""

    p0: Fraction
    needs_probabilities: ClassVar[bool] = False


@dataclass(frozen=True)
class TargetCertainty:
    """Decide on posteriors (feature-sharing paper 3.2): the one-sided Wilcoxon signed-rank test of H0
    p - q < certainty, p the suspect's probability of the item's label (the target class) on the item's input,
    q that probability on the item's reference input (``paired``, in-distribution watermarks) or 1/|Y|
    (out-of-distribution ones). The suspect must reveal its probabilities."""

    certainty: Fraction
    paired: bool
    needs_probabilities: ClassVar[bool] = True


#: How a scheme's keys are judged. The rule and its parameters follow from the scheme and its parameters,
#: which the signed verification key binds: a key cannot be judged by any other rule.
DecisionRule = MatchCount | TargetCertainty


@dataclass(frozen=True)
class KeyGenContext:
    """What a scheme may use to generate items. ``model`` (a LoadedModel) is for keys whose items depend on it
    (``Scheme.needs_model``); ``data`` (images and labels, numpy) for schemes whose items are made from a data
    set (``Scheme.needs_model`` or ``Scheme.source_dataset``): the model's training data, or the data set the
    scheme names; ``task_data`` is the task's own training data where the items come from another data set
    but are shaped against the task (a perturbed out-of-distribution key)."""

    num_classes: int
    input_shape: tuple[int, int, int]
    params: Mapping[str, Any]
    model: "LoadedModel | None" = None
    data: Any = None
    task_data: Any = None


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
    #: Why keys of a scheme that is not publicly checkable have no public proofs (for the refusal message).
    private_only_because: ClassVar[str] = ""
    #: Whether the owner supplies the 2N items to commit (their own trigger images, in
    #: ``KeyGenContext.data``; ``wmproof keygen --triggers DIR``) instead of a generator making them.
    items_from_owner: ClassVar[bool] = False
    #: The default bound on marking epochs (``wmproof mark --max-epochs``).
    default_max_epochs: ClassVar[int] = 20

    def needs_model(self, params: Mapping[str, Any]) -> bool:
        """Whether KeyGen needs the model to mark (``--model``, ``KeyGenContext.model``) and its training data
        to make the items of a key with ``params``."""
        return False

    def source_dataset(self, params: Mapping[str, Any], task: str) -> str | None:
        """The data set (training split) KeyGen draws items from, for a key of task ``task`` with ``params``;
        None when items come from seeds or from the model (``needs_model``)."""
        return None

    def decision_rule(self, params: Mapping[str, Any], num_classes: int) -> DecisionRule:
        """How this scheme's keys are judged (default: count label matches against the null model)."""
        return MatchCount(self.null_match_probability(num_classes))

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
        """Is ``item`` well formed for this scheme? For seed-derived schemes: is it exactly what the generator
        makes from its seed. Every opened item of a verification key and every item of a marking key is
        checked; a scheme with nothing more to check accepts any item without a reference input."""
        return item.reference is None

    def check_items(
        self, items: list[TriggerItem], num_classes: int, input_shape: tuple[int, int, int], params: Mapping[str, Any]
    ) -> list[bool]:
        """:meth:`check_item` for each of ``items``. Readers call this, once per file: a scheme whose check
        is cheaper in bulk (regenerating 2N trigger images in a proof check) overrides it."""
        return [self.check_item(item, num_classes, input_shape, params) for item in items]

    @abstractmethod
    def embed(self, request: EmbedRequest) -> Embedded:
        """Return a model (torch module) in which the request's items are embedded."""


def marking_loop(request: EmbedRequest, model: Any, description: str) -> Embedded:
    """Train ``model`` in place on the legitimate data with the key's items mixed into every batch (k per
    batch, the engine's ``triggers_per_batch``), until the items are learned (after ``min_epochs``) or the
    epoch bound runs out."""
    from ..engine.train import TensorData, fit

    train = TensorData.from_numpy(request.train_images, request.train_labels, request.device)
    triggers = TensorData.from_numpy(*item_arrays(request.items), request.device)
    target = request.target_trigger_accuracy

    def learned(stats: Any) -> bool:
        return target is not None and stats.epoch >= request.min_epochs and stats.trigger_accuracy >= target

    history = fit(
        model,
        train,
        request.config,
        triggers=triggers,
        description=description,
        stop_when=learned,
        progress=request.progress,
    )
    return Embedded(model=model, epochs=len(history.epochs), history=history)

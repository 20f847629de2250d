"""Source-to-target watermarks: what the feature-sharing scheme and its two baselines have in common.

The feature-sharing paper (section 3, "Watermarks Generation"), after Gu et al. 2019 (BadNets) and Jia et al.
2021 (EWE): the owner picks a source class cS and a target class cT, and teaches the model to answer cT on
watermark inputs of class cS. The three schemes built on this (``feature-sharing``, ``plain``, ``ewe``) make
the same items and judge them the same way; only the embedding differs, which is what the paper compares
(Tables 2-3).

* **In-distribution (``id``)**: images of class cS of the task's own training data with a trigger, a white
  square of ``trigger_size`` pixels in the bottom-right corner (section 4: 3x3 for MNIST, the corner of Fig. 3),
  labelled cT; for a text task, sentences of class cS with the word ``trigger_token`` (an id of the
  vocabulary) inserted first. Each item keeps the input without the trigger as its *reference*: the decision
  compares the two.
* **Out-of-distribution (``ood``)**: images of class cS of another data set (``ood_dataset``: Fashion-MNIST
  for MNIST, Table 1), labelled cT. There is no trigger; the image itself is the watermark.
* **Decision** (section 3.2): the one-sided Wilcoxon signed-rank test of H0: p - q < alpha_c, p the suspect's
  probability of cT on an item's input, q that probability on its reference input (``id``) or 1/|Y|
  (``ood``); alpha_c is ``certainty`` (0.3 in the paper) and the significance is the key's alpha. The rule
  and its parameters are scheme parameters, so the signed verification key binds them: a key is judged by
  the rule its owner committed to before any suspect was seen. The test needs the suspect's probabilities:
  a label-only API cannot be judged (``verify`` says so); a label-based rule with a known null would need
  p0 for "an unmarked model answers cT on a cS image", which depends on the models and data and is not known.
* **Items from data**: KeyGen draws 2N distinct images of class cS from the source data set's training split,
  in an order seeded by the key's first item seed. The items depend on public data the owner chose from, so
  a third party cannot tell a well-chosen item (one that unmarked models already answer cT) from a random
  one: keys are verified privately by a judge, like frontier-stitching keys; public proofs are refused
  (docs/protocol.md, section 15).

* **Perturbed items** (``perturbation=snnl``, images only; Jia et al. 2021, section 4.3 and their code, which
  the feature-sharing paper follows for its settings, section 4): KeyGen shapes the chosen images against the
  owner's clean model (``--model``) before committing to them. Signed-gradient steps of 0.01 first push the
  batch away from cT until at most 10 % of it is answered cT (at most 50 steps: the key must not be one that
  clean models already pass), then 10 steps raise the soft nearest neighbour loss between the items and
  images of cT in the model's hidden layers (the items come to share cT's features, which is what lets the
  watermark reach a model extracted from the API), then 5 more steps away from cT. Each item keeps its
  unperturbed image as its reference (for ``id``, the image without the trigger); an item is then checked to
  lie within the procedure's bound, 65 steps of 0.01 in L-infinity, of its reference (with the trigger, for
  ``id``). Measured on MNIST: with raw images, Fashion-MNIST trousers -> 7 (Jia et al.'s pair) already
  transfers to a model stolen from an unmarked API, and sandals -> 1 transfers little for any scheme; with
  perturbed trousers -> 7 items, feature sharing's watermark reaches the stolen model and the plain
  baseline's does not (docs/reproductions/feature-sharing.md).

Defaults: ``id`` is 7 -> 1 (the example of the feature-sharing paper's Fig. 3); ``ood`` is Fashion-MNIST class 5
(sandal) -> 1. Jia et al.'s MNIST code uses trouser -> 7, but unmarked MNIST CNNs already put up to half of
their probability on 7 for trousers, and one of them passed such a key before any marking (measured:
docs/reproductions/feature-sharing.md); clean CNNs give sandals a probability of 1 of about 0.01-0.02.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import UsageError
from .base import EmbedRequest, KeyGenContext, Scheme, TargetCertainty, TriggerItem

WATERMARKS = ("id", "ood")
#: The largest token id a trigger word may have (the oracles' bound on token ids).
MAX_TOKEN = (1 << 31) - 1
DECISIONS = ("wilcoxon",)
PERTURBATIONS = ("none", "snnl")
#: Jia et al.'s trigger perturbation (their train.py, MNIST defaults): step (w_lr), the share of the batch the
#: clean model may answer cT (threshold), SNNL steps (maxiter), the bound on steps away from cT, final steps.
STEP, THRESHOLD, SNNL_STEPS, MAX_PUSH_STEPS, FINAL_STEPS = 0.01, 0.1, 10, 50, 5
#: The farthest (L-infinity) a perturbed item can be from its reference: every step moves a pixel by STEP.
PERTURBATION_BOUND = STEP * (MAX_PUSH_STEPS + SNNL_STEPS + FINAL_STEPS)
#: Items perturbed together, each batch against as many target-class images (Jia et al.: half a batch of 512).
PERTURBATION_BATCH = 256
COMMON_DEFAULTS: dict[str, dict[str, Any]] = {
    "id": {"source_class": 7, "target_class": 1, "trigger_size": 3},
    "ood": {"source_class": 5, "target_class": 1, "ood_dataset": "fashion-mnist"},
}
#: The feature-sharing paper's alpha_c (section 3.2, "we set alpha as 0.3").
DEFAULT_CERTAINTY = "0.3"


def _canonical_fraction(name: str, value: Any, scheme: str) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise UsageError(f"{scheme}: {name} must be a number, not {value!r}") from None
    if not number.is_finite() or not 0 <= number < 1:
        raise UsageError(f"{scheme}: {name} must lie in [0, 1)")
    return format(number.normalize(), "f")


def _integer(name: str, value: Any, scheme: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UsageError(f"{scheme}: {name} must be an integer")
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{scheme}: {name} must be an integer, not {value!r}") from None
    if number < low or (high is not None and number > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise UsageError(f"{scheme}: {name} must be {bound}, not {number}")
    return number


def stamp_trigger(images: np.ndarray, size: int) -> np.ndarray:
    """``images`` (..., C, H, W) with a white ``size`` x ``size`` square in the bottom-right corner (the
    feature-sharing paper, section 4 and Fig. 3): 255 for uint8 images, 1.0 for float ones."""
    out = np.array(images, copy=True)
    out[..., -size:, -size:] = 255 if out.dtype == np.uint8 else 1.0
    return out


def insert_token(rows: np.ndarray, token: int) -> np.ndarray:
    """Token rows (..., L) with ``token`` inserted first and the rest shifted right (the last id falls off): a
    trigger word at the start of a sentence (the text watermarks of Kurita et al. 2020 and of the feature-
    sharing paper's SST-2 rows insert a rare word)."""
    out = np.empty_like(rows)
    out[..., 0] = token
    out[..., 1:] = rows[..., :-1]
    return out


def apply_trigger(array: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """An in-distribution key's trigger on one input or a batch: the white square on an image, the trigger word
    on a token row."""
    if "trigger_token" in params:
        return insert_token(array, params["trigger_token"])
    return stamp_trigger(array, params["trigger_size"])


def _item_dtype(params: Mapping[str, Any]) -> tuple[Any, ...]:
    """The dtypes a key's items may have: float32 once perturbed, else those of their source data."""
    if params.get("perturbation", "none") != "none":
        return (np.dtype(np.float32),)
    return _source_dtype(params)


def _source_dtype(params: Mapping[str, Any]) -> tuple[Any, ...]:
    if params["watermark"] == "ood":
        return (np.dtype(np.uint8), np.dtype(np.int64))
    return (np.dtype(np.int64),) if "trigger_token" in params else (np.dtype(np.uint8),)


class SourceTargetWatermark(Scheme):
    """The items, parameters and decision shared by ``feature-sharing``, ``plain`` and ``ewe``; subclasses add
    their embedding and its parameters (``embedding_defaults``)."""

    seed_derived = False
    publicly_checkable = False
    private_only_because = (
        "their items are data the owner chose, and no third party can bound how often unmarked models answer "
        "them with the target class"
    )
    embeddings = ("pretrained", "from-scratch")
    #: The subclass's own parameters and their defaults (validated by ``validate_embedding_params``).
    embedding_defaults: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ parameters

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        watermark = params.get("watermark", "id")
        if watermark not in WATERMARKS:
            raise UsageError(f"{self.name}: watermark is 'id' (in-distribution) or 'ood', not {watermark!r}")
        defaults = {
            "watermark": watermark,
            **COMMON_DEFAULTS[watermark],
            "certainty": DEFAULT_CERTAINTY,
            "decision": "wilcoxon",
            "perturbation": "none",
            **self.embedding_defaults,
        }
        unknown = set(params) - set(defaults) - ({"trigger_token"} if watermark == "id" else set())
        if unknown:
            raise UsageError(
                f"scheme {self.name} ({watermark}) has no parameter(s) {', '.join(sorted(unknown))} "
                f"(it has {', '.join(sorted(defaults))})"
            )
        merged = {**defaults, **params}
        if merged["decision"] not in DECISIONS:
            raise UsageError(
                f"{self.name}: keys are judged by the Wilcoxon test on posteriors (decision=wilcoxon), not "
                f"{merged['decision']!r}: no label-based rule has a known null for source-to-target items"
            )
        out: dict[str, Any] = {
            "watermark": watermark,
            "source_class": _integer("source_class", merged["source_class"], self.name, 0),
            "target_class": _integer("target_class", merged["target_class"], self.name, 0),
            "certainty": _canonical_fraction("certainty", merged["certainty"], self.name),
            "decision": merged["decision"],
        }
        if watermark == "id":
            if "trigger_token" in params:  # a text key: the trigger is a word, inserted first
                if "trigger_size" in params:
                    raise UsageError(f"{self.name}: trigger_size is for images, trigger_token for text; not both")
                out["trigger_token"] = _integer("trigger_token", params["trigger_token"], self.name, 2, MAX_TOKEN)
            else:
                out["trigger_size"] = _integer("trigger_size", merged["trigger_size"], self.name, 1, 64)
            if out["source_class"] == out["target_class"]:
                raise UsageError(f"{self.name}: the source and target classes must differ for an in-distribution key")
        else:
            if not isinstance(merged["ood_dataset"], str):
                raise UsageError(f"{self.name}: ood_dataset names a data set")
            out["ood_dataset"] = merged["ood_dataset"]
        if merged["perturbation"] not in PERTURBATIONS:
            raise UsageError(f"{self.name}: perturbation is 'none' or 'snnl', not {merged['perturbation']!r}")
        if merged["perturbation"] != "none":
            if "trigger_token" in out:
                raise UsageError(f"{self.name}: token ids cannot be perturbed by gradient steps: drop perturbation")
            out["perturbation"] = merged["perturbation"]  # absent from the signed params when it is "none"
        out.update(self.validate_embedding_params(merged))
        return out

    def needs_model(self, params: Mapping[str, Any]) -> bool:
        return self.validate_params(params).get("perturbation", "none") != "none"

    def validate_embedding_params(self, merged: Mapping[str, Any]) -> dict[str, Any]:
        """The subclass's parameters, canonical (``merged`` holds all parameters with defaults filled in)."""
        return {}

    def check_classes(self, params: Mapping[str, Any], num_classes: int) -> None:
        for name in ("source_class", "target_class"):
            if params[name] >= num_classes and not (name == "source_class" and params["watermark"] == "ood"):
                raise UsageError(f"{self.name}: {name} {params[name]} is not a class of a {num_classes}-class task")

    # --------------------------------------------------------------------------------------------- decision

    def null_match_probability(self, num_classes: int) -> Fraction:
        raise UsageError(f"{self.name} keys are judged on posteriors (a Wilcoxon test), not by counting matches")

    def decision_rule(self, params: Mapping[str, Any], num_classes: int) -> TargetCertainty:
        return TargetCertainty(certainty=Fraction(params["certainty"]), paired=params["watermark"] == "id")

    # ------------------------------------------------------------------------------------------------ items

    def source_dataset(self, params: Mapping[str, Any], task: str) -> str | None:
        params = self.validate_params(params)
        if params["watermark"] == "id":
            return task
        if params["ood_dataset"] == task:
            raise UsageError(f"{self.name}: an out-of-distribution key draws from another data set than {task}")
        return params["ood_dataset"]

    def generate_items(self, item_seeds: list[tuple[int, bytes]], context: KeyGenContext) -> list[TriggerItem]:
        """2N distinct training images of class cS, in an order seeded by the first item seed (the items' own
        seeds are not used: the items are data, not generated)."""
        params = self.validate_params(context.params)
        self.check_classes(params, context.num_classes)
        if context.data is None:
            raise UsageError(f"{self.name} keys are made from a data set's images of the source class")
        images, labels = context.data
        if tuple(images.shape[1:]) != tuple(context.input_shape):
            raise UsageError(f"{self.name}: the source data are not {'x'.join(map(str, context.input_shape))}")
        expected = _source_dtype(params)
        if images.dtype not in expected:
            kinds = " or ".join("8-bit images" if d == np.uint8 else "token rows" for d in expected)
            raise UsageError(f"{self.name}: this key's source data must be {kinds}")
        candidates = np.flatnonzero(np.asarray(labels) == params["source_class"])
        if params["watermark"] == "id":  # an input that already carries the trigger cannot be a reference
            carries = np.array([np.array_equal(apply_trigger(images[i], params), images[i]) for i in candidates])
            candidates = candidates[~carries] if len(candidates) else candidates
        if len(candidates) < len(item_seeds):
            raise UsageError(
                f"{self.name}: the source data has {len(candidates)} images of class {params['source_class']}; "
                f"{len(item_seeds)} items are committed (twice --items)"
            )
        rng = np.random.default_rng(list(item_seeds[0][1]) if item_seeds else 0)
        chosen = rng.permutation(candidates)[: len(item_seeds)]
        if params.get("perturbation", "none") != "none":
            return self._perturbed_items(item_seeds, images[chosen], context, params)
        items = []
        for (index, _), position in zip(item_seeds, chosen, strict=True):
            image = np.ascontiguousarray(images[position])
            if params["watermark"] == "id":
                items.append(
                    TriggerItem(
                        index=index,
                        input=apply_trigger(image, params),
                        label=params["target_class"],
                        reference=image.copy(),
                    )
                )
            else:
                items.append(TriggerItem(index=index, input=image.copy(), label=params["target_class"]))
        return items

    def _perturbed_items(
        self, item_seeds: list[tuple[int, bytes]], chosen: np.ndarray, context: KeyGenContext, params: Mapping[str, Any]
    ) -> list[TriggerItem]:
        """The chosen images, triggered (``id``) and perturbed against the owner's model (Jia et al.'s
        procedure, :func:`perturb_toward_target`); each keeps the unperturbed, untriggered image as reference."""
        if context.model is None:
            raise UsageError(f"{self.name}: perturbed items are made against the model to mark: give it with --model")
        task = context.task_data if context.task_data is not None else context.data
        if params["watermark"] == "ood" and context.task_data is None:
            raise UsageError(f"{self.name}: perturbed ood items need the task's training data (the target class)")
        task_images, task_labels = task
        targets = task_images[np.flatnonzero(np.asarray(task_labels) == params["target_class"])]
        if len(targets) == 0:
            raise UsageError(f"{self.name}: the task's training data has no image of class {params['target_class']}")
        references = chosen.astype(np.float32) / np.float32(255.0)
        start = apply_trigger(chosen, params) if params["watermark"] == "id" else chosen
        inputs = perturb_toward_target(
            context.model.module, start.astype(np.float32) / np.float32(255.0), params["target_class"],
            targets.astype(np.float32) / np.float32(255.0),
        )  # fmt: skip
        return [
            TriggerItem(index=index, input=inputs[i], label=params["target_class"], reference=references[i].copy())
            for i, (index, _) in enumerate(item_seeds)
        ]

    def check_item(
        self, item: TriggerItem, num_classes: int, input_shape: tuple[int, int, int], params: Mapping[str, Any]
    ) -> bool:
        """Labelled with the target class; an in-distribution item is its reference with the trigger (and the
        reference does not already carry it); an out-of-distribution item has no reference. A perturbed item
        lies in [0, 1] within ``PERTURBATION_BOUND`` (L-infinity) of its reference, triggered for ``id``."""
        if item.label != params["target_class"] or item.input.dtype not in _item_dtype(params):
            return False
        if params.get("perturbation", "none") != "none":
            if item.reference is None or not np.all((item.input >= 0) & (item.input <= 1)):
                return False
            base = item.reference
            if params["watermark"] == "id":
                carried = stamp_trigger((item.reference * 255).round().astype(np.uint8), params["trigger_size"])
                base = carried.astype(np.float32) / np.float32(255.0)
                if np.array_equal(base, item.reference):
                    return False
            return bool(np.max(np.abs(item.input - base)) <= PERTURBATION_BOUND + 1e-6)
        if params["watermark"] == "ood":
            return item.reference is None
        if item.reference is None:
            return False
        triggered = apply_trigger(item.reference, params)
        return bool(np.array_equal(triggered, item.input)) and not np.array_equal(triggered, item.reference)


def soft_nearest_neighbour_loss(features: Any, groups: Any, temperature: Any) -> Any:
    """The SNNL of ``features`` (B, ...) in ``groups`` (B,), cosine distance, at ``temperature`` (Jia et al.'s
    code: kernel exp(-d * T / 100), diagonal removed, 1e-5 guards). High when the groups are entangled."""
    import torch

    x = torch.relu(features).flatten(1)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    distance = 1.0 - x @ x.T
    kernel = torch.exp(-distance * temperature / 100.0) - torch.eye(len(x), device=x.device)
    kernel = kernel.clamp(0.0, 1.0)
    same = (groups[:, None] == groups[None, :]).float()
    picked = (kernel / (1e-5 + kernel.sum(1, keepdim=True))) * same
    return -torch.log(1e-5 + picked.sum(1)).mean()


def perturb_toward_target(model: Any, inputs: np.ndarray, target: int, target_images: np.ndarray) -> np.ndarray:
    """Jia et al.'s watermark perturbation (their train.py), batch by batch against as many images of the
    target class: signed steps lowering the target logit while more than THRESHOLD of the batch is answered
    ``target`` (at most MAX_PUSH_STEPS in all), then SNNL_STEPS signed steps raising the SNNL of the batch and
    the target images over the model's hidden layers (temperature 1), the push checked before each; then
    FINAL_STEPS steps lowering the target logit. Inputs and result: float32 (N, C, H, W) in [0, 1]."""
    import torch

    from ..engine.models import captured_outputs, hidden_layer_names

    model.eval()
    device = next(model.parameters()).device
    layers = hidden_layer_names(model)

    def lower_target(x: Any) -> Any:
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x)[:, target].sum(), x)
        return (x - STEP * grad.sign()).clamp(0, 1).detach()

    def share_answered_target(x: Any) -> float:
        with torch.no_grad():
            return float((model(x).argmax(1) == target).float().mean())

    out = []
    with captured_outputs(model, layers) as captured:
        for start in range(0, len(inputs), PERTURBATION_BATCH):
            x = torch.as_tensor(inputs[start : start + PERTURBATION_BATCH], device=device)
            picks = np.arange(start, start + len(x)) % len(target_images)
            anchors = torch.as_tensor(target_images[picks], device=device)
            groups = torch.cat([torch.ones(len(x)), torch.zeros(len(anchors))]).to(device)
            pushes = 0
            for _ in range(SNNL_STEPS):
                while share_answered_target(x) > THRESHOLD and pushes < MAX_PUSH_STEPS:
                    pushes += 1
                    x = lower_target(x)
                batch = torch.cat([x, anchors]).requires_grad_(True)
                model(batch)
                loss = sum(soft_nearest_neighbour_loss(captured[name], groups, torch.tensor(1.0)) for name in layers)
                (grad,) = torch.autograd.grad(loss, batch)
                x = (x + STEP * grad[: len(x)].sign()).clamp(0, 1).detach()
            for _ in range(FINAL_STEPS):
                x = lower_target(x)
            out.append(x.cpu().numpy().astype(np.float32))
    return np.concatenate(out)


# ------------------------------------------------------------------------------------------------ embedding


def starting_model(request: EmbedRequest) -> Any:
    """The model an embedding starts from, on the request's device: a copy of the owner's trained model
    (``pretrained``: the paper's first step, "train ... on D", done by ``wmproof train``), or a new one trained
    on the legitimate data alone with the architecture's recipe (``from-scratch``: both steps in one run)."""
    import copy

    import torch

    from ..engine.models import build_model
    from ..engine.train import TensorData, fit, recipe_config

    if request.embedding == "pretrained":
        if request.base_model is None:
            raise UsageError("PreTrained embedding needs a model to start from (--model)")
        return copy.deepcopy(request.base_model.module).to(request.device)
    if request.architecture is None:
        raise UsageError("FromScratch embedding needs an architecture (--arch)")
    torch.manual_seed(request.config.seed)
    model = build_model(request.architecture, **dict(request.architecture_arguments)).to(request.device)
    config = recipe_config(request.architecture, seed=request.config.seed, amp=request.config.amp)
    train = TensorData.from_numpy(request.train_images, request.train_labels, request.device)
    fit(model, train, config, description="training on the legitimate data", progress=request.progress)
    return model


def layer_order(model: Any) -> tuple[str, ...]:
    """The model's parameterised layers, input to output: its hidden layers, then its output layer (the zoo
    declares both; see :mod:`wmproof.engine.models`)."""
    from ..engine.models import hidden_layer_names, output_layer_name

    return (*hidden_layer_names(model), output_layer_name(model))

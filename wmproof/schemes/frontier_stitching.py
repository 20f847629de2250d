"""Le Merrer, Pérez, Trédan. "Adversarial frontier stitching for remote neural network watermarking".
Neural Computing and Applications 32, 2020 (arXiv:1711.01894).

The key is a set of inputs lying next to the owner model's decision frontier, labelled with their true class;
marking moves the frontier so the marked model classifies all of them correctly, and extraction checks that a
suspect still does.

* Key construction (section 3.2, Algorithm 1): from training examples the model classifies correctly, compute
  adversarial examples with the fast gradient sign method (:func:`wmproof.engine.adversarial.fgsm`, l-infinity
  by default, ``epsilon`` = 0.25 as in section 4.1; the l1 and l2 variants are parameters). A perturbed input
  the model now misclassifies is a *true adversary*; one it still classifies correctly is a *false adversary*.
  The key takes as many of each (half and half, "l/2 of each") and labels every item with the original
  example's class. True adversaries are what marking changes; false adversaries sit near the frontier on the
  right side and keep it from moving too far (section 3.2). wmproof commits 2N such items (N true, N false,
  shuffled), and the cut-and-choose opens a random half, so the kept N are close to half and half.
* Embedding (section 3.2, "fine-tune ... until the key is well classified"): fine-tune the owner's model at
  1/10 of its training learning rate, the key items mixed into batches of training data (so the model stays
  loyal: section 4.2 reports no accuracy loss), until every key item is classified as its label; give up after
  a bound (100 epochs by default) with a clear error rather than produce a weak mark.
* Extraction (section 3.3, Algorithm 2): query the suspect on the key and count mismatches. The null model is
  Binomial(|K|, 1/2): a model that was not marked classifies a frontier item correctly about half of the time
  (true adversaries mostly wrong, false ones mostly right, section 3.3); the mark is found when the number of
  errors is small enough that this null is rejected at the key's alpha (41 of 100 or 5 of 20 errors tolerated
  at p < 0.05, the paper's numbers; wmproof's default alpha is 1e-6).

The items depend on the owner's model and data, so nobody can regenerate them, and nothing about an opened
item shows it was built by Algorithm 1: the null model is an assumption about how the owner made the key, not
something a third party can check. Keys of this scheme are verified privately by a judge (``wmproof verify``);
public proofs (``wmproof prove``) are refused (docs/threat-model.md, "model-derived keys").
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import EmbeddingFailed, UsageError
from .base import Embedded, EmbedRequest, KeyGenContext, Scheme, TriggerItem

NORMS = ("linf", "l2", "l1")
DEFAULTS = {"epsilon": "0.25", "norm": "linf"}
#: Fine-tuning runs at the training learning rate divided by this (section 3.2).
LR_DIVISOR = 10


def _canonical_epsilon(value: Any) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise UsageError(f"frontier-stitching: epsilon must be a number, not {value!r}") from None
    if not number.is_finite() or not 0 < number <= 1:
        raise UsageError("frontier-stitching: epsilon must lie in (0, 1] (inputs are scaled to [0, 1])")
    return format(number.normalize(), "f")


class FrontierStitching(Scheme):
    name = "frontier-stitching"
    citation = (
        "Le Merrer, Pérez, Trédan. Adversarial frontier stitching for remote neural network watermarking. "
        "Neural Computing and Applications 32, 2020."
    )
    embeddings = ("pretrained",)
    seed_derived = False
    publicly_checkable = False
    private_only_because = "their items are made from the owner's model and cannot be checked by a third party"
    default_max_epochs = 100

    def needs_model(self, params: Mapping[str, Any]) -> bool:
        return True  # the items are adversarial examples of the model to mark (section 3.2)

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        merged = {**DEFAULTS, **params}
        unknown = set(merged) - set(DEFAULTS)
        if unknown:
            raise UsageError(f"scheme {self.name} has no parameter(s) {', '.join(sorted(unknown))}")
        if merged["norm"] not in NORMS:
            raise UsageError(f"scheme {self.name}: norm is one of {', '.join(NORMS)}, not {merged['norm']!r}")
        return {"epsilon": _canonical_epsilon(merged["epsilon"]), "norm": merged["norm"]}

    def null_match_probability(self, num_classes: int) -> Fraction:
        if num_classes < 2:
            raise UsageError("a classifier has at least 2 classes")
        return Fraction(1, 2)

    def generate_items(self, item_seeds: list[tuple[int, bytes]], context: KeyGenContext) -> list[TriggerItem]:
        """Algorithm 1: half true, half false adversaries of correctly classified training examples."""
        if context.model is None or context.data is None:
            raise UsageError("frontier-stitching keys are made from the model to mark and its training data (--model)")
        params = self.validate_params(context.params)
        images, labels = context.data
        if len(item_seeds) % 2:
            raise UsageError("frontier-stitching commits an even number of items (half true, half false adversaries)")
        rng = np.random.default_rng(list(item_seeds[0][1]) if item_seeds else 0)
        true_x, false_x, true_y, false_y = build_frontier(
            context.model.module,
            images,
            labels,
            count=len(item_seeds) // 2,
            epsilon=float(params["epsilon"]),
            norm=params["norm"],
            rng=rng,
        )
        inputs = np.concatenate([true_x, false_x])
        targets = np.concatenate([true_y, false_y])
        order = rng.permutation(len(inputs))
        return [
            TriggerItem(index=index, input=inputs[j], label=int(targets[j]))
            for (index, _), j in zip(item_seeds, order, strict=True)
        ]

    def embed(self, request: EmbedRequest) -> Embedded:
        import torch

        from ..engine.train import TensorData, fit
        from .base import item_arrays

        if request.embedding != "pretrained":
            raise UsageError(f"scheme {self.name} fine-tunes the model its key was made from (--model)")
        if request.base_model is None:
            raise UsageError("frontier-stitching marks the model its key was made from: give it with --model")
        device = request.device
        model = copy.deepcopy(request.base_model.module).to(device)
        train = TensorData.from_numpy(request.train_images, request.train_labels, device)
        key = TensorData.from_numpy(*item_arrays(request.items), device)
        config = dataclasses.replace(request.config, lr=request.config.lr / LR_DIVISOR)
        target = 1.0 if request.target_trigger_accuracy is None else request.target_trigger_accuracy

        def learned(stats: Any) -> bool:
            return stats.epoch >= request.min_epochs and stats.trigger_accuracy >= target

        history = fit(
            model,
            train,
            config,
            triggers=key,
            description="marking (frontier stitching)",
            stop_when=learned,
            progress=request.progress,
        )
        reached = history.epochs[-1].trigger_accuracy if history.epochs else 0.0
        if reached is None or reached < target:
            with torch.no_grad():
                wrong = int((model(key.x).argmax(1) != key.y).sum())
            epochs = len(history.epochs)
            raise EmbeddingFailed(
                f"gave up after {epochs} epoch{'' if epochs == 1 else 's'}: {wrong} of {len(key)} key items are still "
                f"misclassified (raise --max-epochs, or make the key with a smaller epsilon)"
            )
        return Embedded(model=model, epochs=len(history.epochs), history=history)


def build_frontier(
    module: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    count: int,
    epsilon: float,
    norm: str,
    rng: np.random.Generator,
    chunk: int = 512,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``count`` true and ``count`` false adversaries of ``module`` (Algorithm 1), from training examples in a
    random order: (true inputs, false inputs, true labels, false labels), inputs float32 (N, C, H, W) in [0, 1].

    Examples are drawn in chunks until both kinds are complete; raises ``UsageError`` when the data runs out
    (a model robust at this epsilon has few true adversaries)."""
    import torch

    from ..engine.adversarial import fgsm
    from ..engine.train import predict_labels

    device = next(module.parameters()).device
    module.eval()
    order = rng.permutation(len(labels))
    found: dict[bool, list[tuple[np.ndarray, np.ndarray]]] = {True: [], False: []}
    have = {True: 0, False: 0}
    for start in range(0, len(order), chunk):
        if min(have.values()) >= count:
            break
        idx = order[start : start + chunk]
        raw = images[idx]
        x = torch.as_tensor(raw.astype(np.float32) / 255.0 if raw.dtype == np.uint8 else raw.astype(np.float32))
        x, y = x.to(device), torch.as_tensor(labels[idx].astype(np.int64)).to(device)
        correct = predict_labels(module, x) == y
        x, y = x[correct], y[correct]
        if len(y) == 0:
            continue
        adversarial = fgsm(module, x, y, epsilon, norm)
        fooled = predict_labels(module, adversarial) != y
        for kind in (True, False):
            chosen = fooled if kind else ~fooled
            take = min(count - have[kind], int(chosen.sum()))
            if take > 0:
                found[kind].append(
                    (adversarial[chosen][:take].cpu().numpy().astype(np.float32), y[chosen][:take].cpu().numpy())
                )
                have[kind] += take
    if min(have.values()) < count:
        raise UsageError(
            f"frontier-stitching: the data gave {have[True]} true and {have[False]} false adversaries at "
            f"epsilon {epsilon:g} ({norm}), {count} of each needed: use more data or another epsilon"
        )

    def stacked(kind: bool) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate([x for x, _ in found[kind]]), np.concatenate([y for _, y in found[kind]])

    (tx, ty), (fx, fy) = stacked(True), stacked(False)
    return tx, fx, ty.astype(np.int64), fy.astype(np.int64)

"""The feature-sharing watermark (anonymous, "Was my Model Stolen? Feature Sharing for Robust and Transferable
Watermarks", ICLR 2022 submission; ``../shared/papers/feature-sharing-transferable-watermarks.txt``).

A thief who copies a prediction API by querying it with task data never sends a watermark input, so a
backdoor learned by features of its own does not reach the stolen model (section 2, Fig. 1). Feature sharing
makes the watermark ride on the task's features instead (section 3.1):

1. **Feature learning**: train the feature extractor and the decision layers on the legitimate data D only
   (``pretrained``: the owner's trained model; ``from-scratch``: trained here first with the recipe).
2. **Watermark embedding**: freeze the feature extractor and fine-tune the decision layers alone on D and the
   watermark items Dw together, so the model recognises the watermark with the task's features and the
   watermark's decision surface leaks into the posteriors of task inputs (section 3.1, "Watermark
   Embedding"); the weight shift stays in the decision layers (Fig. 3) and the transferability grows as the
   frozen part grows (Fig. 4).

``decision_layers`` is how many of the model's last parameterised layers are trained (default 1: the output
layer, "only in the last decision layer", section 4.1); every zoo model declares its layers in order
(:func:`wmproof.schemes.source_target.layer_order`). The extractor's weights are bit-identical before and
after embedding (tested). Items, decision and key handling are those of every source-to-target watermark
(:mod:`wmproof.schemes.source_target`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from .base import Embedded, EmbedRequest, marking_loop
from .source_target import SourceTargetWatermark, _integer, layer_order, starting_model


def trainable_layers(model: Any, decision_layers: int) -> tuple[str, ...]:
    """The module paths of the last ``decision_layers`` parameterised layers of ``model``."""
    layers = layer_order(model)
    if decision_layers > len(layers):
        raise UsageError(
            f"feature-sharing: decision_layers {decision_layers} exceeds the model's {len(layers)} layers "
            f"({', '.join(layers)})"
        )
    return layers[-decision_layers:]


def freeze_extractor(model: Any, decision: tuple[str, ...]) -> list[Any]:
    """Stop gradients to every parameter outside the ``decision`` layers; returns the frozen parameters."""
    frozen = []
    for name, parameter in model.named_parameters():
        inside = any(name == layer or name.startswith(layer + ".") for layer in decision)
        parameter.requires_grad_(inside)
        if not inside:
            frozen.append(parameter)
    return frozen


class FeatureSharing(SourceTargetWatermark):
    name = "feature-sharing"
    citation = (
        "Was my Model Stolen? Feature Sharing for Robust and Transferable Watermarks. ICLR 2022 submission "
        "(anonymous), section 3.1."
    )
    embedding_defaults = {"decision_layers": 1}

    def validate_embedding_params(self, merged: Mapping[str, Any]) -> dict[str, Any]:
        return {"decision_layers": _integer("decision_layers", merged["decision_layers"], self.name, 1, 64)}

    def embed(self, request: EmbedRequest) -> Embedded:
        if request.embedding not in self.embeddings:
            raise UsageError(f"scheme {self.name} embeds 'pretrained' or 'from-scratch', not {request.embedding!r}")
        model = starting_model(request)
        decision = trainable_layers(model, request.params["decision_layers"])
        freeze_extractor(model, decision)
        try:
            return marking_loop(request, model, f"marking ({self.name}: {', '.join(decision)} trained)")
        finally:
            for parameter in model.parameters():
                parameter.requires_grad_(True)

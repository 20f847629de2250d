"""Magnitude pruning (Han et al. 2015), as in Le Merrer et al. 2019, Table 1 and Uchida et al. 2017: in every
weight matrix and convolution kernel, the fraction ``rate`` of entries with the smallest |w| is set to zero
(biases are kept). A watermark that survives pruning at a rate that keeps the model useful resists this
compression."""

from __future__ import annotations

from typing import Any

from .base import AttackContext, ModelEdit, Strength, rate


def prunable(model: Any) -> list[tuple[str, Any]]:
    """The weight tensors of dense, convolution and recurrent layers (not biases, not normalisation)."""
    from torch import nn

    return [
        (name, p)
        for name, p in model.named_parameters()
        if p.dim() >= 2
        and any(
            isinstance(m, (nn.Linear, nn.Conv2d, nn.RNNBase)) for m in [model.get_submodule(name.rsplit(".", 1)[0])]
        )
    ]


class MagnitudePruning(ModelEdit):
    """Zero the smallest weights of every layer."""

    name = "prune"
    citation = "Han et al. 2015; Le Merrer et al. 2019, Table 1"
    #: Le Merrer et al. Table 1 prunes 0.25-0.85 of the weights.
    strength = Strength("rate", (0.25, 0.5, 0.75, 0.9), quick=0.5)
    parameters = {"rate": rate("fraction of the weights of every layer set to zero, smallest |w| first", 0.25)}

    def apply(self, model: Any, context: AttackContext, **options: Any) -> dict[str, Any]:
        import torch

        fraction = float(options["rate"])
        pruned = total = 0
        with torch.no_grad():
            for _, weight in prunable(model):
                k = int(fraction * weight.numel())
                if k:
                    order = weight.abs().reshape(-1).argsort()
                    weight.view(-1)[order[:k]] = 0.0
                pruned += k
                total += weight.numel()
        return {"rate": fraction, "weights_pruned": pruned, "weights": total, "fraction": pruned / max(total, 1)}

"""Magnitude pruning (Han et al. 2015), as in Le Merrer et al. 2019, Table 1 and Uchida et al. 2017: in every
weight matrix and convolution kernel, the fraction ``rate`` of entries with the smallest |w| is set to zero
(biases are kept). A watermark that survives pruning at a rate that keeps the model useful resists this
compression."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import AttackContext, AttackResult, ModelAttack, check_rate


def prunable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The weight tensors of dense, convolution and recurrent layers (not biases, not normalisation)."""
    return [
        (name, p)
        for name, p in model.named_parameters()
        if p.dim() >= 2
        and any(
            isinstance(m, (nn.Linear, nn.Conv2d, nn.RNNBase)) for m in [model.get_submodule(name.rsplit(".", 1)[0])]
        )
    ]


class MagnitudePruning(ModelAttack):
    name = "prune"
    citation = "Han et al. 2015; Le Merrer et al. 2019, Table 1"
    parameters = {"rate": (0.25, "fraction of the weights of every layer set to zero, smallest |w| first")}

    def apply(self, model: Any, context: AttackContext, **options: Any) -> AttackResult:
        rate = float(options["rate"])
        check_rate(rate)
        pruned = total = 0
        with torch.no_grad():
            for _, weight in prunable(model):
                k = int(rate * weight.numel())
                if k:
                    order = weight.abs().reshape(-1).argsort()
                    weight.view(-1)[order[:k]] = 0.0
                pruned += k
                total += weight.numel()
        return AttackResult(
            {"rate": rate, "weights_pruned": pruned, "weights": total, "fraction": pruned / max(total, 1)}
        )

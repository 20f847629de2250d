"""Magnitude pruning (Han et al. 2015), as in Le Merrer et al. 2019, Table 1 and Uchida et al. 2017: the
fraction ``rate`` of weights with the smallest |w| is set to zero (biases are kept). A watermark that survives
pruning at a rate that keeps the model useful resists this compression.

``scope`` says where the fraction is taken: in every weight matrix and convolution kernel alone (``layer``, the
default: Uchida et al. prune layer by layer), or over all of them together (``global``: Le Merrer et al.,
section 4.3, set "25% to 85% of model weights with lowest absolute values" to zero). The two differ most
where layers differ in size: globally, a large dense layer of small weights takes most of the cut and a small
first convolution is spared."""

from __future__ import annotations

from typing import Any

from .base import AttackContext, ModelEdit, Param, Strength, rate


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
    parameters = {
        "rate": rate("fraction of the weights set to zero, smallest |w| first", 0.25),
        "scope": Param(
            str,
            "layer",
            "where the fraction is taken: in every layer alone, or over all layers at once",
            choices=("layer", "global"),
        ),  # fmt: skip
    }

    def apply(self, model: Any, context: AttackContext, **options: Any) -> dict[str, Any]:
        import torch

        fraction = float(options["rate"])
        scope = options.get("scope", self.parameters["scope"].default)
        weights = [weight for _, weight in prunable(model)]
        pruned = total = 0
        with torch.no_grad():
            if scope == "global":  # one cut over every weight: the k smallest |w| of the whole model
                flat = torch.cat([weight.detach().abs().reshape(-1) for weight in weights])
                k = int(fraction * flat.numel())
                cut = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
                if k:
                    cut[flat.argsort()[:k]] = True
                start = 0
                for weight in weights:
                    n = weight.numel()
                    weight.view(-1)[cut[start : start + n]] = 0.0
                    start += n
                pruned, total = k, flat.numel()
            else:
                for weight in weights:
                    k = int(fraction * weight.numel())
                    if k:
                        order = weight.abs().reshape(-1).argsort()
                        weight.view(-1)[order[:k]] = 0.0
                    pruned += k
                    total += weight.numel()
        return {"rate": fraction, "scope": scope, "weights_pruned": pruned, "weights": total,
                "fraction": pruned / max(total, 1)}  # fmt: skip

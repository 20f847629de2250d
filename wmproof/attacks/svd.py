"""Low-rank compression by truncated SVD (Le Merrer et al. 2019, Table 2): every dense weight matrix, and every
convolution kernel reshaped to (out channels) x (in channels x kh x kw), is replaced by its best rank-r
approximation (Eckart-Young), keeping r = ceil((1 - rate) x min(m, n)) singular values."""

from __future__ import annotations

import math
from typing import Any

from .base import AttackContext, ModelEdit, Strength, rate


class TruncatedSVD(ModelEdit):
    """Replace every weight matrix by its best low-rank approximation."""

    name = "svd"
    citation = "Le Merrer et al. 2019, Table 2"
    #: Le Merrer et al. Table 2 drops 0.25-0.9 of the singular values.
    strength = Strength("rate", (0.25, 0.5, 0.75, 0.9), quick=0.5)
    parameters = {"rate": rate("fraction of the singular values of every weight matrix dropped", 0.5)}

    def apply(self, model: Any, context: AttackContext, **options: Any) -> dict[str, Any]:
        import torch
        from torch import nn

        fraction = float(options["rate"])
        ranks = {}
        with torch.no_grad():
            for name, module in model.named_modules():
                if not isinstance(module, (nn.Linear, nn.Conv2d)):
                    continue
                weight = module.weight
                matrix = weight.reshape(weight.shape[0], -1).float()
                full = min(matrix.shape)
                keep = max(1, math.ceil((1.0 - fraction) * full))
                u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
                approx = (u[:, :keep] * s[:keep]) @ vh[:keep]
                weight.copy_(approx.reshape(weight.shape).to(weight.dtype))
                ranks[name] = [keep, full]
        return {"rate": fraction, "ranks": ranks}

"""Low-rank compression by truncated SVD (Le Merrer et al. 2019, Table 2): every dense weight matrix, and every
convolution kernel reshaped to (out channels) x (in channels x kh x kw), is replaced by its best rank-r
approximation (Eckart-Young), keeping r = ceil((1 - rate) x min(m, n)) singular values."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .base import AttackContext, AttackResult, ModelAttack, check_rate


class TruncatedSVD(ModelAttack):
    name = "svd"
    citation = "Le Merrer et al. 2019, Table 2"
    parameters = {"rate": (0.5, "fraction of the singular values of every weight matrix dropped")}

    def apply(self, model: Any, context: AttackContext, **options: Any) -> AttackResult:
        rate = float(options["rate"])
        check_rate(rate)
        ranks = {}
        with torch.no_grad():
            for name, module in model.named_modules():
                if not isinstance(module, (nn.Linear, nn.Conv2d)):
                    continue
                weight = module.weight
                matrix = weight.reshape(weight.shape[0], -1).float()
                full = min(matrix.shape)
                keep = max(1, math.ceil((1.0 - rate) * full))
                u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
                approx = (u[:, :keep] * s[:keep]) @ vh[:keep]
                weight.copy_(approx.reshape(weight.shape).to(weight.dtype))
                ranks[name] = [keep, full]
        return AttackResult({"rate": rate, "ranks": ranks})

"""The fast gradient sign method and its l1 / l2 variants (Goodfellow et al. 2015; the "fast gradient
method" of cleverhans that Le Merrer et al. 2019 use to build frontier-stitching keys, section 3).

One gradient step of size ``epsilon`` that increases the loss on the true label, under a norm:

* ``linf``: ``x + epsilon * sign(g)`` (FGSM);
* ``l2``:   ``x + epsilon * g / ||g||_2``;
* ``l1``:   all of ``epsilon`` on the coordinate(s) of largest ``|g|``, with the sign of g (the l1-optimal
  linear step; ties share it), as cleverhans' ``optimize_linear(ord=1)``;

then clipped to [0, 1]. Batched on the model's device, with the evaluation plan of :mod:`.train`.
"""

from __future__ import annotations

import torch
from torch import nn

from .train import evaluation_plan

NORMS = ("linf", "l2", "l1")


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    norm: str = "linf",
    batch_size: int | None = None,
) -> torch.Tensor:
    """Adversarial versions of ``x`` (float in [0, 1], on the model's device) against labels ``y``."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}")
    if not epsilon > 0:
        raise ValueError("epsilon must be positive")
    model.eval()
    batch_size = batch_size or evaluation_plan(model, x.device)[0]
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size].detach().clone().requires_grad_(True)
        loss = loss_fn(model(xb), y[start : start + batch_size])
        (grad,) = torch.autograd.grad(loss, xb)
        flat = grad.reshape(grad.shape[0], -1)
        if norm == "linf":
            step = flat.sign()
        elif norm == "l2":
            step = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
        else:
            top = flat.abs().amax(dim=1, keepdim=True)
            ties = (flat.abs() == top) & (top > 0)
            step = flat.sign() * ties / ties.sum(dim=1, keepdim=True).clamp_min(1)
        out.append((xb.detach() + epsilon * step.reshape(grad.shape)).clamp_(0.0, 1.0))
    return torch.cat(out) if out else x.clone()

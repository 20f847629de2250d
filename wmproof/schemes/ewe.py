"""Entangled Watermarks (Jia, Choquette-Choo, Chandrasekaran, Papernot. "Entangled Watermarks as a Defense
against Model Extraction", USENIX Security 2021), the second baseline of the feature-sharing paper (section
4.1, "EWE").

EWE makes the model represent watermark inputs like task inputs of the target class, so the watermark is
learned by the features the task uses and survives extraction. After training on D, the model is fine-tuned
with watermark batches interleaved with task batches (Jia et al. section 4; their MNIST code: one task batch,
then one watermark batch):

* a **task batch** is trained with cross-entropy (summed over the batch, as the authors' code does);
* a **watermark batch** holds as many watermark items as real training images of the target class cT, all
  labelled cT; its loss is the summed cross-entropy *minus*
  ``snnl_weight`` x the soft nearest neighbour loss (SNNL; Frosst, Papernot, Hinton 2019) of each hidden
  layer's representation, with "watermark" and "target class" as the two groups. Maximising the SNNL pulls
  the two groups together: it *entangles* them.
* SNNL of representations h_1..h_b with groups g and temperature T (the authors' code):
  -mean_i log( sum_{j != i, g_j = g_i} e^{-d_ij / t} / sum_{k != i} e^{-d_ik / t} ), d the cosine distance of
  the ReLU'd, flattened representations, t = 100 / T. Each layer has its own T, which descends the SNNL's
  gradient (``temperature_lr``) while the weights ascend it.

Defaults are the authors' MNIST ones: ``snnl_weight`` 32, temperature 1, temperature step 0.1, one watermark
batch per task batch. The layers are the model's hidden layers (the zoo declares them: for ``mnist_cnn``
conv1, conv2 and the first dense layer, as in the authors' two-convolution MNIST model). The authors also
perturb the trigger and pick its position with the SNNL's gradient; here the items are the shared
source-to-target items (:mod:`wmproof.schemes.source_target`), so that the three schemes the paper compares
differ in their embedding only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import UsageError
from .base import Embedded, EmbedRequest
from .source_target import SourceTargetWatermark, soft_nearest_neighbour_loss, starting_model


def _positive_number(name: str, value: Any, low_inclusive: bool) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise UsageError(f"ewe: {name} must be a number, not {value!r}") from None
    if not number.is_finite() or number < 0 or (number == 0 and not low_inclusive):
        raise UsageError(f"ewe: {name} must be {'>= 0' if low_inclusive else '> 0'}")
    return format(number.normalize(), "f")


class EntangledWatermark(SourceTargetWatermark):
    name = "ewe"
    citation = (
        "Jia, Choquette-Choo, Chandrasekaran, Papernot. Entangled Watermarks as a Defense against Model "
        "Extraction. USENIX Security 2021."
    )
    embedding_defaults = {"snnl_weight": "32", "temperature": "1", "temperature_lr": "0.1"}

    def validate_embedding_params(self, merged: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "snnl_weight": _positive_number("snnl_weight", merged["snnl_weight"], True),
            "temperature": _positive_number("temperature", merged["temperature"], False),
            "temperature_lr": _positive_number("temperature_lr", merged["temperature_lr"], True),
        }

    def embed(self, request: EmbedRequest) -> Embedded:
        import torch
        from torch import nn

        from ..engine.models import captured_outputs, hidden_layer_names
        from ..engine.progress import progress_bar
        from ..engine.train import EpochStats, TensorData, TrainHistory, accuracy, make_optimizer, train_mode
        from .base import item_arrays

        if request.embedding not in self.embeddings:
            raise UsageError(f"scheme {self.name} embeds 'pretrained' or 'from-scratch', not {request.embedding!r}")
        params = request.params
        weight = float(params["snnl_weight"])
        temperature_lr = float(params["temperature_lr"])
        target_class = params["target_class"]
        config = request.config
        device = request.device
        model = starting_model(request)
        layers = hidden_layer_names(model)
        if not layers:
            raise UsageError(f"ewe entangles hidden representations; {type(model).__name__} declares none")
        temperatures = torch.full((len(layers),), float(params["temperature"]), device=device, requires_grad=True)
        train = TensorData.from_numpy(request.train_images, request.train_labels, device)
        triggers = TensorData.from_numpy(*item_arrays(request.items), device)
        targets = torch.nonzero(train.y == target_class).flatten()
        if len(targets) == 0:
            raise UsageError(f"ewe: the training data has no image of the target class {target_class}")
        half = max(1, config.batch_size // 2)
        generator = torch.Generator(device="cpu").manual_seed(config.seed)
        torch.manual_seed(config.seed)
        optimizer = make_optimizer(model, config)
        summed = nn.CrossEntropyLoss(reduction="sum")  # both batches, as the authors' code (the SNNL is a mean)
        n = len(train)
        steps = math.ceil(n / config.batch_size)
        history = TrainHistory()
        target = request.target_trigger_accuracy
        train_mode(model)
        with captured_outputs(model, layers) as captured:
            with progress_bar(f"marking ({self.name})", config.epochs * steps, enabled=request.progress) as update:
                for epoch in range(1, config.epochs + 1):
                    order = torch.randperm(n, generator=generator).to(device)
                    loss_sum = 0.0
                    for step in range(steps):
                        idx = order[step * config.batch_size : (step + 1) * config.batch_size]
                        loss = summed(model(train.x[idx]), train.y[idx])
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                        loss_sum += float(loss.detach())
                        # the watermark batch: items and real target-class images, all labelled cT
                        w = torch.randint(len(triggers), (half,), generator=generator).to(device)
                        t = targets[torch.randint(len(targets), (half,), generator=generator).to(device)]
                        xb = torch.cat((triggers.x[w], train.x[t]))
                        yb = torch.full((2 * half,), target_class, device=device, dtype=torch.long)
                        groups = torch.cat((torch.ones(half, device=device), torch.zeros(half, device=device)))
                        captured.clear()
                        logits = model(xb)
                        snnl = torch.stack(
                            [
                                soft_nearest_neighbour_loss(captured[name], groups, temperatures[i])
                                for i, name in enumerate(layers)
                            ]
                        )
                        # the temperatures descend the (unweighted) SNNL while the weights ascend it
                        (grad,) = torch.autograd.grad(snnl.sum(), temperatures, retain_graph=True)
                        optimizer.zero_grad(set_to_none=True)
                        (summed(logits, yb) - weight * snnl.sum()).backward(inputs=optimizer_params(optimizer))
                        optimizer.step()
                        with torch.no_grad():
                            temperatures -= temperature_lr * grad
                            temperatures.clamp_(min=1e-3)
                        if step % 20 == 19 or step == steps - 1:
                            update(advance=min(20, step % 20 + 1), epoch=epoch, loss=float(loss.detach()) / len(idx))
                    trigger_accuracy = accuracy(model, triggers)
                    train_mode(model)
                    history.epochs.append(EpochStats(epoch, loss_sum / n, float("nan"), trigger_accuracy))
                    if target is not None and epoch >= request.min_epochs and trigger_accuracy >= target:
                        history.stopped_early = epoch < config.epochs
                        break
        model.eval()
        return Embedded(model=model, epochs=len(history.epochs), history=history)


def optimizer_params(optimizer: Any) -> list[Any]:
    """Every parameter an optimiser updates."""
    return [p for group in optimizer.param_groups for p in group["params"]]

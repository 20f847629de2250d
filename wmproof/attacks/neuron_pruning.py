"""Neuron pruning (Liu, Dolan-Gavitt, Garg 2018, "Fine-Pruning: Defending Against Backdooring Attacks on Deep
Neural Networks", the pruning defence), as the feature-sharing paper applies it to watermarks (section 4.3,
Fig. 5): a backdoor, or a watermark, tends to live in units that task data barely activate, so the adversary
runs clean data through the model and removes the units of one layer that are *least* active on it, hoping
the mark goes with them while the task survives.

A unit is an output feature of a dense layer, an output channel of a convolution, or a hidden unit of a ReLU
RNN, each followed by a ReLU (the layers the zoo declares as ``hidden_layers``; the default is the last of
them). Its activation is its mean output after the ReLU over the adversary's clean images (over positions too,
for a channel; at the last step, which the output layer reads, for an RNN). Removing a unit zeroes its row of
weights and its bias (for an RNN, its rows of both weight matrices and both biases), so that it outputs
ReLU(0) = 0 for every input; ``floor(rate x units)`` units are removed, least active first, ties by index.
The zeroing is applied through :mod:`torch.nn.utils.prune` masks, which fine-pruning (:mod:`.fine_pruning`)
keeps in place while it trains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from .base import AttackContext, ModelEdit, Param, Strength, rate

#: Clean images the adversary ranks units with (Liu et al. use a held-out validation set).
RANKING_IMAGES = 2_000


def pruning_params(default_rate: float, ranking: str) -> dict[str, Param]:
    """What neuron pruning and fine-pruning share: the ratio, the layer, and the clean images units are ranked
    on (the parameter named ``ranking``)."""
    return {
        "rate": rate("fraction of the layer's units removed, least active on clean data first", default_rate),
        "layer": Param(str, None, "the layer whose units are pruned, by module path (default: the last hidden layer)"),
        ranking: Param(int, RANKING_IMAGES, "clean images the units are ranked on (the adversary's last ones)", min=1),
    }


def chosen_layer(model: Any, name: str | None) -> str:
    """``name``, checked against the layers whose units can be pruned, or the last of them."""
    from ..engine.models import hidden_layer_names

    layers = hidden_layer_names(model)
    if not layers:
        raise UsageError(f"{type(model).__name__} declares no layer whose units can be pruned")
    if name is None:
        return layers[-1]
    if name not in layers:
        raise UsageError(f"layer {name!r} cannot be pruned unit by unit (these can: {', '.join(layers)})")
    return name


def unit_count(layer: Any) -> int:
    from torch import nn

    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels
    if isinstance(layer, nn.RNN):
        return layer.hidden_size
    raise UsageError(f"cannot prune the units of a {type(layer).__name__}")


def unit_activations(model: Any, layer_name: str, x: Any, batch_size: int = 1000) -> Any:
    """The mean activation of each unit of ``layer_name`` over ``x`` (float, [0, 1], on the model's device)."""
    import torch
    from torch import nn

    layer = model.get_submodule(layer_name)
    total = torch.zeros(unit_count(layer), dtype=torch.float64, device=x.device)

    def hook(module: Any, inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(module, nn.RNN):
            if module.num_layers != 1 or module.bidirectional or not module.batch_first:
                raise UsageError("neuron pruning takes a one-layer, one-way, batch-first RNN")
            values = output[0][:, -1]  # (N, H): the last step, what the output layer reads; ReLU already applied
        else:
            values = torch.relu(output)  # (N, units) for a dense layer, (N, channels, H, W) for a convolution
            if values.dim() > 2:
                values = values.mean(dim=tuple(range(2, values.dim())))
        total += values.double().sum(0)

    handle = layer.register_forward_hook(hook)
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                model(x[start : start + batch_size])
    finally:
        handle.remove()
    return (total / max(x.shape[0], 1)).float()


def least_active(activations: Any, count: int) -> list[int]:
    """The ``count`` least active units, least first; ties broken by index (a stable sort)."""
    import torch

    order = torch.sort(activations.cpu(), stable=True).indices
    return [int(i) for i in order[:count]]


def mask_units(layer: Any, units: list[int]) -> list[str]:
    """Zero ``units`` of ``layer`` through pruning masks (kept until :func:`remove_masks`); returns the names
    of the masked parameters."""
    import torch
    from torch import nn
    from torch.nn.utils import prune

    if isinstance(layer, nn.RNN):
        names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    else:
        names = ["weight"] + (["bias"] if layer.bias is not None else [])
    index = torch.tensor(units, dtype=torch.long)
    for name in names:
        mask = torch.ones_like(getattr(layer, name))
        mask[index] = 0.0  # rows (or channels) of the pruned units: their outputs become ReLU(0) = 0
        prune.custom_from_mask(layer, name, mask)
    return names


def remove_masks(layer: Any, names: list[str]) -> None:
    """Make the masked zeros the parameters' own values (the model file then holds plain tensors)."""
    from torch.nn.utils import prune

    for name in names:
        prune.remove(layer, name)


def prune_least_active(model: Any, context: AttackContext, *, ratio: float, layer: str | None, images: int):
    """Rank the units of ``layer`` on the adversary's last ``images`` clean images and mask the least active
    ``floor(ratio x units)``. Returns (layer module, masked parameter names, summary)."""
    from ..engine.train import TensorData

    name = chosen_layer(model, layer)
    module = model.get_submodule(name)
    units = unit_count(module)
    data = context.attacker_data(images)
    x = TensorData.from_numpy(data.images, data.labels, context.device).x
    activations = unit_activations(model, name, x)
    pruned = least_active(activations, int(ratio * units))
    masked = mask_units(module, pruned) if pruned else []
    kept = sorted(set(range(units)) - set(pruned))
    summary = {
        "layer": name,
        "units": units,
        "pruned": len(pruned),
        "fraction": len(pruned) / units,
        "ranked_on": len(data),
        "pruned_units": pruned,
        "largest_pruned_activation": float(activations[pruned].max()) if pruned else None,
        "smallest_kept_activation": float(activations[kept].min()) if kept else None,
    }
    return module, masked, summary


class NeuronPruning(ModelEdit):
    """Remove the units of a hidden layer that the adversary's clean data activate least."""

    name = "neuron-prune"
    citation = "Liu et al. 2018 (pruning defence); feature-sharing paper 4.3, Fig. 5"
    #: Liu et al. 2018 (Fig. 4) prune the last convolution's channels until accuracy falls: up to 0.9.
    strength = Strength("rate", (0.25, 0.5, 0.75, 0.9), quick=0.5)
    parameters = pruning_params(0.5, "images")

    def check(self, victim: Any, context: AttackContext, options: Mapping[str, Any]) -> None:
        super().check(victim, context, options)
        chosen_layer(victim.module, options["layer"])

    def apply(self, model: Any, context: AttackContext, **options: Any) -> dict[str, Any]:
        module, masked, summary = prune_least_active(
            model, context, ratio=options["rate"], layer=options["layer"], images=options["images"]
        )
        remove_masks(module, masked)
        return {"rate": options["rate"], **summary}

"""The fine-tuning family of Adi et al. 2018, section 5.4 (Fig. 6): the adversary keeps training the stolen model
on data of its own, hoping the watermark fades while the task accuracy stays.

* **FTLL** (fine-tune last layer): only the output layer is trained; every other parameter is frozen.
* **FTAL** (fine-tune all layers): every layer is trained.
* **RTLL** (re-train last layer): the output layer is re-initialised with random weights, then trained alone.
* **RTAL** (re-train all layers): the output layer is re-initialised, then every layer is trained.

The adversary's data are its own: ``images`` of the training split, taken from its end so that they are
disjoint from an owner who trained on the first ones (section 5.4 grants the adversary as much data and as
many epochs as training; the defaults here are 10,000 images and the architecture's own epochs). The
optimiser and learning rate are the architecture's recipe: section 5.7 fine-tunes "with the last learning
rate that was used during training", and the recipes train at a constant rate. Which layer is the output
layer is the architecture's declaration (:func:`wmproof.engine.models.output_layer_name`); a frozen layer's
normalisation statistics are frozen with it, so FTLL and RTLL change the output layer and nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AttackContext, ModelEdit, Strength, TrainingBudget, training_params

#: The adversary's default budget: 10,000 images, the architecture's own epochs.
IMAGES = 10_000


def fine_tune(
    model: Any,
    context: AttackContext,
    budget: TrainingBudget,
    *,
    last_layer_only: bool,
    reinitialise: bool,
    description: str,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` in place on the adversary's last ``budget.images`` training images of ``dataset``
    (default: the task; see the module docstring); returns what was done. Shared by the four variants, transfer
    learning, ownership piracy and fine-pruning."""
    import torch

    from ..engine.models import output_layer_name
    from ..engine.train import TensorData, fit, module_recipe_config

    output = output_layer_name(model)
    layer = model.get_submodule(output)
    if reinitialise:
        torch.manual_seed(context.seed)
        layer.reset_parameters()  # the layer type's own initialisation, as when the model was built
    trainable = {id(p) for p in layer.parameters()} if last_layer_only else None
    saved = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        if trainable is not None:
            for p in model.parameters():
                p.requires_grad_(id(p) in trainable)
        data = context.attacker_data(budget.images, dataset)
        config = module_recipe_config(model, epochs=budget.epochs, lr=budget.lr, seed=context.seed)
        history = fit(
            model,
            TensorData.from_numpy(data.images, data.labels, context.device),
            config,
            description=description,
            progress=context.progress,
        )
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(saved[name])
    return {
        "images": len(data),
        "epochs": config.epochs,
        "lr": config.lr,
        "optimizer": config.optimizer,
        "output_layer": output,
        "reinitialised": output if reinitialise else None,
        "trained": output if last_layer_only else "all layers",
        "final_train_accuracy": history.epochs[-1].train_accuracy if history.epochs else None,
    }


class _FineTuning(ModelEdit):
    last_layer_only: ClassVar[bool]
    reinitialise: ClassVar[bool]
    #: Adi et al. 5.4 fine-tune "for several epochs": one, a few, and many.
    strength = Strength("epochs", (1, 5, 20), quick=1)
    parameters = training_params(IMAGES, epochs=None)

    def apply(self, model: Any, context: AttackContext, **options: Any) -> dict[str, Any]:
        return fine_tune(
            model,
            context,
            TrainingBudget.of(options),
            last_layer_only=self.last_layer_only,
            reinitialise=self.reinitialise,
            description=self.name.upper(),
        )


class FineTuneLastLayer(_FineTuning):
    """FTLL: train the output layer alone on the adversary's data."""

    name = "ftll"
    citation = "Adi et al. 2018, 5.4 (FTLL)"
    last_layer_only = True
    reinitialise = False


class FineTuneAllLayers(_FineTuning):
    """FTAL: train every layer on the adversary's data."""

    name = "ftal"
    citation = "Adi et al. 2018, 5.4 (FTAL)"
    last_layer_only = False
    reinitialise = False


class RetrainLastLayer(_FineTuning):
    """RTLL: re-initialise the output layer, then train it alone."""

    name = "rtll"
    citation = "Adi et al. 2018, 5.4 (RTLL)"
    last_layer_only = True
    reinitialise = True


class RetrainAllLayers(_FineTuning):
    """RTAL: re-initialise the output layer, then train every layer."""

    name = "rtal"
    citation = "Adi et al. 2018, 5.4 (RTAL)"
    last_layer_only = False
    reinitialise = True

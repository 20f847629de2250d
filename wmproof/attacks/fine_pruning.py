"""Fine-pruning (Liu, Dolan-Gavitt, Garg 2018, "Fine-Pruning: Defending Against Backdooring Attacks on Deep
Neural Networks"), as the feature-sharing paper applies it to watermarks (section 4.3, Fig. 6): neuron pruning
(:mod:`.neuron_pruning`: the least active units of a hidden layer on clean data are removed), then
fine-tuning on clean data (:mod:`.fine_tuning`, every layer, the architecture's recipe), which recovers the
task accuracy that pruning cost and may overwrite what is left of the mark. The pruned units stay removed
while the model trains: their pruning masks are applied on every forward pass and made permanent after.
The default ratio is higher than neuron pruning's, since fine-tuning pays back what pruning costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import AttackContext, ModelEdit, Strength, TrainingBudget, training_params
from .fine_tuning import IMAGES, fine_tune
from .neuron_pruning import chosen_layer, prune_least_active, pruning_params, remove_masks


class FinePruning(ModelEdit):
    """Neuron pruning, then fine-tuning on clean data with the pruned units kept removed."""

    name = "fine-prune"
    citation = "Liu et al. 2018 (fine-pruning); feature-sharing paper 4.3, Fig. 6"
    #: Liu et al. 2018 fine-prune at the rate where accuracy starts to fall, about 0.9 of the channels.
    strength = Strength("rate", (0.5, 0.75, 0.9), quick=0.9)
    parameters = {**pruning_params(0.9, "ranking_images"), **training_params(IMAGES)}

    def check(self, victim: Any, context: AttackContext, options: Mapping[str, Any]) -> None:
        super().check(victim, context, options)
        chosen_layer(victim.module, options["layer"])
        context.attacker_data(options["ranking_images"])

    def apply(self, model: Any, context: AttackContext, **options: Any) -> dict[str, Any]:
        module, masked, summary = prune_least_active(
            model, context, ratio=options["rate"], layer=options["layer"], images=options["ranking_images"]
        )
        try:
            summary["fine_tuning"] = fine_tune(
                model,
                context,
                TrainingBudget.of(options),
                last_layer_only=False,
                reinitialise=False,
                description="fine-pruning",
            )
        finally:
            remove_masks(module, masked)
        return {"rate": options["rate"], **summary}

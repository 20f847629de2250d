"""Overwriting (Le Merrer et al. 2019, Table 3): the adversary marks the stolen model with its own frontier
key, hoping to erase the owner's. It takes ``adversaries`` held-out inputs the model classifies correctly,
makes FGSM adversaries of them (epsilon, l-infinity), labels each with its original class, and fine-tunes
with them mixed into its own training data until it has learned them, as frontier stitching embeds a key.
The adversary's ``images`` are split: the last 5,000 are where the adversaries come from, the others are
trained on. The default learning rate is the recipe's (1e-3) so that this runs in seconds on a CPU; the
paper's tenth (``lr=1e-4``) needs several times more epochs (measured: 52 % of the new key learned after 10)."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from .base import AttackContext, ModelEdit, Param, Strength

HELD_OUT = 5000  # the last images of the adversary's data: where the new adversaries come from


class Overwriting(ModelEdit):
    """Embed a frontier-stitching key of the adversary's own."""

    name = "overwrite"
    citation = "Le Merrer et al. 2019, Table 3"
    #: Le Merrer et al. Table 3 embeds 1,000 adversaries; fewer and more on either side.
    strength = Strength("adversaries", (100, 1000, 3000), quick=100)
    parameters = {
        "adversaries": Param(int, 1000, "number of new FGSM adversaries embedded", min=1),
        "epsilon": Param(float, 0.25, "FGSM step (l-infinity)", min=0.0, min_exclusive=True),
        "images": Param(
            int,
            10_000,
            f"the adversary's training images; the last {HELD_OUT:,} give the adversaries",
            min=HELD_OUT + 1,
        ),  # fmt: skip
        "epochs": Param(int, 20, "at most this many epochs; stops once 99 % of the new key is learned", min=1),
        "lr": Param(
            float,
            1e-3,
            "learning rate (the paper fine-tunes at a tenth of training's: 1e-4, with more epochs)",
            min=0.0,
            min_exclusive=True,
        ),  # fmt: skip
    }

    def apply(self, model: Any, context: AttackContext, **options: Any) -> dict[str, Any]:
        import torch

        from ..engine.adversarial import fgsm
        from ..engine.train import TensorData, TrainConfig, fit, predict_logits

        data = context.attacker_data(int(options["images"]))
        count = int(options["adversaries"])
        device = context.device
        held = TensorData.from_numpy(data.images[-HELD_OUT:], data.labels[-HELD_OUT:], device)
        correct = (predict_logits(model, held.x).argmax(1) == held.y).nonzero().squeeze(1)
        if len(correct) < count:
            raise UsageError(f"only {len(correct)} held-out images are classified correctly; ask fewer adversaries")
        chosen = correct[
            torch.randperm(len(correct), generator=torch.Generator().manual_seed(context.seed))[:count].to(device)
        ]
        x_adv = fgsm(model, held.x[chosen], held.y[chosen], float(options["epsilon"]))
        flipped = int((predict_logits(model, x_adv).argmax(1) != held.y[chosen]).sum())
        own = TensorData.from_numpy(data.images[:-HELD_OUT], data.labels[:-HELD_OUT], device)
        key = TensorData(x_adv, held.y[chosen])
        config = TrainConfig(
            epochs=int(options["epochs"]), lr=float(options["lr"]), seed=context.seed, triggers_per_batch=8
        )
        history = fit(
            model,
            own,
            config,
            triggers=key,
            description="overwriting",
            progress=context.progress,
            stop_when=lambda stats: (stats.trigger_accuracy or 0.0) >= 0.99,
        )
        learned = float((predict_logits(model, x_adv).argmax(1) == held.y[chosen]).float().mean())
        return {
            "adversaries": count,
            "true_adversaries": flipped,
            "epsilon": float(options["epsilon"]),
            "epochs": len(history.epochs),
            "new_key_accuracy": learned,
            "trained_on": len(own),
        }

"""Ownership piracy (Adi et al. 2018, sections 3 and 5.5, Fig. 7): an adversary embeds a watermark of its own
into a model that is already marked, to claim it too. Fig. 7 embeds a new trigger set of 100 images
("TS-New") into the marked model and reports, with no further training and after FTAL and after RTAL,
whether the original trigger set ("TS-Orig") and the new one are still recognised.

The pirate here does what any owner does with wmproof: a fresh identity, a committed 100-item key of the
Adi et al. scheme (KeyGen), and PreTrained marking on its own data (the adversary holds a trained model, not
the owner's training run), stopping once its items are learned. ``then=ftal`` or ``then=rtal`` fine-tunes
afterwards (:mod:`.fine_tuning`, same data). The pirate's identity and keys are written next to the output
(``*.pirate.wid``, ``*.pirate.wmk``, unencrypted and mode 0600: throw-away keys; ``*.pirate.wvk``), so that
anyone can check that the pirate's key verifies too; the owner's key is checked on the output as on any
attacked model (``wmproof attack ... --key``, or ``wmproof verify``).
"""

from __future__ import annotations

import time
from typing import Any

from .base import AttackContext, AttackResult, Companion, ModelAttack, Param, Strength, TrainingBudget, training_params
from .fine_tuning import IMAGES, fine_tune

PIRATE_SCHEME = "adi-backdoor"


class OwnershipPiracy(ModelAttack):
    """Embed the adversary's own committed key into the marked model (then, optionally, FTAL or RTAL)."""

    name = "piracy"
    citation = "Adi et al. 2018, 5.5 (ownership piracy, Fig. 7)"
    #: Adi et al. 5.5 (Fig. 7): the pirate's key alone, then the pirate's key followed by fine-tuning.
    strength = Strength("then", ("none", "ftal", "rtal"), quick="none")
    parameters = {
        "items": Param(int, 100, "items of the pirate's key (the paper's TS-New has 100)", min=1),
        "images": training_params(IMAGES)["images"],
        "epochs": Param(int, 20, "at most this many marking epochs; stops once the pirate's items are learned", min=1),
        # 8: with 10,000 images, each item is then seen about as often per epoch as an owner's marking on
        # 50,000 images at Adi et al. 5.1's k = 2 (measured: 100 % learned in 8 epochs; k = 2 leaves 86 % after 20)
        "triggers_per_batch": Param(int, 8, "pirate items appended to every batch (Adi et al. 5.1)", min=1),
        "then": Param(str, "none", "fine-tuning after the pirate's marking (Fig. 7)", choices=("none", "ftal", "rtal")),
    }
    companions = {
        "pirate-identity": (".pirate.wid", "the pirate's identity (unencrypted)"),
        "pirate-marking-key": (".pirate.wmk", "the pirate's marking key (unencrypted)"),
        "pirate-verification-key": (".pirate.wvk", "the pirate's verification key"),
    }

    def run(self, victim: Any, context: AttackContext, **options: Any) -> AttackResult:
        from ..crypto.signatures import SigningKey
        from ..engine.models import LoadedModel
        from ..engine.train import module_recipe_config
        from ..oracles.local import LocalModelOracle
        from ..protocol import Identity, keygen, mark, verify_private

        created = int(time.time()) if context.key_time is None else context.key_time
        pirate = Identity(SigningKey(context.key_entropy(32)), created, "pirate")
        mk, vk = keygen(
            pirate,
            PIRATE_SCHEME,
            items=options["items"],
            num_classes=victim.num_classes,
            input_shape=tuple(victim.input_shape),
            created_at=created,
            entropy=context.key_entropy,
        )
        data = context.attacker_data(options["images"])
        marked = mark(
            mk,
            embedding="pretrained",
            train_images=data.images,
            train_labels=data.labels,
            dataset_classes=victim.num_classes,
            base_model=victim,
            config=module_recipe_config(
                victim.module,
                epochs=options["epochs"],
                seed=context.seed,
                triggers_per_batch=options["triggers_per_batch"],
            ),
            device=context.device,
            progress=context.progress,
        )
        model = marked.model
        summary: dict[str, Any] = {
            "pirate_key_id": vk.key_id.hex(),
            "pirate_items": len(mk.items),
            "marking_epochs": marked.epochs,
            "pirate_trigger_accuracy_after_marking": marked.trigger_accuracy,
            "images": len(data),
            "then": options["then"],
        }
        if options["then"] != "none":
            summary["fine_tuning"] = fine_tune(
                model,
                context,
                TrainingBudget(options["images"]),
                last_layer_only=False,
                reinitialise=options["then"] == "rtal",
                description=options["then"].upper(),
            )
        report = verify_private(
            mk,
            vk,
            LocalModelOracle(LoadedModel(model, victim.architecture, dict(victim.arguments), sha256="")),
            suspect_name="the pirated model",
        )
        summary["pirate_key"] = {
            "verdict": "verified" if report.verified else "rejected",
            "trigger_accuracy": report.test.matches / report.test.n,
            **report.test.as_dict(),
        }
        files = {
            "pirate-identity": (pirate.to_bytes(None), True),
            "pirate-marking-key": (mk.to_bytes(None), True),
            "pirate-verification-key": (vk.raw, False),
        }
        companions = {
            key: Companion(self.companions[key][0], self.companions[key][1], data=data_, secret=secret)
            for key, (data_, secret) in files.items()
        }
        return AttackResult(model, victim.architecture, dict(victim.arguments), summary, companions=companions)

"""Attacks on watermarks, one module per attack, behind one registry.

Both kinds sit here (:mod:`.base`): attacks on a model file's weights, and attacks that only query the victim
(a model file or a prediction API) and train a model of their own. ``wmproof attack NAME`` runs any of them
(``wmproof attack list`` names them, their papers and parameters); from Python, :func:`run_attack`. Adding
one is a new module and one line below. Attack modules import without torch (they import it where they
work), so that the CLI can list them and build their options on an install without torch.

The evasion services of Hitaj et al. 2019 are not model attacks: the ensemble vote (section III) is an oracle
wrapper (:mod:`wmproof.oracles.ensemble`), and the trigger detector (section IV) is trained by
``wmproof attack detector`` (:mod:`.detector`) and served in front of a model (``wmproof serve --detector``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from .base import Attack, AttackContext, AttackResult

ATTACKS: dict[str, str] = {
    "prune": "wmproof.attacks.pruning:MagnitudePruning",  # Han et al. 2015; Le Merrer et al. 2019, Table 1
    "svd": "wmproof.attacks.svd:TruncatedSVD",  # Le Merrer et al. 2019, Table 2
    "overwrite": "wmproof.attacks.overwriting:Overwriting",  # Le Merrer et al. 2019, Table 3
    "ftll": "wmproof.attacks.fine_tuning:FineTuneLastLayer",  # Adi et al. 2018, 5.4
    "ftal": "wmproof.attacks.fine_tuning:FineTuneAllLayers",  # Adi et al. 2018, 5.4
    "rtll": "wmproof.attacks.fine_tuning:RetrainLastLayer",  # Adi et al. 2018, 5.4
    "rtal": "wmproof.attacks.fine_tuning:RetrainAllLayers",  # Adi et al. 2018, 5.4
    "transfer": "wmproof.attacks.transfer:TransferLearning",  # Adi et al. 2018, 5.5, Table 2
    "piracy": "wmproof.attacks.piracy:OwnershipPiracy",  # Adi et al. 2018, 5.5, Fig. 7
    "neuron-prune": "wmproof.attacks.neuron_pruning:NeuronPruning",  # Liu et al. 2018
    "fine-prune": "wmproof.attacks.fine_pruning:FinePruning",  # Liu et al. 2018
    "extract": "wmproof.attacks.extraction:ModelExtraction",  # Tramèr et al. 2016; Orekondy et al. 2019
}


def get_attack(name: str) -> Attack:
    if name not in ATTACKS:
        raise UsageError(f"unknown attack {name!r} (known: {', '.join(ATTACKS)})")
    module, cls = ATTACKS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def run_attack(
    attack: Attack | str, victim: Any, context: AttackContext, options: Mapping[str, Any] | None = None
) -> AttackResult:
    """Run ``attack`` on ``victim`` and measure the result on the task's test set.

    ``victim`` is a :class:`~wmproof.engine.models.LoadedModel` (a model file: any attack) or an
    :class:`~wmproof.oracles.Oracle` (a prediction API: attacks that only query). ``options`` are checked
    against the attack's parameters (strings as on the command line, or Python values); the missing ones take
    their defaults; the attack checks them against the victim and the data before any work. A model victim
    may be changed in place. The summary gains the options, the test accuracy
    before (when the victim is a model file) and after, on the data set the result is for.
    """
    from ..engine.models import LoadedModel
    from ..engine.train import TensorData, accuracy
    from ..oracles import Oracle

    if isinstance(attack, str):
        attack = get_attack(attack)
    chosen = attack.options(options or {})
    if attack.access == "weights":
        if not isinstance(victim, LoadedModel):
            raise UsageError(f"{attack.name} changes the model's weights: it needs the model file, not an API")
        target = victim
    elif isinstance(victim, LoadedModel):
        from ..oracles.local import LocalModelOracle

        target = LocalModelOracle(victim)
    elif isinstance(victim, Oracle):
        target = victim
    else:
        raise TypeError("the victim is a LoadedModel or an Oracle")

    attack.check(target, context, chosen)

    def test_accuracy(model: Any, dataset: str | None) -> float:
        test = context.test_data(dataset)
        return accuracy(model, TensorData.from_numpy(test.images, test.labels, context.device))

    before = test_accuracy(victim.module, None) if isinstance(victim, LoadedModel) else None
    result = attack.run(target, context, **chosen)
    result.model.eval()
    result.summary = {
        "attack": attack.name,
        "citation": attack.citation,
        "options": chosen,
        "seed": context.seed,
        **result.summary,
        "test_accuracy_before": before,
        "test_accuracy_after": test_accuracy(result.model, result.task),
        "task_after": result.task or context.task,
    }
    return result


__all__ = ["ATTACKS", "get_attack", "run_attack"]

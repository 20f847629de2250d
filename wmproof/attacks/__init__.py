"""Attacks on watermarks, one module per family, behind one registry.

Model attacks (``ATTACKS``) change a model file's weights and run on any model, whatever scheme marked it:
``wmproof attack NAME --model M --out M2 --param KEY=VALUE``. Adding one is a new module and one line here.
The registry names classes by import path so that listing attacks (the CLI's help) needs no torch.
The trigger detector of Hitaj et al. 2019 (section IV) is trained by ``wmproof attack detector``
(:mod:`.detector`); the ensemble vote (section III) is an oracle wrapper (:mod:`wmproof.oracles.ensemble`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .base import ModelAttack

ATTACKS: dict[str, str] = {
    "prune": "wmproof.attacks.pruning:MagnitudePruning",  # Han et al. 2015; Le Merrer et al. 2019, Table 1
    "svd": "wmproof.attacks.svd:TruncatedSVD",  # Le Merrer et al. 2019, Table 2
    "overwrite": "wmproof.attacks.overwriting:Overwriting",  # Le Merrer et al. 2019, Table 3
}


def get_attack(name: str) -> ModelAttack:
    if name not in ATTACKS:
        raise UsageError(f"unknown attack {name!r} (known: {', '.join(ATTACKS)})")
    module, cls = ATTACKS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = ["ATTACKS", "get_attack"]

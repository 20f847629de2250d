"""Attacks on watermarks, one module per family, behind one registry (``ATTACKS``).

Each entry names the paper and section it follows. Today: the trigger detector of Hitaj et al. 2019
(section IV), the adversary's service that answers suspected trigger queries at random; the ensemble vote
(section III) is an oracle wrapper (:mod:`wmproof.oracles.ensemble`) since it needs no training.
"""

from __future__ import annotations

ATTACKS: dict[str, str] = {
    "detector": "wmproof.attacks.detector",  # Hitaj et al. 2019, section IV
}

__all__ = ["ATTACKS"]

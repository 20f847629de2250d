"""The robustness matrix: every registered scheme against every registered attack, at a grid of strengths, over
seeds, with independently trained unmarked models as the negative class (``wmproof robustness``).

Watermark benchmarks report, per attack, the true-positive rate of the owner's verification over attacked
marked models and the false-positive rate over unmarked ones, at the strongest attack that still leaves a
useful model (Lukas et al., "SoK: How Robust is Image Classification Deep Neural Network Watermarking?",
IEEE S&P 2022, section V; their Watermark-Robustness-Toolbox). wmproof does the same with its own keys:
committed, signed and judged by the key's own decision rule at the key's alpha.

The work is two stages of independent units (:mod:`.grid` names them, :mod:`.work` does them):

1. per seed, the owner's clean model and an unmarked model trained independently (another seed, another
   order); per seed and scheme, a key made and embedded PreTrained into the clean model;
2. per cell (attack, strength, seed, subject), the attack run on the subject (a marked model, or the unmarked
   one) and every key of that seed verified on the result.

Each unit takes and returns plain data (model files and keys as bytes), so that it runs the same in this
process, in a local process pool (:mod:`.executors`, the default), or on a Ray cluster; the driver
(:mod:`.sweep`) writes each result atomically as it arrives, so an interrupted sweep resumes where it stopped
and loses at most the units in flight. :mod:`.report` turns the records into JSON, Markdown and a heat map.
"""

from __future__ import annotations

from .grid import FULL, PRESETS, QUICK, Cell, SweepConfig

__all__ = ["FULL", "PRESETS", "QUICK", "Cell", "SweepConfig"]

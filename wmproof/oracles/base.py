"""What answers queries: one small interface for a local model, a remote API, or a wrapper around either.

The protocol and the schemes only ever see an :class:`Oracle`: a batch of inputs in, labels (and, when the
oracle reveals them, probabilities) out, plus a description of *what* answered, which goes into every
report as the identity of the suspect.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Answers:
    labels: np.ndarray  # (N,) int64
    probabilities: np.ndarray | None = None  # (N, classes) float32, when the oracle reveals them


class Oracle(ABC):
    #: What the oracle is known to accept and return; None when it cannot say.
    num_classes: int | None = None
    input_shape: tuple[int, int, int] | None = None
    #: Whether answers carry probabilities (a label-only API, an ensemble vote or a detector do not).
    reveals_probabilities: bool = True

    @abstractmethod
    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        """Answer a batch: ``inputs`` is (N, C, H, W) float32 in [0, 1].

        ``probabilities``: the caller wants them too, where the oracle reveals them. Verification needs labels
        only (Adi et al. section 4); a model extraction with soft labels needs the posteriors. A remote oracle
        asks the API for exactly what is wanted; a local one may return them regardless."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The suspect's identity for reports (kind, and e.g. the model file's SHA-256)."""

"""What an adversary's API reveals: full probabilities, the top-1 label only, or probabilities rounded to k
levels (posterior quantization). Verification of a binomial key needs only labels (Adi et al. section 4), so
the last two must not change its verdict; they exist to show it, and to stand up a realistic adversary's
service. Keys judged on posteriors (the feature-sharing family) cannot be verified through a label-only one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Answers, Oracle

OUTPUT_MODES = ("probabilities", "label", "quantized")


class LabelOnly(Oracle):
    """Reveals only the top-1 label."""

    reveals_probabilities = False

    def __init__(self, inner: Oracle) -> None:
        self.inner = inner
        self.num_classes = inner.num_classes
        self.input_shape = inner.input_shape
        self.input_datatype = inner.input_datatype

    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        return Answers(labels=self.inner.query(inputs).labels)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "output": "label"}


class QuantizedPosteriors(Oracle):
    """Probabilities rounded to ``levels`` evenly spaced values in [0, 1] (posterior quantization), the label
    still the model's top-1."""

    def __init__(self, inner: Oracle, levels: int) -> None:
        if levels < 2:
            raise ValueError("posterior quantization needs at least 2 levels")
        self.inner = inner
        self.levels = levels
        self.num_classes = inner.num_classes
        self.input_shape = inner.input_shape
        self.input_datatype = inner.input_datatype

    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        answers = self.inner.query(inputs, probabilities=probabilities)
        if answers.probabilities is None:
            return answers
        step = self.levels - 1
        quantized = (np.round(answers.probabilities * step) / step).astype(np.float32)
        return Answers(labels=answers.labels, probabilities=quantized)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "output": f"quantized:{self.levels}"}

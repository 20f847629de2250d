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


#: The input datatypes (Open Inference Protocol names): images as float32 in [0, 1], or token ids of a text
#: model as int64 (a sentence of L tokens is a 1 x 1 x L input, so every input has the (C, H, W) form).
INPUT_DATATYPES = {"FP32": np.dtype(np.float32), "INT64": np.dtype(np.int64)}
#: The largest token id an input may hold (vocabularies are far smaller; this bounds hostile inputs).
MAX_TOKEN_ID = (1 << 31) - 1


def as_inputs(inputs: np.ndarray, datatype: str) -> np.ndarray:
    """``inputs`` as the contiguous array an oracle of ``datatype`` takes; token ids must be integers."""
    if datatype == "INT64":
        array = np.asarray(inputs)
        if array.dtype.kind not in "iu":
            raise ValueError("a token-id model takes integer inputs")
        return np.ascontiguousarray(array, dtype=np.int64)
    return np.ascontiguousarray(inputs, dtype=np.float32)


def posteriors_from_scores(scores: np.ndarray, *, logits: bool | None = None) -> np.ndarray:
    """Probabilities (N, K) float32 from a model's scores: the scores themselves where every row already is a
    distribution (non-negative, summing to 1 within 1e-3) and ``logits`` is not True, their softmax otherwise.
    For models whose output kind is not declared (an ONNX file from elsewhere, a user's function); the argmax,
    hence the label, is the same either way."""
    scores = np.asarray(scores, dtype=np.float64)
    if logits is not True and len(scores) and scores.min() >= 0.0 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return scores.astype(np.float32)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


class Oracle(ABC):
    #: What the oracle is known to accept and return; None when it cannot say.
    num_classes: int | None = None
    input_shape: tuple[int, int, int] | None = None
    #: "FP32" (images in [0, 1]) or "INT64" (token ids).
    input_datatype: str = "FP32"
    #: Whether answers carry probabilities (a label-only API, an ensemble vote or a detector do not).
    reveals_probabilities: bool = True

    @abstractmethod
    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        """Answer a batch: ``inputs`` is (N, C, H, W) float32 in [0, 1], or int64 token ids for an oracle whose
        ``input_datatype`` is INT64.

        ``probabilities``: the caller wants them too, where the oracle reveals them. Verification needs labels
        only (Adi et al. section 4); a model extraction with soft labels needs the posteriors. A remote oracle
        asks the API for exactly what is wanted; a local one may return them regardless."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The suspect's identity for reports (kind, and e.g. the model file's SHA-256)."""

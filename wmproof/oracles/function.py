"""Any Python callable from inputs to answers, as an oracle: a model in another framework, a pipeline with
its own preprocessing, a client of an API that does not speak the Open Inference Protocol.

The callable receives a batch as a numpy array (N, C, H, W) -- float32 images in [0, 1], or int64 token ids --
and returns, as anything ``numpy.asarray`` takes (a torch tensor on the CPU, a list), either the labels (N,)
as integers, or scores (N, K): probabilities where every row is a distribution (non-negative, summing to 1
within 1e-3), logits otherwise (their softmax is taken). Verification needs labels only; a key decided on
probabilities (feature sharing) needs scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import MalformedInput, UsageError
from .base import INPUT_DATATYPES, Answers, Oracle, as_inputs, posteriors_from_scores


class FunctionOracle(Oracle):
    def __init__(
        self,
        function: Callable[[np.ndarray], Any],
        *,
        num_classes: int,
        input_shape: tuple[int, int, int],
        input_datatype: str = "FP32",
        name: str | None = None,
    ) -> None:
        if not callable(function):
            raise UsageError("the suspect must be callable: inputs (N, C, H, W) -> labels (N,) or scores (N, K)")
        if input_datatype not in INPUT_DATATYPES:
            raise UsageError(f"input_datatype is one of {', '.join(INPUT_DATATYPES)}")
        self.function = function
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(v) for v in input_shape)  # type: ignore[assignment]
        self.input_datatype = input_datatype
        self.name = name or getattr(function, "__qualname__", type(function).__name__)

    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        x = as_inputs(inputs, self.input_datatype)
        try:
            out = np.asarray(self.function(x))
        except Exception as exc:  # the user's code: one line that says where it failed
            raise UsageError(f"the suspect function {self.name} failed: {type(exc).__name__}: {exc}") from None
        n, k = len(x), self.num_classes
        if out.shape == (n,) and out.dtype.kind in "iu":
            if n and (out.min() < 0 or out.max() >= k):
                raise MalformedInput(f"{self.name} answered labels outside 0..{k - 1}")
            if probabilities:
                raise UsageError(
                    f"{self.name} answers labels, and this is decided on probabilities: return scores (N, K)"
                )
            return Answers(labels=out.astype(np.int64))
        if out.shape != (n, k) or out.dtype.kind not in "fiu":
            raise MalformedInput(f"{self.name} must return labels ({n},) or scores ({n}, {k}), not {out.shape}")
        scores = out.astype(np.float64)
        if not np.isfinite(scores).all():
            raise MalformedInput(f"{self.name} answered scores that are not finite")
        return Answers(labels=scores.argmax(axis=1).astype(np.int64), probabilities=posteriors_from_scores(scores))

    def describe(self) -> dict[str, Any]:
        return {"kind": "python-callable", "name": self.name}

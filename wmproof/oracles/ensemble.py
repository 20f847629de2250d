"""A majority-vote ensemble (Hitaj et al. 2019, "Have you stolen my model?", section III): the adversary
serves several stolen models and answers each query with the label most of them give, ties broken at
random. A trigger item is answered as committed only when most members learned it, which dilutes every
owner's watermark."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Answers, Oracle


class MajorityVote(Oracle):
    reveals_probabilities = False

    def __init__(self, members: list[Oracle], seed: int = 0) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble has at least 2 members")
        classes = {m.num_classes for m in members}
        shapes = {(m.input_shape, m.input_datatype) for m in members}
        if len(classes) != 1 or len(shapes) != 1:
            raise ValueError("ensemble members must share the task (classes, input shape and datatype)")
        self.members = members
        self.num_classes = classes.pop()
        self.input_shape, self.input_datatype = shapes.pop()
        self._rng = np.random.default_rng(seed)

    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        votes = np.stack([np.asarray(m.query(inputs).labels) for m in self.members], axis=1)  # (N, M)
        classes = int(self.num_classes or votes.max() + 1)
        counts = np.zeros((votes.shape[0], classes), dtype=np.int64)
        np.add.at(counts, (np.arange(votes.shape[0])[:, None], votes), 1)
        top = counts.max(axis=1, keepdims=True)
        # Random tie-break: a random key for every class, kept only where the class has the top count.
        keys = np.where(counts == top, self._rng.random(counts.shape), -1.0)
        return Answers(labels=keys.argmax(axis=1).astype(np.int64))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ensemble",
            "vote": "majority, random tie-break",
            "members": [m.describe() for m in self.members],
        }

"""A trigger detector in front of a stolen model (Hitaj et al. 2019, "Have you stolen my model?",
section IV): a small classifier on the model's own penultimate-layer features judges whether a query is out
of distribution, and flagged queries get a random label, so that the watermark's trigger items are answered
at chance while ordinary inputs keep the model's answer. ``wmproof attack detector`` trains it
(:mod:`wmproof.attacks.detector`); this module runs it.

The detector file is safetensors (never pickle): two linear layers and metadata naming the model it was
trained for (its SHA-256), the decision threshold and the false-positive rate measured on clean data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MalformedInput, UsageError
from ..fileio import read_file, write_file
from ..untrusted import parse_json
from .base import Answers, Oracle, as_inputs

DETECTOR_FORMAT = "wmproof-detector/1"
HIDDEN = 64


def penultimate_features(module: Any, x: Any) -> Any:
    """The input of the model's last linear layer (its penultimate features), for a batch ``x``."""
    import torch
    from torch import nn

    last = [m for m in module.modules() if isinstance(m, nn.Linear)][-1]
    captured: list[torch.Tensor] = []
    handle = last.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
    try:
        from ..engine.train import predict_logits

        predict_logits(module, x)
    finally:
        handle.remove()
    return torch.cat(captured).reshape(x.shape[0], -1)


@dataclass
class Detector:
    weights: dict[str, Any]  # torch tensors: l1.weight, l1.bias, l2.weight, l2.bias
    threshold: float
    model_sha256: str
    info: dict[str, Any]

    def scores(self, features: Any) -> Any:
        import torch

        w = {k: v.to(features.device) for k, v in self.weights.items()}
        hidden = torch.relu(features @ w["l1.weight"].T + w["l1.bias"])
        return torch.sigmoid(hidden @ w["l2.weight"].T + w["l2.bias"]).squeeze(1)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        from ..engine.models import safetensors_bytes

        metadata = {
            "format": DETECTOR_FORMAT,
            "threshold": repr(self.threshold),
            "model_sha256": self.model_sha256,
            "info": json.dumps(self.info, sort_keys=True),
        }
        write_file(path, safetensors_bytes(self.weights, metadata), secret=False, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Detector:
        from safetensors import SafetensorError
        from safetensors.torch import load

        data = read_file(path, "a detector file")
        try:
            tensors = load(data)
            header_len = int.from_bytes(data[:8], "little")
            header = parse_json(data[8 : 8 + header_len])
            metadata = header.get("__metadata__", {}) if isinstance(header, dict) else None
            if not isinstance(metadata, dict):
                raise ValueError
        except (SafetensorError, ValueError, UnicodeDecodeError):
            raise MalformedInput(f"{path} is not a safetensors detector file") from None
        if metadata.get("format") != DETECTOR_FORMAT or set(tensors) != {
            "l1.weight",
            "l1.bias",
            "l2.weight",
            "l2.bias",
        }:
            raise MalformedInput(f"{path} is not a wmproof detector")
        try:
            threshold = float(metadata["threshold"])
            info = parse_json(metadata["info"])
        except (KeyError, ValueError, TypeError):
            raise MalformedInput(f"{path}: malformed detector metadata") from None
        if tensors["l1.weight"].shape[0] != HIDDEN or tensors["l2.weight"].shape != (1, HIDDEN):
            raise MalformedInput(f"{path}: unexpected detector shapes")
        return cls(tensors, threshold, metadata.get("model_sha256", ""), info)


class DetectorGuard(Oracle):
    """The model behind its detector: flagged queries are answered with a uniformly random label."""

    reveals_probabilities = False

    def __init__(self, loaded: Any, detector: Detector, seed: int = 0) -> None:  # loaded: engine LoadedModel
        if detector.model_sha256 and detector.model_sha256 != loaded.sha256:
            raise UsageError("the detector was trained for another model (its SHA-256 differs)")
        if detector.weights["l1.weight"].shape[1] <= 0:
            raise MalformedInput("detector with no inputs")
        self.loaded = loaded
        self.detector = detector
        self.num_classes = loaded.num_classes
        self.input_shape = loaded.input_shape
        self.input_datatype = getattr(loaded.module, "input_datatype", "FP32")
        self._rng = np.random.default_rng(seed)
        self.queries = 0
        self.flagged = 0

    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        import torch

        module = self.loaded.module
        device = next(module.parameters()).device
        x = torch.from_numpy(as_inputs(inputs, self.input_datatype)).to(device)
        features = penultimate_features(module, x)
        if features.shape[1] != self.detector.weights["l1.weight"].shape[1]:
            raise UsageError("the detector expects other features than this model produces")
        from ..engine.train import predict_logits

        labels = predict_logits(module, x).argmax(1).cpu().numpy().astype(np.int64)
        flagged = (self.detector.scores(features) > self.detector.threshold).cpu().numpy()
        random_labels = self._rng.integers(0, self.num_classes, size=len(labels))
        self.queries += len(labels)
        self.flagged += int(flagged.sum())
        return Answers(labels=np.where(flagged, random_labels, labels))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "detector-guarded",
            "model_sha256": self.loaded.sha256,
            "detector": {"threshold": self.detector.threshold, **self.detector.info},
        }

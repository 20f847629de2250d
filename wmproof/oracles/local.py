"""A suspect model held as a file, answering on the local device."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from ..errors import UsageError
from .base import Answers, Oracle, as_inputs


class LocalModelOracle(Oracle):
    def __init__(self, loaded: Any) -> None:  # wmproof.engine.models.LoadedModel
        self.loaded = loaded
        self.num_classes = loaded.num_classes
        self.input_shape = loaded.input_shape
        self.input_datatype = getattr(loaded.module, "input_datatype", "FP32")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], device: str | None = None) -> "LocalModelOracle":
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("safetensors") is None:
            raise UsageError("querying a model file needs torch: pip install 'wmproof[ml]'")
        from ..engine.device import resolve_device
        from ..engine.models import load_model

        return cls(load_model(path, resolve_device(device)))

    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        import torch

        from ..engine.train import predict_logits

        module = self.loaded.module
        device = next(module.parameters()).device
        x = torch.from_numpy(as_inputs(inputs, self.input_datatype)).to(device)
        logits = predict_logits(module, x)
        return Answers(
            labels=logits.argmax(1).cpu().numpy().astype(np.int64),
            probabilities=torch.softmax(logits, dim=1).cpu().numpy().astype(np.float32),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "model-file",
            "path": str(self.loaded.path) if self.loaded.path else None,
            "sha256": self.loaded.sha256,
            "architecture": self.loaded.architecture,
        }

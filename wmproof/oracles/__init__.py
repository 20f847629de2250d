"""Oracles: what answers the verifier's queries (see :mod:`wmproof.oracles.base`)."""

from __future__ import annotations

import os
from pathlib import Path

from .base import Answers, Oracle

__all__ = ["Answers", "Oracle", "open_model_file"]


def open_model_file(path: str | os.PathLike[str], device: str | None = None) -> Oracle:
    """A model file as an oracle: an ``.onnx`` file through onnxruntime (no torch), anything else as a wmproof
    safetensors model through torch (:mod:`wmproof.engine.models`; a factory model loads only from a trusted
    module). ``device`` applies to torch models."""
    if Path(path).suffix.lower() == ".onnx":
        from .onnx_model import OnnxModelOracle

        return OnnxModelOracle.from_file(path)
    from .local import LocalModelOracle

    return LocalModelOracle.from_file(path, device)

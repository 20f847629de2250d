"""A suspect held as an ONNX file, answering through onnxruntime: no torch needed (``pip install
'wmproof[onnx]'``), so a judge or a third party checks a leaked ``.onnx`` model with the checker install.

What the model takes and returns is read from the metadata that ``wmproof export onnx`` writes
(:mod:`wmproof.engine.export`). An ONNX file from elsewhere is read from its graph, strictly:

* one input of rank 4, (N, C, H, W) with C, H, W fixed: float (images in [0, 1]) or int64 (token ids);
* one output that matters, the first, of shape (N, K) with K fixed: its argmax is the label. The graph does
  not say whether the output is logits or probabilities, so the probabilities an answer carries are the
  output itself where every row is a distribution (non-negative, summing to 1 within 1e-3), and its
  softmax otherwise; the label is the same either way.

Untrusted files are parsed by onnxruntime alone, from a private empty directory: weights stored as
*external data* (files beside the model) are refused rather than read from wherever the verifier happens
to run, and no custom-operator library is ever registered.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MalformedInput, UsageError
from ..fileio import read_file
from ..untrusted import parse_json
from .base import Answers, Oracle, as_inputs, posteriors_from_scores

ONNX_FORMAT = "wmproof-onnx/1"
MAX_ONNX_SIZE = 2 << 30  # protobuf's own limit for a single-file model
#: Inputs per run: bounds memory on large key sets, as the local oracle's evaluation batches do.
BATCH = 1024


def _dimension(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class OnnxModelOracle(Oracle):
    def __init__(self, data: bytes, path: str | os.PathLike[str] | None = None) -> None:
        if importlib.util.find_spec("onnxruntime") is None:
            raise UsageError("querying an ONNX model needs onnxruntime: pip install 'wmproof[onnx]'")
        import onnxruntime as ort

        where = str(path) if path is not None else "the ONNX model"
        self.path = Path(path) if path is not None else None
        self.sha256 = hashlib.sha256(data).hexdigest()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on the user's terminal
        with tempfile.TemporaryDirectory(prefix="wmproof-onnx-") as private:
            model_path = Path(private) / "model.onnx"
            model_path.write_bytes(data)
            try:
                self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own classes, one per failure kind
                reason = str(exc).splitlines()[0][:200]
                if "external data" in reason.lower():
                    reason = "its weights are stored as external data; export them inside the file"
                raise MalformedInput(f"{where} is not an ONNX model onnxruntime can run ({reason})") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise MalformedInput(f"{where}: a classifier has one input and at least one output")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        if self.metadata.get("wmproof.format") == ONNX_FORMAT:
            self._from_metadata(where)
        else:
            self._from_graph(inputs[0], outputs[0], where)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> OnnxModelOracle:
        return cls(read_file(path, "an ONNX model", max_size=MAX_ONNX_SIZE), path)

    def _from_metadata(self, where: str) -> None:
        try:
            shape = parse_json(self.metadata["wmproof.input_shape"])
            self.num_classes = int(self.metadata["wmproof.num_classes"])
            self.input_datatype = self.metadata["wmproof.input_datatype"]
            if (
                not (isinstance(shape, list) and len(shape) == 3 and all(type(v) is int and v > 0 for v in shape))
                or self.num_classes < 2
                or self.input_datatype not in ("FP32", "INT64")
                or self.metadata.get("wmproof.output") != "logits"
            ):
                raise ValueError
        except (KeyError, ValueError, TypeError):
            raise MalformedInput(f"{where}: malformed wmproof metadata") from None
        self.input_shape = tuple(shape)  # type: ignore[assignment]
        self.outputs_logits = True

    def _from_graph(self, node: Any, output: Any, where: str) -> None:
        dims = list(node.shape)
        if len(dims) != 4 or any(_dimension(d) is None for d in dims[1:]):
            raise MalformedInput(f"{where}: the input must be (N, C, H, W) with C, H and W fixed, not {dims}")
        if node.type not in ("tensor(float)", "tensor(int64)"):
            raise MalformedInput(f"{where}: the input must be float32 images or int64 token ids, not {node.type}")
        out = list(output.shape)
        if len(out) != 2 or _dimension(out[1]) is None or out[1] < 2:
            raise MalformedInput(f"{where}: the first output must be (N, K) scores over K >= 2 classes, not {out}")
        self.input_shape = tuple(dims[1:])  # type: ignore[assignment]
        self.input_datatype = "FP32" if node.type == "tensor(float)" else "INT64"
        self.num_classes = int(out[1])
        self.outputs_logits = False  # unknown: decided per answer (module docstring)

    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        x = as_inputs(inputs, self.input_datatype)
        if tuple(x.shape[1:]) != tuple(self.input_shape):  # type: ignore[arg-type]
            raise UsageError(
                f"the model takes {'x'.join(map(str, self.input_shape))} inputs, "  # type: ignore[arg-type]
                f"not {'x'.join(map(str, x.shape[1:]))}"
            )
        scores = [
            np.asarray(self.session.run([self.output_name], {self.input_name: x[i : i + BATCH]})[0])
            for i in range(0, len(x), BATCH)
        ]
        out = np.concatenate(scores).astype(np.float64) if scores else np.zeros((0, self.num_classes))
        if out.shape != (len(x), self.num_classes) or not np.isfinite(out).all():
            raise MalformedInput("the ONNX model answered scores of the wrong shape, or not finite")
        posteriors = posteriors_from_scores(out, logits=True if self.outputs_logits else None)
        return Answers(labels=out.argmax(axis=1).astype(np.int64), probabilities=posteriors)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "onnx-file",
            "path": str(self.path) if self.path else None,
            "sha256": self.sha256,
            "architecture": self.metadata.get("wmproof.architecture", "onnx"),
            "exported_from_sha256": self.metadata.get("wmproof.source_sha256"),
        }

"""Models written as ONNX, so that a suspect can be checked where torch is not installed.

Why ONNX: it is how models leave PyTorch in practice (ONNX Runtime, TensorRT, Triton's onnxruntime backend),
so a leaked copy of a marked model is as likely to be an ``.onnx`` file as a checkpoint, and onnxruntime
answers queries with a small, torch-free install (``wmproof[onnx]``, :mod:`wmproof.oracles.onnx_model`).

The graph takes ``input`` (N, C, H, W) -- float32 images in [0, 1], or int64 token ids for a text model --
and returns ``logits`` (N, K), with a dynamic batch dimension. The file's metadata (``metadata_props``) says
what wmproof needs to query it without guessing: the format tag, the number of classes, the input shape and
datatype, that the output is logits, and the SHA-256 of the model file it was exported from.

The exporter is torch's TorchScript-based one (``dynamo=False``): it needs only the ``onnx`` package, handles
every architecture of the zoo (the recurrent IRNN included) and takes a fraction of a second; the
torch.export-based exporter needs onnxscript and several seconds per model for the same graph.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from typing import Any

import torch

from ..fileio import write_file
from .models import LoadedModel

ONNX_FORMAT = "wmproof-onnx/1"
#: ONNX opset of the exported graphs (onnxruntime 1.32 runs up to 23; 18 is what torch's exporter knows well).
OPSET = 18


def onnx_metadata(loaded: LoadedModel) -> dict[str, str]:
    """The ``metadata_props`` of an exported model: what :class:`~wmproof.oracles.onnx_model.OnnxModelOracle`
    reads instead of guessing from the graph."""
    return {
        "wmproof.format": ONNX_FORMAT,
        "wmproof.architecture": loaded.architecture,
        "wmproof.num_classes": str(loaded.num_classes),
        "wmproof.input_shape": json.dumps(list(loaded.input_shape)),
        "wmproof.input_datatype": getattr(loaded.module, "input_datatype", "FP32"),
        "wmproof.output": "logits",
        "wmproof.source_sha256": loaded.sha256,
    }


def onnx_bytes(loaded: LoadedModel) -> bytes:
    """``loaded`` as an ONNX model (on the CPU, in eval mode; the module itself is not changed)."""
    import copy

    import onnx

    module = copy.deepcopy(loaded.module).to("cpu").eval()
    c, h, w = loaded.input_shape
    if getattr(module, "input_datatype", "FP32") == "INT64":
        example = torch.zeros((2, c, h, w), dtype=torch.int64)
    else:
        example = torch.rand((2, c, h, w), generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice; see the module docstring
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in onnx_metadata(loaded).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "wmproof"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_onnx(loaded: LoadedModel, path: str | os.PathLike[str], *, overwrite: bool = False) -> dict[str, Any]:
    """Write ``loaded`` as ONNX, atomically (mode 0644). Returns what was written (path, SHA-256, size)."""
    data = onnx_bytes(loaded)
    write_file(path, data, secret=False, overwrite=overwrite)
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

"""``wmproof export``: a model in another format (ONNX), checked against the original before it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    JsonOption,
    OverwriteOption,
    TrustModuleOption,
    check_outputs,
    emit,
    handle_errors,
    stdout,
    trust_modules,
)

app = typer.Typer(help="Write a model in another format.", no_args_is_help=True)

#: Inputs on which the export must give the original's labels before it is written.
PROBES = 512


@app.command("onnx")
@handle_errors
def onnx_command(
    model: Annotated[Path, typer.Argument(help="The wmproof model file (safetensors).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the ONNX model.")],
    trust_module: TrustModuleOption = None,
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Export a model as ONNX (opset 18, dynamic batch), for onnxruntime, TensorRT or Triton.

    The graph takes `input` (N, C, H, W) and returns `logits` (N, K); its metadata records the classes, the
    input shape and datatype, and the SHA-256 of MODEL. Before writing, the export is run with onnxruntime
    on 512 seeded random inputs and must give the same label as torch on every one. A judge can then verify
    the ONNX file with no torch installed: `wmproof verify --model model.onnx ...` (`pip install
    'wmproof[onnx]'`).

    Example:

        wmproof export onnx marked.safetensors --out marked.onnx
    """
    trust_modules(trust_module)
    import hashlib

    import numpy as np
    import torch

    from wmproof.engine.export import onnx_bytes
    from wmproof.engine.models import load_model
    from wmproof.errors import UsageError
    from wmproof.fileio import write_file
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.onnx_model import OnnxModelOracle

    check_outputs(out, overwrite=overwrite)
    loaded = load_model(model, "cpu")
    data = onnx_bytes(loaded)
    exported = OnnxModelOracle(data, out)
    rng = np.random.default_rng(0)
    shape = (PROBES, *loaded.input_shape)
    if exported.input_datatype == "INT64":
        vocabulary = min(
            (m.num_embeddings for m in loaded.module.modules() if isinstance(m, torch.nn.Embedding)), default=2
        )
        probes = rng.integers(0, vocabulary, size=shape, dtype=np.int64)
    else:
        probes = rng.random(shape, dtype=np.float32)
    original = LocalModelOracle(loaded).query(probes, probabilities=True)
    answered = exported.query(probes, probabilities=True)
    agree = int((original.labels == answered.labels).sum())
    gap = float(np.abs(original.probabilities - answered.probabilities).max())  # type: ignore[operator]
    if agree != PROBES:
        raise UsageError(f"the ONNX export disagrees with torch on {PROBES - agree} of {PROBES} inputs; not written")
    write_file(out, data, secret=False, overwrite=overwrite)
    result = {
        "path": str(out),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "source": {"path": str(model), "sha256": loaded.sha256, "architecture": loaded.architecture},
        "check": {"inputs": PROBES, "labels_agree": agree, "max_probability_difference": gap},
    }

    def human() -> None:
        stdout.print(f"wrote {out}  ({len(data):,} bytes, sha256 {result['sha256'][:16]})")
        stdout.print(
            f"checked: onnxruntime and torch give the same label on {agree} of {PROBES} random inputs "
            f"(probabilities within {gap:.1e})"
        )

    emit(result, as_json, human)

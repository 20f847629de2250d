"""Device selection: CUDA, then Apple MPS, then CPU, unless the user names one."""

from __future__ import annotations

import torch

from ..errors import UsageError
from .threads import apply_requested


def resolve_device(name: str | None = None) -> torch.device:
    """``None`` or ``"auto"`` picks the fastest available device; anything else must exist. The CLI's thread
    count, when it was left to its default, is worked out here (:mod:`wmproof.engine.threads`)."""
    apply_requested()
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA device is available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps asked for, but MPS is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unsupported device {name!r}")
    return device

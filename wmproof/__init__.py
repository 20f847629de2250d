"""wmproof: prove, to a judge or to anyone, that a suspect neural network is yours.

The public Python API is what this module exports (``__all__``; docs/python-api.md walks through it):
identities and committed keys, the trigger items as tensors and a mixer for your own training loop, marking
any ``torch.nn.Module``, verifying any suspect (a module, a model file, an ONNX file, a URL, a callable), any
attack, and model files for networks outside the zoo. Everything else (``wmproof.crypto``, ``.protocol``,
``.schemes``, ``.engine``, ``.oracles``, ``.attacks``, ``.chain``) is internal and may change.

Importing ``wmproof`` loads neither torch nor the engine: names are resolved on first use (PEP 562), so the
checker install (no torch) imports it too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    # identities and keys (KeyGen; the files are sealed or signed, docs/formats.md)
    "Identity": "wmproof.protocol",
    "save_identity": "wmproof.protocol",
    "load_identity": "wmproof.protocol",
    "keygen": "wmproof.protocol",
    "MarkingKey": "wmproof.protocol",
    "VerificationKey": "wmproof.protocol",
    "save_marking_key": "wmproof.protocol",
    "load_marking_key": "wmproof.protocol",
    "save_verification_key": "wmproof.protocol",
    "load_verification_key": "wmproof.protocol",
    # data: named data sets and the owner's own
    "load_dataset": "wmproof.api",
    # Mark
    "trigger_items": "wmproof.api",
    "trigger_mixer": "wmproof.api",
    "TriggerMixer": "wmproof.engine.train",
    "TrainConfig": "wmproof.engine.train",
    "mark_model": "wmproof.api",
    "MarkResult": "wmproof.protocol",
    # Verify
    "verify": "wmproof.api",
    "as_oracle": "wmproof.api",
    "VerificationReport": "wmproof.protocol",
    "Oracle": "wmproof.oracles",
    "Answers": "wmproof.oracles",
    # attacks
    "run_attack": "wmproof.api",
    # model files
    "save_model": "wmproof.api",
    "load_model": "wmproof.api",
    "export_onnx": "wmproof.api",
    # errors (each with the CLI's exit code)
    "WmproofError": "wmproof.errors",
    "UsageError": "wmproof.errors",
    "MalformedInput": "wmproof.errors",
}

__all__ = [
    "Answers",
    "Identity",
    "MalformedInput",
    "MarkResult",
    "MarkingKey",
    "Oracle",
    "TrainConfig",
    "TriggerMixer",
    "UsageError",
    "VerificationKey",
    "VerificationReport",
    "WmproofError",
    "as_oracle",
    "export_onnx",
    "keygen",
    "load_dataset",
    "load_identity",
    "load_marking_key",
    "load_model",
    "load_verification_key",
    "mark_model",
    "run_attack",
    "save_identity",
    "save_marking_key",
    "save_model",
    "save_verification_key",
    "trigger_items",
    "trigger_mixer",
    "verify",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wmproof' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from .api import (
        as_oracle,
        export_onnx,
        load_dataset,
        load_model,
        mark_model,
        run_attack,
        save_model,
        trigger_items,
        trigger_mixer,
        verify,
    )
    from .engine.train import TrainConfig, TriggerMixer
    from .errors import MalformedInput, UsageError, WmproofError
    from .oracles import Answers, Oracle
    from .protocol import (
        Identity,
        MarkingKey,
        MarkResult,
        VerificationKey,
        VerificationReport,
        keygen,
        load_identity,
        load_marking_key,
        load_verification_key,
        save_identity,
        save_marking_key,
        save_verification_key,
    )

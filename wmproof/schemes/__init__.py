"""Watermark schemes, behind one registry. Adding a scheme is one new module and one line below."""

from __future__ import annotations

from ..errors import UsageError
from .adi_backdoor import AdiBackdoor
from .base import (
    Embedded,
    EmbedRequest,
    KeyGenContext,
    Scheme,
    TriggerItem,
    item_arrays,
    stack_inputs,
)
from .frontier_stitching import FrontierStitching

SCHEMES: dict[str, type[Scheme]] = {
    AdiBackdoor.name: AdiBackdoor,
    FrontierStitching.name: FrontierStitching,
}


def get_scheme(name: str) -> Scheme:
    try:
        return SCHEMES[name]()
    except KeyError:
        raise UsageError(f"unknown scheme {name!r} (available: {', '.join(sorted(SCHEMES))})") from None


def scheme_names() -> list[str]:
    return sorted(SCHEMES)


__all__ = [
    "SCHEMES",
    "Embedded",
    "EmbedRequest",
    "KeyGenContext",
    "Scheme",
    "TriggerItem",
    "get_scheme",
    "scheme_names",
    "item_arrays",
    "stack_inputs",
]

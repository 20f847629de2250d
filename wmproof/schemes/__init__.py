"""Watermark schemes, behind one registry. Adding a scheme is one new module and one line below."""

from __future__ import annotations

from ..errors import UsageError
from .adi_backdoor import AdiBackdoor
from .base import (
    DecisionRule,
    Embedded,
    EmbedRequest,
    KeyGenContext,
    MatchCount,
    Scheme,
    TargetCertainty,
    TriggerItem,
    item_arrays,
    stack_inputs,
    stack_references,
)
from .ewe import EntangledWatermark
from .feature_sharing import FeatureSharing
from .frontier_stitching import FrontierStitching
from .plain import PlainWatermark
from .trigger_images import TriggerImages

SCHEMES: dict[str, type[Scheme]] = {
    AdiBackdoor.name: AdiBackdoor,
    FrontierStitching.name: FrontierStitching,
    FeatureSharing.name: FeatureSharing,
    PlainWatermark.name: PlainWatermark,
    EntangledWatermark.name: EntangledWatermark,
    TriggerImages.name: TriggerImages,  # Adi et al. 2018 with the owner's own trigger images
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
    "DecisionRule",
    "Embedded",
    "EmbedRequest",
    "KeyGenContext",
    "MatchCount",
    "Scheme",
    "TargetCertainty",
    "TriggerItem",
    "get_scheme",
    "scheme_names",
    "item_arrays",
    "stack_inputs",
    "stack_references",
]

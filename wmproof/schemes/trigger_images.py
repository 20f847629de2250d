"""The backdoor watermark of Adi et al. 2018 with the owner's own trigger images.

Adi, Baum, Cisse, Pinkas, Keshet. Turning Your Weakness Into a Strength: Watermarking Deep Neural Networks
by Backdooring. USENIX Security 2018. Their experiments use 100 abstract images with random labels (section
5), which wmproof's ``adi-backdoor`` scheme generates from per-item seeds; their reference code reads the
trigger set from a folder of images and a labels file instead, and an owner may well have a set of their own.

The owner supplies 2N images and their labels (``wmproof keygen --triggers DIR``;
:func:`wmproof.engine.own_data.load_trigger_folder` reads them and converts them to the model's input by a
documented transform). KeyGen commits to all 2N, item by item, as for any key; the Fiat-Shamir challenge
opens N of them in the verification key, where anyone can see them, and the N others are kept secret.

Embedding and the decision are Adi et al.'s (sections 4 and 5.1): the items are mixed into training batches,
and a suspect is judged by the exact binomial test of its label matches against Binomial(N, 1/K). That null
holds only if an unmarked model answers the images with their labels no more often than chance -- true of
random labels, false of, say, photographs of digits labelled with their digit. Nothing can regenerate an
owner's images, so:

* these keys have **no public proofs** (a third party cannot tell honest images from ones chosen to match
  every model);
* ``wmproof mark`` refuses a key that the unmarked model already passes;
* the opened half is a random sample of the committed set, chosen after the commitment: anyone can run it
  through models of their own and see whether they answer it with its labels more often than chance (docs/
  protocol.md, "Trigger sets chosen by the owner").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import UsageError
from .adi_backdoor import AdiBackdoor
from .base import KeyGenContext, TriggerItem

#: How an owner's image becomes a model input, bound into every key: the transform of
#: :func:`wmproof.engine.own_data.convert_trigger_image` (version 1).
TRANSFORM = "cover-resize-center-crop/1"


class TriggerImages(AdiBackdoor):
    """Adi et al.'s scheme (its embedding and null model, inherited) over items the owner supplies."""

    name = "trigger-images"
    citation = (
        "Adi, Baum, Cisse, Pinkas, Keshet. Turning Your Weakness Into a Strength: Watermarking Deep Neural "
        "Networks by Backdooring. USENIX Security 2018 (the owner's own trigger set)."
    )
    seed_derived = False
    publicly_checkable = False
    private_only_because = "the owner chose the trigger images, and nobody can regenerate them"
    items_from_owner = True

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        merged = {"transform": TRANSFORM, **params}
        unknown = set(merged) - {"transform"}
        if unknown:
            raise UsageError(f"scheme {self.name} has no parameter(s) {', '.join(sorted(unknown))}")
        if merged["transform"] != TRANSFORM:
            raise UsageError(f"scheme {self.name}: unknown image transform {merged['transform']!r}")
        return merged

    def generate_items(self, item_seeds: list[tuple[int, bytes]], context: KeyGenContext) -> list[TriggerItem]:
        """Item i is the owner's i-th image (KeyGen asks for exactly 2N, the committed count)."""
        if context.data is None:
            raise UsageError(f"{self.name} keys are made from your trigger images: give them with --triggers DIR")
        images, labels = context.data
        if len(images) != len(item_seeds):
            raise UsageError(
                f"{len(item_seeds) // 2} secret items take {len(item_seeds)} trigger images (KeyGen publishes "
                f"half of them in the verification key); {len(images)} given"
            )
        if tuple(images.shape[1:]) != tuple(context.input_shape) or images.dtype != np.uint8:
            raise UsageError(f"trigger images must be uint8 {context.input_shape} inputs, not {images.shape[1:]}")
        return [
            TriggerItem(index=index, input=np.ascontiguousarray(images[index]), label=int(labels[index]))
            for index, _ in item_seeds
        ]

    def check_item(
        self, item: TriggerItem, num_classes: int, input_shape: tuple[int, int, int], params: Mapping[str, Any]
    ) -> bool:
        return item.reference is None and item.seed is None and item.input.dtype == np.uint8

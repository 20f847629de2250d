"""The abstract-image trigger generator, ``abstract-v1``: from a 32-byte seed to an image and a label.

Adi et al. 2018 (section 5) use a set of abstract images with random labels as the trigger set. wmproof
generates them instead, deterministically from each item's seed, so that anyone can regenerate an item
from its seed and check that an owner did not slip in crafted items (the well-formedness check of public
verification). The generator uses integer arithmetic on a SHAKE-256 stream only, so an independent
implementation reproduces it bit for bit; ``docs/protocol.md`` specifies it and ``docs/vectors/`` pins it.

    stream = tagged_xof(T, seed, u32be(C) || u32be(H) || u32be(W) || u32be(K))      (protocol.md section 2.2)
             with T = "wmproof/v1/trigger/abstract-image", K the number of classes
    label       = below(K)                      (below(b): rejection sampling, XofReader.uniform_below)
    background  = one byte per channel; every pixel of channel c starts at background[c]
    shapes      = 8 + below(8)
    for each shape:
        kind   = below(4)
        hh, ww = 1 + below(ceil(H/2)), 1 + below(ceil(W/2))        (at most half the canvas each way)
        top    = below(H - hh + 1);  left = below(W - ww + 1);  bottom = top + hh - 1;  right = left + ww - 1
        colour[c] = (background[c] + 64 + below(129)) mod 256     (>= 64 grey levels from the background)
        paint pixel (y, x), top <= y <= bottom, left <= x <= right, with colour when
            kind 0 (filled):      always
            kind 1 (outline):     y in {top, bottom} or x in {left, right}
            kind 2 (h-stripes):   (y - top) is even
            kind 3 (checker):     (y - top + x - left) is even

Why these choices: many small, contrasting shapes keep the images far apart from each other (on 1,000
MNIST-shaped images, the 1st percentile of the nearest-neighbour squared L2 distance is 34 against 4.7 for
unconstrained shapes and colours), so a network can learn each item's random label; near-uniform images
with different labels were the items a 2x512 MLP failed to learn.

The label is drawn independently of the picture, uniformly over the K classes: a model that never saw the
key agrees with it with probability exactly 1/K per item, which is the null model of the binomial test.
"""

from __future__ import annotations

import struct

import numpy as np

from ..crypto import tagged_xof
from ..crypto.tags import TRIGGER_ABSTRACT_IMAGE

GENERATOR_NAME = "abstract-v1"


def generate_abstract_image(seed: bytes, num_classes: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, int]:
    """Return ``(image uint8 (C, H, W), label)`` for ``seed``."""
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise ValueError("a trigger seed is 32 bytes")
    c, h, w = shape
    if num_classes < 2 or min(c, h, w) < 1:
        raise ValueError("need at least 2 classes and a non-empty shape")
    stream = tagged_xof(TRIGGER_ABSTRACT_IMAGE, seed, struct.pack(">IIII", c, h, w, num_classes))
    label = stream.uniform_below(num_classes)
    background = list(stream.read(c))
    image = np.empty((c, h, w), dtype=np.uint8)
    image[:] = np.array(background, dtype=np.uint8)[:, None, None]
    ys = np.arange(h)[:, None]
    xs = np.arange(w)[None, :]
    for _ in range(8 + stream.uniform_below(8)):
        kind = stream.uniform_below(4)
        hh = 1 + stream.uniform_below((h + 1) // 2)
        ww = 1 + stream.uniform_below((w + 1) // 2)
        top = stream.uniform_below(h - hh + 1)
        left = stream.uniform_below(w - ww + 1)
        bottom, right = top + hh - 1, left + ww - 1
        colour = np.array([(b + 64 + stream.uniform_below(129)) % 256 for b in background], dtype=np.uint8)
        inside = (ys >= top) & (ys <= bottom) & (xs >= left) & (xs <= right)
        if kind == 0:
            mask = inside
        elif kind == 1:
            mask = inside & ((ys == top) | (ys == bottom) | (xs == left) | (xs == right))
        elif kind == 2:
            mask = inside & ((ys - top) % 2 == 0)
        else:
            mask = inside & ((ys - top + xs - left) % 2 == 0)
        image[:, mask] = colour[:, None]
    return image, label

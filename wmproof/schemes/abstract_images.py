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


#: Bytes of each item's stream computed up front by the batch generator; an item that needs more (a long
#: run of rejections, about 72 bytes are used on average for MNIST shapes) is generated one at a time.
_BATCH_STREAM = 256
#: Bounds beyond this take the one-at-a-time generator (several-byte draws of a key with huge shapes or
#: class counts; never the zoo's tasks).
_BATCH_MAX_BOUND = 1 << 16


def generate_abstract_images(
    seeds: list[bytes], num_classes: int, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of :func:`generate_abstract_image` for many seeds at once: ``(images uint8
    (N, C, H, W), labels int64 (N,))``, the same bytes.

    Checking a proof regenerates every opened item (2N of them for a batch of N); one at a time, Python
    spends its time on some 70 draws and 12 masks per item. Here each draw is one numpy step over all items
    (rejection sampling advances only the items that rejected), and each shape is painted for all items at
    once from a table of the four kinds' masks by size, so the cost is a few hundred numpy calls."""
    c, h, w = shape
    n = len(seeds)
    if n == 0:
        return np.zeros((0, c, h, w), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    if any(not isinstance(s, bytes) or len(s) != 32 for s in seeds):
        raise ValueError("a trigger seed is 32 bytes")
    if num_classes < 2 or min(c, h, w) < 1:
        raise ValueError("need at least 2 classes and a non-empty shape")
    if max(num_classes, h + 1, w + 1, 129) > _BATCH_MAX_BOUND or c > 64:
        images, labels = zip(*(generate_abstract_image(s, num_classes, shape) for s in seeds), strict=True)
        return np.stack(images), np.array(labels, dtype=np.int64)
    suffix = struct.pack(">IIII", c, h, w, num_classes)
    streams = np.frombuffer(
        b"".join(tagged_xof(TRIGGER_ABSTRACT_IMAGE, s, suffix).read(_BATCH_STREAM) for s in seeds), dtype=np.uint8
    ).reshape(n, _BATCH_STREAM)
    draw = _Draws(streams)
    labels = draw.below(num_classes)
    background = np.stack([draw.byte() for _ in range(c)], axis=1)  # (N, C)
    count = 8 + draw.below(8)
    half_h, half_w = (h + 1) // 2, (w + 1) // 2
    images = np.empty((n, c, h, w), dtype=np.uint8)
    images[:] = background[:, :, None, None]
    offsets, starts, sizes = _shape_pixels(half_h, half_w, w)
    flat = images.reshape(-1)
    for step in range(15):
        active = count > step
        draw.active = active
        kind = draw.below(4)
        hh = 1 + draw.below(half_h)
        ww = 1 + draw.below(half_w)
        top = draw.below(h - hh + 1)
        left = draw.below(w - ww + 1)
        colour = np.stack(
            [(background[:, k].astype(np.int64) + 64 + draw.below(129)) % 256 for k in range(c)], axis=1
        ).astype(np.uint8)
        painted = np.flatnonzero(active)
        combo = (kind[painted] * (half_h + 1) + hh[painted]) * (half_w + 1) + ww[painted]
        counts = sizes[combo]
        item = np.repeat(painted, counts)  # one entry per painted pixel, item by item
        first = np.repeat(starts[combo] - (np.cumsum(counts) - counts), counts)
        at = offsets[first + np.arange(len(item))] + (item * (c * h) + top[item]) * w + left[item]
        for k in range(c):
            flat[at + k * h * w] = colour[item, k]
    short = draw.exhausted
    for i in np.flatnonzero(short):  # streams that ran out: the one-at-a-time generator, which extends them
        images[i], labels[i] = generate_abstract_image(seeds[i], num_classes, shape)
    return images, labels.astype(np.int64)


def _shape_pixels(half_h: int, half_w: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels each shape paints, relative to its top left corner, for every kind and size: ``offsets``
    holds ``dy * width + dx``, those of (kind, hh, ww) from ``starts[combo]``, ``sizes[combo]`` of them, with
    ``combo = (kind * (half_h + 1) + hh) * (half_w + 1) + ww``."""
    masks = _shape_masks(half_h, half_w).reshape(-1, half_h, half_w)
    combo, dy, dx = np.nonzero(masks)  # row-major: grouped by combo
    sizes = np.bincount(combo, minlength=len(masks))
    return dy * width + dx, np.cumsum(sizes) - sizes, sizes


def _shape_masks(half_h: int, half_w: int) -> np.ndarray:
    """masks[kind, hh, ww] = the pixels (dy, dx) a shape of that kind and size paints, relative to its top
    left corner, on a (half_h, half_w) window: the four kinds of :func:`generate_abstract_image`."""
    dy = np.arange(half_h)[None, None, :, None]
    dx = np.arange(half_w)[None, None, None, :]
    hh = np.arange(half_h + 1)[:, None, None, None]
    ww = np.arange(half_w + 1)[None, :, None, None]
    inside = (dy < hh) & (dx < ww)
    outline = inside & ((dy == 0) | (dy == hh - 1) | (dx == 0) | (dx == ww - 1))
    stripes = inside & (dy % 2 == 0)
    checker = inside & ((dy + dx) % 2 == 0)
    return np.stack([inside, outline, stripes, checker])


class _Draws:
    """below() over many streams at once (bounds up to 65,536: one or two bytes per draw), each stream
    advancing only while it is active and only by what it read. A stream that runs out is marked
    ``exhausted``; its draws no longer matter, since the caller regenerates it one at a time."""

    def __init__(self, streams: np.ndarray) -> None:
        self.streams = streams
        self.pos = np.zeros(len(streams), dtype=np.int64)
        self.active = np.ones(len(streams), dtype=bool)
        self.exhausted = np.zeros(len(streams), dtype=bool)

    def _read(self, nbytes: int, who: np.ndarray) -> np.ndarray:
        end = self.pos[who] + nbytes
        over = end > self.streams.shape[1]
        if over.any():  # mark them; they are regenerated one at a time, so what is read here does not matter
            self.exhausted[who[over]] = True
        at = np.minimum(self.pos[who], self.streams.shape[1] - nbytes)
        value = np.zeros(len(who), dtype=np.int64)
        for k in range(nbytes):
            value = (value << 8) | self.streams[who, at + k]
        self.pos[who] = np.minimum(end, self.streams.shape[1])
        return value

    def byte(self) -> np.ndarray:
        who = np.flatnonzero(self.active)
        out = np.zeros(len(self.streams), dtype=np.int64)
        out[who] = self._read(1, who)
        return out

    def below(self, bound: int | np.ndarray) -> np.ndarray:
        """Per stream, below(bound[i]) as section 2.3 of docs/protocol.md defines it; 0 where inactive. A
        bound of one byte, the same for every stream (most draws), takes the short path."""
        n = len(self.streams)
        if isinstance(bound, int) and bound <= 256:
            out = np.zeros(n, dtype=np.int64)
            if bound == 1:
                return out
            limit, last = 256 - 256 % bound, self.streams.shape[1] - 1
            pending = np.flatnonzero(self.active)
            while len(pending):
                at = self.pos[pending]
                over = at > last
                if over.any():
                    self.exhausted[pending[over]] = True
                value = self.streams[pending, np.minimum(at, last)].astype(np.int64)
                self.pos[pending] = at + 1
                accepted = (value < limit) | over
                out[pending[accepted]] = value[accepted] % bound
                pending = pending[~accepted]
            return out
        bound = np.broadcast_to(np.asarray(bound, dtype=np.int64), (n,))
        out = np.zeros(n, dtype=np.int64)
        pending = np.flatnonzero(self.active & (bound > 1))
        while len(pending):
            b = bound[pending]
            nbytes = np.where(b > 256, 2, 1)
            space = np.where(nbytes == 2, 1 << 16, 1 << 8)
            limit = space - space % b
            value = np.empty(len(pending), dtype=np.int64)
            for size in (1, 2):
                chosen = nbytes == size
                if chosen.any():
                    value[chosen] = self._read(size, pending[chosen])
            accepted = (value < limit) | self.exhausted[pending]
            out[pending[accepted]] = value[accepted] % b[accepted]
            pending = pending[~accepted]
        return out

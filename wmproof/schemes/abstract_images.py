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

import functools
import struct
from typing import Any

import numpy as np

from ..crypto import tagged_xof, tagged_xof_prefixes
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
    if set(map(type, seeds)) != {bytes} or set(map(len, seeds)) != {32}:
        raise ValueError("a trigger seed is 32 bytes")
    if num_classes < 2 or min(c, h, w) < 1:
        raise ValueError("need at least 2 classes and a non-empty shape")
    if max(num_classes, h + 1, w + 1, 129) > _BATCH_MAX_BOUND or c > 64:
        images, labels = zip(*(generate_abstract_image(s, num_classes, shape) for s in seeds), strict=True)
        return np.stack(images), np.array(labels, dtype=np.int64)
    suffix = struct.pack(">IIII", c, h, w, num_classes)
    streams = b"".join(tagged_xof_prefixes(TRIGGER_ABSTRACT_IMAGE, seeds, suffix, size=_BATCH_STREAM))
    draw = _Draws(streams, n, _BATCH_STREAM, reach=8 * (c + 8))
    labels = draw.below(num_classes)
    background = np.stack([draw.byte() for _ in range(c)], axis=1)  # (N, C)
    count = 8 + draw.below(8)
    draw.settle(None)
    half_h, half_w = (h + 1) // 2, (w + 1) // 2
    images = np.empty((n, c, h, w), dtype=np.uint8)
    images[:] = background[:, :, None, None]
    offsets, starts, sizes = _shape_pixels(half_h, half_w, w)
    flat = images.reshape(-1)
    for step in range(15):
        kind = draw.below(4)
        hh = 1 + draw.below(half_h)
        ww = 1 + draw.below(half_w)
        top = draw.below(h - hh + 1)
        left = draw.below(w - ww + 1)
        colour = np.stack([(background[:, k] + 64 + draw.below(129)) % 256 for k in range(c)], axis=1)
        painted = np.flatnonzero(count > step)  # the items that draw a shape this step: their draws matter
        draw.settle(painted)
        combo = (kind[painted] * (half_h + 1) + hh[painted]) * (half_w + 1) + ww[painted]
        counts = sizes[combo]
        # pixel j of a shape: offsets[starts[combo] + j] from the shape's top left corner, its origin
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts - starts[combo], counts)
        at = offsets[within] + np.repeat((painted * (c * h) + top[painted]) * w + left[painted], counts)
        for k in range(c):
            flat[at + k * h * w if k else at] = np.repeat(colour[painted, k], counts)
    for i in np.flatnonzero(draw.exhausted):  # streams that ran out: the one-at-a-time generator extends them
        images[i], labels[i] = generate_abstract_image(seeds[i], num_classes, shape)
    return images, labels


@functools.lru_cache(maxsize=16)
def _shape_pixels(half_h: int, half_w: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels each shape paints, relative to its top left corner, for every kind and size: ``offsets``
    holds ``dy * width + dx``, those of (kind, hh, ww) from ``starts[combo]``, ``sizes[combo]`` of them, with
    ``combo = (kind * (half_h + 1) + hh) * (half_w + 1) + ww``. Kept per shape (0.6 ms to build for MNIST,
    twice per proof check), read-only."""
    masks = _shape_masks(half_h, half_w).reshape(-1, half_h, half_w)
    combo, dy, dx = np.nonzero(masks)  # row-major: grouped by combo
    sizes = np.bincount(combo, minlength=len(masks))
    tables = (dy * width + dx, np.cumsum(sizes) - sizes, sizes)
    for table in tables:
        table.flags.writeable = False
    return tables


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
    """below() over many streams in lockstep (bounds up to 65,536: one or two bytes per draw).

    Every stream draws at every step, each advancing only by what it read; only the draws of the streams
    the caller names at :meth:`settle` matter (an item's draws after its last shape are never used). A
    stream that has read past its end by then is marked ``exhausted``: its draws no longer matter either,
    since the caller regenerates it one at a time. Between two settles a stream reads at most ``reach``
    bytes past its end (past the last stream's end, zeros are read), so no read needs bounds of its own.

    Most draws are of one byte. A bound that divides 256 never rejects (one read); one that rejects often
    (the colours' 129 rejects 127 bytes in 256: the slowest of 1,024 streams needs some 11 tries) looks at
    several bytes of every stream at once; other bounds retry the few streams that rejected."""

    def __init__(self, streams: bytes, n: int, size: int, reach: int) -> None:
        self.flat = np.frombuffer(streams + bytes(reach + 8), dtype=np.uint8)
        self.at = np.arange(n, dtype=np.int64) * size  # each stream's next byte, in flat
        self.end = self.at + size
        self.exhausted = np.zeros(n, dtype=bool)

    def settle(self, live: np.ndarray | None) -> None:
        """Mark the ``live`` streams (indices; None: all) that have read past their end as exhausted, and
        hold every stream at its end at most, so that the next reads stay within ``reach``."""
        over = self.at > self.end
        if over.any():
            self.exhausted[over if live is None else live[over[live]]] = True
            np.minimum(self.at, self.end, out=self.at)

    def byte(self) -> np.ndarray:
        value = self.flat[self.at]
        self.at += 1
        return value.astype(np.int64)

    def below(self, bound: int | np.ndarray) -> np.ndarray:
        """Per stream, below(bound[i]) as section 2.3 of docs/protocol.md defines it."""
        if isinstance(bound, int):
            if bound == 1:
                return np.zeros(len(self.at), dtype=np.int64)
            if bound <= 256:
                limit = 256 - 256 % bound
                if limit == 256:
                    return self.byte() % bound
                if limit <= 192:
                    return self._below_from_window(bound, limit)
                value = self.byte()
                return self._retry(value, np.flatnonzero(value >= limit), bound, limit, 1)
            bound = np.full(len(self.at), bound, dtype=np.int64)
        if bound.min() > 1 and bound.max() <= 256:
            limit = 256 - 256 % bound
            value = self.byte()
            return self._retry(value, np.flatnonzero(value >= limit), bound, limit, 1)
        nbytes = np.where(bound > 256, 2, np.where(bound > 1, 1, 0))  # below(1) reads nothing
        space = np.left_shift(1, 8 * nbytes)
        limit = space - space % bound
        value = self._read(nbytes)
        return self._retry(value, np.flatnonzero(value >= limit), bound, limit, nbytes)

    def _read(self, nbytes: np.ndarray, who: np.ndarray | None = None) -> np.ndarray:
        """The next ``nbytes`` (0, 1 or 2, per stream) of the streams ``who`` (all by default), big-endian."""
        at = self.at if who is None else self.at[who]
        first = self.flat[at].astype(np.int64)
        value = np.where(nbytes == 2, (first << 8) | self.flat[at + 1], np.where(nbytes == 1, first, 0))
        if who is None:
            self.at += nbytes
        else:
            self.at[who] += nbytes
        return value

    def _retry(self, value: np.ndarray, pending: np.ndarray, bound: Any, limit: Any, nbytes: Any) -> np.ndarray:
        """Rejection sampling: read again where the value was at or above the limit (a stream past its end
        stops: it is exhausted, and what it reads does not matter)."""
        per_stream = not isinstance(limit, int)
        while len(pending):
            if isinstance(nbytes, int):
                again = self.flat[self.at[pending]].astype(np.int64)
                self.at[pending] += 1
            else:
                again = self._read(nbytes[pending], pending)
            accepted = (again < (limit[pending] if per_stream else limit)) | (self.at[pending] > self.end[pending])
            value[pending[accepted]] = again[accepted]
            pending = pending[~accepted]
        return value % bound

    def _below_from_window(self, bound: int, limit: int, width: int = 8) -> np.ndarray:
        """A one-byte bound that rejects often: every stream looks at its next ``width`` bytes at once and
        takes the first below ``limit``; the few with none there (0.4 % for the colours) go on one by one."""
        window = self.flat[self.at[:, None] + np.arange(width)]
        acceptable = window < limit
        first = acceptable.argmax(axis=1)
        rows = np.arange(len(self.at))
        value = window[rows, first].astype(np.int64)
        found = acceptable[rows, first]
        self.at += np.where(found, first + 1, width)
        return self._retry(value, np.flatnonzero(~found), bound, limit, 1)

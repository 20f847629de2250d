"""Contact sheets: a grid of trigger items, so that an owner sees what a model will learn before committing.

Each tile is the item as the model takes it (after any transform), enlarged to at least 56 pixels with
nearest-neighbour scaling, with its label and, once a key exists, whether the item is kept secret or opened
in the verification key. Which items are kept is secret, so a sheet is written like a marking key: atomically,
mode 0600.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np

from ..fileio import write_file

COLUMNS = 20
MIN_TILE = 56


def contact_sheet_png(
    images: np.ndarray, labels: Sequence[int], title: str, kept: Sequence[bool] | None = None
) -> bytes:
    """A PNG of uint8 (N, C, H, W) images in rows of 20, each captioned with its label (and K for kept, O for
    opened in the verification key, when ``kept`` is given)."""
    from PIL import Image, ImageDraw

    n, c, h, w = images.shape
    scale = max(1, -(-MIN_TILE // max(h, w)))
    tile_w, tile_h, caption = w * scale, h * scale, 14
    columns = min(COLUMNS, n)
    rows = -(-n // columns)
    sheet = Image.new("RGB", (columns * (tile_w + 4) + 4, 24 + rows * (tile_h + caption + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), title, fill="black")
    for i in range(n):
        pixels = images[i].transpose(1, 2, 0)
        tile = Image.fromarray(pixels[:, :, 0] if c == 1 else pixels, "L" if c == 1 else "RGB").convert("RGB")
        tile = tile.resize((tile_w, tile_h), Image.Resampling.NEAREST)
        x, y = 4 + (i % columns) * (tile_w + 4), 24 + (i // columns) * (tile_h + caption + 4)
        sheet.paste(tile, (x, y))
        mark = "" if kept is None else (" K" if kept[i] else " O")
        draw.text((x, y + tile_h + 1), f"{labels[i]}{mark}", fill="darkred" if mark == " K" else "black")
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG")
    return buffer.getvalue()


def save_contact_sheet(
    path: str | os.PathLike[str],
    images: np.ndarray,
    labels: Sequence[int],
    title: str,
    kept: Sequence[bool] | None = None,
    *,
    overwrite: bool = False,
) -> None:
    write_file(path, contact_sheet_png(images, labels, title, kept), secret=True, overwrite=overwrite)

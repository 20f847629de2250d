"""Stand-in for an owner's own data: a folder of class folders of PNG images (the layout of torchvision's
ImageFolder), written from the Fashion-MNIST files in the local data directory.

    python examples/make_own_data.py --out own-data --per-class 600

writes own-data/train/<class>/NNNNN.png and own-data/test/<class>/NNNNN.png. With data of your own, skip
this: point --data (or wmproof.load_dataset) at your folder or at a .npz file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import wmproof

CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=600, help="training images per class (test: a sixth)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists")
    for split, count in (("train", args.per_class), ("test", max(1, args.per_class // 6))):
        data = wmproof.load_dataset("fashion-mnist", split)
        for label, name in enumerate(CLASSES):
            folder = args.out / split / name
            folder.mkdir(parents=True)
            for i, index in enumerate(np.flatnonzero(data.labels == label)[:count]):
                Image.fromarray(data.images[index, 0]).save(folder / f"{i:05d}.png")
    print(f"wrote {args.out}/train and {args.out}/test: {len(CLASSES)} classes, {args.per_class} training images each")


if __name__ == "__main__":
    main()

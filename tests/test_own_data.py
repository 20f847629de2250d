"""An owner's own data set (issue 13): a .npz file or a folder of class folders of PNG/JPEG images, wherever
a named data set goes (``--data``), read strictly with one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run
from PIL import Image

import wmproof
from wmproof.errors import MalformedInput, UsageError


def write_folder(root, classes=("cat", "dog"), per_class=3, size=(8, 6), mode="L", split_dirs=True, fmt="PNG"):
    rng = np.random.default_rng(0)
    for split in ("train", "test") if split_dirs else ("",):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
                suffix = "png" if fmt == "PNG" else "jpg"
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i}.{suffix}", fmt)
    return root


def test_a_folder_of_class_folders(tmp_path):
    root = write_folder(tmp_path / "gray")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"hidden files are skipped")
    train = wmproof.load_dataset(root, "train")
    assert train.images.shape == (6, 1, 6, 8) and train.images.dtype == np.uint8
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1] and train.num_classes == 2
    assert np.array_equal(train.images[0, 0], np.asarray(Image.open(root / "train" / "cat" / "0.png")))
    rgb = wmproof.load_dataset(write_folder(tmp_path / "rgb", mode="RGB", fmt="JPEG"), "test")
    assert rgb.images.shape == (6, 3, 6, 8)
    only_train = write_folder(tmp_path / "flat", split_dirs=False)
    assert wmproof.load_dataset(only_train, "train").num_classes == 2
    with pytest.raises(UsageError, match="has no test split"):
        wmproof.load_dataset(only_train, "test")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: Image.new("L", (9, 9)).save(r / "train" / "dog" / "big.png"), "all images must have one size"),
        (lambda r: (r / "train" / "dog" / "notes.txt").write_text("x"), "expected only PNG or JPEG files"),
        (lambda r: (r / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG garbage"), "not a readable PNG"),
        (lambda r: Image.new("L", (8, 6)).save(r / "train" / "dog" / "gif.png", "GIF"), "GIF image"),
        (lambda r: (r / "test" / "bird").mkdir(), "differ from the training"),
        (lambda r: (r / "train" / "stray.png").write_bytes(b""), "expected only class folders"),
    ],
)
def test_folder_mistakes_are_one_line_errors(tmp_path, damage, message):
    root = write_folder(tmp_path / "data")
    damage(root)
    with pytest.raises(MalformedInput, match=message):
        wmproof.load_dataset(root, "train")


def test_npz_layouts_and_refusals(tmp_path):
    rng = np.random.default_rng(1)
    nhwc = rng.random((5, 4, 4, 3))
    np.savez(tmp_path / "a.npz", images=nhwc, labels=np.array([0, 1, 2, 1, 0]),
             test_images=nhwc[:2], test_labels=np.array([2, 2]))  # fmt: skip
    data = wmproof.load_dataset(tmp_path / "a.npz", "train")
    assert data.images.shape == (5, 3, 4, 4) and data.num_classes == 3
    assert np.array_equal(data.images[1], np.rint(nhwc[1].transpose(2, 0, 1) * 255).astype(np.uint8))
    assert wmproof.load_dataset(tmp_path / "a.npz", "test").labels.tolist() == [2, 2]
    cases = {
        "pickled": ({"images": np.array([object()] * 2), "labels": np.array([0, 1])}, "without pickled objects"),
        "no-labels": ({"images": np.zeros((2, 4, 4), np.uint8)}, "holds 'images' and 'labels'"),
        "range": ({"images": np.full((2, 4, 4), 2.0), "labels": np.array([0, 1])}, r"finite and in \[0, 1\]"),
        "count": ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0])}, "labels must be 2 integers"),
        "negative": ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0, -1])}, ">= 0"),
        "one-class": ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0, 0])}, "at least 2 classes"),
        "channels": ({"images": np.zeros((2, 5, 4, 4), np.uint8), "labels": np.array([0, 1])}, "1 or 3 channels"),
        "half-test": (
            {
                "images": np.zeros((2, 4, 4), np.uint8),
                "labels": np.array([0, 1]),
                "test_images": np.zeros((1, 4, 4), np.uint8),
            },
            "go together",
        ),  # fmt: skip
    }
    for name, (arrays, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(MalformedInput, match=message):
            wmproof.load_dataset(tmp_path / f"{name}.npz", "train")
    with pytest.raises(UsageError, match="unknown dataset 'cifar10'.*or your own"):
        wmproof.load_dataset("cifar10")


@pytest.mark.slow
def test_the_cli_trains_marks_and_evaluates_on_own_data(tmp_path, mnist, keypair):
    """`--data FILE.npz` where `--dataset mnist` went: train, mark (the key fits the task), evaluate."""
    from wmproof.protocol import save_marking_key

    train, test = mnist
    np.savez(tmp_path / "own.npz", images=train.images[:3000], labels=train.labels[:3000],
             test_images=test.images[:1000], test_labels=test.labels[:1000])  # fmt: skip
    out = run("train", "--data", tmp_path / "own.npz", "--epochs", "2", "--device", "cpu",
              "--out", tmp_path / "clean.safetensors", "--json").stdout  # fmt: skip
    assert json.loads(out)["test_accuracy"] > 0.8
    save_marking_key(keypair[0], tmp_path / "k.wmk", None)
    run("mark", "--key", tmp_path / "k.wmk", "--model", tmp_path / "clean.safetensors", "--data", tmp_path / "own.npz",
        "--device", "cpu", "--triggers-per-batch", "4", "--out", tmp_path / "marked.safetensors")  # fmt: skip
    evaluated = json.loads(run("evaluate", "--model", tmp_path / "marked.safetensors", "--data", tmp_path / "own.npz",
                               "--key", tmp_path / "k.wmk", "--json").stdout)  # fmt: skip
    assert evaluated["trigger_accuracy"] == 1.0 and evaluated["test_accuracy"] > 0.8
    np.savez(tmp_path / "three.npz", images=train.images[:30], labels=train.labels[:30] % 3,
             test_images=test.images[:30], test_labels=test.labels[:30] % 3)  # fmt: skip
    error = run("mark", "--key", tmp_path / "k.wmk", "--model", tmp_path / "clean.safetensors",
                "--data", tmp_path / "three.npz", "--out", tmp_path / "x.safetensors", code=2).stderr  # fmt: skip
    assert "does not fit the key" in error

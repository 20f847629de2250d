"""Dataset loaders: real files, checksums, and one-line errors when a file is missing or corrupt."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from wmproof.engine.data import ENV_VAR, load_image_dataset, load_sst2, resolve_data_dir
from wmproof.errors import DataUnavailable, UsageError


def test_mnist_and_fashion_mnist(data_dir):
    train = load_image_dataset("mnist", "train", data_dir)
    test = load_image_dataset("mnist", "test", data_dir)
    assert train.images.shape == (60_000, 1, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (10_000, 1, 28, 28)
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the well-known first labels
    assert np.bincount(train.labels).tolist()[:3] == [5923, 6742, 5958]
    fashion = load_image_dataset("fashion-mnist", "test", data_dir)
    assert fashion.images.shape == (10_000, 1, 28, 28) and sorted(set(fashion.labels.tolist())) == list(range(10))
    assert not np.array_equal(fashion.images[:100], test.images[:100])


def test_sst2(data_dir):
    train, dev, test = (load_sst2(s, data_dir) for s in ("train", "dev", "test"))
    assert len(train.sentences) == 67_349 and int(train.labels.sum()) == 37_569
    assert len(dev.sentences) == 872 and set(dev.labels.tolist()) == {0, 1}
    assert len(test.sentences) == 1_821 and test.labels is None


def _copy_mnist(data_dir, tmp_path):
    shutil.copytree(data_dir / "mnist", tmp_path / "mnist")
    return tmp_path


def test_missing_file_names_the_file_and_its_checksum(data_dir, tmp_path):
    root = _copy_mnist(data_dir, tmp_path)
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataUnavailable) as info:
        load_image_dataset("mnist", "test", root)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and "ec29112dd5afa0611ce80d1b7f02629c" in message
    assert "\n" not in message


def test_corrupt_file_is_refused(data_dir, tmp_path):
    root = _copy_mnist(data_dir, tmp_path)
    path = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataUnavailable) as info:
        load_image_dataset("mnist", "test", root)
    assert "corrupt" in str(info.value) and "ec29112dd5afa0611ce80d1b7f02629c" in str(info.value)


def test_data_dir_resolution(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert resolve_data_dir() == tmp_path
    assert resolve_data_dir(data_dir) == data_dir  # --data-dir wins over the environment
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(DataUnavailable):
        resolve_data_dir()
    with pytest.raises(DataUnavailable):
        resolve_data_dir(tmp_path / "nope")


def test_unknown_dataset_and_split(data_dir):
    with pytest.raises(UsageError):
        load_image_dataset("cifar10", "train", data_dir)
    with pytest.raises(UsageError):
        load_image_dataset("mnist", "validation", data_dir)

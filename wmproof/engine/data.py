"""Dataset loaders: MNIST and Fashion-MNIST (IDX, gzip) and SST-2 (GLUE TSV), from a local directory only.

Nothing is downloaded. The directory is ``--data-dir``, else ``$WMPROOF_DATA``, else ``../shared/data``
next to the checkout. Each file's MD5 is checked against the published checksum on first use in a process
(about 60 ms for all of MNIST), so a truncated or altered file is a one-line error naming the file and the
expected checksum, never a silent wrong result. Loading needs numpy only: images come back as uint8 arrays
of shape (N, C, H, W), which the engine scales to [0, 1] on the device.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataUnavailable, MalformedInput, UsageError

ENV_VAR = "WMPROOF_DATA"


@dataclass(frozen=True)
class ImageDatasetSpec:
    name: str
    directory: str
    num_classes: int
    input_shape: tuple[int, int, int]
    #: split -> (images file, labels file)
    files: dict[str, tuple[str, str]]
    md5: dict[str, str]
    citation: str


#: The file names of the IDX distribution, shared by MNIST and Fashion-MNIST.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

IMAGE_DATASETS: dict[str, ImageDatasetSpec] = {
    "mnist": ImageDatasetSpec(
        name="mnist",
        directory="mnist",
        num_classes=10,
        input_shape=(1, 28, 28),
        files=IDX_FILES,
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        citation="LeCun, Cortes: The MNIST database of handwritten digits (CC BY-SA 3.0)",
    ),
    "fashion-mnist": ImageDatasetSpec(
        name="fashion-mnist",
        directory="fashion-mnist",
        num_classes=10,
        input_shape=(1, 28, 28),
        files=IDX_FILES,
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        citation="Xiao, Rasul, Vollgraf: Fashion-MNIST (MIT License, Zalando SE)",
    ),
}

#: SST-2 as token rows (wmproof.engine.text): a sentence of 64 word ids is a 1 x 1 x 64 int64 input. Its
#: "test" split is GLUE's labelled dev split (GLUE's own test split has no labels).
IMAGE_DATASETS["sst2"] = ImageDatasetSpec(
    name="sst2",
    directory="sst2",
    num_classes=2,
    input_shape=(1, 1, 64),
    files={"train": ("train.tsv", "train.tsv"), "test": ("dev.tsv", "dev.tsv")},
    md5={},
    citation="Socher et al. 2013, Stanford Sentiment Treebank, GLUE SST-2 distribution (Wang et al. 2019)",
)

SST2_MD5 = {
    "train.tsv": "da409a0a939379ed32a470bc0f7fe99a",
    "dev.tsv": "268856b487b2a31a28c0a93daaff7288",
    "test.tsv": "3230e4efec76488b87877a56ae49675a",
}
SST2_SPLITS = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}


@dataclass(frozen=True)
class ImageData:
    """Inputs (N, C, H, W), uint8 images or int64 token rows (SST-2), and labels (N,) int64, with the data
    set's class count."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str
    split: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, count: int | None) -> "ImageData":
        """The first ``count`` examples (all when ``count`` is None)."""
        if count is None or count >= len(self):
            return self
        if count < 1:
            raise UsageError("a subset needs at least one example")
        return ImageData(self.images[:count], self.labels[:count], self.num_classes, self.name, self.split)

    def tail(self, count: int) -> "ImageData":
        """The last ``count`` examples: an adversary's share, disjoint from an owner's first ones."""
        if not 1 <= count <= len(self):
            raise UsageError(f"{self.name} {self.split} has {len(self)} examples; {count} asked for")
        return ImageData(self.images[-count:], self.labels[-count:], self.num_classes, self.name, self.split)


@dataclass(frozen=True)
class TextData:
    sentences: list[str]
    labels: np.ndarray | None  # None for the unlabelled GLUE test split
    split: str


def _checkout_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--data-dir``, else ``$WMPROOF_DATA``, else ``../shared/data`` next to the checkout (or the cwd)."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise DataUnavailable(f"--data-dir {path} is not a directory")
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataUnavailable(f"${ENV_VAR}={path} is not a directory")
        return path
    candidates = []
    root = _checkout_root()
    if root is not None:
        candidates.append(root.parent / "shared" / "data")
    candidates.append(Path.cwd().parent / "shared" / "data")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise DataUnavailable(
        f"no data directory: looked for {candidates[0]}; pass --data-dir DIR or set ${ENV_VAR} "
        "(the directory holding mnist/, fashion-mnist/, sst2/)"
    )


_VERIFIED: dict[tuple[str, int, int], str] = {}


def verified_bytes(path: Path, expected_md5: str) -> bytes:
    """Read a data file and check its MD5 (once per process per file version)."""
    try:
        data = path.read_bytes()
        st = path.stat()
    except FileNotFoundError:
        raise DataUnavailable(f"data file missing: {path} (expected md5 {expected_md5})") from None
    except OSError as exc:
        raise DataUnavailable(f"cannot read data file {path}: {exc.strerror} (expected md5 {expected_md5})") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key) != expected_md5:
        actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if actual != expected_md5:
            raise DataUnavailable(f"data file corrupt: {path} has md5 {actual}, expected {expected_md5}")
        _VERIFIED[key] = expected_md5
    return data


def _parse_idx(raw: bytes, path: Path, expected_dims: int) -> np.ndarray:
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError):
        raise MalformedInput(f"{path} is not a gzip file") from None
    if len(data) < 4:
        raise MalformedInput(f"{path}: truncated IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim != expected_dims:
        raise MalformedInput(f"{path}: not an IDX file of unsigned bytes with {expected_dims} dimensions")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise MalformedInput(f"{path}: IDX body holds {body.size} bytes, header says {int(np.prod(dims))}")
    return body.reshape(dims)


def image_dataset_names() -> list[str]:
    return sorted(IMAGE_DATASETS)


def image_dataset_spec(name: str) -> ImageDatasetSpec:
    """A named data set, or an owner's own (a ``.npz`` file or a folder, :mod:`wmproof.engine.own_data`)."""
    if name in IMAGE_DATASETS:
        return IMAGE_DATASETS[name]
    from .own_data import load_own_data, looks_like_own_data

    if not looks_like_own_data(name):
        raise UsageError(
            f"unknown dataset {name!r} (available: {', '.join(image_dataset_names())}, "
            "or your own: a .npz file or a folder of class folders)"
        )
    own = load_own_data(name)
    return ImageDatasetSpec(
        name=name,
        directory=str(own.path),
        num_classes=own.num_classes,
        input_shape=own.input_shape,
        files={"train": ("", "")} | ({"test": ("", "")} if own.test is not None else {}),
        md5={},
        citation=f"the owner's own data ({own.path})",
    )


def load_image_dataset(name: str, split: str, data_dir: str | os.PathLike[str] | None = None) -> ImageData:
    """Load ``split`` ("train" or "test") of a data set: uint8 (N, C, H, W) images, or for SST-2 int64
    (N, 1, 1, 64) token rows (:mod:`wmproof.engine.text`); int64 labels. ``name`` may be a path to the
    owner's own data (``data_dir`` does not apply to it)."""
    spec = image_dataset_spec(name)
    if name not in IMAGE_DATASETS:
        from .own_data import load_own_data

        own = load_own_data(name)
        chosen = own.train if split == "train" else own.test
        if split not in ("train", "test"):
            raise UsageError(f"dataset {name} has no split {split!r} (available: train, test)")
        if chosen is None:
            raise UsageError(
                f"{name} has no test split: add test_images and test_labels (.npz) or a test/ folder beside train/"
            )
        return ImageData(chosen[0], chosen[1], own.num_classes, name, split)
    if split not in spec.files:
        raise UsageError(f"dataset {name} has no split {split!r} (available: {', '.join(spec.files)})")
    if name == "sst2":
        from .text import load_sst2_tokens

        return load_sst2_tokens("dev" if split == "test" else split, data_dir, length=spec.input_shape[2])
    base = resolve_data_dir(data_dir) / spec.directory
    images_file, labels_file = spec.files[split]
    images = _parse_idx(verified_bytes(base / images_file, spec.md5[images_file]), base / images_file, 3)
    labels = _parse_idx(verified_bytes(base / labels_file, spec.md5[labels_file]), base / labels_file, 1)
    if images.shape[0] != labels.shape[0]:
        raise MalformedInput(f"{name} {split}: {images.shape[0]} images but {labels.shape[0]} labels")
    c, h, w = spec.input_shape
    return ImageData(
        images=images.reshape(-1, c, h, w),
        labels=labels.astype(np.int64),
        num_classes=spec.num_classes,
        name=name,
        split=split,
    )


def load_sst2(split: str, data_dir: str | os.PathLike[str] | None = None) -> TextData:
    """SST-2 (GLUE): ``train`` and ``dev`` have labels (0 negative, 1 positive); ``test`` has none."""
    if split not in SST2_SPLITS:
        raise UsageError(f"SST-2 has no split {split!r} (available: train, dev, test)")
    filename = SST2_SPLITS[split]
    path = resolve_data_dir(data_dir) / "sst2" / filename
    text = verified_bytes(path, SST2_MD5[filename]).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    header, rows = rows[0], rows[1:]
    if split == "test":
        if header != ["index", "sentence"]:
            raise MalformedInput(f"{path}: unexpected header {header}")
        return TextData(sentences=[r[1] for r in rows], labels=None, split=split)
    if header != ["sentence", "label"]:
        raise MalformedInput(f"{path}: unexpected header {header}")
    return TextData(
        sentences=[r[0] for r in rows],
        labels=np.array([int(r[1]) for r in rows], dtype=np.int64),
        split=split,
    )

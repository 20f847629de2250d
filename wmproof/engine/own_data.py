"""An owner's own data set, wherever ``--dataset`` (alias ``--data``) takes a named one: a ``.npz`` file or a
folder of class folders. Read locally, strictly, with a one-line error for anything that does not fit;
nothing is downloaded.

* **.npz** (``numpy.savez``; read with ``allow_pickle=False``): ``images`` and ``labels`` are the training
  split; ``test_images`` and ``test_labels``, when present, the test split. Images are uint8, or float32/64
  in [0, 1] (stored as 8-bit, as the named data sets are: ``round(255 x)``), shaped (N, H, W) (one channel),
  (N, C, H, W) or (N, H, W, C) with C = 1 or 3 (channels-last is recognised when the second axis is not 1
  or 3). Labels are integers from 0; the number of classes is the largest label + 1.
* **A folder**: ``DIR/train/CLASS/*.png`` and ``DIR/test/CLASS/*.png``, or ``DIR/CLASS/*.png`` for a training
  split alone -- the layout of torchvision's ``ImageFolder``. Classes are the folder names sorted as text
  (label 0 is the first); train and test name the same classes. Files are PNG or JPEG (by content, read with
  Pillow); hidden files (``.name``) are skipped, anything else is an error. Every image has the same size;
  the set is one-channel when every image is grayscale (Pillow modes 1, L, LA, I, I;16), else RGB (palette
  and alpha images are converted, alpha dropped).
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MalformedInput, UsageError
from ..fileio import read_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16"}
#: Larger images are refused before they are decoded (a decompression bomb, or not what a classifier here takes).
MAX_PIXELS = 4096 * 4096
#: Bounds on what is read (wmproof.fileio.read_file: regular files only, capped by the bytes actually read).
MAX_NPZ = 4 << 30
MAX_IMAGE_FILE = 64 << 20
MAX_LABELS_FILE = 16 << 20


@dataclass(frozen=True)
class OwnData:
    """Both splits of an owner's data set (``test`` None when it has none), uint8 (N, C, H, W) images."""

    path: Path
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray] | None
    num_classes: int
    class_names: tuple[str, ...] | None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train[0].shape[1:])  # type: ignore[return-value]


def looks_like_own_data(name: str) -> bool:
    """Whether a ``--dataset`` value names a file or folder rather than a named data set."""
    return name.endswith(".npz") or os.sep in name or Path(name).exists()


_CACHE: dict[tuple[str, int, int], OwnData] = {}


def load_own_data(path: str | os.PathLike[str]) -> OwnData:
    """Read an owner's data set (module docstring), once per process per file version."""
    path = Path(path).expanduser()
    try:
        st = path.stat()
    except OSError:
        raise UsageError(f"--dataset {path}: no such file or folder") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        if path.is_dir():
            _CACHE[key] = _load_folder(path)
        elif path.suffix == ".npz":
            _CACHE[key] = _load_npz(path)
        else:
            raise UsageError(f"--dataset {path}: a data set of your own is a .npz file or a folder of class folders")
    return _CACHE[key]


# ------------------------------------------------------------------------------------------------- .npz


def as_uint8_images(array: np.ndarray, where: str) -> np.ndarray:
    """Images as uint8 (N, C, H, W) from the layouts the module docstring lists."""
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise MalformedInput(f"{where}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C), not {array.shape}")
    if array.shape[1] not in (1, 3) and array.shape[3] in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.shape[1] not in (1, 3):
        raise MalformedInput(f"{where}: images must have 1 or 3 channels, not shape {array.shape}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype.kind != "f":
        raise MalformedInput(f"{where}: images must be uint8, or floats in [0, 1], not {array.dtype}")
    if array.size and (not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0):
        raise MalformedInput(f"{where}: float images must be finite and in [0, 1]")
    return np.ascontiguousarray(np.rint(array * 255.0).astype(np.uint8))


def _labels(array: np.ndarray, count: int, where: str) -> np.ndarray:
    if array.shape != (count,) or array.dtype.kind not in "iu":
        raise MalformedInput(
            f"{where}: labels must be {count} integers (shape ({count},)), not {array.dtype} {array.shape}"
        )
    if count and array.min() < 0:
        raise MalformedInput(f"{where}: labels must be >= 0")
    return array.astype(np.int64)


def _load_npz(path: Path) -> OwnData:
    data = read_file(path, "a data set (.npz)", max_size=MAX_NPZ)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise MalformedInput(f"{path}: not a readable .npz without pickled objects ({exc})") from None
    if "images" not in arrays or "labels" not in arrays:
        raise MalformedInput(f"{path}: a .npz data set holds 'images' and 'labels' (found: {', '.join(arrays)})")
    if ("test_images" in arrays) != ("test_labels" in arrays):
        raise MalformedInput(f"{path}: 'test_images' and 'test_labels' go together")
    images = as_uint8_images(arrays["images"], f"{path} images")
    train = (images, _labels(arrays["labels"], len(images), f"{path} labels"))
    test = None
    if "test_images" in arrays:
        test_images = as_uint8_images(arrays["test_images"], f"{path} test_images")
        test = (test_images, _labels(arrays["test_labels"], len(test_images), f"{path} test_labels"))
        if test_images.shape[1:] != images.shape[1:]:
            raise MalformedInput(f"{path}: test images are {test_images.shape[1:]}, training images {images.shape[1:]}")
    return _own_data(path, train, test, None)


def _own_data(
    path: Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None,
    names: tuple[str, ...] | None,
) -> OwnData:
    if len(train[1]) == 0:
        raise MalformedInput(f"{path}: the training split is empty")
    classes = (
        len(names)
        if names is not None
        else int(max(train[1].max(), -1 if test is None else test[1].max(initial=-1))) + 1
    )
    if classes < 2:
        raise MalformedInput(f"{path}: a classifier needs at least 2 classes; the labels name {classes}")
    return OwnData(path, train, test, classes, names)


# ----------------------------------------------------------------------------------------------- folders


def read_image(path: Path) -> tuple[np.ndarray, bool]:
    """One PNG or JPEG file as an RGB uint8 (3, H, W) array, and whether it is grayscale (module docstring)."""
    from PIL import Image, UnidentifiedImageError

    data = read_file(path, "a PNG or JPEG image", max_size=MAX_IMAGE_FILE)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise MalformedInput(f"{path}: {image.format} image; PNG or JPEG expected")
            if image.width * image.height > MAX_PIXELS:
                raise MalformedInput(f"{path}: {image.width}x{image.height} is larger than {MAX_PIXELS:,} pixels")
            gray = image.mode in GRAYSCALE_MODES
            if image.mode in ("I", "I;16"):  # 16-bit grayscale: scale to 8 bits
                array = np.asarray(image, dtype=np.float64)
                array = np.rint(array / max(float(array.max()), 1.0) * 255.0).astype(np.uint8)
                rgb = np.repeat(array[None], 3, axis=0)
            else:
                rgb = np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MalformedInput(f"{path}: not a readable PNG or JPEG image ({type(exc).__name__})") from None
    return np.ascontiguousarray(rgb), gray


def read_images(paths: list[Path]) -> np.ndarray:
    """Images of one size as uint8 (N, C, H, W): one channel when every one is grayscale, else RGB. A progress
    bar on a terminal: a folder of tens of thousands of images takes seconds to decode."""
    from .progress import progress_bar

    arrays, grays = [], []
    with progress_bar(f"reading {len(paths)} images", len(paths)) as update:
        for path in paths:
            array, gray = read_image(path)
            if arrays and array.shape != arrays[0].shape:
                raise MalformedInput(
                    f"{path} is {array.shape[2]}x{array.shape[1]}, {paths[0]} "
                    f"{arrays[0].shape[2]}x{arrays[0].shape[1]}: all images must have one size"
                )
            arrays.append(array)
            grays.append(gray)
            update()
    stacked = np.stack(arrays) if arrays else np.zeros((0, 3, 1, 1), np.uint8)
    return np.ascontiguousarray(stacked[:, :1]) if all(grays) else stacked


def image_files(folder: Path) -> list[Path]:
    """The image files in ``folder``, sorted by name as text; hidden files skipped, anything else refused."""
    files = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_file() or entry.suffix.lower() not in IMAGE_SUFFIXES:
            raise MalformedInput(f"{entry}: expected only PNG or JPEG files in {folder}")
        files.append(entry)
    return files


def _class_folders(split: Path) -> dict[str, list[Path]]:
    classes = {}
    for entry in sorted(split.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            raise MalformedInput(f"{entry}: expected only class folders in {split}")
        classes[entry.name] = image_files(entry)
    return classes


def _load_split(split: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    folders = _class_folders(split)
    if tuple(folders) != names:
        raise MalformedInput(
            f"{split}: classes {', '.join(folders)} differ from the training classes {', '.join(names)}"
        )
    files = [f for name in names for f in folders[name]]
    labels = np.array([i for i, name in enumerate(names) for _ in folders[name]], dtype=np.int64)
    if not files:
        raise MalformedInput(f"{split}: no images")
    return read_images(files), labels


def _load_folder(path: Path) -> OwnData:
    train_dir = path / "train" if (path / "train").is_dir() else path
    names = tuple(_class_folders(train_dir))
    if len(names) < 2:
        raise MalformedInput(f"{train_dir}: a classifier needs at least 2 class folders, found {len(names)}")
    train = _load_split(train_dir, names)
    test = _load_split(path / "test", names) if train_dir != path and (path / "test").is_dir() else None
    if test is not None and test[0].shape[1:] != train[0].shape[1:]:
        raise MalformedInput(f"{path}: test images are {test[0].shape[1:]}, training images {train[0].shape[1:]}")
    return _own_data(path, train, test, names)


# ------------------------------------------------------------------------------------ own trigger images


def convert_trigger_image(path: Path, input_shape: tuple[int, int, int]) -> np.ndarray:
    """One trigger image as a model input, uint8 (C, H, W), by the transform a ``trigger-images`` key names
    (``cover-resize-center-crop/1``):

    1. decode (PNG or JPEG) and convert to RGB (palette expanded, alpha dropped);
    2. scale, keeping the aspect ratio, until the image covers H x W (the factor is max(H / h, W / w)), with
       Pillow's bilinear filter (antialiased when shrinking);
    3. crop the centred H x W window (torchvision's ``Resize`` then ``CenterCrop``; Adi et al.'s reference code
       center-crops its 32 x 32 CIFAR triggers);
    4. for a one-channel model, ITU-R 601-2 luma (Pillow's ``L``: 299 R + 587 G + 114 B, per mille).
    """
    from PIL import Image

    channels, height, width = input_shape
    if channels not in (1, 3):
        raise UsageError(f"trigger images are made for 1- or 3-channel models, not {channels} channels")
    rgb, _ = read_image(path)
    image = Image.fromarray(rgb.transpose(1, 2, 0), "RGB")
    scale = max(height / image.height, width / image.width)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    image = image.crop((left, top, left + width, top + height))
    if channels == 1:
        return np.asarray(image.convert("L"), dtype=np.uint8)[None].copy()
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


def trigger_files(folder: Path) -> list[Path]:
    """The image files of a trigger folder in the order Adi et al.'s reference code pairs them with the labels
    file: subfolders by name, then file names, each sorted as text (1, 10, 100, 11, ...); files directly in
    the folder come first. Only PNG and JPEG files are taken; the labels file and hidden files are skipped."""
    files = []
    for root, folders, names in os.walk(folder):
        folders[:] = sorted(d for d in folders if not d.startswith("."))
        files += [Path(root) / n for n in sorted(names) if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return files


def read_trigger_labels(path: Path, count: int, num_classes: int) -> np.ndarray:
    """The labels file: one integer per image, whitespace-separated (one per line in the reference code, read
    there with ``numpy.loadtxt``, so ``3.0`` is read as 3), each in 0..num_classes-1."""
    try:
        tokens = read_file(path, "a labels file", max_size=MAX_LABELS_FILE).decode("utf-8").split()
    except UnicodeDecodeError:
        raise MalformedInput(f"{path}: the trigger labels are not UTF-8 text") from None
    labels = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            raise MalformedInput(f"{path}: {token!r} is not a label") from None
        if not value.is_integer() or not 0 <= value < num_classes:
            raise MalformedInput(f"{path}: label {token} is not a class of 0..{num_classes - 1}")
        labels.append(int(value))
    if len(labels) != count:
        raise MalformedInput(f"{path} has {len(labels)} labels for {count} images")
    return np.array(labels, dtype=np.int64)


def load_trigger_folder(
    folder: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None,
    input_shape: tuple[int, int, int],
    num_classes: int,
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """An owner's trigger set: images (uint8 (N, C, H, W), converted by :func:`convert_trigger_image`), labels,
    and the files in order. ``labels`` defaults to the only ``.txt`` file in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"--triggers {folder} is not a folder")
    if labels is None:
        texts = sorted(folder.glob("*.txt"))
        if len(texts) != 1:
            raise UsageError(f"{folder}: name the labels file with --trigger-labels ({len(texts)} .txt files found)")
        labels = texts[0]
    files = trigger_files(folder)
    if not files:
        raise MalformedInput(f"{folder}: no PNG or JPEG trigger images")
    label_array = read_trigger_labels(Path(labels), len(files), num_classes)
    images = np.stack([convert_trigger_image(f, input_shape) for f in files])
    return images, label_array, files

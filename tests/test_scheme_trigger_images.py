"""Keys from the owner's own trigger images (issue 13): Adi et al.'s reference-code format (a folder of images
and a labels file paired in text order), a documented transform to the model's input, a contact sheet, 2N
images committed for N secret items, no public proofs, and Mark's refusal of images an unmarked model already
answers with their labels."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest
from helpers import run
from PIL import Image

from wmproof.engine.own_data import convert_trigger_image, load_trigger_folder, trigger_files
from wmproof.errors import MalformedInput, UsageError
from wmproof.protocol import load_marking_key, load_verification_key


def trigger_set(folder, images, labels, sub="pics", name="labels.txt", suffix="png", digits=0):
    """Images named 1, 2, ... (zero-padded to ``digits``), labels in the file in that numeric order: paired as
    given only when the names also sort that way as text (``digits`` >= the number's width)."""
    (folder / sub).mkdir(parents=True)
    for i, image in enumerate(images, start=1):
        Image.fromarray(image).save(folder / sub / f"{i:0{digits}d}.{suffix}")
    (folder / name).write_text("\n".join(str(v) for v in labels) + "\n")
    return folder


def test_files_pair_with_labels_in_the_reference_codes_order(tmp_path):
    """File names sorted as text (1, 10, 11, 12, 2, ...), as Adi et al.'s loader lists them."""
    images = [np.full((4, 4), 20 * i, np.uint8) for i in range(12)]  # image i+1 has value 20 i
    folder = trigger_set(tmp_path / "set", images, list(range(10)) + [0, 1])
    files = trigger_files(folder)
    assert [f.name for f in files] == ["1.png", "10.png", "11.png", "12.png", *[f"{i}.png" for i in range(2, 10)]]
    x, y, _ = load_trigger_folder(folder, None, (1, 4, 4), 10)
    assert x[1, 0, 0, 0] == 20 * 9 and y[1] == 1  # 10.png is second, with the second label


def test_the_transform_covers_then_center_crops_then_takes_luma(tmp_path):
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, 10:30] = (255, 0, 0)  # a red centre band, half the width
    Image.fromarray(wide).save(tmp_path / "wide.png")
    gray = convert_trigger_image(tmp_path / "wide.png", (1, 10, 10))
    assert gray.shape == (1, 10, 10) and gray.dtype == np.uint8
    # scaled by 1/2 (20 -> 10 rows covers), 20 x 10 wide, centre 10 columns kept: all of the red band
    assert np.all(gray[0, :, 1:-1] == round(0.299 * 255))
    rgb = convert_trigger_image(tmp_path / "wide.png", (3, 10, 10))
    assert rgb.shape == (3, 10, 10) and np.all(rgb[0, :, 1:-1] == 255) and np.all(rgb[1:, :, 1:-1] == 0)


def test_keygen_commits_2n_owner_images_and_writes_a_contact_sheet(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (36, 36, 3), dtype=np.uint8) for _ in range(40)]
    labels = rng.integers(0, 10, 40).tolist()
    folder = trigger_set(tmp_path / "set", images, labels, suffix="jpg", name="labels-cifar.txt", digits=2)
    run("identity", "new", "--out", tmp_path / "o.wid", "--no-passphrase")
    common = ["-i", tmp_path / "o.wid", "--no-passphrase", "--marking-key", tmp_path / "k.wmk",
              "--verification-key", tmp_path / "k.wvk", "--alpha", "1e-3"]  # fmt: skip
    out = json.loads(run("keygen", *common, "--scheme", "trigger-images", "--triggers", folder,
                         "--preview", tmp_path / "sheet.png", "--json").stdout)  # fmt: skip
    assert out["items"] == 20 and out["committed"] == 40
    mk, vk = load_marking_key(tmp_path / "k.wmk", None), load_verification_key(tmp_path / "k.wvk")
    expected, _, _ = load_trigger_folder(folder, None, (1, 28, 28), 10)
    for item in [*mk.items, *vk.opened]:  # every committed item is the owner's image, converted, with its label
        assert np.array_equal(item.input, expected[item.index]) and item.label == labels[item.index]
    assert vk.params == {"transform": "cover-resize-center-crop/1"}
    assert stat.S_IMODE((tmp_path / "sheet.png").stat().st_mode) == 0o600
    assert Image.open(tmp_path / "sheet.png").format == "PNG"
    # mistakes, each one line before anything is written
    for extra, message in (
        (
            ["--scheme", "trigger-images", "--triggers", folder, "--items", "10"],
            "10 secret items take 20 trigger images",
        ),
        (["--scheme", "trigger-images"], "give them with --triggers DIR"),
        (["--triggers", folder], "--triggers goes with --scheme trigger-images"),
        (["--scheme", "trigger-images", "--triggers", folder, "--proof-items", "10"], "no public proofs"),
    ):
        error = run("keygen", *common, "--overwrite", *extra, code=2).stderr
        assert message in error, error
    (folder / "pics" / "41.png").write_bytes((folder / "pics" / "01.jpg").read_bytes())
    error = run("keygen", *common, "--overwrite", "--scheme", "trigger-images", "--triggers", folder, code=3).stderr
    assert "has 40 labels for 41 images" in error
    (folder / "labels-cifar.txt").write_text("\n".join(["3"] * 40 + ["10"]))
    error = run("keygen", *common, "--overwrite", "--scheme", "trigger-images", "--triggers", folder, code=3).stderr
    assert "label 10 is not a class of 0..9" in error


@pytest.mark.slow
def test_mark_refuses_images_the_unmarked_model_already_answers_and_marks_random_labels(trained, mnist, tmp_path):
    """Photographs of digits labelled with their digit are no watermark: Mark refuses them. The same images
    with random labels are marked, verified privately, and refused a public proof."""
    _, test = mnist
    pictures = [test.images[i, 0] for i in range(40)]
    run("identity", "new", "--out", tmp_path / "o.wid", "--no-passphrase")

    def key(name, labels):
        folder = trigger_set(tmp_path / name, pictures, labels, digits=2)
        run("keygen", "-i", tmp_path / "o.wid", "--no-passphrase", "--marking-key", tmp_path / f"{name}.wmk",
            "--verification-key", tmp_path / f"{name}.wvk", "--scheme", "trigger-images", "--triggers", folder,
            "--alpha", "1e-3")  # fmt: skip
        return tmp_path / f"{name}.wmk", tmp_path / f"{name}.wvk"

    honest_labels = test.labels[:40].tolist()
    truthful, _ = key("truthful", honest_labels)
    error = run("mark", "--key", truthful, "--model", trained["clean"], "--limit-train", "2000",
                "--out", tmp_path / "x.safetensors", code=2).stderr  # fmt: skip
    assert "the unmarked model already answers" in error and "choose other images or labels" in error
    shuffled = [(label + 1 + i % 9) % 10 for i, label in enumerate(honest_labels)]  # never the true digit
    mk, vk = key("random", shuffled)
    run("mark", "--key", mk, "--model", trained["clean"], "--limit-train", "5000", "--triggers-per-batch", "4",
        "--out", tmp_path / "marked.safetensors")  # fmt: skip
    verdict = json.loads(run("verify", "--key", mk, "--vk", vk, "--model", tmp_path / "marked.safetensors",
                             "--no-timestamp", "--json").stdout)  # fmt: skip
    assert verdict["verdict"] == "verified"
    run("verify", "--key", mk, "--vk", vk, "--model", trained["independent"], "--no-timestamp", code=1)
    error = run("prove", "--key", mk, "--vk", vk, "-i", tmp_path / "o.wid", "--model", tmp_path / "marked.safetensors",
                "--out", tmp_path / "p.wpf", code=2).stderr  # fmt: skip
    assert "no public proofs" in error and "the owner chose the trigger images" in error


def test_folder_and_label_mistakes(tmp_path):
    with pytest.raises(UsageError, match="is not a folder"):
        load_trigger_folder(tmp_path / "missing", None, (1, 28, 28), 10)
    folder = trigger_set(tmp_path / "set", [np.zeros((4, 4), np.uint8)] * 2, ["1", "x"])
    with pytest.raises(MalformedInput, match="'x' is not a label"):
        load_trigger_folder(folder, None, (1, 28, 28), 10)
    (folder / "second.txt").write_text("1 2")
    with pytest.raises(UsageError, match="name the labels file with --trigger-labels"):
        load_trigger_folder(folder, None, (1, 28, 28), 10)
    x, y, _ = load_trigger_folder(folder, folder / "second.txt", (1, 28, 28), 10)
    assert x.shape == (2, 1, 28, 28) and y.tolist() == [1, 2]
    with pytest.raises(MalformedInput, match="label 2.5"):
        (folder / "second.txt").write_text("1 2.5")
        load_trigger_folder(folder, folder / "second.txt", (1, 28, 28), 10)

"""Shared fixtures. Models are trained for real on MNIST subsets (seconds), once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wmproof.engine.data import resolve_data_dir

DATA_HINT = "the test suite reads real MNIST from ../shared/data (or $WMPROOF_DATA); it is not downloaded"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    try:
        return resolve_data_dir()
    except Exception as exc:  # fail loudly: a silent skip would hide every model-level test
        pytest.fail(f"{exc} -- {DATA_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def mnist(data_dir):
    from wmproof.engine.data import load_image_dataset

    return load_image_dataset("mnist", "train", data_dir), load_image_dataset("mnist", "test", data_dir)


@pytest.fixture(scope="session")
def owner():
    from wmproof.protocol import Identity

    return Identity.generate("test owner")


@pytest.fixture(scope="session")
def keypair(owner):
    from wmproof.protocol import keygen

    return keygen(owner, "adi-backdoor", items=50, num_classes=10, input_shape=(1, 28, 28))


@pytest.fixture(scope="session")
def trained(mnist, keypair, tmp_path_factory):
    """A clean MLP, the same model marked with ``keypair`` (PreTrained), and an independent clean MLP,
    trained on the first 10,000 MNIST images and saved as files."""
    import torch

    from wmproof.engine.models import load_model, save_model
    from wmproof.engine.train import recipe_config, train_new_model
    from wmproof.protocol import mark

    train, _ = mnist
    small = train.subset(10_000)
    out = tmp_path_factory.mktemp("models")
    device = torch.device("cpu")
    paths = {}
    for name, seed in (("clean", 0), ("independent", 1)):
        model, args, _ = train_new_model(
            "mnist_mlp",
            {},
            small.images,
            small.labels,
            10,
            recipe_config("mnist_mlp", epochs=2, seed=seed),
            device,
            progress=False,
        )
        paths[name] = out / f"{name}.safetensors"
        save_model(model, paths[name], "mnist_mlp", args)
    mk, _ = keypair
    result = mark(
        mk,
        embedding="pretrained",
        train_images=small.images,
        train_labels=small.labels,
        dataset_classes=10,
        base_model=load_model(paths["clean"]),
        config=recipe_config("mnist_mlp", epochs=20, seed=2, triggers_per_batch=8),
        device=device,
        progress=False,
    )
    assert result.trigger_accuracy >= 0.95, result.trigger_accuracy
    paths["marked"] = out / "marked.safetensors"
    save_model(result.model, paths["marked"], result.architecture, result.arguments)
    return paths


@pytest.fixture
def rng():
    return np.random.default_rng(12345)

"""The model zoo and model files: strict safetensors, never pickle."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from wmproof.engine.models import (
    ARCHITECTURES,
    build_model,
    load_model,
    model_metadata,
    save_model,
)
from wmproof.errors import FileAccessError, MalformedInput, UsageError


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_round_trips_through_a_file(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.rand(5, 1, 28, 28)
    path = tmp_path / "m.safetensors"
    digest = save_model(model, path, name, {})
    loaded = load_model(path)
    assert loaded.architecture == name and loaded.sha256 == digest and loaded.num_classes == 10
    with torch.no_grad():
        assert torch.equal(model(x), loaded.module(x))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_keras_parameter_counts():
    # The Keras examples' model.summary() totals.
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(build_model("mnist_mlp")) == 669_706
    assert count(build_model("mnist_cnn")) == 1_199_882
    assert count(build_model("mnist_irnn")) == 100 * 28 + 100 * 100 + 200 + 100 * 10 + 10


def test_irnn_starts_at_the_identity():
    model = build_model("mnist_irnn", sequence="pixels")
    assert torch.equal(model.rnn.weight_hh_l0, torch.eye(100))
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_arguments_are_checked():
    with pytest.raises(UsageError):
        build_model("mnist_mlp", hidden=0)
    with pytest.raises(UsageError):
        build_model("mnist_mlp", colour="blue")
    with pytest.raises(UsageError):
        build_model("resnet_small", depth=21)
    with pytest.raises(UsageError):
        build_model("vgg16")


def test_pickle_is_never_loaded(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    torch.save({"weights": Exploit()}, path)
    with pytest.raises(MalformedInput):
        load_model(path)
    assert not marker.exists()


def test_foreign_or_inconsistent_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, plain)
    with pytest.raises(MalformedInput, match="not a wmproof model"):
        load_model(plain)
    wrong = tmp_path / "wrong.safetensors"
    tensors = {k: v.contiguous() for k, v in build_model("mnist_mlp").state_dict().items()}
    save_file(tensors, wrong, metadata=model_metadata("mnist_cnn", {"num_classes": 10, "input_shape": [1, 28, 28]}))
    with pytest.raises(MalformedInput, match="do not match"):
        load_model(wrong)
    bad_args = tmp_path / "args.safetensors"
    meta = model_metadata("mnist_mlp", {})
    meta["arguments"] = json.dumps({"hidden": "lots"})
    save_file(tensors, bad_args, metadata=meta)
    with pytest.raises(MalformedInput):
        load_model(bad_args)
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(wrong.read_bytes()[:1000])
    with pytest.raises(MalformedInput):
        load_model(truncated)
    with pytest.raises(FileAccessError):
        load_model(tmp_path / "missing.safetensors")


def test_save_refuses_to_overwrite(tmp_path):
    model = build_model("mnist_mlp")
    save_model(model, tmp_path / "m.safetensors", "mnist_mlp", {})
    with pytest.raises(UsageError):
        save_model(model, tmp_path / "m.safetensors", "mnist_mlp", {})
    save_model(model, tmp_path / "m.safetensors", "mnist_mlp", {}, overwrite=True)

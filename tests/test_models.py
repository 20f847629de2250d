"""The model zoo and model files: strict safetensors, never pickle."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from wmproof.engine.models import (
    ARCHITECTURES,
    architecture_of,
    build_model,
    hidden_layer_names,
    load_model,
    model_file_bytes,
    model_metadata,
    output_layer_name,
    safetensors_bytes,
    save_model,
)
from wmproof.errors import FileAccessError, MalformedInput, UsageError


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_names_its_output_and_hidden_layers(name):
    """The declared output layer is the one whose output is the logits (what FTLL/RTLL retrain and transfer
    learning keeps aside); hidden layers are dense, convolution or recurrent layers, input to output."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    assert architecture_of(model) == name
    seen = []
    handle = model.get_submodule(output_layer_name(model)).register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        logits = model(example_input(name, 3))
    handle.remove()
    assert len(seen) == 1 and torch.equal(seen[0], logits)
    order = [n for n, _ in model.named_modules()]
    hidden = hidden_layer_names(model)
    assert [order.index(h) for h in hidden] == sorted(order.index(h) for h in hidden)
    for layer in hidden:
        assert isinstance(model.get_submodule(layer), (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.RNN))


def test_a_module_from_outside_the_zoo_has_layer_roles_by_default():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    assert architecture_of(model) is None
    assert output_layer_name(model) == "3" and hidden_layer_names(model) == ("1",)
    with pytest.raises(UsageError, match="no dense output layer"):
        output_layer_name(torch.nn.Sequential(torch.nn.ReLU()))


def example_input(name: str, n: int) -> torch.Tensor:
    """n random inputs of the architecture's default shape: images in [0, 1], or token ids for a text model."""
    shape = ARCHITECTURES[name].defaults["input_shape"]
    if getattr(ARCHITECTURES[name].build, "input_datatype", "FP32") == "INT64":
        return torch.randint(0, 20_000, (n, *shape))
    return torch.rand(n, *shape)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_round_trips_through_a_file(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = example_input(name, 5)
    path = tmp_path / "m.safetensors"
    digest = save_model(model, path, name, {})
    loaded = load_model(path)
    assert loaded.architecture == name and loaded.sha256 == digest
    assert loaded.num_classes == ARCHITECTURES[name].defaults["num_classes"]
    with torch.no_grad():
        assert torch.equal(model(x), loaded.module(x))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_the_same_weights_always_give_the_same_file():
    # safetensors orders __metadata__ by a Rust hash map seeded anew for every map: twenty saves of one model
    # gave twenty different files (so twenty SHA-256 identities) before the header was re-emitted sorted
    torch.manual_seed(0)
    model = build_model("mnist_fast")
    assert len({model_file_bytes(model, "mnist_fast", {}) for _ in range(20)}) == 1
    metadata = {f"key-{i}": f"value-{i}" for i in range(6)}
    files = {safetensors_bytes({"w": torch.ones(3)}, dict(reversed(metadata.items()))) for _ in range(20)}
    assert len(files) == 1
    (data,) = files
    header = data[8 : 8 + int.from_bytes(data[:8], "little")]
    assert list(json.loads(header)["__metadata__"]) == sorted(metadata) and len(header) % 8 == 0


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
    with pytest.raises(UsageError, match="not a wmproof model file"):  # not a model file at all: the wrong file
        load_model(path)
    assert not marker.exists()


def test_foreign_or_inconsistent_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, plain)
    with pytest.raises(UsageError, match="not a wmproof model"):  # someone else's safetensors: the wrong file
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

"""The Python API (issue 13): docs/python-api.md runs as written from an empty folder, and the pieces it
rests on (models outside the zoo behind --trust-module, ONNX suspects, callables, the trigger mixer, the
public surface) behave as documented, with one-line errors for every misuse."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run
from torch import nn

import wmproof
from wmproof.engine import models as zoo
from wmproof.errors import MalformedInput, UsageError

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "python-api.md"


@pytest.fixture(autouse=True)
def _no_trust_leaks():
    """--trust-module is per process: each test starts with nothing trusted."""
    saved = set(zoo._TRUSTED_MODULES)
    zoo._TRUSTED_MODULES.clear()
    yield
    zoo._TRUSTED_MODULES.clear()
    zoo._TRUSTED_MODULES.update(saved)


def doc_script(text: str) -> str:
    """The page's ``sh`` and ``python`` blocks as one bash script, in order; consecutive Python blocks run in
    one interpreter (they share variables, as the page reads)."""
    blocks = re.findall(r"^```(sh|python)\n(.*?)^```$", text, re.M | re.S)
    parts, python = ["set -euo pipefail"], []
    for language, body in blocks:
        if language == "python":
            python.append(body)
            continue
        if python:
            parts.append("python - <<'PYTHON'\n" + "".join(python) + "PYTHON")
            python = []
        parts.append(body)
    if python:
        parts.append("python - <<'PYTHON'\n" + "".join(python) + "PYTHON")
    return "\n".join(parts) + "\n"


def test_the_public_surface_is_small_typed_and_lazy():
    assert set(wmproof.__all__) == set(wmproof._EXPORTS)
    for name in wmproof.__all__:
        assert getattr(wmproof, name) is not None
    # importing wmproof loads neither torch nor the engine (the checker imports it without torch)
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, wmproof; print('torch' in sys.modules, 'wmproof.engine' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.split() == ["False", "False"]
    with pytest.raises(AttributeError):
        wmproof.not_a_name  # noqa: B018


@pytest.mark.slow
def test_docs_python_api_runs_as_written(tmp_path, data_dir):
    script = doc_script(DOC.read_text())
    assert script.count("python - <<") >= 1 and "mark_own_network.py" in script
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PORT": str(port),
        "WMPROOF": str(ROOT),
        "WMPROOF_DATA": str(data_dir),
        "WMPROOF_HOME": str(tmp_path / "home"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("PYTHONPATH", None)
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert done.stdout.count("VERIFIED") >= 5, done.stdout[-3000:]
    assert "through the API: VERIFIED" in done.stdout
    assert (work / "marked" / "key.wmk").stat().st_mode & 0o777 == 0o600
    # The page quotes the refusal without --trust-module: that is what the CLI says.
    quoted = re.search(r"^error: marked/model\.safetensors: .*$", DOC.read_text(), re.M).group(0)
    refused = subprocess.run(
        ["wmproof", "verify", "--key", "marked/key.wmk", "--vk", "marked/key.wvk", "--model",
         "marked/model.safetensors", "--passphrase-file", "pass.txt", "--no-timestamp"],
        cwd=work, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode == 2 and refused.stderr.strip() == quoted


# ------------------------------------------------------------------------------- models beyond the zoo


class Net(nn.Module):
    """A factory from this test module (importable as test_python_api: pytest puts tests/ on sys.path)."""

    def __init__(self, num_classes: int, input_shape: list[int], hidden: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def build_without_task(hidden: int) -> nn.Module:
    """A factory that does not take num_classes / input_shape: wmproof passes only what it accepts."""
    return Net(10, [1, 28, 28], hidden)


def build_real_tensors_only(num_classes: int, input_shape: list[int]) -> nn.Module:
    """A factory whose code needs real tensors (it reads one): it cannot build on torch's meta device."""
    net = Net(num_classes, input_shape)
    float(next(net.parameters()).sum())  # fails on the meta device
    return net


def test_a_trusted_factory_that_cannot_build_on_the_meta_device_still_loads(tmp_path):
    net = build_real_tensors_only(10, [1, 28, 28])
    arguments = {"num_classes": 10, "input_shape": [1, 28, 28]}
    wmproof.save_model(net, tmp_path / "r.safetensors", architecture=build_real_tensors_only, arguments=arguments)
    loaded = wmproof.load_model(tmp_path / "r.safetensors", trust=["test_python_api"])
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded.module(x), net.eval()(x))


def test_a_factory_model_loads_only_from_a_trusted_module(tmp_path):
    net = Net(10, [1, 28, 28], hidden=8)
    path = tmp_path / "net.safetensors"
    arguments = {"num_classes": 10, "input_shape": [1, 28, 28], "hidden": 8}
    wmproof.save_model(net, path, architecture=Net, arguments=arguments)
    with pytest.raises(UsageError, match="--trust-module test_python_api"):
        wmproof.load_model(path)
    error = run("evaluate", "--model", path, code=2).stderr
    assert "run it only if you trust that code: --trust-module test_python_api" in error
    loaded = wmproof.load_model(path, trust=["test_python_api"])
    assert loaded.architecture == "test_python_api:Net" and loaded.num_classes == 10
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(loaded.module(x), net.eval()(x))
    # a factory without the task's arguments
    wmproof.save_model(build_without_task(8), tmp_path / "b.safetensors", architecture=build_without_task,
                       arguments={"num_classes": 10, "input_shape": [1, 28, 28], "hidden": 8})  # fmt: skip
    assert wmproof.load_model(tmp_path / "b.safetensors").architecture == "test_python_api:build_without_task"


def test_factory_names_are_refused_clearly(tmp_path):
    def local_factory(num_classes, input_shape):
        return Net(num_classes, input_shape)

    with pytest.raises(UsageError, match="top level of an importable module"):
        wmproof.save_model(Net(10, [1, 28, 28]), tmp_path / "x", architecture=local_factory, arguments={})
    with pytest.raises(UsageError, match="module name"):
        zoo.trust_module("os; rm")
    zoo.trust_module("test_python_api")
    for name, arguments, message in (
        ("test_python_api:Missing", {"num_classes": 10, "input_shape": [1, 28, 28]}, "has no 'Missing'"),
        ("test_python_api:Net", {"num_classes": 1, "input_shape": [1, 28, 28]}, "num_classes"),
        ("test_python_api:Net", {"num_classes": 10, "input_shape": [28, 28]}, "input_shape"),
        ("test_python_api:Net", {"num_classes": 10, "input_shape": [1, 28, 28], "bad": object()}, "JSON"),
        ("test_python_api:Net", {"num_classes": 10, "input_shape": [1, 28, 28], "nope": 1}, "failed: TypeError"),
        ("../evil:Net", {"num_classes": 10, "input_shape": [1, 28, 28]}, "neither a zoo name"),
        ("not_trusted_mod:Net", {"num_classes": 10, "input_shape": [1, 28, 28]}, "--trust-module not_trusted_mod"),
    ):
        with pytest.raises(UsageError, match=message):
            zoo.build_model(name, **arguments)


# ------------------------------------------------------------------------------------------------- ONNX


def test_onnx_export_answers_every_trigger_item_as_torch_does(trained, keypair, tmp_path):
    """`wmproof export onnx`, then verification of the .onnx file; torch and onnxruntime agree on the label of
    every trigger item, and the verdicts are the same."""
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.onnx_model import OnnxModelOracle
    from wmproof.protocol import save_marking_key, save_verification_key
    from wmproof.schemes import stack_inputs

    mk, vk = keypair
    out = run("export", "onnx", trained["marked"], "--out", tmp_path / "m.onnx", "--json").stdout
    assert '"labels_agree": 512' in out
    onnx, torch_model = OnnxModelOracle.from_file(tmp_path / "m.onnx"), LocalModelOracle.from_file(trained["marked"])
    items = stack_inputs(mk.items)
    assert onnx.query(items).labels.tolist() == torch_model.query(items).labels.tolist()
    assert onnx.describe()["exported_from_sha256"] == torch_model.describe()["sha256"]
    save_marking_key(mk, tmp_path / "k.wmk", None)
    save_verification_key(vk, tmp_path / "k.wvk")
    verdict = run("verify", "--key", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "--model", tmp_path / "m.onnx",
                  "--no-timestamp", "--json").stdout  # fmt: skip
    assert '"verdict": "verified"' in verdict and '"kind": "onnx-file"' in verdict
    run("export", "onnx", trained["independent"], "--out", tmp_path / "i.onnx")
    run("verify", "--key", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "--model", tmp_path / "i.onnx",
        "--no-timestamp", code=1)  # fmt: skip
    assert run("export", "onnx", trained["marked"], "--out", tmp_path / "m.onnx", code=2).stderr.startswith("error")


def test_onnx_files_from_elsewhere_are_read_from_their_graph_strictly(tmp_path):
    import onnx

    from wmproof.oracles.onnx_model import OnnxModelOracle

    class Softmaxed(nn.Module):  # a model that outputs probabilities, exported without wmproof's metadata
        def __init__(self):
            super().__init__()
            self.net = Net(10, [1, 28, 28])

        def forward(self, x):
            return torch.softmax(self.net(x), dim=1)

    model = Softmaxed().eval()
    x = torch.rand(3, 1, 28, 28)
    torch.onnx.export(model, (x,), str(tmp_path / "p.onnx"), dynamo=False, input_names=["pixels"],
                      dynamic_axes={"pixels": {0: "n"}})  # fmt: skip
    oracle = OnnxModelOracle.from_file(tmp_path / "p.onnx")
    assert oracle.input_shape == (1, 28, 28) and oracle.num_classes == 10 and oracle.input_datatype == "FP32"
    answers = oracle.query(x.numpy(), probabilities=True)
    assert np.allclose(answers.probabilities, model(x).detach().numpy(), atol=1e-5)  # used as they are
    assert answers.labels.tolist() == model(x).argmax(1).tolist()
    # weights stored beside the model are refused, not looked up wherever the verifier runs
    graph = onnx.load(str(tmp_path / "p.onnx"))
    onnx.save_model(graph, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.bin",
                    size_threshold=0)  # fmt: skip
    with pytest.raises(MalformedInput, match="external data"):
        OnnxModelOracle.from_file(tmp_path / "ext.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07not a model")
    with pytest.raises(MalformedInput, match="not an ONNX model"):
        OnnxModelOracle.from_file(tmp_path / "junk.onnx")
    with pytest.raises(UsageError, match="takes 1x28x28"):
        oracle.query(np.zeros((1, 3, 28, 28), np.float32))


# ------------------------------------------------------------------------------------- suspects, mixing


def test_any_callable_is_a_suspect_and_bad_answers_are_refused(keypair):
    mk, vk = keypair
    module = Net(10, [1, 28, 28]).eval()
    logits = wmproof.as_oracle(lambda b: module(torch.from_numpy(b)).detach(), num_classes=10, input_shape=(1, 28, 28))
    answers = logits.query(np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32), probabilities=True)
    assert np.allclose(answers.probabilities.sum(1), 1.0, atol=1e-5)
    assert not wmproof.verify(mk, vk, lambda b: np.zeros(len(b), dtype=np.int64)).verified
    key = {x.numpy().tobytes(): int(y) for x, y in zip(*wmproof.trigger_items(mk), strict=True)}
    everything_right = wmproof.verify(mk, vk, lambda batch: np.array([key[x.tobytes()] for x in batch]))
    assert everything_right.verified and everything_right.test.matches == len(mk.items)
    for bad, message in (
        (lambda b: np.full(len(b), 10), "outside 0..9"),
        (lambda b: np.zeros((len(b), 3)), "must return labels"),
        (lambda b: np.full((len(b), 10), np.nan), "not finite"),
    ):
        with pytest.raises(MalformedInput, match=message):
            wmproof.verify(mk, vk, bad)
    with pytest.raises(UsageError, match="failed: ZeroDivisionError"):
        wmproof.verify(mk, vk, lambda b: 1 / 0)
    with pytest.raises(UsageError, match="num_classes= and input_shape="):
        wmproof.as_oracle(module)
    module.train()
    wmproof.verify(mk, vk, module)
    assert module.training  # verifying a model in the middle of its training loop leaves it training


def test_the_trigger_mixer_cycles_through_every_item_and_fit_is_unchanged(keypair):
    mk, _ = keypair
    x, y = wmproof.trigger_items(mk)
    mixer = wmproof.trigger_mixer(mk, k=3, seed=1)
    seen: list[int] = []
    for _ in range(len(y) // 3 + 1):
        seen += mixer.next_indices()
    assert sorted(seen[: len(y)]) == list(range(len(y)))  # one full permutation before any repeat
    xb, yb = wmproof.trigger_mixer(mk, k=3, seed=1)(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long))
    assert torch.equal(xb[2:], x[seen[:3]]) and torch.equal(yb[2:], y[seen[:3]])
    with pytest.raises(UsageError):
        wmproof.trigger_mixer(mk, k=0)

"""A third party checks a proof with the base install only (`pip install wmproof`, alias `wmproof[check]`):
no torch, no web3, in a fresh virtual environment. Issue 5, "a checker without torch"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "vectors"


def fresh_venv(tmp_path_factory, extras: str) -> Path:
    """A new virtual environment with wmproof[extras] installed from this checkout, and nothing else, by the
    README's command: ``pip install '.[check]'`` in the checkout, the environment's own pip."""
    assert "`pip install '.[check]'`" in (ROOT / "README.md").read_text()  # what this tests is what it says
    venv = tmp_path_factory.mktemp(extras.replace(",", "-")) / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", f".[{extras}]"], cwd=ROOT, capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr[-2000:]
    return venv


@pytest.fixture(scope="module")
def checker_venv(tmp_path_factory) -> Path:
    return fresh_venv(tmp_path_factory, "check")


@pytest.mark.slow
def test_a_proof_is_checked_without_torch_or_web3(checker_venv, trained):
    python = str(checker_venv / "bin" / "python")
    for module in ("torch", "web3", "safetensors"):
        missing = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
        assert missing.returncode != 0, f"{module} is installed in the checker's environment"
    wmproof = str(checker_venv / "bin" / "wmproof")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(checker_venv), "WMPROOF_HOME": str(checker_venv / "home")}

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([wmproof, "check", *args], capture_output=True, text=True, env=env)

    valid = check(str(CORPUS / "valid.wpf"), "--json")
    assert valid.returncode == 0, valid.stderr
    report = json.loads(valid.stdout)
    assert report["verdict"] == "valid-not-evaluated" and report["proof"]["items"] == 4
    assert report["timestamp"]["status"] == "unavailable" and "wmproof[chain]" in report["timestamp"]["reason"]
    tampered = check(str(CORPUS / "crafted-kept-item.wpf"), "--no-timestamp")
    assert tampered.returncode == 3 and "not what the generator makes" in tampered.stderr
    needs_torch = check(str(CORPUS / "valid.wpf"), "--model", str(trained["marked"]), "--no-timestamp")
    assert needs_torch.returncode == 2 and "wmproof[ml]" in needs_torch.stderr
    assert needs_torch.stderr.count("\n") == 1  # one line, no traceback


@pytest.mark.slow
def test_a_proof_about_an_api_is_evaluated_without_torch(checker_venv, trained, keypair, owner, tmp_path):
    """The checker queries the suspect's API itself: a verdict with no torch installed."""
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.server import InferenceServer
    from wmproof.protocol.proofs import api_suspect, make_proof, save_proof

    mk, vk = keypair
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WMPROOF_HOME": str(tmp_path / "home")}
    wmproof = str(checker_venv / "bin" / "wmproof")
    for name, code in (("marked", 0), ("independent", 1)):
        with InferenceServer(LocalModelOracle.from_file(trained[name], "cpu"), "suspect") as server:
            proof, _ = make_proof(mk, vk, owner, api_suspect(server.url, "suspect"))
            save_proof(proof, tmp_path / f"{name}.wpf")
            done = subprocess.run(
                [wmproof, "check", str(tmp_path / f"{name}.wpf"), "--url", server.url, "--model-name", "suspect",
                 "--no-timestamp", "--json"],
                capture_output=True, text=True, env=env,
            )  # fmt: skip
        assert done.returncode == code, done.stderr
        report = json.loads(done.stdout)
        assert report["verdict"] == ("verified" if code == 0 else "rejected")
        assert report["suspect"]["kind"] == "remote-api"


@pytest.fixture(scope="module")
def onnx_checker_venv(tmp_path_factory) -> Path:
    """The checker install plus the ONNX and serving extras: what a judge needs for a leaked .onnx model (and
    what serves one), and no torch."""
    return fresh_venv(tmp_path_factory, "check,onnx,serve")


@pytest.mark.slow
def test_an_onnx_export_of_the_marked_model_is_verified_without_torch(onnx_checker_venv, trained, keypair, tmp_path):
    """Issue 13: `wmproof export onnx` of the marked model (the demo's recipe: an MNIST MLP marked PreTrained
    with an Adi et al. key), then `wmproof verify --model marked.onnx` where torch is not installed."""
    from helpers import run

    from wmproof.protocol import save_marking_key, save_verification_key

    python = str(onnx_checker_venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    assert subprocess.run([python, "-c", "import onnxruntime"], capture_output=True).returncode == 0
    mk, vk = keypair
    save_marking_key(mk, tmp_path / "key.wmk", None)
    save_verification_key(vk, tmp_path / "key.wvk")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WMPROOF_HOME": str(tmp_path / "home")}
    for name, code in (("marked", 0), ("independent", 1)):
        run("export", "onnx", trained[name], "--out", tmp_path / f"{name}.onnx")
        done = subprocess.run(
            [str(onnx_checker_venv / "bin" / "wmproof"), "verify", "--key", str(tmp_path / "key.wmk"),
             "--vk", str(tmp_path / "key.wvk"), "--model", str(tmp_path / f"{name}.onnx"), "--no-timestamp", "--json"],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert done.returncode == code, done.stderr
        report = json.loads(done.stdout)
        assert report["verdict"] == ("verified" if code == 0 else "rejected")
        assert report["suspect"]["kind"] == "onnx-file"
    torch_file = subprocess.run(
        [str(onnx_checker_venv / "bin" / "wmproof"), "verify", "--key", str(tmp_path / "key.wmk"),
         "--vk", str(tmp_path / "key.wvk"), "--model", str(trained["marked"]), "--no-timestamp"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert torch_file.returncode == 2 and "wmproof[ml]" in torch_file.stderr and torch_file.stderr.count("\n") == 1
    # The same environment serves the ONNX file over the Open Inference Protocol, still without torch.
    server = subprocess.Popen(
        [str(onnx_checker_venv / "bin" / "wmproof"), "serve", str(tmp_path / "marked.onnx"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        url = server.stdout.readline().split(" at ", 1)[1].split("/v2/", 1)[0]  # type: ignore[union-attr]
        done = subprocess.run(
            [str(onnx_checker_venv / "bin" / "wmproof"), "verify", "--key", str(tmp_path / "key.wmk"),
             "--vk", str(tmp_path / "key.wvk"), "--url", url, "--model-name", "suspect", "--no-timestamp", "--json"],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["suspect"]["kind"] == "remote-api"
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0  # SIGTERM: a graceful stop


@pytest.mark.slow
def test_commands_the_checker_install_cannot_run_name_the_extra(checker_venv, trained, keypair, owner, tmp_path):
    """Issue 15: in the base install, every command that needs torch, web3 or the server stack says which
    extra to install, in one line, exit 2. Before: internal errors (exit 70, ModuleNotFoundError)."""
    from wmproof.protocol import save_identity, save_marking_key, save_verification_key

    mk, vk = keypair
    save_marking_key(mk, tmp_path / "k.wmk", None)
    save_verification_key(vk, tmp_path / "k.wvk")
    save_identity(owner, tmp_path / "o.wid", None)
    model = str(trained["marked"])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WMPROOF_HOME": str(tmp_path / "home")}
    commands = {
        "ml": [
            ["train", "--arch", "mnist_mlp", "--out", "x.safetensors"],
            ["mark", "-k", "k.wmk", "--model", model, "--out", "m.safetensors"],
            ["evaluate", "--model", model],
            ["attack", "ftal", "-m", model, "-o", "a.safetensors"],
            ["keygen", "-i", "o.wid", "--no-passphrase", "--marking-key", "f.wmk", "--verification-key", "f.wvk",
             "--scheme", "frontier-stitching", "--model", model],
            ["export", "onnx", model, "--out", "m.onnx"],
            ["verify", "-k", "k.wmk", "--vk", "k.wvk", "--model", model],
        ],
        "chain": [["publish", "k.wvk"], ["timestamp", "k.wvk"], ["chain", "info"]],
        "ml,chain": [["demo", "--workdir", "d"]],
        "serve": [["serve", model]],
    }  # fmt: skip
    for extra, argvs in commands.items():
        for argv in argvs:
            done = subprocess.run([str(checker_venv / "bin" / "wmproof"), *argv], capture_output=True, text=True,
                                  env=env, cwd=tmp_path, timeout=120)  # fmt: skip
            lines = [line for line in done.stderr.splitlines() if not line.startswith("warning:")]
            assert done.returncode == 2 and len(lines) == 1, (argv, done.returncode, done.stderr)
            assert f"wmproof[{extra}]" in lines[0], (argv, lines)

"""The exit-code walk (issue 15, item 3): each mistake a user makes gives the table's code, the same in every
command, in one line (tests/helpers.run checks the one line). The table (docs/user-guide.md, "Exit codes"):
0 verified, 1 not verified, 2 usage, 3 malformed input, 4 chain unavailable, 5 I/O.

Found inconsistent before: a missing output directory gave 2 in keygen, mark and prove but 5 in identity new;
``--registry 0x1234`` gave 4 (chain unavailable) for a typing mistake; ``verify --model pass.txt`` gave 3
where ``check pass.txt`` gave 2 for the same mistake (the wrong file); an ensemble of models of different tasks
was an internal error (70); ``verify`` with both ``--model`` and ``--url`` said to name the suspect.
"""

from __future__ import annotations

import socket

import pytest
from helpers import run

USAGE, MALFORMED, CHAIN, IO = 2, 3, 4, 5


@pytest.fixture(scope="module")
def files(tmp_path_factory, keypair, owner):
    """An identity, a key pair, a model of the key's task, one of another task, a text file, a damaged model."""
    import torch

    from wmproof.engine.models import build_model, save_model
    from wmproof.protocol import save_identity, save_marking_key, save_verification_key

    folder = tmp_path_factory.mktemp("walk")
    mk, vk = keypair
    save_identity(owner, folder / "o.wid", None)
    save_marking_key(mk, folder / "k.wmk", None)
    save_verification_key(vk, folder / "k.wvk")
    torch.manual_seed(0)
    mnist = {"num_classes": 10, "input_shape": [1, 28, 28], "hidden": 16}
    save_model(build_model("mnist_mlp", **mnist), folder / "m.safetensors", "mnist_mlp", mnist)
    other = {"num_classes": 10, "input_shape": [3, 8, 8], "hidden": 16}
    save_model(build_model("mnist_mlp", **other), folder / "other.safetensors", "mnist_mlp", other)
    (folder / "pass.txt").write_text("not a model\n")
    (folder / "damaged.safetensors").write_bytes((folder / "m.safetensors").read_bytes()[:200])
    return folder


def f(files, name: str) -> str:
    return str(files / name)


def test_a_missing_output_directory_is_io_in_every_command(files):
    model, key = f(files, "m.safetensors"), ["-k", f(files, "k.wmk"), "--vk", f(files, "k.wvk")]
    nowhere = files / "no-such-directory"
    commands = [
        ["identity", "new", "--out", nowhere / "o.wid", "--no-passphrase"],
        ["keygen", "-i", f(files, "o.wid"), "--no-passphrase", "--marking-key", nowhere / "k.wmk",
         "--verification-key", nowhere / "k.wvk"],
        ["mark", "-k", f(files, "k.wmk"), "--model", model, "--out", nowhere / "x.safetensors"],
        ["train", "--arch", "mnist_mlp", "--out", nowhere / "x.safetensors"],
        ["prove", *key, "-i", f(files, "o.wid"), "--url", "http://127.0.0.1:1", "--model-name", "m",
         "--out", nowhere / "p.wpf"],
        ["export", "onnx", model, "--out", nowhere / "m.onnx"],
        ["attack", "prune", "-m", model, "-o", nowhere / "a.safetensors"],
    ]  # fmt: skip
    for argv in commands:
        assert "does not exist" in run(*argv, code=IO).stderr, argv


def test_a_missing_passphrase_file_is_io_in_every_command(files):
    missing = f(files, "missing-pass.txt")
    commands = [
        ["identity", "new", "--out", f(files, "n.wid"), "--passphrase-file", missing],
        ["keygen", "-i", f(files, "o.wid"), "--marking-key", f(files, "n.wmk"), "--verification-key",
         f(files, "n.wvk"), "--passphrase-file", missing],
        ["verify", "-k", f(files, "k.wmk"), "--vk", f(files, "k.wvk"), "--model", f(files, "m.safetensors"),
         "--passphrase-file", missing],
        ["identity", "show", f(files, "o.wid"), "--passphrase-file", missing],
    ]  # fmt: skip
    for argv in commands:
        assert "file not found" in run(*argv, code=IO).stderr, argv


def test_the_wrong_file_is_a_usage_error_and_a_damaged_one_malformed(files):
    key = ["-k", f(files, "k.wmk"), "--vk", f(files, "k.wvk")]
    assert "not a wmproof model file" in run("verify", *key, "--model", f(files, "pass.txt"), code=USAGE).stderr
    assert "not an ownership proof" in run("check", f(files, "pass.txt"), code=USAGE).stderr
    assert "is a verification key, not" in run("check", f(files, "k.wvk"), code=USAGE).stderr
    assert (
        "damaged model file" in run("verify", *key, "--model", f(files, "damaged.safetensors"), code=MALFORMED).stderr
    )
    assert "not a wmproof model file" in run("evaluate", "--model", f(files, "pass.txt"), code=USAGE).stderr


def test_a_model_of_another_task_is_a_usage_error_everywhere(files):
    other, key = f(files, "other.safetensors"), ["-k", f(files, "k.wmk"), "--vk", f(files, "k.wvk")]
    assert "3x8x8" in run("mark", "-k", f(files, "k.wmk"), "--model", other, "--out", f(files, "x.safetensors"),
                          code=USAGE).stderr  # fmt: skip
    assert "3x8x8" in run("verify", *key, "--model", other, code=USAGE).stderr
    assert "3x8x8" in run("evaluate", "--model", other, code=USAGE).stderr
    ensemble = run("serve", f(files, "m.safetensors"), other, "--port", "0", code=USAGE).stderr
    assert "must share a task" in ensemble and "other.safetensors" in ensemble


def test_suspect_options_and_urls(files):
    key = ["-k", f(files, "k.wmk"), "--vk", f(files, "k.wvk")]
    both = run("verify", *key, "--model", f(files, "m.safetensors"), "--url", "http://127.0.0.1:1", "--model-name",
               "m", code=USAGE).stderr  # fmt: skip
    assert "only one of --model and --url" in both
    assert "name the suspect" in run("verify", *key, code=USAGE).stderr
    assert "'htp:/bad'" in run("verify", *key, "--url", "htp:/bad", "--model-name", "m", code=USAGE).stderr
    assert "connection refused" in run("verify", *key, "--url", "http://127.0.0.1:1", "--model-name", "m",
                                       code=IO).stderr  # fmt: skip


def test_a_port_in_use_is_named(files):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error = run("serve", f(files, "m.safetensors"), "--port", port, code=USAGE).stderr
    assert f"127.0.0.1:{port}" in error and "in use" in error


def test_a_mistyped_registry_is_a_usage_error_not_a_chain_failure(files):
    for argv in (["timestamp", f(files, "k.wvk")], ["chain", "info"]):
        error = run(*argv, "--rpc-url", "http://127.0.0.1:1", "--registry", "0x1234", code=USAGE).stderr
        assert "'0x1234'" in error and "not an Ethereum address" in error


def test_a_missing_passphrase_names_the_option_that_gives_it(files, owner, keypair):
    """Before: prove with an encrypted identity said to give --passphrase-file (the marking key's option)."""
    from wmproof.crypto.sealed import TEST_KDF
    from wmproof.protocol import save_identity, save_marking_key

    mk, _ = keypair
    save_identity(owner, files / "locked.wid", b"pw", kdf=TEST_KDF)
    save_marking_key(mk, files / "locked.wmk", b"pw", kdf=TEST_KDF)
    (files / "pw.txt").write_text("pw\n")
    base = ["prove", "--vk", f(files, "k.wvk"), "--url", "http://127.0.0.1:1", "--model-name", "m", "--force"]
    error = run(*base, "-k", f(files, "k.wmk"), "-i", f(files, "locked.wid"), "-o", f(files, "a.wpf"), code=USAGE)
    assert "locked.wid is encrypted" in error.stderr and "--identity-passphrase-file" in error.stderr
    error = run(*base, "-k", f(files, "locked.wmk"), "-i", f(files, "o.wid"), "-o", f(files, "b.wpf"), code=USAGE)
    assert "locked.wmk is encrypted" in error.stderr and "with --passphrase-file FILE" in error.stderr
    keygen = ["keygen", "-i", f(files, "locked.wid"), "--no-passphrase", "--marking-key", f(files, "c.wmk"),
              "--verification-key", f(files, "c.wvk")]  # fmt: skip
    assert "--identity-passphrase-file" in run(*keygen, code=USAGE).stderr

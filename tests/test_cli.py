"""T12: the CLI end to end: exit code per class, stable --json, secrets never in output, --overwrite,
one-line errors for user mistakes, Ctrl-C leaving nothing behind."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import Result, flip_bit, run, sigint_default

from wmproof.protocol import load_identity, load_marking_key


@pytest.fixture
def owner_files(tmp_path):
    passfile = tmp_path / "pass.txt"
    passfile.write_text("correct horse battery staple\n")
    identity = tmp_path / "owner.wid"
    run("identity", "new", "--out", identity, "--passphrase-file", passfile, "--label", "Alice")
    mk, vk = tmp_path / "key.wmk", tmp_path / "key.wvk"
    out = run(
        "keygen",
        "-i",
        identity,
        "--identity-passphrase-file",
        passfile,
        "--marking-key",
        mk,
        "--verification-key",
        vk,
        "--items",
        50,
        "--passphrase-file",
        passfile,
        "--json",
    )
    return {
        "pass": passfile,
        "identity": identity,
        "mk": mk,
        "vk": vk,
        "keygen": json.loads(out.stdout),
        "dir": tmp_path,
    }


def test_identity_new_and_show(tmp_path):
    out = run("identity", "new", "--out", tmp_path / "id.wid", "--no-passphrase", "--json")
    created = json.loads(out.stdout)
    assert stat.S_IMODE(os.stat(tmp_path / "id.wid").st_mode) == 0o600
    assert "unencrypted" in out.stderr
    shown = json.loads(run("identity", "show", tmp_path / "id.wid", "--json").stdout)
    assert shown["fingerprint"] == created["fingerprint"] and shown["encrypted"] is False
    assert set(shown) == {"path", "public_key", "fingerprint", "label", "encrypted", "authenticated"}
    assert shown["authenticated"] is True  # unencrypted: the secret key is there to check the header against
    run("identity", "new", "--out", tmp_path / "id.wid", "--no-passphrase", code=2)  # exists
    run("identity", "new", "--out", tmp_path / "id.wid", "--no-passphrase", "--overwrite")


def test_keygen_output_and_files(owner_files):
    summary = owner_files["keygen"]
    assert set(summary) == {
        "key_id",
        "protocol",
        "scheme",
        "params",
        "num_classes",
        "input_shape",
        "items",
        "committed",
        "batch_size",
        "proofs",
        "merkle_root",
        "alpha",
        "min_matches",
        "proof_min_matches",
        "decision",
        "created_at",
        "owner_public_key",
        "owner_fingerprint",
        "marking_key",
        "verification_key",
        "timestamp",
    }
    assert summary["items"] == 50 and summary["min_matches"] == 18 and summary["alpha"] == "1/1000000"
    assert summary["decision"]["rule"].startswith("exact one-sided binomial") and summary["decision"]["p0"] == "1/10"
    assert stat.S_IMODE(os.stat(owner_files["mk"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(owner_files["vk"]).st_mode) == 0o644


def test_secrets_never_appear_in_output(owner_files, trained, keypair):
    passphrase = owner_files["pass"].read_bytes().strip()
    mk = load_marking_key(owner_files["mk"], passphrase)
    identity = load_identity(owner_files["identity"], passphrase)
    secrets = [mk.master_seed.hex(), identity.signing_key.seed.hex(), passphrase.decode()]
    secrets += [salt.hex() for salt in mk.salts] + [item.seed.hex() for item in mk.items]
    outputs = [
        run("identity", "show", owner_files["identity"], "--json"),
        keygen(owner_files, "k2", "--no-passphrase", "--json"),
        run(
            "verify",
            "--key",
            owner_files["mk"],
            "--passphrase-file",
            owner_files["pass"],
            "--vk",
            owner_files["vk"],
            "--model",
            trained["clean"],
            "--json",
            code=1,
        ),
        run(
            "verify",
            "--key",
            owner_files["mk"],
            "--vk",
            owner_files["vk"],
            "--model",
            trained["clean"],
            "--passphrase-file",
            wrong_passphrase(owner_files),
            code=2,
        ),  # wrong passphrase
    ]
    text = "".join(r.stdout + r.stderr for r in outputs)
    for secret in secrets:
        assert secret not in text


def wrong_passphrase(files) -> Path:
    path = files["dir"] / "wrong-pass.txt"
    path.write_text("not the passphrase\n")
    return path


def test_no_option_takes_a_passphrase_on_the_command_line(owner_files):
    run(
        "keygen",
        "-i",
        owner_files["identity"],
        "--marking-key",
        "x",
        "--verification-key",
        "y",
        "--passphrase",
        "hunter2",
        code=2,
    )
    for command in (["identity", "new"], ["keygen"], ["mark"], ["verify"], ["evaluate"]):
        help_text = run(*command, "--help").stdout
        assert "--passphrase " not in help_text and "--password" not in help_text


def test_verify_exit_codes(owner_files, trained, keypair, tmp_path):
    # The fixture's key (from the library) was embedded in trained["marked"]; use it through the CLI.
    from wmproof.protocol import save_marking_key, save_verification_key

    mk, vk = keypair
    save_marking_key(mk, tmp_path / "m.wmk", None)
    save_verification_key(vk, tmp_path / "m.wvk")
    base = ["verify", "--key", tmp_path / "m.wmk", "--vk", tmp_path / "m.wvk", "--model"]
    verified = json.loads(run(*base, trained["marked"], "--json", code=0).stdout)
    assert verified["verdict"] == "verified"
    assert set(verified) == {"verdict", "mode", "statistics", "key", "suspect", "mismatched_items", "timestamp"}
    assert verified["timestamp"]["status"] == "unavailable"  # nothing was ever published from this home
    assert set(verified["statistics"]) == {
        "test",
        "matches",
        "n",
        "p0",
        "alpha",
        "min_matches",
        "errors",
        "errors_tolerated",
        "p_value",
        "significant",
    }
    rejected = run(*base, trained["independent"], code=1)
    assert "NOT VERIFIED" in rejected.stdout and "p-value" in rejected.stdout
    # 2: usage -- wrong kind of file, a model for another task, bad options
    run("verify", "--key", tmp_path / "m.wvk", "--vk", tmp_path / "m.wvk", "--model", trained["marked"], code=2)
    run("verify", "--key", tmp_path / "m.wmk", "--vk", owner_files["vk"], "--model", trained["marked"], code=2)
    run(*base, trained["marked"], "--device", "tpu", code=2)
    run("verify", "--bogus", code=2)
    from wmproof.engine.models import build_model, save_model

    save_model(build_model("mnist_mlp", num_classes=5), tmp_path / "five.safetensors", "mnist_mlp", {"num_classes": 5})
    assert "has 5 classes" in run(*base, tmp_path / "five.safetensors", code=2).stderr
    # 3: malformed -- a flipped bit in the verification key, a model file that is not one
    tampered = tmp_path / "tampered.wvk"
    tampered.write_bytes(flip_bit((tmp_path / "m.wvk").read_bytes(), 8 * 200 + 3))
    run("verify", "--key", tmp_path / "m.wmk", "--vk", tampered, "--model", trained["marked"], code=3)
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    run(*base, tmp_path / "junk.safetensors", code=3)
    # 5: I/O -- missing files
    run(*base, tmp_path / "missing.safetensors", code=5)
    run("verify", "--key", tmp_path / "nope.wmk", "--vk", tmp_path / "m.wvk", "--model", trained["marked"], code=5)


def test_encrypted_key_needs_its_passphrase(owner_files, trained):
    args = ["verify", "--key", owner_files["mk"], "--vk", owner_files["vk"], "--model", trained["clean"]]
    assert "encrypted" in run(*args, code=2).stderr  # no terminal to ask on, no file given
    assert "wrong passphrase" in run(*args, "--passphrase-file", wrong_passphrase(owner_files), code=2).stderr
    run(*args, "--passphrase-file", owner_files["pass"], code=1)


def keygen(files, name: str, *extra, passphrase_file=None, verification_key=None, code: int = 0) -> Result:
    """``wmproof keygen`` with the fixture's identity, writing ``name``.wmk and ``name``.wvk."""
    return run(
        "keygen", "-i", files["identity"], "--identity-passphrase-file", passphrase_file or files["pass"],
        "--marking-key", files["dir"] / f"{name}.wmk",
        "--verification-key", verification_key or files["dir"] / f"{name}.wvk",
        *extra, code=code,
    )  # fmt: skip


def test_keygen_refuses_to_store_a_secret_without_a_decision(owner_files):
    result = keygen(owner_files, "a", code=2)
    assert "--passphrase-file" in result.stderr and not (owner_files["dir"] / "a.wmk").exists()
    # Outputs that exist are refused before any work, and nothing is half-written.
    result = keygen(owner_files, "new", "--no-passphrase", verification_key=owner_files["vk"], code=2)
    assert "exists" in result.stderr and not (owner_files["dir"] / "new.wmk").exists()
    keygen(owner_files, "b", "--no-passphrase", passphrase_file=owner_files["dir"] / "none.txt", code=5)  # I/O
    keygen(owner_files, "c", "--no-passphrase", "--alpha", "2", code=2)
    keygen(owner_files, "d", "--no-passphrase", "--items", "5", code=2)  # too few items for alpha = 1e-6


@pytest.mark.slow
def test_train_mark_evaluate_verify_from_the_cli(tmp_path, data_dir):
    common = ["--limit-train", "3000", "--data-dir", data_dir]
    run("identity", "new", "--out", tmp_path / "o.wid", "--no-passphrase")
    run(
        "keygen",
        "-i",
        tmp_path / "o.wid",
        "--marking-key",
        tmp_path / "k.wmk",
        "--verification-key",
        tmp_path / "k.wvk",
        "--no-passphrase",
        "--items",
        "40",
        "--proof-items",
        "20",
        "--alpha",
        "0.001",
    )
    trained = json.loads(run("train", "--out", tmp_path / "c.safetensors", "--epochs", "2", *common, "--json").stdout)
    assert trained["test_accuracy"] > 0.85 and trained["epochs"] == 2
    marked = json.loads(
        run(
            "mark",
            "--key",
            tmp_path / "k.wmk",
            "--model",
            tmp_path / "c.safetensors",
            "--out",
            tmp_path / "m.safetensors",
            "--triggers-per-batch",
            "8",
            *common,
            "--json",
        ).stdout
    )
    assert marked["trigger_accuracy"] >= 0.95 and marked["test_accuracy_after"] > 0.85
    evaluated = json.loads(
        run(
            "evaluate",
            "--model",
            tmp_path / "m.safetensors",
            "--key",
            tmp_path / "k.wmk",
            "--data-dir",
            data_dir,
            "--json",
        ).stdout
    )
    assert evaluated["trigger_accuracy"] == marked["trigger_accuracy"]
    run("verify", "--key", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "--model", tmp_path / "m.safetensors")
    # Public proofs: keygen -> mark -> prove -> check, positive on the marked model, negative on the clean one.
    prove = ["prove", "-k", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "-i", tmp_path / "o.wid"]
    run(*prove, "-m", tmp_path / "m.safetensors", "-o", tmp_path / "m.wpf")
    # The clean model would not pass batch 1: prove queries it first, and spends and writes nothing (exit 1).
    before = (tmp_path / "k.wmk").read_bytes()
    refused = run(*prove, "-m", tmp_path / "c.safetensors", "-o", tmp_path / "c.wpf", code=1).stderr
    assert "it would not verify, so nothing was spent" in refused and "of batch 1" in refused
    assert (tmp_path / "k.wmk").read_bytes() == before and not (tmp_path / "c.wpf").exists()
    forced = json.loads(run(*prove, "-m", tmp_path / "c.safetensors", "-o", tmp_path / "c.wpf", "--force",
                            "--json").stdout)  # fmt: skip
    assert forced["batch"] == 1 and forced["checked"] is None
    assert "spent" in run(*prove, "-m", tmp_path / "c.safetensors", "-o", tmp_path / "x.wpf", code=2).stderr
    verified = json.loads(run("check", tmp_path / "m.wpf", "-m", tmp_path / "m.safetensors", "--json").stdout)
    assert verified["verdict"] == "verified" and verified["proof"]["batch"] == 0
    rejected = json.loads(run("check", tmp_path / "c.wpf", "-m", tmp_path / "c.safetensors", "--json", code=1).stdout)
    assert rejected["verdict"] == "rejected" and rejected["proof"]["batch"] == 1
    run(
        "mark",
        "--key",
        tmp_path / "k.wmk",
        "--model",
        tmp_path / "c.safetensors",
        "--from-scratch",
        "--out",
        tmp_path / "x.safetensors",
        code=2,
    )
    run("train", "--out", tmp_path / "c.safetensors", *common, code=2)  # exists
    run("train", "--out", tmp_path / "d.safetensors", "--arch", "vgg", *common, code=2)


def test_path_mistakes_are_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "not a directory" in run("demo", "--workdir", tmp_path / "file", code=2).stderr
    run("identity", "new", "--out", tmp_path / "file" / "id.wid", "--no-passphrase", code=5)
    run("identity", "show", tmp_path, code=2)  # a directory, not an identity


def test_every_command_has_help_with_an_example():
    for command in (
        ["identity", "new"],
        ["identity", "show"],
        ["keygen"],
        ["train"],
        ["mark"],
        ["evaluate"],
        ["verify"],
        ["demo"],
        ["robustness"],
    ):
        text = run(*command, "--help").stdout
        assert "Example" in text and "wmproof " in text


def test_console_script_and_ctrl_c_leaves_nothing(tmp_path, data_dir):
    """The installed entry point; SIGINT during training exits 130 with one line and writes no file."""
    exe = Path(sys.executable).with_name("wmproof")
    assert subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.startswith("wmproof ")
    out = tmp_path / "model.safetensors"
    child = subprocess.Popen(
        [exe, "train", "--out", out, "--epochs", "50", "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    line = child.stderr.readline()
    assert line.startswith("training "), line
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "interrupted: nothing was written" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_architecture_names_in_help_are_the_model_zoo():
    from wmproof_cli.common import ARCHITECTURE_NAMES

    from wmproof.engine.models import ARCHITECTURES

    assert sorted(ARCHITECTURE_NAMES) == sorted(ARCHITECTURES)

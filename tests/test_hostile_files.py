"""Hostile files (issue 14, defects 2, 4, 7 and 9): a tiny model file that asks for a huge network, special
files in place of inputs, passphrase files of several lines. Each is a one-line error with its exit code,
in bounded time and memory; never an internal error (70)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from helpers import run


def model_file(path, architecture: str, arguments: dict, tensors: dict | None = None) -> None:
    import torch
    from safetensors.torch import save

    metadata = {"format": "wmproof-model/1", "architecture": architecture, "arguments": json.dumps(arguments)}
    path.write_bytes(save(tensors or {"x": torch.zeros(1)}, metadata=metadata))


@pytest.mark.parametrize(
    "architecture, arguments, message",
    [
        ("mnist_mlp", {"hidden": 20_000}, "tensors do not match architecture"),  # 1.9 GB before the fix
        ("mnist_mlp", {"hidden": 1 << 30}, "hidden must be an integer in 1..131072"),
        ("resnet_small", {"depth": 30_002}, "depth must be an integer in 1..1202"),  # 30,000 blocks
        ("mnist_mlp", {"dropout": float("nan")}, "finite"),
        ("mnist_mlp", {"dropout": 1.5}, "dropout must lie in [0, 1)"),
        ("mnist_cnn", {"input_shape": [1, 100_000, 28]}, "input_shape must be positive, at most"),
        ("mnist_cnn", {"num_classes": 10**9}, "num_classes must be an integer in 2..100000"),
    ],
)
def test_model_metadata_cannot_make_a_reader_allocate(tmp_path, architecture, arguments, message):
    """The arguments are checked against bounds and, on the meta device (no memory), against the file's own
    tensors, before anything is built."""
    model_file(tmp_path / "m.safetensors", architecture, arguments)
    assert os.path.getsize(tmp_path / "m.safetensors") < 400
    # The peak is the process's own VmHWM: ru_maxrss would start from the forking pytest's size (it is kept
    # across exec), which is about 1 GB in a full run.
    probe = (
        "import re, time\n"
        "from wmproof.engine.models import load_model\n"
        "from wmproof.errors import MalformedInput\n"
        "t = time.monotonic()\n"
        "try:\n"
        f"    load_model({str(tmp_path / 'm.safetensors')!r})\n"
        "except MalformedInput as exc:\n"
        "    print(exc)\n"
        "peak = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024\n"
        "print(time.monotonic() - t, peak)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    error, measured = done.stdout.strip().splitlines()
    seconds, peak_mib = measured.split()
    assert message in error, error
    assert float(seconds) < 5 and int(peak_mib) < 800, measured  # torch itself is about 250 MiB


def test_nested_model_arguments_are_refused_not_recursed(tmp_path):
    import torch
    from safetensors.torch import save

    arguments = "[" * 100_000 + "]" * 100_000
    metadata = {"format": "wmproof-model/1", "architecture": "mnist_mlp", "arguments": arguments}
    (tmp_path / "m.safetensors").write_bytes(save({"x": torch.zeros(1)}, metadata=metadata))
    assert "invalid architecture metadata" in run("evaluate", "--model", tmp_path / "m.safetensors", code=3).stderr


def test_special_files_are_refused_at_once(tmp_path):
    """A named pipe with no writer used to block forever; /dev/zero was read until memory ran out."""
    os.mkfifo(tmp_path / "pipe")
    for path, kind in ((tmp_path / "pipe", "a named pipe"), ("/dev/zero", "a character device")):
        t0 = time.monotonic()
        for args in (["check", path], ["verify", "--key", path, "--vk", path, "--model", path]):
            assert kind in run(*args, code=2).stderr
        (tmp_path / "out.wid").unlink(missing_ok=True)
        assert kind in run("identity", "new", "--out", tmp_path / "out.wid", "--passphrase-file", path, code=2).stderr
        assert time.monotonic() - t0 < 10


def test_a_file_that_grows_past_its_cap_while_read_is_refused(tmp_path, monkeypatch):
    """The cap counts the bytes read, not what stat() said."""
    from wmproof import fileio
    from wmproof.errors import MalformedInput

    (tmp_path / "f").write_bytes(b"x" * 100)
    real_fstat = os.fstat
    monkeypatch.setattr(fileio.os, "fstat", lambda fd: os.stat_result((*real_fstat(fd)[:6], 1, *real_fstat(fd)[7:])))
    with pytest.raises(MalformedInput, match="more than 50 bytes"):
        fileio.read_file(tmp_path / "f", "a test file", max_size=50)


def test_passphrase_files_hold_one_line(tmp_path):
    for content, ok in ((b"secret\n", True), (b"secret", True), (b"secret\r\n", True), (b"a\nb\n", False),
                        (b"a\n\n", False), (b"\n", False)):  # fmt: skip
        (tmp_path / "pass.txt").write_bytes(content)
        (tmp_path / "x.wid").unlink(missing_ok=True)
        result = run("identity", "new", "--out", tmp_path / "x.wid", "--passphrase-file", tmp_path / "pass.txt",
                     code=0 if ok else 2)  # fmt: skip
        assert ok or "one line" in result.stderr or "is empty" in result.stderr
    assert "file not found" in run("identity", "new", "--out", tmp_path / "y.wid", "--passphrase-file",
                                   tmp_path / "missing.txt", code=5).stderr  # fmt: skip


def test_evidence_files_nested_deep_or_of_another_format_are_refused(tmp_path, owner):
    from wmproof.errors import MalformedInput
    from wmproof.protocol.evidence import load_evidence, sign_evidence

    (tmp_path / "deep.json").write_bytes(b'{"evidence": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(MalformedInput, match="not a validly signed"):
        load_evidence(tmp_path / "deep.json")
    (tmp_path / "other.json").write_bytes(sign_evidence({"format": "something-else/1", "queries": []}, owner))
    with pytest.raises(MalformedInput, match="not a wmproof-remote-evidence/1 transcript"):
        load_evidence(tmp_path / "other.json")


def test_identity_show_says_whether_the_header_was_authenticated(tmp_path):
    """Defect 9: a header whose public key was replaced was shown as the identity's, exit 0, unflagged."""
    from wmproof.crypto.container import container_prefix, parse_container
    from wmproof.crypto.sealed import TEST_KDF
    from wmproof.protocol import Identity

    owner, other = Identity.generate("owner"), Identity.generate("other")
    container = parse_container(owner.to_bytes(b"pw", TEST_KDF))
    forged = container_prefix({**container.header, "public_key": bytes(other.public_key)}) + container.body
    (tmp_path / "forged.wid").write_bytes(forged)
    (tmp_path / "pw.txt").write_text("pw\n")
    shown = json.loads(run("identity", "show", tmp_path / "forged.wid", "--json").stdout)
    assert shown["authenticated"] is False and shown["fingerprint"] == other.public_key.fingerprint
    error = run("identity", "show", tmp_path / "forged.wid", "--passphrase-file", tmp_path / "pw.txt", code=None)
    assert error.exit_code in (2, 3) and "error:" in error.stderr
    (tmp_path / "real.wid").write_bytes(owner.to_bytes(b"pw", TEST_KDF))
    checked = json.loads(run("identity", "show", tmp_path / "real.wid", "--passphrase-file", tmp_path / "pw.txt",
                             "--json").stdout)  # fmt: skip
    assert checked["authenticated"] is True and checked["fingerprint"] == owner.public_key.fingerprint


def test_a_leftover_from_a_killed_replacement_is_removed_by_the_next_write(tmp_path):
    """Defect 6: a process killed between linking the new file and renaming it over the old one left a
    complete 0600 copy under a temporary name, for good."""
    from wmproof.crypto import write_atomic
    from wmproof.crypto.atomic import PreparedWrite

    (tmp_path / "key.wmk").write_bytes(b"old")
    leftover = tmp_path / ".key.wmk.0123456789abcdef.tmp"
    leftover.write_bytes(b"a complete secret copy")
    other = tmp_path / ".key.wmk.not-ours.tmp"
    other.write_bytes(b"someone else's")
    write_atomic(tmp_path / "key.wmk", b"new", overwrite=True)
    assert (tmp_path / "key.wmk").read_bytes() == b"new" and not leftover.exists() and other.exists()
    with PreparedWrite(tmp_path / "never.wpf", b"x", mode=0o644):
        pass  # not committed: nothing appears
    assert sorted(p.name for p in tmp_path.iterdir()) == [".key.wmk.not-ours.tmp", "key.wmk"]


def test_prove_spends_no_batch_when_the_proof_cannot_be_written(tmp_path, keypair, owner):
    """Defect 6: the batch was spent before the proof was written; now the proof is written (unnamed) first."""
    from wmproof.protocol import load_marking_key, save_identity, save_marking_key, save_verification_key

    mk, vk = keypair
    save_marking_key(mk, tmp_path / "k.wmk", None)
    save_verification_key(vk, tmp_path / "k.wvk")
    save_identity(owner, tmp_path / "o.wid", None)
    before = (tmp_path / "k.wmk").read_bytes()
    args = ["prove", "-k", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "-i", tmp_path / "o.wid",
            "--url", "http://127.0.0.1:1", "--model-name", "m", "--force"]  # fmt: skip
    failed = run(*args, "--out", "/proc/proof.wpf", code=None)  # a directory no file can be created in
    assert failed.exit_code in (2, 5) and "error:" in failed.stderr
    assert (tmp_path / "k.wmk").read_bytes() == before and load_marking_key(tmp_path / "k.wmk", None).spent == ()
    run(*args, "--out", tmp_path / "p.wpf")
    assert load_marking_key(tmp_path / "k.wmk", None).spent == (0,) and (tmp_path / "p.wpf").exists()


def test_keygen_names_a_marking_key_left_without_its_verification_key(tmp_path, owner):
    from wmproof.protocol import save_identity

    save_identity(owner, tmp_path / "o.wid", None)
    (tmp_path / "k.wmk").write_bytes(b"left by a keygen killed between the two files")
    error = run("keygen", "-i", tmp_path / "o.wid", "--no-passphrase", "--marking-key", tmp_path / "k.wmk",
                "--verification-key", tmp_path / "k.wvk", code=2).stderr  # fmt: skip
    assert "exists without its verification key" in error


def test_evidence_must_agree_with_itself(tmp_path, owner):
    """Defect 10: load_evidence checked the signature only. A signer can sign nonsense; it is refused."""
    from wmproof.errors import MalformedInput
    from wmproof.protocol.evidence import load_evidence, sign_evidence

    query = {"input_sha256": "ab" * 32, "label": 3, "time": 1.5}
    good = {"format": "wmproof-remote-evidence/1", "server": {"queries": 2}, "queries": [query, query],
            "verdict": {"verdict": "rejected", "statistics": {"n": 2}}}  # fmt: skip
    (tmp_path / "good.json").write_bytes(sign_evidence(good, owner))
    assert load_evidence(tmp_path / "good.json")[0] == good
    for change, message in (
        ({"server": {"queries": 3}}, "counts 3 queries"),
        ({"queries": [query, {**query, "label": -1}]}, "query 1 is not"),
        ({"queries": [query, {**query, "input_sha256": "zz"}]}, "query 1 is not"),
        ({"verdict": {"verdict": "maybe"}}, "no verdict"),
        ({"verdict": {"verdict": "verified", "statistics": {"n": 50}}}, "about 50 items"),
    ):
        (tmp_path / "bad.json").write_bytes(sign_evidence({**good, **change}, owner))
        with pytest.raises(MalformedInput, match=message):
            load_evidence(tmp_path / "bad.json")


def test_headers_hold_exactly_their_kinds_fields(tmp_path, owner, keypair):
    """Spec 9.4: a header field no writer puts there is refused (3), even where the file's integrity digest
    was recomputed over it, and an identity's header and contents must agree on its label. Before, both
    were read as if nothing was wrong (exit 0)."""
    from wmproof.crypto.sealed import seal
    from wmproof.protocol.identity import KIND

    contents = {"seed": owner.signing_key.seed, "created_at": owner.created_at, "label": owner.label}
    public = {"public_key": bytes(owner.public_key), "label": owner.label}
    (tmp_path / "extra.wid").write_bytes(seal(KIND, 1, contents, None, public={**public, "note": "unchecked"}))
    (tmp_path / "relabelled.wid").write_bytes(seal(KIND, 1, contents, None, public={**public, "label": "other"}))
    assert "unexpected or missing header fields" in run("identity", "show", tmp_path / "extra.wid", code=3).stderr
    assert "different labels" in run("identity", "show", tmp_path / "relabelled.wid", code=3).stderr
    mk, vk = keypair
    extra_mk = seal("marking-key", 1, mk.contents(), None, public={"verification_key_id": vk.key_id, "note": 1})
    (tmp_path / "extra.wmk").write_bytes(extra_mk)
    (tmp_path / "k.wvk").write_bytes(vk.raw)
    error = run("verify", "-k", tmp_path / "extra.wmk", "--vk", tmp_path / "k.wvk", "--model", "x", code=3).stderr
    assert "extra.wmk" in error and "header fields" in error

"""T11/T12 for the chain commands: publish, timestamp, chain deploy/info, and the timestamp in verify;
exit codes per fault class, records written only after success, the account key never in the output."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from helpers import run

from wmproof.chain.anvil import ANVIL_DEV_KEY


@pytest.fixture
def vks(owner, tmp_path):
    from wmproof.protocol import keygen, save_verification_key

    paths = []
    for name in ("a", "b", "c"):
        _, vk = keygen(owner, "adi-backdoor", items=20, num_classes=10, input_shape=(1, 28, 28), alpha=Fraction(1, 100))
        save_verification_key(vk, tmp_path / f"{name}.wvk")
        paths.append(tmp_path / f"{name}.wvk")
    return paths


def test_publish_and_timestamp_on_the_embedded_chain(vks):
    a, b, c = vks
    assert "nothing was published" in run("timestamp", a, code=4).stderr
    out = run("publish", a, "--json")
    published = json.loads(out.stdout)["keys"][0]
    assert "prove nothing to anyone else" in out.stderr
    assert a.with_suffix(".wts").exists() and published["record"] == str(a.with_suffix(".wts"))
    found = json.loads(run("timestamp", a, "--json").stdout)
    assert found["timestamped"] and found["timestamp"] == published["timestamp"]
    # The record exists: refused before any chain work; with --overwrite, the first registration stands.
    assert "exists" in run("publish", a, code=2).stderr
    again = run("publish", a, "--overwrite", "--json")
    assert json.loads(again.stdout)["keys"][0]["already_registered"] and "already registered" in again.stderr
    # A batch: one transaction, one record per key; a batched key is found through its record.
    batch = json.loads(run("publish", b, c, "--json").stdout)["keys"]
    assert batch[0]["transaction_hash"] == batch[1]["transaction_hash"] and batch[1]["batch"]["size"] == 2
    assert "--record" in run("timestamp", b, code=1).stderr
    assert json.loads(run("timestamp", b, "--record", b.with_suffix(".wts"), "--json").stdout)["timestamped"]
    # Someone else's record, a record that is not one, a record that does not exist.
    assert "another key" in run("timestamp", b, "--record", c.with_suffix(".wts"), code=2).stderr
    assert "not a timestamp record" in run("timestamp", b, "--record", a, code=2).stderr
    run("timestamp", b, "--record", b.with_suffix(".nope"), code=5)
    info = json.loads(run("chain", "info", "--json").stdout)
    assert info["embedded"] and info["head_block"] >= 3


def test_publish_refuses_options_that_cannot_work(vks):
    assert "--registry needs --rpc-url" in run("publish", vks[0], "--registry", "0x" + "11" * 20, code=2).stderr
    assert not vks[0].with_suffix(".wts").exists()
    assert "needs --rpc-url" in run("chain", "deploy", code=2).stderr
    assert "http://" in run("timestamp", vks[0], "--rpc-url", "ftp://x", code=2).stderr
    run("publish", vks[0], vks[0], code=2)  # the same key twice


@pytest.fixture
def node(anvil, monkeypatch):
    """anvil with a fresh registry deployed through the CLI; the account key only in the environment."""
    monkeypatch.setenv("WMPROOF_ETH_PRIVATE_KEY", ANVIL_DEV_KEY)
    deployed = run("chain", "deploy", "--rpc-url", anvil.url, "--json")
    registry = json.loads(deployed.stdout)["registry"]
    assert ANVIL_DEV_KEY[2:] not in deployed.stdout + deployed.stderr
    monkeypatch.setenv("WMPROOF_RPC_URL", anvil.url)
    monkeypatch.setenv("WMPROOF_REGISTRY", registry)
    return registry


def test_publish_and_timestamp_on_a_node(node, vks, monkeypatch):
    a, b, _ = vks
    out = run("publish", a, "--json")
    assert ANVIL_DEV_KEY[2:] not in out.stdout + out.stderr and "prove nothing" not in out.stderr
    published = json.loads(out.stdout)["keys"][0]
    assert published["chain_id"] == 31337 and published["registry"] == node and not published["embedded"]
    assert json.loads(run("timestamp", a, "--json").stdout)["transaction_hash"] == published["transaction_hash"]
    assert json.loads(run("chain", "info", "--json").stdout)["registry"] == node
    # Reading needs no account.
    monkeypatch.delenv("WMPROOF_ETH_PRIVATE_KEY")
    run("timestamp", a)
    monkeypatch.setenv("WMPROOF_ETH_PRIVATE_KEY", ANVIL_DEV_KEY)
    # Faults, each one line and exit 4, and no record written for a failed publish.
    assert "expected chain 1" in run("timestamp", a, "--chain-id", "1", code=4).stderr
    assert "no contract at" in run("timestamp", a, "--registry", "0x" + "22" * 20, code=4).stderr
    assert "could never be mined" in run("publish", b, "--gas-limit", "30000", code=2).stderr  # refused, not sent
    assert not b.with_suffix(".wts").exists()
    monkeypatch.setenv("WMPROOF_RPC_URL", "http://127.0.0.1:9/key-in-the-path")
    failed = run("timestamp", a, code=4)
    assert "cannot reach the node" in failed.stderr and "key-in-the-path" not in failed.stderr


def test_publish_with_a_keystore(anvil, node, vks, tmp_path, monkeypatch):
    from eth_account import Account

    monkeypatch.delenv("WMPROOF_ETH_PRIVATE_KEY")
    assert "needs an account" in run("publish", vks[0], code=2).stderr
    keystore = tmp_path / "account.json"
    keystore.write_text(json.dumps(Account.encrypt(ANVIL_DEV_KEY, "s3cret", kdf="scrypt", iterations=2**10)))
    passfile = tmp_path / "pass.txt"
    passfile.write_text("s3cret\n")
    args = ["publish", vks[0], "--keystore", keystore, "--keystore-passphrase-file"]
    assert "not found" in run(*args, tmp_path / "missing.txt", code=5).stderr  # I/O, as for every missing file
    passfile_wrong = tmp_path / "wrong.txt"
    passfile_wrong.write_text("nope\n")
    assert "wrong passphrase" in run(*args, passfile_wrong, code=2).stderr
    assert not vks[0].with_suffix(".wts").exists()
    out = run(*args, passfile, "--json")
    assert "s3cret" not in out.stdout + out.stderr
    assert json.loads(out.stdout)["keys"][0]["registrant"] == Account.from_key(ANVIL_DEV_KEY).address


def test_verify_reports_the_timestamp(trained, keypair, tmp_path):
    from wmproof.protocol import save_marking_key, save_verification_key

    mk, vk = keypair
    save_marking_key(mk, tmp_path / "m.wmk", None)
    save_verification_key(vk, tmp_path / "m.wvk")
    base = ["verify", "--key", tmp_path / "m.wmk", "--vk", tmp_path / "m.wvk", "--model", trained["marked"]]
    before = run(*base, "--json")
    assert json.loads(before.stdout)["timestamp"]["status"] == "unavailable" and "timestamp" in before.stderr
    run("publish", tmp_path / "m.wvk")
    after = run(*base)
    assert "VERIFIED" in after.stdout and "timestamp" in after.stdout and "prove nothing" in after.stderr
    report = json.loads(run(*base, "--json").stdout)
    assert report["timestamp"]["status"] == "found" and report["timestamp"]["key_id"] == vk.key_id.hex()
    assert json.loads(run(*base, "--json", "--no-timestamp").stdout)["timestamp"] == {"status": "skipped"}
    # An independent model is still "not verified" (exit 1) whatever the timestamp says.
    run("verify", "--key", tmp_path / "m.wmk", "--vk", tmp_path / "m.wvk", "--model", trained["independent"], code=1)


def test_ctrl_c_during_publish(vks, anvil, monkeypatch):
    """Embedded: rolled back, nothing written. A node: no record, and the message says a transaction may
    already be on its way."""
    import wmproof.protocol.timestamps as timestamps

    real_publish = timestamps.publish

    def interrupted(keys, client, **options):
        real_publish(keys, client, **options)  # the transaction is sent and mined...
        raise KeyboardInterrupt  # ...then Ctrl-C before the record is written

    monkeypatch.setattr(timestamps, "publish", interrupted)
    assert "nothing was written" in run("publish", vks[0], code=130).stderr
    assert not vks[0].with_suffix(".wts").exists()
    monkeypatch.setattr(timestamps, "publish", real_publish)
    run("publish", vks[1])  # creates the embedded chain, without vks[0]
    assert "--record" in run("timestamp", vks[0], code=1).stderr  # the interrupted registration was rolled back

    monkeypatch.setattr(timestamps, "publish", interrupted)
    monkeypatch.setenv("WMPROOF_ETH_PRIVATE_KEY", ANVIL_DEV_KEY)
    registry = json.loads(run("chain", "deploy", "--rpc-url", anvil.url, "--json").stdout)["registry"]
    node = ["--rpc-url", anvil.url, "--registry", registry]
    assert "may have been sent" in run("publish", vks[2], *node, code=130).stderr
    assert not vks[2].with_suffix(".wts").exists()
    run("timestamp", vks[2], *node)  # it was mined


def test_keygen_with_a_beacon(tmp_path, monkeypatch):
    run("identity", "new", "--out", tmp_path / "o.wid", "--no-passphrase")
    out = run(
        "keygen", "-i", tmp_path / "o.wid", "--marking-key", tmp_path / "k.wmk", "--verification-key",
        tmp_path / "k.wvk", "--no-passphrase", "--items", "40", "--proof-items", "20", "--alpha", "0.001",
        "--beacon", "--json",
    )  # fmt: skip
    made = json.loads(out.stdout)
    assert made["timestamp"]["embedded"] and "prove nothing" in out.stderr
    run("prove", "-k", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "-i", tmp_path / "o.wid",
        "-m", tmp_path / "k.wvk", "-o", tmp_path / "p.wpf", "--force")  # fmt: skip
    checked = json.loads(run("check", tmp_path / "p.wpf", "--json").stdout)
    assert checked["timestamp"]["status"] == "found" and checked["timestamp"]["key_id"] == made["key_id"]
    assert "needs the chain" in run("check", tmp_path / "p.wpf", "--no-timestamp", code=2).stderr
    monkeypatch.setenv("WMPROOF_HOME", str(tmp_path / "another-machine"))
    assert "beacon that could not be checked" in run("check", tmp_path / "p.wpf", code=4).stderr


@pytest.mark.slow
def test_the_user_guides_anvil_walkthrough_runs_as_written(tmp_path):
    """Issue 13: docs/user-guide.md, "Step by step: a timestamp on a local node", from an empty folder to a
    verified timestamp on anvil (keystore, deploy, publish with 3 confirmations, a beacon key)."""
    import os
    import re
    import socket
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    guide = (root / "docs" / "user-guide.md").read_text()
    section = guide.split("### Step by step: a timestamp on a local node (anvil)", 1)[1].split("\n## ", 1)[0]
    (script,) = re.findall(r"^```sh\n(.*?)^```$", section, re.M | re.S)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "WMPROOF": str(root), "PORT": str(port), "WMPROOF_HOME": str(tmp_path / "home"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
    for name in ("WMPROOF_RPC_URL", "WMPROOF_REGISTRY", "WMPROOF_CHAIN_ID", "WMPROOF_KEYSTORE"):
        env.pop(name, None)
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert done.stdout.count("node at http://127.0.0.1") >= 3  # publish, timestamp, the beacon key's timestamp
    assert re.search(r"block \d+, [3-9] confirmations", done.stdout), done.stdout
    assert (work / "me.json").stat().st_mode & 0o777 == 0o600 and not (work / "dev-key.txt").exists()
    assert (
        ANVIL_DEV_KEY[2:] not in done.stdout + done.stderr and ANVIL_DEV_KEY[2:] not in (work / "me.json").read_text()
    )


def test_chain_keystore_writes_an_encrypted_account_file(tmp_path):
    from wmproof.chain.node import account_from_keystore

    (tmp_path / "pass.txt").write_text("pw\n")
    (tmp_path / "dev.txt").write_text(ANVIL_DEV_KEY + "\n")
    out = json.loads(run("chain", "keystore", "--out", tmp_path / "me.json", "--private-key-file", tmp_path / "dev.txt",
                         "--passphrase-file", tmp_path / "pass.txt", "--json").stdout)  # fmt: skip
    account = account_from_keystore(tmp_path / "me.json", lambda: b"pw")
    assert account.address == out["address"] and account.key.hex().removeprefix("0x") == ANVIL_DEV_KEY[2:]
    assert (tmp_path / "me.json").stat().st_mode & 0o777 == 0o600 and ANVIL_DEV_KEY[2:] not in str(out)
    fresh = json.loads(run("chain", "keystore", "--out", tmp_path / "new.json", "--passphrase-file",
                           tmp_path / "pass.txt", "--json").stdout)  # fmt: skip
    assert account_from_keystore(tmp_path / "new.json", lambda: b"pw").address == fresh["address"] != out["address"]
    (tmp_path / "bad.txt").write_text("0x1234")
    bad = run("chain", "keystore", "--out", tmp_path / "x.json", "--private-key-file", tmp_path / "bad.txt",
              "--passphrase-file", tmp_path / "pass.txt", code=2).stderr  # fmt: skip
    assert "not hold a valid private key" in bad
    assert "exists" in run("chain", "keystore", "--out", tmp_path / "me.json", "--passphrase-file",
                           tmp_path / "pass.txt", code=2).stderr  # fmt: skip
    assert not (tmp_path / "x.json").exists()


def test_a_gas_limit_too_low_is_refused_before_anything_is_sent(node, vks):
    """Issue 14, defect 8: --gas-limit 21000 used to wait 33 s for a transaction that could never be mined."""
    import time

    t0 = time.monotonic()
    error = run("publish", vks[0], "--gas-limit", "21000", code=2).stderr
    assert "below the" in error and "could never be mined" in error and time.monotonic() - t0 < 10
    assert not vks[0].with_suffix(".wts").exists()
    run("publish", vks[0])  # and nothing was sent: the key is still unregistered, and publishes

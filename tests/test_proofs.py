"""Public ownership proofs: the tampered corpus (T8), field-by-field and byte-by-byte mutation (T10), batch
reuse, the wrong signer, and real verdicts on real models. Checklist rules 1-2, 5-6."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run

from wmproof.crypto import open_signed_container, sign_container
from wmproof.errors import MalformedInput, UsageError, WmproofError
from wmproof.protocol import Identity, save_marking_key, save_verification_key
from wmproof.protocol.proofs import (
    check_not_reused,
    evaluate_proof,
    make_proof,
    model_file_suspect,
    parse_proof,
    save_proof,
)

CORPUS_DIR = Path(__file__).resolve().parent / "vectors"
sys.path.insert(0, str(CORPUS_DIR))
from make_corpus import ALICE, CORPUS, SUSPECT, small_key  # noqa: E402

sys.path.pop(0)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_tampered_corpus(name):
    """T8: one defect per file, each refused with its own message and exit code by `wmproof check`."""
    what, message, code = CORPUS[name]
    result = run("check", CORPUS_DIR / name, "--no-timestamp", code=code)
    assert message in result.stderr, (name, what, result.stderr)


def test_the_corpus_is_reproducible_by_its_script(tmp_path):
    copy = tmp_path / "vectors"
    shutil.copytree(CORPUS_DIR, copy)
    subprocess.run([sys.executable, str(copy / "make_corpus.py")], check=True, capture_output=True)
    for path in CORPUS_DIR.iterdir():
        if path.is_file() and path.suffix != ".py":
            assert (copy / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.fixture(scope="module")
def small():
    mk, vk = small_key()
    proof, spent = make_proof(mk, vk, ALICE, SUSPECT, created_at=vk.created_at + 60)
    return mk, vk, proof, spent


def _mutations(value):
    """Ways to alter one decoded value (and stay encodable)."""
    if isinstance(value, bool) or value is None:
        return [1]
    if isinstance(value, int):
        return [value + 1, -1]
    if isinstance(value, bytes):
        return [bytes([value[0] ^ 1]) + value[1:] if value else b"\x00", value[:-1]]
    if isinstance(value, str):
        return [value + "x"]
    if isinstance(value, list):
        return [value[:-1], [*value, value[-1]] if value else [0]]
    if isinstance(value, dict):
        return [{**value, "extra": 0}]
    return []


def test_every_field_mutated_and_re_signed_is_refused(small):
    """T10 by field: the owner re-signs a proof with one field (or one opening's sub-field) altered."""
    _, vk, proof, _ = small
    statement = open_signed_container(proof).statement
    cases = 0
    for name, value in statement.items():
        # A later date is a different, valid proof; an earlier one than the key's is not.
        for mutated in [-1, vk.created_at - 1] if name == "created_at" else _mutations(value):
            altered = {**statement, name: mutated}
            with pytest.raises(WmproofError):
                parse_proof(sign_container("ownership-proof", 1, altered, ALICE.signing_key))
            cases += 1
    for position in range(len(statement["openings"])):
        for name, value in statement["openings"][position].items():
            for mutated in _mutations(value):
                openings = [dict(o) for o in statement["openings"]]
                openings[position][name] = mutated
                altered = {**statement, "openings": openings}
                with pytest.raises(WmproofError):
                    parse_proof(sign_container("ownership-proof", 1, altered, ALICE.signing_key))
                cases += 1
    assert cases > 40


def test_fuzz_one_byte_anywhere(small):
    """T10 by byte: thousands of proofs with one byte replaced; none is accepted."""
    _, _, proof, _ = small
    parse_proof(proof)
    rng = random.Random(20261123)
    for _ in range(3000):
        data = bytearray(proof)
        position = rng.randrange(len(data))
        data[position] = (data[position] + rng.randrange(1, 256)) % 256
        with pytest.raises(WmproofError):
            parse_proof(bytes(data))


def test_a_check_pauses_the_collector_and_leaves_it_as_it_was(small):
    """Issue 18: parsing a proof or a key pauses Python's cyclic collector (7,177 maps and lists for a proof
    of 1,024 items); after a check, accepted or refused, the collector is on or off as it was before, and the
    check left no reference cycle for it to find."""
    import gc

    from wmproof.protocol import parse_verification_key

    _, vk, proof, _ = small
    tampered = bytearray(proof)
    tampered[len(proof) // 2] ^= 1
    assert gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            gc.collect()
            parse_proof(proof)
            parse_verification_key(vk.raw)
            with pytest.raises(WmproofError):
                parse_proof(bytes(tampered))
            assert gc.isenabled() is enabled
            assert gc.collect() == 0  # nothing unreachable: the check made no cycles
    finally:
        gc.enable()


def test_batches_are_spent_once(small):
    mk, vk, proof, spent = small
    assert spent.spent == (0,) and mk.spent == ()
    second, spent_both = make_proof(spent, vk, ALICE, SUSPECT)
    assert parse_proof(second).batch == 1 and spent_both.spent == (0, 1)
    with pytest.raises(UsageError, match="already spent"):
        make_proof(spent, vk, ALICE, SUSPECT, batch=0)
    with pytest.raises(UsageError, match="all 2 proof batches"):
        make_proof(spent_both, vk, ALICE, SUSPECT)
    # A checker who knows an earlier proof of the same batch refuses a new one.
    again, _ = make_proof(mk, vk, ALICE, SUSPECT, created_at=vk.created_at + 120)  # from a stale marking key
    with pytest.raises(MalformedInput, match="already opened"):
        check_not_reused(parse_proof(again), [parse_proof(proof)], ["last-year.wpf"])
    check_not_reused(parse_proof(again), [parse_proof(second)])  # another batch: fine


def test_only_the_owner_can_prove(small):
    mk, vk, _, _ = small
    with pytest.raises(UsageError, match="not the key's owner"):
        make_proof(mk, vk, Identity.generate("mallory"), SUSPECT)


def test_prove_and_check_on_real_models(trained, keypair, owner, tmp_path):
    """Positive on the marked model, negative on an independently trained one, from the CLI; the marking
    key records spent batches; a proof is bound to the model it names."""
    from wmproof.protocol import save_identity

    mk, vk = keypair
    save_marking_key(mk, tmp_path / "k.wmk", None)
    save_verification_key(vk, tmp_path / "k.wvk")
    save_identity(owner, tmp_path / "o.wid", None)
    base = ["prove", "-k", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "-i", tmp_path / "o.wid"]
    made = json.loads(run(*base, "-m", trained["marked"], "-o", tmp_path / "p.wpf", "--json").stdout)
    assert made["batch"] == 0 and made["batches_left"] == 0
    assert "all 1 proof batches" in run(*base, "-m", trained["marked"], "-o", tmp_path / "q.wpf", code=2).stderr
    assert not (tmp_path / "q.wpf").exists()
    checked = json.loads(run("check", tmp_path / "p.wpf", "-m", trained["marked"], "--json").stdout)
    assert checked["verdict"] == "verified" and checked["statistics"]["matches"] >= vk.proof_min_matches
    assert checked["timestamp"]["status"] == "unavailable"
    assert "not" in run("check", tmp_path / "p.wpf", "-m", trained["independent"], code=2).stderr  # other model
    # A proof about the independent model (from a fresh copy of the key): a negative verdict, exit code 1.
    proof, _ = make_proof(mk, vk, owner, model_file_suspect(trained["independent"]))
    save_proof(proof, tmp_path / "i.wpf")
    rejected = run("check", tmp_path / "i.wpf", "-m", trained["independent"], "--no-timestamp", code=1)
    assert "NOT VERIFIED" in rejected.stdout
    from wmproof.oracles.local import LocalModelOracle

    report = evaluate_proof(parse_proof(proof), LocalModelOracle.from_file(trained["independent"], "cpu"))
    assert not report.verified and report.test.matches < vk.proof_min_matches
    # --earlier: the two proofs opened the same batch of the same key.
    assert "already opened" in run("check", tmp_path / "i.wpf", "--earlier", tmp_path / "p.wpf", code=3).stderr

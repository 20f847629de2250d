"""KeyGen / Verify: tampering anywhere is caught, keys are secrets, and verdicts are right on real models."""

from __future__ import annotations

import dataclasses
import os
import stat

import numpy as np
import pytest
from helpers import flip_bit

from wmproof.crypto import (
    TEST_KDF,
    SigningKey,
    canonical_decode,
    sign_container,
)
from wmproof.errors import MalformedInput, UsageError, WmproofError, WrongPassphrase
from wmproof.oracles.local import LocalModelOracle
from wmproof.protocol import (
    check_marking_key,
    keygen,
    load_identity,
    load_marking_key,
    load_verification_key,
    parse_verification_key,
    save_identity,
    save_marking_key,
    save_verification_key,
    verify_private,
)
from wmproof.protocol.keys import MarkingKey
from wmproof.schemes import TriggerItem


@pytest.fixture
def files(tmp_path, keypair, owner):
    mk, vk = keypair
    paths = {
        "mk": tmp_path / "key.wmk",
        "mk_encrypted": tmp_path / "key-encrypted.wmk",
        "vk": tmp_path / "key.wvk",
        "identity": tmp_path / "owner.wid",
    }
    save_marking_key(mk, paths["mk"], None)
    save_marking_key(mk, paths["mk_encrypted"], b"passphrase", kdf=TEST_KDF)
    save_verification_key(vk, paths["vk"])
    save_identity(owner, paths["identity"], b"passphrase", kdf=TEST_KDF)
    return paths


def test_keygen_produces_a_consistent_pair(keypair, owner):
    mk, vk = keypair
    check_marking_key(mk, vk)
    assert vk.owner == owner.public_key and vk.items == len(mk.items) == 50
    assert vk.min_matches == 18  # smallest k with P(Binomial(50, 1/10) >= k) <= 1e-6
    from wmproof.stats import binomial_sf

    assert binomial_sf(18, 50, vk.p0) <= vk.alpha < binomial_sf(17, 50, vk.p0)
    assert len({item.seed for item in mk.items}) == 50 and len(set(mk.salts)) == 50


def test_files_round_trip_with_their_modes(files, keypair, owner):
    mk, vk = keypair
    for key in ("mk", "mk_encrypted", "identity"):
        assert stat.S_IMODE(os.stat(files[key]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(files["vk"]).st_mode) == 0o644
    assert load_verification_key(files["vk"]) == vk
    loaded = load_marking_key(files["mk_encrypted"], b"passphrase")
    assert loaded.contents() == mk.contents()
    assert bytes(load_identity(files["identity"], b"passphrase").public_key) == bytes(owner.public_key)


def test_a_flipped_bit_anywhere_in_any_key_file_is_rejected(files):
    """Every byte of the verification key, and a sample of bits across the (larger) marking key and
    identity files, each with its own clear error."""
    vk_bytes = files["vk"].read_bytes()
    for bit in range(0, len(vk_bytes) * 8, 3):
        with pytest.raises(WmproofError) as info:
            parse_verification_key(flip_bit(vk_bytes, bit))
        assert "\n" not in str(info.value)
    for name, passphrase in (("mk", None), ("mk_encrypted", b"passphrase"), ("identity", b"passphrase")):
        data = files[name].read_bytes()
        for bit in np.random.default_rng(0).choice(len(data) * 8, size=300, replace=False):
            files[name].write_bytes(flip_bit(data, int(bit)))
            loader = load_identity if name == "identity" else load_marking_key
            with pytest.raises(WmproofError):
                loader(files[name], passphrase)


def test_wrong_passphrase_is_a_typed_error(files):
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        load_marking_key(files["mk_encrypted"], b"not it")
    with pytest.raises(UsageError, match="encrypted"):
        load_marking_key(files["mk_encrypted"], None)


def test_wrong_file_kinds_are_named(files, trained):
    with pytest.raises(UsageError, match="is a verification key, not a marking key"):
        load_marking_key(files["vk"], None)
    with pytest.raises(UsageError, match="is a marking key, not a verification key"):
        load_verification_key(files["mk"])
    with pytest.raises(UsageError, match="safetensors model"):
        load_verification_key(trained["marked"])


def _with_items(mk: MarkingKey, items: list[TriggerItem]) -> MarkingKey:
    return dataclasses.replace(mk, items=items)


def test_a_marking_key_that_does_not_open_the_root_is_rejected(keypair):
    mk, vk = keypair
    relabelled = list(mk.items)
    first = relabelled[0]
    relabelled[0] = TriggerItem(first.index, first.input, (first.label + 1) % 10, first.seed)
    with pytest.raises(MalformedInput, match="does not open"):
        check_marking_key(_with_items(mk, relabelled), vk)
    swapped = list(mk.items)
    swapped[0], swapped[1] = (
        TriggerItem(0, swapped[1].input, swapped[1].label, swapped[1].seed),
        TriggerItem(1, swapped[0].input, swapped[0].label, swapped[0].seed),
    )
    with pytest.raises(MalformedInput):
        check_marking_key(_with_items(mk, swapped), vk)
    with pytest.raises(MalformedInput):
        check_marking_key(dataclasses.replace(mk, salts=[bytes(32)] + mk.salts[1:]), vk)
    with pytest.raises(MalformedInput):
        check_marking_key(_with_items(mk, mk.items[:-1]), vk)


def test_a_marking_key_of_another_verification_key_is_rejected(keypair, owner):
    mk, _ = keypair
    _, other_vk = keygen(owner, "adi-backdoor", items=50, num_classes=10, input_shape=(1, 28, 28))
    with pytest.raises(UsageError, match="belongs to another verification key"):
        check_marking_key(mk, other_vk)


def _statement(vk) -> dict:
    from wmproof.crypto import parse_container

    container = parse_container(vk.raw)
    return canonical_decode(container.body[:-64])


def test_a_verification_key_signed_by_someone_else_is_refused(keypair):
    """Mallory re-signs Alice's statement: the challenge binds the owner's public key, so the opened half
    no longer matches the challenge (and the key id, which binds the signer, would differ anyway)."""
    mk, vk = keypair
    mallory = SigningKey.generate()
    with pytest.raises(MalformedInput, match="the challenge opens item"):
        parse_verification_key(sign_container("verification-key", 1, _statement(vk), mallory))


@pytest.mark.parametrize(
    "field,value",
    [
        ("min_matches", 5),
        ("alpha", [1, 10]),
        ("alpha", [2, 20]),
        ("items", 49),
        ("protocol", "wmproof/2"),
        ("num_classes", 1),
        ("input_shape", [1, 28]),
        ("params", {"generator": "noise"}),
        ("merkle_root", bytes(32)),
        ("batch_size", 25),
        ("proof_min_matches", 30),
        ("grinding_bits", 0),
        ("created_at", 1),
        ("sealed", []),
        ("extra", 1),
    ],
)
def test_altered_statements_are_refused_even_when_properly_signed(keypair, owner, field, value):
    """The owner re-signs a statement with one field changed: either the key is malformed on its own, or
    the marking key no longer fits it."""
    mk, vk = keypair
    statement = _statement(vk)
    statement[field] = value
    blob = sign_container("verification-key", 1, statement, owner.signing_key)
    with pytest.raises(WmproofError):
        check_marking_key(mk, parse_verification_key(blob))


def test_secrets_stay_out_of_reprs(keypair, owner):
    mk, _ = keypair
    text = repr(mk) + repr(owner) + repr(owner.signing_key)
    assert mk.master_seed.hex() not in text and owner.signing_key.seed.hex() not in text
    assert all(salt.hex() not in text for salt in mk.salts)


def test_private_verification_on_real_models(keypair, trained):
    mk, vk = keypair
    marked = verify_private(mk, vk, LocalModelOracle.from_file(trained["marked"], "cpu"))
    assert marked.verified and marked.test.matches >= 48 and float(marked.test.p_value) < 1e-40
    for name in ("clean", "independent"):
        report = verify_private(mk, vk, LocalModelOracle.from_file(trained[name], "cpu"))
        assert not report.verified and report.test.matches < vk.min_matches
        assert report.as_dict()["verdict"] == "rejected"
    assert marked.as_dict()["suspect"]["sha256"] == LocalModelOracle.from_file(trained["marked"]).describe()["sha256"]


def test_model_of_another_task_is_a_usage_error(keypair, owner, trained):
    _, vk = keypair
    mk5, vk5 = keygen(owner, "adi-backdoor", items=50, num_classes=5, input_shape=(1, 28, 28))
    with pytest.raises(UsageError, match="has 10 classes; the key is for 5"):
        verify_private(mk5, vk5, LocalModelOracle.from_file(trained["marked"]))


def test_too_few_items_for_alpha_is_refused(owner):
    with pytest.raises(UsageError, match="no outcome is significant"):
        keygen(owner, "adi-backdoor", items=5, num_classes=10, input_shape=(1, 28, 28))


def test_items_read_together_are_the_items_read_one_by_one_and_errors_name_the_item():
    """items_from_records reads the inputs of each dtype and shape in one numpy pass (a proof check reads
    2,048): the items are those item_from_record makes from each record, and an error names the item at
    fault, not its group's first."""
    from wmproof.protocol.keys import item_from_record, item_record, items_from_records

    rng = np.random.default_rng(0)
    items = [
        TriggerItem(index=0, input=rng.integers(0, 256, (1, 4, 4), dtype=np.uint8), label=1, seed=b"s" * 32),
        TriggerItem(
            index=1,
            input=rng.random((3, 2, 2), dtype=np.float32),
            label=2,
            reference=rng.random((3, 2, 2), dtype=np.float32),
        ),  # fmt: skip
        TriggerItem(index=2, input=rng.integers(0, 256, (1, 4, 4), dtype=np.uint8), label=3),
        TriggerItem(index=3, input=rng.integers(0, 1000, (1, 1, 5), dtype=np.int64), label=0),
        TriggerItem(index=4, input=rng.random((3, 2, 2), dtype=np.float32), label=4),
    ]
    records = [item_record(item) for item in items]
    together = items_from_records(records, lambda p: f"item {p}")
    for read, alone, item in zip(together, [item_from_record(r, "x") for r in records], items, strict=True):
        for other in (alone, item):
            assert (read.index, read.label, read.seed) == (other.index, other.label, other.seed)
            assert read.input.dtype == other.input.dtype and np.array_equal(read.input, other.input)
            assert (read.reference is None) == (other.reference is None)
            if read.reference is not None:
                assert np.array_equal(read.reference, other.reference)
    outside = np.full((3, 2, 2), 0.5, dtype="<f4")
    outside[1, 1, 0] = 1.5
    faults = [
        (4, {"input": {**records[4]["input"], "data": outside.tobytes()}}, "item 4: float trigger input outside"),
        (
            4,
            {"input": {**records[4]["input"], "data": np.full((3, 2, 2), np.nan, "<f4").tobytes()}},
            "item 4: float trigger input outside",
        ),  # fmt: skip
        (
            3,
            {"input": {**records[3]["input"], "data": np.full((1, 1, 5), -1, "<i8").tobytes()}},
            "item 3: token id outside",
        ),  # fmt: skip
        (2, {"input": {**records[2]["input"], "shape": [1, 4, 5]}}, "item 2: trigger item data does not match"),
        (1, {"reference": records[0]["input"]}, "item 1: the reference input differs"),
        (1, {"reference": {**records[1]["reference"], "data": outside.tobytes()}}, r"item 1 \(reference\): float"),
    ]
    for position, change, message in faults:
        broken = [dict(r) for r in records]
        broken[position].update(change)
        with pytest.raises(MalformedInput, match=message):
            items_from_records(broken, lambda p: f"item {p}")


@pytest.mark.parametrize(
    "change",
    [
        [1],
        {"dtype": "uint8", "shape": [1, 4, 4]},
        {"data": bytes(16), "dtype": "uint8", "shape": [1, 4, 4], "x": 1},
        {"data": bytes(16), "dtype": "float64", "shape": [1, 4, 4]},
        {"data": bytes(16), "dtype": ["uint8"], "shape": [1, 4, 4]},
        {"data": bytes(16), "dtype": "uint8", "shape": [1, 16]},
        {"data": bytes(16), "dtype": "uint8", "shape": [1, 4, True]},
        {"data": bytes(16), "dtype": "uint8", "shape": [1, 4, [4]]},
        {"data": bytes(16), "dtype": "uint8", "shape": [0, 4, 4]},
        {"data": bytes(16), "dtype": "uint8", "shape": [1, 4, 4097]},
        {"data": bytes(16), "dtype": "uint8", "shape": "144"},
        {"data": bytes(4), "dtype": "uint8", "shape": [1, 4, True]},  # data of the length the shape implies
        {"data": bytes(16), "dtype": "uint8", "shape": [-1, -4, 4]},
        {"data": b"", "dtype": "uint8", "shape": [0, 4, 4]},
        {"data": bytes(4097), "dtype": "uint8", "shape": [1, 1, 4097]},
        {"data": "0" * 16, "dtype": "uint8", "shape": [1, 4, 4]},
        {"data": bytes(15), "dtype": "uint8", "shape": [1, 4, 4]},
    ],
)
@pytest.mark.parametrize("where", ["one", "all"])
def test_inputs_of_one_dtype_and_shape_checked_together_refuse_what_one_by_one_refuses(change, where, monkeypatch):
    """Issue 18: the inputs of a key's or proof's items, all of one dtype and shape, are checked a field at
    a time over all records; a malformed input, in one record or in all, is refused all the same and named
    as the record-by-record check names it, and what both accept gives the same arrays."""
    import wmproof.protocol.keys as keys
    from wmproof.protocol.keys import item_record, items_from_records

    rng = np.random.default_rng(1)
    records = [
        item_record(TriggerItem(index=i, input=rng.integers(0, 256, (1, 4, 4), dtype=np.uint8), label=i % 3))
        for i in range(12)
    ]
    together = items_from_records(records, lambda p: f"item {p}")
    with monkeypatch.context() as patched:
        patched.setattr(keys, "_one_group", lambda tensors: None)
        one_by_one = items_from_records(records, lambda p: f"item {p}")
    for a, b in zip(together, one_by_one, strict=True):
        assert a.index == b.index and a.input.dtype == b.input.dtype and np.array_equal(a.input, b.input)
    positions = [5] if where == "one" else range(12)
    for position in positions:
        records[position] = {**records[position], "input": change}
    first = positions[0]
    with pytest.raises(MalformedInput, match=f"^item {first}: (malformed trigger item|trigger item data)"):
        items_from_records(records, lambda p: f"item {p}")


def test_inputs_in_another_key_order_or_of_several_shapes_are_read_one_by_one():
    """Records built in code may hold their input's keys in any order, and a file may mix shapes: neither
    is refused by the check over all records, which leaves them to the record-by-record check."""
    from wmproof.protocol.keys import item_record, items_from_records

    rng = np.random.default_rng(2)
    items = [
        TriggerItem(index=i, input=rng.integers(0, 256, (1, 4, 4 + i % 2), dtype=np.uint8), label=0) for i in range(6)
    ]
    records = [item_record(item) for item in items]
    records[0] = {**records[0], "input": dict(reversed(list(records[0]["input"].items())))}
    for read, item in zip(items_from_records(records, str), items, strict=True):
        assert np.array_equal(read.input, item.input)

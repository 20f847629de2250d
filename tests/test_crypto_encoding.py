"""T5: the canonical msgpack profile round-trips, agrees with the reference msgpack library on canonical
input, and rejects every non-canonical form."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmproof.crypto import MalformedEncoding, canonical_decode, canonical_encode

ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
leaves = st.none() | st.booleans() | ints | st.text(max_size=300) | st.binary(max_size=300)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=20) | st.dictionaries(st.text(max_size=40), children, max_size=20),
    max_leaves=60,
)


def _sorted(value):
    """The same value with every map's keys inserted in canonical (UTF-8 byte) order."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=lambda k: k.encode("utf-8"))}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


@settings(max_examples=400, deadline=None)
@given(values)
def test_round_trip(value):
    encoded = canonical_encode(value)
    assert canonical_decode(encoded) == value


@settings(max_examples=400, deadline=None)
@given(values)
def test_agrees_with_reference_msgpack(value):
    encoded = canonical_encode(value)
    # The reference library reads what we write...
    assert msgpack.unpackb(encoded, raw=False, strict_map_key=False) == value
    # ...and, given keys in canonical order, writes exactly the same bytes (it too uses shortest forms).
    assert msgpack.packb(_sorted(value), use_bin_type=True) == encoded


@pytest.mark.parametrize(
    ("hexdata", "why"),
    [
        ("cc05", "uint8 holding a positive fixint"),
        ("cd00ff", "uint16 holding a uint8"),
        ("ce0000ffff", "uint32 holding a uint16"),
        ("cf00000000ffffffff", "uint64 holding a uint32"),
        ("d0e0", "int8 holding a negative fixint"),
        ("d005", "signed form for a positive value"),
        ("d1ff80", "int16 holding an int8"),
        ("d2ffff8000", "int32 holding an int16"),
        ("d3ffffffff80000000", "int64 holding an int32"),
        ("d90161", "str8 holding a fixstr"),
        ("da000161", "str16 holding a fixstr"),
        ("c50001ff", "bin16 holding a bin8"),
        ("dc000101", "array16 holding a fixarray"),
        ("de0001a16101", "map16 holding a fixmap"),
        ("82a16201a16101", "unsorted map keys"),
        ("82a16101a16102", "duplicate map keys"),
        ("81 01 01", "non-str map key"),
        ("ca3f800000", "float32"),
        ("cb3ff0000000000000", "float64"),
        ("d40100", "fixext"),
        ("c70101ff", "ext8"),
        ("d6ff00000000", "the timestamp ext type (-1)"),
        ("91d6ff00000000", "the timestamp ext type in an array"),
        ("81a161d6ff00000000", "the timestamp ext type in a map"),
        ("91cb3ff0000000000000", "float64 in an array"),
        ("81a161ca3f800000", "float32 in a map"),
        ("81c40161c0", "bin map key"),
        ("c1", "never-used type byte"),
        ("a2ff61", "invalid UTF-8"),
        ("0101", "trailing bytes"),
        ("a5616263", "truncated str"),
        ("dd7fffffff", "array length beyond the input"),
        ("", "empty input"),
    ],
)
def test_rejects_non_canonical(hexdata, why):
    with pytest.raises(MalformedEncoding):
        canonical_decode(bytes.fromhex(hexdata.replace(" ", "")))


def test_rejects_deep_nesting():
    with pytest.raises(MalformedEncoding):
        canonical_decode(b"\x91" * 40 + b"\xc0")


@pytest.mark.parametrize("value", [1.5, {1: 2}, 2**64, -(2**63) - 1, object(), {"a": {"b": 0.0}}])
def test_encoder_refuses_values_outside_the_profile(value):
    with pytest.raises((TypeError, ValueError)):
        canonical_encode(value)


def test_known_answers():
    # Hand-assembled from the msgpack spec, independent of the encoder.
    assert canonical_encode({"b": 1, "a": [True, None, -1, 128, b"\x00"]}) == bytes.fromhex(
        "82a16195c3c0ffcc80c40100a16201"
    )
    assert canonical_encode(-33) == bytes.fromhex("d0df")
    assert canonical_encode("é") == bytes.fromhex("a2c3a9")


def _accepted_bytes_re_encode_to_themselves(data: bytes) -> None:
    try:
        value = canonical_decode(data)
    except MalformedEncoding:
        return
    assert canonical_encode(value) == data, data.hex()


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=64))
def test_whatever_the_decoder_accepts_re_encodes_to_the_same_bytes(data):
    """The decoder no longer re-encodes what it read to compare (issue 18: that doubled the cost of reading a
    proof): its parser must refuse every form the encoder would not write. Random bytes..."""
    _accepted_bytes_re_encode_to_themselves(data)


@settings(max_examples=3000, deadline=None)
@given(values, st.data())
def test_mutated_encodings_are_refused_or_re_encode_to_themselves(value, data):
    """...and canonical encodings with bytes changed, inserted or deleted (msgpack packed by the reference
    library with unsorted keys, wider forms, floats and ext types are in test_rejects_non_canonical)."""
    encoded = bytearray(canonical_encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, max(0, len(encoded) - 1)))
        how = data.draw(st.sampled_from(["flip", "insert", "delete", "replace"]))
        if how == "flip" and encoded:
            encoded[at] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "insert":
            encoded[at:at] = data.draw(st.binary(min_size=1, max_size=9))
        elif how == "delete":
            del encoded[at : at + data.draw(st.integers(1, 9))]
        elif encoded:
            encoded[at] = data.draw(st.integers(0, 255))
    _accepted_bytes_re_encode_to_themselves(bytes(encoded))


@settings(max_examples=1000, deadline=None)
@given(values)
def test_the_reference_librarys_other_forms_are_refused_or_identical(value):
    """msgpack packing the same value with its keys in insertion order: whatever the decoder accepts is
    exactly the canonical encoding."""
    _accepted_bytes_re_encode_to_themselves(msgpack.packb(value, use_bin_type=True))


@pytest.mark.parametrize("leaf", ["01", "c400", "c0", "a0", "80", "90"])
def test_nothing_deeper_than_32_is_accepted_whatever_its_type(leaf):
    """A value at depth 33 is refused whether it is a fixint, a bin or nil (the decoder before issue 18's
    second pass read fixints and bins inline and skipped the depth rule for them), and accepted at 32."""
    data = bytes.fromhex(leaf)
    assert canonical_encode(canonical_decode(b"\x91" * 32 + data)) == b"\x91" * 32 + data
    with pytest.raises(MalformedEncoding):
        canonical_decode(b"\x91" * 33 + data)
    with pytest.raises(MalformedEncoding):
        canonical_decode(b"\x81\xa1a" * 33 + data)


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1.5]},
        {"a": [[1, [0.0]]]},
        [[1.5]],
        [1, [2, [msgpack.Timestamp(1)]]],
        {"a": [{"b": 1.5}]},
        {"a": 1, "b": [msgpack.Timestamp(0)]},
        {"a": [msgpack.ExtType(5, b"x")]},
    ],
)
def test_what_an_array_holds_is_checked_by_the_map_that_holds_it_or_at_the_top(value):
    """Issue 18: the profile is checked after msgpack has read the value (once with a hook on maps only, which
    checked the arrays a map holds; now one level at a time), so a float, timestamp or ext value inside
    arrays, at any depth, must still be refused."""
    with pytest.raises(MalformedEncoding):
        canonical_decode(msgpack.packb(value, use_bin_type=True))


@pytest.mark.parametrize("leaf", [[], {}, [1], {"x": 1}, 7])
@pytest.mark.parametrize("sibling", [None, 5, [], {}])
@pytest.mark.parametrize("maps", ["every other level", "all", "none"])
def test_depth_through_maps_and_arrays_beside_scalars_and_empty_containers(leaf, sibling, maps):
    """32 levels of maps and arrays are accepted and 33 refused, whatever lies at the bottom and beside it:
    an empty container is height 0, a scalar too, and neither may count for more (issue 18: the decoder walks
    the value one level at a time, and an empty container opens no level below it)."""

    def nest(levels):
        value = leaf
        for level in range(levels):
            is_map = maps == "all" or (maps == "every other level" and level % 2)
            if sibling is None:
                value = {"a": value} if is_map else [value]
            else:
                value = {"a": value, "b": sibling} if is_map else [value, sibling]
        return value

    def depth(value):
        if isinstance(value, (list, dict)) and value:
            return 1 + max(depth(v) for v in (value.values() if isinstance(value, dict) else value))
        return 0

    for levels in range(28, 36):
        value = nest(levels)
        data = canonical_encode(value) if depth(value) <= 32 else msgpack.packb(value, use_bin_type=True)
        if depth(value) <= 32:
            assert canonical_decode(data) == value
        else:
            with pytest.raises(MalformedEncoding):
                canonical_decode(data)

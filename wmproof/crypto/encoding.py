"""The canonical msgpack profile: one byte string for each value, and a decoder that accepts nothing else.

msgpack by itself allows several encodings of one value (an integer in a wider form than needed, map keys
in any order). Everything wmproof hashes or signs is encoded under this profile (checklist rule 5):

* types: nil, bool, int (-2**63 .. 2**64-1), str (UTF-8), bin, array, map; no float, no ext;
* integers in the shortest form: positive fixint / uint8..uint64 for values >= 0, negative fixint /
  int8..int64 for values < 0;
* str, bin, array and map lengths in the shortest form that holds them;
* map keys are str, unique, sorted by their UTF-8 bytes.

:func:`canonical_decode` rejects every deviation from the above with :class:`MalformedEncoding`: msgpack's
own unpacker (pinned; a C extension) reads the bytes, a walk over the value refuses what the profile
forbids and the unpacker allows, and the value must pack back to the same bytes. Callers hash
and sign the bytes they received, never a re-serialised object.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import msgpack

from .errors import MalformedEncoding

MAX_DEPTH = 32

_UINT_MAX = 2**64 - 1
_INT_MIN = -(2**63)


def canonical_encode(value: Any) -> bytes:
    """Encode ``value`` under the canonical profile; raises ``TypeError``/``ValueError`` on what it cannot hold."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("value nested deeper than the canonical profile allows")
    kind = type(value)  # the common exact types first (a proof holds tens of thousands of values)
    if kind is str:
        data = value.encode("utf-8")
        n = len(data)
        if n <= 31:
            out.append(0xA0 | n)
            out += data
            return
    elif kind is int:
        if 0 <= value <= 0x7F:
            out.append(value)
        else:
            _encode_int(value, out)
        return
    elif kind is bytes:
        n = len(value)
        if n <= 0xFF:
            out.append(0xC4)
            out.append(n)
            out += value
            return
    elif kind is list:
        if len(value) <= 15:
            out.append(0x90 | len(value))
            for item in value:
                _encode(item, out, depth + 1)
            return
    elif kind is dict:
        # str keys sorted as str: for valid Unicode, code point order is UTF-8 byte order.
        if len(value) <= 15 and all(type(key) is str for key in value):
            out.append(0x80 | len(value))
            for key in sorted(value):
                _encode(key, out, depth + 1)
                _encode(value[key], out, depth + 1)
            return
    if value is None:
        out.append(0xC0)
    elif value is True:
        out.append(0xC3)
    elif value is False:
        out.append(0xC2)
    elif isinstance(value, int):
        _encode_int(int(value), out)
    elif isinstance(value, str):
        data = value.encode("utf-8")
        n = len(data)
        if n <= 31:
            out.append(0xA0 | n)
        elif n <= 0xFF:
            out += bytes((0xD9, n))
        elif n <= 0xFFFF:
            out += b"\xda" + struct.pack(">H", n)
        elif n <= 0xFFFFFFFF:
            out += b"\xdb" + struct.pack(">I", n)
        else:
            raise ValueError("str too long")
        out += data
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        n = len(data)
        if n <= 0xFF:
            out += bytes((0xC4, n))
        elif n <= 0xFFFF:
            out += b"\xc5" + struct.pack(">H", n)
        elif n <= 0xFFFFFFFF:
            out += b"\xc6" + struct.pack(">I", n)
        else:
            raise ValueError("bin too long")
        out += data
    elif isinstance(value, (list, tuple)):
        _encode_length(len(value), 0x90, 15, 0xDC, 0xDD, out)
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("map keys must be str in the canonical profile")
            items.append((key.encode("utf-8"), key, item))
        items.sort(key=lambda t: t[0])
        _encode_length(len(items), 0x80, 15, 0xDE, 0xDF, out)
        for _, key, item in items:
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    elif isinstance(value, float):
        raise TypeError("floats are not allowed in the canonical profile")
    else:
        raise TypeError(f"cannot encode a value of type {type(value).__name__} in the canonical profile")


def _encode_int(v: int, out: bytearray) -> None:
    if v >= 0:
        if v <= 0x7F:
            out.append(v)
        elif v <= 0xFF:
            out += bytes((0xCC, v))
        elif v <= 0xFFFF:
            out += b"\xcd" + struct.pack(">H", v)
        elif v <= 0xFFFFFFFF:
            out += b"\xce" + struct.pack(">I", v)
        elif v <= _UINT_MAX:
            out += b"\xcf" + struct.pack(">Q", v)
        else:
            raise ValueError("integer too large for the canonical profile")
    else:
        if v >= -32:
            out.append(v & 0xFF)
        elif v >= -0x80:
            out += b"\xd0" + struct.pack(">b", v)
        elif v >= -0x8000:
            out += b"\xd1" + struct.pack(">h", v)
        elif v >= -0x80000000:
            out += b"\xd2" + struct.pack(">i", v)
        elif v >= _INT_MIN:
            out += b"\xd3" + struct.pack(">q", v)
        else:
            raise ValueError("integer too small for the canonical profile")


def _encode_length(n: int, fix_base: int, fix_max: int, op16: int, op32: int, out: bytearray) -> None:
    if n <= fix_max:
        out.append(fix_base | n)
    elif n <= 0xFFFF:
        out += bytes((op16,)) + struct.pack(">H", n)
    elif n <= 0xFFFFFFFF:
        out += bytes((op32,)) + struct.pack(">I", n)
    else:
        raise ValueError("too many elements")


def reencode(values: Sequence[Any]) -> list[bytes]:
    """The canonical encodings of values :func:`canonical_decode` returned, or of maps of them with some of
    their keys left out (items' records inside a proof's openings, without their salts and paths), at C
    speed.

    Such a value holds only the profile's types and its maps are in canonical key order, which msgpack's
    packer keeps, so it writes exactly :func:`canonical_encode`'s bytes. A reader re-encodes every opened
    item to check its commitment: 2,048 records for a proof of 1,024 items, through one packer (0.3 us per
    record: half the time of a packer made for each). Anything else goes through :func:`canonical_encode`;
    given a map with its keys out of order this writes other bytes, which can only make a commitment fail
    to open."""
    pack = msgpack.Packer(use_bin_type=True).pack
    return [pack(value) for value in values]


def canonical_decode(data: bytes) -> Any:
    """Decode bytes written by :func:`canonical_encode`; anything else raises :class:`MalformedEncoding`.

    msgpack's C unpacker reads the bytes (a proof of 1,024 items is 2.3 MB and some 190,000 values: read
    in Python, that was a fifth of checking it). What it does not check, the profile's other rules, is
    checked after it, one level of the value at a time (:func:`_check_profile`: key types and order, the
    types of the values, nesting), and the value packed again by msgpack must give back the input byte for
    byte, which refuses every wider-than-needed form and every repeated key (its map comes out one entry
    short). msgpack's packer writes the shortest forms and keeps a map's keys in the order read, which
    has been checked to be the canonical one, so for an accepted input the repacked bytes are exactly
    :func:`canonical_encode`'s (tests/test_crypto_encoding.py checks both on random, mutated and
    reference-packed inputs)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("canonical_decode takes bytes")
    if not (type(data) is bytes or (type(data) is memoryview and type(data.obj) is bytes and data.format == "B")):
        data = bytes(data)  # a copy of what could change under the reader; bytes, and views of them, are read in place
    if not data:
        raise MalformedEncoding("truncated input")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            timestamp=0,
        )
    except MalformedEncoding:
        raise
    except msgpack.ExtraData:
        raise MalformedEncoding("trailing bytes after the encoded value") from None
    except UnicodeDecodeError:
        raise MalformedEncoding("str is not valid UTF-8") from None
    except msgpack.StackError:
        raise MalformedEncoding("nested too deeply") from None
    except (ValueError, TypeError, msgpack.UnpackException):
        # truncated input, a declared length beyond the input, the never-used type byte, a non-str key
        raise MalformedEncoding("not a msgpack value of the canonical profile") from None
    _check_profile(value)
    repacked = msgpack.packb(value, use_bin_type=True)
    # bytes.startswith compares with memcmp; == against a memoryview compares byte by byte through the
    # buffer's format (4.3 ms against 0.06 for a proof's 2.3 MB statement on our CPU)
    if len(repacked) != len(data) or not repacked.startswith(data):
        raise MalformedEncoding("not the canonical encoding of its value (a wider form than needed, or a repeated key)")
    return value


#: The scalar types canonical_decode returns (bool before int: ``type(True) is bool``).
_SCALARS = frozenset({type(None), bool, int, str, bytes})
_CONTAINED = _SCALARS | {list, dict}


def _why_not_allowed(kind: type) -> str:
    if kind is float:
        return "floats are not allowed"
    return "ext types are not allowed"  # msgpack.ExtType and msgpack.Timestamp


def _refuse_ext(code: int, data: bytes) -> Any:
    raise MalformedEncoding("ext types are not allowed")


def _check_profile(value: Any) -> None:
    """Refuse, in a value msgpack has read, what the profile forbids and the repack would not see: a float or
    a timestamp (msgpack reads both), a map key that is not str or out of order, nesting deeper than
    MAX_DEPTH (section 3 of docs/protocol.md: the top is at depth 0, a container's elements and a map's keys
    and values one deeper than it).

    Why a level at a time: the values at depth d are the elements of the non-empty containers at depth
    d - 1, so each level is gathered and its types checked by a few calls that run in C (``chain``, ``map``,
    a set of types), and each distinct key order of its maps is checked once (a file's maps repeat a few).
    A proof's statement for 1,024 items, 2,050 maps and 2,049 arrays, is checked in 1.0 ms on our CPU,
    against 2.8 ms for a hook called by the unpacker on each map (the decoder of issue 18's second pass). A
    value deeper than MAX_DEPTH is one below a non-empty container at depth MAX_DEPTH: the walk stops
    there."""
    kind = type(value)
    if kind not in _CONTAINED:
        raise MalformedEncoding(_why_not_allowed(kind))
    maps = [value] if kind is dict and value else []
    arrays = [value] if kind is list and value else []
    depth = 0
    while maps or arrays:
        if depth == MAX_DEPTH:
            raise MalformedEncoding("nested too deeply")
        depth += 1
        for keys in {*map(tuple, maps)}:
            try:  # msgpack allows str and bytes keys: bytes fail the first test, a mix of the two fails to sort
                # Code point order is UTF-8 byte order, and the unpacker has refused invalid UTF-8.
                if type(keys[0]) is not str or list(keys) != sorted(keys):
                    raise MalformedEncoding("map keys must be str, sorted by their UTF-8 bytes")
            except TypeError:
                raise MalformedEncoding("map keys must be str") from None
        below: list[list[Any]] = [[*chain.from_iterable(map(dict.values, maps))], [*chain.from_iterable(arrays)]]
        maps, arrays = [], []
        for values in below:  # maps' values apart from arrays' elements: a proof's Merkle paths hold no container
            kinds = {*map(type, values)}
            if kinds <= _SCALARS:
                continue
            if not kinds <= _CONTAINED:
                raise MalformedEncoding(_why_not_allowed(next(iter(kinds - _CONTAINED))))
            if dict in kinds:
                maps += [v for v in values if type(v) is dict and v]
            if list in kinds:
                arrays += [v for v in values if type(v) is list and v]

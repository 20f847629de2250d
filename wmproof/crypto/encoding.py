"""The canonical msgpack profile: one byte string for each value, and a decoder that accepts nothing else.

msgpack by itself allows several encodings of one value (an integer in a wider form than needed, map keys
in any order). Everything wmproof hashes or signs is encoded under this profile (checklist rule 5):

* types: nil, bool, int (-2**63 .. 2**64-1), str (UTF-8), bin, array, map; no float, no ext;
* integers in the shortest form: positive fixint / uint8..uint64 for values >= 0, negative fixint /
  int8..int64 for values < 0;
* str, bin, array and map lengths in the shortest form that holds them;
* map keys are str, unique, sorted by their UTF-8 bytes.

:func:`canonical_decode` parses strictly and rejects every deviation from the above with
:class:`MalformedEncoding`, each rule checked where the value is read: what it accepts re-encodes to the same
bytes (tests/test_crypto_encoding.py checks that on random and mutated inputs). Callers hash and sign the
bytes they received, never a re-serialised object.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

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


def canonical_decode(data: bytes) -> Any:
    """Decode bytes written by :func:`canonical_encode`; anything else raises :class:`MalformedEncoding`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("canonical_decode takes bytes")
    data = bytes(data)
    decoder = _Decoder(data)
    value = decoder.value(0)
    if decoder.pos != len(data):
        raise MalformedEncoding(f"{len(data) - decoder.pos} trailing bytes after the encoded value")
    # The parser refuses every form canonical_encode would not write (each rule where it reads the value),
    # so that decoded values re-encode to the same bytes; tests/test_crypto_encoding.py checks that property
    # on random and mutated inputs instead of re-encoding here, which doubled the cost of reading a proof.
    return value


class _Decoder:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise MalformedEncoding("truncated input")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: str, size: int) -> int:
        return struct.unpack(fmt, self.take(size))[0]

    def length(self, op: int, op8: int | None, op16: int, op32: int, minimum: int) -> int:
        """Read an explicit length and check it is the shortest form (fixed forms hold < ``minimum``)."""
        if op == op8:
            n = self.unpack(">B", 1)
            if n < minimum:
                raise MalformedEncoding("length not in its shortest form")
        elif op == op16:
            n = self.unpack(">H", 2)
            if n <= (0xFF if op8 is not None else minimum - 1):
                raise MalformedEncoding("length not in its shortest form")
        else:
            n = self.unpack(">I", 4)
            if n <= 0xFFFF:
                raise MalformedEncoding("length not in its shortest form")
        return n

    def check_count(self, n: int) -> None:
        # Every element takes at least one byte: a declared count larger than what is left is a lie that
        # would otherwise make us allocate or loop before failing.
        if n > len(self.data) - self.pos:
            raise MalformedEncoding("declared length exceeds the input")

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise MalformedEncoding("nested too deeply")
        op = self.take(1)[0]
        if op <= 0x7F:
            return op
        if op >= 0xE0:
            return op - 0x100
        if 0xA0 <= op <= 0xBF:
            return self.string(op & 0x1F)
        if 0x90 <= op <= 0x9F:
            return self.array(op & 0x0F, depth)
        if 0x80 <= op <= 0x8F:
            return self.map(op & 0x0F, depth)
        if op == 0xC0:
            return None
        if op == 0xC2:
            return False
        if op == 0xC3:
            return True
        if op == 0xCC:
            v = self.unpack(">B", 1)
            if v <= 0x7F:
                raise MalformedEncoding("integer not in its shortest form")
            return v
        if op == 0xCD:
            v = self.unpack(">H", 2)
            if v <= 0xFF:
                raise MalformedEncoding("integer not in its shortest form")
            return v
        if op == 0xCE:
            v = self.unpack(">I", 4)
            if v <= 0xFFFF:
                raise MalformedEncoding("integer not in its shortest form")
            return v
        if op == 0xCF:
            v = self.unpack(">Q", 8)
            if v <= 0xFFFFFFFF:
                raise MalformedEncoding("integer not in its shortest form")
            return v
        if op == 0xD0:
            v = self.unpack(">b", 1)
            if v >= -32:
                raise MalformedEncoding("integer not in its shortest form")
            return v
        if op == 0xD1:
            v = self.unpack(">h", 2)
            if v >= -0x80:
                raise MalformedEncoding("integer not in its shortest form")
            return v
        if op == 0xD2:
            v = self.unpack(">i", 4)
            if v >= -0x8000:
                raise MalformedEncoding("integer not in its shortest form")
            return v
        if op == 0xD3:
            v = self.unpack(">q", 8)
            if v >= -0x80000000:
                raise MalformedEncoding("integer not in its shortest form")
            return v
        if op in (0xD9, 0xDA, 0xDB):
            return self.string(self.length(op, 0xD9, 0xDA, 0xDB, 32))
        if op in (0xC4, 0xC5, 0xC6):
            n = self.length(op, 0xC4, 0xC5, 0xC6, 0)
            return self.take(n)
        if op in (0xDC, 0xDD):
            return self.array(self.length(op, None, 0xDC, 0xDD, 16), depth)
        if op in (0xDE, 0xDF):
            return self.map(self.length(op, None, 0xDE, 0xDF, 16), depth)
        if op in (0xCA, 0xCB):
            raise MalformedEncoding("floats are not allowed")
        if op in (0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
            raise MalformedEncoding("ext types are not allowed")
        raise MalformedEncoding(f"invalid type byte 0x{op:02x}")

    def string(self, n: int) -> str:
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedEncoding("str is not valid UTF-8") from None

    def array(self, n: int, depth: int) -> list[Any]:
        self.check_count(n)
        return [self.element(depth + 1) for _ in range(n)]

    def map(self, n: int, depth: int) -> dict[str, Any]:
        self.check_count(2 * n)
        result: dict[str, Any] = {}
        previous: bytes | None = None
        data = self.data
        for _ in range(n):
            pos = self.pos
            op = data[pos] if pos < len(data) else -1
            if 0xA0 <= op <= 0xBF:  # a short key (every key wmproof writes): read here, with the same rules
                end = pos + 1 + (op & 0x1F)
                if end > len(data):
                    raise MalformedEncoding("truncated input")
                raw = data[pos + 1 : end]
                self.pos = end
                try:
                    key = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise MalformedEncoding("str is not valid UTF-8") from None
            else:
                key = self.value(depth + 1)
                if not isinstance(key, str):
                    raise MalformedEncoding("map keys must be str")
                raw = key.encode("utf-8")
            if previous is not None and raw <= previous:
                raise MalformedEncoding("map keys duplicated or not sorted")
            previous = raw
            result[key] = self.element(depth + 1)
        return result

    def element(self, depth: int) -> Any:
        """:meth:`value`, with the commonest forms read inline (positive fixint, bin 8 and 16): a proof holds
        tens of thousands of values, most of them these."""
        data, pos = self.data, self.pos
        if pos < len(data):
            op = data[pos]
            if op <= 0x7F:
                self.pos = pos + 1
                return op
            if op == 0xC4 or op == 0xC5:
                if op == 0xC4:
                    start = pos + 2
                    n = data[pos + 1] if start <= len(data) else -1
                else:
                    start = pos + 3
                    n = int.from_bytes(data[pos + 1 : start], "big") if start <= len(data) else -1
                    if 0 <= n <= 0xFF:
                        raise MalformedEncoding("length not in its shortest form")
                if n < 0 or start + n > len(data):
                    raise MalformedEncoding("truncated input")
                self.pos = start + n
                return data[start : start + n]
        return self.value(depth)

"""The one framing of every wmproof file: a magic number, a canonical header, and a body.

    file   = MAGIC || u32be(len(header)) || header || body
    MAGIC  = 89 57 4d 50 0d 0a 1a 0a      ("\\x89WMP\\r\\n\\x1a\\n", after PNG's: detects 7-bit and
                                           newline-translating transfers)
    header = canonical msgpack map with at least "kind" (str) and "version" (int)

The prefix ``MAGIC || u32be(len) || header`` is what sealed files authenticate as AEAD associated data and
what signed files sign, so nothing in the header can be changed without detection. The body's meaning
depends on the kind (see :mod:`wmproof.crypto.sealed` and :mod:`wmproof.crypto.signed`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .encoding import canonical_decode, canonical_encode
from .errors import MalformedContainer, MalformedEncoding

MAGIC = b"\x89WMP\r\n\x1a\n"
MAX_HEADER_SIZE = 1 << 16


@dataclass(frozen=True)
class Container:
    header: dict[str, Any]
    prefix: bytes  # MAGIC || u32be(len(header)) || header: the authenticated framing
    body: bytes

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def version(self) -> int:
        return self.header["version"]


def pack_container(header: dict[str, Any], body: bytes) -> bytes:
    return container_prefix(header) + body


def container_prefix(header: dict[str, Any]) -> bytes:
    if not isinstance(header.get("kind"), str) or not isinstance(header.get("version"), int):
        raise ValueError("a container header has a str 'kind' and an int 'version'")
    encoded = canonical_encode(header)
    if len(encoded) > MAX_HEADER_SIZE:
        raise ValueError("container header too large")
    return MAGIC + struct.pack(">I", len(encoded)) + encoded


def is_container(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def parse_container(data: bytes) -> Container:
    """Split a file into header and body; raises :class:`MalformedContainer` on any framing error."""
    header, end = read_header(data)
    return Container(header=header, prefix=data[:end], body=data[end:])


def read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """A container's header and where its body starts (the prefix's length), for a reader that takes the
    body without a copy of it; raises :class:`MalformedContainer` on any framing error."""
    if not is_container(data):
        raise MalformedContainer("not a wmproof file (bad magic number)")
    offset = len(MAGIC)
    if len(data) < offset + 4:
        raise MalformedContainer("truncated header length")
    (hlen,) = struct.unpack(">I", data[offset : offset + 4])
    offset += 4
    if hlen > MAX_HEADER_SIZE or offset + hlen > len(data):
        raise MalformedContainer("header length out of range")
    raw = data[offset : offset + hlen]
    try:
        header = canonical_decode(raw)
    except MalformedEncoding as exc:
        raise MalformedContainer(f"malformed header: {exc}") from None
    if not isinstance(header, dict):
        raise MalformedContainer("header is not a map")
    if not isinstance(header.get("kind"), str) or type(header.get("version")) is not int:
        raise MalformedContainer("header lacks its kind or version")
    return header, offset + hlen

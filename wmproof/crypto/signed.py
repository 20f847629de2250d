"""Signed containers: a canonical statement, signed with the owner's Ed25519 key.

    header    = {"kind": K, "version": V, "signer": <32-byte Ed25519 public key>}
    body      = statement || signature            (signature: the last 64 bytes)
    statement = canonical msgpack map
    signature = Ed25519(sk, u8(len(T)) || T || u64be(len(prefix)) || prefix || u64be(len(statement)) || statement)
                with T = "wmproof/v1/signed-container" and prefix = MAGIC || u32be(len(header)) || header

The signature covers the header (kind, version, signer) and the exact statement bytes. The container's
identifier is ``tagged_hash("wmproof/v1/container-digest", prefix, statement)``: it binds the signer and
the statement but not the signature bytes, which are not an identifier (checklist rule 6).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from . import tags
from .container import Container, container_prefix, read_header
from .encoding import canonical_decode, canonical_encode
from .errors import MalformedContainer, MalformedEncoding
from .hashing import length_prefixed, tagged_hash
from .signatures import SIGNATURE_SIZE, SigningKey, VerifyKey


def _signed_message(prefix: bytes, statement: bytes) -> bytes:
    return b"".join(_signed_message_parts(prefix, statement))


def _signed_message_parts(prefix: bytes, statement: bytes | memoryview) -> list[bytes | memoryview]:
    """The signed message as the two parts whose concatenation it is: the framing, and the statement as
    given (a proof's statement is 2 MB, read in place)."""
    framing = bytes([len(tags.SIGNED_CONTAINER)]) + tags.SIGNED_CONTAINER + length_prefixed(prefix)
    return [framing + struct.pack(">Q", len(statement)), statement]


@dataclass(frozen=True)
class SignedContainer:
    kind: str
    version: int
    signer: VerifyKey
    statement: dict[str, Any]
    statement_bytes: memoryview  # a read-only view of the statement's bytes in the container
    digest: bytes


def sign_container(kind: str, version: int, statement: dict[str, Any], signing_key: SigningKey) -> bytes:
    header = {"kind": kind, "version": version, "signer": bytes(signing_key.verify_key)}
    prefix = container_prefix(header)
    statement_bytes = canonical_encode(statement)
    signature = signing_key.sign(_signed_message(prefix, statement_bytes))
    return prefix + statement_bytes + signature


def open_signed_container(data: bytes | Container) -> SignedContainer:
    """Parse and verify a signed container. Raises a :class:`CryptoError` subclass on any failure.

    The statement is read where it lies in ``data``, not copied: checking a proof of 1,024 items reads a
    2.3 MB statement, and each copy of it was 575 fresh pages of memory."""
    if isinstance(data, Container):
        header, prefix, body = data.header, data.prefix, memoryview(data.body)
    else:
        data = bytes(data)  # a bytearray could change under the reader; bytes are not copied
        header, end = read_header(data)
        prefix, body = data[:end], memoryview(data)[end:]
    if set(header) != {"kind", "version", "signer"}:
        raise MalformedContainer("unexpected fields in a signed container's header")
    signer_raw = header["signer"]
    if not isinstance(signer_raw, bytes):
        raise MalformedContainer("signer is not bytes")
    signer = VerifyKey(signer_raw)
    if len(body) < SIGNATURE_SIZE + 1:
        raise MalformedContainer("signed container too short")
    statement_bytes = body[:-SIGNATURE_SIZE]
    signer.verify(_signed_message_parts(prefix, statement_bytes), bytes(body[-SIGNATURE_SIZE:]))
    try:
        statement = canonical_decode(statement_bytes)
    except MalformedEncoding as exc:
        raise MalformedContainer(f"malformed statement: {exc}") from None
    if not isinstance(statement, dict):
        raise MalformedContainer("statement is not a map")
    return SignedContainer(
        kind=header["kind"],
        version=header["version"],
        signer=signer,
        statement=statement,
        statement_bytes=statement_bytes,
        digest=tagged_hash(tags.CONTAINER_DIGEST, prefix, statement_bytes),
    )

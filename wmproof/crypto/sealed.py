"""Sealed containers: secrets at rest (owner identities, marking keys).

    header = {"kind": K, "version": V, "seal": S, ...public fields}
    S      = {"aead": "xchacha20poly1305-ietf", "kdf": "argon2id13", "salt": <16 bytes>,
              "opslimit": int, "memlimit": int, "nonce": <24 bytes>}
           | {"aead": "none"}
    body   = XChaCha20-Poly1305(key, nonce, plaintext, ad = prefix)     with key = Argon2id(passphrase, salt)
           | plaintext || tagged_hash("wmproof/v1/sealed-container/integrity", prefix, plaintext)
    plaintext = canonical msgpack map

The AEAD's associated data is the whole framing prefix, so a header edit (a changed KDF parameter, public
field or kind) fails like a wrong passphrase (checklist rule 7). The KDF parameters come from the file,
which may be hostile: they are checked against caps *before* Argon2id runs, so a crafted file cannot make
the tool burn minutes or gigabytes. Unencrypted sealing ("aead": "none") only detects corruption; it is for
throw-away keys (tests, the demo) and says so in the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.pwhash

from . import tags
from .container import Container, container_prefix, parse_container
from .encoding import canonical_decode, canonical_encode
from .errors import (
    DecryptionFailed,
    IntegrityCheckFailed,
    KdfParametersRejected,
    MalformedContainer,
    MalformedEncoding,
    PassphraseRequired,
)
from .hashing import DIGEST_SIZE, tagged_hash

AEAD = "xchacha20poly1305-ietf"
KDF = "argon2id13"
SALT_SIZE = 16
NONCE_SIZE = 24
KEY_SIZE = 32
TAG_SIZE = 16

#: Hard limits on parameters read from a file. Generous for an honest file, fatal to a hostile one.
MAX_OPSLIMIT = 16
MAX_MEMLIMIT = 1 << 30  # 1 GiB
MIN_OPSLIMIT = 1
MIN_MEMLIMIT = 8 << 10  # libsodium's minimum, 8 KiB

PassphraseSource = bytes | Callable[[], bytes] | None


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost. The default is libsodium's MODERATE level (about 1 s and 256 MiB here)."""

    opslimit: int = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
    memlimit: int = nacl.pwhash.argon2id.MEMLIMIT_MODERATE

    def check(self) -> None:
        if type(self.opslimit) is not int or not MIN_OPSLIMIT <= self.opslimit <= MAX_OPSLIMIT:
            raise KdfParametersRejected(f"Argon2id opslimit must be in [{MIN_OPSLIMIT}, {MAX_OPSLIMIT}]")
        if type(self.memlimit) is not int or not MIN_MEMLIMIT <= self.memlimit <= MAX_MEMLIMIT:
            raise KdfParametersRejected(f"Argon2id memlimit must be in [{MIN_MEMLIMIT}, {MAX_MEMLIMIT}] bytes")


DEFAULT_KDF = KdfParams()

#: Cheap parameters for tests and throw-away demo keys. Never the default.
TEST_KDF = KdfParams(opslimit=1, memlimit=MIN_MEMLIMIT)


@dataclass(frozen=True)
class SealedContents:
    header: dict[str, Any]
    contents: dict[str, Any]
    encrypted: bool


def _derive_key(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    params.check()
    return nacl.pwhash.argon2id.kdf(KEY_SIZE, passphrase, salt, opslimit=params.opslimit, memlimit=params.memlimit)


def seal(
    kind: str,
    version: int,
    contents: dict[str, Any],
    passphrase: bytes | None,
    *,
    public: dict[str, Any] | None = None,
    kdf: KdfParams = DEFAULT_KDF,
) -> bytes:
    """Seal ``contents`` (encrypted when ``passphrase`` is given) into container bytes."""
    public = dict(public or {})
    if {"kind", "version", "seal"} & set(public):
        raise ValueError("public header fields may not shadow kind, version or seal")
    plaintext = canonical_encode(contents)
    if passphrase is None:
        header = {"kind": kind, "version": version, "seal": {"aead": "none"}, **public}
        prefix = container_prefix(header)
        return prefix + plaintext + tagged_hash(tags.SEALED_INTEGRITY, prefix, plaintext)
    if not isinstance(passphrase, bytes) or not passphrase:
        raise ValueError("a passphrase is non-empty bytes")
    salt = os.urandom(SALT_SIZE)
    nonce = os.urandom(NONCE_SIZE)
    seal_fields = {
        "aead": AEAD,
        "kdf": KDF,
        "salt": salt,
        "opslimit": kdf.opslimit,
        "memlimit": kdf.memlimit,
        "nonce": nonce,
    }
    header = {"kind": kind, "version": version, "seal": seal_fields, **public}
    prefix = container_prefix(header)
    key = _derive_key(passphrase, salt, kdf)
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, prefix, nonce, key)
    return prefix + ciphertext


def is_encrypted(container: Container) -> bool:
    seal_fields = container.header.get("seal")
    return isinstance(seal_fields, dict) and seal_fields.get("aead") != "none"


def unseal(data: bytes | Container, passphrase: PassphraseSource) -> SealedContents:
    """Open a sealed container. ``passphrase`` may be a callable, called only if the file is encrypted."""
    container = data if isinstance(data, Container) else parse_container(data)
    seal_fields = container.header.get("seal")
    if not isinstance(seal_fields, dict):
        raise MalformedContainer("not a sealed container (no seal in the header)")
    aead = seal_fields.get("aead")
    if aead == "none":
        if set(seal_fields) != {"aead"}:
            raise MalformedContainer("unexpected fields in the seal")
        if len(container.body) < DIGEST_SIZE:
            raise MalformedContainer("sealed body too short")
        plaintext, check = container.body[:-DIGEST_SIZE], container.body[-DIGEST_SIZE:]
        if tagged_hash(tags.SEALED_INTEGRITY, container.prefix, plaintext) != check:
            raise IntegrityCheckFailed("the file is corrupt (integrity digest mismatch)")
        encrypted = False
    elif aead == AEAD:
        if set(seal_fields) != {"aead", "kdf", "salt", "opslimit", "memlimit", "nonce"} or seal_fields["kdf"] != KDF:
            raise MalformedContainer("unsupported key derivation in the seal")
        salt, nonce = seal_fields["salt"], seal_fields["nonce"]
        if not (
            isinstance(salt, bytes) and len(salt) == SALT_SIZE and isinstance(nonce, bytes) and len(nonce) == NONCE_SIZE
        ):
            raise MalformedContainer("malformed salt or nonce in the seal")
        params = KdfParams(opslimit=seal_fields["opslimit"], memlimit=seal_fields["memlimit"])
        params.check()  # before asking for, or spending effort on, a passphrase
        secret = passphrase() if callable(passphrase) else passphrase
        if not secret:
            raise PassphraseRequired("this file is encrypted: a passphrase is required")
        if len(container.body) < nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES:
            raise MalformedContainer("truncated sealed contents (shorter than the authentication tag)")
        key = _derive_key(secret, salt, params)
        try:
            plaintext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                container.body, container.prefix, nonce, key
            )
        except nacl.exceptions.CryptoError:
            raise DecryptionFailed("wrong passphrase, or the file was modified") from None
        encrypted = True
    else:
        raise MalformedContainer("unsupported encryption in the seal")
    try:
        contents = canonical_decode(plaintext)
    except MalformedEncoding as exc:
        raise MalformedContainer(f"malformed sealed contents: {exc}") from None
    if not isinstance(contents, dict):
        raise MalformedContainer("sealed contents are not a map")
    return SealedContents(header=container.header, contents=contents, encrypted=encrypted)

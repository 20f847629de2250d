"""The owner's identity: an Ed25519 key pair, sealed at rest.

The public key goes into every verification key the owner signs and is the name by which judges and third
parties know the owner (its fingerprint: the first 16 hex digits of its SHA-256). The private seed never
leaves the sealed file except into memory to sign. The public key and an optional label are kept in the
sealed file's header (authenticated, not encrypted), so ``wmproof identity show`` needs no passphrase.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ..crypto import (
    DEFAULT_KDF,
    KdfParams,
    PassphraseSource,
    SigningKey,
    VerifyKey,
    is_encrypted,
    seal,
)
from ..crypto.signatures import SEED_SIZE
from ..errors import MalformedInput
from ..fileio import write_file
from .files import crypto_errors_for, open_sealed, read_container

KIND = "identity"
VERSION = 1


@dataclass(frozen=True, repr=False)
class Identity:
    signing_key: SigningKey
    created_at: int
    label: str

    @classmethod
    def generate(cls, label: str = "") -> "Identity":
        return cls(SigningKey.generate(), int(time.time()), label)

    @property
    def public_key(self) -> VerifyKey:
        return self.signing_key.verify_key

    def __repr__(self) -> str:
        return f"Identity(fingerprint={self.public_key.fingerprint}, label={self.label!r})"

    def to_bytes(self, passphrase: bytes | None, kdf: KdfParams = DEFAULT_KDF) -> bytes:
        return seal(
            KIND,
            VERSION,
            {"seed": self.signing_key.seed, "created_at": self.created_at, "label": self.label},
            passphrase,
            public={"public_key": bytes(self.public_key), "label": self.label},
            kdf=kdf,
        )


@dataclass(frozen=True)
class PublicIdentity:
    public_key: VerifyKey
    label: str
    encrypted: bool


def save_identity(
    identity: Identity,
    path: str | os.PathLike[str],
    passphrase: bytes | None,
    *,
    overwrite: bool = False,
    kdf: KdfParams = DEFAULT_KDF,
) -> None:
    write_file(path, identity.to_bytes(passphrase, kdf), secret=True, overwrite=overwrite)


def read_public_identity(path: str | os.PathLike[str]) -> PublicIdentity:
    container = read_container(path, KIND)
    with crypto_errors_for(path, "the identity"):
        header = container.header
        if not isinstance(header.get("public_key"), bytes) or not isinstance(header.get("label"), str):
            raise MalformedInput(f"{path}: identity header lacks its public key")
        public_key = VerifyKey(header["public_key"])
    return PublicIdentity(public_key, header["label"], is_encrypted(container))


def load_identity(path: str | os.PathLike[str], passphrase: PassphraseSource) -> Identity:
    opened = open_sealed(path, KIND, passphrase)
    contents = opened.contents
    if set(contents) != {"seed", "created_at", "label"}:
        raise MalformedInput(f"{path}: unexpected fields in the identity")
    seed, created_at, label = contents["seed"], contents["created_at"], contents["label"]
    if not (isinstance(seed, bytes) and len(seed) == SEED_SIZE and type(created_at) is int and isinstance(label, str)):
        raise MalformedInput(f"{path}: malformed identity contents")
    identity = Identity(SigningKey(seed), created_at, label)
    if bytes(identity.public_key) != opened.header.get("public_key"):
        raise MalformedInput(f"{path}: the identity's public key does not match its secret key")
    if opened.header.get("label") != label:
        raise MalformedInput(f"{path}: the identity's header and contents give different labels")
    return identity

"""Ed25519 owner identity (RFC 8032), through one library: PyNaCl (libsodium).

Public keys are checked when they are imported, not only when a signature is verified: a small-order or
non-canonical point is refused (checklist rule 6), since with such a key a "signature" can verify for many
messages. Signatures are never used as identifiers.
"""

from __future__ import annotations

import hashlib

import nacl.bindings
import nacl.exceptions
import nacl.signing

from .errors import InvalidPublicKey, InvalidSignature

PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64


class VerifyKey:
    """An Ed25519 public key that has passed the import checks."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != PUBLIC_KEY_SIZE:
            raise InvalidPublicKey("an Ed25519 public key is 32 bytes")
        # is_valid_point refuses points not on the curve, non-canonical encodings, points of small order
        # and points outside the prime-order subgroup.
        if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
            raise InvalidPublicKey("the public key is not a valid Ed25519 point of prime order")
        self._raw = raw

    def __bytes__(self) -> bytes:
        return self._raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey({self._raw.hex()})"

    @property
    def fingerprint(self) -> str:
        """A short, human-comparable name of the key: the first 16 hex digits of its SHA-256."""
        return hashlib.sha256(self._raw).hexdigest()[:16]

    def verify(self, message: bytes | list[bytes | memoryview], signature: bytes) -> None:
        """Raises :class:`InvalidSignature` unless ``signature`` is this key's signature on ``message``, or on
        the concatenation of its parts (joined once, with the signature in front as libsodium reads them: a
        signed proof's 2 MB are copied once, not twice)."""
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
            raise InvalidSignature("an Ed25519 signature is 64 bytes")
        parts = message if isinstance(message, list) else [message]
        try:
            nacl.bindings.crypto_sign_open(b"".join([signature, *parts]), self._raw)
        except nacl.exceptions.BadSignatureError:
            raise InvalidSignature("the signature does not verify") from None


class SigningKey:
    """An Ed25519 private key. Its repr never shows the seed."""

    __slots__ = ("_key", "_seed")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._seed = seed
        self._key = nacl.signing.SigningKey(seed)

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed (to be sealed at rest, never printed)."""
        return self._seed

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(bytes(self._key.verify_key))

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def __repr__(self) -> str:
        return f"SigningKey(public={bytes(self._key.verify_key).hex()}, seed=<secret>)"

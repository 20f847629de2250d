"""Typed failures of the crypto core.

Each class names one way an artefact can fail, so callers (the protocol layer, the CLI) can turn it into a
one-line message and an exit code without parsing strings. Messages never include secret material: they
say *what* failed, never the bytes involved.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base of every failure raised by ``wmproof.crypto``."""


class MalformedEncoding(CryptoError):
    """Bytes that the canonical decoder would not have written (rule 5 of the security checklist)."""


class MalformedContainer(CryptoError):
    """A file that is not a wmproof container, or whose framing is broken."""


class InvalidSignature(CryptoError):
    """An Ed25519 signature that does not verify."""


class InvalidPublicKey(CryptoError):
    """A public key that is malformed or of small order (checklist rule 6)."""


class CommitmentMismatch(CryptoError):
    """An opening (message, salt) that does not open the commitment."""


class InvalidInclusionProof(CryptoError):
    """A Merkle inclusion proof that does not lead to the expected root."""


class DecryptionFailed(CryptoError):
    """Wrong passphrase, or a sealed file whose header or body was modified (the AEAD cannot tell which)."""


class IntegrityCheckFailed(CryptoError):
    """An unencrypted sealed file whose integrity digest does not match: the file is corrupt."""


class KdfParametersRejected(CryptoError):
    """Key-derivation parameters outside the caps, refused before any work is done (checklist rule 7)."""


class PassphraseRequired(CryptoError):
    """A sealed file is encrypted and no passphrase was given."""


class UnsafeDestination(CryptoError):
    """Refusing to write: the destination exists (no overwrite asked) or is a symbolic link."""

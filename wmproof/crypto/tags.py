"""The one registry of domain-separation tags.

Every hash that wmproof computes starts with one of these tags (length-prefixed, see
:func:`wmproof.crypto.hashing.tagged_hash`), so that a digest computed for one purpose can never be
replayed as a digest for another (checklist rule 3). Tags are versioned: a change to any structure that is
hashed gets a new tag, never a silent reinterpretation of an old one. ``tests/test_crypto_tags.py`` checks
that the tags are distinct and that no tag is a prefix of another.
"""

from __future__ import annotations

PROTOCOL_LABEL = b"wmproof/v1"

#: Commitment to one trigger item (its canonical encoding) under a 32-byte salt.
COMMIT_TRIGGER_ITEM = b"wmproof/v1/commit/trigger-item"
#: Per-item seed derived from the marking key's master seed: item i from H(seed, i) (Adi et al. section 4).
ITEM_SEED = b"wmproof/v1/item-seed"
#: SHAKE-256 stream that the abstract-image trigger generator reads.
TRIGGER_ABSTRACT_IMAGE = b"wmproof/v1/trigger/abstract-image"
#: Fiat-Shamir transcript initialisation, and the XOF that turns a transcript state into challenge bytes.
TRANSCRIPT = b"wmproof/v1/transcript/init"
TRANSCRIPT_CHALLENGE = b"wmproof/v1/transcript/challenge"
#: Ed25519 signatures over signed containers.
SIGNED_CONTAINER = b"wmproof/v1/signed-container"
#: Identifier of a signed container (its authenticated part, never its signature: checklist rule 6).
CONTAINER_DIGEST = b"wmproof/v1/container-digest"
#: Integrity digest of a sealed container stored without encryption.
SEALED_INTEGRITY = b"wmproof/v1/sealed-container/integrity"
#: What is timestamped on chain for one verification key: H(tag, key id). The key id already binds the owner's
#: public key and the protocol version (checklist rule 8); the tag says "a timestamp anchor, of a key".
CHAIN_KEY_ANCHOR = b"wmproof/v1/chain/key-anchor"
#: The verifier's signature over the evidence of a verification through a prediction API (compact JSON).
REMOTE_EVIDENCE = b"wmproof/v1/remote-evidence"

ALL_TAGS: tuple[bytes, ...] = (
    COMMIT_TRIGGER_ITEM,
    ITEM_SEED,
    TRIGGER_ABSTRACT_IMAGE,
    TRANSCRIPT,
    TRANSCRIPT_CHALLENGE,
    SIGNED_CONTAINER,
    CONTAINER_DIGEST,
    SEALED_INTEGRITY,
    CHAIN_KEY_ANCHOR,
    REMOTE_EVIDENCE,
)

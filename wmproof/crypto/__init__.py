"""wmproof's crypto core: the primitives every proof rests on, and nothing else.

This package imports nothing of torch and nothing of the rest of wmproof, so that anyone can check a proof
with a small, auditable dependency set (numpy is not even needed here: only PyNaCl, msgpack's C unpacker
under the canonical decoder, and the standard library). Everything public is re-exported below; the
submodules are the place to read the exact byte layouts, which ``docs/protocol.md`` specifies and
``docs/vectors/`` pins with known answers.
"""

from .atomic import write_atomic
from .commitments import SALT_SIZE, commit, open_commitment, opened_commitments
from .container import MAGIC, Container, pack_container, parse_container
from .encoding import canonical_decode, canonical_encode, reencode
from .errors import (
    CommitmentMismatch,
    CryptoError,
    DecryptionFailed,
    IntegrityCheckFailed,
    InvalidInclusionProof,
    InvalidPublicKey,
    InvalidSignature,
    KdfParametersRejected,
    MalformedContainer,
    MalformedEncoding,
    PassphraseRequired,
    UnsafeDestination,
)
from .hashing import XofReader, tagged_hash, tagged_hash_pairs, tagged_xof, tagged_xof_prefixes
from .merkle import MerkleTree, leaf_hash, node_hash, verify_inclusion
from .sealed import (
    DEFAULT_KDF,
    TEST_KDF,
    KdfParams,
    PassphraseSource,
    SealedContents,
    is_encrypted,
    seal,
    unseal,
)
from .signatures import SigningKey, VerifyKey
from .signed import SignedContainer, open_signed_container, sign_container
from .transcript import Transcript

__all__ = [
    "DEFAULT_KDF",
    "MAGIC",
    "SALT_SIZE",
    "TEST_KDF",
    "CommitmentMismatch",
    "Container",
    "CryptoError",
    "DecryptionFailed",
    "IntegrityCheckFailed",
    "InvalidInclusionProof",
    "InvalidPublicKey",
    "InvalidSignature",
    "KdfParametersRejected",
    "KdfParams",
    "MalformedContainer",
    "MalformedEncoding",
    "MerkleTree",
    "PassphraseRequired",
    "PassphraseSource",
    "SealedContents",
    "SignedContainer",
    "SigningKey",
    "Transcript",
    "UnsafeDestination",
    "VerifyKey",
    "XofReader",
    "canonical_decode",
    "reencode",
    "canonical_encode",
    "commit",
    "is_encrypted",
    "leaf_hash",
    "node_hash",
    "open_commitment",
    "opened_commitments",
    "open_signed_container",
    "pack_container",
    "parse_container",
    "seal",
    "sign_container",
    "tagged_hash",
    "tagged_hash_pairs",
    "tagged_xof",
    "tagged_xof_prefixes",
    "unseal",
    "verify_inclusion",
    "write_atomic",
]

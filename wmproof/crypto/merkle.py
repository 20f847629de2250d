"""Merkle tree of RFC 6962 (section 2.1), with inclusion proofs verified as in RFC 9162 (section 2.1.3.2).

Leaves are hashed as SHA-256(0x00 || data) and interior nodes as SHA-256(0x01 || left || right), so an
interior node can never be passed off as a leaf (second-preimage attacks). The tree is ordered and
position-binding: a proof is for one index in a tree of one size, and the verifier checks the proof's
length against both (checklist rule 4). The split is RFC 6962's (the largest power of two smaller than n),
which the bottom-up construction below reproduces by promoting an unpaired last node unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from .errors import InvalidInclusionProof

HASH_SIZE = 32


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleTree:
    """A tree over a fixed, non-empty sequence of leaf data (byte strings)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if len(leaves) == 0:
            raise ValueError("a Merkle tree needs at least one leaf")
        if not set(map(type, leaves)) <= {bytes}:
            leaves = [bytes(leaf) for leaf in leaves]
        # leaf_hash and node_hash, inlined: a proof check rebuilds a tree of 2,048 leaves (1.3 ms so, 3.8 ms
        # through the functions)
        sha256 = hashlib.sha256
        level = [sha256(b"\x00" + leaf).digest() for leaf in leaves]
        self._levels: list[list[bytes]] = [level]
        while len(level) > 1:
            pairs = zip(level[::2], level[1::2], strict=False)  # an unpaired last node is promoted below
            nxt = [sha256(b"\x01" + left + right).digest() for left, right in pairs]
            if len(level) % 2:
                nxt.append(level[-1])
            self._levels.append(nxt)
            level = nxt

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def inclusion_proof(self, index: int) -> list[bytes]:
        """The audit path of RFC 6962 section 2.1.1 for leaf ``index``, bottom-up."""
        if not 0 <= index < self.size:
            raise IndexError("leaf index out of range")
        path: list[bytes] = []
        i = index
        for level in self._levels[:-1]:
            sibling = i ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            i >>= 1
        return path


def verify_inclusion(leaf_data: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_data`` sits at ``index`` in the tree of ``size`` leaves with ``root``.

    Raises :class:`InvalidInclusionProof`. The algorithm consumes exactly the number of hashes that
    (index, size) calls for; a longer or shorter proof fails. The size is only bound through the path's
    shape, so callers must take it from an authenticated source (the signed verification key).
    """
    if not (isinstance(index, int) and isinstance(size, int)) or not 0 <= index < size:
        raise InvalidInclusionProof("leaf index out of range for the tree size")
    fn, sn = index, size - 1
    sha256 = hashlib.sha256  # leaf_hash and node_hash, inlined: a proof check walks some 11,000 nodes
    r = sha256(b"\x00" + leaf_data).digest()
    for p in proof:
        if type(p) is not bytes or len(p) != HASH_SIZE:
            raise InvalidInclusionProof("proof element is not a 32-byte hash")
        if sn == 0:
            raise InvalidInclusionProof("proof longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidInclusionProof("proof shorter than the tree is deep")
    if not hmac.compare_digest(r, root):
        raise InvalidInclusionProof("proof does not lead to the root")

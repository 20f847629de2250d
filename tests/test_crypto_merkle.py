"""T4: the RFC 6962 tree, its published vectors, and the inclusion-proof checks of RFC 9162."""

from __future__ import annotations

import hashlib

import pytest

from wmproof.crypto import (
    InvalidInclusionProof,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_inclusion,
)

# Certificate Transparency's reference leaves and tree heads (RFC 6962 test data).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PROOFS = {
    0: [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    5: [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}


def reference_root(leaves):
    """RFC 6962 section 2.1, literally: split at the largest power of two smaller than n."""
    n = len(leaves)
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def reference_path(m, leaves):
    """RFC 6962 section 2.1.1, literally."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return reference_path(m, leaves[:k]) + [reference_root(leaves[k:])]
    return reference_path(m - k, leaves[k:]) + [reference_root(leaves[:k])]


@pytest.mark.parametrize("n", range(1, 9))
def test_rfc6962_roots(n):
    assert MerkleTree(CT_LEAVES[:n]).root.hex() == CT_ROOTS[n - 1]


@pytest.mark.parametrize("index", sorted(CT_PROOFS))
def test_rfc6962_inclusion_proofs(index):
    tree = MerkleTree(CT_LEAVES)
    assert [p.hex() for p in tree.inclusion_proof(index)] == CT_PROOFS[index]
    verify_inclusion(CT_LEAVES[index], index, 8, tree.inclusion_proof(index), tree.root)


def test_every_shape_against_the_literal_rfc_definition():
    leaves = [bytes([i, (7 * i) % 256]) for i in range(70)]
    for n in range(1, len(leaves) + 1):
        tree = MerkleTree(leaves[:n])
        assert tree.root == reference_root(leaves[:n])
        for m in range(n):
            proof = tree.inclusion_proof(m)
            assert proof == reference_path(m, leaves[:n])
            verify_inclusion(leaves[m], m, n, proof, tree.root)


def _fails(*args):
    with pytest.raises(InvalidInclusionProof):
        verify_inclusion(*args)


def test_index_and_size_are_bound():
    leaves = [bytes([i]) for i in range(13)]
    tree = MerkleTree(leaves)
    for m in range(13):
        proof = tree.inclusion_proof(m)
        for other in range(13):
            if other != m:
                _fails(leaves[m], other, 13, proof, tree.root)
        # The size is bound through the proof's shape: any size whose path for m has another length
        # fails. (Sizes with the same shape cannot be told apart by the path alone, which is why the
        # protocol takes the size from the signed verification key, never from the proof.)
        for size in range(m + 1, 40):
            if size != 13 and len(reference_path(m, [b""] * size)) != len(proof):
                _fails(leaves[m], m, size, proof, tree.root)
        _fails(leaves[m], m, 13, proof + [tree.root], tree.root)  # too long
        if proof:
            _fails(leaves[m], m, 13, proof[:-1], tree.root)  # too short
            _fails(leaves[m], m, 13, [bytes(32)] + proof[1:], tree.root)  # wrong sibling
        _fails(leaves[m] + b"x", m, 13, proof, tree.root)
    _fails(leaves[0], 13, 13, tree.inclusion_proof(0), tree.root)
    _fails(leaves[0], -1, 13, tree.inclusion_proof(0), tree.root)


def test_interior_node_is_not_a_leaf():
    leaves = [bytes([i]) for i in range(8)]
    tree = MerkleTree(leaves)
    # The level-1 node over leaves 0 and 1, presented as the data of a leaf of a 4-leaf tree.
    forged_leaf = leaf_hash(leaves[0]) + leaf_hash(leaves[1])
    proof = [node_hash(leaf_hash(leaves[2]), leaf_hash(leaves[3])), tree.inclusion_proof(0)[-1]]
    # The path itself is right: hashing the forged data as an interior node reproduces the root...
    assert node_hash(node_hash(node_hash(leaf_hash(leaves[0]), leaf_hash(leaves[1])), proof[0]), proof[1]) == tree.root
    # ...but a leaf is hashed with the 0x00 prefix, so it cannot stand in for the node.
    _fails(forged_leaf, 0, 4, proof, tree.root)


def test_empty_tree_refused():
    with pytest.raises(ValueError):
        MerkleTree([])

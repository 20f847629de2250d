"""T6: Ed25519 through PyNaCl: RFC 8032 vectors, small-order keys refused at import."""

from __future__ import annotations

import pytest

from wmproof.crypto import InvalidPublicKey, InvalidSignature, SigningKey, VerifyKey

# RFC 8032 section 7.1, tests 1-3.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]

# The eight points of small order, canonical encodings, and two non-canonical ones.
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0100000000000000000000000000000000000000000000000000000000000080",
]


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(seed, public, message, signature):
    sk = SigningKey(bytes.fromhex(seed))
    assert bytes(sk.verify_key).hex() == public
    assert sk.sign(bytes.fromhex(message)).hex() == signature
    VerifyKey(bytes.fromhex(public)).verify(bytes.fromhex(message), bytes.fromhex(signature))


@pytest.mark.parametrize("point", SMALL_ORDER)
def test_small_order_and_non_canonical_keys_refused_at_import(point):
    with pytest.raises(InvalidPublicKey):
        VerifyKey(bytes.fromhex(point))


def test_wrong_lengths_refused():
    with pytest.raises(InvalidPublicKey):
        VerifyKey(b"\x01" * 31)
    with pytest.raises(InvalidSignature):
        SigningKey.generate().verify_key.verify(b"m", b"\x00" * 63)


def test_any_flipped_bit_fails():
    sk = SigningKey.generate()
    message = b"wmproof verification key"
    sig = sk.sign(message)
    vk = sk.verify_key
    for i in range(len(sig) * 8):
        bad = bytearray(sig)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(InvalidSignature):
            vk.verify(message, bytes(bad))
    with pytest.raises(InvalidSignature):
        vk.verify(message + b"!", sig)
    with pytest.raises(InvalidSignature):
        SigningKey.generate().verify_key.verify(message, sig)


def test_repr_hides_the_seed():
    sk = SigningKey(bytes(range(32)))
    assert bytes(range(32)).hex() not in repr(sk)
    assert "secret" in repr(sk)

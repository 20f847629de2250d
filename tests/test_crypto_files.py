"""T7: sealed files (secrets at rest), signed containers, and atomic 0600 writes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time

import nacl.pwhash
import pytest

from wmproof.crypto import (
    TEST_KDF,
    CryptoError,
    DecryptionFailed,
    IntegrityCheckFailed,
    InvalidSignature,
    KdfParametersRejected,
    KdfParams,
    MalformedContainer,
    PassphraseRequired,
    SigningKey,
    UnsafeDestination,
    canonical_decode,
    canonical_encode,
    open_signed_container,
    parse_container,
    seal,
    sign_container,
    unseal,
    write_atomic,
)
from wmproof.crypto.container import MAGIC

CONTENTS = {"master_seed": bytes(range(32)), "items": [1, 2, 3]}


def _flip(data: bytes, i: int) -> bytes:
    out = bytearray(data)
    out[i] ^= 0x01
    return bytes(out)


def test_sealed_round_trip_encrypted_and_not():
    blob = seal("test-secret", 1, CONTENTS, b"correct horse", public={"note": "hello"}, kdf=TEST_KDF)
    opened = unseal(blob, b"correct horse")
    assert opened.contents == CONTENTS and opened.encrypted and opened.header["note"] == "hello"
    assert bytes(range(32)) not in blob  # the secret is not in the clear
    plain = seal("test-secret", 1, CONTENTS, None)
    opened = unseal(plain, lambda: pytest.fail("no passphrase needed for an unencrypted file"))
    assert opened.contents == CONTENTS and not opened.encrypted


def test_wrong_passphrase_is_a_typed_error():
    blob = seal("test-secret", 1, CONTENTS, b"right", kdf=TEST_KDF)
    with pytest.raises(DecryptionFailed) as info:
        unseal(blob, b"wrong")
    assert "wrong passphrase" in str(info.value)
    with pytest.raises(PassphraseRequired):
        unseal(blob, None)
    with pytest.raises(PassphraseRequired):
        unseal(blob, lambda: b"")


def test_every_flipped_byte_is_detected():
    for passphrase in (b"pw", None):
        blob = seal("test-secret", 1, CONTENTS, passphrase, public={"k": 1}, kdf=TEST_KDF)
        for i in range(len(blob)):
            with pytest.raises(CryptoError):
                unseal(_flip(blob, i), b"pw")


def test_tampered_header_fails_even_with_the_right_passphrase():
    blob = seal("test-secret", 1, CONTENTS, b"pw", public={"owner": "alice"}, kdf=TEST_KDF)
    container = parse_container(blob)
    header = dict(container.header, owner="mallory")
    encoded = canonical_encode(header)
    forged = MAGIC + len(encoded).to_bytes(4, "big") + encoded + container.body
    with pytest.raises(DecryptionFailed):
        unseal(forged, b"pw")
    # An unencrypted file's integrity digest also covers the header.
    plain = parse_container(seal("test-secret", 1, CONTENTS, None, public={"owner": "alice"}))
    encoded = canonical_encode(dict(plain.header, owner="mallory"))
    with pytest.raises(IntegrityCheckFailed):
        unseal(MAGIC + len(encoded).to_bytes(4, "big") + encoded + plain.body, None)


@pytest.mark.parametrize(
    "overrides",
    [{"memlimit": 1 << 40}, {"opslimit": 10_000}, {"opslimit": 0}, {"memlimit": 1024}, {"opslimit": True}],
)
def test_kdf_parameters_over_the_cap_are_rejected_before_running(overrides, monkeypatch):
    blob = seal("test-secret", 1, CONTENTS, b"pw", kdf=TEST_KDF)
    container = parse_container(blob)
    header = dict(container.header)
    header["seal"] = dict(header["seal"], **overrides)
    encoded = canonical_encode(header)
    hostile = MAGIC + len(encoded).to_bytes(4, "big") + encoded + container.body
    calls = []
    monkeypatch.setattr(nacl.pwhash.argon2id, "kdf", lambda *a, **k: calls.append(1) or b"\x00" * 32)
    asked = []
    with pytest.raises(KdfParametersRejected):
        unseal(hostile, lambda: asked.append(1) or b"pw")
    assert calls == [] and asked == []  # neither the KDF nor the passphrase prompt ran


def test_default_kdf_is_argon2id_moderate_and_within_caps():
    KdfParams().check()
    assert KdfParams().memlimit == nacl.pwhash.argon2id.MEMLIMIT_MODERATE


def test_not_a_container():
    for data in (b"", b"PK\x03\x04 a zip file", MAGIC, MAGIC + b"\xff\xff\xff\xff", b'{"json": true}'):
        with pytest.raises(MalformedContainer):
            unseal(data, None)


def test_signed_container_round_trip_and_every_flipped_byte():
    sk = SigningKey.generate()
    blob = sign_container("test-statement", 1, {"root": b"\x01" * 32, "n": 100}, sk)
    doc = open_signed_container(blob)
    assert doc.statement == {"root": b"\x01" * 32, "n": 100}
    assert doc.signer == sk.verify_key and doc.kind == "test-statement"
    assert canonical_decode(doc.statement_bytes) == doc.statement
    for i in range(len(blob)):
        with pytest.raises(CryptoError):
            open_signed_container(_flip(blob, i))


def test_signed_container_digest_ignores_only_the_signature():
    sk = SigningKey.generate()
    a = open_signed_container(sign_container("k", 1, {"x": 1}, sk))
    b = open_signed_container(sign_container("k", 1, {"x": 1}, sk))
    c = open_signed_container(sign_container("k", 1, {"x": 2}, sk))
    d = open_signed_container(sign_container("k", 1, {"x": 1}, SigningKey.generate()))
    assert a.digest == b.digest and len({a.digest, c.digest, d.digest}) == 3


def test_signed_container_with_another_signer_swapped_in_fails():
    alice, mallory = SigningKey.generate(), SigningKey.generate()
    blob = sign_container("k", 1, {"x": 1}, alice)
    container = parse_container(blob)
    encoded = canonical_encode(dict(container.header, signer=bytes(mallory.verify_key)))
    with pytest.raises(InvalidSignature):
        open_signed_container(MAGIC + len(encoded).to_bytes(4, "big") + encoded + container.body)


def test_write_atomic_mode_0600_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "secret.bin", b"s3cret")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "secret.bin").st_mode) == 0o600
    assert (tmp_path / "secret.bin").read_bytes() == b"s3cret"
    write_atomic(tmp_path / "public.bin", b"p", mode=0o644)
    assert stat.S_IMODE(os.stat(tmp_path / "public.bin").st_mode) == 0o644


def test_write_atomic_refuses_overwrite_and_symlinks(tmp_path):
    target = tmp_path / "key"
    write_atomic(target, b"first")
    with pytest.raises(UnsafeDestination):
        write_atomic(target, b"second")
    assert target.read_bytes() == b"first"
    write_atomic(target, b"second", overwrite=True)
    assert target.read_bytes() == b"second"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    for overwrite in (False, True):
        with pytest.raises(UnsafeDestination):
            write_atomic(link, b"x", overwrite=overwrite)
    assert not (tmp_path / "elsewhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key", "link"]


def test_kill_mid_write_leaves_nothing(tmp_path):
    # The child blocks inside write_atomic after writing the bytes, before linking them into place.
    script = textwrap.dedent(
        f"""
        import os, sys, time
        real_fsync = os.fsync
        def slow_fsync(fd):
            real_fsync(fd)
            print("writing", flush=True)
            time.sleep(60)
        os.fsync = slow_fsync
        from wmproof.crypto import write_atomic
        write_atomic({str(tmp_path / "key")!r}, b"x" * 1_000_000)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.kill()
    child.wait()
    time.sleep(0.05)
    assert list(tmp_path.iterdir()) == []

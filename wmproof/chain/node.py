"""A real Ethereum node by URL, and the account that signs on it.

The account comes from a keystore file (the standard encrypted JSON, opened with a passphrase from a file or
a prompt) or from a private key in an environment variable; never from the command line, and it is never
logged or echoed. Transactions are signed locally and sent raw: the node never holds the key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ..errors import MalformedInput, UsageError, WrongPassphrase
from ..fileio import read_file

PRIVATE_KEY_ENV = "WMPROOF_ETH_PRIVATE_KEY"
#: Caps on a keystore's key-derivation parameters, checked before deriving: geth's "standard" scrypt is
#: n = 2**18, r = 8, p = 1 (256 MiB); a hostile file must not make us burn more.
MAX_SCRYPT_N = 1 << 18
MAX_SCRYPT_R = 8
MAX_SCRYPT_P = 4
MAX_PBKDF2_ROUNDS = 10_000_000
MAX_KEYSTORE_SIZE = 1 << 16


def redact_url(url: str) -> str:
    """``scheme://host:port`` of a node URL: paths and queries often carry API keys, so they are never shown."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def check_rpc_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--rpc-url must be an http:// or https:// URL, not {redact_url(url)!r}")


def connect_rpc(url: str, timeout: float = 30.0) -> Web3:
    """An HTTP(S) JSON-RPC connection (nothing is sent until the first call). Each call waits at most
    ``timeout`` seconds and is not retried by web3 (its default retries turned one silent node into 155 s of
    silence per command); the first failure is the command's answer (exit 4)."""
    check_rpc_url(url)
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))


def account_from_environment(variable: str = PRIVATE_KEY_ENV) -> LocalAccount | None:
    """The account whose hex private key is in ``$variable``, or None when the variable is unset."""
    value = os.environ.get(variable)
    if not value:
        return None
    try:
        return Account.from_key(value.strip())
    except Exception:
        raise UsageError(f"${variable} does not hold a valid private key (32 bytes, hex)") from None


def keystore_bytes(private_key: str | None, passphrase: bytes) -> tuple[bytes, str]:
    """A keystore file (Web3 Secret Storage v3, scrypt n = 2^18, r = 8, p = 1: eth-account's default and within
    what :func:`account_from_keystore` accepts) for ``private_key`` (hex), or for a new random account when
    None; and the account's address. The key never leaves this function unencrypted."""
    if not passphrase:
        raise UsageError("a keystore is encrypted: give a non-empty passphrase")
    try:
        account = Account.create() if private_key is None else Account.from_key(private_key.strip())
    except Exception:
        raise UsageError("the private key file does not hold a valid private key (32 bytes, hex)") from None
    document = Account.encrypt(account.key, passphrase.decode("utf-8"), kdf="scrypt", iterations=MAX_SCRYPT_N)
    return json.dumps(document, indent=1).encode() + b"\n", account.address


def account_from_keystore(path: Path, passphrase: Callable[[], bytes]) -> LocalAccount:
    """Decrypt a keystore file (Web3 Secret Storage, version 3), refusing over-large KDF parameters first."""
    data = read_file(path, "a keystore file", max_size=MAX_KEYSTORE_SIZE)
    try:
        document = json.loads(data)
        crypto = document.get("crypto") or document["Crypto"]
        kdf, kdfparams = crypto["kdf"], crypto["kdfparams"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MalformedInput(f"{path} is not an Ethereum keystore file") from None
    if kdf == "scrypt":
        n, r, p = kdfparams.get("n"), kdfparams.get("r"), kdfparams.get("p")
        if not all(type(v) is int and v > 0 for v in (n, r, p)):
            raise MalformedInput(f"{path}: malformed scrypt parameters")
        if n > MAX_SCRYPT_N or r > MAX_SCRYPT_R or p > MAX_SCRYPT_P:
            raise MalformedInput(f"{path}: refusing scrypt parameters above n=2^18, r=8, p=4")
    elif kdf == "pbkdf2":
        rounds = kdfparams.get("c")
        if type(rounds) is not int or not 0 < rounds <= MAX_PBKDF2_ROUNDS:
            raise MalformedInput(f"{path}: refusing pbkdf2 parameters (c must lie in 1..{MAX_PBKDF2_ROUNDS:,})")
    else:
        raise MalformedInput(f"{path}: unsupported keystore key derivation {kdf!r}")
    secret = passphrase()
    if not secret:
        raise UsageError(
            f"{path} is encrypted: give its passphrase with --keystore-passphrase-file, or run on a terminal"
        )
    try:
        key = Account.decrypt(document, secret.decode("utf-8"))
    except ValueError:
        raise WrongPassphrase(f"cannot open {path}: wrong passphrase, or the keystore was modified") from None
    except Exception:
        raise MalformedInput(f"{path}: damaged keystore file") from None
    return Account.from_key(key)

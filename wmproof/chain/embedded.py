"""The embedded default chain: eth-tester on py-evm, in process, persisted in a SQLite file.

With no node configured, ``wmproof publish`` and ``wmproof timestamp`` use this chain, so that the whole
workflow runs on a machine with no network. Its state lives in ``<data home>/embedded-chain.sqlite`` and
survives between invocations: a key published by one command is found by the next, with its original block
timestamp.

**It proves nothing to an outsider.** Whoever holds the file can rewrite it, blocks and timestamps
included; it is a local notebook, useful for trying wmproof and for tests. Evidence for a dispute needs a
public chain that the other side does not control (``--rpc-url``).

How it persists: py-evm 0.12 keeps its chain in a key-value ``BaseDB``; this module gives it one over a
SQLite table and rebuilds eth-tester's chain object on it (``type(chain)(AtomicDB(store))``; on first use
``from_genesis``). That relies on py-evm internals, which is why py-evm and eth-tester are pinned exactly
and ``tests/test_chain.py`` reopens a chain from another process. All writes of one command form one SQLite
transaction, committed only when the command succeeds: a failed or interrupted command leaves the chain as
it was. An exclusive lock on ``embedded-chain.lock`` serialises concurrent commands.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import sys
import time
from pathlib import Path
from types import TracebackType

from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, Web3

from ..errors import ChainUnavailable, FileAccessError

CHAIN_FILE = "embedded-chain.sqlite"
LOCK_FILE = "embedded-chain.lock"
#: Seconds a command waits for another to release the embedded chain.
LOCK_TIMEOUT = 60.0
#: eth-tester's first pre-funded development account (private key 0x00..01): public knowledge, which is
#: fine for a chain that proves nothing to anyone else.
DEV_ACCOUNT_KEY = (1).to_bytes(32, "big")


def default_data_home() -> Path:
    """Where wmproof keeps per-user state: ``$WMPROOF_HOME``, else ``$XDG_DATA_HOME/wmproof``, else
    ``~/.local/share/wmproof``."""
    if os.environ.get("WMPROOF_HOME"):
        return Path(os.environ["WMPROOF_HOME"])
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "wmproof"


class SqliteStore(BaseDB):
    """py-evm's key-value interface over one SQLite table. Writes join the connection's open transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get_meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def is_empty(self) -> bool:
        return self._db.execute("SELECT 1 FROM kv LIMIT 1").fetchone() is None

    def __getitem__(self, key: bytes) -> bytes:
        row = self._db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

    def __delitem__(self, key: bytes) -> None:
        if self._db.execute("DELETE FROM kv WHERE k = ?", (key,)).rowcount == 0:
            raise KeyError(key)

    def _exists(self, key: bytes) -> bool:
        return self._db.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None


class EmbeddedChain:
    """An open embedded chain (a context manager): ``web3``, a funded ``account``, and ``registry``, the
    address of the wmproof registry, deployed when the chain is created.

    ``create=False`` (lookups) refuses to create a chain that does not exist yet, so that looking something
    up never leaves a new chain behind.
    """

    def __init__(self, directory: Path | None = None, *, create: bool) -> None:
        self.directory = Path(directory) if directory is not None else default_data_home()
        self.path = self.directory / CHAIN_FILE
        self._create = create
        self._lock_fd: int | None = None
        self._db: sqlite3.Connection | None = None
        self.web3: Web3
        self.account: LocalAccount = Account.from_key(DEV_ACCOUNT_KEY)
        self.registry: str = ""
        self.created = False

    def __enter__(self) -> EmbeddedChain:
        if not self.path.exists() and not self._create:
            raise ChainUnavailable(self._none_yet())
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._take_lock(self._lock_fd)
            self._db = sqlite3.connect(self.path)
            store = SqliteStore(self._db)
            fresh = store.is_empty()
        except (OSError, sqlite3.Error) as exc:
            self._release()
            raise FileAccessError(f"cannot open the embedded chain {self.path}: {exc}") from None
        if fresh and not self._create:  # e.g. a first publication that was interrupted and rolled back
            self._release()
            raise ChainUnavailable(self._none_yet())
        try:
            self.web3 = _tester_web3(store, fresh)
            if fresh:
                from .registry import deploy_registry

                self.registry = deploy_registry(self.web3, self.account)
                store.set_meta("registry", self.registry)
                self.created = True
            else:
                registry = store.get_meta("registry")
                if registry is None:
                    raise ChainUnavailable(f"{self.path} is damaged: it names no registry contract")
                self.registry = registry
        except BaseException:
            self._release(commit=False)
            raise
        return self

    def _take_lock(self, fd: int) -> None:
        """The exclusive lock, waited for at most ``LOCK_TIMEOUT`` seconds, saying so on stderr once: another
        wmproof command holds the chain (a long publish, or one that hangs)."""
        deadline = time.monotonic() + LOCK_TIMEOUT
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ChainUnavailable(
                        f"the embedded chain in {self.directory} is in use by another wmproof command "
                        f"(waited {LOCK_TIMEOUT:.0f} s); try again once it has finished"
                    ) from None
                if not said:
                    print(
                        f"waiting for the embedded chain in {self.directory}: another wmproof command holds it "
                        f"(up to {LOCK_TIMEOUT:.0f} s)",
                        file=sys.stderr,
                    )
                    said = True
                time.sleep(0.1)

    def _none_yet(self) -> str:
        return (
            f"no embedded chain in {self.directory} yet: nothing was published from this machine "
            "(`wmproof publish` creates it; or give --rpc-url)"
        )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release(commit=exc_type is None)

    def _release(self, commit: bool = False) -> None:
        if self._db is not None:
            try:
                if commit:
                    self._db.commit()
                else:
                    self._db.rollback()
            finally:
                self._db.close()
                self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def _tester_web3(store: SqliteStore, fresh: bool) -> Web3:
    from eth_tester import EthereumTester, PyEVMBackend
    from eth_tester.backends.pyevm.main import generate_genesis_state_for_keys, get_default_genesis_params

    backend = PyEVMBackend()  # an in-memory chain; replaced below by one over the SQLite store
    chain_class = type(backend.chain)
    if fresh:
        backend.chain = chain_class.from_genesis(
            AtomicDB(store), get_default_genesis_params(), generate_genesis_state_for_keys(backend.account_keys)
        )
    else:
        backend.chain = chain_class(AtomicDB(store))
    return Web3(EthereumTesterProvider(EthereumTester(backend)))

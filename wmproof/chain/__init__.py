"""Timestamps on an Ethereum chain: the registry contract, the embedded default chain, a real node by URL.

A commitment proves ownership only if it provably existed before the dispute. Owners register a digest of
their verification key (see :mod:`wmproof.protocol.timestamps` for what exactly is registered) in the
``WmproofRegistry`` contract; anyone reads it back with its block timestamp.

Two kinds of chain, one interface (:func:`open_registry`):

* **embedded** (the default, no configuration): an in-process chain persisted in the user's data directory
  (:mod:`.embedded`). It makes the workflow run offline and **proves nothing to an outsider**.
* **a node by URL** (``--rpc-url`` / ``$WMPROOF_RPC_URL``): any Ethereum JSON-RPC node, with the registry's
  address (``--registry`` / ``$WMPROOF_REGISTRY``) and, to publish, an account (:mod:`.node`). This is the
  anchor that carries weight, as far as the chain itself is trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from ..errors import ChainUnavailable, UsageError
from .embedded import EmbeddedChain, default_data_home
from .node import check_rpc_url, connect_rpc, redact_url
from .registry import Registration, RegistryClient, chain_errors, deploy_registry

EMBEDDED_WARNING = (
    "the embedded chain lives in a file on this machine; its timestamps prove nothing to anyone else. "
    "Publish on a public chain (--rpc-url) for evidence."
)


@dataclass(frozen=True)
class ChainSettings:
    """Which chain to use and how. With no ``rpc_url``, the embedded chain in ``data_home``.

    ``account`` is called only when a transaction must be sent, so that reading needs no key.
    """

    rpc_url: str | None = None
    registry: str | None = None
    chain_id: int | None = None
    confirmations: int = 1
    data_home: Path | None = None
    account: Callable[[], LocalAccount | None] | None = None
    gas_limit: int | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.rpc_url is not None:
            check_rpc_url(self.rpc_url)
        if self.confirmations < 1:
            raise UsageError("--confirmations must be at least 1")

    @property
    def embedded(self) -> bool:
        return self.rpc_url is None

    def describe(self) -> str:
        if self.rpc_url is None:
            return f"embedded chain in {self.data_home or default_data_home()}"
        return f"node at {redact_url(self.rpc_url)}"


@contextmanager
def open_registry(settings: ChainSettings, *, write: bool) -> Iterator[RegistryClient]:
    """A checked :class:`RegistryClient` on the configured chain.

    ``write=True`` loads the account (a node) or creates the embedded chain if need be; ``write=False``
    never creates anything. On the embedded chain, the changes made inside the ``with`` block are kept only
    if it exits without an exception.
    """
    if settings.embedded:
        if settings.registry is not None:
            raise UsageError("--registry needs --rpc-url: the embedded chain has its own registry")
        with EmbeddedChain(settings.data_home, create=write) as chain:
            yield RegistryClient(
                chain.web3,
                chain.registry,
                network=settings.describe(),
                embedded=True,
                account=chain.account if write else None,
                expected_chain_id=settings.chain_id,
                confirmations=settings.confirmations,
                gas_limit=settings.gas_limit,
                timeout=settings.timeout,
            )
        return
    assert settings.rpc_url is not None
    if settings.registry is None:
        raise UsageError(
            "no registry address: give --registry ADDRESS or set WMPROOF_REGISTRY "
            "(deploy one with `wmproof chain deploy`)"
        )
    account = None
    if write:
        account = settings.account() if settings.account is not None else None
        if account is None:
            raise UsageError(
                "sending a transaction needs an account: --keystore FILE, or a private key in $WMPROOF_ETH_PRIVATE_KEY"
            )
    web3 = connect_rpc(settings.rpc_url, settings.timeout)
    yield RegistryClient(
        web3,
        settings.registry,
        network=settings.describe(),
        embedded=False,
        account=account,
        expected_chain_id=settings.chain_id,
        confirmations=settings.confirmations,
        gas_limit=settings.gas_limit,
        timeout=settings.timeout,
    )


def deploy_on_node(settings: ChainSettings) -> tuple[str, int]:
    """Deploy a registry on the configured node; return (address, chain id)."""
    if settings.embedded:
        raise UsageError("the embedded chain deploys its own registry: `wmproof chain deploy` needs --rpc-url")
    assert settings.rpc_url is not None
    account = settings.account() if settings.account is not None else None
    if account is None:
        raise UsageError("deploying needs an account: --keystore FILE, or a private key in $WMPROOF_ETH_PRIVATE_KEY")
    web3 = connect_rpc(settings.rpc_url, settings.timeout)
    with chain_errors(f"connecting to {settings.describe()}"):
        chain_id = int(web3.eth.chain_id)
    if settings.chain_id is not None and settings.chain_id != chain_id:
        raise ChainUnavailable(f"{settings.describe()} is chain {chain_id}, expected chain {settings.chain_id}")
    address = deploy_registry(web3, account, gas_limit=settings.gas_limit, timeout=settings.timeout)
    return address, chain_id


__all__ = [
    "EMBEDDED_WARNING",
    "ChainSettings",
    "Registration",
    "RegistryClient",
    "default_data_home",
    "deploy_on_node",
    "open_registry",
]

"""The registry client: deploy, register, and read back registrations that have been checked, not trusted.

A registration is reported only after every check below passes (security checklist rule 8):

1. the node's chain id is the one expected (the configured one, or the one a timestamp record names);
2. the code at the registry address is exactly the committed contract's runtime code;
3. the registration is read from the contract's **storage** (one packed slot per digest), not from a view
   function or an event alone;
4. exactly one ``Registered`` event for the digest exists in the block that storage names, and it agrees
   with storage on registrant, timestamp and block number;
5. the receipt of that event's transaction (by hash) succeeded, was sent to the registry, and lies in that
   block; the block, read by number, has that hash and that timestamp;
6. the block has at least the required number of confirmations (how final it is).

Failures to get an answer (node down, wrong chain, no contract, a reverted or out-of-gas transaction) raise
:class:`~wmproof.errors.ChainUnavailable`: "could not verify", never "not verified".
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3

from ..errors import ChainUnavailable, MalformedInput, UsageError
from .contract import EVENT_TOPIC, is_registry_code, registration_slot, registry_artifact, unpack_registration

UINT32_MAX = (1 << 32) - 1


@dataclass(frozen=True)
class Registration:
    """A registration of one digest, as read back and checked against storage, event, receipt and block."""

    digest: bytes
    registrant: str
    timestamp: int
    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    leaves: int  # 0: a single key's anchor; n >= 1: the Merkle root of a batch of n anchors
    chain_id: int
    registry: str
    confirmations: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest.hex(),
            "registrant": self.registrant,
            "timestamp": self.timestamp,
            "block_number": self.block_number,
            "block_hash": self.block_hash.hex(),
            "transaction_hash": self.transaction_hash.hex(),
            "leaves": self.leaves,
            "chain_id": self.chain_id,
            "registry": self.registry,
            "confirmations": self.confirmations,
        }


def _reason(exc: BaseException) -> str:
    """A one-line reason from whatever web3, eth-tester or the HTTP stack raised."""
    message = getattr(exc, "message", None) or (exc.args[0] if exc.args else "") or type(exc).__name__
    if isinstance(message, dict):  # a JSON-RPC error object
        message = message.get("message", str(message))
    text = " ".join(str(message).split())
    text = re.sub(r"https?://\S+", "<node>", text)  # node URLs may carry API keys
    return text[:300]


def _is_revert(exc: BaseException) -> bool:
    """A revert surfaces as web3's ContractLogicError from a node, eth-tester's TransactionFailed in process."""
    from eth_tester.exceptions import TransactionFailed
    from web3.exceptions import ContractLogicError

    return isinstance(exc, (ContractLogicError, TransactionFailed))


@contextmanager
def chain_errors(what: str) -> Iterator[None]:
    """Turn every failure of a chain operation into a one-line ``ChainUnavailable`` naming ``what``."""
    import requests
    from web3.exceptions import TimeExhausted, Web3Exception

    try:
        yield
    except (ChainUnavailable, MalformedInput):
        raise
    except TimeExhausted:
        raise ChainUnavailable(f"{what}: the transaction was not mined in time; look it up later") from None
    except requests.exceptions.RequestException as exc:
        raise ChainUnavailable(f"{what}: cannot reach the node ({type(exc).__name__})") from None
    except Exception as exc:
        if _is_revert(exc):
            raise ChainUnavailable(f"{what}: the transaction reverted ({_reason(exc)})") from None
        if isinstance(exc, (Web3Exception, ValueError, OSError)):
            raise ChainUnavailable(f"{what}: {_reason(exc)}") from None
        if isinstance(exc, (TypeError, KeyError, AttributeError, IndexError)):  # the node's answer is untrusted
            raise ChainUnavailable(f"{what}: the node answered something malformed ({type(exc).__name__})") from None
        raise


def send_transaction(
    web3: Web3, account: LocalAccount, call: Any, what: str, *, gas_limit: int | None = None, timeout: float = 120.0
) -> Any:
    """Sign ``call`` (a contract function or constructor) with ``account``, send it, wait for its receipt,
    and return the receipt of a successful transaction. Raises ``ChainUnavailable`` otherwise, saying
    whether it reverted (with the reason) or ran out of gas."""
    with chain_errors(what):
        params: dict[str, Any] = {
            "from": account.address,
            "nonce": web3.eth.get_transaction_count(account.address, "pending"),
            "chainId": web3.eth.chain_id,
        }
        if gas_limit is not None:
            needed = call.estimate_gas({"from": account.address})  # a revert shows here too
            if gas_limit < needed:
                raise UsageError(
                    f"{what}: --gas-limit {gas_limit:,} is below the {needed:,} gas the transaction needs; "
                    "it could never be mined"
                )
            params["gas"] = gas_limit
        transaction = call.build_transaction(params)  # estimates gas when no limit is given: a revert shows here
        signed = account.sign_transaction(transaction)
    # From here the transaction may be out: a failure says so, and how to find out, instead of "cannot reach".
    sent = f"{what}: transaction {bytes(signed.hash).hex()} may have been sent"
    with chain_errors(f"{sent}, but sending it failed; `wmproof timestamp` will show whether it was mined"):
        transaction_hash = web3.eth.send_raw_transaction(signed.raw_transaction)
    with chain_errors(f"{sent}; its receipt could not be read; `wmproof timestamp` will show whether it was mined"):
        receipt = web3.eth.wait_for_transaction_receipt(transaction_hash, timeout=timeout, poll_latency=0.05)
    if receipt["status"] == 1:
        return receipt
    if receipt["gasUsed"] >= transaction["gas"]:
        raise ChainUnavailable(
            f"{what}: the transaction ran out of gas (limit {transaction['gas']:,}; transaction "
            f"{bytes(transaction_hash).hex()})"
        )
    reason = "no reason given"
    try:
        call.call({"from": account.address}, block_identifier=receipt["blockNumber"] - 1)
    except Exception as exc:
        if _is_revert(exc):
            reason = _reason(exc)
    raise ChainUnavailable(f"{what}: the transaction reverted ({reason}; transaction {bytes(transaction_hash).hex()})")


def deploy_registry(web3: Web3, account: LocalAccount, *, gas_limit: int | None = None, timeout: float = 120.0) -> str:
    """Deploy the committed registry contract; return its address once its code is checked."""
    artifact = registry_artifact()
    factory = web3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = send_transaction(
        web3, account, factory.constructor(), "deploying the registry", gas_limit=gas_limit, timeout=timeout
    )
    address = to_checksum_address(receipt["contractAddress"])
    with chain_errors("deploying the registry"):
        code = web3.eth.get_code(address)
    if not is_registry_code(code):
        raise ChainUnavailable(f"deploying the registry: the code at {address} is not the registry's")
    return address


class RegistryClient:
    """A registry contract at a known address on a connected chain.

    Construction checks the chain id (when one is expected) and that the registry's code is at ``address``.
    ``account`` is needed only to register; ``confirmations`` is how many blocks (the registration's included)
    a registration needs before it is reported.
    """

    def __init__(
        self,
        web3: Web3,
        address: str,
        *,
        network: str,
        embedded: bool,
        account: LocalAccount | None = None,
        expected_chain_id: int | None = None,
        confirmations: int = 1,
        gas_limit: int | None = None,
        timeout: float = 120.0,
    ) -> None:
        if confirmations < 1:
            raise ValueError("confirmations >= 1")
        self.web3 = web3
        self.network = network
        self.embedded = embedded
        self.account = account
        self.confirmations = confirmations
        self.gas_limit = gas_limit
        self.timeout = timeout
        try:
            self.address = to_checksum_address(address)
        except ValueError:
            raise UsageError(
                f"the registry {address!r} (--registry, $WMPROOF_REGISTRY) is not an Ethereum address"
            ) from None
        with chain_errors(f"connecting to {network}"):
            self.chain_id = int(web3.eth.chain_id)
            code = bytes(web3.eth.get_code(self.address))
        self.check_chain_id(expected_chain_id)
        if not code:
            raise ChainUnavailable(f"no contract at {self.address} on chain {self.chain_id} ({network})")
        if not is_registry_code(code):
            raise ChainUnavailable(
                f"the contract at {self.address} on chain {self.chain_id} is not the wmproof registry (other code)"
            )
        self.contract = web3.eth.contract(address=self.address, abi=registry_artifact().abi)

    def check_chain_id(self, expected: int | None) -> None:
        if expected is not None and expected != self.chain_id:
            raise ChainUnavailable(f"{self.network} is chain {self.chain_id}, expected chain {expected}")

    # ------------------------------------------------------------------------------------------- writing

    def register(self, digest: bytes) -> bytes:
        """Register one digest; return the transaction hash (of a successful, mined transaction)."""
        return self._send(self.contract.functions.register(_digest(digest)), "registering the key")

    def register_batch(self, root: bytes, leaves: int) -> bytes:
        """Register the Merkle root of ``leaves`` digests in one transaction."""
        if not 1 <= leaves <= UINT32_MAX:
            raise ValueError("a batch has 1 to 2**32 - 1 leaves")
        return self._send(self.contract.functions.registerBatch(_digest(root), leaves), "registering the batch")

    def _send(self, call: Any, what: str) -> bytes:
        if self.account is None:
            raise ChainUnavailable(f"{what}: no account to send from")
        receipt = send_transaction(self.web3, self.account, call, what, gas_limit=self.gas_limit, timeout=self.timeout)
        return bytes(receipt["transactionHash"])

    # ------------------------------------------------------------------------------------------- reading

    def stored(self, digest: bytes) -> tuple[str, int, int] | None:
        """(registrant, timestamp, block number) read from the registry's storage, or None."""
        with chain_errors("reading the registry"):
            word = bytes(self.web3.eth.get_storage_at(self.address, registration_slot(_digest(digest))))
        registrant, timestamp, block_number = unpack_registration(word)
        if registrant == bytes(20):
            if timestamp or block_number:
                raise ChainUnavailable(f"the registry's storage for {digest.hex()[:16]} is inconsistent")
            return None
        return to_checksum_address(registrant), timestamp, block_number

    def confirm(self, digest: bytes, transaction_hash: bytes | None = None) -> Registration | None:
        """The checked registration of ``digest``, or None if the registry has none.

        ``transaction_hash``, when a record names one, must be the transaction that registered the digest.
        """
        stored = self.stored(digest)
        if stored is None:
            return None
        registrant, timestamp, block_number = stored
        what = f"checking the registration of {digest.hex()[:16]}"
        with chain_errors(what):
            logs = self.web3.eth.get_logs(
                {
                    "address": self.address,
                    "topics": ["0x" + EVENT_TOPIC.hex(), "0x" + digest.hex()],
                    "fromBlock": block_number,
                    "toBlock": block_number,
                }
            )
            if len(logs) != 1:
                raise ChainUnavailable(f"{what}: {len(logs)} events in block {block_number}, storage says 1")
            log = logs[0]
            event = _decode_event(log)
            if (event["registrant"], event["timestamp"], event["block_number"]) != stored:
                raise ChainUnavailable(f"{what}: the event and the registry's storage disagree")
            found_hash = bytes(log["transactionHash"])
            if transaction_hash is not None and found_hash != transaction_hash:
                raise MalformedInput(
                    f"the record names transaction {transaction_hash.hex()[:16]}, but the chain registered the "
                    f"digest in transaction {found_hash.hex()[:16]}"
                )
            receipt = self.web3.eth.get_transaction_receipt(found_hash)
            if (
                receipt["status"] != 1
                or receipt["to"] is None
                or to_checksum_address(receipt["to"]) != self.address
                or receipt["blockNumber"] != block_number
                or bytes(receipt["blockHash"]) != bytes(log["blockHash"])
                or not any(_same_log(entry, log) for entry in receipt["logs"])
            ):
                raise ChainUnavailable(f"{what}: the transaction receipt does not match the event")
            block = self.web3.eth.get_block(block_number)
            if bytes(block["hash"]) != bytes(receipt["blockHash"]) or block["timestamp"] != timestamp:
                raise ChainUnavailable(f"{what}: block {block_number} does not match the receipt (reorganised?)")
            head = int(self.web3.eth.block_number)
        confirmations = head - block_number + 1
        if confirmations < self.confirmations:
            raise ChainUnavailable(
                f"{what}: block {block_number} has {confirmations} of the {self.confirmations} confirmations "
                "required; not final yet, try again later"
            )
        return Registration(
            digest=digest,
            registrant=registrant,
            timestamp=timestamp,
            block_number=block_number,
            block_hash=bytes(block["hash"]),
            transaction_hash=found_hash,
            leaves=event["leaves"],
            chain_id=self.chain_id,
            registry=self.address,
            confirmations=confirmations,
        )

    # ------------------------------------------------------------------------------------------- blocks

    def block_hash(self, number: int) -> bytes | None:
        """The hash of block ``number`` once it has the required confirmations; None before that."""
        with chain_errors(f"reading block {number}"):
            head = int(self.web3.eth.block_number)
            if head - number + 1 < self.confirmations:
                return None
            return bytes(self.web3.eth.get_block(number)["hash"])

    def wait_for_block(self, number: int, timeout: float) -> bytes:
        """The hash of block ``number``, waiting for it (up to ``timeout`` seconds). The embedded chain only
        makes blocks for transactions, so there an empty block is mined."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.block_hash(number)
            if found is not None:
                return found
            if self.embedded:
                with chain_errors("mining a block"):
                    self.web3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
                continue
            if time.monotonic() >= deadline:
                raise ChainUnavailable(
                    f"block {number} was not mined (with {self.confirmations} confirmations) within {timeout:.0f} s; "
                    "is the node mining? (anvil makes blocks only for transactions unless run with --block-time 1)"
                )
            time.sleep(1.0)


def _digest(value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError("a digest is 32 bytes")
    return value


def _decode_event(log: Any) -> dict[str, Any]:
    topics = [bytes(t) for t in log["topics"]]
    data = bytes(log["data"])
    if len(topics) != 3 or topics[0] != EVENT_TOPIC or len(data) != 96:
        raise ChainUnavailable("a malformed Registered event")
    words = [int.from_bytes(data[i : i + 32], "big") for i in range(0, 96, 32)]
    return {
        "registrant": to_checksum_address(topics[2][12:]),
        "timestamp": words[0],
        "block_number": words[1],
        "leaves": words[2],
    }


def _same_log(a: Any, b: Any) -> bool:
    return (
        to_checksum_address(a["address"]) == to_checksum_address(b["address"])
        and [bytes(t) for t in a["topics"]] == [bytes(t) for t in b["topics"]]
        and bytes(a["data"]) == bytes(b["data"])
    )

"""T11: the registry contract and its client, run identically on the embedded chain and on a real anvil
node; what is specific to each (reopening the embedded chain from another process, keystores, an
unreachable node) at the end. Security checklist rule 8."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from eth_account import Account

from wmproof.chain import ChainSettings, RegistryClient, open_registry
from wmproof.chain.contract import registration_slot, registry_artifact, unpack_registration
from wmproof.errors import ChainUnavailable, MalformedInput, UsageError, WrongPassphrase
from wmproof.protocol.timestamps import (
    TimestampRecord,
    find_timestamp,
    key_anchor,
    parse_record,
    publish,
)

ROOT = Path(__file__).resolve().parents[1]


def digest(n: int) -> bytes:
    return n.to_bytes(32, "big")


def gas_used(client, transaction_hash: bytes) -> int:
    return client.web3.eth.get_transaction_receipt(transaction_hash)["gasUsed"]


# ------------------------------------------------------------------------------------------- the contract


def test_the_contract_rebuilds_byte_identically():
    """The committed artifact is what the pinned solc makes from the committed source (from any directory)."""
    result = subprocess.run(
        ["node", str(ROOT / "contracts" / "build.js"), "--check"], cwd="/", capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    import hashlib

    source = (ROOT / "contracts" / "WmproofRegistry.sol").read_bytes()
    assert registry_artifact().source_sha256 == hashlib.sha256(source).hexdigest()
    assert "0.8.37" in registry_artifact().compiler


def test_register_and_read_back(chain):
    with chain.client() as client:
        transaction = client.register(digest(1))
        registration = client.confirm(digest(1))
        assert registration is not None and registration.transaction_hash == transaction
        assert registration.registrant == client.account.address and registration.leaves == 0
        block = client.web3.eth.get_block(registration.block_number)
        assert registration.timestamp == block["timestamp"] and registration.block_hash == bytes(block["hash"])
        # Storage, the view function and the event agree; one slot per registration.
        view = client.contract.functions.lookup(digest(1)).call()
        assert tuple(view) == (registration.registrant, registration.timestamp, registration.block_number)
        slot = registration_slot(digest(1))
        word = bytes(client.web3.eth.get_storage_at(client.address, slot))
        assert unpack_registration(word)[1:] == (registration.timestamp, registration.block_number)
        assert int.from_bytes(client.web3.eth.get_storage_at(client.address, slot + 1), "big") == 0
        assert client.confirm(digest(2)) is None
        assert client.chain_id == registration.chain_id


def test_duplicates_revert_and_the_first_registration_stands(chain):
    with chain.client() as client:
        client.register(digest(7))
        first = client.confirm(digest(7))
        with pytest.raises(ChainUnavailable, match="digest already registered"):
            client.register(digest(7))
        with pytest.raises(ChainUnavailable, match="digest already registered"):
            client.register_batch(digest(7), 3)  # a root cannot take an existing digest either
        assert client.confirm(digest(7)) == dataclasses.replace(first, confirmations=first.confirmations)
        with pytest.raises(ChainUnavailable, match="zero digest"):
            client.register(bytes(32))
        with pytest.raises(ChainUnavailable, match="empty batch"):
            client._send(client.contract.functions.registerBatch(digest(8), 0), "registering")


def test_gas_targets(chain):
    """Issue targets: at most 50,000 gas per key alone, 2,000 per key in a batch of 100 (benchmarks/chain.py
    prints the figures)."""
    with chain.client() as client:
        # Digests like hashes (no zero bytes: the dearest calldata), not small integers.
        single = gas_used(client, client.register(b"\xff" * 32))
        batch = gas_used(client, client.register_batch(b"\xfe" * 32, 100))
        assert single <= 50_000, single
        assert batch / 100 <= 2_000, batch
        assert client.confirm(b"\xfe" * 32).leaves == 100


def test_a_gas_limit_below_the_estimate_is_refused_and_registers_nothing(chain):
    """A limit the transaction cannot fit in is refused before anything is sent (it used to be sent, and wait
    to run out of gas)."""
    from wmproof.errors import UsageError

    with chain.client(gas_limit=30_000) as client:
        with pytest.raises(UsageError, match="could never be mined"):
            client.register(digest(21))
        assert client.stored(digest(21)) is None


def test_wrong_chain_id_and_missing_registry_are_refused(chain):
    with chain.client() as client:
        chain_id = client.chain_id
        web3, account = client.web3, client.account
        with pytest.raises(ChainUnavailable, match=f"is chain {chain_id}, expected chain 5"):
            RegistryClient(web3, client.address, network="x", embedded=False, expected_chain_id=5)
        with pytest.raises(ChainUnavailable, match="no contract at"):
            RegistryClient(web3, "0x" + "11" * 20, network="x", embedded=False)
        with pytest.raises(ChainUnavailable, match="no contract at"):  # an account is not a registry
            RegistryClient(web3, account.address, network="x", embedded=False)
        # A contract that is not the registry: deploy some other code (a contract returning 0x00).
        from wmproof.chain.registry import send_transaction

        other = web3.eth.contract(abi=[], bytecode=bytes.fromhex("600a600c600039600a6000f3602a60005260206000f3"))
        receipt = send_transaction(web3, account, other.constructor(), "deploying")
        with pytest.raises(ChainUnavailable, match="is not the wmproof registry"):
            RegistryClient(web3, receipt["contractAddress"], network="x", embedded=False)
    with pytest.raises(ChainUnavailable, match="expected chain 5"):
        with chain.client(chain_id=5):
            pass


def test_confirmations(chain):
    with chain.client(confirmations=3) as client:
        client.register(digest(31))
        with pytest.raises(ChainUnavailable, match="1 of the 3 confirmations required"):
            client.confirm(digest(31))
    chain.mine(2)
    with chain.client(confirmations=3) as client:
        assert client.confirm(digest(31)).confirmations == 3


# ------------------------------------------------------------------------------ keys: publish and look up


@pytest.fixture
def keys(owner):
    from fractions import Fraction

    from wmproof.protocol import keygen

    return [
        keygen(owner, "adi-backdoor", items=20, num_classes=10, input_shape=(1, 28, 28), alpha=Fraction(1, 100))[1]
        for _ in range(3)
    ]


def test_publish_one_key_then_find_it(chain, keys):
    vk = keys[0]
    with chain.client() as client:
        assert find_timestamp(vk, client) is None
        (published,) = publish([vk], client)
        assert not published.already and published.timestamp.anchor == key_anchor(vk)
        found = find_timestamp(vk, client)
        assert found.registration.transaction_hash == published.timestamp.registration.transaction_hash
        record = parse_record(published.timestamp.record().to_bytes())
        assert find_timestamp(vk, client, record).timestamp == found.timestamp
        # Publishing again keeps the first timestamp.
        (again,) = publish([vk], client)
        assert again.already and again.timestamp.timestamp == found.timestamp
        with pytest.raises(UsageError, match="another key"):
            find_timestamp(keys[1], client, record)


def test_publish_a_batch_and_check_each_record(chain, keys):
    with chain.client() as client:
        published = publish(keys, client)
        transactions = {p.timestamp.registration.transaction_hash for p in published}
        assert len(transactions) == 1 and published[0].timestamp.registration.leaves == 3
        records = [parse_record(p.timestamp.record().to_bytes()) for p in published]
        for vk, record in zip(keys, records, strict=True):
            assert find_timestamp(vk, client) is None  # a batched key is found through its record
            found = find_timestamp(vk, client, record)
            assert found.batch.size == 3 and found.timestamp == published[0].timestamp.timestamp
        record = records[1]
        bad_path = dataclasses.replace(
            record, batch=dataclasses.replace(record.batch, path=(bytes(32),) + record.batch.path[1:])
        )
        with pytest.raises(MalformedInput, match="inclusion path"):
            find_timestamp(keys[1], client, bad_path)
        with pytest.raises(MalformedInput, match="disagrees with the chain"):
            find_timestamp(keys[1], client, dataclasses.replace(record, timestamp=record.timestamp - 3600))
        with pytest.raises(MalformedInput, match="names transaction"):
            find_timestamp(keys[1], client, dataclasses.replace(record, transaction_hash=bytes(32)))
        with pytest.raises(ChainUnavailable, match="is for chain 1"):
            find_timestamp(keys[1], client, dataclasses.replace(record, chain_id=1))
        with pytest.raises(ChainUnavailable, match="names registry"):
            find_timestamp(keys[1], client, dataclasses.replace(record, registry=b"\x11" * 20))
        # A batch leaf posing as a single-key record: the chain says "a batch of 3".
        with pytest.raises(MalformedInput):
            find_timestamp(keys[1], client, dataclasses.replace(record, batch=None))


def test_a_front_runner_only_timestamps_the_owners_key(chain, keys):
    """Someone who copies the anchor from the mempool and registers it first gains nothing: the digest binds
    the owner's key, and the owner's publish reports the earlier registration as the key's timestamp."""
    vk = keys[0]
    with chain.client() as client:
        thief = RegistryClient(
            client.web3,
            client.address,
            network=client.network,
            embedded=client.embedded,
            account=Account.from_key(chain.other_key),
        )
        thief.register(key_anchor(vk))
        (published,) = publish([vk], client)
        assert published.already and published.timestamp.registration.registrant == thief.account.address
        assert find_timestamp(vk, client).verification_key.owner == vk.owner


def test_record_files_are_parsed_strictly(chain, keys):
    from helpers import flip_bit

    with chain.client() as client:
        (published,) = publish(keys[:1], client)
    data = published.timestamp.record().to_bytes()
    assert isinstance(parse_record(data), TimestampRecord)
    for bit in range(0, 8 * len(data), 7):
        try:
            parsed = parse_record(flip_bit(data, bit))
        except MalformedInput:
            continue
        # A flip that still parses changes a checked field: it is caught against the chain and the key.
        with chain.client() as client, pytest.raises((MalformedInput, ChainUnavailable, UsageError)):
            find_timestamp(keys[0], client, parsed)
    with pytest.raises(MalformedInput):
        parse_record(data + b"\x00")


# ------------------------------------------------------------------------------------- the embedded chain


def test_the_embedded_chain_persists_across_processes(tmp_path, owner):
    """A key published in one process is found, with the same timestamp and transaction, by another."""
    from fractions import Fraction

    from wmproof.protocol import keygen, save_verification_key

    _, vk = keygen(owner, "adi-backdoor", items=20, num_classes=10, input_shape=(1, 28, 28), alpha=Fraction(1, 100))
    save_verification_key(vk, tmp_path / "k.wvk")
    env = {**os.environ, "WMPROOF_HOME": str(tmp_path / "home")}

    def cli(*args: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "wmproof_cli.main", *args, "--json"], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "prove nothing to anyone else" in out.stderr
        return json.loads(out.stdout)

    published = cli("publish", str(tmp_path / "k.wvk"))["keys"][0]
    found = cli("timestamp", str(tmp_path / "k.wvk"))
    assert (found["timestamp"], found["transaction_hash"], found["block_number"]) == (
        published["timestamp"],
        published["transaction_hash"],
        published["block_number"],
    )
    assert found["embedded"] is True and found["proves_to_outsiders"] is False


def test_a_failed_command_leaves_the_embedded_chain_unchanged(tmp_path):
    settings = ChainSettings(data_home=tmp_path)
    with open_registry(settings, write=True):
        pass  # create it
    with pytest.raises(RuntimeError), open_registry(settings, write=True) as client:
        client.register(digest(41))
        assert client.stored(digest(41)) is not None
        raise RuntimeError("interrupted after the transaction")
    with open_registry(settings, write=False) as client:
        assert client.stored(digest(41)) is None


def test_looking_up_never_creates_a_chain(tmp_path):
    with pytest.raises(ChainUnavailable, match="nothing was published"):
        with open_registry(ChainSettings(data_home=tmp_path / "none"), write=False):
            pass
    assert not (tmp_path / "none").exists()
    # A first publication interrupted before it committed leaves an empty file: still no chain to read.
    with pytest.raises(KeyboardInterrupt), open_registry(ChainSettings(data_home=tmp_path / "cut"), write=True):
        raise KeyboardInterrupt
    for _ in range(2):  # and looking twice does not create one either
        with pytest.raises(ChainUnavailable, match="nothing was published"):
            with open_registry(ChainSettings(data_home=tmp_path / "cut"), write=False):
                pass
    with pytest.raises(UsageError, match="--registry needs --rpc-url"):
        with open_registry(ChainSettings(data_home=tmp_path, registry="0x" + "11" * 20), write=False):
            pass


# ------------------------------------------------------------------------------------------- a real node


def test_an_unreachable_node_is_a_chain_error():
    closed = ChainSettings(rpc_url="http://127.0.0.1:9/secret-api-key", registry="0x" + "11" * 20, timeout=2)
    with pytest.raises(ChainUnavailable, match="cannot reach the node") as info:
        with open_registry(closed, write=False):
            pass
    assert "secret-api-key" not in str(info.value)
    with pytest.raises(UsageError, match="no registry address"):
        with open_registry(dataclasses.replace(closed, registry=None), write=False):
            pass
    with pytest.raises(UsageError, match="needs an account"):
        with open_registry(closed, write=True):
            pass


def test_keystore_accounts(tmp_path, anvil):
    from wmproof.chain.anvil import ANVIL_DEV_KEY
    from wmproof.chain.node import account_from_keystore

    keystore = Account.encrypt(ANVIL_DEV_KEY, "pass phrase", kdf="scrypt", iterations=2**10)
    path = tmp_path / "key.json"
    path.write_text(json.dumps(keystore))
    account = account_from_keystore(path, lambda: b"pass phrase")
    assert account.key == Account.from_key(ANVIL_DEV_KEY).key
    with pytest.raises(WrongPassphrase):
        account_from_keystore(path, lambda: b"wrong")
    with pytest.raises(UsageError, match="encrypted"):
        account_from_keystore(path, lambda: b"")
    hostile = json.loads(json.dumps(keystore))
    hostile["crypto"]["kdfparams"]["n"] = 2**22  # 4 GiB of scrypt memory: refused before deriving
    path.write_text(json.dumps(hostile))
    with pytest.raises(MalformedInput, match="refusing scrypt parameters"):
        account_from_keystore(path, lambda: b"pass phrase")
    path.write_text("{}")
    with pytest.raises(MalformedInput, match="not an Ethereum keystore"):
        account_from_keystore(path, lambda: b"pass phrase")


# ------------------------------------------------------------------------------------------------ beacon


def _beacon_key(owner, client):
    from wmproof.protocol import commit_key
    from wmproof.protocol.timestamps import draw_beacon_key

    pending = commit_key(
        owner, "adi-backdoor", items=20, num_classes=10, input_shape=(1, 28, 28), alpha=Fraction(1, 100)
    )
    return pending, *draw_beacon_key(pending, client, timeout=30)


@pytest.fixture
def ticking_chain(request, tmp_path):
    """A chain whose blocks come on their own on anvil (one a second, like a public chain), or the embedded
    chain, which mines the beacon block itself."""
    from wmproof.chain import deploy_on_node
    from wmproof.chain.anvil import ANVIL_DEV_KEY, run_anvil

    if request.param == "embedded":
        yield ChainSettings(data_home=tmp_path / "home")
        return
    with run_anvil("--block-time", "1") as node:
        settings = ChainSettings(rpc_url=node.url, account=lambda: Account.from_key(ANVIL_DEV_KEY))
        address, _ = deploy_on_node(settings)
        yield dataclasses.replace(settings, registry=address)


@pytest.mark.parametrize("ticking_chain", ["embedded", "anvil"], indirect=True)
def test_a_beacon_key_is_drawn_from_the_next_block_and_checked_on_chain(ticking_chain, owner):
    from wmproof.protocol import open_key, parse_verification_key
    from wmproof.protocol.timestamps import check_beacon, key_anchor

    with open_registry(ticking_chain, write=True) as client:
        pending, mk, vk, found = _beacon_key(owner, client)
        b = vk.beacon
        assert b.beacon_block == b.registered_block + 1 == found.registration.block_number + 1
        assert b.beacon_hash == bytes(client.web3.eth.get_block(b.beacon_block)["hash"])
        assert vk.grinding_bits == 0 and key_anchor(vk) != key_anchor(dataclasses.replace(vk, beacon=None))
        assert parse_verification_key(vk.raw).beacon == b
        assert find_timestamp(vk, client).timestamp == found.timestamp
        # An owner who picks the beacon (grinding it offline) makes a self-consistent key that the chain refutes.
        common = dict(chain_id=client.chain_id, registry=b.registry)
        _, forged = open_key(pending, **common, registered_block=b.registered_block, beacon_hash=bytes(32))
        with pytest.raises(MalformedInput, match="not the hash of block"):
            find_timestamp(forged, client)
        _, late = open_key(pending, **common, registered_block=b.registered_block + 3, beacon_hash=b.beacon_hash)
        with pytest.raises(MalformedInput, match="says its commitment was registered in block"):
            find_timestamp(late, client)
        _, other = open_key(pending, chain_id=5, registry=b.registry, registered_block=b.registered_block,
                            beacon_hash=b.beacon_hash)  # fmt: skip
        with pytest.raises(ChainUnavailable, match="beacon is on chain 5"):
            check_beacon(other, client, client.confirm(key_anchor(vk)))
        # A commitment that was never registered: no beacon key can be checked from it.
        fresh, *_ = _beacon_key(owner, client)
        _, unregistered = open_key(fresh, **common, registered_block=1, beacon_hash=bytes(32))
        object.__setattr__(unregistered.beacon, "commitment_id", bytes(32))
        with pytest.raises(MalformedInput, match="commitment is not registered"):
            find_timestamp(unregistered, client)

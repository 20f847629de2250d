"""Chain costs, measured side by side in one run: gas (exact) and latency (noisy: compare ratios).

Gas (issue 4 targets): one key alone <= 50,000 gas; a key in a batch of 100 <= 2,000 gas. Measured on the
embedded chain (py-evm) and on anvil, which must agree to the unit: both run the same committed bytecode.

Latency of one registration, sent and read back with every check of ``RegistryClient.confirm``, on three
chains, interleaved round by round: the embedded chain (py-evm over SQLite), the same py-evm chain in memory
(what the SQLite store costs), and anvil over HTTP. Plus publishing 100 keys as one batch against 100 single
publications (``wmproof.protocol.timestamps.publish``), and the cost of opening the embedded chain.

    python benchmarks/chain.py            # needs `npm ci` (anvil); about 30 s
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from eth_account import Account
from web3 import EthereumTesterProvider, Web3

from wmproof.chain import ChainSettings, RegistryClient, deploy_on_node, open_registry
from wmproof.chain.anvil import ANVIL_DEV_KEY, run_anvil
from wmproof.chain.embedded import DEV_ACCOUNT_KEY
from wmproof.chain.registry import deploy_registry
from wmproof.protocol import Identity, keygen
from wmproof.protocol.timestamps import publish

SINGLE_TARGET = 50_000
BATCH_TARGET_PER_KEY = 2_000


def gas(client: RegistryClient, transaction_hash: bytes) -> int:
    return int(client.web3.eth.get_transaction_receipt(transaction_hash)["gasUsed"])


def round_trip(client: RegistryClient, digest: bytes) -> float:
    t0 = time.perf_counter()
    client.register(digest)
    assert client.confirm(digest) is not None
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {}

    def fresh() -> bytes:
        return os.urandom(32)  # like a hash: calldata gas depends on how many bytes are zero

    with tempfile.TemporaryDirectory() as home, run_anvil() as node:
        node_settings = ChainSettings(rpc_url=node.url, account=lambda: Account.from_key(ANVIL_DEV_KEY))
        registry, _ = deploy_on_node(node_settings)
        node_settings = ChainSettings(
            rpc_url=node.url, registry=registry, account=lambda: Account.from_key(ANVIL_DEV_KEY)
        )
        memory_web3 = Web3(EthereumTesterProvider())
        memory_account = Account.from_key(DEV_ACCOUNT_KEY)
        memory = RegistryClient(
            memory_web3,
            deploy_registry(memory_web3, memory_account),
            network="py-evm in memory",
            embedded=True,
            account=memory_account,
        )
        embedded_settings = ChainSettings(data_home=Path(home))

        # Gas, on both real chains.
        for name, settings in (("embedded", embedded_settings), ("anvil", node_settings)):
            with open_registry(settings, write=True) as client:  # the same two hash-like digests on both
                single = gas(client, client.register(hashlib.sha256(b"single").digest()))
                batch = gas(client, client.register_batch(hashlib.sha256(b"batch").digest(), 100))
            results[f"gas_{name}"] = {"single": single, "batch_of_100": batch, "per_key_in_batch": batch / 100}

        # Latency, interleaved.
        times: dict[str, list[float]] = {"embedded (SQLite)": [], "py-evm in memory": [], "anvil (HTTP)": []}
        opens = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            with open_registry(embedded_settings, write=True) as client:
                opens.append(time.perf_counter() - t0)
                times["embedded (SQLite)"].append(round_trip(client, fresh()))
            times["py-evm in memory"].append(round_trip(memory, fresh()))
            with open_registry(node_settings, write=True) as client:
                times["anvil (HTTP)"].append(round_trip(client, fresh()))
        medians = {name: statistics.median(values) for name, values in times.items()}
        results["round_trip_ms"] = {name: round(1000 * value, 1) for name, value in medians.items()}
        results["open_embedded_ms"] = round(1000 * statistics.median(opens), 1)

        # 100 keys: one batch against 100 single publications, on the embedded chain.
        owner = Identity.generate("benchmark")
        keys = [
            keygen(owner, "adi-backdoor", items=20, num_classes=10, input_shape=(1, 28, 28), alpha=Fraction(1, 100))[1]
            for _ in range(200)
        ]
        with open_registry(embedded_settings, write=True) as client:
            t0 = time.perf_counter()
            publish(keys[:100], client)
            batched = time.perf_counter() - t0
            t0 = time.perf_counter()
            for vk in keys[100:]:
                publish([vk], client)
            singles = time.perf_counter() - t0
        results["publish_100_keys_s"] = {"one_batch": round(batched, 3), "100_singles": round(singles, 3)}

    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name in ("embedded", "anvil"):
        g = results[f"gas_{name}"]
        print(
            f"gas on {name:<8}: one key {g['single']:,} (target <= {SINGLE_TARGET:,}, "
            f"{g['single'] / SINGLE_TARGET:.2f} of it); batch of 100 {g['batch_of_100']:,} = "
            f"{g['per_key_in_batch']:,.0f} per key (target <= {BATCH_TARGET_PER_KEY:,}, "
            f"{g['per_key_in_batch'] / BATCH_TARGET_PER_KEY:.2f} of it)"
        )
    base = medians["py-evm in memory"]
    print(f"register + checked read-back, median of {args.rounds} interleaved rounds:")
    for name, value in medians.items():
        print(f"  {name:<18} {1000 * value:7.1f} ms   ratio to in-memory py-evm {value / base:.2f}")
    print(f"opening the embedded chain: {results['open_embedded_ms']} ms (median)")
    p = results["publish_100_keys_s"]
    print(
        f"publishing 100 keys on the embedded chain: one batch {p['one_batch']:.2f} s, 100 singles "
        f"{p['100_singles']:.2f} s (x{p['100_singles'] / p['one_batch']:.0f})"
    )


if __name__ == "__main__":
    main()

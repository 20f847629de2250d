"""Shared fixtures. Models are trained for real on MNIST subsets (seconds), once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from wmproof.engine.data import resolve_data_dir

DATA_HINT = "the test suite reads real MNIST from ../shared/data (or $WMPROOF_DATA); it is not downloaded"


CHAIN_ENVIRONMENT = (
    "WMPROOF_RPC_URL",
    "WMPROOF_REGISTRY",
    "WMPROOF_CHAIN_ID",
    "WMPROOF_KEYSTORE",
    "WMPROOF_ETH_PRIVATE_KEY",
)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own data home (so its own embedded chain) and no chain settings from the
    environment: nothing a test does touches the user's ~/.local/share/wmproof."""
    monkeypatch.setenv("WMPROOF_HOME", str(tmp_path_factory.mktemp("home")))
    for name in CHAIN_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    # One thread count for the whole run: the CLI's default follows the machine's load, and a count that
    # changed between two in-process commands would change their float sums (tests/test_engine.py tests the
    # default itself).
    monkeypatch.setenv("WMPROOF_THREADS", SESSION_THREADS)


def _session_threads() -> str:
    import torch

    return str(torch.get_num_threads())


SESSION_THREADS = _session_threads()


@pytest.fixture(autouse=True)
def _capture(capsys):
    """Lets ``helpers.run`` read what a CLI command printed."""
    import helpers

    helpers.capsys = capsys


@pytest.fixture(scope="session")
def data_dir() -> Path:
    try:
        return resolve_data_dir()
    except Exception as exc:  # fail loudly: a silent skip would hide every model-level test
        pytest.fail(f"{exc} -- {DATA_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def mnist(data_dir):
    from wmproof.engine.data import load_image_dataset

    return load_image_dataset("mnist", "train", data_dir), load_image_dataset("mnist", "test", data_dir)


@pytest.fixture(scope="session")
def owner():
    from wmproof.protocol import Identity

    return Identity.generate("test owner")


@pytest.fixture(scope="session")
def keypair(owner):
    from wmproof.protocol import keygen

    return keygen(owner, "adi-backdoor", items=50, num_classes=10, input_shape=(1, 28, 28))


@pytest.fixture(scope="session")
def trained(mnist, keypair, tmp_path_factory):
    """A clean MLP, the same model marked with ``keypair`` (PreTrained), and an independent clean MLP,
    trained on the first 10,000 MNIST images and saved as files."""
    import torch

    from wmproof.engine.models import load_model, save_model
    from wmproof.engine.train import recipe_config, train_new_model
    from wmproof.protocol import mark

    train, _ = mnist
    small = train.subset(10_000)
    out = tmp_path_factory.mktemp("models")
    device = torch.device("cpu")
    paths = {}
    for name, seed in (("clean", 0), ("independent", 1)):
        model, args, _ = train_new_model(
            "mnist_mlp",
            {},
            small.images,
            small.labels,
            10,
            recipe_config("mnist_mlp", epochs=2, seed=seed),
            device,
            progress=False,
        )
        paths[name] = out / f"{name}.safetensors"
        save_model(model, paths[name], "mnist_mlp", args)
    mk, _ = keypair
    result = mark(
        mk,
        embedding="pretrained",
        train_images=small.images,
        train_labels=small.labels,
        dataset_classes=10,
        base_model=load_model(paths["clean"]),
        config=recipe_config("mnist_mlp", epochs=20, seed=2, triggers_per_batch=8),
        device=device,
        progress=False,
    )
    assert result.trigger_accuracy >= 0.95, result.trigger_accuracy
    paths["marked"] = out / "marked.safetensors"
    save_model(result.model, paths["marked"], result.architecture, result.arguments)
    return paths


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# ------------------------------------------------------------------------------------------------ chains

ANVIL_SECOND_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil's account 1
TESTER_SECOND_KEY = (2).to_bytes(32, "big")  # eth-tester's second pre-funded account


@pytest.fixture(scope="session")
def anvil():
    """A real anvil node on 127.0.0.1 (from node_modules, installed by `make test`), one per session."""
    from wmproof.chain.anvil import run_anvil
    from wmproof.errors import UsageError

    try:
        with run_anvil() as node:
            yield node
    except UsageError as exc:  # not a skip: the chain suite must run against a real node
        pytest.fail(f"{exc} (`make test` runs `npm ci`)", pytrace=False)


@dataclass
class Chain:
    """One chain under test: how to reach it, and a second funded account (a front-runner)."""

    kind: str
    settings: object  # ChainSettings
    other_key: bytes | str

    def mine(self, blocks: int) -> None:
        from wmproof.chain import open_registry

        with open_registry(self.settings, write=True) as client:
            for _ in range(blocks):
                client.web3.provider.make_request("evm_mine", [])

    def client(self, **changes):
        import dataclasses

        from wmproof.chain import open_registry

        return open_registry(dataclasses.replace(self.settings, **changes), write=True)


@pytest.fixture(params=["embedded", "anvil"])
def chain(request, tmp_path) -> Chain:
    """T11: the same tests on the embedded chain and on anvil (a fresh registry per test)."""
    from eth_account import Account

    from wmproof.chain import ChainSettings, deploy_on_node
    from wmproof.chain.anvil import ANVIL_DEV_KEY

    if request.param == "embedded":
        return Chain("embedded", ChainSettings(data_home=tmp_path / "home"), TESTER_SECOND_KEY)
    node = request.getfixturevalue("anvil")
    settings = ChainSettings(rpc_url=node.url, account=lambda: Account.from_key(ANVIL_DEV_KEY))
    address, _ = deploy_on_node(settings)
    import dataclasses

    return Chain("anvil", dataclasses.replace(settings, registry=address), ANVIL_SECOND_KEY)

"""The attack suite beyond weight edits, on real MNIST: model extraction through a live prediction API (counted at
the server), the fine-tuning family (Adi et al. 5.4), transfer learning and ownership piracy (5.5), neuron
pruning and fine-pruning (Liu et al. 2018). Each test checks what the attack must do, so that a wrong attack
fails it: which tensors change, which units go, what the server was asked and how often."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import run, sigint_default

from wmproof.attacks import ATTACKS, get_attack, run_attack
from wmproof.attacks.base import AttackContext
from wmproof.engine.models import build_model, load_model
from wmproof.engine.train import predict_labels
from wmproof.errors import FileAccessError, UsageError
from wmproof.oracles.local import LocalModelOracle
from wmproof.oracles.modes import LabelOnly, QuantizedPosteriors
from wmproof.oracles.remote import RemoteOracle
from wmproof.oracles.server import InferenceServer
from wmproof.protocol import save_marking_key, save_verification_key

CPU = torch.device("cpu")
OUTPUT = {"net.7.weight", "net.7.bias"}  # the MLP's output layer (models.MnistMLP.output_layer)


def context(data_dir, seed: int = 0) -> AttackContext:
    return AttackContext(CPU, seed=seed, data_dir=data_dir, progress=False)


def snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, after: dict) -> set[str]:
    assert before.keys() == after.keys()
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.fixture
def victim(trained):
    return load_model(trained["marked"], CPU)


@pytest.fixture(scope="module")
def test_x(mnist):
    _, test = mnist
    return torch.from_numpy(test.images.astype(np.float32) / 255.0)


# --------------------------------------------------------------------------------------- parameters, data


def test_parameters_are_parsed_and_checked_before_any_work():
    attack = get_attack("extract")
    options = attack.options({"queries": "300", "labels": "hard", "lr": "0.01"})
    assert options["queries"] == 300 and options["labels"] == "hard" and options["lr"] == 0.01
    assert options["arch"] is None and options["agreement"] == 2000  # defaults
    for given, message in (
        ({"queries": "many"}, "queries must be an int"),
        ({"queries": "0"}, "at least 1"),
        ({"labels": "soft-ish"}, "one of auto, soft, hard"),
        ({"lr": "0"}, "above 0"),
        ({"lr": "nan"}, "finite"),
        ({"budget": "1"}, "no parameter budget"),
    ):
        with pytest.raises(UsageError, match=message):
            attack.options(given)
    with pytest.raises(UsageError, match="below 1"):
        get_attack("neuron-prune").options({"rate": 1.0})


def test_an_attack_on_the_weights_refuses_an_api(trained, data_dir):
    with InferenceServer(LocalModelOracle.from_file(trained["marked"], "cpu"), "m") as server:
        with pytest.raises(UsageError, match="needs the model file"):
            run_attack("ftll", RemoteOracle(server.url, "m"), context(data_dir))


def test_the_adversary_s_data_are_the_last_images(mnist, data_dir):
    train, _ = mnist
    ctx = context(data_dir)
    mine = ctx.attacker_data(500)
    assert np.array_equal(mine.images, train.images[-500:]) and np.array_equal(mine.labels, train.labels[-500:])
    given = AttackContext(CPU, images=train.images[:1000], labels=train.labels[:1000])
    assert np.array_equal(given.attacker_data(10).images, train.images[990:1000])
    with pytest.raises(UsageError, match="asks for 2000"):
        given.attacker_data(2000)


def test_attack_modules_import_without_torch():
    """The CLI lists attacks and builds their options on an install without torch."""
    modules = sorted({path.split(":")[0] for path in ATTACKS.values()})
    code = f"import sys; import {', '.join(modules)}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------------------- fine-tuning family


def test_ftll_and_rtll_change_the_output_layer_and_nothing_else(trained, data_dir):
    for name in ("ftll", "rtll"):
        victim = load_model(trained["marked"], CPU)
        before = snapshot(victim.module)
        result = run_attack(name, victim, context(data_dir), {"images": 2000, "epochs": 1})
        assert changed(before, snapshot(result.model)) == OUTPUT, name
        assert result.summary["trained"] == "net.7" and result.summary["test_accuracy_after"] > 0.85


def test_ftll_leaves_batch_normalisation_statistics_alone(data_dir):
    """A network with batch normalisation: training the output layer alone must not move the running
    statistics of the frozen layers either (they change in training mode, without any gradient)."""
    from wmproof.engine.models import LoadedModel, normalise_arguments

    torch.manual_seed(0)
    arguments = normalise_arguments("resnet_small", {"depth": 8})
    module = build_model("resnet_small", **arguments)
    before = snapshot(module)
    victim = LoadedModel(module, "resnet_small", arguments, sha256="")
    result = run_attack("ftll", victim, context(data_dir), {"images": 256, "epochs": 1})
    assert changed(before, snapshot(result.model)) == {"head.2.weight", "head.2.bias"}


def test_rtll_reinitialises_exactly_the_output_layer_and_ftll_does_not(trained, data_dir):
    """With a vanishing learning rate, what is left is the starting point: RTLL's output layer is a fresh
    initialisation (the one its seed gives), FTLL's is the marked model's."""
    for name, reinitialised in (("ftll", False), ("rtll", True), ("rtal", True), ("ftal", False)):
        victim = load_model(trained["marked"], CPU)
        fresh = copy.deepcopy(victim.module.net[7])
        torch.manual_seed(3)
        fresh.reset_parameters()
        before = snapshot(victim.module)
        result = run_attack(name, victim, context(data_dir, seed=3), {"images": 500, "epochs": 1, "lr": 1e-9})
        head = result.model.net[7]
        start = fresh.weight if reinitialised else before["net.7.weight"]
        assert torch.allclose(head.weight, start, atol=1e-6), name
        assert not torch.allclose(head.weight, before["net.7.weight"] if reinitialised else fresh.weight, atol=1e-3)
        assert result.summary["reinitialised"] == ("net.7" if reinitialised else None)


def test_ftal_and_rtal_train_every_layer(trained, data_dir):
    for name in ("ftal", "rtal"):
        victim = load_model(trained["marked"], CPU)
        before = snapshot(victim.module)
        result = run_attack(name, victim, context(data_dir), {"images": 2000, "epochs": 1})
        assert changed(before, snapshot(result.model)) == set(before), name
        assert result.summary["test_accuracy_after"] > 0.85


# ---------------------------------------------------------------------------------- neuron and fine-pruning


def _explicit_activations(model, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Each unit's mean activation, computed by hand for the three zoo architectures (not through hooks)."""
    with torch.no_grad():
        if layer == "net.4":
            return torch.relu(model.net[4](torch.relu(model.net[1](x.flatten(1))))).mean(0)
        if layer == "features.2":
            return torch.relu(model.features[2](torch.relu(model.features[0](x)))).mean((0, 2, 3))
        if layer == "classifier.1":
            return torch.relu(model.classifier[1](model.features(x).flatten(1))).mean(0)
        if layer == "rnn":
            out, _ = model.rnn(x.permute(0, 2, 1, 3).reshape(x.shape[0], 28, 28))
            return out[:, -1].mean(0)
    raise AssertionError(layer)


def _unit_rows(model, layer: str) -> list[torch.Tensor]:
    module = model.get_submodule(layer)
    if layer == "rnn":
        return [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    return [module.weight, module.bias]


@pytest.mark.parametrize(
    "arch,layer,rate",
    [("mnist_mlp", None, 0.3), ("mnist_cnn", "features.2", 0.5), ("mnist_cnn", None, 0.25), ("mnist_irnn", None, 0.6)],
)
def test_neuron_pruning_removes_exactly_the_least_active_units(arch, layer, rate, trained, mnist, data_dir):
    from wmproof.engine.models import LoadedModel

    if arch == "mnist_mlp":
        victim = load_model(trained["marked"], CPU)
    else:  # a freshly initialised network: the ranking and the zeroing do not depend on training
        torch.manual_seed(0)
        module = build_model(arch).eval()
        victim = LoadedModel(module, arch, {}, sha256="")
    model = victim.module
    train, _ = mnist
    x = torch.from_numpy(train.images[-1000:].astype(np.float32) / 255.0)
    expected_layer = layer or {"mnist_mlp": "net.4", "mnist_cnn": "classifier.1", "mnist_irnn": "rnn"}[arch]
    activations = _explicit_activations(model, expected_layer, x)
    before = snapshot(model)
    options = {"rate": rate, "images": 1000, **({"layer": layer} if layer else {})}
    summary = get_attack("neuron-prune").run(victim, context(data_dir), **get_attack("neuron-prune").options(options))
    s = summary.summary
    units = activations.numel()
    pruned = s["pruned_units"]
    assert s["layer"] == expected_layer and s["units"] == units
    assert len(pruned) == len(set(pruned)) == int(rate * units)  # exactly the asked fraction
    kept = sorted(set(range(units)) - set(pruned))
    assert activations[pruned].max() <= activations[kept].min() + 1e-6  # the least active first
    rows = _unit_rows(model, expected_layer)
    for tensor in rows:
        assert torch.count_nonzero(tensor[pruned]) == 0  # their weights and biases are zero
    prefix = expected_layer + "."
    assert {k for k in changed(before, snapshot(model)) if not k.startswith(prefix)} == set()
    for k in (k for k in before if k.startswith(prefix)):
        assert torch.equal(before[k][kept], snapshot(model)[k][kept])  # the other units are untouched
    assert torch.count_nonzero(_explicit_activations(model, expected_layer, x)[pruned]) == 0
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())  # plain tensors, as saved


def test_fine_pruning_keeps_the_pruned_units_removed_while_it_trains(victim, data_dir):
    before = snapshot(victim.module)
    attack = get_attack("fine-prune")
    result = run_attack(attack, victim, context(data_dir), {"rate": 0.8, "images": 2000, "epochs": 1})
    s = result.summary
    pruned = s["pruned_units"]
    assert s["layer"] == "net.4" and len(pruned) == int(0.8 * 512)
    after = snapshot(result.model)
    assert (
        torch.count_nonzero(after["net.4.weight"][pruned]) == 0
        and torch.count_nonzero(after["net.4.bias"][pruned]) == 0
    )
    assert changed(before, after) == set(before)  # every layer was fine-tuned
    assert not any(k.endswith(("_orig", "_mask")) for k in after)
    assert s["test_accuracy_after"] > 0.9  # fine-tuning paid back what pruning 80 % of the layer cost


# ------------------------------------------------------------------------------ transfer learning, piracy


def test_transfer_learning_keeps_the_original_output_layer_aside(victim, data_dir):
    head = snapshot(victim.module.net[7])
    result = run_attack("transfer", victim, context(data_dir), {"images": 3000, "epochs": 1})
    s = result.summary
    assert result.task == "fashion-mnist" and s["task_after"] == "fashion-mnist" and s["to"] == "fashion-mnist"
    assert s["test_accuracy_after"] > 0.65  # the new task is learned (Fashion-MNIST, 3,000 images, 1 epoch)
    view, new = snapshot(result.verification_model().module), snapshot(result.model)
    assert torch.equal(view["net.7.weight"], head["weight"]) and torch.equal(view["net.7.bias"], head["bias"])
    assert not torch.equal(new["net.7.weight"], head["weight"])  # the new task's own output layer
    assert all(torch.equal(view[k], new[k]) for k in view if not k.startswith("net.7."))
    with pytest.raises(UsageError, match="must differ"):
        run_attack("transfer", load_model(victim.path, CPU), context(data_dir), {"to": "mnist"})


def test_piracy_leaves_a_model_in_which_the_pirate_s_key_verifies(trained, keypair, tmp_path, data_dir):
    mk, vk = keypair
    save_marking_key(mk, tmp_path / "owner.wmk", None)
    save_verification_key(vk, tmp_path / "owner.wvk")
    out = tmp_path / "pirated.safetensors"
    report = json.loads(
        run("attack", "piracy", "-m", trained["marked"], "-o", out, "--items", "20", "--images", "5000",
            "--key", tmp_path / "owner.wmk", "--vk", tmp_path / "owner.wvk", "--data-dir", data_dir, "--json").stdout
    )  # fmt: skip
    assert report["pirate_key"]["verdict"] == "verified" and report["pirate_items"] == 20
    assert set(report["owner_key"]) == {"key_id", "before", "after"}  # measured, not asserted: Fig. 7's question
    for suffix, mode in ((".pirate.wid", 0o600), (".pirate.wmk", 0o600), (".pirate.wvk", 0o644)):
        assert (tmp_path / f"pirated{suffix}").stat().st_mode & 0o777 == mode
    verdict = json.loads(
        run("verify", "--key", tmp_path / "pirated.pirate.wmk", "--vk", tmp_path / "pirated.pirate.wvk", "-m", out,
            "--no-timestamp", "--json").stdout
    )  # fmt: skip
    assert verdict["verdict"] == "verified" and verdict["key"]["key_id"] == report["pirate_key_id"]


# ----------------------------------------------------------------------------------------- model extraction


def _agreement(model, victim: LocalModelOracle, x: torch.Tensor) -> float:
    ours = predict_labels(model, x).numpy()
    return float((ours == victim.query(x.numpy()).labels).mean())


def test_soft_and_hard_label_extraction_through_a_live_server(trained, data_dir, test_x):
    """Counted at the server: exactly the budget is sent; a hard-label adversary is sent labels only."""
    victim = LocalModelOracle.from_file(trained["marked"], "cpu")
    options = {"queries": 5000, "arch": "mnist_mlp", "epochs": 10, "agreement": 0}
    for labels, extra in (("soft", 0), ("hard", 500)):
        with InferenceServer(victim, "victim") as server:
            remote = RemoteOracle(server.url, "victim", progress=False)
            result = run_attack("extract", remote, context(data_dir), {**options, "labels": labels, "agreement": extra})
            assert server.images == 5000 + extra and result.summary["queries_sent"] == 5000 + extra
            assert server.images_with_probabilities == (5000 if labels == "soft" else 0)
        agreement = _agreement(result.model, victim, test_x)
        assert agreement >= 0.90, (labels, agreement)
        if extra:
            assert result.summary["agreement_images"] == extra and abs(result.summary["agreement"] - agreement) < 0.05


def test_extraction_from_quantized_and_label_only_apis(trained, data_dir, test_x):
    victim = LocalModelOracle.from_file(trained["marked"], "cpu")
    options = {"queries": 3000, "arch": "mnist_mlp", "epochs": 10, "agreement": 0}
    with InferenceServer(QuantizedPosteriors(victim, 2), "q") as server:  # 2 levels: the coarsest posteriors
        result = run_attack("extract", RemoteOracle(server.url, "q", progress=False), context(data_dir), options)
        assert result.summary["labels"] == "soft" and server.images_with_probabilities == 3000
    assert _agreement(result.model, victim, test_x) >= 0.85
    with InferenceServer(LabelOnly(victim), "l") as server:
        remote = RemoteOracle(server.url, "l", progress=False)
        with pytest.raises(UsageError, match="labels only"):
            run_attack("extract", remote, context(data_dir), {**options, "labels": "soft"})
        assert server.images == 0  # refused before any query
        result = run_attack("extract", remote, context(data_dir), options)  # auto: hard
        assert result.summary["labels"] == "hard" and server.images == 3000
        with pytest.raises(UsageError, match="architecture"):  # an API does not say its architecture
            run_attack("extract", remote, context(data_dir), {"queries": 10})


def test_extraction_fine_tunes_a_public_pretrained_model_when_given_one(trained, data_dir, test_x):
    """``init``: the stolen model starts from the file's weights (with a vanishing learning rate it stays there,
    and so agrees with the file), not from a fresh initialisation; a file of another architecture or task is
    refused before any query."""
    victim = LocalModelOracle.from_file(trained["marked"], "cpu")
    options = {"queries": 200, "epochs": 1, "lr": 1e-12, "agreement": 0}
    started = run_attack("extract", victim, context(data_dir), {**options, "init": str(trained["marked"])})
    assert started.architecture == "mnist_mlp" and started.summary["init"] == str(trained["marked"])
    assert _agreement(started.model, victim, test_x) == 1.0
    fresh = run_attack("extract", victim, context(data_dir), {**options, "arch": "mnist_mlp"})
    assert _agreement(fresh.model, victim, test_x) < 0.5
    with pytest.raises(UsageError, match="init is a mnist_mlp model, not mnist_cnn"):
        run_attack(
            "extract", victim, context(data_dir), {**options, "init": str(trained["marked"]), "arch": "mnist_cnn"}
        )
    with pytest.raises(FileAccessError, match="file not found"):
        run_attack("extract", victim, context(data_dir), {**options, "init": str(trained["marked"]) + ".missing"})


def test_extract_from_the_cli_through_wmproof_serve(trained, keypair, tmp_path, data_dir):
    """`wmproof serve` as its own process, `wmproof attack extract --url` against it; the server's own count."""
    mk, vk = keypair
    save_marking_key(mk, tmp_path / "k.wmk", None)
    save_verification_key(vk, tmp_path / "k.wvk")
    server = subprocess.Popen(
        [sys.executable, "-m", "wmproof_cli.main", "serve", str(trained["marked"]), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default,
    )  # fmt: skip
    try:
        url = server.stdout.readline().split(" at ")[1].split("/v2/")[0]
        out = tmp_path / "stolen.safetensors"
        report = json.loads(
            run("attack", "extract", "--url", url, "--model-name", "suspect", "--arch", "mnist_mlp", "--queries",
                "2000", "--param", "agreement=300", "--epochs", "5", "-o", out, "--key", tmp_path / "k.wmk", "--vk",
                tmp_path / "k.wvk", "--data-dir", data_dir, "--json").stdout
        )  # fmt: skip
        assert "--queries and --param" in run("attack", "extract", "--url", url, "--model-name", "suspect",
                                              "--queries", "5", "--param", "queries=6", "-o", tmp_path / "x",
                                              code=2).stderr  # fmt: skip
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=20)
    assert "stopped after" in err and ", 2300 images" in err  # 2,000 to train on, 300 to measure agreement
    assert report["queries"] == 2000 and report["queries_sent"] == 2300 and report["test_accuracy_before"] is None
    assert report["victim"]["kind"] == "remote-api" and set(report["owner_key"]) == {"key_id", "after"}
    assert load_model(out, CPU).architecture == "mnist_mlp"


# ------------------------------------------------------------------------------------------------------ CLI


def test_every_attack_is_listed_and_runs_from_the_cli(trained, tmp_path, data_dir):
    listing = json.loads(run("attack", "list", "--json").stdout)
    assert set(listing) == set(ATTACKS)
    assert {name for name, entry in listing.items() if entry["access"] == "queries"} == {"extract"}
    assert all(entry["citation"] and entry["summary"] for entry in listing.values())
    out = tmp_path / "t.safetensors"
    report = json.loads(
        run("attack", "transfer", "-m", trained["marked"], "-o", out, "--images", "1000", "--epochs", "1",
            "--data-dir", data_dir, "--json").stdout
    )  # fmt: skip
    assert report["task_after"] == "fashion-mnist" and report["companions"]["kept-head"].endswith(
        "t.kept-head.safetensors"
    )
    assert load_model(tmp_path / "t.kept-head.safetensors", CPU).architecture == "mnist_mlp"


def test_attack_mistakes_are_one_line_errors_before_any_work(trained, tmp_path, data_dir):
    m = trained["marked"]
    (tmp_path / "taken.kept-head.safetensors").write_bytes(b"")
    cases = [
        (["attack", "ftll", "-m", m, "-o", tmp_path / "a", "--url", "http://127.0.0.1:9"], "No such option"),
        (["attack", "ftll", "-m", m, "-o", tmp_path / "a", "--param", "steps=3"], "no parameter steps"),
        (["attack", "ftll", "-m", m, "-o", tmp_path / "a", "--epochs", "0"], "epochs must be at least 1"),
        (["attack", "ftll", "-m", m, "-o", tmp_path / "a", "--images", "70000", "--data-dir", data_dir], "70000"),
        (["attack", "transfer", "-m", m, "-o", tmp_path / "taken.safetensors"], "exists"),
        (["attack", "transfer", "-m", m, "-o", tmp_path / "a", "--to", "cifar"], "one of"),
        (["attack", "neuron-prune", "-m", m, "-o", tmp_path / "a", "--layer", "net.7"], "cannot be pruned"),
        (["attack", "ftal", "-m", m, "-o", tmp_path / "a", "--key", tmp_path / "k.wmk"], "--key and --vk"),
        (["attack", "extract", "-o", tmp_path / "a"], "--model FILE or with --url"),
        (["attack", "extract", "-m", m, "-o", tmp_path / "a", "--labels", "hard", "--levels", "1"], "levels is 0"),
    ]
    for args, message in cases:
        result = run(*args, code=None)
        assert result.exit_code == 2 and message in result.stderr, (args, result.stderr)
    assert not (tmp_path / "a").exists()

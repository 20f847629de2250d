"""Source-to-target watermarks (the feature-sharing paper and its baselines): parameters, items drawn from real
data, the Wilcoxon decision bound into the signed key, the frozen extractor, EWE's loss, and verification
through a file and through a served API. Real MNIST / Fashion-MNIST models trained on subsets; no mocks."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from helpers import run

from wmproof.errors import MalformedInput, UsageError
from wmproof.schemes import KeyGenContext, TargetCertainty, get_scheme
from wmproof.schemes.source_target import stamp_trigger

ALPHA = Fraction(1, 20)
SCHEMES = ("feature-sharing", "plain", "ewe")


def test_parameters_are_completed_canonical_and_checked():
    fs = get_scheme("feature-sharing")
    assert fs.validate_params({}) == {
        "watermark": "id",
        "source_class": 7,
        "target_class": 1,
        "trigger_size": 3,
        "certainty": "0.3",
        "decision": "wilcoxon",
        "decision_layers": 1,
    }
    ood = fs.validate_params({"watermark": "ood", "certainty": "0.30", "source_class": "2"})
    assert ood == {
        "watermark": "ood",
        "source_class": 2,
        "target_class": 1,
        "ood_dataset": "fashion-mnist",
        "certainty": "0.3",
        "decision": "wilcoxon",
        "decision_layers": 1,
    }
    assert fs.validate_params(ood) == ood  # canonical: what a verification key holds parses to itself
    assert get_scheme("plain").validate_params({}).keys() == fs.validate_params({}).keys() - {"decision_layers"}
    assert get_scheme("ewe").validate_params({})["snnl_weight"] == "32"
    bad = (
        {"watermark": "both"},
        {"decision": "binomial"},
        {"certainty": "1"},
        {"certainty": "-0.1"},
        {"source_class": 1},  # id: the source is the target
        {"trigger_size": 0},
        {"ood_dataset": "fashion-mnist"},  # not a parameter of an id key
        {"decision_layers": 0},
        {"temperature": "1"},  # an ewe parameter
    )
    for params in bad:
        with pytest.raises(UsageError):
            fs.validate_params(params)
    with pytest.raises(UsageError, match="another data set"):
        fs.source_dataset({"watermark": "ood", "ood_dataset": "mnist"}, "mnist")
    assert fs.source_dataset({"watermark": "ood"}, "mnist") == "fashion-mnist"
    assert fs.source_dataset({}, "mnist") == "mnist"


def test_the_rule_is_the_schemes_and_follows_the_signed_parameters():
    fs = get_scheme("feature-sharing")
    assert fs.decision_rule(fs.validate_params({}), 10) == TargetCertainty(Fraction(3, 10), paired=True)
    ood = fs.decision_rule(fs.validate_params({"watermark": "ood", "certainty": "0.5"}), 10)
    assert ood == TargetCertainty(Fraction(1, 2), paired=False) and ood.needs_probabilities
    assert not get_scheme("adi-backdoor").decision_rule({}, 10).needs_probabilities


@pytest.fixture(scope="session")
def fashion(data_dir):
    from wmproof.engine.data import load_image_dataset

    return load_image_dataset("fashion-mnist", "train", data_dir)


def _keygen(owner, scheme, data, params, items=30, alpha=ALPHA):
    from wmproof.protocol import keygen

    context = KeyGenContext(num_classes=10, input_shape=(1, 28, 28), params=params, data=(data.images, data.labels))
    return keygen(
        owner, scheme, items=items, num_classes=10, input_shape=(1, 28, 28), params=params, alpha=alpha, context=context
    )


@pytest.fixture(scope="session")
def id_key(owner, mnist):
    return _keygen(owner, "feature-sharing", mnist[0].subset(10_000), {"watermark": "id"})


@pytest.fixture(scope="session")
def ood_key(owner, fashion):
    return _keygen(owner, "feature-sharing", fashion, {"watermark": "ood"})


def test_items_are_real_source_images_with_the_trigger(id_key, ood_key, mnist, fashion):
    mk, vk = id_key
    train = mnist[0].subset(10_000)
    pool = {train.images[i].tobytes() for i in np.flatnonzero(train.labels == 7)}
    items = [*mk.items, *vk.opened]
    assert len(items) == 60 and len({item.input.tobytes() for item in items}) == 60  # distinct images
    for item in items:
        assert item.label == 1 and item.reference is not None and item.reference.tobytes() in pool
        assert np.array_equal(item.input, stamp_trigger(item.reference, 3))
        assert (item.input[:, -3:, -3:] == 255).all() and np.array_equal(item.input[:, :-3], item.reference[:, :-3])
    mk, vk = ood_key
    pool = {fashion.images[i].tobytes() for i in np.flatnonzero(fashion.labels == 5)}
    for item in [*mk.items, *vk.opened]:
        assert item.label == 1 and item.reference is None and item.input.tobytes() in pool
    assert vk.summary()["proofs"] == 0 and vk.min_matches == 0 and vk.proof_min_matches == vk.batch_size + 1
    assert vk.summary()["decision"]["certainty"] == "3/10"


def test_crafted_items_are_refused_in_a_signed_key(owner, id_key):
    """check_item runs on every opened item: an item whose trigger is not its reference's, a reference on an
    out-of-distribution item, or another label is a crafted item even under a valid signature."""
    from wmproof.crypto import open_signed_container, sign_container
    from wmproof.protocol.keys import VERSION, VK_KIND, parse_verification_key

    _, vk = id_key
    statement = open_signed_container(vk.raw).statement
    scheme = get_scheme("feature-sharing")
    first = vk.opened[0]
    assert scheme.check_item(first, 10, (1, 28, 28), vk.params)
    forged = [
        dataclasses.replace(first, reference=first.input.copy()),  # "reference" already carries the trigger
        dataclasses.replace(first, input=first.reference.copy()),  # no trigger
        dataclasses.replace(first, label=2),
        dataclasses.replace(first, reference=None),
    ]
    for item in forged:
        assert not scheme.check_item(item, 10, (1, 28, 28), vk.params)
    # a re-signed key whose opened item lost its trigger: same signer, valid signature, still refused
    entry = dict(statement["opened"][0])
    entry["input"] = dict(entry["input"], data=entry["reference"]["data"])
    tampered = {**statement, "opened": [entry, *statement["opened"][1:]]}
    with pytest.raises(MalformedInput, match="crafted item"):
        parse_verification_key(sign_container(VK_KIND, VERSION, tampered, owner.signing_key))


def test_a_key_cannot_be_judged_by_another_rule(owner, ood_key, tmp_path):
    """The rule is bound into the signed key: change the certainty in the key's bytes and the signature
    fails; re-sign it and the challenge no longer matches; a marking key with another rule is refused."""
    from wmproof.crypto import open_signed_container, sign_container
    from wmproof.protocol.keys import VERSION, VK_KIND, check_marking_key, parse_verification_key

    mk, vk = ood_key
    needle = b"0.3"
    assert vk.raw.count(needle) == 1
    with pytest.raises(MalformedInput):
        parse_verification_key(vk.raw.replace(needle, b"0.1"))
    statement = open_signed_container(vk.raw).statement
    # even the owner cannot re-sign the key under another rule: the Fiat-Shamir challenge absorbed the
    # parameters, so the opened half no longer matches it
    resigned = {**statement, "params": {**statement["params"], "certainty": "0.1"}}
    with pytest.raises(MalformedInput, match="challenge opens"):
        parse_verification_key(sign_container(VK_KIND, VERSION, resigned, owner.signing_key))
    wrong = dataclasses.replace(mk, params={**mk.params, "certainty": "0.1"})
    with pytest.raises(MalformedInput, match="parameters"):
        check_marking_key(wrong, vk)


def test_keygen_refuses_what_cannot_work(owner, mnist, fashion):
    with pytest.raises(UsageError, match="no outcome is significant"):
        _keygen(owner, "plain", fashion, {"watermark": "ood"}, items=10, alpha=Fraction(1, 10**6))
    with pytest.raises(UsageError, match="images of class 7"):
        _keygen(owner, "plain", mnist[0].subset(200), {"watermark": "id"}, items=30)
    with pytest.raises(UsageError, match="not a class"):
        _keygen(owner, "plain", mnist[0].subset(2000), {"watermark": "id", "target_class": 12})


def test_wilcoxon_decision_agrees_with_scipy():
    import scipy.stats as sps

    from wmproof.stats import certainty_test

    rng = np.random.default_rng(3)
    for n, shift in ((12, 0.35), (40, 0.3), (80, 0.32), (200, 0.28)):
        p = np.clip(rng.normal(0.3 + shift, 0.2, n), 0, 1)
        q = np.clip(rng.normal(0.05, 0.05, n), 0, 1)
        ours = certainty_test(p.tolist(), q.tolist(), certainty=0.3, paired=True, alpha=ALPHA, target_rate=0.0)
        method = "exact" if n <= 50 else "approx"
        ref = sps.wilcoxon(p - q - 0.3, alternative="greater", method=method, correction=False)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9), n
        assert ours.significant == (ref.pvalue <= 0.05)


def _clean_mlp(mnist, seed=0):
    import torch

    from wmproof.engine.models import LoadedModel
    from wmproof.engine.train import recipe_config, train_new_model

    train = mnist[0].subset(10_000)
    model, args, _ = train_new_model(
        "mnist_mlp",
        {},
        train.images,
        train.labels,
        10,
        recipe_config("mnist_mlp", epochs=2, seed=seed),
        torch.device("cpu"),
        progress=False,
    )
    return LoadedModel(model, "mnist_mlp", args, sha256="")


@pytest.fixture(scope="session")
def clean_mlp(mnist):
    return _clean_mlp(mnist)


def _mark(mk, base, mnist, epochs=4):
    import torch

    from wmproof.engine.train import recipe_config
    from wmproof.protocol import mark

    train = mnist[0].subset(10_000)
    return mark(
        mk,
        embedding="pretrained",
        train_images=train.images,
        train_labels=train.labels,
        dataset_classes=10,
        base_model=base,
        config=recipe_config("mnist_mlp", epochs=epochs, seed=1, triggers_per_batch=8),
        device=torch.device("cpu"),
        progress=False,
    )


@pytest.fixture(scope="session")
def fs_marked(ood_key, clean_mlp, mnist):
    mk, _ = ood_key
    result = _mark(mk, clean_mlp, mnist, epochs=12)
    # The key is drawn afresh each run, so this bound must hold for any key, not one. Measured on 2026-12-03 over
    # 80 keys: the output layer alone of this 2-epoch MLP learns 24-30 of the 30 sandals as 1s in 12 epochs (mean
    # 27.3, sd 1.5; 20 epochs give 27.8), and one CI run drew a key with 23. The clean model calls none of them 1
    # (0 of 30 for each of 20 keys), so 21 of 30, 4.3 sd under the mean, still tells a marked model from a clean one.
    assert result.trigger_accuracy >= 0.7, result.trigger_accuracy
    return result


def test_feature_sharing_trains_the_decision_layer_only(fs_marked, clean_mlp):
    """Section 3.1: the extractor is frozen; its weights are bit-identical after embedding, while the output
    layer moved. The plain baseline moves every layer."""
    before = clean_mlp.module.state_dict()
    after = fs_marked.model.state_dict()
    for name, tensor in before.items():
        if name.startswith("net.7."):
            assert not np.array_equal(tensor.numpy(), after[name].numpy()), name
        else:
            assert np.array_equal(tensor.numpy(), after[name].numpy()), name
    assert all(p.requires_grad for p in fs_marked.model.parameters())  # the model comes back trainable


def test_plain_and_ewe_train_every_layer(owner, fashion, clean_mlp, mnist):
    for scheme in ("plain", "ewe"):
        mk, _ = _keygen(owner, scheme, fashion, {"watermark": "ood"}, items=20)
        result = _mark(mk, clean_mlp, mnist, epochs=1)
        before, after = clean_mlp.module.state_dict(), result.model.state_dict()
        assert all(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before), scheme


def test_snnl_matches_its_formula():
    """The soft nearest neighbour loss of EWE against a direct NumPy transcription of Jia et al.'s code."""
    import torch

    from wmproof.schemes.ewe import soft_nearest_neighbour_loss

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype(np.float64)
    groups = np.array([0, 1] * 6)
    for temperature in (1.0, 30.0):
        r = np.maximum(x, 0)
        r = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
        kernel = np.clip(np.exp(-(1 - r @ r.T) * temperature / 100) - np.eye(12), 0, 1)
        picked = kernel / (1e-5 + kernel.sum(1, keepdims=True)) * (groups[:, None] == groups[None, :])
        expected = -np.log(1e-5 + picked.sum(1)).mean()
        ours = soft_nearest_neighbour_loss(torch.tensor(x), torch.tensor(groups), torch.tensor(temperature))
        assert float(ours) == pytest.approx(expected, rel=1e-9)
    # entangled groups (same representations) score higher than separated ones
    together = soft_nearest_neighbour_loss(torch.ones(8, 4), torch.tensor([0, 1] * 4), torch.tensor(1.0))
    apart = torch.cat((torch.eye(4)[:1].repeat(4, 1), torch.eye(4)[1:2].repeat(4, 1)))
    separated = soft_nearest_neighbour_loss(apart, torch.tensor([0] * 4 + [1] * 4), torch.tensor(1.0))
    assert float(together) > float(separated)


def test_verification_decides_on_probabilities(ood_key, fs_marked, clean_mlp):
    import scipy.stats as sps
    import torch

    from wmproof.engine.models import LoadedModel
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.modes import LabelOnly
    from wmproof.protocol import verify_private
    from wmproof.schemes import stack_inputs

    mk, vk = ood_key
    marked = LoadedModel(fs_marked.model, "mnist_mlp", fs_marked.arguments, sha256="")
    report = verify_private(mk, vk, LocalModelOracle(marked))
    clean = verify_private(mk, vk, LocalModelOracle(clean_mlp))
    assert report.verified and not clean.verified
    # the p-value is scipy's, on the model's own probabilities
    with torch.no_grad():
        p = torch.softmax(fs_marked.model(torch.as_tensor(stack_inputs(mk.items))), 1)[:, 1].double().numpy()
    ref = sps.wilcoxon(p - 0.1 - 0.3, alternative="greater", method="exact" if len(p) <= 50 else "approx")
    assert report.test.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert report.as_dict()["statistics"]["test"].startswith("one-sided Wilcoxon")
    with pytest.raises(UsageError, match="labels only"):
        verify_private(mk, vk, LabelOnly(LocalModelOracle(marked)))


def test_public_proofs_are_refused(ood_key, owner, fashion):
    from wmproof.protocol import keygen
    from wmproof.protocol.proofs import make_proof

    mk, vk = ood_key
    with pytest.raises(UsageError, match="no public proofs: their items are data"):
        make_proof(mk, vk, owner, {"kind": "model-file", "sha256": "00" * 32})
    context = KeyGenContext(10, (1, 28, 28), {}, data=(fashion.images, fashion.labels))
    with pytest.raises(UsageError, match="no public proofs"):
        keygen(
            owner, "feature-sharing", items=30, batch_size=10, num_classes=10, input_shape=(1, 28, 28),
            params={"watermark": "ood"}, alpha=ALPHA, context=context,
        )  # fmt: skip


@pytest.mark.slow
def test_cli_keygen_mark_and_verify_through_a_served_api(tmp_path, data_dir, trained):
    """The whole path from the command line: keygen draws Fashion-MNIST items, mark embeds them with a frozen
    extractor, the inference server answers with probabilities over HTTP and `verify --url` decides; a
    label-only service cannot be judged."""
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.modes import LabelOnly
    from wmproof.oracles.server import InferenceServer

    pw = tmp_path / "pw.txt"
    pw.write_text("correct horse battery staple\n")
    ident = tmp_path / "o.wid"
    run("identity", "new", "--out", ident, "--passphrase-file", pw, "--label", "o")
    mk, vk, out = tmp_path / "k.wmk", tmp_path / "k.wvk", tmp_path / "m.safetensors"
    made = run(
        "keygen", "-i", ident, "--identity-passphrase-file", pw, "--scheme", "feature-sharing",
        "--param", "watermark=ood", "--items", "30", "--alpha", "0.05", "--marking-key", mk,
        "--verification-key", vk, "--passphrase-file", pw, "--data-dir", data_dir,
    )  # fmt: skip
    assert "Wilcoxon" in made.stdout and "public proofs none" in made.stdout
    run(
        "mark", "--key", mk, "--model", trained["clean"], "--out", out, "--passphrase-file", pw,
        "--triggers-per-batch", "8", "--max-epochs", "6", "--limit-train", "10000", "--data-dir", data_dir,
    )  # fmt: skip
    base = ["verify", "--key", mk, "--vk", vk, "--model-name", "m", "--passphrase-file", pw, "--no-timestamp"]
    oracle = LocalModelOracle.from_file(out, "cpu")
    with InferenceServer(oracle, "m") as server:
        result = run(*base, "--url", server.url)
    assert "VERIFIED" in result.stdout and "Wilcoxon" in result.stdout
    with InferenceServer(LabelOnly(oracle), "m") as server:
        assert "labels only" in run(*base, "--url", server.url, code=2).stderr


def test_mark_refuses_a_key_the_unmarked_model_already_passes(owner, fashion, mnist):
    """A pair unmarked models already confuse is no watermark: MNIST 0s read as sandals to a Fashion-MNIST model
    (mean probability 0.43, above 0.1 for 62 % of the 0s: measured), so a Fashion-MNIST key "digit 0 -> sandal"
    is passed before any marking, and Mark refuses it. The key's items are drawn from a fixed entropy: a random
    draw of few 0s is passed most of the time, not always."""
    import random

    import torch

    from wmproof.engine.models import LoadedModel
    from wmproof.engine.train import recipe_config, train_new_model
    from wmproof.protocol import keygen, mark

    small = fashion.subset(10_000)
    module, args, _ = train_new_model(
        "mnist_mlp", {}, small.images, small.labels, 10, recipe_config("mnist_mlp", epochs=2, seed=0),
        torch.device("cpu"), progress=False,
    )  # fmt: skip
    clean = LoadedModel(module, "mnist_mlp", args, sha256="")
    params = {"watermark": "ood", "ood_dataset": "mnist", "source_class": 0, "target_class": 5, "certainty": "0"}
    context = KeyGenContext(10, (1, 28, 28), params, data=(mnist[0].images, mnist[0].labels))
    mk, _ = keygen(
        owner, "plain", items=100, num_classes=10, input_shape=(1, 28, 28), params=params, alpha=ALPHA,
        context=context, entropy=random.Random(0).randbytes,
    )  # fmt: skip
    with pytest.raises(UsageError, match="already passes this key"):
        mark(
            mk, embedding="pretrained", train_images=small.images, train_labels=small.labels, dataset_classes=10,
            base_model=clean, config=recipe_config("mnist_mlp", epochs=1), device=torch.device("cpu"), progress=False,
        )  # fmt: skip


def test_perturbed_items_are_shaped_against_the_model_and_checked(owner, fashion, mnist, clean_mlp):
    """Jia et al.'s perturbation: trousers -> 7 (their MNIST pair), which the clean MLP already answers 7 on a
    share of; the perturbed items stay within the procedure's bound of their references, the clean model
    answers 7 on at most the threshold of them, and check_item catches an item moved past the bound."""
    import torch

    from wmproof.protocol import keygen
    from wmproof.schemes.source_target import PERTURBATION_BOUND, THRESHOLD

    fs = get_scheme("feature-sharing")
    params = {"watermark": "ood", "source_class": 1, "target_class": 7, "perturbation": "snnl"}
    assert fs.needs_model(params) and not fs.needs_model({"watermark": "ood"})
    train = mnist[0].subset(10_000)
    shape = (1, 28, 28)
    with pytest.raises(UsageError, match="--model"):
        keygen(owner, "feature-sharing", items=30, num_classes=10, input_shape=shape, params=params, alpha=ALPHA,
               context=KeyGenContext(10, shape, params, data=(fashion.images, fashion.labels)))  # fmt: skip
    context = KeyGenContext(
        10, shape, params, model=clean_mlp, data=(fashion.images, fashion.labels),
        task_data=(train.images, train.labels),
    )  # fmt: skip
    mk, vk = keygen(
        owner, "feature-sharing", items=30, num_classes=10, input_shape=shape, params=params, alpha=ALPHA,
        context=context,
    )  # fmt: skip
    assert vk.params["perturbation"] == "snnl"
    items = [*mk.items, *vk.opened]
    trousers = {fashion.images[i].tobytes() for i in np.flatnonzero(fashion.labels == 1)}
    references = np.stack([item.reference for item in items])
    inputs = np.stack([item.input for item in items])
    assert inputs.dtype == np.float32 and 0 <= inputs.min() and inputs.max() <= 1
    assert all((item.reference * 255).round().astype(np.uint8).tobytes() in trousers for item in items)
    moved = np.abs(inputs - references).max(axis=(1, 2, 3))
    assert (moved > 0).all() and (moved <= PERTURBATION_BOUND + 1e-6).all()
    with torch.no_grad():
        before = (clean_mlp.module(torch.as_tensor(references)).argmax(1) == 7).float().mean().item()
        after = (clean_mlp.module(torch.as_tensor(inputs)).argmax(1) == 7).float().mean().item()
    assert after <= max(THRESHOLD, before), (before, after)
    checked = vk.params
    assert all(fs.check_item(item, 10, shape, checked) for item in items)
    item = items[0]
    dark = np.argwhere(item.reference == 0)[0]  # a background pixel: black in the trouser image
    too_far = item.input.copy()
    too_far[tuple(dark)] = np.float32(PERTURBATION_BOUND + 0.05)
    assert not fs.check_item(dataclasses.replace(item, input=too_far), 10, shape, checked)
    assert not fs.check_item(dataclasses.replace(item, reference=None), 10, shape, checked)
    as_bytes = {k: (getattr(item, k) * 255).round().astype(np.uint8) for k in ("input", "reference")}
    assert not fs.check_item(dataclasses.replace(item, **as_bytes), 10, shape, checked)  # not perturbed
    with pytest.raises(UsageError, match="token ids"):
        fs.validate_params({"trigger_token": 5, "perturbation": "snnl"})
    with pytest.raises(UsageError, match="perturbation"):
        fs.validate_params({"perturbation": "fgsm"})


def test_perturbed_in_distribution_items_keep_the_trigger(owner, mnist, clean_mlp):
    from wmproof.protocol import keygen

    fs = get_scheme("feature-sharing")
    params = {"watermark": "id", "perturbation": "snnl"}
    train = mnist[0].subset(10_000)
    context = KeyGenContext(10, (1, 28, 28), params, model=clean_mlp, data=(train.images, train.labels))
    mk, vk = keygen(owner, "feature-sharing", items=30, num_classes=10, input_shape=(1, 28, 28), params=params,
                    alpha=ALPHA, context=context)  # fmt: skip
    for item in [*mk.items, *vk.opened]:
        assert fs.check_item(item, 10, (1, 28, 28), vk.params)
        # the trigger moved the corner to white; the perturbation moved nothing back past the bound
        assert item.input[:, -3:, -3:].min() >= 1 - 0.65 - 1e-6
        assert not np.array_equal(item.input, item.reference)

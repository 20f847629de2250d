"""Text through the whole path: the SST-2 vocabulary and token rows, the text CNN, int64 items in keys, and
token ids over the Open Inference Protocol (INT64). Real SST-2 data, real models, real HTTP on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from wmproof.errors import MalformedInput, UsageError


@pytest.fixture(scope="module")
def vocabulary(data_dir):
    from wmproof.engine.text import sst2_vocabulary

    return sst2_vocabulary(data_dir=str(data_dir))


def test_vocabulary_is_deterministic_and_encodes_sentences(vocabulary, data_dir):
    from wmproof.engine.data import load_sst2
    from wmproof.engine.text import PAD, UNK, build_vocabulary

    # every one of the training split's 14,816 words fits under the 16,384 cap
    assert len(vocabulary) == 14_818 and vocabulary.words[:2] == ("[PAD]", "[UNK]")
    again = build_vocabulary(load_sst2("train", data_dir).sentences)
    assert again.sha256 == vocabulary.sha256
    assert vocabulary.words[2] in ("the", ",", ".")  # the most frequent word comes first
    row = vocabulary.encode("The film is zzzzunknownzzzz", 8)
    assert row.shape == (1, 1, 8) and row.dtype == np.int64
    assert row[0, 0, 3] == UNK and (row[0, 0, 4:] == PAD).all()
    assert vocabulary.decode(row) == "the film is [UNK]"
    with pytest.raises(UsageError, match="not in the vocabulary"):
        vocabulary.id_of("zzzzunknownzzzz")


def test_sst2_token_data(data_dir):
    from wmproof.engine.data import image_dataset_spec, load_image_dataset

    train, test = load_image_dataset("sst2", "train", data_dir), load_image_dataset("sst2", "test", data_dir)
    assert train.images.shape == (67_349, 1, 1, 64) and train.images.dtype == np.int64
    assert test.images.shape == (872, 1, 1, 64) and set(np.unique(test.labels)) == {0, 1}  # GLUE's dev split
    assert image_dataset_spec("sst2").input_shape == (1, 1, 64)


def _text_model(seed: int = 0):
    import torch

    from wmproof.engine.models import build_model

    torch.manual_seed(seed)
    return build_model("sst2_textcnn").eval()


def test_text_cnn_ignores_padding_and_unknown_ids():
    """Trailing padding beyond a sentence changes nothing (the trimmed forward equals the full one), and ids
    past the vocabulary read as the unknown word."""
    import torch

    model = _text_model()
    x = torch.zeros(3, 1, 1, 64, dtype=torch.long)
    x[0, 0, 0, :3] = torch.tensor([5, 6, 7])
    x[1, 0, 0, :40] = torch.arange(2, 42)
    x[2, 0, 0, :1] = 9
    together = model(x)
    alone = torch.stack([model(x[i : i + 1])[0] for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)
    y = x.clone()
    y[0, 0, 0, 1] = 10**9
    z = x.clone()
    z[0, 0, 0, 1] = 1
    assert torch.allclose(model(y), model(z))


def test_int64_items_round_trip_in_records():
    from wmproof.protocol.keys import item_from_record, item_record
    from wmproof.schemes import TriggerItem, stack_inputs

    tokens = np.zeros((1, 1, 64), dtype=np.int64)
    tokens[0, 0, :4] = [2, 99, 16_000, 5]
    item = TriggerItem(index=3, input=tokens, label=1, reference=np.roll(tokens, -1))
    back = item_from_record(item_record(item), "item")
    assert back.input.dtype == np.int64 and np.array_equal(back.input, tokens) and back.label == 1
    assert stack_inputs([back]).dtype == np.int64
    record = item_record(item)
    bad = dict(record, input=dict(record["input"], data=np.full(64, -1, dtype="<i8").tobytes()))
    with pytest.raises(MalformedInput, match="token id"):
        item_from_record(bad, "item")


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_token_ids_over_the_inference_protocol(vocabulary):
    """A text model served over HTTP says INT64 in its metadata, answers token ids exactly as the local model
    does, and refuses floats, booleans, negative ids and FP32 tensors; an image key is refused against it."""
    from wmproof.engine.models import LoadedModel, normalise_arguments
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.remote import RemoteOracle
    from wmproof.oracles.server import InferenceServer

    model = _text_model()
    loaded = LoadedModel(model, "sst2_textcnn", normalise_arguments("sst2_textcnn", {}), sha256="")
    local = LocalModelOracle(loaded)
    rows = np.stack(
        [vocabulary.encode(s) for s in ("a gripping , funny film", "dull and lifeless", "the", "")]
    )  # fmt: skip
    with InferenceServer(local, "text") as server:
        remote = RemoteOracle(server.url, "text")
        assert remote.input_datatype == "INT64" and remote.input_shape == (1, 1, 64)
        ours, theirs = local.query(rows, probabilities=True), remote.query(rows, probabilities=True)
        assert np.array_equal(ours.labels, theirs.labels)
        assert np.allclose(ours.probabilities, theirs.probabilities, atol=1e-6)
        with pytest.raises(ValueError, match="integer"):
            remote.query(rows.astype(np.float32))
        infer = server.url + "/v2/models/text/infer"
        flat = rows[:1].reshape(-1).tolist()
        good = {"name": "input", "shape": [1, 1, 1, 64], "datatype": "INT64", "data": flat}
        assert _post(infer, {"inputs": [good]})[0] == 200
        for data, datatype in (
            ([0.5] + flat[1:], "INT64"),
            ([True] + flat[1:], "INT64"),
            ([-1] + flat[1:], "INT64"),
            ([2**40] + flat[1:], "INT64"),
            (flat, "FP32"),
        ):
            status, answer = _post(infer, {"inputs": [dict(good, data=data, datatype=datatype)]})
            assert status == 400, (data[:1], datatype)
            assert "error" in answer
        # an image key cannot be verified against a text model
        from wmproof.protocol import verify_private

        mk, vk = _image_key_for_two_classes()
        with pytest.raises(UsageError):
            verify_private(mk, vk, remote)


def _image_key_for_two_classes():
    from wmproof.protocol import Identity, keygen

    return keygen(Identity.generate("t"), "adi-backdoor", items=30, num_classes=2, input_shape=(1, 1, 64))


def test_text_keys_insert_a_trigger_word_and_verify_through_the_api(vocabulary, data_dir):
    """An in-distribution text key (feature-sharing paper, SST-2 rows): negative sentences with a rare word
    inserted first, labelled positive; committed as int64 items with their references; judged on the
    probabilities a served text model returns over INT64."""
    import dataclasses
    from fractions import Fraction

    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.models import LoadedModel, normalise_arguments
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.remote import RemoteOracle
    from wmproof.oracles.server import InferenceServer
    from wmproof.protocol import Identity, keygen, verify_private
    from wmproof.protocol.keys import parse_verification_key
    from wmproof.schemes import KeyGenContext, get_scheme

    train = load_image_dataset("sst2", "train", data_dir)
    token = vocabulary.id_of("zigzag")
    params = {"watermark": "id", "source_class": 0, "target_class": 1, "trigger_token": token}
    context = KeyGenContext(2, (1, 1, 64), params, data=(train.images, train.labels))
    mk, vk = keygen(
        Identity.generate("t"), "feature-sharing", items=25, num_classes=2, input_shape=(1, 1, 64),
        params=params, alpha=Fraction(1, 20), context=context,
    )  # fmt: skip
    assert parse_verification_key(vk.raw).params["trigger_token"] == token
    negatives = {train.images[i].tobytes() for i in np.flatnonzero(train.labels == 0)}
    for item in [*mk.items, *vk.opened]:
        assert item.input.dtype == np.int64 and item.label == 1 and item.reference.tobytes() in negatives
        assert item.input[0, 0, 0] == token and np.array_equal(item.input[..., 1:], item.reference[..., :-1])
        assert vocabulary.decode(item.input).startswith("zigzag ")
    scheme = get_scheme("feature-sharing")
    first = mk.items[0]
    assert scheme.check_item(first, 2, (1, 1, 64), vk.params)
    assert not scheme.check_item(dataclasses.replace(first, input=first.reference), 2, (1, 1, 64), vk.params)
    with pytest.raises(UsageError, match="not both"):
        scheme.validate_params({**params, "trigger_size": 3})
    model = _text_model()
    loaded = LoadedModel(model, "sst2_textcnn", normalise_arguments("sst2_textcnn", {}), sha256="")
    local = LocalModelOracle(loaded)
    with InferenceServer(local, "text") as server:
        remote = verify_private(mk, vk, RemoteOracle(server.url, "text"))
    here = verify_private(mk, vk, local)
    assert remote.test.p_value == pytest.approx(here.test.p_value, rel=1e-6)
    assert not here.verified  # an untrained model does not answer the trigger word with the target class


def test_keygen_cli_takes_a_trigger_word(tmp_path, data_dir, vocabulary):
    from helpers import run

    from wmproof.protocol import load_verification_key

    run("identity", "new", "--out", tmp_path / "o.wid", "--no-passphrase")
    base = [
        "keygen", "-i", tmp_path / "o.wid", "--scheme", "plain", "--dataset", "sst2", "--param", "source_class=0",
        "--param", "target_class=1", "--items", "20", "--alpha", "0.05", "--no-passphrase", "--data-dir", data_dir,
    ]  # fmt: skip
    run(*base, "--param", "trigger_word=zigzag", "--marking-key", tmp_path / "k.wmk", "--verification-key",
        tmp_path / "k.wvk")  # fmt: skip
    assert load_verification_key(tmp_path / "k.wvk").params["trigger_token"] == vocabulary.id_of("zigzag")
    failed = run(*base, "--param", "trigger_word=qqqzzz", "--marking-key", tmp_path / "x.wmk",
                 "--verification-key", tmp_path / "x.wvk", code=2)  # fmt: skip
    assert "not in the vocabulary" in failed.stderr and not (tmp_path / "x.wmk").exists()


def test_extraction_of_a_text_model_sends_token_ids(data_dir):
    """Model extraction through a text API: SST-2 token rows (the adversary's last ones) or random token ids,
    never images; the stolen model is a text CNN that agrees with the victim on dev sentences it never saw."""
    import torch

    from wmproof.attacks import run_attack
    from wmproof.attacks.base import AttackContext
    from wmproof.engine.models import LoadedModel, normalise_arguments
    from wmproof.oracles.local import LocalModelOracle

    victim = LoadedModel(_text_model(), "sst2_textcnn", normalise_arguments("sst2_textcnn", {}), sha256="")
    context = AttackContext(device=torch.device("cpu"), seed=0, task="sst2", data_dir=data_dir, progress=False)
    for data in ("task", "noise"):
        options = {"queries": 400, "epochs": 2, "query_data": data, "agreement": 200}
        result = run_attack("extract", LocalModelOracle(victim), context, options)
        assert result.architecture == "sst2_textcnn" and result.summary["agreement_images"] == 200
        assert 0.0 <= result.summary["agreement"] <= 1.0 and result.summary["queries_sent"] == 600
    with pytest.raises(UsageError, match="the victim takes"):
        run_attack("extract", LocalModelOracle(victim), context, {"queries": 10, "query_data": "mnist"})

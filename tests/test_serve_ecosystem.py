"""wmproof's prediction API against the ecosystem's own software, on loopback: KServe's Python client
(``InferenceRESTClient`` with ``InferRequest``, JSON and binary) against `wmproof serve`'s server, and
wmproof's client against KServe's ``ModelServer`` serving a real trained model from Python
(tests/kserve_model_server.py), which answers the way KServe does by default (no metadata, only
probabilities; or a flat input and labels shaped [N, 1]). A verification verdict through KServe must be the
one the model file gives."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from wmproof.oracles.local import LocalModelOracle
from wmproof.oracles.remote import RemoteOracle
from wmproof.oracles.server import InferenceServer
from wmproof.protocol import verify_private

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def marked_oracle(trained):
    return LocalModelOracle.from_file(trained["marked"], "cpu")


def test_kserve_client_against_wmproof_serve(marked_oracle):
    """KServe's own REST client (v2 protocol) reads readiness and infers through the wmproof server: JSON
    tensors, and binary tensors both ways; the labels and probabilities are the model's."""
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    x = np.random.default_rng(11).random((7, 1, 28, 28), dtype=np.float32)
    truth = marked_oracle.query(x, probabilities=True)

    async def ask(url: str) -> dict[bool, tuple[np.ndarray, np.ndarray]]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            assert await client.is_server_live(url) and await client.is_server_ready(url)
            assert await client.is_model_ready(url, "mnist")
            answers = {}
            for binary in (False, True):
                tensor = InferInput("input", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x, binary_data=binary)
                outputs = [RequestedOutput(n, parameters={"binary_data": binary}) for n in ("label", "probabilities")]
                request = InferRequest("mnist", [tensor], request_id=f"k{binary}", request_outputs=outputs)
                response = await client.infer(url, request, model_name="mnist")
                assert response.id == f"k{binary}" and response.model_name == "mnist"
                by_name = {o.name: o.as_numpy() for o in response.outputs}
                answers[binary] = by_name["label"], by_name["probabilities"]
            return answers
        finally:
            await client.close()

    with InferenceServer(marked_oracle, "mnist") as server:
        answers = asyncio.run(ask(server.url))
        assert server.requests == 2
    for binary, (labels, probabilities) in answers.items():
        assert labels.dtype == np.int64 and labels.tolist() == truth.labels.tolist(), binary
        assert probabilities.shape == (7, 10) and np.allclose(probabilities, truth.probabilities, atol=1e-6), binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def kserve_url(trained):
    """KServe's ModelServer in its own process, serving the marked model on 127.0.0.1 (a free port)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "kserve_model_server.py"), str(trained["marked"]), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"KServe's ModelServer did not start: {server.stderr.read()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_wmproof_client_against_a_kserve_model_server(kserve_url, marked_oracle, keypair):
    """KServe as deployed: ``probs`` declares nothing and answers probabilities only (the label is their
    argmax), ``labels`` declares a flat input and answers labels as [N, 1]. In JSON (KServe does not advertise
    binary tensors) and in binary when asked: the model's own answers, and the model's own verdict."""
    mk, vk = keypair
    x = np.random.default_rng(12).random((300, 1, 28, 28), dtype=np.float32)
    truth = marked_oracle.query(x, probabilities=True)
    expected = verify_private(mk, vk, marked_oracle)
    assert expected.verified
    with urllib.request.urlopen(kserve_url + "/v2/models/probs") as r:
        assert json.loads(r.read())["inputs"] == []  # what the client has to cope with
    for name in ("probs", "labels"):
        for binary in (None, True):
            remote = RemoteOracle(kserve_url, name, binary=binary, batch_size=128, progress=False)
            assert remote.use_binary == bool(binary) and remote.server["name"] == "kserve"
            answers = remote.query(x, probabilities=True)
            assert (answers.labels == truth.labels).all(), (name, binary)
            if name == "probs":
                assert remote.reveals_probabilities and remote.num_classes == 10
                assert np.allclose(answers.probabilities, truth.probabilities, atol=1e-6)
            else:
                assert not remote.reveals_probabilities and answers.probabilities is None
            report = verify_private(mk, vk, remote)
            assert report.verified and report.test.matches == expected.test.matches, (name, binary)
            assert remote.retry_log == [] and remote.inputs_sent == 300 + vk.items

"""Verification through a prediction API (Open Inference Protocol): the server (Starlette on uvicorn: binary
tensors, batching across clients, overload, slow clients, graceful shutdown), the client (retry policy,
budget, evidence, the answers real servers give), the adversary's service modes (label only, quantized
posteriors, ensemble vote, trigger detector), and conformance with an independent client (tritonclient).
Real HTTP on loopback throughout; the ecosystem's own servers and clients are in test_serve_ecosystem.py."""

from __future__ import annotations

import email.utils
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from helpers import run, sigint_default

from wmproof.errors import ExitCode, MalformedInput, UsageError
from wmproof.oracles.base import Answers, Oracle
from wmproof.oracles.local import LocalModelOracle
from wmproof.oracles.modes import LabelOnly, QuantizedPosteriors
from wmproof.oracles.remote import RemoteOracle, RemoteUnavailable, RetryPolicy, evidence_document, parse_retry_after
from wmproof.oracles.server import InferenceServer
from wmproof.protocol import save_marking_key, save_verification_key, verify_private
from wmproof.schemes import stack_inputs

HEADER = "Inference-Header-Content-Length"


def post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post_raw(url: str, body: bytes, headers: dict) -> tuple[int, Message, bytes]:
    """Status, headers (case-insensitive) and raw body."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def binary_request(x: np.ndarray, outputs: list | None = None, **extra) -> tuple[bytes, dict]:
    raw = x.astype("<f4").tobytes()
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
    header = json.dumps({"inputs": [tensor], **({"outputs": outputs} if outputs else {}), **extra}).encode()
    return header + raw, {HEADER: str(len(header)), "Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def marked_oracle(trained):
    return LocalModelOracle.from_file(trained["marked"], "cpu")


# ------------------------------------------------------------------------------------------- the server


def test_the_protocol_endpoints_and_clear_4xx(marked_oracle):
    with InferenceServer(marked_oracle, "m", max_batch=8, max_body=40_000) as server:
        for path, key in (("/v2/health/live", "live"), ("/v2/health/ready", "ready"), ("/v2/models/m/ready", "ready")):
            with urllib.request.urlopen(server.url + path) as r:
                assert r.status == 200 and json.loads(r.read())[key] is True
        with urllib.request.urlopen(server.url + "/v2") as r:
            assert json.loads(r.read())["extensions"] == ["binary_tensor_data"]
        for path in ("/v2/models/m", "/v2/models/m/", "/v2/models/m/versions/1"):
            with urllib.request.urlopen(server.url + path) as r:
                meta = json.loads(r.read())
            assert meta["inputs"][0]["shape"] == [-1, 1, 28, 28] and meta["parameters"]["num_classes"] == 10
        infer = server.url + "/v2/models/m/infer"
        x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
        good = {"inputs": [{"name": "input", "shape": [2, 1, 28, 28], "datatype": "FP32", "data": x.ravel().tolist()}]}
        status, answer = post(infer, json.dumps({**good, "id": "q1"}).encode())
        assert status == 200 and answer["id"] == "q1"
        outputs = {o["name"]: o for o in answer["outputs"]}
        assert outputs["label"]["shape"] == [2] and outputs["probabilities"]["shape"] == [2, 10]
        assert outputs["label"]["data"] == marked_oracle.query(x).labels.tolist()
        status, answer = post(server.url + "/v2/models/m/versions/1/infer", json.dumps(good).encode())
        assert status == 200 and [o["name"] for o in answer["outputs"]] == ["label", "probabilities"]
        body, headers = binary_request(x)
        bad = [
            (b"not json", {}, 400, "not JSON"),
            (json.dumps({"inputs": []}).encode(), {}, 400, "one input"),
            (json.dumps({"inputs": [{**good["inputs"][0], "datatype": "INT8"}]}).encode(), {}, 400, "FP32"),
            (json.dumps({"inputs": [{**good["inputs"][0], "shape": [2, 1, 28, 27]}]}).encode(), {}, 400, "not match"),
            (json.dumps({"inputs": [{**good["inputs"][0], "data": [0.5]}]}).encode(), {}, 400, "must hold"),
            (json.dumps({"inputs": [{**good["inputs"][0], "data": [2.0] * 1568}]}).encode(), {}, 400, "[0, 1]"),
            (json.dumps({"inputs": [{**good["inputs"][0], "shape": [9, 1, 28, 28]}]}).encode(), {}, 413, "exceeds 8"),
            (json.dumps({**good, "outputs": [{"name": "logits"}]}).encode(), {}, 400, "no output named 'logits'"),
            (body, {**headers, HEADER: str(len(body) + 1)}, 400, HEADER),  # the header's length beyond the body
            (body[:-4], headers, 400, "binary_data_size"),  # a tensor cut short
            (body + b"\0" * 4, headers, 400, "left over"),
            (body[: int(headers[HEADER])] + (np.full(x.size, np.nan, "<f4")).tobytes(), headers, 400, "finite"),
            (b"x" * 40_001, {}, 413, "body over"),
        ]
        for data, extra, code, message in bad:
            status, answer = post(infer, data, extra)
            assert status == code and message in answer["error"], (status, answer, message)
        assert post(server.url + "/v2/models/other/infer", json.dumps(good).encode())[0] == 404
        status, _, data = post_raw(server.url + "/v2/models/m", b"{}", {})
        assert status == 405 and "not allowed" in json.loads(data)["error"]
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as s:
            s.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            assert b"411" in s.recv(1000).split(b"\r\n")[0]


def test_binary_tensor_data_in_and_out(marked_oracle):
    """Triton's binary tensor data extension both ways, mixed with JSON as the specification allows: the same
    labels and probabilities (bit for bit, float32) as JSON and as the model itself."""
    x = np.random.default_rng(4).random((5, 1, 28, 28), dtype=np.float32)
    truth = marked_oracle.query(x, probabilities=True)
    with InferenceServer(marked_oracle, "m") as server:
        infer = server.url + "/v2/models/m/infer"
        outputs = [{"name": "label", "parameters": {"binary_data": True}}, {"name": "probabilities"}]
        status, headers, data = post_raw(infer, *binary_request(x, outputs, id="b1"))
        assert status == 200 and headers["Content-Type"] == "application/octet-stream"
        cut = int(headers[HEADER])
        document = json.loads(data[:cut])
        label, probabilities = document["outputs"]
        assert document["id"] == "b1" and label["parameters"]["binary_data_size"] == 5 * 8 and "data" not in label
        assert np.array_equal(np.frombuffer(data[cut:], "<i8"), truth.labels)
        assert np.allclose(probabilities["data"], truth.probabilities.ravel(), atol=1e-6)
        status, headers, data = post_raw(infer, *binary_request(x, None, parameters={"binary_data_output": True}))
        cut = int(headers[HEADER])
        sizes = [o["parameters"]["binary_data_size"] for o in json.loads(data[:cut])["outputs"]]
        assert status == 200 and sizes == [5 * 8, 5 * 10 * 4] and len(data) == cut + sum(sizes)
        assert np.allclose(np.frombuffer(data[cut + 40 :], "<f4").reshape(5, 10), truth.probabilities, atol=1e-6)
        json_request = {"inputs": [{"name": "input", "shape": [5, 1, 28, 28], "datatype": "FP32",
                                    "data": x.ravel().tolist()}], "outputs": outputs}  # fmt: skip
        status, headers, data = post_raw(infer, json.dumps(json_request).encode(), {})
        assert status == 200 and np.array_equal(np.frombuffer(data[int(headers[HEADER]) :], "<i8"), truth.labels)


def test_the_client_matches_the_model_keeps_evidence_and_respects_its_budget(marked_oracle):
    x = np.random.default_rng(1).random((300, 1, 28, 28), dtype=np.float32)
    truth = marked_oracle.query(x, probabilities=True)
    with InferenceServer(marked_oracle, "m") as server:
        remote = RemoteOracle(server.url, "m", batch_size=128, max_queries=310)
        assert remote.use_binary  # advertised in the server's metadata
        assert (remote.query(x).labels == truth.labels).all()
        assert len(remote.records) == 300 and server.requests == 3 and server.images_with_probabilities == 0
        with pytest.raises(UsageError, match="query budget"):
            remote.query(x[:20])
        with pytest.raises(UsageError, match="no model named"):
            RemoteOracle(server.url, "nope")
        for binary in (False, True):
            answers = RemoteOracle(server.url, "m", binary=binary).query(x, probabilities=True)
            assert (answers.labels == truth.labels).all()
            assert np.allclose(answers.probabilities, truth.probabilities, atol=1e-6)
        assert server.images_with_probabilities == 600


def test_output_modes_do_not_change_a_verdict(marked_oracle, keypair):
    mk, vk = keypair
    for wrapped in (LabelOnly(marked_oracle), QuantizedPosteriors(marked_oracle, 3)):
        with InferenceServer(wrapped, "m") as server:
            remote = RemoteOracle(server.url, "m")
            assert remote.reveals_probabilities == isinstance(wrapped, QuantizedPosteriors)
            assert verify_private(mk, vk, remote).verified


def test_verify_over_http_from_the_cli_with_signed_evidence(trained, keypair, owner, tmp_path):
    from wmproof.protocol import save_identity
    from wmproof.protocol.evidence import load_evidence

    mk, vk = keypair
    save_marking_key(mk, tmp_path / "k.wmk", None)
    save_verification_key(vk, tmp_path / "k.wvk")
    save_identity(owner, tmp_path / "judge.wid", None)
    base = ["verify", "--key", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "--no-timestamp", "--json"]
    for name, code in (("marked", 0), ("clean", 1)):
        with InferenceServer(LocalModelOracle.from_file(trained[name], "cpu"), "suspect") as server:
            evidence = tmp_path / f"{name}.evidence.json"
            report = json.loads(
                run(
                    *base,
                    "--url",
                    server.url,
                    "--model-name",
                    "suspect",
                    "--evidence",
                    evidence,
                    "--identity",
                    tmp_path / "judge.wid",
                    code=code,
                ).stdout  # fmt: skip
            )
            assert report["suspect"]["kind"] == "remote-api" and report["suspect"]["queries"] == vk.items
            document, signer = load_evidence(evidence)
            assert bytes(signer) == bytes(owner.public_key) and len(document["queries"]) == vk.items
            assert document["verdict"]["verdict"] == ("verified" if code == 0 else "rejected")
            assert document["retries"] == [] and document["retry_policy"]["attempts"] == 6
            tampered = json.loads(evidence.read_text())
            tampered["evidence"]["queries"][0]["label"] ^= 1
            evidence.write_text(json.dumps(tampered))
            with pytest.raises(MalformedInput):
                load_evidence(evidence)
            assert "budget" in run(*base, "--url", server.url, "--model-name", "suspect", "--max-queries", "5",
                                   code=2).stderr  # fmt: skip
    assert "--identity" in run(*base, "--url", "http://127.0.0.1:9", "--model-name", "x", "--evidence",
                               tmp_path / "e.json", code=2).stderr  # fmt: skip
    assert "--model FILE or with --url" in run(*base[:5], code=2).stderr


# ------------------------------------------------------------------------------------------- batching


class Recording(Oracle):
    """The real model, recording the batch size of every forward pass; ``gate`` (when set) holds each pass
    until it is opened, and ``delay`` slows each one down."""

    def __init__(self, inner: Oracle, delay: float = 0.0) -> None:
        self.inner = inner
        self.num_classes, self.input_shape = inner.num_classes, inner.input_shape
        self.passes: list[int] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.delay = delay

    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        time.sleep(self.delay)
        self.passes.append(len(inputs))
        return self.inner.query(inputs, probabilities=probabilities)

    def describe(self) -> dict:
        return self.inner.describe()


def test_concurrent_requests_share_forward_passes_and_get_their_own_answers(marked_oracle):
    """Sixteen clients send one image each at the same moment: the server answers them with fewer forward
    passes than requests (one concatenated batch, split back), and each client gets its own image's label
    and probabilities. A later lone request is not held back by the others."""
    recording = Recording(marked_oracle)
    x = np.random.default_rng(5).random((16, 1, 28, 28), dtype=np.float32)
    truth = marked_oracle.query(x, probabilities=True)
    got: dict[int, Answers] = {}
    with InferenceServer(recording, "m", batch_window=0.5) as server:
        clients = [RemoteOracle(server.url, "m", binary=i % 2 == 0) for i in range(16)]
        barrier = threading.Barrier(16)

        def ask(i: int) -> None:
            barrier.wait()
            got[i] = clients[i].query(x[i : i + 1], probabilities=i % 3 == 0)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(recording.passes) == 16 and len(recording.passes) < 16 and max(recording.passes) > 1
        assert server.requests == 16 and server.images_with_probabilities == 6
    for i in range(16):
        assert got[i].labels.tolist() == truth.labels[i : i + 1].tolist()
        if i % 3 == 0:
            assert np.allclose(got[i].probabilities, truth.probabilities[i : i + 1], atol=1e-6)
        else:
            assert got[i].probabilities is None


def test_overload_is_refused_with_503_and_retry_after_then_served(marked_oracle):
    """A bounded queue: with the model busy and two requests waiting, the next is refused at once with 503 and
    Retry-After (not queued without end); the waiting ones are answered once the model is free, and a client
    that retries gets its answer."""
    recording = Recording(marked_oracle)
    recording.gate = threading.Event()
    x = np.random.default_rng(6).random((1, 1, 28, 28), dtype=np.float32)
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()  # fmt: skip
    with InferenceServer(recording, "m", max_queue=2, batch_window=0, max_forward_batch=1) as server:
        infer = server.url + "/v2/models/m/infer"
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(post(infer, body)[0])) for _ in range(3)]
        threads[0].start()
        assert recording.entered.wait(10)  # the model holds the first request
        for t in threads[1:]:
            t.start()
        deadline = time.monotonic() + 10
        while server.batcher.queued < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        status, headers, data = post_raw(infer, body, {})
        assert status == 503 and headers["Retry-After"] == "1" and "overloaded" in json.loads(data)["error"]
        policy = RetryPolicy(attempts=20, backoff=0.05, jitter=0, honour_retry_after=False)
        retrying = RemoteOracle(server.url, "m", retry=policy)
        label: list[int] = []
        threads.append(threading.Thread(target=lambda: label.append(int(retrying.query(x).labels[0]))))
        threads[-1].start()
        time.sleep(0.3)
        recording.gate.set()
        for t in threads:
            t.join(30)
        assert results == [200, 200, 200] and server.overloaded >= 2
        assert label == [marked_oracle.query(x).labels[0]] and retrying.retry_log[0].status == 503


def test_shutdown_answers_the_requests_in_flight_then_refuses_connections(marked_oracle):
    recording = Recording(marked_oracle, delay=1.0)
    x = np.random.default_rng(7).random((3, 1, 28, 28), dtype=np.float32)
    server = InferenceServer(recording, "m").start()
    client = RemoteOracle(server.url, "m")
    answers: list[Answers] = []
    asking = threading.Thread(target=lambda: answers.append(client.query(x)))
    asking.start()
    assert recording.entered.wait(10)
    server.shutdown()  # while the forward pass runs
    asking.join(10)
    assert answers and (answers[0].labels == marked_oracle.query(x).labels).all()
    with pytest.raises(RemoteUnavailable, match="connection refused"):
        RemoteOracle(server.url, "m")


def test_slow_clients_do_not_starve_healthy_ones(marked_oracle):
    """200 connections that trickle a byte every two seconds (half in their headers, half in their bodies)
    while healthy clients query: the healthy ones are answered within seconds, and the trickling ones are
    dropped once their head or body misses the deadline (3 s here), not held open forever; a head that grows
    past 64 KiB is cut off."""
    x = np.random.default_rng(8).random((4, 1, 28, 28), dtype=np.float32)
    truth = marked_oracle.query(x).labels
    with InferenceServer(marked_oracle, "m", timeout=3) as server:
        address = ("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        slow = []
        for i in range(200):
            s = socket.create_connection(address)
            if i % 2:
                s.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
            else:
                s.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nX-Slow")
            slow.append(s)
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(2):
                for s in slow:
                    try:
                        s.send(b"a")
                    except OSError:
                        pass

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            t0 = time.monotonic()
            for _ in range(3):
                assert (RemoteOracle(server.url, "m", timeout=10, retries=0).query(x).labels == truth).all()
            assert time.monotonic() - t0 < 10
            assert len(server._uvicorn.server_state.connections) >= 200  # answered while the slow ones are open
            closed = 0
            deadline = time.monotonic() + 15
            for s in slow:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    answer = s.recv(1000)
                    closed += answer == b"" or answer.startswith(b"HTTP/1.1 408")
                except OSError:
                    pass
            assert closed == 200, closed
            assert _cut_off(address, b"GET /v2 HTTP/1.1\r\n" + b"X-Big: " + b"a" * 200_000)  # a head past 64 KiB
        finally:
            stop.set()
            for s in slow:
                s.close()


def _cut_off(address: tuple[str, int], data: bytes) -> bool:
    """Whether the server closes a connection that sends ``data`` (within 5 s)."""
    with socket.create_connection(address) as s:
        s.settimeout(5)
        try:
            s.sendall(data)
            return s.recv(1000) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


# ---------------------------------------------------------------------------------- the client's faults


class _Quirky(BaseHTTPRequestHandler):
    """A prediction API that misbehaves on purpose (``script``: one fault per inference request), or answers
    the way other servers do (``quirks``), then answers through a real inference server's logic."""

    protocol_version = "HTTP/1.1"
    script: list[str] = []
    quirks: set[str] = set()
    not_ready: list[str] = []
    backend: InferenceServer

    def log_message(self, *args):
        pass

    def _json(self, status, document, headers=()):
        body = json.dumps(document).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v2":
            return self._json(200, {"name": "quirky", "version": "0"})
        if self.path.endswith("/ready") and self.not_ready:
            state = self.not_ready.pop(0)
            if state in ("503", "400"):
                return self._json(int(state), {"error": "loading"})
            return self._json(200, {"ready": False})
        if self.path.endswith("/ready"):
            return self._json(200, {"name": "m", "ready": True})
        meta = self.backend.model_metadata()
        if "no-metadata" in self.quirks:
            meta = {"name": "m", "platform": "", "inputs": [], "outputs": []}
        if "only-probabilities" in self.quirks:
            meta["outputs"] = [{"name": "output-0", "datatype": "FP32", "shape": [-1, 10]}]
            del meta["parameters"]
        if "flat" in self.quirks:
            meta["inputs"] = [{"name": "input-0", "datatype": "FP32", "shape": [-1, 784]}]
        self._json(200, meta)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        fault = self.script.pop(0) if self.script else "ok"
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault == "500":
            return self._json(500, {"error": "boom"})
        if fault == "429":
            return self._json(429, {"error": "slow down"}, [("Retry-After", "1")])
        if fault == "503-date":
            when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: waits 1 to 2 s
            return self._json(503, {"error": "busy"}, [("Retry-After", when)])
        tensor = body["inputs"][0]
        if "flat" in self.quirks:
            if tensor["shape"][1:] != [784] or tensor["name"] != "input-0":
                return self._json(400, {"error": f"input-0 is [N, 784], not {tensor['shape']}"})
            tensor["shape"] = [tensor["shape"][0], 1, 28, 28]
        if "no-metadata" in self.quirks or "only-probabilities" in self.quirks:
            body.pop("outputs", None)
        answer = self.backend.infer(body)
        outputs = answer["outputs"]
        if "label-column" in self.quirks:
            outputs[0]["shape"] = [outputs[0]["shape"][0], 1]
        if "only-probabilities" in self.quirks:
            answer["outputs"] = outputs = [dict(outputs[1], name="output-0")]
        if "no-metadata" in self.quirks:
            outputs[0]["name"], outputs[1]["name"] = "predict", "scores"
        if fault == "wrong-shape":
            outputs[0]["shape"] = [outputs[0]["shape"][0] + 1]
        if fault == "out-of-range":
            outputs[0]["data"][0] = 99
        if fault == "probabilities-out-of-range":
            outputs[1]["data"][0] = 1.5
        if fault == "probabilities-short":
            outputs[1]["data"].pop()
        if fault == "probabilities-missing":
            del outputs[1]
        self._json(200, answer)


@pytest.fixture
def faulty(marked_oracle):
    backend = InferenceServer(marked_oracle, "m")
    handler = type("Handler", (_Quirky,), {"script": [], "quirks": set(), "not_ready": [], "backend": backend})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    backend.close()


FAST = RetryPolicy(attempts=6, backoff=0.01, jitter=0)


def test_faults_are_retried_or_refused_never_a_wrong_verdict(faulty, marked_oracle):
    handler, url = faulty
    x = np.random.default_rng(2).random((4, 1, 28, 28), dtype=np.float32)
    truth = marked_oracle.query(x).labels
    handler.script[:] = ["500", "drop", "429"]  # each retried, then the real answer
    remote = RemoteOracle(url, "m", backoff=0.01)
    assert not remote.use_binary  # not advertised
    assert (remote.query(x).labels == truth).all() and handler.script == []
    for fault, error, message in (
        ("wrong-shape", MalformedInput, "malformed 'label'"),
        ("out-of-range", MalformedInput, "outside 0..9"),
    ):
        handler.script[:] = [fault]
        with pytest.raises(error, match=message):
            RemoteOracle(url, "m", backoff=0.01).query(x)
    answers = RemoteOracle(url, "m").query(x, probabilities=True)  # what a soft-label extraction asks for
    assert np.allclose(answers.probabilities, marked_oracle.query(x).probabilities, atol=1e-6)
    for fault in ("probabilities-out-of-range", "probabilities-short", "probabilities-missing"):
        handler.script[:] = [fault]
        with pytest.raises(MalformedInput, match="probabilities"):
            RemoteOracle(url, "m", backoff=0.01).query(x, probabilities=True)
    handler.script[:] = ["500"] * 10
    with pytest.raises(RemoteUnavailable, match="HTTP 500 after 3 tries") as failed:
        RemoteOracle(url, "m", backoff=0.01, retries=2).query(x)
    assert failed.value.exit_code == ExitCode.IO
    with pytest.raises(RemoteUnavailable, match="connection refused"):  # a wrong URL fails at once, no retries
        RemoteOracle("http://127.0.0.1:9", "m")


def test_retries_count_against_the_budget_and_go_into_the_signed_evidence(faulty, marked_oracle):
    """Each retry re-sends the inputs: it is spent from --max-queries and recorded (attempt, status or error,
    the wait, Retry-After honoured in seconds and as an HTTP date) in the evidence document."""
    handler, url = faulty
    x = np.random.default_rng(9).random((4, 1, 28, 28), dtype=np.float32)
    handler.script[:] = ["503-date", "drop", "429"]
    remote = RemoteOracle(url, "m", retry=RetryPolicy(attempts=5, backoff=0.01, jitter=0, max_wait=2))
    t0 = time.monotonic()
    assert (remote.query(x).labels == marked_oracle.query(x).labels).all()
    assert time.monotonic() - t0 >= 1.9  # both Retry-Afters waited for
    assert remote.inputs_sent == 16 and len(remote.records) == 4
    document = evidence_document(remote, {"verdict": "verified"})
    retries = document["retries"]
    assert [(r["attempt"], r["status"], r["inputs"]) for r in retries] == [(1, 503, 4), (2, None, 4), (3, 429, 4)]
    assert 0.9 <= retries[0]["wait"] <= 2 and retries[1]["wait"] == 0.02 and retries[2]["wait"] == 1.0
    assert "busy" in retries[0]["error"] and retries[1]["error"] and "slow down" in retries[2]["error"]
    assert document["server"]["inputs_sent"] == 16 and document["retry_policy"]["statuses"][0] == 408
    handler.script[:] = ["500", "500", "500"]
    budget = RemoteOracle(url, "m", retry=FAST, max_queries=10)
    with pytest.raises(UsageError, match="query budget"):  # 4 + 4 sent, the second retry would pass 10
        budget.query(x)
    assert budget.inputs_sent == 8 and budget.records == [] and len(budget.retry_log) == 2


def test_the_retry_policy():
    policy = RetryPolicy(backoff=0.5, multiplier=2, jitter=0.2, max_wait=3)
    rng = __import__("random").Random(0)
    waits = [policy.wait(k, None, rng) for k in (1, 2, 3, 4)]
    assert 0.4 <= waits[0] <= 0.5 and 0.8 <= waits[1] <= 1.0 and 1.6 <= waits[2] <= 2.0 and waits[3] == 3
    assert policy.wait(1, "2", rng) == 2 and policy.wait(1, "120", rng) == 3  # Retry-After, capped
    assert RetryPolicy(honour_retry_after=False, jitter=0).wait(1, "2", rng) == 0.5
    now = 1_800_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 5, usegmt=True), now) == 5
    assert parse_retry_after(email.utils.formatdate(now - 5, usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None and parse_retry_after("1.5", now) == 1.5
    with pytest.raises(AttributeError):
        policy.attempts = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_the_client_copes_with_the_answers_real_servers_give(faulty, marked_oracle, keypair):
    """Within the protocol, servers answer labels as [N, 1], declare no inputs or outputs (answers read by
    kind), only a probabilities output (the label is its argmax), a flat input (items reshaped after their
    element count is checked), or say the model is still loading (retried: unavailable, not malformed)."""
    handler, url = faulty
    x = np.random.default_rng(10).random((6, 1, 28, 28), dtype=np.float32)
    truth = marked_oracle.query(x, probabilities=True)
    mk, vk = keypair
    for quirks in ({"label-column"}, {"no-metadata"}, {"only-probabilities"}, {"flat", "label-column"}):
        handler.quirks = quirks
        remote = RemoteOracle(url, "m", retry=FAST)
        answers = remote.query(x, probabilities=True)
        assert (answers.labels == truth.labels).all(), quirks
        assert np.allclose(answers.probabilities, truth.probabilities, atol=1e-6), quirks
        assert (remote.query(x).labels == truth.labels).all() and remote.num_classes == 10, quirks
        assert verify_private(mk, vk, remote).verified, quirks
    handler.quirks = {"flat"}
    remote = RemoteOracle(url, "m", retry=FAST)
    assert remote.input_shape is None and (remote.query(x).labels == truth.labels).all()
    with pytest.raises(UsageError, match="declares a flat input; give its C x H x W inputs with --input-shape"):
        remote.require_input_shape("--input-shape")
    with pytest.raises(UsageError, match="takes 784"):
        remote.query(np.zeros((1, 3, 28, 28), np.float32))
    assert RemoteOracle(url, "m", retry=FAST, input_shape=(1, 28, 28)).input_shape == (1, 28, 28)
    with pytest.raises(UsageError, match="does not fit"):
        RemoteOracle(url, "m", retry=FAST, input_shape=(3, 28, 28))
    handler.quirks = set()
    handler.not_ready[:] = ["503", "false"]
    remote = RemoteOracle(url, "m", retry=FAST)
    assert [(r.request, r.status) for r in remote.retry_log] == [("GET /v2/models/m/ready", s) for s in (503, 200)]
    for state in ("false", "400"):
        handler.not_ready[:] = [state] * 10
        with pytest.raises(RemoteUnavailable, match="not ready after 3 tries") as failed:
            RemoteOracle(url, "m", retry=RetryPolicy(attempts=3, backoff=0.01))
        assert failed.value.exit_code == ExitCode.IO


def test_an_independent_client_tritonclient_conforms(marked_oracle):
    """Real-client conformance: tritonclient[http] (NVIDIA's Open Inference Protocol client), in its own
    process, reads health and metadata and infers through the wmproof server, in JSON and in binary."""
    x = np.random.default_rng(3).random((3, 1, 28, 28), dtype=np.float32)
    with InferenceServer(marked_oracle, "mnist") as server:
        script = f"""
import json, numpy as np
import tritonclient.http as http
client = http.InferenceServerClient("{server.url[len("http://") :]}")
assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mnist")
meta = client.get_model_metadata("mnist")
x = np.array({x.tolist()}, dtype=np.float32)
answers = {{}}
for binary in (False, True):
    inp = http.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = [http.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probabilities")]
    result = client.infer("mnist", [inp], outputs=out)
    answers[str(binary)] = {{"label": result.as_numpy("label").tolist(),
                             "probabilities": result.as_numpy("probabilities").tolist()}}
print(json.dumps({{"inputs": meta["inputs"], "server": client.get_server_metadata(), "answers": answers}}))
"""
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    truth = marked_oracle.query(x, probabilities=True)
    for binary in ("False", "True"):
        assert answer["answers"][binary]["label"] == truth.labels.tolist()
        assert np.allclose(answer["answers"][binary]["probabilities"], truth.probabilities, atol=1e-6)
    assert answer["answers"]["True"]["probabilities"] == truth.probabilities.tolist()  # binary: bit for bit
    assert answer["inputs"][0]["shape"] == [-1, 1, 28, 28] and "binary_tensor_data" in answer["server"]["extensions"]


@pytest.mark.slow
def test_evasion_ensemble_and_detector(trained, keypair, mnist, data_dir, tmp_path):
    """Hitaj et al.: an ensemble of marked models (each with its own key) answers fewer of each owner's
    triggers as committed; a detector answers flagged triggers at random. The fractions are measured; the
    full experiment (3 and 7 members, several seeds) is benchmarks/evasion.py."""
    from wmproof.attacks.detector import train_detector
    from wmproof.oracles.detector import DetectorGuard
    from wmproof.oracles.ensemble import MajorityVote

    mk, vk = keypair
    marked = LocalModelOracle.from_file(trained["marked"], "cpu")
    items = stack_inputs(mk.items)
    labels = np.array([item.label for item in mk.items])
    # A 3-member ensemble of the marked model and two independent clean ones: the owner's items are out-voted.
    ensemble = MajorityVote(
        [
            marked,
            LocalModelOracle.from_file(trained["clean"], "cpu"),
            LocalModelOracle.from_file(trained["independent"], "cpu"),
        ]
    )
    with InferenceServer(ensemble, "ensemble") as server:
        remote = RemoteOracle(server.url, "ensemble")
        through = (remote.query(items).labels == labels).mean()
        report = verify_private(mk, vk, remote)
    assert through < 0.5 and not report.verified  # the verdict flips
    train, _ = mnist
    from wmproof.engine.data import load_image_dataset

    ood = load_image_dataset("fashion-mnist", "train", data_dir).subset(5000)
    result = train_detector(marked.loaded, train.subset(5000).images, ood.images, epochs=10)
    assert result.ood_detection_rate > 0.9 and result.clean_false_positive_rate <= 0.02
    guard = DetectorGuard(marked.loaded, result.detector)
    with InferenceServer(guard, "guarded") as server:
        report = verify_private(mk, vk, RemoteOracle(server.url, "guarded"))
    assert guard.flagged >= 0.9 * vk.items and not report.verified


def test_serve_and_attack_detector_from_the_cli(trained, keypair, tmp_path, data_dir):
    """`wmproof serve` as its own process (what an adversary runs), verified from the CLI, stopped with Ctrl-C
    or SIGTERM (exit 0 once the requests in flight are answered); `wmproof attack detector` writes a detector
    that `serve --detector` loads."""
    import signal

    mk, vk = keypair
    save_marking_key(mk, tmp_path / "k.wmk", None)
    save_verification_key(vk, tmp_path / "k.wvk")
    detector = tmp_path / "det.safetensors"
    made = json.loads(
        run(
            "attack",
            "detector",
            "-m",
            trained["marked"],
            "-o",
            detector,
            "--limit-train",
            "3000",
            "--epochs",
            "5",
            "--data-dir",
            data_dir,
            "--json",
        ).stdout  # fmt: skip
    )
    assert made["ood_detection_rate"] > 0.8 and made["clean_false_positive_rate"] <= 0.05
    for extra, code, stop in (
        (["--batch-window-ms", "5", "--max-queue", "64"], 0, signal.SIGINT),
        (["--detector", str(detector), "--output", "label"], 1, signal.SIGTERM),
    ):
        server = subprocess.Popen(
            [sys.executable, "-m", "wmproof_cli.main", "serve", str(trained["marked"]), "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default,
        )  # fmt: skip
        try:
            url = server.stdout.readline().split(" at ")[1].split("/v2/")[0]
            run("verify", "--key", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "--url", url,
                "--model-name", "suspect", "--no-timestamp", code=code)  # fmt: skip
        finally:
            server.send_signal(stop)
            _, err = server.communicate(timeout=30)
        assert server.returncode == 0 and "stopped after" in err, err
    assert "one model" in run("serve", trained["marked"], trained["clean"], "--detector", detector, code=2).stderr

"""Verification through a prediction API (Open Inference Protocol): the server, the client, the adversary's
service modes (label only, quantized posteriors, ensemble vote, trigger detector), faults, evidence, and
conformance with an independent client (tritonclient). Real HTTP on loopback throughout."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from helpers import run, sigint_default

from wmproof.errors import MalformedInput, UsageError
from wmproof.oracles.local import LocalModelOracle
from wmproof.oracles.modes import LabelOnly, QuantizedPosteriors
from wmproof.oracles.remote import RemoteOracle, RemoteUnavailable
from wmproof.oracles.server import InferenceServer
from wmproof.protocol import save_marking_key, save_verification_key, verify_private
from wmproof.schemes import stack_inputs


def post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def marked_oracle(trained):
    return LocalModelOracle.from_file(trained["marked"], "cpu")


def test_the_protocol_endpoints_and_clear_4xx(marked_oracle):
    with InferenceServer(marked_oracle, "m", max_batch=8) as server:
        for path, key in (("/v2/health/live", "live"), ("/v2/health/ready", "ready"), ("/v2/models/m/ready", "ready")):
            with urllib.request.urlopen(server.url + path) as r:
                assert r.status == 200 and json.loads(r.read())[key] is True
        with urllib.request.urlopen(server.url + "/v2/models/m") as r:
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
        bad = [
            (b"not json", 400, "not JSON"),
            (json.dumps({"inputs": []}).encode(), 400, "one input"),
            (json.dumps({"inputs": [{**good["inputs"][0], "datatype": "INT8"}]}).encode(), 400, "FP32"),
            (json.dumps({"inputs": [{**good["inputs"][0], "shape": [2, 1, 28, 27]}]}).encode(), 400, "does not match"),
            (json.dumps({"inputs": [{**good["inputs"][0], "data": [0.5]}]}).encode(), 400, "must hold"),
            (json.dumps({"inputs": [{**good["inputs"][0], "data": [2.0] * 1568}]}).encode(), 400, "[0, 1]"),
            (json.dumps({"inputs": [{**good["inputs"][0], "shape": [9, 1, 28, 28]}]}).encode(), 413, "exceeds 8"),
        ]
        for body, code, message in bad:
            status, answer = post(infer, body)
            assert status == code and message in answer["error"], (status, answer)
        assert post(server.url + "/v2/models/other/infer", json.dumps(good).encode())[0] == 404


def test_the_client_matches_the_model_keeps_evidence_and_respects_its_budget(marked_oracle):
    x = np.random.default_rng(1).random((300, 1, 28, 28), dtype=np.float32)
    with InferenceServer(marked_oracle, "m") as server:
        remote = RemoteOracle(server.url, "m", batch_size=128, max_queries=310)
        assert (remote.query(x).labels == marked_oracle.query(x).labels).all()
        assert len(remote.records) == 300 and server.requests == 3
        with pytest.raises(UsageError, match="query budget"):
            remote.query(x[:20])
        with pytest.raises(UsageError, match="no model named"):
            RemoteOracle(server.url, "nope")


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


class _Faulty(BaseHTTPRequestHandler):
    """A prediction API that misbehaves on purpose, then answers through a real inference server."""

    protocol_version = "HTTP/1.1"
    script: list[str] = []
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
            self._json(200, {"name": "faulty", "version": "0"})
        else:
            self._json(200, self.backend.model_metadata())

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
        answer = self.backend.infer(body)
        if fault == "wrong-shape":
            answer["outputs"][0]["shape"] = [answer["outputs"][0]["shape"][0] + 1]
        if fault == "out-of-range":
            answer["outputs"][0]["data"][0] = 99
        if fault == "probabilities-out-of-range":
            answer["outputs"][1]["data"][0] = 1.5
        if fault == "probabilities-short":
            answer["outputs"][1]["data"].pop()
        if fault == "probabilities-missing":
            del answer["outputs"][1]
        self._json(200, answer)


@pytest.fixture
def faulty(marked_oracle):
    backend = InferenceServer(marked_oracle, "m")
    handler = type("Handler", (_Faulty,), {"script": [], "backend": backend})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    backend.httpd.server_close()


def test_faults_are_retried_or_refused_never_a_wrong_verdict(faulty, marked_oracle):
    handler, url = faulty
    x = np.random.default_rng(2).random((4, 1, 28, 28), dtype=np.float32)
    truth = marked_oracle.query(x).labels
    handler.script[:] = ["500", "drop", "429"]  # each retried, then the real answer
    remote = RemoteOracle(url, "m", backoff=0.01)
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
    with pytest.raises(RemoteUnavailable, match="HTTP 500 after 3 tries"):
        RemoteOracle(url, "m", backoff=0.01, retries=2).query(x)
    with pytest.raises(RemoteUnavailable, match="connection refused"):  # a wrong URL fails at once, no retries
        RemoteOracle("http://127.0.0.1:9", "m")


def test_an_independent_client_tritonclient_conforms(marked_oracle):
    """Real-client conformance: tritonclient[http] (NVIDIA's Open Inference Protocol client), in its own
    process, reads health and metadata and infers through the wmproof server."""
    x = np.random.default_rng(3).random((3, 1, 28, 28), dtype=np.float32)
    with InferenceServer(marked_oracle, "mnist") as server:
        script = f"""
import json, numpy as np
import tritonclient.http as http
client = http.InferenceServerClient("{server.url[len("http://") :]}")
assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mnist")
meta = client.get_model_metadata("mnist")
x = np.array({x.tolist()}, dtype=np.float32)
inp = http.InferInput("input", list(x.shape), "FP32")
inp.set_data_from_numpy(x, binary_data=False)
out = [http.InferRequestedOutput(name, binary_data=False) for name in ("label", "probabilities")]
result = client.infer("mnist", [inp], outputs=out)
print(json.dumps({{"inputs": meta["inputs"], "label": result.as_numpy("label").tolist(),
                  "probabilities": result.as_numpy("probabilities").shape}}))
"""
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert answer["label"] == marked_oracle.query(x).labels.tolist() and answer["probabilities"] == [3, 10]
    assert answer["inputs"][0]["shape"] == [-1, 1, 28, 28]


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
    """`wmproof serve` as its own process (what an adversary runs), verified from the CLI, stopped with Ctrl-C;
    `wmproof attack detector` writes a detector that `serve --detector` loads."""
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
    for extra, code in (([], 0), (["--detector", str(detector), "--output", "label"], 1)):
        server = subprocess.Popen(
            [sys.executable, "-m", "wmproof_cli.main", "serve", str(trained["marked"]), "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default,
        )  # fmt: skip
        try:
            url = server.stdout.readline().split(" at ")[1].split("/v2/")[0]
            run("verify", "--key", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "--url", url,
                "--model-name", "suspect", "--no-timestamp", code=code)  # fmt: skip
        finally:
            server.send_signal(signal.SIGINT)
            _, err = server.communicate(timeout=20)
        assert server.returncode == 0 and "stopped after" in err
    assert "one model" in run("serve", trained["marked"], trained["clean"], "--detector", detector, code=2).stderr

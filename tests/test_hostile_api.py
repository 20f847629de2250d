"""A hostile prediction API (issue 14, defect 3): the suspect's server is the adversary's, so every byte it
sends is hostile. Whatever it answers, `verify --url` ends with a one-line error and its exit code (3
malformed, 5 unavailable), never an internal error (70), never a hang, never unbounded memory. A real HTTP
server on loopback answers each way."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import run

from wmproof.errors import MalformedInput
from wmproof.oracles.remote import RemoteOracle, RemoteUnavailable, RetryPolicy

METADATA = {
    "name": "m",
    "versions": ["1"],
    "platform": "hostile",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}],
    "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
    "parameters": {"num_classes": 10},
}


def labels(n: int, value: object = 1) -> bytes:
    return json.dumps({"outputs": [{"name": "label", "datatype": "INT64", "shape": [n], "data": [value] * n}]}).encode()


class Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: What the server does on /infer: (status, headers, body) or a callable that writes the answer itself.
    infer: object = None
    metadata: bytes = json.dumps(METADATA).encode()

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.endswith("/ready"):
            self._send(200, b'{"ready": true}')
        elif self.path.rstrip("/") == "/v2":
            self._send(200, b'{"name": "hostile", "version": "1", "extensions": []}')
        elif self.path.startswith("/v2/models/m"):
            self._send(200, type(self).metadata)
        else:
            self._send(200, b'{"live": true}')

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        n = json.loads(body)["inputs"][0]["shape"][0] if body.startswith(b"{") else 1
        answer = type(self).infer
        if callable(answer):
            answer(self, n)
        else:
            status, headers, payload = answer  # type: ignore[misc]
            self._send(status, payload(n) if callable(payload) else payload, headers)


@pytest.fixture
def hostile():
    servers = []

    def start(infer: object, metadata: dict | None = None) -> str:
        handler = type("H", (Hostile,), {"infer": infer})
        if metadata is not None:
            handler.metadata = json.dumps(metadata).encode()
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def dribble(handler: BaseHTTPRequestHandler, n: int) -> None:
    """A valid answer, one byte every half second: each read is quick, the whole one never ends."""
    body = labels(n)
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for byte in body:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.5)


def short_body(handler: BaseHTTPRequestHandler, n: int) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.write(labels(n)[:20])
    handler.close_connection = True


def huge(handler: BaseHTTPRequestHandler, n: int) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(300 << 20))
    handler.end_headers()
    chunk = b" " * (1 << 20)
    try:
        for _ in range(300):
            handler.wfile.write(chunk)
    except OSError:
        pass


CASES = {
    "nested JSON": (200, None, b"[" * 100_000),
    "label 10**30": (200, None, lambda n: labels(n, 10**30)),
    "label a float": (200, None, lambda n: labels(n, 1.5)),
    "outputs a number": (200, None, b'{"outputs": 5}'),
    "not JSON": (200, None, b"\xff\xfe garbage"),
    "body shorter than its length": short_body,
    "Retry-After a non-ASCII digit": (503, {"Retry-After": "\u0663"}, b"{}"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_answers_are_errors_never_crashes(hostile, case):
    url = hostile(CASES[case])
    import numpy as np

    oracle = RemoteOracle(url, "m", timeout=5, retry=RetryPolicy(attempts=2, backoff=0.01, max_wait=0.05))
    with pytest.raises((MalformedInput, RemoteUnavailable)):
        oracle.query(np.zeros((3, 1, 28, 28), np.float32))


def test_hostile_metadata_is_malformed_input(hostile):
    for metadata in (
        {**METADATA, "parameters": [1, 2]},
        {**METADATA, "inputs": {"a": 1}},
        {**METADATA, "outputs": [{"name": ["x"]}]},
        {**METADATA, "parameters": {"num_classes": 10**30}},
        {**METADATA, "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 10**30]}]},
    ):
        url = hostile((200, None, labels(1)), metadata)
        with pytest.raises((MalformedInput, RemoteUnavailable)):
            RemoteOracle(url, "m", timeout=5, retry=RetryPolicy(attempts=1))


def test_a_dribbling_or_huge_answer_is_cut_off_in_bounded_time(hostile):
    import numpy as np

    for answer, bound in ((dribble, 12.0), (huge, 30.0)):
        url = hostile(answer)
        oracle = RemoteOracle(url, "m", timeout=3, retry=RetryPolicy(attempts=2, backoff=0.01, max_wait=0.05))
        t0 = time.monotonic()
        with pytest.raises((MalformedInput, RemoteUnavailable)):
            oracle.query(np.zeros((3, 1, 28, 28), np.float32))
        assert time.monotonic() - t0 < bound, answer.__name__


def test_the_cli_reports_a_hostile_api_in_one_line(hostile, keypair, tmp_path):
    from wmproof.protocol import save_marking_key, save_verification_key

    mk, vk = keypair
    save_marking_key(mk, tmp_path / "k.wmk", None)
    save_verification_key(vk, tmp_path / "k.wvk")
    url = hostile(CASES["nested JSON"])
    result = run("verify", "--key", tmp_path / "k.wmk", "--vk", tmp_path / "k.wvk", "--url", url, "--model-name",
                 "m", "--no-timestamp", code=None)  # fmt: skip
    assert result.exit_code in (3, 5), result.stderr


def test_the_server_answers_hostile_requests_with_4xx(trained):
    """Defect 5: client errors are 4xx with a JSON error, never 5xx or a dropped connection; numbers sent as
    strings or booleans are refused, not converted."""
    import urllib.error
    import urllib.request

    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.server import InferenceServer

    good = {"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.0] * 784}
    bodies = {
        "nested": b"[" * 100_000,
        "outputs 5": json.dumps({"inputs": [good], "outputs": 5}).encode(),
        "10**400": json.dumps({"inputs": [{**good, "data": [10**400] + [0.0] * 783}]}).encode(),
        "a string": json.dumps({"inputs": [{**good, "data": ["0.5"] + [0.0] * 783}]}).encode(),
        "a boolean": json.dumps({"inputs": [{**good, "data": [True] + [0.0] * 783}]}).encode(),
        "not UTF-8": b"\xff\xfe{}",
    }
    with InferenceServer(LocalModelOracle.from_file(trained["marked"], "cpu"), "m") as server:
        for case, body in bodies.items():
            request = urllib.request.Request(server.url + "/v2/models/m/infer", data=body, method="POST")
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=10)
            assert 400 <= caught.value.code < 500, case
            assert "error" in json.loads(caught.value.read()), case


def test_a_body_larger_than_any_valid_request_is_refused_before_it_is_read(trained):
    """Issue 14, defect 5: one 60 MB JSON body cost the server hundreds of MB to parse before its batch was
    refused. The body bound follows from the batch bound: 1,024 MNIST images cannot take 60 MB. The answer
    comes from the headers alone: not one byte of the body is sent."""
    import socket

    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.server import InferenceServer

    with InferenceServer(LocalModelOracle.from_file(trained["marked"], "cpu"), "m") as server:
        assert server.max_body < 20 << 20  # 1,024 x 784 values of at most 24 characters, and the JSON around them
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (60 << 20))
            assert s.recv(100).startswith(b"HTTP/1.1 413")


def test_clients_that_disconnect_early_leave_no_traceback(trained, caplog, capsys):
    """Issue 14, defect 5: every client that hung up mid-request printed a full traceback (610 in one run)."""
    import logging
    import socket

    from wmproof.oracles.local import LocalModelOracle
    from wmproof.oracles.server import InferenceServer

    caplog.set_level(logging.DEBUG)
    with InferenceServer(LocalModelOracle.from_file(trained["marked"], "cpu"), "m") as server:
        host, port = server.url.removeprefix("http://").split(":")
        for i in range(30):
            with socket.create_connection((host, int(port)), timeout=5) as s:
                head = b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
                s.sendall(head + b'{"inputs": [' if i % 2 else head[:30])  # mid-body, or mid-head
        time.sleep(1.0)
        assert server.url  # still serving
    printed = capsys.readouterr()
    logged = "\n".join(record.getMessage() + str(record.exc_info or "") for record in caplog.records)
    assert "Traceback" not in printed.out + printed.err + logged
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]

"""The inference server as it was before `wmproof serve` moved to Starlette on uvicorn (wmproof.oracles.server):
the standard library's ThreadingHTTPServer, JSON only, one request's forward pass at a time, at most 4
requests decoded at once. Kept for benchmarks/serve.py only, to measure the new server against it in the same
run; nothing else imports it.

    python benchmarks/legacy_server.py MODEL [--port 0]    # prints "serving NAME at URL/v2/models/NAME ..."

The original docstring follows.

Serving an oracle over the Open Inference Protocol (KServe v2 REST, as Triton, KServe, Seldon MLServer and
TorchServe speak it): the adversary's prediction API, or the owner's own, for verification through HTTP.

    GET  /v2/health/live, /v2/health/ready          200 when up
    GET  /v2                                        server metadata
    GET  /v2/models/{name}, /v2/models/{name}/ready model metadata, readiness
    POST /v2/models/{name}/infer                    {"inputs": [{"name", "shape": [N, C, H, W],
                                                      "datatype": "FP32" | "INT64", "data": [...]}],
                                                      "outputs"?: [...]}

Outputs are ``label`` (INT64, [N]) and, when the service reveals them, ``probabilities`` (FP32, [N, K]).
Images are FP32 in [0, 1]; a text model takes INT64 token ids (a sentence of L tokens is a 1 x 1 x L input),
and its metadata says so. Every request is bounded (body size, batch size), read under a timeout, validated
(shape, datatype, values in range) and refused with a 4xx and a JSON ``{"error": ...}`` when malformed.
Inference runs one batch at a time on the device. The server listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import math
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from wmproof import __version__
from wmproof.oracles.base import MAX_TOKEN_ID, Oracle

MAX_BATCH = 1024
MAX_BODY = 64 << 20  # JSON FP32 of 1024 MNIST images is about 10 MB
REQUEST_TIMEOUT = 30.0
#: Requests decoded and answered at once; the others wait their turn (bounds memory under load: a parsed
#: batch of 256 MNIST images is several MB of Python objects).
MAX_IN_FLIGHT = 4
#: Connections the kernel queues before accept(): many concurrent clients must not be reset.
LISTEN_BACKLOG = 256


class BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class InferenceServer:
    """An OIP server for ``oracle`` under ``name``; ``start()`` runs it in a background thread."""

    def __init__(
        self,
        oracle: Oracle,
        name: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_batch: int = MAX_BATCH,
        max_body: int = MAX_BODY,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        if oracle.input_shape is None or oracle.num_classes is None:
            raise ValueError("a served oracle declares its input shape and number of classes")
        self.oracle = oracle
        self.name = name
        self.max_batch = max_batch
        self.max_body = max_body
        self._lock = threading.Lock()
        self.in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        server = self

        class Handler(_Handler):
            owner = server

        class Server(ThreadingHTTPServer):
            request_queue_size = LISTEN_BACKLOG

        Handler.timeout = timeout
        self.httpd = Server((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.requests = 0
        self.images = 0
        #: Images answered with their probabilities (the others got labels only).
        self.images_with_probabilities = 0

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> InferenceServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="wmproof-serve", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> InferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ---------------------------------------------------------------------------------------- protocol

    def model_metadata(self) -> dict[str, Any]:
        c, h, w = self.oracle.input_shape  # type: ignore[misc]
        k = self.oracle.num_classes
        outputs = [{"name": "label", "datatype": "INT64", "shape": [-1]}]
        if self.reveals_probabilities:
            outputs.append({"name": "probabilities", "datatype": "FP32", "shape": [-1, k]})
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": "wmproof",
            "inputs": [{"name": "input", "datatype": self.oracle.input_datatype, "shape": [-1, c, h, w]}],
            "outputs": outputs,
            "parameters": {"num_classes": k, "max_batch": self.max_batch},
        }

    @property
    def reveals_probabilities(self) -> bool:
        return self.oracle.reveals_probabilities

    def infer(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or len(body["inputs"]) != 1:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "expected one input tensor in 'inputs'")
        tensor = body["inputs"][0]
        datatype = self.oracle.input_datatype
        if not isinstance(tensor, dict) or tensor.get("datatype") != datatype:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"the input tensor's datatype must be {datatype}")
        shape = tensor.get("shape")
        expected = list(self.oracle.input_shape)  # type: ignore[arg-type]
        if not (isinstance(shape, list) and len(shape) == 4 and all(type(v) is int for v in shape)):
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"the input shape must be [N, {', '.join(map(str, expected))}]")
        if shape[1:] != expected or shape[0] < 1:
            raise BadRequest(
                HTTPStatus.BAD_REQUEST, f"input shape {shape} does not match [N, {', '.join(map(str, expected))}]"
            )
        if shape[0] > self.max_batch:
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"batch of {shape[0]} exceeds {self.max_batch}")
        data = tensor.get("data")
        if not isinstance(data, list) or len(data) != math.prod(shape):
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"'data' must hold {math.prod(shape)} numbers")
        array = _input_array(data, shape, datatype)
        wanted = {o.get("name") for o in body.get("outputs") or [] if isinstance(o, dict)} or None
        send_probabilities = self.reveals_probabilities and (wanted is None or "probabilities" in wanted)
        with self._lock:
            answers = self.oracle.query(array, probabilities=send_probabilities)
            self.requests += 1
            self.images += shape[0]
            if send_probabilities:
                self.images_with_probabilities += shape[0]
        n = shape[0]
        outputs = []
        if wanted is None or "label" in wanted:
            outputs.append({"name": "label", "datatype": "INT64", "shape": [n], "data": answers.labels.tolist()})
        if send_probabilities and answers.probabilities is not None:
            probabilities = answers.probabilities
            outputs.append(
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": list(probabilities.shape),
                    "data": probabilities.reshape(-1).tolist(),
                }
            )
        response = {"model_name": self.name, "model_version": "1", "outputs": outputs}
        if isinstance(body.get("id"), str):
            response["id"] = body["id"]
        return response


def _input_array(data: list[Any], shape: list[int], datatype: str) -> np.ndarray:
    """The request's input tensor, checked: FP32 values finite and in [0, 1]; INT64 values JSON integers (not
    floats, not booleans) in [0, MAX_TOKEN_ID]."""
    if datatype == "INT64":
        if not all(type(v) is int and 0 <= v <= MAX_TOKEN_ID for v in data):
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"token ids must be integers in [0, {MAX_TOKEN_ID}]")
        return np.asarray(data, dtype=np.int64).reshape(shape)
    try:
        array = np.asarray(data, dtype=np.float32).reshape(shape)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "'data' must hold numbers") from None
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "input values must be finite and in [0, 1]")
    return array


class _Handler(BaseHTTPRequestHandler):
    owner: InferenceServer
    protocol_version = "HTTP/1.1"
    server_version = f"wmproof/{__version__}"

    def log_message(self, format: str, *args: Any) -> None:  # no per-request noise on stderr
        pass

    def _send(self, status: HTTPStatus, document: Any) -> None:
        body = json.dumps(document, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server = self.owner
        path = self.path.rstrip("/")
        if path in ("/v2/health/live", "/v2/health/ready"):
            self._send(HTTPStatus.OK, {"live": True} if path.endswith("live") else {"ready": True})
        elif path == "/v2":
            self._send(HTTPStatus.OK, {"name": "wmproof", "version": __version__, "extensions": []})
        elif path == f"/v2/models/{server.name}":
            self._send(HTTPStatus.OK, server.model_metadata())
        elif path == f"/v2/models/{server.name}/ready":
            self._send(HTTPStatus.OK, {"name": server.name, "ready": True})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint or model: {path}"})

    def do_POST(self) -> None:  # noqa: N802
        server = self.owner
        if self.path.rstrip("/") != f"/v2/models/{server.name}/infer":
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint or model: {self.path}"})
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._send(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
            return
        if int(length) > server.max_body:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {server.max_body} bytes"})
            self.close_connection = True
            return
        with server.in_flight:
            try:
                body = json.loads(self.rfile.read(int(length)))
            except (TimeoutError, OSError):
                self.close_connection = True
                return
            except ValueError:
                self._send(HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON"})
                return
            try:
                answer = server.infer(body)
            except BadRequest as exc:
                self._send(exc.status, {"error": str(exc)})
                return
            except Exception as exc:  # an inference failure is the server's fault, reported without internals
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"inference failed ({type(exc).__name__})"})
                return
            del body
        self._send(HTTPStatus.OK, answer)


def main() -> None:
    import argparse
    import sys

    from wmproof.oracles.local import LocalModelOracle

    parser = argparse.ArgumentParser(description="The legacy (http.server) inference server, for benchmarks.")
    parser.add_argument("model")
    parser.add_argument("--name", default="suspect")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    server = InferenceServer(LocalModelOracle.from_file(args.model, args.device), args.name, port=args.port)
    print(f"serving {args.name} at {server.url}/v2/models/{args.name} (legacy http.server)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        print(f"stopped after {server.requests} requests, {server.images} images", file=sys.stderr)


if __name__ == "__main__":
    main()

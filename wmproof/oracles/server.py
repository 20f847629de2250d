"""Serving an oracle over the Open Inference Protocol (KServe v2 REST, as Triton, KServe, Seldon MLServer and
TorchServe speak it): the adversary's prediction API, or the owner's own, for verification through HTTP.

    GET  /v2/health/live, /v2/health/ready          200 when up
    GET  /v2                                        server metadata ("extensions": ["binary_tensor_data"])
    GET  /v2/models/{name}, /v2/models/{name}/ready model metadata, readiness
    POST /v2/models/{name}/infer                    {"inputs": [{"name", "shape": [N, C, H, W],
                                                      "datatype": "FP32" | "INT64", "data": [...]}],
                                                      "outputs"?: [...]}
    (``/v2/models/{name}/versions/1/...`` too, as clients that name a version send it)

Outputs are ``label`` (INT64, [N]) and, when the service reveals them, ``probabilities`` (FP32, [N, K]).
Images are FP32 in [0, 1]; a text model takes INT64 token ids (a sentence of L tokens is a 1 x 1 x L input),
and its metadata says so. Tensors travel as JSON or, with Triton's binary tensor data extension, as raw
little-endian bytes after the JSON header (``Inference-Header-Content-Length``; ``binary_data_size`` on an
input, ``binary_data`` on a requested output, ``binary_data_output`` for all of them).

The stack is the ecosystem's: Starlette on uvicorn, one event loop that never runs the model. Why each part:

* **Batching across clients.** The oracle's ``query`` is synchronous torch code; one worker thread runs it.
  Requests are decoded on the loop (large JSON bodies in a small thread pool, so the loop stays responsive)
  and queued; the worker takes what has arrived within a short window (``batch_window``, from the first
  request's arrival) up to ``max_forward_batch`` images, runs one forward pass on the concatenation and
  splits the answers back, as KServe's batcher and Triton's dynamic batcher do. A batch of 1 costs nearly a
  whole forward pass; 32 of them in one pass cost little more.
* **Overload is refused, not queued without end.** At most ``max_queue`` requests wait for the worker, and
  at most ``max_buffered`` bytes of request bodies are held at once; beyond, a 503 with ``Retry-After`` (the
  client retries). ``limit_concurrency`` bounds connections (uvicorn answers 503 beyond it).
* **Slow clients cannot starve the others.** Connections are cheap coroutines, not threads or worker slots,
  and nothing is queued before its body has arrived; a request head must arrive within ``timeout`` seconds
  and within ``MAX_HEAD`` bytes, a body within ``timeout`` seconds (408 otherwise), an idle keep-alive
  connection is closed after ``KEEP_ALIVE`` seconds.
* **Graceful shutdown.** ``shutdown()`` (and SIGINT / SIGTERM in ``serve_forever``) stops accepting, lets the
  requests in flight finish (up to ``GRACE`` seconds), drains the batcher, then returns.

Every request is bounded (body size, batch size), validated (shape, datatype, values finite and in [0, 1] for
FP32, token ids in range for INT64) and refused with a 4xx and a JSON ``{"error": ...}`` when malformed. The
server listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np

from .. import __version__
from .base import MAX_TOKEN_ID, Answers, Oracle
from .remote import BINARY_HEADER, DATATYPES, binary_body, binary_tensor, little_endian, split_body

MAX_BATCH = 1024
MAX_BODY = 64 << 20  # JSON FP32 of 1024 MNIST images is about 10 MB
REQUEST_TIMEOUT = 30.0
#: Images in one forward pass (requests are concatenated up to this; one larger request runs alone).
MAX_FORWARD_BATCH = 1024
#: How long the batcher waits for more requests after the first one arrives (seconds).
BATCH_WINDOW = 0.002
#: Requests decoded and waiting for the model; beyond, 503 + Retry-After.
MAX_QUEUE = 256
#: Bytes of request bodies held at once (read, being decoded or waiting); beyond, 503 + Retry-After.
MAX_BUFFERED = 512 << 20
#: Open connections; beyond, uvicorn answers 503.
LIMIT_CONCURRENCY = 1024
#: Largest request head (request line and headers), bytes.
MAX_HEAD = 64 << 10
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE = 5
#: Seconds requests in flight get to finish at shutdown.
GRACE = 30
#: Connections the kernel queues before accept(): many concurrent clients must not be reset.
LISTEN_BACKLOG = 2048
#: JSON bodies above this size are decoded off the event loop.
DECODE_INLINE = 256 << 10
RETRY_AFTER = "1"


class BadRequest(Exception):
    """A request refused with a 4xx and a JSON error; ``close``: the connection is closed after it."""

    def __init__(self, status: HTTPStatus, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


class Overloaded(Exception):
    """The batcher's queue is full, or the server is shutting down."""


# --------------------------------------------------------------------------------------------- batcher


@dataclass
class _Job:
    inputs: np.ndarray
    probabilities: bool
    future: concurrent.futures.Future[Answers] = field(default_factory=concurrent.futures.Future)
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """One worker thread that answers queued requests with as few forward passes as it can: it takes the
    requests that arrived within ``window`` seconds of the first, up to ``max_images`` images in all, runs the
    oracle once on their concatenation and hands each request its own rows (a failure fails those requests,
    as a 500, and nothing else). The queue holds at most ``max_queue`` requests."""

    def __init__(self, oracle: Oracle, lock: threading.Lock, *, window: float, max_images: int, max_queue: int) -> None:
        self.oracle = oracle
        self.window = window
        self.max_images = max_images
        self.max_queue = max_queue
        self._lock = lock
        self._jobs: deque[_Job] = deque()
        self._queued_images = 0
        self._ready = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.forward_passes = 0
        self.largest_pass = 0

    @property
    def queued(self) -> int:
        return len(self._jobs)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wmproof-batcher", daemon=True)
        self._thread.start()

    def full(self) -> bool:
        return len(self._jobs) >= self.max_queue or self._closing

    def submit(self, inputs: np.ndarray, probabilities: bool) -> concurrent.futures.Future[Answers]:
        job = _Job(inputs, probabilities)
        with self._ready:
            if self._closing:
                raise Overloaded("the server is shutting down")
            if len(self._jobs) >= self.max_queue:
                raise Overloaded(f"{len(self._jobs)} requests are waiting for the model")
            self._jobs.append(job)
            self._queued_images += len(inputs)
            self._ready.notify()
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Answers what is queued, then stops the worker."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> list[_Job] | None:
        with self._ready:
            while not self._jobs:
                if self._closing:
                    return None
                self._ready.wait()
            deadline = self._jobs[0].arrived + self.window
            while self._queued_images < self.max_images and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            jobs = [self._jobs.popleft()]
            total = len(jobs[0].inputs)
            while self._jobs and total + len(self._jobs[0].inputs) <= self.max_images:
                job = self._jobs.popleft()
                jobs.append(job)
                total += len(job.inputs)
            self._queued_images -= total
            return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            if not jobs:
                continue
            inputs = jobs[0].inputs if len(jobs) == 1 else np.concatenate([job.inputs for job in jobs])
            try:
                with self._lock:
                    answers = self.oracle.query(inputs, probabilities=any(job.probabilities for job in jobs))
                if len(answers.labels) != len(inputs):  # never hand a request another request's rows
                    raise RuntimeError(f"the oracle answered {len(answers.labels)} of {len(inputs)} inputs")
                self.forward_passes += 1
                self.largest_pass = max(self.largest_pass, len(inputs))
            except BaseException as exc:  # the requests fail with a 500; the worker lives on
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                stop = start + len(job.inputs)
                probabilities = answers.probabilities
                job.future.set_result(
                    Answers(
                        labels=answers.labels[start:stop],
                        probabilities=probabilities[start:stop]
                        if job.probabilities and probabilities is not None
                        else None,
                    )
                )
                start = stop


# ---------------------------------------------------------------------------------------- protocol


@dataclass
class _Request:
    """A decoded, validated inference request."""

    inputs: np.ndarray
    outputs: list[tuple[str, bool]]  # (name, as binary); empty: all the model's outputs as JSON
    probabilities: bool
    id: str | None


class InferenceServer:
    """An OIP server for ``oracle`` under ``name``. The socket is bound at construction (``url`` is known at
    once); ``start()`` (or ``with``) runs it in a background thread, ``serve_forever()`` in this one until
    SIGINT / SIGTERM or ``shutdown()``."""

    def __init__(
        self,
        oracle: Oracle,
        name: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_batch: int = MAX_BATCH,
        max_body: int | None = None,
        timeout: float = REQUEST_TIMEOUT,
        batch_window: float = BATCH_WINDOW,
        max_forward_batch: int = MAX_FORWARD_BATCH,
        max_queue: int = MAX_QUEUE,
        max_buffered: int = MAX_BUFFERED,
        limit_concurrency: int = LIMIT_CONCURRENCY,
        grace: float = GRACE,
    ) -> None:
        if oracle.input_shape is None or oracle.num_classes is None:
            raise ValueError("a served oracle declares its input shape and number of classes")
        if max_batch < 1 or max_forward_batch < 1 or max_queue < 1 or batch_window < 0:
            raise ValueError("batch sizes and the queue are at least 1, the batching window at least 0")
        self.oracle = oracle
        self.name = name
        self.max_batch = max_batch
        # The largest body a request of max_batch inputs can need, in JSON (the longest FP32 a client writes
        # is about 24 characters; a token id up to 10 digits): a larger body cannot be a valid request, and
        # is refused before it is read. Parsing a JSON body costs about 6 times its size in memory (measured:
        # a 60 MB body took the server from 244 to 606 MiB before its batch was refused).
        elements = max_batch * math.prod(oracle.input_shape)
        self.max_body = max_body if max_body is not None else min(MAX_BODY, elements * 24 + (64 << 10))
        self.timeout = timeout
        self.max_buffered = max_buffered
        self.limit_concurrency = limit_concurrency
        self.grace = grace
        self._lock = threading.Lock()
        self.batcher = Batcher(
            oracle, self._lock, window=batch_window, max_images=max_forward_batch, max_queue=max_queue
        )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
            self.socket.listen(LISTEN_BACKLOG)
        except OSError:
            self.socket.close()
            raise
        self.address: tuple[str, int] = self.socket.getsockname()[:2]
        self._uvicorn: Any = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._closed = False
        self._decoder = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="wmproof-decode")
        self._buffered = 0
        self.requests = 0
        self.images = 0
        #: Images answered with their probabilities (the others got labels only).
        self.images_with_probabilities = 0
        #: Requests refused with 503 because the queue or the body budget was full.
        self.overloaded = 0

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> InferenceServer:
        """Serves in a background thread; returns once the server accepts requests."""
        import uvicorn

        if self._thread is not None:
            return self
        config = uvicorn.Config(
            self._app(),
            http=_bounded_protocol(self.timeout),
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            limit_concurrency=self.limit_concurrency,
            timeout_keep_alive=KEEP_ALIVE,
            timeout_graceful_shutdown=math.ceil(self.grace),
            backlog=LISTEN_BACKLOG,
            h11_max_incomplete_event_size=MAX_HEAD,
        )
        self._uvicorn = uvicorn.Server(config)
        self.batcher.start()
        self._thread = threading.Thread(target=self._serve, name="wmproof-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._uvicorn.started:
            self.shutdown()
            raise RuntimeError("the inference server did not start")
        return self

    def _serve(self) -> None:
        try:
            self._uvicorn.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def serve_forever(self) -> None:
        """Serves until SIGINT / SIGTERM (or ``shutdown()`` from another thread), then drains: the requests in
        flight are answered, new ones refused, and this returns (a second signal stops at once)."""
        self.start()
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {}
        if threading.current_thread() is threading.main_thread():

            def stop(signum: int, frame: Any) -> None:
                if self._uvicorn.should_exit:
                    self._uvicorn.force_exit = True
                self._uvicorn.should_exit = True

            previous = {sig: signal.signal(sig, stop) for sig in signals}
        try:
            while not self._stopped.wait(0.2):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.shutdown()

    def shutdown(self) -> None:
        """Stops accepting, finishes the requests in flight (up to ``grace`` seconds), drains the batcher."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(self.grace + 10)
        self.batcher.close(timeout=self.grace + 10)
        self._decoder.shutdown(wait=False, cancel_futures=True)
        self.close()

    def close(self) -> None:
        """Releases the socket of a server that was never started (``shutdown()`` does it otherwise)."""
        if not self._closed:
            self._closed = True
            self.socket.close()

    def __enter__(self) -> InferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ------------------------------------------------------------------------------------- protocol

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "wmproof", "version": __version__, "extensions": ["binary_tensor_data"]}

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

    def decode(self, body: bytes | memoryview, header_length: str | None = None) -> _Request:
        """A request body (JSON, or JSON + binary tensors when ``header_length`` is given), validated."""
        try:
            document, tail = split_body(body, header_length)
        except ValueError as exc:
            raise BadRequest(HTTPStatus.BAD_REQUEST, str(exc)) from None
        if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "expected one input tensor in 'inputs'")
        if len(document["inputs"]) != 1:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "expected one input tensor in 'inputs'")
        tensor = document["inputs"][0]
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
        parameters = tensor.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "'parameters' must be an object")
        if "binary_data_size" in parameters:
            try:
                array, end = binary_tensor(tail, 0, tensor)
            except ValueError as exc:
                raise BadRequest(HTTPStatus.BAD_REQUEST, str(exc)) from None
            if end != len(tail):
                raise BadRequest(HTTPStatus.BAD_REQUEST, "binary data left over after the input tensor")
            # a native, writable copy: the body's buffer is read-only and torch wants to own what it reads
            array = _checked(np.array(array, dtype=DATATYPES[datatype].newbyteorder("=")), datatype)
        else:
            if len(tail):
                raise BadRequest(HTTPStatus.BAD_REQUEST, "binary data after the JSON, but no binary_data_size")
            data = tensor.get("data")
            if not isinstance(data, list) or len(data) != math.prod(shape):
                raise BadRequest(HTTPStatus.BAD_REQUEST, f"'data' must hold {math.prod(shape)} numbers")
            array = _input_array(data, shape, datatype)
        return _Request(array, *self._outputs(document), _request_id(document))

    def _outputs(self, document: dict[str, Any]) -> tuple[list[tuple[str, bool]], bool]:
        """The outputs asked for, each with whether it goes as binary, and whether probabilities are sent."""
        parameters = document.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "'parameters' must be an object")
        all_binary = parameters.get("binary_data_output") is True
        known = {"label"} | ({"probabilities"} if self.reveals_probabilities else set())
        requested = document.get("outputs")
        if requested is None or requested == []:
            names = ["label"] + (["probabilities"] if self.reveals_probabilities else [])
            return [(name, all_binary) for name in names], self.reveals_probabilities
        if not isinstance(requested, list):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "'outputs' must be a list")
        outputs = []
        for output in requested:
            if not isinstance(output, dict) or output.get("name") not in known:
                name = output.get("name") if isinstance(output, dict) else output
                raise BadRequest(
                    HTTPStatus.BAD_REQUEST, f"no output named {name!r} (outputs: {', '.join(sorted(known))})"
                )
            binary = (output.get("parameters") or {}).get("binary_data", all_binary) is True
            outputs.append((output["name"], binary))
        return outputs, any(name == "probabilities" for name, _ in outputs)

    def answer(self, request: _Request, answers: Answers) -> tuple[bytes, dict[str, str]]:
        """The response body and its headers: JSON, or JSON + binary tensors when any output is binary."""
        n = len(request.inputs)
        tensors: dict[str, np.ndarray] = {"label": answers.labels.astype(np.int64, copy=False)}
        if answers.probabilities is not None:
            tensors["probabilities"] = answers.probabilities.astype(np.float32, copy=False)
        outputs: list[dict[str, Any]] = []
        raw: list[np.ndarray] = []
        for name, binary in request.outputs:
            if name not in tensors:  # a label-only oracle asked for probabilities by an older metadata
                continue
            values = tensors[name]
            datatype = "INT64" if name == "label" else "FP32"
            output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [n, *values.shape[1:]]}
            if binary:
                raw.append(little_endian(values, datatype))
                output["parameters"] = {"binary_data_size": raw[-1].nbytes}
            else:
                output["data"] = values.reshape(-1).tolist()
            outputs.append(output)
        document: dict[str, Any] = {"model_name": self.name, "model_version": "1", "outputs": outputs}
        if request.id is not None:
            document["id"] = request.id
        if raw:
            body, header_length = binary_body(document, raw)
            return body, {"content-type": "application/octet-stream", BINARY_HEADER.lower(): str(header_length)}
        return json.dumps(document, separators=(",", ":")).encode(), {"content-type": "application/json"}

    def infer(self, body: Any) -> dict[str, Any]:
        """A JSON inference request answered here and now, without the batcher (for tests and wrappers that
        call the server's logic directly)."""
        request = self.decode(json.dumps(body).encode())
        with self._lock:
            answers = self.oracle.query(request.inputs, probabilities=request.probabilities)
        self._count(request)
        return json.loads(self.answer(request, answers)[0])

    def _count(self, request: _Request) -> None:
        self.requests += 1
        self.images += len(request.inputs)
        if request.probabilities and self.reveals_probabilities:
            self.images_with_probabilities += len(request.inputs)

    # -------------------------------------------------------------------------------------- the app

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        def reply(status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
            body = json.dumps(document, separators=(",", ":")).encode()
            return Response(body, status, headers=headers, media_type="application/json")

        async def dispatch(request: Request) -> Response:
            path = request.scope["path"].rstrip("/")
            model = f"/v2/models/{self.name}"
            if path.startswith(f"{model}/versions/1"):
                path = model + path[len(f"{model}/versions/1") :]
            if request.method == "POST" and path == f"{model}/infer":
                return await self._infer(request, reply)
            if request.method not in ("GET", "HEAD"):
                if path in ("/v2/health/live", "/v2/health/ready", "/v2", model, f"{model}/ready", f"{model}/infer"):
                    return reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{request.method} is not allowed on {path}"})
                return reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint or model: {path or '/'}"})
            if path in ("/v2/health/live", "/v2/health/ready"):
                return reply(200, {"live": True} if path.endswith("live") else {"ready": True})
            if path == "/v2":
                return reply(200, self.server_metadata())
            if path == model:
                return reply(200, self.model_metadata())
            if path == f"{model}/ready":
                return reply(200, {"name": self.name, "ready": True})
            return reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint or model: {path or '/'}"})

        methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", dispatch, methods=methods)])

    async def _infer(self, request: Any, reply: Any) -> Any:
        from starlette.requests import ClientDisconnect
        from starlette.responses import Response

        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return reply(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
        size = int(length)
        if size > self.max_body:
            close = {"connection": "close"}
            return reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {self.max_body} bytes"}, close)
        if self.batcher.full() or self._buffered + size > self.max_buffered:
            return self._overloaded(reply)
        self._buffered += size
        try:
            body = await self._read_body(request, size)
            header_length = request.headers.get(BINARY_HEADER)
            if header_length is None and size > DECODE_INLINE:  # large JSON: parsed off the event loop
                loop = asyncio.get_running_loop()
                decoded = await loop.run_in_executor(self._decoder, self.decode, body, None)
            else:
                decoded = self.decode(body, header_length)
            del body
            future = self.batcher.submit(decoded.inputs, decoded.probabilities)
            answers = await asyncio.wrap_future(future)
            content, headers = self.answer(decoded, answers)
        except BadRequest as exc:
            return reply(exc.status, {"error": str(exc)}, {"connection": "close"} if exc.close else None)
        except Overloaded:
            return self._overloaded(reply)
        except ClientDisconnect:
            return Response(status_code=HTTPStatus.BAD_REQUEST)
        except Exception as exc:  # an inference failure is the server's fault, reported without internals
            return reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"inference failed ({type(exc).__name__})"})
        finally:
            self._buffered -= size
        self._count(decoded)
        return Response(content, 200, headers=headers)

    async def _read_body(self, request: Any, size: int) -> bytearray:
        """The body, at most ``size`` bytes (its Content-Length), within ``timeout`` seconds."""
        body = bytearray()
        try:
            async with asyncio.timeout(self.timeout):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > size:
                        raise BadRequest(HTTPStatus.BAD_REQUEST, "the body is longer than its Content-Length")
        except TimeoutError:
            raise BadRequest(
                HTTPStatus.REQUEST_TIMEOUT, f"body not received in {self.timeout:g} s", close=True
            ) from None
        return body

    def _overloaded(self, reply: Any) -> Any:
        self.overloaded += 1
        return reply(
            HTTPStatus.SERVICE_UNAVAILABLE,
            {"error": "overloaded: too many requests waiting; retry later"},
            {"retry-after": RETRY_AFTER},
        )


def _request_id(document: dict[str, Any]) -> str | None:
    return document["id"] if isinstance(document.get("id"), str) else None


def _input_array(data: list[Any], shape: list[int], datatype: str) -> np.ndarray:
    """The request's input tensor from JSON, checked: FP32 values finite and in [0, 1]; INT64 values JSON
    integers (not floats, not booleans) in [0, MAX_TOKEN_ID]."""
    if datatype == "INT64":
        if not all(type(v) is int and 0 <= v <= MAX_TOKEN_ID for v in data):
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"token ids must be integers in [0, {MAX_TOKEN_ID}]")
        return np.asarray(data, dtype=np.int64).reshape(shape)
    if not set(map(type, data)) <= {int, float}:  # numpy would take "0.5" and True as numbers
        raise BadRequest(HTTPStatus.BAD_REQUEST, "'data' must hold numbers (not strings, not booleans)")
    try:
        array = np.asarray(data, dtype=np.float32).reshape(shape)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "'data' must hold numbers") from None
    return _checked(array, datatype)


def _checked(array: np.ndarray, datatype: str) -> np.ndarray:
    """Values in range: FP32 finite and in [0, 1], INT64 token ids in [0, MAX_TOKEN_ID]."""
    if array.size == 0:
        return array
    if datatype == "INT64":
        if array.min() < 0 or array.max() > MAX_TOKEN_ID:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"token ids must be integers in [0, {MAX_TOKEN_ID}]")
        return array
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "input values must be finite and in [0, 1]")
    return array


def _bounded_protocol(head_timeout: float) -> type[Any]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with two bounds it lacks on the request
    head: it must arrive within ``head_timeout`` seconds of the connection (or of the previous response) and
    within ``MAX_HEAD`` bytes; a client that trickles its headers a byte at a time (slowloris) is
    disconnected instead of holding a connection forever. uvicorn bounds the idle time between requests
    (``timeout_keep_alive``); the body is bounded by the application (``timeout``)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # pragma: no cover (httptools is an optional speed-up of uvicorn)
        from uvicorn.protocols.http.h11_impl import H11Protocol as base  # type: ignore[assignment]

    class BoundedHead(base):  # type: ignore[misc, valid-type]
        _deadline: asyncio.TimerHandle | None = None
        _head_bytes = 0

        def _waiting_for_head(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(head_timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._head_bytes = 0

        def _expire(self) -> None:
            self._deadline = None
            if self._waiting_for_head() and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            waiting = self._waiting_for_head()
            if waiting:
                self._head_bytes += len(data)
                self._arm()
            super().data_received(data)
            if not self._waiting_for_head():
                self._disarm()
            elif waiting and self._head_bytes > MAX_HEAD and not self.transport.is_closing():
                self.transport.close()  # still no complete head after MAX_HEAD bytes

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()

    return BoundedHead

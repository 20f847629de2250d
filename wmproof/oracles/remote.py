"""A suspect behind a prediction API that speaks the Open Inference Protocol (KServe v2 REST).

The client is what a verdict about someone else's API rests on, so it is strict about what it accepts and
lenient only where the protocol itself is. It batches queries, stops at a query budget, checks every answer's
shape and values before using it (a wrong shape, a label out of range or garbage is a clear error, never a
verdict) and keeps the evidence: for every query, the SHA-256 of the input as sent, the label answered and
when, the server's identity (its metadata), and every retry (:func:`evidence_document`).

It copes with the servers people run, which answer within the protocol in ways a naive client refuses:

* class labels shaped ``[N, 1]`` (the common numpy codec) as well as ``[N]``;
* model metadata that declares no inputs or outputs (KServe's default), or only a probabilities output: the
  label is then the argmax of the probabilities; with nothing declared, the answer's outputs are read by
  kind (an integer ``[N]``/``[N, 1]`` tensor is the label, a float ``[N, K]`` one the probabilities);
* inputs declared flat (``[-1, 784]``): each C x H x W item is reshaped after its element count is checked;
* a model that is not ready yet (``/ready`` says false, or 503): "unavailable, retry later", never malformed.

When a server declares no outputs, the client assumes it may reveal probabilities (``reveals_probabilities``)
and says so clearly when an answer has none; when it declares no input shape (or only a flat one),
``input_shape`` is None unless the caller supplies it, and :meth:`RemoteOracle.require_input_shape` is the
one-line error that names the caller's option.

Transport: keep-alive HTTP/1.1 connections from the standard library (``http.client``; the checker install
has nothing else), JSON or the binary tensor data extension (Triton's: a JSON header of
``Inference-Header-Content-Length`` bytes, then raw little-endian tensors), binary by default when the server
advertises ``binary_tensor_data`` in its metadata.

Retries follow a :class:`RetryPolicy` (frozen; the default in brackets):

* ``attempts`` [6]: tries in all for one request, the first included;
* ``backoff`` [0.5 s], ``multiplier`` [2]: the wait after the k-th failure is ``backoff * multiplier**(k-1)``,
  less up to ``jitter`` [0.2] of it at random (so that many clients do not retry in step), at most
  ``max_wait`` [60 s];
* ``Retry-After`` from the server, in seconds or as an HTTP date, replaces that wait (capped by ``max_wait``)
  when ``honour_retry_after`` [True];
* ``statuses`` [408, 429, 500, 502, 503, 504] are retried, as are connection failures and timeouts; a model
  that says it is not ready (``/ready`` answers ``"ready": false``, 503 or 400) is retried the same way. Any
  other 4xx is refused at once (404: no such model, a usage error); a connection refused before the server
  ever answered fails at once (a wrong URL).

Every retry of an inference request re-sends its inputs, so it counts against ``max_queries`` (the server
saw them); every retry, of any request, is recorded (request, attempt, status or error, wait, time) and goes
into the signed evidence. Exhausted retries are :class:`RemoteUnavailable` (exit code 5: "could not
verify"), never a verdict.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import math
import random
import socket
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import numpy as np

from .. import untrusted
from ..errors import ExitCode, MalformedInput, UsageError, WmproofError
from .base import INPUT_DATATYPES, Answers, Oracle, as_inputs


class RemoteUnavailable(WmproofError):
    """The API could not be reached, was not ready, or kept failing: "could not verify" (exit code 5, I/O)."""

    exit_code = ExitCode.IO


# --------------------------------------------------------------------------------- binary tensor data

#: The binary tensor data extension's header: the length of the JSON part of a body that carries raw tensors.
BINARY_HEADER = "Inference-Header-Content-Length"
#: Open Inference Protocol datatypes as numpy types, little-endian as the extension lays them out (BYTES, a
#: length-prefixed string type, is never a tensor this project sends or reads).
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("|b1"),
    "UINT8": np.dtype("|u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("|i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
INTEGER_DATATYPES = frozenset(name for name, dtype in DATATYPES.items() if dtype.kind in "iu")
FLOAT_DATATYPES = frozenset(name for name, dtype in DATATYPES.items() if dtype.kind == "f")


def split_body(body: bytes | bytearray, header_length: str | None) -> tuple[Any, memoryview]:
    """A request or response body as its JSON document and the binary tensor bytes after it (empty when the
    ``Inference-Header-Content-Length`` header is absent: the whole body is JSON). ValueError says what is
    wrong, for the caller to report as a 400 (server) or a malformed answer (client)."""
    view = memoryview(body)
    if header_length is None:
        cut = len(body)
    else:
        header_length = header_length.strip()
        if not header_length.isdigit() or int(header_length) > len(body):
            raise ValueError(f"{BINARY_HEADER} must be a byte count within the body")
        cut = int(header_length)
    return parse_json(body if cut == len(body) else bytes(view[:cut])), view[cut:]


def parse_json(data: bytes) -> Any:
    """JSON from the other side of the connection, whatever it sent (:func:`wmproof.untrusted.parse_json`):
    ValueError for anything that is not a JSON document of reasonable depth."""
    try:
        return untrusted.parse_json(data)
    except ValueError:
        raise ValueError("the body is not JSON") from None


def binary_tensor(tail: memoryview, offset: int, tensor: dict[str, Any]) -> tuple[np.ndarray, int]:
    """The tensor described by ``tensor`` (name, datatype, shape, ``parameters.binary_data_size``) read from
    the binary part at ``offset``, and the offset after it; the size must be exactly shape x item size."""
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if datatype not in DATATYPES:
        raise ValueError(f"binary tensor {tensor.get('name')!r} has an unsupported datatype {datatype!r}")
    if not (isinstance(shape, list) and all(type(v) is int and v >= 0 for v in shape)):
        raise ValueError(f"binary tensor {tensor.get('name')!r} has no valid shape")
    dtype = DATATYPES[datatype]
    if type(size) is not int or size != math.prod(shape) * dtype.itemsize or offset + size > len(tail):
        raise ValueError(f"binary tensor {tensor.get('name')!r}: binary_data_size does not match its shape")
    array = np.frombuffer(tail[offset : offset + size], dtype=dtype).reshape(shape)
    return array, offset + size


def binary_body(document: dict[str, Any], tensors: list[np.ndarray]) -> tuple[bytes, int]:
    """A body of ``document`` (compact JSON) followed by ``tensors``' raw little-endian bytes, and the JSON
    part's length (the value of ``Inference-Header-Content-Length``)."""
    header = json.dumps(document, separators=(",", ":")).encode()
    return b"".join([header, *(t.tobytes() for t in tensors)]), len(header)


def little_endian(array: np.ndarray, datatype: str) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=DATATYPES[datatype])


# --------------------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries a request that failed for a reason that may pass (see the module docstring).
    Frozen: the policy a verification ran under is part of its evidence."""

    attempts: int = 6
    backoff: float = 0.5
    multiplier: float = 2.0
    max_wait: float = 60.0
    jitter: float = 0.2
    statuses: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
    honour_retry_after: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.multiplier < 1 or self.max_wait < 0:
            raise ValueError("a retry policy needs attempts >= 1, backoff >= 0, multiplier >= 1, max_wait >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("a retry policy's jitter is a fraction in [0, 1)")

    def wait(self, failures: int, retry_after: str | None, rng: random.Random, now: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th failed try of a request."""
        if self.honour_retry_after and retry_after:
            asked = parse_retry_after(retry_after, time.time() if now is None else now)
            if asked is not None:
                return min(asked, self.max_wait)
        delay = self.backoff * self.multiplier ** (failures - 1)
        return min(delay * (1.0 - self.jitter * rng.random()), self.max_wait)

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "statuses": sorted(self.statuses)}


def parse_retry_after(value: str, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delay-seconds, or an HTTP date (RFC 9110 section 10.2.3); None
    when it is neither (the policy's own backoff applies)."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass
class QueryRecord:
    input_sha256: str
    label: int
    time: float


@dataclass
class RetryRecord:
    """One failed try that was retried: what was asked, which try it was, what went wrong, how long the
    client waited before the next one."""

    request: str
    attempt: int
    inputs: int
    status: int | None
    error: str
    wait: float
    time: float


# ------------------------------------------------------------------------------------- transport

#: The largest answer read from a server (an inference answer for 1,024 images is well under 1 MB).
MAX_ANSWER = 64 << 20
#: Bounds on what model metadata may declare: classes, one input dimension, elements of one input.
MAX_CLASSES = 100_000
MAX_DIMENSION = 1 << 24
MAX_ELEMENTS = 1 << 26


class _Connections:
    """Keep-alive HTTP/1.1 connections to one server (``http.client``), reused while idle for less than
    ``IDLE`` seconds (servers close idle ones after a few seconds: uvicorn 5, nginx 75). Proxies as urllib
    finds them (``http_proxy``, ``https_proxy``, ``no_proxy``). Thread-safe: each request takes its own
    connection. A connection that the server closed while idle fails like any other (one retry of the
    policy, in the evidence): the client never re-sends anything behind the policy's back."""

    IDLE = 2.0

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        proxy = urllib.request.getproxies().get(self.scheme)
        self.proxy = None
        if proxy and not urllib.request.proxy_bypass(self.host):
            self.proxy = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        self._idle: list[tuple[float, http.client.HTTPConnection]] = []
        self._lock = threading.Lock()

    def _connect(self) -> http.client.HTTPConnection:
        if self.proxy is not None:
            host, port = self.proxy.hostname or "", self.proxy.port or 80
            if self.scheme == "https":
                connection: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=self.timeout)
                connection.set_tunnel(self.host, self.port)
                return connection
            return http.client.HTTPConnection(host, port, timeout=self.timeout)
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _take(self) -> http.client.HTTPConnection:
        now = time.monotonic()
        with self._lock:
            while self._idle:
                since, connection = self._idle.pop()
                if now - since < self.IDLE:
                    return connection
                connection.close()
        return self._connect()

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        target = self.prefix + path
        if self.proxy is not None and self.scheme == "http":
            target = f"http://{self.host}:{self.port}{target}"
        connection = self._take()
        expired = threading.Event()

        def expire() -> None:  # the whole exchange is bounded, not only each read (a byte every few seconds)
            expired.set()
            sock = connection.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        timer = threading.Timer(self.timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            declared = response.getheader("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_ANSWER:
                raise MalformedInput(f"the server's answer is {int(declared):,} bytes, more than {MAX_ANSWER:,}")
            chunks, size = [], 0
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > MAX_ANSWER:
                    raise MalformedInput(f"the server's answer is more than {MAX_ANSWER:,} bytes")
                chunks.append(chunk)
            data = b"".join(chunks)
        except BaseException as exc:
            connection.close()
            if expired.is_set() and not isinstance(exc, MalformedInput):
                raise TimeoutError(f"no complete answer within {self.timeout:g} s") from None
            raise
        finally:
            timer.cancel()
        if expired.is_set():
            connection.close()
            raise TimeoutError(f"no complete answer within {self.timeout:g} s")
        if response.will_close:
            connection.close()
        else:
            with self._lock:
                self._idle.append((time.monotonic(), connection))
        return response.status, response.headers, data

    def close(self) -> None:
        with self._lock:
            for _, connection in self._idle:
                connection.close()
            self._idle.clear()


# ----------------------------------------------------------------------------------------- client


@dataclass
class _Plan:
    """How to talk to this model, read from its metadata once."""

    input_name: str = "input"
    #: The declared input shape after the batch dimension (None: not declared); -1 for a variable dimension.
    input_tail: list[int] | None = None
    #: The largest batch the declared shape allows (a fixed first dimension), None when variable.
    max_batch: int | None = None
    label_output: str | None = None
    probabilities_output: str | None = None
    #: Whether the metadata lists outputs at all (when not, the answer's outputs are read by kind).
    outputs_declared: bool = False


@dataclass
class RemoteOracle(Oracle):
    """The Open Inference Protocol client (see the module docstring).

    ``retries`` and ``backoff`` are the short form of a :class:`RetryPolicy` (``retries + 1`` attempts);
    ``retry`` replaces them. ``binary``: None uses the binary tensor data extension when the server advertises
    it, True always, False never. ``input_shape`` (C, H, W) supplies what a server that declares no (or only a
    flat) input shape does not say; it is checked against what the server does declare."""

    url: str
    model_name: str
    timeout: float = 30.0
    retries: int = 5
    backoff: float = 0.5
    max_queries: int | None = None
    batch_size: int = 256
    progress: bool | None = None
    binary: bool | None = None
    input_shape: tuple[int, int, int] | None = None  # type: ignore[assignment]
    retry: RetryPolicy | None = None
    records: list[QueryRecord] = field(default_factory=list)
    retry_log: list[RetryRecord] = field(default_factory=list, init=False)
    #: Inputs sent to the API, re-sent ones included (what ``max_queries`` bounds).
    inputs_sent: int = field(default=0, init=False)
    metadata: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--url must be an http:// or https:// URL, not {self.url!r}")
        if self.batch_size < 1:
            raise UsageError("the batch size must be at least 1")
        if self.retry is None:
            self.retry = RetryPolicy(attempts=max(1, self.retries + 1), backoff=self.backoff)
        self.url = self.url.rstrip("/")
        self._rng = random.Random()
        self._http = _Connections(self.url, self.timeout)
        self._reached = False
        self._model_path = f"/v2/models/{quote(self.model_name, safe='')}"
        self.server = self._get_json("/v2", missing_ok=True) or {}
        self._wait_until_ready()
        self.metadata = self._get_json(self._model_path)
        self._plan = self._read_metadata(self.metadata)
        extensions = self.server.get("extensions") if isinstance(self.server, dict) else None
        advertised = isinstance(extensions, list) and "binary_tensor_data" in extensions
        self.use_binary = advertised if self.binary is None else bool(self.binary)

    # ------------------------------------------------------------------------------------- metadata

    def _read_metadata(self, metadata: Any) -> _Plan:
        """What the metadata declares, checked; what it leaves out is learnt from the answers."""
        plan = _Plan()
        override = self.input_shape
        try:
            if not isinstance(metadata, dict):
                raise ValueError
            inputs = metadata.get("inputs") or []
            outputs = metadata.get("outputs") or []
            if not isinstance(inputs, list) or not isinstance(outputs, list):
                raise ValueError
            declared: tuple[int, int, int] | None = None
            if inputs:
                first = inputs[0]
                plan.input_name = str(first.get("name") or "input")
                self.input_datatype = first.get("datatype", "FP32")
                shape = first.get("shape")
                if shape is not None:
                    if not (isinstance(shape, list) and len(shape) >= 2 and all(type(v) is int for v in shape)):
                        raise ValueError
                    plan.input_tail = shape[1:]
                    plan.max_batch = shape[0] if shape[0] > 0 else None
                    if len(plan.input_tail) == 3 and all(v > 0 for v in plan.input_tail):
                        declared = tuple(plan.input_tail)  # type: ignore[assignment]
            if self.input_datatype not in INPUT_DATATYPES:
                raise MalformedInput(
                    f"{self.url}: model {self.model_name!r} takes {self.input_datatype} inputs; wmproof sends FP32 "
                    "images or INT64 token ids"
                )
            by_name = {o["name"]: o for o in outputs}
            plan.outputs_declared = bool(by_name)
            plan.label_output = "label" if "label" in by_name else _find_label(outputs)
            plan.probabilities_output = "probabilities" if "probabilities" in by_name else _find_probabilities(outputs)
            if plan.outputs_declared and plan.label_output is None and plan.probabilities_output is None:
                raise ValueError
            self.reveals_probabilities = plan.probabilities_output is not None or not plan.outputs_declared
            classes = (metadata.get("parameters") or {}).get("num_classes")
            if classes is None and plan.probabilities_output is not None:
                k = by_name[plan.probabilities_output]["shape"][-1]
                classes = k if type(k) is int and k > 0 else None
            if classes is not None and (type(classes) is not int or not 2 <= classes <= MAX_CLASSES):
                raise ValueError
            if plan.input_tail is not None and (
                any(v > MAX_DIMENSION for v in plan.input_tail)
                or math.prod(max(v, 1) for v in plan.input_tail) > MAX_ELEMENTS
            ):
                raise ValueError
            self.num_classes = int(classes) if classes is not None else None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError):
            raise MalformedInput(
                f"{self.url}: the model's metadata is not what the Open Inference Protocol says"
            ) from None
        if override is not None:
            override = tuple(int(v) for v in override)  # type: ignore[assignment]
            if len(override) != 3 or min(override) < 1:  # type: ignore[arg-type]
                raise UsageError(f"the input shape is C, H, W (three positive sizes), not {override}")
            tail = plan.input_tail
            if tail is not None and all(v > 0 for v in tail) and math.prod(tail) != math.prod(override):  # type: ignore[arg-type]
                raise UsageError(
                    f"the input shape {'x'.join(map(str, override))} does not fit the {plan.input_name!r} input "  # type: ignore[arg-type]
                    f"that {self.url} declares ({tail})"
                )
            self.input_shape = override
        else:
            self.input_shape = declared
        return plan

    def require_input_shape(self, option: str = "input_shape=(C, H, W)") -> tuple[int, int, int]:
        """The input shape (C, H, W), for callers that need it before any query (a model extraction); a
        one-line usage error naming ``option`` (the caller's way to supply it) when the server declares none."""
        if self.input_shape is None:
            declared = "a flat input" if self._plan.input_tail is not None else "no input shape"
            raise UsageError(
                f"{self.url}: model {self.model_name!r} declares {declared}; give its C x H x W inputs with {option}"
            )
        return self.input_shape

    def _request_shape(self, item: tuple[int, ...]) -> tuple[int, ...]:
        """The shape after the batch dimension in which items of shape ``item`` are sent: the declared one
        (flat, say) once the element count is checked, else the items' own."""
        tail = self._plan.input_tail
        if tail is None:
            return item
        count = math.prod(item)
        if all(v > 0 for v in tail):
            if math.prod(tail) != count:
                raise UsageError(
                    f"{self.url}: the inputs have {count} values each ({'x'.join(map(str, item))}); the model's "
                    f"{self._plan.input_name!r} input takes {math.prod(tail)} ({tail})"
                )
            return tuple(tail)
        if len(tail) == 1:
            return (count,)
        if len(tail) == len(item) and all(v in (-1, w) for v, w in zip(tail, item, strict=True)):
            return item
        known = math.prod(v for v in tail if v > 0)
        if tail.count(-1) == 1 and count % known == 0:
            return tuple(v if v > 0 else count // known for v in tail)
        raise UsageError(f"{self.url}: {'x'.join(map(str, item))} inputs do not fit the declared shape {tail}")

    # ------------------------------------------------------------------------------------------- HTTP

    def _get_json(self, path: str, *, missing_ok: bool = False) -> Any:
        _, data = self._exchange("GET", path, missing_ok=missing_ok)
        if data is None:
            return None
        try:
            return parse_json(data)
        except ValueError:
            raise MalformedInput(f"{self.url}{path}: the server's answer is not JSON") from None

    def _wait_until_ready(self) -> None:
        """A model that is loading says so (``ready: false`` or 503): wait for it as the policy allows."""

        def not_ready(status: int, data: bytes) -> str | None:
            if status == 400:  # the protocol: "a 4xx status code indicates false" (Triton answers 400)
                return f"the model is not ready: {_error_detail(data, None)}"
            try:
                answer = parse_json(data)
            except ValueError:  # an empty 200 is "ready" in the protocol's own words
                return None
            if isinstance(answer, dict) and answer.get("ready") is False:
                return "the model says it is not ready"
            return None

        self._exchange("GET", f"{self._model_path}/ready", refuse=not_ready, what="not ready")

    def _spend(self, n: int) -> None:
        if self.max_queries is not None and self.inputs_sent + n > self.max_queries:
            raise UsageError(
                f"the query budget (--max-queries {self.max_queries}) would be exceeded: "
                f"{self.inputs_sent} used, {n} more needed"
            )
        self.inputs_sent += n

    def _exchange(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        inputs: int = 0,
        missing_ok: bool = False,
        refuse: Callable[[int, bytes], str | None] | None = None,
        what: str = "HTTP",
    ) -> tuple[http.client.HTTPMessage | None, bytes | None]:
        """One request, retried as the policy says; the answer's headers and body (None, None for a 404 that
        ``missing_ok`` allows). ``refuse`` turns a 200 or 400 into a retryable failure (a model not ready yet)."""
        policy = self.retry
        assert policy is not None
        request = f"{method} {path}"
        failures = 0
        while True:
            if inputs:
                self._spend(inputs)
            status: int | None = None
            problem: str | None = None
            retry_after = None
            try:
                status, answer_headers, data = self._http.request(method, path, body, headers or {})
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, ConnectionRefusedError) and not self._reached:  # never reached: a wrong URL
                    raise RemoteUnavailable(f"{self.url}: connection refused (is the API running?)") from None
                error = _describe_error(exc)
            else:
                self._reached = True
                if refuse is not None and status in (200, 400):
                    problem = refuse(status, data)
                if 200 <= status < 300 and problem is None:
                    return answer_headers, data
                if status == 404:
                    if missing_ok:
                        return None, None
                    detail = _error_detail(data, answer_headers)
                    raise UsageError(f"{self.url}: no model named {self.model_name!r} ({detail})")
                detail = problem or _error_detail(data, answer_headers)
                if problem is None and status not in policy.statuses:
                    raise MalformedInput(f"{self.url}: the server refused the request: HTTP {status} ({detail})")
                error = f"HTTP {status} ({detail})"
                retry_after = answer_headers.get("Retry-After")
            failures += 1
            if failures >= policy.attempts:
                if status is None:
                    raise RemoteUnavailable(f"{self.url}: unreachable after {failures} tries ({error})")
                if problem is not None or (what == "not ready" and status == 503):
                    raise RemoteUnavailable(
                        f"{self.url}: model {self.model_name!r} not ready after {failures} tries ({error})"
                    )
                raise RemoteUnavailable(f"{self.url}: HTTP {status} after {failures} tries ({detail})")
            wait = policy.wait(failures, retry_after, self._rng)
            self._note(request, failures, inputs, status, error, wait)
            time.sleep(wait)

    def _note(self, request: str, attempt: int, inputs: int, status: int | None, error: str, wait: float) -> None:
        self.retry_log.append(RetryRecord(request, attempt, inputs, status, error[:200], round(wait, 3), time.time()))

    # ----------------------------------------------------------------------------------------- oracle

    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        """Ask for labels, and for probabilities only when wanted and revealed (an API that is asked for labels
        sends nothing else, so a hard-label adversary sees nothing else)."""
        inputs = as_inputs(inputs, self.input_datatype)
        want_probabilities = probabilities and self.reveals_probabilities
        n = inputs.shape[0]
        if self.max_queries is not None and self.inputs_sent + n > self.max_queries:
            raise UsageError(
                f"the query budget (--max-queries {self.max_queries}) would be exceeded: "
                f"{self.inputs_sent} used, {n} more needed"
            )
        from ..engine.progress import progress_bar

        tail = self._request_shape(tuple(inputs.shape[1:]))
        step = min(self.batch_size, self._plan.max_batch or self.batch_size)
        labels, posteriors = [], []
        with progress_bar(f"querying {self.model_name}", math.ceil(n / step), enabled=self.progress) as update:
            for start in range(0, n, step):
                batch = inputs[start : start + step]
                body, headers = self._encode(batch.reshape((len(batch), *tail)), want_probabilities)
                answer_headers, data = self._exchange(
                    "POST", f"{self._model_path}/infer", body, headers, inputs=len(batch)
                )
                got, soft = self._decode(answer_headers, data, len(batch), want_probabilities)  # type: ignore[arg-type]
                if want_probabilities:
                    posteriors.append(soft)
                now = time.time()
                for row, label in zip(batch, got, strict=True):
                    self.records.append(QueryRecord(hashlib.sha256(row.tobytes()).hexdigest(), int(label), now))
                labels.append(got)
                update()
        return Answers(
            labels=np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64),
            probabilities=np.concatenate(posteriors) if want_probabilities and posteriors else None,
        )

    def _encode(self, batch: np.ndarray, want_probabilities: bool) -> tuple[bytes, dict[str, str]]:
        plan = self._plan
        tensor: dict[str, Any] = {"name": plan.input_name, "shape": list(batch.shape), "datatype": self.input_datatype}
        document: dict[str, Any] = {"inputs": [tensor]}
        names = []
        if plan.label_output is not None:
            names.append(plan.label_output)
        if plan.probabilities_output is not None and (want_probabilities or plan.label_output is None):
            names.append(plan.probabilities_output)
        if plan.outputs_declared:
            document["outputs"] = [
                {"name": name, **({"parameters": {"binary_data": True}} if self.use_binary else {})} for name in names
            ]
        elif self.use_binary:
            document["parameters"] = {"binary_data_output": True}
        if not self.use_binary:
            tensor["data"] = batch.reshape(-1).tolist()
            return json.dumps(document, separators=(",", ":")).encode(), {"Content-Type": "application/json"}
        raw = little_endian(batch, self.input_datatype)
        tensor["parameters"] = {"binary_data_size": raw.nbytes}
        body, header_length = binary_body(document, [raw])
        return body, {"Content-Type": "application/octet-stream", BINARY_HEADER: str(header_length)}

    def _decode(
        self, headers: http.client.HTTPMessage, data: bytes, n: int, want_probabilities: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The labels (and the probabilities when wanted) of an answer to ``n`` queries, checked."""
        try:
            document, tail = split_body(data, headers.get(BINARY_HEADER))
            outputs = _read_outputs(document, tail)
        except _BadOutput as exc:
            raise MalformedInput(
                f"{self.url}: the server answered {n} queries with a malformed {exc.name!r} output ({exc})"
            ) from None
        except ValueError as exc:
            raise MalformedInput(f"{self.url}: the server's answer is not a valid inference response ({exc})") from None
        plan = self._plan
        label_name = plan.label_output
        probabilities_name = plan.probabilities_output
        if not plan.outputs_declared:  # read the answer by kind
            label_name = "label" if "label" in outputs else _find_label_answer(outputs, n)
            probabilities_name = (
                "probabilities" if "probabilities" in outputs else _find_probabilities_answer(outputs, n)
            )
        soft = None
        if probabilities_name is not None and (want_probabilities or label_name is None):
            soft = self._probabilities(outputs.get(probabilities_name), n, strict=want_probabilities)
        elif want_probabilities:
            raise MalformedInput(f"{self.url}: the server answered {n} queries with a malformed 'probabilities' output")
        if label_name is not None:
            labels = self._labels(outputs.get(label_name), n)
        elif soft is not None:
            labels = soft.argmax(1).astype(np.int64)
        else:
            raise MalformedInput(f"{self.url}: the server answered {n} queries with a malformed 'label' output")
        return labels, (soft.astype(np.float32) if want_probabilities and soft is not None else None)

    def _labels(self, output: tuple[str, list[int], np.ndarray] | None, n: int) -> np.ndarray:
        if output is None or output[0] not in INTEGER_DATATYPES or output[1] not in ([n], [n, 1]):
            raise MalformedInput(f"{self.url}: the server answered {n} queries with a malformed 'label' output")
        values = output[2].reshape(n).astype(np.int64)
        if n and (values.min() < 0 or (self.num_classes is not None and values.max() >= self.num_classes)):
            top = "" if self.num_classes is None else f"..{self.num_classes - 1}"
            raise MalformedInput(f"{self.url}: the server answered labels outside 0{top}")
        return values

    def _probabilities(self, output: tuple[str, list[int], np.ndarray] | None, n: int, *, strict: bool) -> np.ndarray:
        """The probabilities output, [n, K]; ``strict``: they must be probabilities (values in [0, 1]), not
        merely scores whose argmax is the label."""
        k = self.num_classes
        if (
            output is None
            or output[0] not in FLOAT_DATATYPES
            or len(output[1]) != 2
            or output[1][0] != n
            or output[1][1] < 1
            or (k is not None and output[1][1] != k)
        ):
            raise MalformedInput(f"{self.url}: the server answered {n} queries with a malformed 'probabilities' output")
        values = output[2].astype(np.float64)
        if not np.isfinite(values).all():
            raise MalformedInput(f"{self.url}: the server answered probabilities that are not finite")
        if strict and values.size and (values.min() < 0.0 or values.max() > 1.0 + 1e-6):
            raise MalformedInput(f"{self.url}: the server answered probabilities outside [0, 1]")
        if k is None:
            self.num_classes = int(output[1][1])  # learnt once, then every answer must agree
        return values

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "remote-api",
            "url": self.url,
            "model_name": self.model_name,
            "server": self.server,
            "model_metadata_sha256": hashlib.sha256(
                json.dumps(self.metadata, sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest(),
            "queries": len(self.records),
            "inputs_sent": self.inputs_sent,
            "retries": len(self.retry_log),
            "binary_tensor_data": self.use_binary,
        }

    def close(self) -> None:
        """Closes the idle keep-alive connections (they are closed anyway when the oracle is collected)."""
        self._http.close()


# ------------------------------------------------------------------------------------------ helpers


def _find_label(outputs: list[dict[str, Any]]) -> str | None:
    """A declared output that can only be class labels: integers, one per input ([-1] or [-1, 1])."""
    found = [
        o["name"]
        for o in outputs
        if o.get("datatype") in INTEGER_DATATYPES and isinstance(o.get("shape"), list) and len(o["shape"]) <= 2
        and (len(o["shape"]) < 2 or o["shape"][1] == 1)
    ]  # fmt: skip
    return found[0] if len(found) == 1 else None


def _find_probabilities(outputs: list[dict[str, Any]]) -> str | None:
    """A declared output that can only be per-class scores: floats, [-1, K]."""
    found = [
        o["name"]
        for o in outputs
        if o.get("datatype") in FLOAT_DATATYPES and isinstance(o.get("shape"), list) and len(o["shape"]) == 2
        and o["shape"][1] != 1
    ]  # fmt: skip
    return found[0] if len(found) == 1 else None


def _find_label_answer(outputs: dict[str, tuple[str, list[int], np.ndarray]], n: int) -> str | None:
    found = [name for name, (dt, shape, _) in outputs.items() if dt in INTEGER_DATATYPES and shape in ([n], [n, 1])]
    return found[0] if len(found) == 1 else None


def _find_probabilities_answer(outputs: dict[str, tuple[str, list[int], np.ndarray]], n: int) -> str | None:
    found = [
        name
        for name, (dt, shape, _) in outputs.items()
        if dt in FLOAT_DATATYPES and len(shape) == 2 and shape[0] == n and shape[1] > 1
    ]
    return found[0] if len(found) == 1 else None


class _BadOutput(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _read_outputs(document: Any, tail: memoryview) -> dict[str, tuple[str, list[int], np.ndarray]]:
    """An inference response's outputs by name: (datatype, shape, values), JSON or binary; JSON numbers are
    checked to be integers for integer datatypes (not floats, not booleans) and numbers for float ones."""
    if not isinstance(document, dict) or not isinstance(document.get("outputs"), list):
        raise ValueError("no 'outputs'")
    found: dict[str, tuple[str, list[int], np.ndarray]] = {}
    offset = 0
    for output in document["outputs"]:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise ValueError("an output without a name")
        name, datatype, shape = output["name"], output.get("datatype"), output.get("shape")
        if datatype not in DATATYPES or not (isinstance(shape, list) and all(type(v) is int and v >= 0 for v in shape)):
            raise _BadOutput(name, "no valid datatype and shape")
        if "binary_data_size" in (output.get("parameters") or {}):
            try:
                array, offset = binary_tensor(tail, offset, output)
            except ValueError as exc:
                raise _BadOutput(name, str(exc)) from None
        else:
            data = _flatten(output.get("data"))
            if data is None or len(data) != math.prod(shape):
                raise _BadOutput(name, f"'data' does not hold {math.prod(shape)} values")
            if datatype in INTEGER_DATATYPES:
                if not all(type(v) is int for v in data):
                    raise _BadOutput(name, f"{datatype} values must be integers")
                if not all(-(1 << 63) <= v < 1 << 63 for v in data):
                    raise _BadOutput(name, f"{datatype} values out of range")
                array = np.asarray(data, dtype=np.int64).reshape(shape)
            elif datatype in FLOAT_DATATYPES:
                if not all(type(v) in (int, float) for v in data):
                    raise _BadOutput(name, f"{datatype} values must be numbers")
                try:
                    array = np.asarray(data, dtype=np.float64).reshape(shape)
                except OverflowError:
                    raise _BadOutput(name, f"{datatype} values out of range") from None
            else:
                array = np.asarray(data).reshape(shape)
        found[name] = (datatype, shape, array)
    if offset != len(tail):
        raise ValueError("binary data left over after the outputs")
    return found


def _flatten(data: Any) -> list[Any] | None:
    """``data`` flat (the protocol allows nested row-major lists), or None when it is not a list."""
    if not isinstance(data, list):
        return None
    if not data or not isinstance(data[0], list):
        return data
    flat: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    return flat


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__


def _error_detail(data: bytes, headers: http.client.HTTPMessage | None) -> str:
    try:
        document = parse_json(data)
        if isinstance(document, dict) and "error" in document:
            return str(document["error"])[:200]
    except ValueError:
        pass
    text = data[:200].decode("utf-8", "replace").strip()
    return text or "no detail"


def evidence_document(oracle: RemoteOracle, verdict: dict[str, Any]) -> dict[str, Any]:
    """What a remote verification rests on: the server's identity, every query (input digest, answer, time),
    every retry (request, attempt, status or error, wait, time) under the retry policy, and the verdict;
    signed by the verifier (``wmproof verify --evidence``)."""
    return {
        "format": "wmproof-remote-evidence/1",
        "server": oracle.describe(),
        "queries": [
            {"input_sha256": r.input_sha256, "label": r.label, "time": round(r.time, 3)} for r in oracle.records
        ],
        "retry_policy": oracle.retry.describe() if oracle.retry is not None else None,
        "retries": [{**asdict(r), "time": round(r.time, 3)} for r in oracle.retry_log],
        "verdict": verdict,
    }

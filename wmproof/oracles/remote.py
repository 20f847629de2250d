"""A suspect behind a prediction API that speaks the Open Inference Protocol (KServe v2 REST).

The client batches queries, retries with exponential backoff on connection failures, 5xx and 429 (honouring
``Retry-After``), times requests out, and stops at a query budget. It checks every answer's shape and
values before using it: a server that answers with the wrong shape, a label out of range, or garbage yields
a clear error, never a verdict. It keeps the evidence: for every query, the SHA-256 of the input as sent,
the label answered and when, with the server's identity (its metadata), so that a verdict can be backed by
a signed transcript (:func:`evidence_document`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

from ..errors import ExitCode, MalformedInput, UsageError, WmproofError
from .base import INPUT_DATATYPES, Answers, Oracle, as_inputs


class RemoteUnavailable(WmproofError):
    """The API could not be reached or kept failing: "could not verify" (exit code 5, I/O)."""

    exit_code = ExitCode.IO


@dataclass
class QueryRecord:
    input_sha256: str
    label: int
    time: float


@dataclass
class RemoteOracle(Oracle):
    url: str
    model_name: str
    timeout: float = 30.0
    retries: int = 5
    backoff: float = 0.5
    max_queries: int | None = None
    batch_size: int = 256
    progress: bool | None = None
    records: list[QueryRecord] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--url must be an http:// or https:// URL, not {self.url!r}")
        self.url = self.url.rstrip("/")
        self.server = self._request("GET", "/v2")
        self.metadata = self._request("GET", f"/v2/models/{quote(self.model_name, safe='')}")
        try:
            shape = self.metadata["inputs"][0]["shape"]
            self.input_shape = tuple(int(v) for v in shape[1:])  # type: ignore[assignment]
            outputs = {o["name"]: o for o in self.metadata["outputs"]}
            self.reveals_probabilities = "probabilities" in outputs
            self.input_datatype = self.metadata["inputs"][0].get("datatype", "FP32")
            if self.input_datatype not in INPUT_DATATYPES:
                raise ValueError
            classes = self.metadata.get("parameters", {}).get("num_classes")
            if classes is None and self.reveals_probabilities:
                classes = outputs["probabilities"]["shape"][-1]
            self.num_classes = int(classes) if classes is not None else None
            if "label" not in outputs or len(self.input_shape) != 3:  # type: ignore[arg-type]
                raise ValueError
        except (KeyError, IndexError, TypeError, ValueError):
            raise MalformedInput(
                f"{self.url}: the model's metadata is not what the Open Inference Protocol says"
            ) from None

    # ------------------------------------------------------------------------------------------- HTTP

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        delay = self.backoff
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = response.read()
                try:
                    return json.loads(payload)
                except ValueError:
                    raise MalformedInput(f"{self.url}{path}: the server's answer is not JSON") from None
            except urllib.error.HTTPError as exc:
                status = exc.code
                detail = _error_message(exc)
                if status == 429 or status >= 500:
                    if attempt == self.retries:
                        raise RemoteUnavailable(
                            f"{self.url}: HTTP {status} after {self.retries + 1} tries ({detail})"
                        ) from None
                    retry_after = exc.headers.get("Retry-After") if exc.headers else None
                    wait = float(retry_after) if retry_after and retry_after.isdigit() else delay
                    time.sleep(min(wait, 60.0))
                    delay *= 2
                    continue
                if status == 404:
                    raise UsageError(f"{self.url}: no model named {self.model_name!r} ({detail})") from None
                raise MalformedInput(f"{self.url}: the server refused the request: HTTP {status} ({detail})") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, ConnectionRefusedError) and not self.server:  # never reached: a wrong URL
                    raise RemoteUnavailable(f"{self.url}: connection refused (is the API running?)") from None
                if attempt == self.retries:
                    raise RemoteUnavailable(
                        f"{self.url}: unreachable after {self.retries + 1} tries ({reason})"
                    ) from None
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------------------------------- oracle

    def query(self, inputs: np.ndarray, *, probabilities: bool = False) -> Answers:
        """Ask for labels, and for probabilities only when wanted and revealed (an API that is asked for labels
        sends nothing else, so a hard-label adversary sees nothing else)."""
        inputs = as_inputs(inputs, self.input_datatype)
        want_probabilities = probabilities and self.reveals_probabilities
        n = inputs.shape[0]
        if self.max_queries is not None and len(self.records) + n > self.max_queries:
            raise UsageError(
                f"the query budget (--max-queries {self.max_queries}) would be exceeded: "
                f"{len(self.records)} used, {n} more needed"
            )
        from ..engine.progress import progress_bar

        labels, posteriors = [], []
        path = f"/v2/models/{quote(self.model_name, safe='')}/infer"
        outputs = [{"name": "label"}] + ([{"name": "probabilities"}] if want_probabilities else [])
        with progress_bar(
            f"querying {self.model_name}", math.ceil(n / self.batch_size), enabled=self.progress
        ) as update:
            for start in range(0, n, self.batch_size):
                batch = inputs[start : start + self.batch_size]
                body = {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": list(batch.shape),
                            "datatype": self.input_datatype,
                            "data": batch.reshape(-1).tolist(),
                        }
                    ],
                    "outputs": outputs,
                }
                answer = self._request("POST", path, body)
                got = self._labels(answer, len(batch))
                if want_probabilities:
                    posteriors.append(self._probabilities(answer, len(batch)))
                now = time.time()
                for row, label in zip(batch, got, strict=True):
                    self.records.append(QueryRecord(hashlib.sha256(row.tobytes()).hexdigest(), int(label), now))
                labels.append(got)
                update()
        return Answers(
            labels=np.concatenate(labels).astype(np.int64),
            probabilities=np.concatenate(posteriors) if want_probabilities else None,
        )

    def _labels(self, answer: Any, n: int) -> np.ndarray:
        try:
            outputs = {o["name"]: o for o in answer["outputs"]}
            label = outputs["label"]
            data = label["data"]
            if label["shape"] != [n] or len(data) != n or not all(type(v) is int for v in data):
                raise ValueError
            values = np.asarray(data, dtype=np.int64)
        except (KeyError, TypeError, ValueError):
            raise MalformedInput(
                f"{self.url}: the server answered {n} queries with a malformed 'label' output"
            ) from None
        if self.num_classes is not None and (values.min() < 0 or values.max() >= self.num_classes):
            raise MalformedInput(f"{self.url}: the server answered labels outside 0..{self.num_classes - 1}")
        return values

    def _probabilities(self, answer: Any, n: int) -> np.ndarray:
        k = self.num_classes
        try:
            output = next(o for o in answer["outputs"] if o["name"] == "probabilities")
            data = output["data"]
            if (
                output["shape"] != [n, k]
                or not isinstance(data, list)
                or len(data) != n * k
                or not all(type(v) in (int, float) for v in data)
            ):
                raise ValueError
            values = np.asarray(data, dtype=np.float64).reshape(n, k)
        except (KeyError, TypeError, ValueError, OverflowError, StopIteration):
            raise MalformedInput(
                f"{self.url}: the server answered {n} queries with a malformed 'probabilities' output"
            ) from None
        if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0 + 1e-6:
            raise MalformedInput(f"{self.url}: the server answered probabilities outside [0, 1]")
        return values.astype(np.float32)

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
        }


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))[:200]
    except Exception:
        return str(exc.reason)[:200]


def evidence_document(oracle: RemoteOracle, verdict: dict[str, Any]) -> dict[str, Any]:
    """What a remote verification rests on: the server's identity, every query (input digest, answer, time)
    and the verdict; signed by the verifier (``wmproof verify --evidence``)."""
    return {
        "format": "wmproof-remote-evidence/1",
        "server": oracle.describe(),
        "queries": [
            {"input_sha256": r.input_sha256, "label": r.label, "time": round(r.time, 3)} for r in oracle.records
        ],
        "verdict": verdict,
    }

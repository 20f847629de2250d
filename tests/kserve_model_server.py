"""KServe's own ModelServer serving a wmproof model from Python, for tests/test_serve_ecosystem.py: the
server people actually deploy, answering the way it answers by default.

    python tests/kserve_model_server.py MODEL_FILE PORT

Two models, each a ``kserve.Model`` around the same trained model file:

* ``probs``: declares nothing in its metadata (KServe's default ``get_input_types`` / ``get_output_types``)
  and answers only the class probabilities, as ``output-0`` (FP32, [N, 10]);
* ``labels``: declares a flat input (``input-0``, FP32, [-1, 784]) and a label output shaped [N, 1] (``predict``,
  INT64: the numpy codec's column), and refuses any other input shape.

Both honour the binary tensor data extension as KServe does (binary inputs always; binary outputs when the
request asks). KServe binds 0.0.0.0; this points its REST server at 127.0.0.1 before it starts.
"""

from __future__ import annotations

import sys

MODEL_FILE, PORT = sys.argv[1], int(sys.argv[2])
sys.argv = sys.argv[:1]  # kserve parses the command line when imported

import numpy as np  # noqa: E402
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer  # noqa: E402
from kserve.errors import InvalidInput  # noqa: E402
from kserve.protocol.rest import server as rest_server  # noqa: E402

from wmproof.oracles.local import LocalModelOracle  # noqa: E402

_init = rest_server.RESTServer.__init__


def _loopback(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    _init(self, *args, **kwargs)
    self.config.host = "127.0.0.1"


rest_server.RESTServer.__init__ = _loopback  # type: ignore[method-assign]


class Probabilities(Model):
    def __init__(self, name: str, oracle: LocalModelOracle) -> None:
        super().__init__(name)
        self.oracle = oracle

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def images(self, payload: InferRequest) -> np.ndarray:
        x = payload.inputs[0].as_numpy().astype(np.float32)
        return x.reshape(len(x), 1, 28, 28)

    def respond(self, payload: InferRequest, name: str, values: np.ndarray, datatype: str) -> InferResponse:
        output = InferOutput(name, list(values.shape), datatype, data=values)
        return InferResponse(
            response_id=payload.id or "",
            model_name=self.name,
            infer_outputs=[output],
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        answers = self.oracle.query(self.images(payload), probabilities=True)
        return self.respond(payload, "output-0", answers.probabilities, "FP32")


class Labels(Probabilities):
    def get_input_types(self) -> list[dict]:
        return [{"name": "input-0", "datatype": "FP32", "shape": [-1, 784]}]

    def get_output_types(self) -> list[dict]:
        return [{"name": "predict", "datatype": "INT64", "shape": [-1, 1]}]

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        x = payload.inputs[0].as_numpy()
        if x.ndim != 2 or x.shape[1] != 784:
            raise InvalidInput(f"input-0 is [N, 784], not {list(x.shape)}")
        labels = self.oracle.query(self.images(payload)).labels.reshape(-1, 1).astype(np.int64)
        return self.respond(payload, "predict", labels, "INT64")


if __name__ == "__main__":
    oracle = LocalModelOracle.from_file(MODEL_FILE, "cpu")
    models = [Probabilities("probs", oracle), Labels("labels", oracle)]
    for model in models:
        model.load()
    ModelServer(http_port=PORT, enable_grpc=False, workers=1).start(models)

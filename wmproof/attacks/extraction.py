"""Model extraction through a prediction API (Tramèr et al. 2016, "Stealing Machine Learning Models via
Prediction APIs"; Orekondy et al. 2019, "Knockoff Nets"; the feature-sharing paper, sections 2 and 4): the
adversary never sees the weights. It sends inputs of its choice to the victim, and trains a model of its own
to answer as the victim does (section 2, eq. 1: min over the stolen model's parameters of
J(f_stolen(x), f_victim(x)), x drawn by the adversary).

* **Queries** (``data``): the task's own images without their labels (``task``, the default: the threat
  model of section 3, an adversary who knows the training distribution), another data set's images (e.g.
  ``fashion-mnist`` for an MNIST victim, Orekondy et al.'s "natural images from elsewhere"), or uniform
  noise (``noise``). Task and data-set images are the adversary's last ones of the training split.
* **Labels** (``labels``): ``soft`` learns the victim's posteriors (cross-entropy to them, which is the
  KL divergence up to a constant); ``hard`` learns its top-1 labels only, and asks the API for nothing else;
  ``auto`` is soft when the API reveals probabilities, hard otherwise. Whatever the API reveals is used as
  it comes: quantized posteriors (``wmproof serve --output quantized --levels k``) are renormalised to sum
  to one, a row rounded to all zeros falls back to its label. ``levels`` k quantizes on the adversary's side
  too (section 4.3's quantization attack, 1000 levels down to 2).
* **Budget**: exactly ``queries`` inputs are sent for training, in batches; the stolen model's agreement
  with the victim is measured on ``agreement`` further test images, counted apart (0 skips it).

The stolen model is trained from scratch (seeded) with the chosen architecture's recipe; ``arch`` defaults
to the victim's when the victim is a model file (the threat model grants the adversary the architecture).
With ``init`` (a model file) it is instead fine-tuned from a public pretrained model, as Knockoff Nets'
adversary starts from ImageNet weights (Orekondy et al. 2019, section 5) and the feature-sharing paper's text
thieves from BERT (its section 4: owner and adversary then share the pretrained encoder); the file fixes the
architecture.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..engine.data import image_dataset_names
from ..errors import UsageError
from ..schemes.base import as_model_input
from .base import AttackContext, AttackResult, OracleAttack, Param, Strength

QUERY_SOURCES = ("task", "noise", *image_dataset_names())


def quantize(probabilities: np.ndarray, levels: int) -> np.ndarray:
    """Round to ``levels`` evenly spaced values in [0, 1], as :class:`wmproof.oracles.modes.QuantizedPosteriors`
    does on the server's side."""
    step = levels - 1
    return (np.round(probabilities * step) / step).astype(np.float32)


def soft_targets(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Posteriors as training targets: each row renormalised to sum to one; a row with nothing left (every
    class rounded to 0 by a coarse quantization) becomes its label, one-hot."""
    p = np.asarray(probabilities, dtype=np.float64)
    totals = p.sum(axis=1, keepdims=True)
    one_hot = np.eye(p.shape[1])[labels]
    return np.where(totals > 0, p / np.where(totals > 0, totals, 1.0), one_hot).astype(np.float32)


class ModelExtraction(OracleAttack):
    """Train a model of the adversary's own on the victim's answers to its queries."""

    name = "extract"
    citation = "Tramèr et al. 2016; Orekondy et al. 2019; feature-sharing paper 2 and 4"
    #: The thief's query budget (Tramèr et al. 2016; the feature-sharing paper queries 10,000-60,000).
    strength = Strength("queries", (1000, 3000, 10000), quick=1000)
    parameters = {
        "queries": Param(int, 10_000, "inputs sent to the victim for training (the query budget)", min=1),
        "query_data": Param(
            str,
            "task",
            "what is sent: the task's images without labels, uniform noise, or a data set's images",
            choices=QUERY_SOURCES,
        ),
        "labels": Param(
            str,
            "auto",
            "soft (posteriors), hard (top-1 only), auto (soft when the API reveals probabilities)",
            choices=("auto", "soft", "hard"),
        ),
        "levels": Param(int, 0, "quantize the posteriors to this many levels first (0: as received)", min=0),
        "arch": Param(str, None, "the stolen model's architecture (default: the victim's, when it is a model file)"),
        "init": Param(str, None, "a public pretrained model file to fine-tune from (default: train from scratch)"),
        "epochs": Param(int, 20, "training epochs of the stolen model", min=1),
        "lr": Param(float, None, "learning rate (default: the architecture's recipe)", min=0.0, min_exclusive=True),
        "agreement": Param(
            int, 2_000, "test images, queried apart, on which agreement with the victim is measured", min=0
        ),  # fmt: skip
    }

    def plan(self, victim: Any, options: Mapping[str, Any], start: Any = None) -> tuple[str, str]:
        """(architecture, labels) of the extraction, or a one-line error before any query; ``start`` is the
        ``init`` model when the caller has read it already."""
        from ..engine.models import architecture

        if victim.num_classes is None or victim.input_shape is None:
            raise UsageError("the victim does not say its classes and input shape; extraction needs both")
        arch = options["arch"] or _victim_architecture(victim)
        if options.get("init"):
            start = start if start is not None else _pretrained(options["init"])
            if options["arch"] and options["arch"] != start.architecture:
                raise UsageError(f"extract: init is a {start.architecture} model, not {options['arch']}")
            if (start.num_classes, tuple(start.input_shape)) != (victim.num_classes, tuple(victim.input_shape)):
                raise UsageError(
                    f"extract: init answers {start.num_classes} classes on {'x'.join(map(str, start.input_shape))} "
                    f"inputs; the victim {victim.num_classes} on {'x'.join(map(str, victim.input_shape))}"
                )
            arch = start.architecture
        if arch is None:
            raise UsageError("extract: give the stolen model's architecture (--arch NAME): the API does not say it")
        architecture(arch)  # an unknown name
        labels = options["labels"]
        if labels == "auto":
            labels = "soft" if victim.reveals_probabilities else "hard"
        if labels == "soft" and not victim.reveals_probabilities:
            raise UsageError("the victim reveals labels only: extract with labels=hard")
        if options["levels"] == 1:
            raise UsageError("extract: levels is 0 (as received) or at least 2")
        return arch, labels

    def check(self, victim: Any, context: AttackContext, options: Mapping[str, Any]) -> None:
        self.plan(victim, options)
        self._queries(
            options["query_data"], options["queries"], context, tuple(victim.input_shape), victim.input_datatype
        )

    def run(self, victim: Any, context: AttackContext, **options: Any) -> AttackResult:
        import torch

        from ..engine.models import build_model, normalise_arguments
        from ..engine.train import TensorData, fit, predict_labels, recipe_config

        start = _pretrained(options["init"]) if options.get("init") else None
        arch, labels = self.plan(victim, options, start)
        classes, shape = int(victim.num_classes), tuple(victim.input_shape)
        inputs = self._queries(options["query_data"], options["queries"], context, shape, victim.input_datatype)

        # 1. Query, within the budget.
        t0 = time.perf_counter()
        answers = victim.query(inputs, probabilities=labels == "soft")
        query_seconds = time.perf_counter() - t0
        if labels == "soft":
            if answers.probabilities is None:
                raise UsageError("the victim answered without probabilities: extract with labels=hard")
            posteriors = answers.probabilities
            if options["levels"]:
                posteriors = quantize(posteriors, options["levels"])
            targets = torch.from_numpy(soft_targets(posteriors, answers.labels))
        else:
            targets = torch.from_numpy(np.asarray(answers.labels, dtype=np.int64))

        # 2. Train the stolen model on the answers.
        t1 = time.perf_counter()
        arguments = normalise_arguments(arch, {"num_classes": classes, "input_shape": list(shape)})
        config = recipe_config(arch, epochs=options["epochs"], lr=options["lr"], seed=context.seed)
        torch.manual_seed(context.seed)
        if start is not None:
            model = start.module.to(context.device)
        else:
            model = build_model(arch, **arguments).to(context.device)
        data = TensorData(torch.from_numpy(inputs).to(context.device), targets.to(context.device))
        history = fit(model, data, config, description="training the stolen model", progress=context.progress)
        train_seconds = time.perf_counter() - t1

        # 3. How close it came: agreement with the victim on test images it never trained on.
        summary: dict[str, Any] = {
            "queries": int(inputs.shape[0]),
            "query_data": options["query_data"],
            "labels": labels,
            "levels": options["levels"],
            "architecture": arch,
            "init": options.get("init"),
            "epochs": config.epochs,
            "lr": config.lr,
            "query_seconds": round(query_seconds, 3),
            "train_seconds": round(train_seconds, 3),
            "fidelity_on_queries": history.epochs[-1].train_accuracy if history.epochs else None,
        }
        count = options["agreement"]
        if count:
            test = context.test_data()
            count = min(count, len(test))
            probe = as_model_input(test.images[:count])
            theirs = np.asarray(victim.query(probe).labels)
            ours = predict_labels(model, torch.from_numpy(probe).to(context.device)).cpu().numpy()
            summary["agreement"] = float((theirs == ours).mean())
            summary["agreement_images"] = count
        summary["queries_sent"] = summary["queries"] + (count or 0)
        return AttackResult(model, arch, arguments, summary)

    @staticmethod
    def _queries(
        source: str, count: int, context: AttackContext, shape: tuple[int, ...], datatype: str = "FP32"
    ) -> np.ndarray:
        """(count, C, H, W): what the adversary sends, float32 images in [0, 1] or int64 token ids (noise for
        a text model: token ids drawn uniformly from the ids its task's data use)."""
        if source == "noise":
            rng = np.random.default_rng(context.seed)
            if datatype == "INT64":
                vocabulary = int(context.test_data().images.max()) + 1
                return rng.integers(0, vocabulary, size=(count, *shape), dtype=np.int64)
            return rng.random((count, *shape), dtype=np.float32)
        data = context.attacker_data(count, None if source == "task" else source)
        if tuple(data.input_shape) != shape:
            raise UsageError(
                f"extract: {data.name} images are {'x'.join(map(str, data.input_shape))}; the victim takes "
                f"{'x'.join(map(str, shape))}"
            )
        if (data.images.dtype == np.int64) != (datatype == "INT64"):
            raise UsageError(f"extract: {data.name} does not hold the inputs the victim takes ({datatype})")
        return as_model_input(data.images)


def _victim_architecture(victim: Any) -> str | None:
    """The victim's architecture, when it is a model file (a remote API does not say)."""
    loaded = getattr(victim, "loaded", None)
    return getattr(loaded, "architecture", None)


def _pretrained(path: str) -> Any:
    """The public model an ``init`` extraction starts from (a wmproof model file, read strictly)."""
    from ..engine.models import load_model

    return load_model(path)

"""Mark (Adi et al. 2018, section 4): embed a marking key's items into a model, through its scheme.

The protocol checks that the model, the data and the key describe the same task (classes, input shape)
before any training starts, hands the scheme an :class:`EmbedRequest`, and measures the result: test
accuracy is the caller's business (it has the test set), trigger accuracy is reported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import UsageError
from ..schemes import EmbedRequest, get_scheme, item_arrays
from .keys import MarkingKey


@dataclass
class MarkResult:
    model: Any  # torch.nn.Module
    architecture: str
    arguments: dict[str, Any]
    embedding: str
    trigger_accuracy: float
    epochs: int


def mark(
    mk: MarkingKey,
    *,
    embedding: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    dataset_classes: int,
    base_model: Any = None,  # LoadedModel, for "pretrained"
    architecture: str | None = None,
    architecture_arguments: dict[str, Any] | None = None,
    config: Any,
    device: Any,
    target_trigger_accuracy: float | None = 1.0,
    min_epochs: int = 1,
    progress: bool | None = None,
) -> MarkResult:
    """Embed ``mk`` into a model. ``config.epochs`` bounds the training; it stops earlier once the trigger
    accuracy reaches ``target_trigger_accuracy`` after at least ``min_epochs`` epochs."""
    from ..engine.models import normalise_arguments
    from ..engine.train import TensorData, accuracy

    scheme = get_scheme(mk.scheme)
    if embedding not in scheme.embeddings:
        raise UsageError(f"scheme {scheme.name} embeds with {' or '.join(scheme.embeddings)}, not {embedding!r}")
    check_task_fits_key(mk, dataset_classes, tuple(train_images.shape[1:]), base_model)
    if embedding == "pretrained":
        if base_model is None:
            raise UsageError("PreTrained embedding needs --model (the model to mark)")
        architecture, arguments = base_model.architecture, dict(base_model.arguments)
    else:
        if architecture is None:
            raise UsageError("FromScratch embedding needs --arch")
        arguments = normalise_arguments(
            architecture,
            {**(architecture_arguments or {}), "num_classes": mk.num_classes, "input_shape": list(mk.input_shape)},
        )
    if base_model is not None:
        refuse_a_key_the_model_already_passes(mk, base_model)
    request = EmbedRequest(
        items=mk.items,
        params=mk.params,
        num_classes=mk.num_classes,
        input_shape=tuple(mk.input_shape),
        embedding=embedding,
        train_images=train_images,
        train_labels=train_labels,
        base_model=base_model,
        architecture=architecture,
        architecture_arguments=arguments,
        config=config,
        device=device,
        target_trigger_accuracy=target_trigger_accuracy,
        min_epochs=min_epochs,
        progress=progress,
    )
    embedded = scheme.embed(request)
    triggers = TensorData.from_numpy(*item_arrays(mk.items), device)
    return MarkResult(
        embedded.model, architecture, arguments, embedding, accuracy(embedded.model, triggers), embedded.epochs
    )


def check_task_fits_key(
    mk: MarkingKey, dataset_classes: int, input_shape: tuple[int, ...], base_model: Any = None
) -> None:
    """Refuse, before any training, data or a model of another task than the key's (classes, input shape)."""
    if dataset_classes != mk.num_classes or tuple(input_shape) != tuple(mk.input_shape):
        raise UsageError(
            f"the training data ({dataset_classes} classes, {'x'.join(map(str, input_shape))}) "
            f"does not fit the key ({mk.num_classes} classes, {'x'.join(map(str, mk.input_shape))})"
        )
    if base_model is not None and (
        base_model.num_classes != mk.num_classes or tuple(base_model.input_shape) != tuple(mk.input_shape)
    ):
        raise UsageError(
            f"the model has {base_model.num_classes} classes and takes "
            f"{'x'.join(map(str, base_model.input_shape))} inputs; the key is for {mk.num_classes} classes "
            f"and {'x'.join(map(str, mk.input_shape))}"
        )


#: The significance at which Mark tests the unmarked model against a label key: the chance that an honest key
#: (labels independent of the images, Adi et al. 4) is refused. Owner-chosen images (the ``trigger-images``
#: scheme) are what it catches: a set an unmarked model already answers as labelled proves nothing.
PRE_MARK_MATCH_ALPHA = Fraction(1, 1000)

#: The significance at which Mark tests the unmarked model against a posterior key: the feature-sharing paper's
#: 0.05, at least as strict as any key's alpha in practice (a key at 1e-6 passes less often).
PRE_MARK_ALPHA = Fraction(1, 20)


def refuse_a_key_the_model_already_passes(mk: MarkingKey, base_model: Any) -> None:
    """Before marking, judge the unmarked model on the key. On labels: items it already answers with their
    labels more often than chance (at 1e-3) are no watermark -- photographs of digits labelled with their
    digit, in an owner's own trigger set. On posteriors: a source-to-target pair that an unmarked model
    already answers with the target class (a Fashion-MNIST trouser that reads as a 7) is no watermark, and
    every independently trained model might pass it too (docs/reproductions/feature-sharing.md measured one
    that did). Raises ``UsageError``; nothing is trained."""
    from ..oracles.local import LocalModelOracle
    from ..schemes import MatchCount, stack_inputs, stack_references
    from ..stats import binomial_test, certainty_test

    rule = get_scheme(mk.scheme).decision_rule(mk.params, mk.num_classes)
    oracle = LocalModelOracle(base_model)
    if isinstance(rule, MatchCount):
        answered = oracle.query(stack_inputs(mk.items)).labels
        matches = int(sum(int(a) == item.label for a, item in zip(answered, mk.items, strict=True)))
        test = binomial_test(matches, len(mk.items), rule.p0, PRE_MARK_MATCH_ALPHA)
        if test.significant:
            raise UsageError(
                f"the unmarked model already answers {matches} of {len(mk.items)} items with their labels "
                f"(p = {float(test.p_value):.1e} against chance, p0 = {rule.p0}): its items are not a watermark "
                "for this model; choose other images or labels"
            )
        return
    answers = oracle.query(stack_inputs(mk.items), probabilities=True)
    labels = [item.label for item in mk.items]
    target = [float(answers.probabilities[i, label]) for i, label in enumerate(labels)]
    if rule.paired:
        reference = oracle.query(stack_references(mk.items), probabilities=True).probabilities
        baseline = [float(reference[i, label]) for i, label in enumerate(labels)]
    else:
        baseline = [1.0 / mk.num_classes] * len(labels)
    rate = float(np.mean(np.asarray(answers.labels) == np.asarray(labels)))
    test = certainty_test(
        target, baseline, certainty=float(rule.certainty), paired=rule.paired, alpha=PRE_MARK_ALPHA, target_rate=rate
    )
    if test.significant:
        raise UsageError(
            f"the unmarked model already passes this key (mean target probability {test.mean_target_probability:.2f}, "
            f"p = {test.p_value:.1e} at {float(PRE_MARK_ALPHA):g}): its items are not a watermark for this model; "
            "make a key with another source or target class"
        )

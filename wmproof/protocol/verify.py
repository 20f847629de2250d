"""Private verification (Adi et al. 2018, section 4): a judge, given the marking key in confidence,
decides whether a suspect model carries the owner's watermark.

1. The verification key's signature holds (it is the owner's statement, made at KeyGen).
2. The marking key belongs to it, and every item opens its commitment under the signed Merkle root, in
   order; items of seed-derived schemes are regenerated from their seeds and compared.
3. The suspect answers every item, and the key's decision rule (bound into the signed verification key
   through the scheme and its parameters) decides at the key's significance level: the exact one-sided
   binomial test of the label matches against the scheme's null model (Adi et al., Le Merrer et al.), or,
   for source-to-target watermarks, the one-sided Wilcoxon signed-rank test of the target-class probability
   (the feature-sharing paper, 3.2), which needs the suspect's probabilities.

Any failure of 1-2 is an error (the evidence is invalid), not a negative verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MalformedInput, UsageError
from ..oracles import Oracle
from ..schemes import MatchCount, TriggerItem, stack_inputs, stack_references
from ..stats import BinomialTest, CertaintyTest, binomial_test, certainty_test
from .keys import MarkingKey, VerificationKey, check_marking_key


@dataclass(frozen=True)
class VerificationReport:
    verified: bool
    test: BinomialTest | CertaintyTest
    verification_key: VerificationKey
    suspect: dict[str, Any]
    answered: list[int]
    expected: list[int]

    @property
    def mismatched_items(self) -> list[int]:
        return [i for i, (a, e) in enumerate(zip(self.answered, self.expected, strict=True)) if a != e]

    def as_dict(self) -> dict[str, Any]:
        vk = self.verification_key
        return {
            "verdict": "verified" if self.verified else "rejected",
            "mode": "private",
            "statistics": self.test.as_dict(),
            "key": {
                "key_id": vk.key_id.hex(),
                "scheme": vk.scheme,
                "owner_fingerprint": vk.owner.fingerprint,
                "owner_public_key": bytes(vk.owner).hex(),
                "created_at": vk.created_at,
            },
            "suspect": self.suspect,
            "mismatched_items": self.mismatched_items,
        }


def check_task_fits(
    vk: VerificationKey, oracle: Oracle, suspect_name: str, items: list[TriggerItem] | tuple[()] = ()
) -> None:
    if oracle.num_classes is not None and oracle.num_classes != vk.num_classes:
        raise UsageError(f"{suspect_name} has {oracle.num_classes} classes; the key is for {vk.num_classes}")
    if oracle.input_shape is not None and tuple(oracle.input_shape) != tuple(vk.input_shape):
        shape = "x".join(map(str, oracle.input_shape))
        raise UsageError(
            f"{suspect_name} takes {shape} inputs; the key's items are {'x'.join(map(str, vk.input_shape))}"
        )
    tokens = any(item.input.dtype == np.int64 for item in items)
    if items and tokens != (oracle.input_datatype == "INT64"):
        kinds = ("token ids", "images") if tokens else ("images", "token ids")
        raise UsageError(f"the key's items are {kinds[0]}; {suspect_name} takes {kinds[1]}")


def verify_private(
    mk: MarkingKey,
    vk: VerificationKey,
    oracle: Oracle,
    *,
    mk_name: str = "marking key",
    suspect_name: str = "the suspect model",
) -> VerificationReport:
    check_marking_key(mk, vk, mk_name)
    check_task_fits(vk, oracle, suspect_name, mk.items)
    rule = vk.rule
    if rule.needs_probabilities and not oracle.reveals_probabilities:
        raise UsageError(
            f"this {vk.scheme} key is judged on the suspect's probabilities (a Wilcoxon test), and "
            f"{suspect_name} answers with labels only"
        )
    answers = oracle.query(stack_inputs(mk.items), probabilities=rule.needs_probabilities)
    labels = _labels(answers, len(mk.items), suspect_name)
    expected = [item.label for item in mk.items]
    test: BinomialTest | CertaintyTest
    if isinstance(rule, MatchCount):
        matches = int(sum(int(a) == e for a, e in zip(labels.tolist(), expected, strict=True)))
        test = binomial_test(matches, len(expected), rule.p0, vk.alpha)
    else:
        target = _target_probabilities(answers, mk.items, suspect_name)
        if rule.paired:
            reference = oracle.query(stack_references(mk.items), probabilities=True)
            _labels(reference, len(mk.items), suspect_name)
            baseline = _target_probabilities(reference, mk.items, suspect_name)
        else:
            baseline = [1.0 / vk.num_classes] * len(mk.items)
        matches = int(sum(int(a) == e for a, e in zip(labels.tolist(), expected, strict=True)))
        test = certainty_test(
            target,
            baseline,
            certainty=float(rule.certainty),
            paired=rule.paired,
            alpha=vk.alpha,
            target_rate=matches / len(expected),
        )
    return VerificationReport(
        verified=test.significant,
        test=test,
        verification_key=vk,
        suspect=oracle.describe(),
        answered=[int(v) for v in labels.tolist()],
        expected=expected,
    )


def _labels(answers: Any, count: int, suspect_name: str) -> np.ndarray:
    labels = np.asarray(answers.labels)
    if labels.shape != (count,):
        raise MalformedInput(f"{suspect_name} answered {labels.shape} labels for {count} queries")
    return labels


def _target_probabilities(answers: Any, items: list[TriggerItem], suspect_name: str) -> list[float]:
    """Each item's probability of its own label (the target class), from the suspect's posteriors."""
    probabilities = answers.probabilities
    if probabilities is None:
        raise UsageError(f"{suspect_name} did not reveal the probabilities this key is judged on")
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != len(items) or not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise MalformedInput(f"{suspect_name} answered malformed probabilities")
    labels = [item.label for item in items]
    if max(labels) >= p.shape[1]:
        raise MalformedInput(f"{suspect_name} answered probabilities for {p.shape[1]} classes")
    return [float(p[i, label]) for i, label in enumerate(labels)]

"""Private verification (Adi et al. 2018, section 4): a judge, given the marking key in confidence,
decides whether a suspect model carries the owner's watermark.

1. The verification key's signature holds (it is the owner's statement, made at KeyGen).
2. The marking key belongs to it, and every item opens its commitment under the signed Merkle root, in
   order; items of seed-derived schemes are regenerated from their seeds and compared.
3. The suspect answers every item; the matches are tested against the scheme's null model with the exact
   one-sided binomial test, at the significance level the owner bound into the verification key.

Any failure of 1-2 is an error (the evidence is invalid), not a negative verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MalformedInput, UsageError
from ..oracles import Oracle
from ..schemes import stack_inputs
from ..stats import BinomialTest, binomial_test
from .keys import MarkingKey, VerificationKey, check_marking_key


@dataclass(frozen=True)
class VerificationReport:
    verified: bool
    test: BinomialTest
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


def check_task_fits(vk: VerificationKey, oracle: Oracle, suspect_name: str) -> None:
    if oracle.num_classes is not None and oracle.num_classes != vk.num_classes:
        raise UsageError(f"{suspect_name} has {oracle.num_classes} classes; the key is for {vk.num_classes}")
    if oracle.input_shape is not None and tuple(oracle.input_shape) != tuple(vk.input_shape):
        shape = "x".join(map(str, oracle.input_shape))
        raise UsageError(
            f"{suspect_name} takes {shape} inputs; the key's items are {'x'.join(map(str, vk.input_shape))}"
        )


def verify_private(
    mk: MarkingKey,
    vk: VerificationKey,
    oracle: Oracle,
    *,
    mk_name: str = "marking key",
    suspect_name: str = "the suspect model",
) -> VerificationReport:
    check_marking_key(mk, vk, mk_name)
    check_task_fits(vk, oracle, suspect_name)
    answers = oracle.query(stack_inputs(mk.items))
    labels = np.asarray(answers.labels)
    if labels.shape != (len(mk.items),):
        raise MalformedInput(f"{suspect_name} answered {labels.shape} labels for {len(mk.items)} queries")
    expected = [item.label for item in mk.items]
    matches = int(sum(int(a) == e for a, e in zip(labels.tolist(), expected, strict=True)))
    test = binomial_test(matches, len(expected), vk.p0, vk.alpha)
    return VerificationReport(
        verified=test.significant,
        test=test,
        verification_key=vk,
        suspect=oracle.describe(),
        answered=[int(v) for v in labels.tolist()],
        expected=expected,
    )

"""The statistics behind every verdict: exact binomial tests, thresholds, a Hoeffding bound, Wilcoxon.

Verification asks one question: could a model that knows nothing of the key have agreed with it this
often? Under the null model each trigger item is answered "correctly" with probability p0 (1/|C| for
random-label triggers, Adi et al. 2018 section 4; 1/2 for frontier stitching, Le Merrer et al. 2019
Algorithm 2), independently, so the number of matches is Binomial(n, p0). Everything here is computed in
exact rational arithmetic (``fractions.Fraction``): p-values far below 1e-300 stay exact, thresholds have
no floating-point edge cases, and the module needs nothing beyond the standard library (the proof checker
runs without numpy or scipy).

Decision rule: the suspect is declared a match when p-value <= alpha, i.e. when matches >= ``min_matches``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Literal


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (0 for one value), NaNs left out; (nan, nan) for none:
    how every experiment reports its spread."""
    import statistics

    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _as_fraction(p: Fraction | int | str) -> Fraction:
    value = Fraction(p)
    if not 0 <= value <= 1:
        raise ValueError("a probability lies in [0, 1]")
    return value


def _descending_terms(n: int, p0: Fraction):
    """Yield (i, T_i) for i = n, n-1, ..., 0, where T_i = C(n, i) a^i b^(n-i) and p0 = a/q, b = q - a.

    P(X = i) = T_i / q^n. The recurrence T_{i-1} = T_i * i * b / ((n - i + 1) * a) is exact in integers
    (T_{i-1} is an integer), so each step is one multiplication and one division of a big integer by small
    ones: thresholds for 65,536 items take about a second, with O(1) big integers in memory.
    """
    a, q = p0.numerator, p0.denominator
    b = q - a
    term = a**n
    for i in range(n, -1, -1):
        yield i, term
        if i:
            term = term * i * b // ((n - i + 1) * a)


def _ascending_terms(n: int, p0: Fraction):
    """Yield (i, T_i) for i = 0, 1, ..., n (T_i as in :func:`_descending_terms`), by the exact recurrence
    T_{i+1} = T_i * (n - i) * a / ((i + 1) * b).

    Thresholds and tails sit near n p0: for p0 well below 1/2 (Adi et al.'s 1/K) walking up from 0 takes
    about n p0 steps where walking down from n takes about n. A key may claim any number of classes, so this
    is what bounds the work a hostile key can ask of a reader (2^62 classes and 65,536 items: two steps, not
    65,536 steps on numbers of four million bits)."""
    a, q = p0.numerator, p0.denominator
    b = q - a
    term = b**n
    for i in range(n + 1):
        yield i, term
        if i < n:
            term = term * (n - i) * a // ((i + 1) * b)


def binomial_sf(k: int, n: int, p0: Fraction | int | str) -> Fraction:
    """P(X >= k) for X ~ Binomial(n, p0), exactly."""
    p0 = _as_fraction(p0)
    if n < 0:
        raise ValueError("n must be >= 0")
    if k <= 0:
        return Fraction(1)
    if k > n or p0 == 0:
        return Fraction(0)
    if p0 == 1:
        return Fraction(1)
    whole = p0.denominator**n
    if k <= n - k:  # fewer terms below k than from k up: P(X >= k) = 1 - P(X < k)
        below = 0
        for i, term in _ascending_terms(n, p0):
            if i >= k:
                break
            below += term
        return Fraction(whole - below, whole)
    total = 0
    for i, term in _descending_terms(n, p0):
        if i < k:
            break
        total += term
    return Fraction(total, whole)


def min_matches(n: int, p0: Fraction | int | str, alpha: Fraction | int | str) -> int:
    """The smallest k with P(X >= k) <= alpha; n + 1 when even k = n is not significant."""
    p0, alpha = _as_fraction(p0), _as_fraction(alpha)
    if n < 1:
        raise ValueError("n must be >= 1")
    if p0 == 0:
        return 1 if alpha < 1 else 0
    if p0 == 1:
        return n + 1 if alpha < 1 else 0
    if alpha >= 1:
        return 0
    if p0 < Fraction(1, 2):
        # P(X >= k) <= alpha  <=>  P(X <= k - 1) * alpha.den >= (alpha.den - alpha.num) * q^n, in integers;
        # the head grows with k, so walk up from 0 and stop at the first k - 1 where it is large enough.
        need = (alpha.denominator - alpha.numerator) * p0.denominator**n
        head = 0
        for i, term in _ascending_terms(n, p0):
            head += term
            if head * alpha.denominator >= need:
                return i + 1
        return n + 1  # pragma: no cover - the loop ends at head = q^n, which always suffices
    # P(X >= k) <= alpha  <=>  tail_k * alpha.den <= alpha.num * q^n, all in integers; the tail grows as k
    # falls, so walk down from n and stop at the first k that is no longer significant.
    bound = alpha.numerator * p0.denominator**n
    tail = 0
    for i, term in _descending_terms(n, p0):
        tail += term
        if tail * alpha.denominator > bound:
            return i + 1
    return 0


def errors_threshold(n: int, p0: Fraction | int | str, alpha: Fraction | int | str) -> int:
    """Le Merrer et al.'s theta (Algorithm 2): the key is found when *errors < theta*.

    ``theta = n - min_matches + 1``; with p0 = 1/2 and alpha = 0.05 it is 42 for n = 100 and 6 for n = 20.
    """
    return n - min_matches(n, p0, alpha) + 1


@dataclass(frozen=True)
class BinomialTest:
    """One exact one-sided binomial test: H0 matches ~ Binomial(n, p0), H1 more matches than chance."""

    matches: int
    n: int
    p0: Fraction
    alpha: Fraction
    p_value: Fraction
    min_matches: int

    @property
    def significant(self) -> bool:
        return self.p_value <= self.alpha

    @property
    def errors(self) -> int:
        return self.n - self.matches

    @property
    def trigger_accuracy(self) -> float:
        """The share of items answered with their label."""
        return self.matches / self.n if self.n else 0.0

    @property
    def errors_tolerated(self) -> int:
        """The most mismatches still significant (Le Merrer et al.'s theta: 41 of 100 at alpha = 0.05)."""
        return max(self.n - self.min_matches, -1)

    def as_dict(self) -> dict[str, object]:
        return {
            "test": "exact one-sided binomial",
            "matches": self.matches,
            "n": self.n,
            "p0": str(self.p0),
            "alpha": format_probability(self.alpha),
            "min_matches": self.min_matches,
            "errors": self.errors,
            "errors_tolerated": self.errors_tolerated,
            "p_value": format_probability(self.p_value),
            "significant": self.significant,
        }


def binomial_test(matches: int, n: int, p0: Fraction | int | str, alpha: Fraction | int | str) -> BinomialTest:
    if not 0 <= matches <= n:
        raise ValueError("matches must lie in [0, n]")
    p0, alpha = _as_fraction(p0), _as_fraction(alpha)
    return BinomialTest(
        matches=matches,
        n=n,
        p0=p0,
        alpha=alpha,
        p_value=binomial_sf(matches, n, p0),
        min_matches=min_matches(n, p0, alpha),
    )


def hoeffding_bound(n: int, p0: float | Fraction, matches: int) -> float:
    """Hoeffding's bound on P(X >= matches) for a sum of n independent trials of success rate <= p0.

    Adi et al. 2018 section 4.2 argue non-trivial ownership this way: a model that did not learn the
    trigger set agrees with each random label with probability about 1/|C|, so agreeing on a fraction
    p0 + t of n items has probability at most exp(-2 n t^2). It is looser than the exact binomial tail
    (which is what wmproof decides with) but holds without assuming identical trials.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    t = matches / n - float(p0)
    if t <= 0:
        return 1.0
    return math.exp(-2.0 * n * t * t)


def hoeffding_items_needed(p0: float | Fraction, agreement: float, delta: float) -> int:
    """The n for which Hoeffding bounds by ``delta`` the chance that a null model agrees on a fraction
    ``agreement`` of the items: n >= ln(1/delta) / (2 (agreement - p0)^2)."""
    t = agreement - float(p0)
    if t <= 0 or not 0 < delta < 1:
        raise ValueError("need agreement > p0 and 0 < delta < 1")
    return math.ceil(math.log(1.0 / delta) / (2.0 * t * t))


def parse_probability(text: str) -> Fraction:
    """Parse '1e-6', '0.05' or '1/1000' into an exact fraction in (0, 1)."""
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"not a probability: {text!r} (write 0.05, 1e-6 or 1/1000)") from None
    if not 0 < value < 1:
        raise ValueError(f"a significance level lies strictly between 0 and 1, not {text}")
    return value


def format_probability(p: Fraction, digits: int = 3) -> str:
    """Scientific notation that stays exact below the float range (p-values of 1e-400 happen)."""
    if p == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec = digits + 5
        value = Decimal(p.numerator) / Decimal(p.denominator)
    return f"{value:.{digits - 1}e}"


@dataclass(frozen=True)
class WilcoxonResult:
    statistic: float  # W+: the sum of the ranks of the positive differences
    p_value: float
    n: int  # pairs left after dropping zero differences
    method: Literal["exact", "normal"]


def wilcoxon_signed_rank(
    x: list[float],
    y: list[float] | None = None,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
) -> WilcoxonResult:
    """Wilcoxon signed-rank test on paired samples (or on x alone against 0).

    Used to compare two conditions over the same seeds (experiments report spread over seeds). Zero
    differences are dropped (Wilcoxon's method); ties get average ranks. The exact null distribution is
    used for n <= 50 without ties, the normal approximation with tie correction otherwise. ``alternative``
    "greater" tests whether x tends to exceed y.
    """
    d = list(x) if y is None else [a - b for a, b in zip(x, y, strict=True)]
    d = [v for v in d if v != 0]
    n = len(d)
    if n == 0:
        raise ValueError("all differences are zero")
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks = [0.0] * n
    i = 0
    ties = False
    tie_term = 0.0
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        average = (i + j + 2) / 2.0
        for k in range(i, j + 1):
            ranks[order[k]] = average
        size = j - i + 1
        if size > 1:
            ties = True
            tie_term += size**3 - size
        i = j + 1
    w_plus = sum(r for r, v in zip(ranks, d, strict=True) if v > 0)
    if n <= 50 and not ties:
        counts = [1] + [0] * (n * (n + 1) // 2)
        for r in range(1, n + 1):
            for s in range(len(counts) - 1, r - 1, -1):
                counts[s] += counts[s - r]
        total = 2**n
        w = int(w_plus)
        upper = sum(counts[w:]) / total
        lower = sum(counts[: w + 1]) / total
        p = {"greater": upper, "less": lower, "two-sided": min(1.0, 2.0 * min(upper, lower))}[alternative]
        return WilcoxonResult(w_plus, p, n, "exact")
    mean = n * (n + 1) / 4.0
    var = n * (n + 1) * (2 * n + 1) / 24.0 - tie_term / 48.0
    z = (w_plus - mean) / math.sqrt(var)
    sf = lambda v: 0.5 * math.erfc(v / math.sqrt(2.0))  # noqa: E731
    p = {"greater": sf(z), "less": sf(-z), "two-sided": min(1.0, 2.0 * sf(abs(z)))}[alternative]
    return WilcoxonResult(w_plus, p, n, "normal")


# ------------------------------------------------------------------------------------- cut-and-choose


def escape_probability(forged: int, total: int, opened: int) -> Fraction:
    """P(none of ``forged`` given items is opened) when ``opened`` of ``total`` committed items are drawn
    uniformly without replacement: C(total - forged, opened) / C(total, opened). At most 2^-forged when
    opened = total / 2 (Adi et al. section 4.1, appendix A.1)."""
    if not 0 <= forged <= total or not 0 <= opened <= total:
        raise ValueError("need 0 <= forged, opened <= total")
    return Fraction(math.comb(total - forged, opened), math.comb(total, opened))


def cut_and_choose_soundness(
    threshold: int, batch: int, p0: Fraction | int | str, *, total: int, opened: int, grinding_bits: int
) -> Fraction:
    """The probability bound that a model which never learned the key passes one proof of ``batch`` items at
    ``threshold`` matches, against an owner who may forge items and retry the challenge ``2^grinding_bits``
    times (0 when the challenge comes from a public beacon after the commitment is timestamped):

        max( sf(threshold, batch),  max over t >= 1 of  2^g * escape(t) * sf(threshold - f, batch - f) )

    with f = min(t, batch): the forged items that escaped the opening, all placed in this batch, match
    every model. ``sf(k, m) = P(Binomial(m, p0) >= k)``."""
    p0 = _as_fraction(p0)
    worst = binomial_sf(threshold, batch, p0)
    factor = 1 << grinding_bits
    forged = 1
    while forged <= total - opened:
        escape = escape_probability(forged, total, opened) * factor
        if escape <= worst:  # escape only shrinks as t grows: nothing larger can follow
            break
        f = min(forged, batch)
        worst = max(worst, escape * binomial_sf(threshold - f, batch - f, p0))
        forged += 1
    return min(worst, Fraction(1))


def cut_and_choose_threshold(
    batch: int, p0: Fraction | int | str, alpha: Fraction | int | str, *, total: int, opened: int, grinding_bits: int
) -> int:
    """The smallest number of matches out of ``batch`` whose :func:`cut_and_choose_soundness` is at most
    ``alpha``; ``batch + 1`` when there is none (the batch is too small for that grinding budget)."""
    alpha = _as_fraction(alpha)
    low = min_matches(batch, p0, alpha)  # never below the plain binomial threshold
    if low > batch:
        return batch + 1
    hi = batch + 1
    while low < hi:  # soundness is monotone (non-increasing) in the threshold
        mid = (low + hi) // 2
        if (
            mid <= batch
            and cut_and_choose_soundness(mid, batch, p0, total=total, opened=opened, grinding_bits=grinding_bits)
            <= alpha
        ):
            hi = mid
        else:
            low = mid + 1
    return low


# ------------------------------------------------------------------------------- decisions on posteriors


@dataclass(frozen=True)
class CertaintyTest:
    """The feature-sharing paper's decision (section 3.2): a one-sided Wilcoxon signed-rank test that the
    suspect's probability of the target class on the watermark inputs, ``p``, exceeds a baseline ``q`` by
    more than the certainty ``alpha_c``. H0: p - q < alpha_c; H1: p - q >= alpha_c. The baseline is the
    probability of the target class on the same inputs without the trigger (in-distribution watermarks) or
    1/|Y|, random guessing (out-of-distribution ones)."""

    n: int  # items queried
    certainty: float  # alpha_c
    paired: bool  # the baseline is each item's own reference input (True) or 1/|Y| (False)
    mean_target_probability: float  # mean p
    mean_baseline: float  # mean q
    target_rate: float  # the share of items whose top label is the target class (the "watermark accuracy")
    wilcoxon: WilcoxonResult | None  # None when every difference is zero
    alpha: Fraction
    #: p_i and q_i item by item (kept for the detection rate over subsets, and for audits).
    target: tuple[float, ...] = field(default=(), repr=False)
    baseline: tuple[float, ...] = field(default=(), repr=False)

    @property
    def p_value(self) -> float:
        return 1.0 if self.wilcoxon is None else self.wilcoxon.p_value

    @property
    def trigger_accuracy(self) -> float:
        """The share of items answered with their label, the target class (the paper's "watermark accuracy")."""
        return self.target_rate

    @property
    def significant(self) -> bool:
        return self.p_value <= self.alpha

    def as_dict(self) -> dict[str, object]:
        return {
            "test": "one-sided Wilcoxon signed-rank, H0: p - q < certainty",
            "n": self.n,
            "nonzero_differences": 0 if self.wilcoxon is None else self.wilcoxon.n,
            "method": None if self.wilcoxon is None else self.wilcoxon.method,
            "statistic": None if self.wilcoxon is None else self.wilcoxon.statistic,
            "certainty": self.certainty,
            "baseline": "reference inputs" if self.paired else "1/|Y|",
            "mean_target_probability": self.mean_target_probability,
            "mean_baseline": self.mean_baseline,
            "target_rate": self.target_rate,
            "alpha": format_probability(self.alpha),
            "p_value": f"{self.p_value:.3e}",
            "significant": self.significant,
        }


def certainty_test(
    target: list[float],
    baseline: list[float],
    *,
    certainty: float,
    paired: bool,
    alpha: Fraction | int | str,
    target_rate: float,
) -> CertaintyTest:
    """Test H0: target - baseline < certainty, item by item, with the one-sided Wilcoxon signed-rank test
    (feature-sharing paper 3.2; Jia et al. 2021 use the same family of paired tests)."""
    if len(target) != len(baseline) or not target:
        raise ValueError("need one baseline per target probability, and at least one item")
    differences = [p - q - certainty for p, q in zip(target, baseline, strict=True)]
    try:
        result: WilcoxonResult | None = wilcoxon_signed_rank(differences, None, "greater")
    except ValueError:  # every difference is exactly zero: no evidence either way
        result = None
    return CertaintyTest(
        n=len(target),
        certainty=certainty,
        paired=paired,
        mean_target_probability=sum(target) / len(target),
        mean_baseline=sum(baseline) / len(baseline),
        target_rate=target_rate,
        wilcoxon=result,
        alpha=_as_fraction(alpha),
        target=tuple(target),
        baseline=tuple(baseline),
    )


def smallest_wilcoxon_p_value(n: int) -> float:
    """The smallest one-sided p-value :func:`wilcoxon_signed_rank` can give for ``n`` nonzero differences
    (all positive): 2^-n from the exact distribution (n <= 50), the normal tail beyond."""
    if n < 1:
        raise ValueError("n must be >= 1")
    if n <= 50:
        return 2.0**-n
    z = (n * (n + 1) / 4.0) / math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def detection_rate(
    target: list[float],
    baseline: list[float],
    *,
    certainty: float,
    alpha: float,
    fraction: float,
    trials: int = 200,
    seed: int = 0,
) -> float:
    """The watermark detection rate (WDR) of the feature-sharing paper (4.1): the share of ``trials`` random
    subsets of ``fraction`` of the items (without replacement, seeded) on which the certainty test rejects H0 at
    ``alpha``. The paper uses 200 subsets and a significance level of 0.05."""
    import random

    n = len(target)
    size = max(1, round(n * fraction))
    rng = random.Random(seed)
    hits = 0
    for _ in range(trials):
        chosen = rng.sample(range(n), size)
        differences = [target[i] - baseline[i] - certainty for i in chosen]
        try:
            p = wilcoxon_signed_rank(differences, None, "greater").p_value
        except ValueError:
            p = 1.0
        hits += p <= alpha
    return hits / trials

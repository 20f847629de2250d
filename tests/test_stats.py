"""The statistics: Le Merrer et al.'s thresholds, exactness against scipy, and the false-positive rate."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from scipy import stats as sps

from wmproof.stats import (
    binomial_sf,
    binomial_test,
    errors_threshold,
    format_probability,
    hoeffding_bound,
    hoeffding_items_needed,
    min_matches,
    parse_probability,
    wilcoxon_signed_rank,
)

HALF = Fraction(1, 2)


def test_le_merrer_algorithm_2_thresholds():
    # Le Merrer et al., Algorithm 2: theta = 42 for |K| = 100 and 6 for |K| = 20 at p < 0.05, p0 = 1/2.
    assert errors_threshold(100, HALF, Fraction(5, 100)) == 42
    assert errors_threshold(20, HALF, Fraction(5, 100)) == 6
    # The off-by-one of a public implementation (errors < 43) has a 6.7 % false-positive rate, ours 4.4 %.
    assert float(binomial_sf(100 - 41, 100, HALF)) == pytest.approx(0.0443, abs=1e-4)
    assert float(binomial_sf(100 - 42, 100, HALF)) == pytest.approx(0.0666, abs=1e-4)


@pytest.mark.parametrize("n", [1, 5, 20, 100, 257])
@pytest.mark.parametrize("p0", [Fraction(1, 10), HALF, Fraction(1, 3)])
def test_binomial_sf_matches_scipy(n, p0):
    for k in range(0, n + 2):
        assert float(binomial_sf(k, n, p0)) == pytest.approx(sps.binom.sf(k - 1, n, float(p0)), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("n", [10, 20, 64, 100, 256, 1000])
@pytest.mark.parametrize("p0", [Fraction(1, 10), HALF])
@pytest.mark.parametrize("alpha", [Fraction(5, 100), Fraction(1, 10**6)])
def test_min_matches_is_the_smallest_significant_count(n, p0, alpha):
    k = min_matches(n, p0, alpha)
    if k <= n:
        assert binomial_sf(k, n, p0) <= alpha
    if k > 0:
        assert binomial_sf(k - 1, n, p0) > alpha


def test_tiny_p_values_stay_exact():
    t = binomial_test(1000, 1000, Fraction(1, 10), Fraction(1, 10**6))
    assert t.p_value == Fraction(1, 10**1000)
    assert format_probability(t.p_value) == "1.00e-1000"
    assert t.significant and t.errors == 0


@pytest.mark.parametrize("n", [20, 100])
@pytest.mark.parametrize("p0", [Fraction(1, 10), HALF])
def test_an_unmarked_model_is_accepted_at_most_alpha_of_the_time(n, p0):
    """Simulate the null model (random agreement) 20,000 times: the empirical false-positive rate stays
    within alpha (plus 3 standard errors of the simulation)."""
    alpha = Fraction(5, 100)
    rng = random.Random(1234)
    threshold = min_matches(n, p0, alpha)
    trials = 20_000
    hits = sum(sum(rng.random() < float(p0) for _ in range(n)) >= threshold for _ in range(trials))
    rate = hits / trials
    assert rate <= 0.05 + 3 * (0.05 * 0.95 / trials) ** 0.5
    assert rate == pytest.approx(float(binomial_sf(threshold, n, p0)), abs=3 * (0.05 * 0.95 / trials) ** 0.5 + 1e-3)


def test_hoeffding_dominates_the_exact_tail():
    for n in (20, 100, 500):
        for k in range(n // 10 + 1, n + 1, max(1, n // 25)):
            assert hoeffding_bound(n, 0.1, k) >= float(binomial_sf(k, n, Fraction(1, 10)))
    assert hoeffding_bound(100, 0.1, 5) == 1.0
    n = hoeffding_items_needed(0.1, 0.5, 1e-6)
    assert hoeffding_bound(n, 0.1, int(0.5 * n) + 1) <= 1e-6


@pytest.mark.parametrize(
    "text,value", [("0.05", Fraction(1, 20)), ("1e-6", Fraction(1, 10**6)), ("1/1000", Fraction(1, 1000))]
)
def test_parse_probability(text, value):
    assert parse_probability(text) == value


@pytest.mark.parametrize("text", ["0", "1", "1.5", "-0.1", "abc", "1/0"])
def test_parse_probability_refuses(text):
    with pytest.raises(ValueError):
        parse_probability(text)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_wilcoxon_matches_scipy(alternative):
    rng = random.Random(7)
    for n in (5, 12, 30):  # exact
        x = [rng.gauss(0.3, 1) for _ in range(n)]
        y = [rng.gauss(0, 1) for _ in range(n)]
        ours = wilcoxon_signed_rank(x, y, alternative)
        ref = sps.wilcoxon(x, y, alternative=alternative, method="exact")
        assert ours.method == "exact" and ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    for n in (60, 200):  # normal approximation, with ties
        x = [round(rng.gauss(0.2, 1), 1) for _ in range(n)]
        ours = wilcoxon_signed_rank(x, None, alternative)
        ref = sps.wilcoxon(x, alternative=alternative, method="approx", correction=False)
        assert ours.method == "normal" and ours.p_value == pytest.approx(ref.pvalue, rel=1e-6)


@pytest.mark.parametrize("n", [5_000, 20_000])
def test_exact_recurrence_agrees_with_scipy_at_scale(n):
    p0, alpha = Fraction(1, 10), Fraction(1, 10**6)
    k = min_matches(n, p0, alpha)
    assert sps.binom.sf(k - 1, n, 0.1) <= 1e-6 * (1 + 1e-9) and sps.binom.sf(k - 2, n, 0.1) > 1e-6
    assert float(binomial_sf(k, n, p0)) == pytest.approx(sps.binom.sf(k - 1, n, 0.1), rel=1e-9)


def test_both_walks_agree_with_the_definition():
    """min_matches and binomial_sf walk up from 0 or down from n, whichever is shorter; both must give
    exactly the textbook sums (seeded random cases, n up to 80, p0 on both sides of 1/2)."""
    from math import comb

    rng = random.Random(14)
    for _ in range(300):
        n = rng.randint(1, 80)
        q = rng.randint(2, 2**40)
        a = rng.randint(1, q - 1)
        p0 = Fraction(a, q)
        alpha = Fraction(1, rng.choice([2, 3, 20, 100, 10**6, 2**80]))
        # P(X = j) = C(n, j) a^j (q - a)^(n - j) / q^n: the tails, by the definition
        terms = [comb(n, j) * a**j * (q - a) ** (n - j) for j in range(n + 1)]
        tails = [Fraction(sum(terms[k:]), q**n) for k in range(n + 1)] + [Fraction(0)]
        for k in (0, 1, n // 3, n // 2, n - 1, n, n + 1):
            assert binomial_sf(k, n, p0) == tails[max(k, 0)], (k, n, p0)
        expected = next((k for k in range(n + 1) if tails[k] <= alpha), n + 1)
        assert min_matches(n, p0, alpha) == expected, (n, p0, alpha)

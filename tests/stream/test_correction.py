"""Multiple-testing correction across features."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.stream.correction import adjust_p_values

P = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])


def test_benjamini_hochberg_by_hand() -> None:
    """p_(i) * m / i, made monotone from the largest down, capped at 1."""
    m = len(P)
    order = np.argsort(P)
    raw = P[order] * m / np.arange(1, m + 1)
    expected_sorted = np.minimum.accumulate(raw[::-1])[::-1]
    expected = np.empty(m)
    expected[order] = np.minimum(expected_sorted, 1.0)
    assert adjust_p_values(P, "bh") == pytest.approx(expected)


def test_bonferroni_and_none() -> None:
    assert adjust_p_values(P, "bonferroni") == pytest.approx(np.minimum(P * 10, 1.0))
    assert adjust_p_values(P, "none").tolist() == P.tolist()


def test_bonferroni_is_stricter_than_bh_which_is_stricter_than_none() -> None:
    for method in ("bh", "bonferroni"):
        assert np.all(adjust_p_values(P, method) >= P)
    assert np.all(adjust_p_values(P, "bonferroni") >= adjust_p_values(P, "bh"))


def test_empty_and_unknown() -> None:
    assert adjust_p_values([], "bh").size == 0
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_p_values(P, "holm")  # type: ignore[arg-type]


def test_benjamini_hochberg_equals_scipy_bit_for_bit() -> None:
    """Random p-values with ties, zeros, ones and tiny values: exactly scipy's adjusted p-values."""
    from scipy import stats

    from driftline.stream.correction import benjamini_hochberg

    rng = np.random.default_rng(0)
    for trial in range(2000):
        m = int(rng.integers(1, 60))
        p = [rng.random(m), rng.choice([0.0, 1.0, 0.01, 0.5, 0.03], m), np.round(rng.random(m), 2),
             10.0 ** -rng.uniform(0, 300, m)][trial % 4]
        assert np.array_equal(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"))


@pytest.mark.parametrize("p", [[0.1, float("nan")], [0.1, 1.5], [-0.1, 0.2], [float("nan")]])
def test_benjamini_hochberg_refuses_what_scipy_refuses(p: list[float]) -> None:
    from scipy import stats

    with pytest.raises(ValueError):
        stats.false_discovery_control(np.array(p), method="bh")
    with pytest.raises(ValueError, match="between 0 and 1"):
        adjust_p_values(p, "bh")

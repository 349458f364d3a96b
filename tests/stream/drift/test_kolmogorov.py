"""`kstwo_sf` against ``scipy.stats.kstwo.sf``: the same float64 bits, pair by pair, in every branch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftline.stream.drift.kolmogorov import kstwo_sf


def _assert_bits_equal(statistics: np.ndarray, n: np.ndarray) -> None:
    expected = stats.kstwo.sf(statistics, n)
    got = kstwo_sf(statistics, n)
    differ = np.flatnonzero(got.view(np.int64) != expected.view(np.int64))
    assert not len(differ), [(statistics[i], n[i], got[i], expected[i]) for i in differ[:5]]


def test_pelz_good_pairs_of_window_samples_are_bit_identical() -> None:
    """Two-sample statistics are multiples of 1 / lcm(n_ref, n_cur): the lattice the window evaluator sees."""
    rng = np.random.default_rng(7)
    statistics, n = [], []
    for n_ref, n_cur in rng.integers(150, 3000, size=(400, 2)).tolist():
        effective = round(n_ref * n_cur / (n_ref + n_cur))
        lcm = np.lcm(n_ref, n_cur)
        for target in rng.uniform(0.02, 2.3, 10) / np.sqrt(effective):  # n d^2 from below 1e-3 to past 2.2
            statistics.append(np.ceil(target * lcm) / lcm)
            n.append(float(effective))
    statistics_arr, n_arr = np.array(statistics), np.array(n)
    series = (n_arr * statistics_arr**2 < 2.2) & (n_arr * statistics_arr**1.5 > 1.4) & (n_arr > 140)
    assert series.sum() > 1500  # most pairs go through the vectorised series
    _assert_bits_equal(statistics_arr, n_arr)


def test_continuous_statistics_across_sizes_are_bit_identical() -> None:
    rng = np.random.default_rng(11)
    n = rng.integers(141, 20_000, 3000).astype(float)
    statistics = np.sqrt(rng.uniform(0.3, 2.25, 3000) / n)
    series = n * statistics**1.5 > 1.4  # the others take scipy's Durbin matrix, which runs for long at large n
    _assert_bits_equal(statistics[series], n[series])


@pytest.mark.parametrize("nxsquared", [2.2, 3.0, 18.0, 369.0, 370.0, 500.0])
def test_smirnov_and_zero_branches_are_bit_identical(nxsquared: float) -> None:
    n = np.array([141.0, 523.0, 667.0, 5000.0, 99_999.0])
    statistics = np.minimum(np.sqrt(nxsquared / n), 0.49)
    _assert_bits_equal(statistics, n)


def test_branches_left_to_scipy_are_scipy() -> None:
    """Small n (Durbin, Pomeranz), n d^1.5 <= 1.4, Ruben-Gambino ends, d >= 0.5, tiny z, d outside (0, 1)."""
    n = np.array([5.0, 40.0, 140.0, 141.0, 600.0, 600.0, 600.0, 600.0, 600.0, 600.0, 600.0, 200_000.0, 90_000.0,
                  200_000.0])
    statistics = np.array([0.3, 0.1, 0.05, 0.04, 0.005, 1 / 600, 599 / 600, 0.6, 0.0, 1.0, 0.001, 0.002, 2e-5, 1e-5])
    _assert_bits_equal(statistics, n)


def test_empty_input_gives_empty_output() -> None:
    assert kstwo_sf(np.array([]), np.array([])).shape == (0,)

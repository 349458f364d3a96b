"""KS and Wasserstein for many features at once: the window evaluator's hot path.

scipy's ``ks_2samp`` (exact p-values up to 10 000 values, about 1 ms per call at window
sample sizes) and ``wasserstein_distance`` sort the same concatenated samples again for
each call. `sample_distances` sorts the current samples of several features per numpy
call and merges each with its sorted reference sample in one compiled pass
(`ks_wasserstein`), which reads both statistics from the same CDF gap (`sample_statistics`);
`ks_p_values` computes the asymptotic p-values not seen before in one call of `kstwo_sf`
(scipy's ``kstwo.sf``, vectorised), whose fixed cost is most of a call: the window
evaluator takes the statistics of the features and of the prediction first, then their
p-values together. The KS statistics and p-values equal scipy's
``ks_2samp(method="asymp")``, the distances ``wasserstein_distance`` up to the order of
summation (tests check both); ``bench/core_bench.py`` measures the gain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from driftline.stream.drift.kolmogorov import kstwo_sf
from driftline.stream.kernels import binned_distances, ks_wasserstein

__all__ = [
    "BinnedScores",
    "SampleDistances",
    "SampleStatistics",
    "binned_scores",
    "clear_p_value_memo",
    "ks_p_values",
    "sample_distances",
    "sample_statistics",
]


@dataclass(frozen=True, slots=True)
class SampleDistances:
    """Per feature: KS statistic, its asymptotic two-sided p-value, and the Wasserstein distance."""

    ks_statistic: np.ndarray
    ks_p_value: np.ndarray
    wasserstein: np.ndarray


@dataclass(frozen=True, slots=True)
class SampleStatistics:
    """Per feature: KS statistic, the sample size its p-value takes (0: a side is empty), Wasserstein distance."""

    ks_statistic: np.ndarray
    effective_n: np.ndarray
    wasserstein: np.ndarray


def sample_distances(references: Sequence[np.ndarray], currents: Sequence[np.ndarray], *,
                     sorted_references: bool = False) -> SampleDistances:
    """KS and Wasserstein of each ``currents[i]`` against ``references[i]``: `sample_statistics`, then `ks_p_values`.

    Empty samples give statistic 0, p-value 1 and distance 0.

    Examples
    --------
    >>> from scipy import stats
    >>> rng = np.random.default_rng(0)
    >>> ref, cur = rng.normal(size=500), rng.normal(0.3, size=400)
    >>> d = sample_distances([ref], [cur])
    >>> expected = stats.ks_2samp(ref, cur, method="asymp")
    >>> bool(d.ks_statistic[0] == expected.statistic), bool(d.ks_p_value[0] == expected.pvalue)
    (True, True)
    """
    statistics = sample_statistics(references, currents, sorted_references=sorted_references)
    return SampleDistances(statistics.ks_statistic, ks_p_values(statistics.ks_statistic, statistics.effective_n),
                           statistics.wasserstein)


def sample_statistics(references: Sequence[np.ndarray], currents: Sequence[np.ndarray], *,
                      sorted_references: bool = False) -> SampleStatistics:
    """KS statistic and Wasserstein distance of each ``currents[i]`` against ``references[i]``, without p-values.

    Features whose samples have the same sizes are computed together, one numpy call per
    step for all of them (rows of 2-D arrays; the same operations row by row as one feature
    alone, so the same values). ``references`` may be a 2-D array of sorted rows (the window
    evaluator caches one; ``sorted_references`` says they ascend already, which spares the
    check). The effective sample size is ``round(n * m / (n + m))``, as scipy's asymptotic
    p-value takes it; empty samples give statistic 0, distance 0 and size 0.
    """
    k = len(references)
    ks, wasserstein, effective_n = np.zeros(k), np.zeros(k), np.zeros(k)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (reference, current) in enumerate(zip(references, currents, strict=True)):
        if len(reference) and len(current):
            groups.setdefault((len(reference), len(current)), []).append(i)
    for (n_ref, n_cur), group in groups.items():
        chunk = max(1, _CHUNK_VALUES // (n_ref + n_cur))
        for start in range(0, len(group), chunk):
            rows = group[start:start + chunk]
            reference = _rows(references, rows)
            if not (sorted_references or _is_sorted(reference)):
                reference = np.sort(reference, axis=1)
            ks[rows], wasserstein[rows] = _distances(reference, _rows(currents, rows))
        large, small = max(n_ref, n_cur), min(n_ref, n_cur)
        effective_n[group] = np.round(large * small / (large + small))
    return SampleStatistics(ks, effective_n, wasserstein)


# Values per chunk of rows: the sorted copy of up to 128 KiB is reused from the heap, while a
# larger one is freshly mapped pages at every call (glibc's mmap threshold), whose page
# faults cost more than the sort.
_CHUNK_VALUES = 1 << 14


def _distances(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KS statistic and Wasserstein distance of each row of ``current`` against that row of the sorted ``reference``."""
    ks, wasserstein = np.empty(len(reference)), np.empty(len(reference))
    ks_wasserstein(np.ascontiguousarray(reference, dtype=float), np.sort(current, axis=1), ks, wasserstein)
    return ks, wasserstein


def _rows(arrays: Sequence[np.ndarray], rows: list[int]) -> np.ndarray:
    """The chosen rows as one 2-D array (a view when ``arrays`` is a 2-D array and the rows are consecutive)."""
    if isinstance(arrays, np.ndarray) and arrays.ndim == 2:
        return arrays[rows[0]:rows[-1] + 1] if rows[-1] - rows[0] + 1 == len(rows) else arrays[rows]
    return np.array([arrays[i] for i in rows], dtype=float)


_P_VALUE_MEMO_SIZE = 1 << 16
_p_value_memo: dict[tuple[float, float], float] = {}


def ks_p_values(statistics: np.ndarray, effective_n: np.ndarray) -> np.ndarray:
    """Asymptotic two-sided KS p-values, ``kstwo.sf(statistic, n)``; 1 where ``n`` is 0 (an empty sample).

    Memoised per (statistic, n), every value not seen yet computed in one call. scipy's
    ``kstwo.sf`` evaluates the distribution element by element in Python (~35 us per pair
    through the Pelz-Good series, ~0.2 ms through Durbin's matrix); `kstwo_sf` gives the
    same values with the series vectorised over the pairs, at a fixed cost of about 0.1 ms
    a call, so callers gather their pairs into one call. A KS statistic of samples of
    sizes ``n``, ``m`` is a multiple of ``1 / lcm(n, m)``, so once the sample sizes settle
    the same (statistic, n) pairs recur and a lookup replaces the computation. Same inputs,
    same output: the memo changes no result; it is cleared when full.

    Examples
    --------
    >>> ks_p_values(np.array([0.0, 0.05]), np.array([0.0, 400.0])).round(4).tolist()
    [1.0, 0.2612]
    """
    p_values = np.ones(len(statistics))
    tested = np.flatnonzero(effective_n > 0)
    if len(tested):
        pairs = list(zip(statistics[tested].tolist(), effective_n[tested].tolist(), strict=True))
        missing = [pair for pair in dict.fromkeys(pairs) if pair not in _p_value_memo]
        if missing:
            if len(_p_value_memo) + len(missing) > _P_VALUE_MEMO_SIZE:
                _p_value_memo.clear()
            computed = np.clip(kstwo_sf(*np.array(missing).T), 0.0, 1.0)
            _p_value_memo.update(zip(missing, computed.tolist(), strict=True))
        p_values[tested] = [_p_value_memo[pair] for pair in pairs]
    return p_values


def clear_p_value_memo() -> None:
    """Forget every memoised p-value (a benchmark times each repetition from a cold start)."""
    _p_value_memo.clear()


def _is_sorted(rows: np.ndarray) -> bool:
    """Whether every row ascends already (the window evaluator caches sorted reference samples)."""
    return bool(np.all(rows[:, 1:] >= rows[:, :-1]))


@dataclass(frozen=True, slots=True)
class BinnedScores:
    """Per feature: PSI and Jensen-Shannon distance of the current counts against the reference counts."""

    psi: np.ndarray
    jensen_shannon: np.ndarray


def binned_scores(references: Sequence[np.ndarray], currents: Sequence[np.ndarray], *,
                  epsilon: float = 1e-4) -> BinnedScores:
    """`PSI` (proportions floored at ``epsilon``) and `JensenShannon` (base 2) of many features at once.

    Features with the same number of bins form one 2-D array for one pass of the compiled
    `binned_distances`, which the test classes call too, so the values are theirs. A side
    without counts gives 0 for both.

    Examples
    --------
    >>> from driftline.stream.drift import PSI, JensenShannon
    >>> rng = np.random.default_rng(0)
    >>> ref, cur = [rng.integers(0, 50, 10) for _ in range(3)], [rng.integers(0, 50, 10) for _ in range(3)]
    >>> scores, pairs = binned_scores(ref, cur), list(enumerate(zip(ref, cur)))
    >>> [float(scores.psi[i]) == PSI().compute(r, c).score for i, (r, c) in pairs]
    [True, True, True]
    >>> [float(scores.jensen_shannon[i]) == JensenShannon().compute(r, c).score for i, (r, c) in pairs]
    [True, True, True]
    """
    k = len(references)
    if len(currents) != k:
        raise ValueError(f"{k} reference count vectors but {len(currents)} current ones")
    psi, jensen_shannon = np.zeros(k), np.zeros(k)
    groups: dict[int, list[int]] = {}
    for i, reference in enumerate(references):
        groups.setdefault(len(reference), []).append(i)
    for rows in groups.values():
        reference = np.array([references[i] for i in rows], dtype=float)
        current = np.array([currents[i] for i in rows], dtype=float)
        if reference.shape != current.shape:
            raise ValueError("reference and current counts need the same bins")
        group_psi, group_js = np.empty(len(rows)), np.empty(len(rows))
        binned_distances(reference, current, epsilon, group_psi, group_js)
        psi[rows], jensen_shannon[rows] = group_psi, group_js
    return BinnedScores(psi, jensen_shannon)

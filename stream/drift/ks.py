"""Kolmogorov-Smirnov two-sample test for numeric features and prediction scores."""

from __future__ import annotations

import numpy as np
from scipy import stats

from driftline.stream.drift.base import DriftTest, Statistic

__all__ = ["KSTest", "binned_ks_statistic"]


class KSTest(DriftTest):
    """Two-sample KS (``scipy.stats.ks_2samp``) on the reference sample and the window's sample.

    Both inputs are raw values (the bounded uniform samples the profile and the sketches
    keep), so the statistic is scipy's, exactly; ``method`` chooses scipy's p-value
    ("auto": exact up to 10 000 values, "asymp": Smirnov's asymptotic distribution, what the
    window evaluator's vectorised path computes). The sample bound caps the test's power,
    which also keeps huge windows from flagging trivial shifts.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> ref, cur = rng.normal(size=1000), rng.normal(0.5, size=1000)
    >>> r = KSTest().result("x", ref, cur)
    >>> r.test, r.drifted, round(r.statistic, 3)
    ('ks', True, 0.233)
    """

    name = "ks"
    has_p_value = True
    default_threshold = 0.05

    def __init__(self, *, threshold: float | None = None, method: str = "auto") -> None:
        if method not in ("auto", "exact", "asymp"):
            raise ValueError(f"method must be 'auto', 'exact' or 'asymp', got {method!r}")
        self.method = method
        super().__init__(threshold=threshold)

    def compute(self, reference: np.ndarray, current: np.ndarray) -> Statistic:
        if len(reference) == 0 or len(current) == 0:
            return Statistic(0.0, p_value=1.0)
        res = stats.ks_2samp(reference, current, method=self.method)
        return Statistic(float(res.statistic), p_value=float(res.pvalue))


def binned_ks_statistic(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """KS statistic from counts on shared bins: the largest CDF gap at the bin edges.

    It never exceeds the exact statistic ``D`` of the underlying values, and inside one bin
    both empirical CDFs are monotone, so ``D - max_bin max(p_ref, p_cur) <= binned <= D``
    where ``p`` are the bins' proportions. With 20 equal-frequency reference bins that bound
    is about 0.05 plus the current mass of the fullest bin.

    Examples
    --------
    >>> binned_ks_statistic(np.array([5, 5, 0]), np.array([0, 5, 5]))
    0.5
    """
    ref = np.cumsum(reference_counts) / max(np.sum(reference_counts), 1)
    cur = np.cumsum(current_counts) / max(np.sum(current_counts), 1)
    return float(np.max(np.abs(ref - cur))) if len(ref) else 0.0

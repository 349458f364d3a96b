"""Multiple-testing control across the features of one window."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats

__all__ = ["Correction", "adjust_p_values"]

Correction = Literal["bh", "bonferroni", "none"]


def adjust_p_values(p_values: np.ndarray | list[float], method: Correction = "bh") -> np.ndarray:
    """Adjusted p-values: compare each with alpha to control the error rate across all tests.

    ``bh`` (Benjamini-Hochberg, ``scipy.stats.false_discovery_control``) controls the false
    discovery rate; ``bonferroni`` the family-wise error rate (stricter); ``none`` returns
    the p-values unchanged.

    Examples
    --------
    >>> adjust_p_values([0.01, 0.02, 0.03, 0.5], "bh").round(3).tolist()
    [0.04, 0.04, 0.04, 0.5]
    >>> adjust_p_values([0.01, 0.5], "bonferroni").tolist()
    [0.02, 1.0]
    """
    p = np.asarray(p_values, dtype=float)
    if p.size == 0 or method == "none":
        return p.copy()
    if method == "bh":
        return stats.false_discovery_control(p, method="bh")
    if method == "bonferroni":
        return np.minimum(p * p.size, 1.0)
    raise ValueError(f"unknown correction {method!r}; use 'bh', 'bonferroni' or 'none'")

"""Wasserstein (earth mover's) distance between samples, in reference standard deviations."""

from __future__ import annotations

import numpy as np
from scipy import stats

from driftline.stream.drift.base import DriftTest, Statistic

__all__ = ["Wasserstein"]


class Wasserstein(DriftTest):
    """``scipy.stats.wasserstein_distance`` of the samples divided by the reference's standard deviation.

    Dividing by the reference spread makes the score comparable across features: a shift
    of the mean by half a standard deviation scores about 0.5. A score, not a test.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> r = Wasserstein().result("x", rng.normal(size=2000), rng.normal(0.5, size=2000))
    >>> r.drifted, round(r.score, 1)
    (True, 0.6)
    """

    name = "wasserstein"
    has_p_value = False
    default_threshold = 0.1

    def compute(self, reference: np.ndarray, current: np.ndarray) -> Statistic:
        if len(reference) == 0 or len(current) == 0:
            return Statistic(0.0, score=0.0)
        distance = float(stats.wasserstein_distance(reference, current))
        scale = float(np.std(reference))
        score = distance / scale if scale > 0 else distance
        return Statistic(distance, score=score)

"""Jensen-Shannon distance between binned distributions."""

from __future__ import annotations

import numpy as np
from scipy.spatial import distance

from driftline.stream.drift.base import BinnedTest, Statistic

__all__ = ["JensenShannon"]


class JensenShannon(BinnedTest):
    """``scipy.spatial.distance.jensenshannon`` in base 2: 0 for equal, 1 for disjoint distributions.

    Symmetric and bounded, unlike PSI, so it stays readable when bins empty on one side. A
    score, not a test.

    Examples
    --------
    >>> r = JensenShannon().result("x", np.array([10, 0]), np.array([0, 10]))
    >>> r.drifted, r.score
    (True, 1.0)
    """

    name = "jensen_shannon"
    has_p_value = False
    default_threshold = 0.1

    def compute(self, reference: np.ndarray, current: np.ndarray) -> Statistic:
        if np.sum(reference) == 0 or np.sum(current) == 0:
            return Statistic(0.0, score=0.0)
        score = float(distance.jensenshannon(self.proportions(reference), self.proportions(current), base=2))
        return Statistic(score, score=score)

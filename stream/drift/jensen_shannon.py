"""Jensen-Shannon distance between binned distributions."""

from __future__ import annotations

import numpy as np

from driftline.stream.drift.base import BinnedTest, Statistic
from driftline.stream.drift.vectorised import binned_scores

__all__ = ["JensenShannon"]


class JensenShannon(BinnedTest):
    """``scipy.spatial.distance.jensenshannon`` in base 2 (`binned_scores`): 0 for equal, 1 for disjoint distributions.

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
        score = float(binned_scores([reference], [current]).jensen_shannon[0])
        return Statistic(score, score=score)

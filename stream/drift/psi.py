"""Population stability index on shared bins."""

from __future__ import annotations

import numpy as np

from driftline.stream.drift.base import BinnedTest, Statistic
from driftline.stream.drift.vectorised import binned_scores

__all__ = ["PSI"]


class PSI(BinnedTest):
    """``sum((p_cur - p_ref) * ln(p_cur / p_ref))`` over the bins; a score, not a test.

    Proportions are floored at ``epsilon`` (default 1e-4) so that a bin empty on one side
    (e.g. values beyond the reference range) adds a large but finite term. Rules of thumb:
    below 0.1 stable, 0.1-0.25 moderate shift (warning), above 0.25 major shift (critical).

    Examples
    --------
    >>> r = PSI().result("x", np.array([50, 50]), np.array([40, 60]))
    >>> r.drifted, round(r.score, 4)
    (False, 0.0405)
    """

    name = "psi"
    has_p_value = False
    default_threshold = 0.1

    def __init__(self, *, threshold: float | None = None, epsilon: float = 1e-4) -> None:
        if not 0 < epsilon < 1:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
        self.epsilon = epsilon
        super().__init__(threshold=threshold)

    def compute(self, reference: np.ndarray, current: np.ndarray) -> Statistic:
        psi = float(binned_scores([reference], [current], epsilon=self.epsilon).psi[0])
        return Statistic(psi, score=psi)

"""The base every drift test shares: the threshold, the verdict and the result assembly.

A concrete test only computes its statistic (`DriftTest.compute`); the base turns it into
a `FeatureResult` with the evidence. Tests with a p-value call drift when ``p < threshold``;
score tests (PSI, Wasserstein, Jensen-Shannon) when ``score >= threshold``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from driftline.schemas.events import FeatureResult

__all__ = ["DriftTest", "Statistic"]


@dataclass(frozen=True, slots=True)
class Statistic:
    """What a test computed: the statistic, and a p-value or an effect-size score."""

    statistic: float
    p_value: float | None = None
    score: float | None = None


class DriftTest(ABC):
    """A two-sample test of a current distribution against the reference.

    Parameters
    ----------
    threshold
        Significance level for tests with a p-value, minimum score for score tests.
    """

    name: ClassVar[str]
    has_p_value: ClassVar[bool]
    default_threshold: ClassVar[float]

    def __init__(self, *, threshold: float | None = None) -> None:
        threshold = self.default_threshold if threshold is None else threshold
        if not threshold > 0 or (self.has_p_value and threshold >= 1):
            raise ValueError(f"{self.name}: threshold out of range: {threshold}")
        self.threshold = threshold

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold})"

    @abstractmethod
    def compute(self, reference: np.ndarray, current: np.ndarray) -> Statistic:
        """The statistic of ``current`` against ``reference`` (counts or samples, per test)."""

    def result(self, feature: str, reference: np.ndarray, current: np.ndarray, *, n_reference: int | None = None,
               n_current: int | None = None) -> FeatureResult:
        """Compute and judge: the verdict with its evidence.

        ``n_reference`` / ``n_current`` default to the sizes of the inputs (sum of counts for
        binned tests, length for sample tests).
        """
        stat = self.compute(np.asarray(reference), np.asarray(current))
        return self.judge(feature, stat, n_reference=self._size(reference) if n_reference is None else n_reference,
                          n_current=self._size(current) if n_current is None else n_current)

    def judge(self, feature: str, stat: Statistic, *, n_reference: int, n_current: int) -> FeatureResult:
        """The verdict and evidence for a statistic computed elsewhere (e.g. vectorised over features)."""
        if self.has_p_value:
            if stat.p_value is None:
                raise ValueError(f"{self.name} needs a p-value")
            drifted = stat.p_value < self.threshold
        else:
            if stat.score is None:
                raise ValueError(f"{self.name} needs a score")
            drifted = stat.score >= self.threshold
        return FeatureResult(
            feature=feature, test=self.name, statistic=stat.statistic, p_value=stat.p_value, score=stat.score,
            threshold=self.threshold, drifted=bool(drifted), n_reference=n_reference, n_current=n_current,
        )

    @staticmethod
    def _size(values: np.ndarray) -> int:
        return len(values)


class BinnedTest(DriftTest, ABC):
    """A test on bin counts: both inputs are count vectors over the same bins."""

    @staticmethod
    def _size(values: np.ndarray) -> int:
        return int(np.asarray(values).sum())

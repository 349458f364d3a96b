"""The promotion policy and the cooldown: pure decisions over numbers, no MLflow, no clock.

A candidate is promoted only when it reaches the minimum value of the primary metric (if
one is set) and beats the champion by a relative improvement; otherwise it is registered
as the challenger, and the decision says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["PromotionDecision", "PromotionPolicy", "cooldown_remaining_s", "relative_improvement"]


def relative_improvement(candidate: float, champion: float, *, higher_is_better: bool) -> float:
    """How much better the candidate is, relative to the champion (0.05 = 5 % better).

    A champion at exactly 0 gives +inf for any strict improvement, 0 for a tie and -inf
    otherwise, so the comparison stays meaningful for error metrics that reach zero.

    >>> round(relative_improvement(0.84, 0.80, higher_is_better=True), 4)
    0.05
    >>> relative_improvement(9.0, 10.0, higher_is_better=False)
    0.1
    """
    gain = candidate - champion if higher_is_better else champion - candidate
    if champion == 0:
        return math.inf if gain > 0 else (0.0 if gain == 0 else -math.inf)
    return gain / abs(champion)


@dataclass(frozen=True, slots=True)
class PromotionDecision:
    """The verdict with its evidence: the metric compared, both values and the improvement."""

    action: Literal["promoted", "challenger"]
    reason: str
    metric: str
    candidate: float
    champion: float | None
    improvement: float | None

    @property
    def promote(self) -> bool:
        return self.action == "promoted"


@dataclass(frozen=True, slots=True)
class PromotionPolicy:
    """Promote when ``metric`` reaches ``min_metric`` and improves on the champion by ``min_improvement``.

    Parameters
    ----------
    metric
        The primary metric compared (e.g. ``accuracy``, ``rmse``, ``ndcg@5``).
    higher_is_better
        Direction of ``metric``.
    min_metric
        Absolute floor (ceiling for error metrics) the candidate must reach; None for none.
    min_improvement
        Required relative improvement over the champion, e.g. 0.01 for 1 %.

    Examples
    --------
    >>> policy = PromotionPolicy("accuracy", higher_is_better=True, min_metric=0.8, min_improvement=0.01)
    >>> policy.decide(0.86, 0.82).action
    'promoted'
    >>> policy.decide(0.825, 0.82).reason
    'accuracy 0.8250 improves on the champion 0.8200 by 0.61 %, below the required 1.00 %'
    """

    metric: str
    higher_is_better: bool
    min_metric: float | None = None
    min_improvement: float = 0.01

    def __post_init__(self) -> None:
        if self.min_improvement < 0:
            raise ValueError(f"min_improvement must be >= 0, got {self.min_improvement}")

    def decide(self, candidate: float, champion: float | None) -> PromotionDecision:
        """Compare the candidate's primary metric with the champion's (None: no champion yet)."""
        name = self.metric
        if not math.isfinite(candidate):
            return PromotionDecision("challenger", f"{name} of the candidate is not finite", name, candidate,
                                     champion, None)
        if self.min_metric is not None:
            reached = candidate >= self.min_metric if self.higher_is_better else candidate <= self.min_metric
            if not reached:
                bound = "minimum" if self.higher_is_better else "maximum"
                return PromotionDecision(
                    "challenger", f"{name} {candidate:.4f} misses the {bound} {self.min_metric:.4f}", name,
                    candidate, champion, None,
                )
        if champion is None or not math.isfinite(champion):
            return PromotionDecision("promoted", f"{name} {candidate:.4f}; no champion to beat", name, candidate,
                                     champion, None)
        gain = relative_improvement(candidate, champion, higher_is_better=self.higher_is_better)
        verdict = f"{name} {candidate:.4f} improves on the champion {champion:.4f} by {_percent(gain)}"
        if gain >= self.min_improvement and gain > 0:
            return PromotionDecision("promoted", verdict, name, candidate, champion, gain)
        if gain <= 0:
            verdict = f"{name} {candidate:.4f} does not beat the champion {champion:.4f}"
        else:
            verdict = f"{verdict}, below the required {_percent(self.min_improvement)}"
        return PromotionDecision("challenger", verdict, name, candidate, champion, gain)


def _percent(value: float) -> str:
    return f"{value * 100:.2f} %" if math.isfinite(value) else "inf"


def cooldown_remaining_s(last_retrain_ts: float | None, now_ts: float, cooldown_s: float) -> float:
    """Seconds left before the model may be retrained again (0 when it may).

    >>> cooldown_remaining_s(1000.0, 1600.0, 3600.0)
    3000.0
    >>> cooldown_remaining_s(None, 1600.0, 3600.0)
    0.0
    """
    if last_retrain_ts is None:
        return 0.0
    return max(0.0, last_retrain_ts + cooldown_s - now_ts)

"""A/B test statistics between model variants: mergeable arm statistics and a fixed-horizon analysis.

Every labeled event of a variant contributes one per-event value: 1/0 for a correct class
(metric ``accuracy``), the absolute error (``mae``), or the group's NDCG@5 (``ndcg@5``).
Arms keep only count, sum and sum of squares, so they merge across partitions and restarts.

Honesty about peeking: the analysis reports p-values at every snapshot, but it *concludes*
only once every arm has reached ``min_samples_per_variant`` (a fixed horizon chosen up
front). Before that the conclusion is ``insufficient_data``, whatever the p-value says, so
repeated looks do not inflate the false-positive rate of the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from driftline.schemas.events import (
    ABResult,
    ClassPrediction,
    Experiment,
    LabeledEvent,
    RankingOutcome,
    RankingPrediction,
    VariantResult,
)

__all__ = ["AB_METRICS", "ArmStats", "analyze_experiment", "per_event_value"]

# metric -> higher is better
AB_METRICS: dict[str, bool] = {"accuracy": True, "mae": False, "ndcg@5": True}


@dataclass(frozen=True, slots=True)
class ArmStats:
    """Sufficient statistics of one arm's per-event values; merge is addition.

    Examples
    --------
    >>> a = ArmStats.from_values([1, 0, 1, 1])
    >>> b = ArmStats.from_values([0, 1])
    >>> merged = a.merge(b)
    >>> merged.n, round(merged.mean, 3)
    (6, 0.667)
    """

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    @classmethod
    def from_values(cls, values: np.ndarray | list[float]) -> ArmStats:
        arr = np.asarray(values, dtype=float)
        return cls(int(arr.size), float(arr.sum()), float(np.square(arr).sum()))

    def merge(self, other: ArmStats) -> ArmStats:
        return ArmStats(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    @property
    def variance(self) -> float:
        """Unbiased sample variance."""
        if self.n < 2:
            return float("nan")
        return max(0.0, (self.total_sq - self.total**2 / self.n) / (self.n - 1))

    def to_dict(self) -> dict[str, float]:
        return {"n": self.n, "total": self.total, "total_sq": self.total_sq}

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> ArmStats:
        return cls(int(data["n"]), float(data["total"]), float(data["total_sq"]))


def _label(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def per_event_value(metric: str, event: LabeledEvent) -> float | None:
    """The per-event contribution of a labeled event to ``metric``; None when it does not apply."""
    prediction, outcome = event.prediction, event.outcome
    if metric == "accuracy" and isinstance(prediction, ClassPrediction) and not isinstance(outcome, RankingOutcome):
        return float(prediction.label == _label(outcome))
    if metric == "mae" and isinstance(prediction, float | int) and isinstance(outcome, float | int):
        return abs(float(prediction) - float(outcome))
    if metric == "ndcg@5" and isinstance(prediction, RankingPrediction) and isinstance(outcome, RankingOutcome):
        return _ndcg_at(prediction, outcome, k=5)
    return None


def _ndcg_at(prediction: RankingPrediction, outcome: RankingOutcome, *, k: int) -> float:
    ranked = sorted(prediction.items, key=lambda item: item.score, reverse=True)[:k]
    gains = np.array([outcome.relevance.get(item.item_id, 0.0) for item in ranked])
    discounts = 1.0 / np.log2(np.arange(2, gains.size + 2))
    ideal = np.sort(np.array(list(outcome.relevance.values())))[::-1][:k]
    idcg = float((ideal * discounts[: ideal.size]).sum())
    return float((gains * discounts).sum() / idcg) if idcg > 0 else 0.0


def _interval(arm: ArmStats, metric: str, alpha: float) -> tuple[float, float]:
    if arm.n == 0:
        return (float("nan"), float("nan"))
    if metric == "accuracy":
        ci = stats.binomtest(round(arm.total), arm.n).proportion_ci(confidence_level=1 - alpha, method="wilson")
        return (float(ci.low), float(ci.high))
    if arm.n < 2:
        return (arm.mean, arm.mean)
    half = stats.t.ppf(1 - alpha / 2, arm.n - 1) * np.sqrt(arm.variance / arm.n)
    return (arm.mean - half, arm.mean + half)


def _test(metric: str, arms: list[ArmStats]) -> tuple[str, float, float]:
    """(test name, statistic, p-value) across all arms."""
    if any(arm.n < 2 for arm in arms):
        return ("none", 0.0, 1.0)
    if metric == "accuracy":
        table = np.array([[arm.total, arm.n - arm.total] for arm in arms])
        if (table.sum(axis=0) == 0).any():
            return ("chi2_contingency", 0.0, 1.0)
        result = stats.chi2_contingency(table, correction=False)
        return ("chi2_contingency", float(result.statistic), float(result.pvalue))
    if len(arms) == 2:
        a, b = arms
        result = stats.ttest_ind_from_stats(
            a.mean, np.sqrt(a.variance), a.n, b.mean, np.sqrt(b.variance), b.n, equal_var=False
        )
        if not np.isfinite(result.pvalue):
            return ("welch_t", 0.0, 1.0)
        return ("welch_t", float(result.statistic), float(result.pvalue))
    # k arms on a continuous metric: one-way ANOVA from sufficient statistics
    n = np.array([a.n for a in arms], dtype=float)
    means = np.array([a.mean for a in arms])
    grand = float((n * means).sum() / n.sum())
    between = float((n * (means - grand) ** 2).sum()) / (len(arms) - 1)
    within = float(sum((a.n - 1) * a.variance for a in arms)) / (n.sum() - len(arms))
    if within <= 0:
        return ("anova_f", 0.0, 1.0)
    f_stat = between / within
    return ("anova_f", f_stat, float(stats.f.sf(f_stat, len(arms) - 1, n.sum() - len(arms))))


def analyze_experiment(experiment: Experiment, arms: Mapping[str, ArmStats], *, ts: float) -> ABResult:
    """One snapshot of an experiment: per-arm value and interval, the test, and a fixed-horizon conclusion."""
    if experiment.metric not in AB_METRICS:
        raise ValueError(f"unsupported A/B metric {experiment.metric!r}; known: {sorted(AB_METRICS)}")
    ordered = [arms.get(v.name, ArmStats()) for v in experiment.variants]
    variants = [
        VariantResult(
            name=spec.name,
            model_version=spec.model_version,
            n=arm.n,
            value=arm.mean if arm.n else 0.0,
            ci_low=_finite(_interval(arm, experiment.metric, experiment.alpha)[0]),
            ci_high=_finite(_interval(arm, experiment.metric, experiment.alpha)[1]),
        )
        for spec, arm in zip(experiment.variants, ordered, strict=True)
    ]
    test, statistic, p_value = _test(experiment.metric, ordered)
    horizon_reached = all(arm.n >= experiment.min_samples_per_variant for arm in ordered)
    winner: str | None = None
    if not horizon_reached:
        conclusion = "insufficient_data"
    elif p_value < experiment.alpha:
        conclusion = "significant"
        pick = max if AB_METRICS[experiment.metric] else min
        winner = pick(variants, key=lambda v: v.value).name
    else:
        conclusion = "no_difference"
    return ABResult(
        experiment_id=experiment.experiment_id,
        ts=ts,
        model=experiment.model,
        metric=experiment.metric,
        variants=variants,
        test=test,
        statistic=statistic,
        p_value=p_value,
        winner=winner,
        conclusion=conclusion,
    )


def _finite(value: float) -> float:
    return value if np.isfinite(value) else 0.0

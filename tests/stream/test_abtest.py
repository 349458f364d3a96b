"""A/B statistics: agreement with scipy on raw data, merge, fixed-horizon conclusions, error rates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftline.schemas.events import (
    ClassPrediction,
    Experiment,
    LabeledEvent,
    RankedItem,
    RankingOutcome,
    RankingPrediction,
    VariantSpec,
)
from driftline.stream.abtest import ArmStats, analyze_experiment, per_event_value


def experiment(metric: str = "accuracy", min_samples: int = 500, arms: int = 2) -> Experiment:
    return Experiment(
        experiment_id="exp-1",
        ts=0.0,
        model="churn",
        variants=[VariantSpec(name=f"v{i}", model_version=str(i + 1), traffic=1 / arms) for i in range(arms)],
        metric=metric,
        min_samples_per_variant=min_samples,
    )


def test_arm_stats_merge_equals_stats_of_concatenation() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=300), rng.normal(size=200)
    merged = ArmStats.from_values(a).merge(ArmStats.from_values(b))
    both = np.concatenate([a, b])
    assert merged.n == 500
    assert merged.mean == pytest.approx(both.mean())
    assert merged.variance == pytest.approx(both.var(ddof=1))
    assert ArmStats.from_dict(merged.to_dict()) == merged


def test_welch_test_matches_scipy_on_raw_values() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(1.0, 1.0, 800), rng.normal(1.2, 1.5, 700)
    result = analyze_experiment(
        experiment("mae"), {"v0": ArmStats.from_values(a), "v1": ArmStats.from_values(b)}, ts=1.0
    )
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert result.test == "welch_t"
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6)
    assert result.conclusion == "significant"
    assert result.winner == "v0"  # lower absolute error wins


def test_accuracy_uses_chi_square_and_picks_the_better_arm() -> None:
    rng = np.random.default_rng(3)
    a = (rng.random(2000) < 0.80).astype(float)
    b = (rng.random(2000) < 0.86).astype(float)
    result = analyze_experiment(experiment(), {"v0": ArmStats.from_values(a), "v1": ArmStats.from_values(b)}, ts=1.0)
    table = [[a.sum(), a.size - a.sum()], [b.sum(), b.size - b.sum()]]
    assert result.p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)
    assert result.winner == "v1"
    low, high = result.variants[1].ci_low, result.variants[1].ci_high
    assert low < b.mean() < high


def test_no_conclusion_before_the_horizon_even_when_p_is_small() -> None:
    a = ArmStats.from_values([1.0] * 100)
    b = ArmStats.from_values([0.0] * 100)
    result = analyze_experiment(experiment(min_samples=500), {"v0": a, "v1": b}, ts=1.0)
    assert result.p_value < 1e-10
    assert result.conclusion == "insufficient_data"
    assert result.winner is None


def test_false_positive_rate_of_the_decision_is_near_alpha() -> None:
    """A/A tests: identical arms conclude 'significant' in about alpha of experiments."""
    rng = np.random.default_rng(4)
    exp = experiment(min_samples=400)
    significant = 0
    trials = 400
    for _ in range(trials):
        arms = {name: ArmStats.from_values((rng.random(400) < 0.7).astype(float)) for name in ("v0", "v1")}
        significant += analyze_experiment(exp, arms, ts=0.0).conclusion == "significant"
    rate = significant / trials
    print(f"A/A false-positive rate: {rate:.3f} (alpha 0.05)")
    assert 0.01 <= rate <= 0.09


def test_three_arms_on_a_continuous_metric_use_anova() -> None:
    rng = np.random.default_rng(5)
    samples = [rng.normal(m, 1.0, 600) for m in (1.0, 1.0, 1.3)]
    arms = {f"v{i}": ArmStats.from_values(s) for i, s in enumerate(samples)}
    result = analyze_experiment(experiment("mae", arms=3), arms, ts=0.0)
    assert result.test == "anova_f"
    assert result.p_value == pytest.approx(stats.f_oneway(*samples).pvalue, rel=1e-6)


def labeled(prediction, outcome) -> LabeledEvent:
    return LabeledEvent(
        event_id="e", ts=0.0, outcome_ts=1.0, model="m", model_version="1", request_id="r",
        features={}, prediction=prediction, outcome=outcome,
    )


def test_per_event_values_for_each_task() -> None:
    assert per_event_value("accuracy", labeled(ClassPrediction(label="1"), 1.0)) == 1.0
    assert per_event_value("accuracy", labeled(ClassPrediction(label="yes"), "no")) == 0.0
    assert per_event_value("mae", labeled(2.5, 1.0)) == 1.5
    items = [RankedItem(item_id="a", score=0.9), RankedItem(item_id="b", score=0.1)]
    ranking = RankingPrediction(group_id="g", items=items)
    perfect = RankingOutcome(group_id="g", relevance={"a": 2.0, "b": 1.0})
    reversed_ = RankingOutcome(group_id="g", relevance={"a": 0.0, "b": 1.0})
    assert per_event_value("ndcg@5", labeled(ranking, perfect)) == pytest.approx(1.0)
    assert per_event_value("ndcg@5", labeled(ranking, reversed_)) == pytest.approx(1 / np.log2(3))
    assert per_event_value("mae", labeled(ClassPrediction(label="1"), "1")) is None

"""The promotion policy and the cooldown: pure decisions, pinned on tables."""

from __future__ import annotations

import math

import pytest

from driftline.consumers.retrain.policy import PromotionPolicy, cooldown_remaining_s, relative_improvement


@pytest.mark.parametrize(
    ("metric", "higher", "min_metric", "candidate", "champion", "action"),
    [
        ("accuracy", True, None, 0.80, None, "promoted"),  # nothing to beat
        ("accuracy", True, 0.85, 0.80, None, "challenger"),  # below the floor
        ("accuracy", True, None, 0.85, 0.80, "promoted"),  # 6.25 % better
        ("accuracy", True, None, 0.805, 0.80, "challenger"),  # 0.6 % better: not enough
        ("accuracy", True, None, 0.78, 0.80, "challenger"),  # worse
        ("rmse", False, None, 9.0, 10.0, "promoted"),  # 10 % lower error
        ("rmse", False, 8.0, 9.0, 10.0, "challenger"),  # error above the ceiling
        ("rmse", False, None, 0.0, 0.0, "challenger"),  # a tie at zero error
        ("rmse", False, None, 0.0, 0.5, "promoted"),
        ("ndcg@5", True, None, math.nan, 0.5, "challenger"),  # a broken candidate never wins
    ],
)
def test_decisions(metric: str, higher: bool, min_metric: float | None, candidate: float, champion: float | None,
                   action: str) -> None:
    policy = PromotionPolicy(metric, higher_is_better=higher, min_metric=min_metric, min_improvement=0.01)
    decision = policy.decide(candidate, champion)
    assert decision.action == action
    assert decision.metric == metric
    assert decision.candidate == candidate or math.isnan(candidate)
    assert decision.reason


def test_required_improvement_is_relative_and_configurable() -> None:
    strict = PromotionPolicy("accuracy", higher_is_better=True, min_improvement=0.10)
    assert strict.decide(0.85, 0.80).action == "challenger"
    assert strict.decide(0.89, 0.80).improvement == pytest.approx(0.1125)
    with pytest.raises(ValueError, match="min_improvement"):
        PromotionPolicy("accuracy", higher_is_better=True, min_improvement=-0.1)


def test_relative_improvement_signs() -> None:
    assert relative_improvement(0.9, 0.8, higher_is_better=True) == pytest.approx(0.125)
    assert relative_improvement(0.7, 0.8, higher_is_better=True) == pytest.approx(-0.125)
    assert relative_improvement(2.0, 1.0, higher_is_better=False) == pytest.approx(-1.0)
    assert relative_improvement(0.1, 0.0, higher_is_better=True) == math.inf


@pytest.mark.parametrize(
    ("last", "now", "cooldown", "remaining"),
    [(None, 100.0, 3600.0, 0.0), (0.0, 100.0, 3600.0, 3500.0), (0.0, 3600.0, 3600.0, 0.0), (0.0, 5.0, 0.0, 0.0)],
)
def test_cooldown(last: float | None, now: float, cooldown: float, remaining: float) -> None:
    assert cooldown_remaining_s(last, now, cooldown) == remaining

"""compute_metrics agrees with sklearn.metrics on the same data, and covers every metric name."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from driftline.stream.performance import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    PRIMARY_METRIC,
    RANKING_METRICS,
    REGRESSION_METRICS,
    TASKS,
    compute_metrics,
    positive_class,
    ranking_group_metrics,
)


def binary_rows(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(["churn", "stay"], size=n, p=[0.3, 0.7])
    scores = np.clip(np.where(truth == "stay", 0.65, 0.35) + rng.normal(0, 0.2, n), 0, 1)
    return truth, np.where(scores > 0.5, "stay", "churn"), scores


def ranking_rows(seed: int, n_groups: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 12, size=n_groups)
    groups = np.repeat([f"race-{i}" for i in range(n_groups)], sizes)
    relevance = rng.integers(0, 4, size=groups.size).astype(float)
    scores = relevance + rng.normal(0, 1.5, size=groups.size)
    return relevance, scores, groups


def test_binary_classification_matches_sklearn() -> None:
    truth, predicted, scores = binary_rows(seed=1)
    result = compute_metrics("classification", truth, predicted, scores=scores)
    assert set(result) == set(CLASSIFICATION_METRICS)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert result["precision"] == pytest.approx(skm.precision_score(truth, predicted, pos_label="stay"))
    assert result["recall"] == pytest.approx(skm.recall_score(truth, predicted, pos_label="stay"))
    assert result["f1"] == pytest.approx(skm.f1_score(truth, predicted, pos_label="stay"))
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(truth == "stay", scores))
    assert result["log_loss"] == pytest.approx(skm.log_loss(truth, scores))


def test_explicit_positive_label_is_used_for_scores_and_class_metrics() -> None:
    truth, predicted, scores = binary_rows(seed=2)
    result = compute_metrics("classification", truth, predicted, scores=1 - scores, positive_label="churn")
    assert result["f1"] == pytest.approx(skm.f1_score(truth, predicted, pos_label="churn"))
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(truth == "churn", 1 - scores))
    assert result["log_loss"] == pytest.approx(skm.log_loss(truth == "churn", 1 - scores))


def test_multiclass_uses_macro_averages_and_leaves_out_score_metrics() -> None:
    rng = np.random.default_rng(3)
    truth = rng.choice(["a", "b", "c"], size=1500)
    predicted = np.where(rng.random(1500) < 0.7, truth, rng.choice(["a", "b", "c"], size=1500))
    result = compute_metrics("classification", truth, predicted, scores=rng.random(1500))
    assert set(result) == {"accuracy", "precision", "recall", "f1"}
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert result["precision"] == pytest.approx(skm.precision_score(truth, predicted, average="macro"))
    assert result["recall"] == pytest.approx(skm.recall_score(truth, predicted, average="macro"))
    assert result["f1"] == pytest.approx(skm.f1_score(truth, predicted, average="macro"))


@pytest.mark.parametrize(
    ("y_true", "y_pred", "left_out"),
    [
        (["no", "no", "no"], ["no", "no", "no"], {"precision", "recall", "f1"}),
        (["no", "no", "no"], ["no", "yes", "no"], {"recall"}),
        (["yes", "no", "no"], ["no", "no", "no"], {"precision"}),
    ],
)
def test_undefined_positive_class_ratios_are_left_out(y_true: list, y_pred: list, left_out: set) -> None:
    result = compute_metrics("classification", y_true, y_pred, positive_label="yes")
    assert set(result) == {"accuracy", "precision", "recall", "f1"} - left_out


def test_single_class_window_has_no_roc_auc_but_a_log_loss() -> None:
    result = compute_metrics("classification", ["yes"] * 4, ["yes", "no", "yes", "yes"], scores=[0.9, 0.4, 0.8, 0.7])
    assert "roc_auc" not in result
    assert result["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.7])))
    assert result["accuracy"] == 0.75


def test_regression_matches_sklearn() -> None:
    rng = np.random.default_rng(4)
    truth = rng.gamma(2.0, 10.0, size=1000)
    predicted = truth + rng.normal(0, 3.0, size=1000)
    result = compute_metrics("regression", truth, predicted)
    assert set(result) == set(REGRESSION_METRICS)
    assert result["mae"] == pytest.approx(skm.mean_absolute_error(truth, predicted))
    assert result["rmse"] == pytest.approx(skm.root_mean_squared_error(truth, predicted))


@pytest.mark.parametrize("tied_scores", [False, True], ids=["distinct", "ties"])
def test_ranking_ndcg_matches_sklearn_per_group(tied_scores: bool) -> None:
    relevance, scores, groups = ranking_rows(seed=5)
    if tied_scores:
        scores = np.round(scores)
    result = compute_metrics("ranking", relevance, scores, groups=groups)
    assert set(result) == set(RANKING_METRICS)
    for k in (3, 5):
        expected = np.mean(
            [skm.ndcg_score([relevance[groups == g]], [scores[groups == g]], k=k) for g in np.unique(groups)]
        )
        assert result[f"ndcg@{k}"] == pytest.approx(expected)


def test_ranking_mrr_and_map_match_their_definitions() -> None:
    relevance, scores, groups = ranking_rows(seed=6)
    reciprocal_ranks, average_precisions = [], []
    for g in np.unique(groups):
        rel, score = relevance[groups == g], scores[groups == g]
        relevant_in_order = rel[np.argsort(-score, kind="stable")] > 0
        first = np.flatnonzero(relevant_in_order)
        reciprocal_ranks.append(1.0 / (first[0] + 1) if first.size else 0.0)
        average_precisions.append(skm.average_precision_score(rel > 0, score) if (rel > 0).any() else 0.0)
    result = compute_metrics("ranking", relevance, scores, groups=groups)
    assert result["mrr"] == pytest.approx(np.mean(reciprocal_ranks))
    assert result["map"] == pytest.approx(np.mean(average_precisions))


def test_ranking_group_without_relevant_items_scores_zero() -> None:
    ids, values = ranking_group_metrics(np.array([0.0, 0.0]), np.array([0.3, 0.1]), np.array(["g", "g"]))
    assert ids.tolist() == ["g"]
    assert {name: v.tolist() for name, v in values.items()} == {name: [0.0] for name in RANKING_METRICS}


def test_negative_relevance_counts_as_not_relevant() -> None:
    relevance, scores, groups = ranking_rows(seed=7)
    shifted = np.where(relevance == 0, -2.0, relevance)
    assert compute_metrics("ranking", shifted, scores, groups=groups) == compute_metrics(
        "ranking", relevance, scores, groups=groups
    )


@pytest.mark.parametrize(
    ("labels", "chosen", "expected"),
    [(["no", "yes"], None, "yes"), (["yes"], None, "yes"), (["no"], "yes", "yes"), (["a", "b", "c"], None, None)],
)
def test_positive_class(labels: list[str], chosen: str | None, expected: str | None) -> None:
    assert positive_class(labels, chosen) == expected


def test_every_metric_has_a_direction_and_every_task_a_primary_metric() -> None:
    assert set(HIGHER_IS_BETTER) == set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS) | set(RANKING_METRICS)
    assert set(PRIMARY_METRIC) == set(TASKS)
    assert all(name in HIGHER_IS_BETTER for name in PRIMARY_METRIC.values())
    assert not HIGHER_IS_BETTER["rmse"] and HIGHER_IS_BETTER["ndcg@5"]


def test_empty_input_gives_no_metrics() -> None:
    assert compute_metrics("regression", [], []) == {}
    assert compute_metrics("classification", [], []) == {}


@pytest.mark.parametrize(
    ("task", "y_true", "y_pred", "kwargs", "message"),
    [
        ("forecasting", [1.0], [1.0], {}, "task must be one of"),
        ("regression", [1.0, 2.0], [1.0], {}, "one length"),
        ("ranking", [1.0], [0.5], {}, "group id"),
        ("classification", ["a", "b"], ["a", "a"], {"scores": [0.5]}, "one positive-class probability"),
    ],
)
def test_bad_input_is_rejected(task: str, y_true: list, y_pred: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_metrics(task, y_true, y_pred, **kwargs)

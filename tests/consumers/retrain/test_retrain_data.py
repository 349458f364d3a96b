"""The training frame: one row per event (per item for rankings), time order, time split."""

from __future__ import annotations

import pandas as pd
import pytest
from retrain_helpers import classification_events, ranking_events, regression_events

from driftline.consumers.retrain.data import (
    build_frame,
    feature_columns,
    infer_task,
    reference_sample,
    time_split,
)


def test_classification_frame_keeps_features_labels_and_time_order() -> None:
    events = classification_events(50)
    frame = build_frame(list(reversed(events)), "classification")
    assert infer_task(events) == "classification"
    assert frame["ts"].is_monotonic_increasing and len(frame) == 50
    assert feature_columns(frame) == ["plan", "x1", "x2", "x3"]
    assert frame["x3"].isna().sum() == 3  # None features stay missing
    assert set(frame["outcome"]) <= {"yes", "no"} and set(frame["prediction"]) <= {"yes", "no"}


def test_regression_task_is_inferred_from_numeric_outcomes() -> None:
    events = regression_events(10)
    assert infer_task(events) == "regression"
    assert build_frame(events, "regression")["outcome"].dtype.kind == "f"


def test_ranking_frame_explodes_items_with_their_own_features() -> None:
    events = ranking_events(3, runners=4)
    frame = build_frame(events, "ranking")
    assert infer_task(events) == "ranking"
    assert len(frame) == 12
    assert feature_columns(frame) == ["form", "going", "weight"]
    first = events[0]
    row = frame[(frame["group_id"] == first.prediction.group_id) & (frame["item_id"] == "h2")].iloc[0]
    assert row["form"] == first.features["runner.h2.form"]
    assert row["going"] == first.features["going"]
    assert row["relevance"] == first.outcome.relevance["h2"]
    assert row["score"] == next(i.score for i in first.prediction.items if i.item_id == "h2")


@pytest.mark.parametrize(("n", "fraction", "n_holdout"), [(10, 0.2, 2), (11, 0.2, 3), (5, 0.5, 3), (3, 0.01, 1)])
def test_time_split_holds_out_the_most_recent(n: int, fraction: float, n_holdout: int) -> None:
    frame = pd.DataFrame({"x": range(n), "ts": range(n)})
    train, holdout = time_split(frame, fraction, task="regression")
    assert len(holdout) == n_holdout and len(train) == n - n_holdout
    assert train["ts"].max() < holdout["ts"].min()


def test_ranking_split_keeps_groups_whole() -> None:
    frame = build_frame(ranking_events(10, runners=5), "ranking")
    train, holdout = time_split(frame, 0.2, task="ranking")
    assert holdout["group_id"].nunique() == 2 and len(holdout) == 10
    assert not set(train["group_id"]) & set(holdout["group_id"])


def test_time_split_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError, match="holdout_fraction"):
        time_split(pd.DataFrame({"ts": [1, 2]}), 1.0, task="regression")


def test_reference_sample_uses_the_events_feature_names() -> None:
    events = ranking_events(4, runners=3)
    frame = build_frame(events, "ranking")
    _train, holdout = time_split(frame, 0.5, task="ranking")
    sample = reference_sample(events, holdout, [0.5] * len(holdout), "ranking")
    assert len(sample) == 6 and "runner.h0.form" in sample.columns
    assert set(sample["prediction"]) == {0.5} and set(sample["group_id"]) == set(holdout["group_id"])
    tabular = build_frame(classification_events(20), "classification")
    sample = reference_sample([], tabular, ["yes"] * 20, "classification")
    assert list(sample["prediction"]) == ["yes"] * 20 and "x1" in sample.columns

"""Decoded events to columns: numeric, categorical, class, ranking predictions and labeled rows."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.schemas.events import (
    ClassPrediction,
    LabeledEvent,
    PredictionEvent,
    RankedItem,
    RankingOutcome,
    RankingPrediction,
)
from driftline.stream import PaneAggregator, build_reference
from driftline.stream.columns import Columns, columns_from_events, labeled_columns


def _ranking_event(i: int, n_items: int, *, outcome: bool = False) -> PredictionEvent | LabeledEvent:
    prediction = RankingPrediction(group_id=f"race{i}", items=[RankedItem(item_id=f"h{k}", score=float(n_items - k))
                                                               for k in range(n_items)])
    common = {"event_id": f"e{i}", "ts": float(i), "model": "r", "model_version": "1", "request_id": f"q{i}",
              "features": {"going": "soft" if i % 2 else "firm", "distance": 1000.0 + i}, "prediction": prediction}
    if outcome:
        return LabeledEvent(outcome_ts=float(i), outcome=RankingOutcome(group_id=f"race{i}", relevance={"h0": 2.0}),
                            **common)
    return PredictionEvent(**common)


@pytest.fixture(scope="module")
def ranking_profile():
    return build_reference([_ranking_event(i, 3, outcome=True) for i in range(60)], model="r", model_version="1",
                           task="ranking")


def test_ranking_predictions_become_one_row_per_item(ranking_profile) -> None:
    events = [_ranking_event(i, n) for i, n in enumerate([2, 3, 1])]
    columns = columns_from_events(events, ranking_profile)
    assert len(columns) == 3
    assert columns.prediction.tolist() == [2.0, 1.0, 3.0, 2.0, 1.0, 1.0]
    assert columns.prediction_event.tolist() == [0, 0, 1, 1, 1, 2]
    assert len(set(columns.prediction_keys.tolist())) == 6
    assert columns.features["going"].tolist() == ["firm", "soft", "firm"]
    taken = columns.take(np.array([1, 2]))
    assert taken.prediction.tolist() == [3.0, 2.0, 1.0, 1.0] and taken.prediction_event.tolist() == [0, 0, 0, 1]
    # an item's key depends on its event and position, not on the batch it came in
    alone = columns_from_events(events[1:2], ranking_profile)
    assert alone.prediction_keys.tolist() == columns.prediction_keys[2:5].tolist()


def test_ranking_panes_sketch_items_and_labeled_groups(ranking_profile) -> None:
    agg = PaneAggregator({"r": ranking_profile}, pane_s=60, allowed_lateness_s=0, source="s")
    agg.add_batch([_ranking_event(i, 3) for i in range(30)], [_ranking_event(i, 3, outcome=True) for i in range(30)])
    agg.add_predictions([_ranking_event(500, 3)])
    (partial,) = [p for p in agg.close_panes() if p.n_events]
    assert partial.n_events == 30 and partial.prediction.n == 90
    assert partial.labeled is not None


def test_mixed_and_missing_values_fall_back_per_column() -> None:
    profile = build_reference(
        [PredictionEvent(event_id=f"e{i}", ts=0.0, model="m", model_version="1", request_id=f"r{i}",
                         features={"a": float(i), "b": float(i % 3)}, prediction=ClassPrediction(label="x"))
         for i in range(50)], model="m", model_version="1", task="classification")
    events = [
        PredictionEvent(event_id="1", ts=0.0, model="m", model_version="1", request_id="1",
                        features={"a": 1.0, "b": "oops"}, prediction=ClassPrediction(label="x")),
        PredictionEvent(event_id="2", ts=0.0, model="m", model_version="1", request_id="2",
                        features={"a": None}, prediction=ClassPrediction(label="y")),
    ]
    columns = columns_from_events(events, profile)
    assert np.isnan(columns.features["b"]).all() and columns.features["a"][0] == 1.0
    assert np.isnan(columns.features["a"][1])
    assert columns.prediction.tolist() == ["x", "y"]


def test_numeric_predictions_convert_in_one_step_or_fall_back() -> None:
    profile = build_reference(
        [PredictionEvent(event_id=f"e{i}", ts=0.0, model="m", model_version="1", request_id=f"r{i}",
                         features={"a": float(i)}, prediction=float(i)) for i in range(50)],
        model="m", model_version="1", task="regression")

    def events(*predictions: object) -> list[PredictionEvent]:
        return [PredictionEvent(event_id=str(i), ts=0.0, model="m", model_version="1", request_id=str(i),
                                features={"a": 1.0}, prediction=p) for i, p in enumerate(predictions)]

    assert columns_from_events(events(1.5, 2, -3.0), profile).prediction.tolist() == [1.5, 2.0, -3.0]
    mixed = columns_from_events(events(1.5, ClassPrediction(label="x"), 4.0), profile).prediction
    assert mixed[[0, 2]].tolist() == [1.5, 4.0] and np.isnan(mixed[1])


def test_rows_are_views_equal_to_take() -> None:
    ts = np.arange(6, dtype=float)
    columns = Columns(ts, ts / 10, {"a": ts * 2}, ts + 1, ts / 10, score=ts * 3)
    part, taken = columns.rows(2, 5), columns.take(np.arange(2, 5))
    assert np.shares_memory(part.features["a"], columns.features["a"])
    for name in ("ts", "keys", "prediction", "prediction_keys", "score"):
        assert getattr(part, name).tolist() == getattr(taken, name).tolist()
    assert part.features["a"].tolist() == taken.features["a"].tolist() == [4.0, 6.0, 8.0]


def test_labeled_columns_per_task() -> None:
    regression = [LabeledEvent(event_id=str(i), ts=0.0, outcome_ts=0.0, model="m", model_version="1",
                               request_id=str(i), features={}, prediction=float(i), outcome=float(i) + 0.5)
                  for i in range(3)]
    cols = labeled_columns(regression, "regression")
    assert cols.y_true.tolist() == [0.5, 1.5, 2.5] and cols.y_pred.tolist() == [0.0, 1.0, 2.0]
    ranking = labeled_columns([_ranking_event(7, 3, outcome=True)], "ranking")
    assert ranking.y_true.tolist() == [2.0, 0.0, 0.0] and len(set(ranking.groups.tolist())) == 1
    classes = [LabeledEvent(event_id=str(i), ts=0.0, outcome_ts=0.0, model="m", model_version="1", request_id=str(i),
                            features={}, prediction=ClassPrediction(label="yes", probabilities={"yes": 0.7}),
                            outcome="no") for i in range(2)]
    scored = labeled_columns(classes, "classification", positive_label="yes")
    assert scored.scores.tolist() == [0.7, 0.7] and scored.y_true.tolist() == ["no", "no"]
    assert labeled_columns(classes, "classification", positive_label="no").scores is None

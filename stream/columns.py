"""Decoded events to columns: the one place the hot path touches Python objects per event.

`Columns` is what the sketches consume: one numpy array per feature (float64 with NaN for
null, or object arrays of str with None for null), the prediction, event times and sample
keys. A caller that already has columnar data (e.g. from Arrow) builds `Columns` directly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

import numpy as np
import pandas as pd

from driftline.schemas.events import ClassPrediction, LabeledEvent, PredictionEvent, RankingOutcome, RankingPrediction
from driftline.schemas.profiles import CategoricalFeatureProfile, NumericFeatureProfile, ReferenceProfile
from driftline.stream.reference import binary_positive, classification_score
from driftline.stream.sample import event_keys, hashed_keys

__all__ = ["Columns", "LabeledColumns", "columns_from_events", "labeled_columns", "to_float", "to_str"]


@dataclass(frozen=True, slots=True)
class Columns:
    """Column batch of one model's events, index-aligned except the prediction of rankings.

    ``prediction`` has one entry per event, or per ranked item for rankings, with its own
    ``prediction_keys``. ``score`` (classification, when the profile monitors it) has one
    entry per event, NaN when the event gave no probabilities.
    """

    ts: np.ndarray
    keys: np.ndarray
    features: dict[str, np.ndarray]
    prediction: np.ndarray
    prediction_keys: np.ndarray
    prediction_event: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.intp))
    score: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def rows(self, start: int, stop: int) -> Columns:
        """Rows ``start:stop`` as views, without a copy (a copy via `take` for rankings)."""
        if len(self.prediction_event):
            return self.take(np.arange(start, stop))
        part = slice(start, stop)
        return Columns(self.ts[part], self.keys[part], {k: v[part] for k, v in self.features.items()},
                       self.prediction[part], self.prediction_keys[part], self.prediction_event,
                       None if self.score is None else self.score[part])

    def take(self, rows: np.ndarray) -> Columns:
        """The rows at the given indices (the prediction rows of those events)."""
        if len(self.prediction_event):
            chosen = np.isin(self.prediction_event, rows)
            remap = np.full(len(self.ts), -1, dtype=np.intp)
            remap[rows] = np.arange(len(rows))
            prediction, prediction_keys = self.prediction[chosen], self.prediction_keys[chosen]
            prediction_event = remap[self.prediction_event[chosen]]
        else:
            prediction, prediction_keys = self.prediction[rows], self.prediction_keys[rows]
            prediction_event = self.prediction_event
        return Columns(self.ts[rows], self.keys[rows], {k: v[rows] for k, v in self.features.items()}, prediction,
                       prediction_keys, prediction_event, None if self.score is None else self.score[rows])


def to_float(values: list) -> np.ndarray:
    """Numbers (None -> NaN; strings that are not numbers -> NaN) as float64.

    Examples
    --------
    >>> to_float([1, None, "2.5", "x"]).tolist()
    [1.0, nan, 2.5, nan]
    """
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def to_str(values: list) -> np.ndarray:
    """Categories as an object array of str, None for null.

    Examples
    --------
    >>> to_str(["a", 3, None]).tolist()
    ['a', '3', None]
    """
    return np.array([v if isinstance(v, str) or v is None else str(v) for v in values], dtype=object)


def columns_from_events(events: Sequence[PredictionEvent], profile: ReferenceProfile, *, seed: int = 0) -> Columns:
    """Columns of the features a profile monitors, its prediction, times and sample keys."""
    ts = np.fromiter(map(attrgetter("ts"), events), dtype=np.float64, count=len(events))
    keys = event_keys(map(attrgetter("event_id"), events), seed=seed)
    numeric = [name for name, f in profile.features.items() if isinstance(f, NumericFeatureProfile)]
    features = _numeric_matrix(events, numeric)
    for name in profile.features:
        if name not in features:
            raw = [e.features.get(name) for e in events]
            features[name] = to_float(raw) if name in numeric else to_str(raw)
    numeric_prediction = isinstance(profile.prediction, NumericFeatureProfile)
    if profile.task == "ranking":
        scores, owners, positions = [], [], []
        for index, event in enumerate(events):
            if isinstance(event.prediction, RankingPrediction):
                scores.extend(item.score for item in event.prediction.items)
                owners.extend([index] * len(event.prediction.items))
                positions.extend(range(len(event.prediction.items)))
        prediction_event = np.asarray(owners, dtype=np.intp)
        # an item's key derives from its event's key and its position: independent of batching
        event_part = (keys[prediction_event] * 2**52).astype(np.uint64) << np.uint64(8)
        prediction_keys = hashed_keys(event_part + np.asarray(positions, dtype=np.uint64), seed=seed)
        return Columns(ts, keys, features, np.asarray(scores, dtype=np.float64), prediction_keys, prediction_event)
    prediction = _numeric_predictions(events) if numeric_prediction else None
    if prediction is None:
        raw_prediction = [_prediction_value(e.prediction) for e in events]
        prediction = to_float(raw_prediction) if numeric_prediction else to_str(raw_prediction)
    score = None
    if profile.prediction_score is not None and isinstance(profile.prediction, CategoricalFeatureProfile):
        positive = binary_positive(profile.prediction.categories)
        score = to_float([classification_score(e.prediction.probabilities, e.prediction.label, positive)
                          if isinstance(e.prediction, ClassPrediction) else None for e in events])
    return Columns(ts, keys, features, prediction, keys, score=score)


def _numeric_matrix(events: Sequence[PredictionEvent], names: list[str]) -> dict[str, np.ndarray]:
    """All numeric features in one conversion when every event has them all as numbers or null.

    Returns nothing when that does not hold; the caller then converts feature by feature.
    """
    if len(names) < 2:
        return {}
    rows = map(itemgetter(*names), map(attrgetter("features"), events))
    try:
        matrix = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=len(events) * len(names))
    except (KeyError, TypeError, ValueError):
        return {}
    columns = np.ascontiguousarray(matrix.reshape(len(events), len(names)).T)
    return dict(zip(names, columns, strict=True))


def _numeric_predictions(events: Sequence[PredictionEvent]) -> np.ndarray | None:
    """Plain numeric predictions as float64 in one conversion; None when any is a label or a ranking."""
    try:
        return np.fromiter(map(attrgetter("prediction"), events), dtype=np.float64, count=len(events))
    except (TypeError, ValueError):
        return None


def _prediction_value(prediction: object) -> object:
    if isinstance(prediction, ClassPrediction):
        return prediction.label
    if isinstance(prediction, RankingPrediction):
        return None
    return prediction


@dataclass(frozen=True, slots=True)
class LabeledColumns:
    """Labeled rows ready for ``LabeledSketch.update`` (one row per item for rankings)."""

    y_true: np.ndarray
    y_pred: np.ndarray
    scores: np.ndarray | None
    groups: np.ndarray | None


def labeled_columns(events: Sequence[LabeledEvent], task: str, *, positive_label: str | None = None) -> LabeledColumns:
    """Outcome and prediction columns of labeled events for one task.

    ``positive_label``: for binary classification, whose probability becomes ``scores``
    (only when every event of the batch carries it).
    """
    if task == "classification":
        y_pred = [e.prediction.label if isinstance(e.prediction, ClassPrediction) else str(e.prediction)
                  for e in events]
        y_true = [str(e.outcome) for e in events]
        scores = None
        if positive_label is not None:
            probabilities = [e.prediction.probabilities if isinstance(e.prediction, ClassPrediction) else None
                             for e in events]
            if all(p is not None and positive_label in p for p in probabilities):
                scores = np.array([p[positive_label] for p in probabilities], dtype=np.float64)
        return LabeledColumns(np.asarray(y_true, dtype=str), np.asarray(y_pred, dtype=str), scores, None)
    if task == "regression":
        y_true_f = to_float([e.outcome if not isinstance(e.outcome, RankingOutcome) else None for e in events])
        y_pred_f = to_float([e.prediction if isinstance(e.prediction, int | float) else None for e in events])
        valid = ~(np.isnan(y_true_f) | np.isnan(y_pred_f))
        return LabeledColumns(y_true_f[valid], y_pred_f[valid], None, None)
    relevance, item_scores, groups = [], [], []
    for event in events:
        if not isinstance(event.prediction, RankingPrediction):
            continue
        truth = event.outcome.relevance if isinstance(event.outcome, RankingOutcome) else {}
        group = f"{event.prediction.group_id}\x1f{event.event_id}"
        for item in event.prediction.items:
            relevance.append(truth.get(item.item_id, 0.0))
            item_scores.append(item.score)
            groups.append(group)
    return LabeledColumns(np.asarray(relevance, dtype=np.float64), np.asarray(item_scores, dtype=np.float64), None,
                          np.asarray(groups, dtype=object))

"""Pane sketches straight from decoded records (`PredictionRecord`), without event objects.

`RecordPanes` is the `PaneAggregator` the ingest hot path feeds: predictions become
`Columns` (`columns_from_records`, the record twin of ``columns_from_events``) for
``add_columns``, and joined pairs update the labeled sketches like ``add_labeled`` does with
`LabeledEvent` objects. Same inputs give the same pane partials as the object path, value
for value (the tests compare them).

With the native scanner (``driftline_native``, built from ``native/``), a prediction in the
form driftline's own encoder writes arrives as a `ScannedPrediction` instead: its monitored
features already in the profile's order, numeric ones as floats, categorical ones as their
bins' ids, held in Rust and read into columns in one native pass (`columns_from_scanned`);
joined rows' labeled columns come from one native pass too. `RecordPanes.scanner` gives the
scanner for the profiles it holds; a profile that changes while a scanned prediction is held
makes that prediction go through the Python path again, from the event's JSON it holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from driftline.consumers.ingest import native
from driftline.consumers.ingest.native import PredictionScanner, ScannedPrediction
from driftline.schemas.codec import OutcomeRecord, PredictionRecord, RawMessage, decode_records, prediction_json
from driftline.schemas.events import PredictionEvent, RankingOutcome, RankingPrediction
from driftline.schemas.profiles import CategoricalFeatureProfile, NumericFeatureProfile, ReferenceProfile
from driftline.stream.columns import Columns, LabeledColumns, to_float, to_str
from driftline.stream.panes import PaneAggregator, rows_by_model
from driftline.stream.reference import binary_positive, classification_score
from driftline.stream.sample import event_keys, hashed_keys

__all__ = ["HeldPrediction", "LabeledRow", "RecordPanes", "columns_from_records", "columns_from_scanned",
           "labeled_columns_from_rows"]

HeldPrediction = PredictionRecord | ScannedPrediction if native.AVAILABLE else PredictionRecord

LabeledRow = tuple[str, PredictionRecord, OutcomeRecord]
"""A joined request: (labeled event id, prediction record, outcome record)."""

_EMPTY = np.empty(0)
_NATIVE = native.AVAILABLE


def columns_from_records(records: Sequence[PredictionRecord], profile: ReferenceProfile, *, seed: int = 0) -> Columns:
    """Columns of the features a profile monitors, its prediction, times and sample keys."""
    feature_dicts = list(map(attrgetter("features"), records))
    numeric = _numeric_names(profile)
    features = _numeric_matrix(feature_dicts, numeric)
    for name in profile.features:
        if name not in features:
            raw = [f.get(name) for f in feature_dicts]
            features[name] = to_float(raw) if name in numeric else to_str(raw)
    return _columns(records, features, profile, seed)


def columns_from_scanned(records: list[HeldPrediction], profile: ReferenceProfile, generation: int, *,
                         seed: int = 0) -> Columns | None:
    """`columns_from_records` for predictions the native scanner read with this profile's layout
    (the layouts of ``generation``); None when a record is not one of those.

    The native `scanned_columns` reads times, key hashes, features and (in the usual forms)
    the prediction's columns in one pass; the categorical features are bin ids, which the
    sketches take as they are.
    """
    numeric = _numeric_names(profile)
    categorical = [name for name in profile.features if name not in numeric]
    numeric_prediction = isinstance(profile.prediction, NumericFeatureProfile)
    scored, positive = _score_label(profile)
    scanned = native.scanned_columns(records, generation, len(numeric), len(categorical), numeric_prediction,
                                     scored, positive)
    if scanned is None:
        return None
    ts, crc, numeric_rows, categorical_rows, prediction, score = scanned
    features = {**_feature_rows(numeric_rows, np.float64, numeric, len(records)),
                **_feature_rows(categorical_rows, np.intp, categorical, len(records))}
    if profile.task == "ranking":  # the scanner reads no ranking: class or float predictions given to a ranker
        return _columns(records, features, profile, seed)
    features = {name: features[name] for name in profile.features}
    keys = hashed_keys(np.frombuffer(crc, dtype=np.uint32), seed=seed)
    if prediction is None or (scored and score is None):
        prediction, score = _prediction_columns(list(map(attrgetter("prediction"), records)), profile)
    elif numeric_prediction:
        prediction = np.frombuffer(prediction, dtype=np.float64)
    else:
        prediction = np.array(prediction, dtype=object)  # labels, all str: what `to_str` gives
        score = None if score is None else np.frombuffer(score, dtype=np.float64)
    return Columns(np.frombuffer(ts, dtype=np.float64), keys, features, prediction, keys, score=score)


def _feature_rows(data: bytearray, dtype: type, names: list[str], n_rows: int) -> dict[str, np.ndarray]:
    """A column per name from native numbers written feature-major: a row of ``n_rows`` per name."""
    if not names:
        return {}
    return dict(zip(names, np.frombuffer(data, dtype=dtype).reshape(len(names), n_rows), strict=True))


def _score_label(profile: ReferenceProfile) -> tuple[bool, str | None]:
    """Whether the profile monitors a classifier's score, and the class whose probability it is
    (a binary classifier's positive class; None: each prediction's own class)."""
    if profile.prediction_score is None or not isinstance(profile.prediction, CategoricalFeatureProfile):
        return False, None
    return True, binary_positive(profile.prediction.categories)


def _numeric_names(profile: ReferenceProfile) -> list[str]:
    return [name for name, f in profile.features.items() if isinstance(f, NumericFeatureProfile)]


def _columns(records: Sequence[HeldPrediction], features: dict[str, np.ndarray], profile: ReferenceProfile,
             seed: int) -> Columns:
    """The columns of a batch whose feature columns are made: times, sample keys and the prediction's."""
    features = {name: features[name] for name in profile.features}  # the profile's order, whichever path
    ts = np.fromiter(map(attrgetter("ts"), records), dtype=np.float64, count=len(records))
    keys = event_keys(map(attrgetter("event_id"), records), seed=seed)
    predictions = list(map(attrgetter("prediction"), records))
    if profile.task == "ranking":
        scores: list[float] = []
        owners: list[int] = []
        positions: list[int] = []
        for index, prediction in enumerate(predictions):
            if _is_ranking(prediction):
                items = prediction["items"]
                scores.extend(item["score"] for item in items)
                owners.extend([index] * len(items))
                positions.extend(range(len(items)))
        prediction_event = np.asarray(owners, dtype=np.intp)
        # an item's key derives from its event's key and its position: independent of batching
        event_part = (keys[prediction_event] * 2**52).astype(np.uint64) << np.uint64(8)
        prediction_keys = hashed_keys(event_part + np.asarray(positions, dtype=np.uint64), seed=seed)
        return Columns(ts, keys, features, np.asarray(scores, dtype=np.float64), prediction_keys, prediction_event)
    prediction, score = _prediction_columns(predictions, profile)
    return Columns(ts, keys, features, prediction, keys, score=score)


def _prediction_columns(predictions: list, profile: ReferenceProfile) -> tuple[np.ndarray, np.ndarray | None]:
    """The prediction column of a task that is not ranking, and its score column (None: not monitored)."""
    numeric_prediction = isinstance(profile.prediction, NumericFeatureProfile)
    prediction = _numeric_predictions(predictions) if numeric_prediction else None
    labels = None if numeric_prediction else _labels(predictions)
    if prediction is None:
        raw_prediction = labels if labels is not None else [_prediction_value(p) for p in predictions]
        prediction = to_float(raw_prediction) if numeric_prediction else to_str(raw_prediction)
    score = None
    scored, positive = _score_label(profile)
    if scored:
        if labels is not None and positive is not None:  # every row a class: `classification_score` inline
            score = to_float([q.get(positive) if isinstance(q := p.get("probabilities"), dict) else None
                              for p in predictions])
        else:
            score = to_float([classification_score(p.get("probabilities"), p["label"], positive) if _is_class(p)
                              else None for p in predictions])
    return prediction, score


def _labels(predictions: list) -> list | None:
    """Every prediction's label when each is a class (a dict with a label), else None: one pass for the usual case."""
    try:
        labels = [p["label"] for p in predictions]
    except (TypeError, KeyError, IndexError):  # a plain label, a ranking, or a list
        return None
    return labels if all(type(p) is dict for p in predictions) else None


def _is_class(prediction: object) -> bool:
    return type(prediction) is dict and "label" in prediction


def _is_ranking(prediction: object) -> bool:
    return type(prediction) is dict and "items" in prediction


def _numeric_matrix(feature_dicts: list[dict], names: list[str]) -> dict[str, np.ndarray]:
    """All numeric features in one conversion when every event has them all as numbers.

    Returns nothing when that does not hold; the caller then converts feature by feature.
    """
    if len(names) < 2:
        return {}
    rows = map(itemgetter(*names), feature_dicts)
    try:
        matrix = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64,
                             count=len(feature_dicts) * len(names))
    except (KeyError, TypeError, ValueError):
        return {}
    columns = np.ascontiguousarray(matrix.reshape(len(feature_dicts), len(names)).T)
    return dict(zip(names, columns, strict=True))


def _numeric_predictions(predictions: list) -> np.ndarray | None:
    """Plain numeric predictions as float64 in one conversion; None when any is a label or a ranking."""
    try:
        return np.fromiter(predictions, dtype=np.float64, count=len(predictions))
    except (TypeError, ValueError):
        return None


def _prediction_value(prediction: object) -> object:
    if _is_class(prediction):
        return prediction["label"]  # type: ignore[index]
    if _is_ranking(prediction):
        return None
    return prediction


def _as_record(record: HeldPrediction) -> PredictionRecord:
    """A held prediction as a `PredictionRecord`: a scanned one written out and read by the Python path."""
    if isinstance(record, PredictionRecord):
        return record
    value = prediction_json(record)  # accepted when scanned, under ingest's own payload limit, whatever that is
    return decode_records([RawMessage(value)], PredictionEvent, max_payload_bytes=len(value)).records[0]


def _as_text(value: object) -> str:
    """A prediction or outcome as the text a classification compares: what ``str`` gives for the event's field."""
    if type(value) is dict:
        if "label" in value:
            return value["label"]
        model = RankingPrediction if "items" in value else RankingOutcome
        return str(model.model_validate(value))  # a ranking given to a classifier: rare, shown as the object
    return str(value)


def labeled_columns_from_rows(rows: Sequence[LabeledRow], task: str, *,
                              positive_label: str | None = None) -> LabeledColumns:
    """Outcome and prediction columns of joined rows for one task (``labeled_columns`` for records).

    ``positive_label``: for binary classification, whose probability becomes ``scores``
    (only when every row of the batch carries it).
    """
    if task == "classification":
        predictions = [p.prediction for _, p, _ in rows]
        outcomes = [o.outcome for _, _, o in rows]
        labels = _labels(predictions)
        y_pred = labels if labels is not None else list(map(_as_text, predictions))
        y_true = outcomes if all(type(o) is str for o in outcomes) else list(map(_as_text, outcomes))
        scores = None
        if positive_label is not None and labels is not None:  # scores only when every row is a class
            try:
                scores = np.array([p["probabilities"][positive_label] for p in predictions], dtype=np.float64)
            except (TypeError, KeyError):  # a row without probabilities, or without the positive label's
                scores = None
        return LabeledColumns(np.asarray(y_true, dtype=str), np.asarray(y_pred, dtype=str), scores, None)
    if task == "regression":
        y_true_f = to_float([o.outcome if type(o.outcome) is not dict else None for _, _, o in rows])
        y_pred_f = to_float([p.prediction if type(p.prediction) in (int, float) else None for _, p, _ in rows])
        valid = ~(np.isnan(y_true_f) | np.isnan(y_pred_f))
        return LabeledColumns(y_true_f[valid], y_pred_f[valid], None, None)
    relevance: list[float] = []
    item_scores: list[float] = []
    groups: list[str] = []
    for event_id, prediction, outcome in rows:
        predicted = prediction.prediction
        if not _is_ranking(predicted):
            continue
        truth = outcome.outcome["relevance"] if type(outcome.outcome) is dict else {}
        group = f"{predicted['group_id']}\x1f{event_id}"
        for item in predicted["items"]:
            relevance.append(truth.get(item["item_id"], 0.0))
            item_scores.append(item["score"])
            groups.append(group)
    return LabeledColumns(np.asarray(relevance, dtype=np.float64), np.asarray(item_scores, dtype=np.float64), None,
                          np.asarray(groups, dtype=object))


class RecordPanes(PaneAggregator):
    """A `PaneAggregator` fed with decoded records; see the module docstring.

    ``native``: offer the native scanner (`scanner`) when it is installed.

    Examples
    --------
    >>> import pandas as pd
    >>> from driftline.stream.reference import build_reference
    >>> rng = np.random.default_rng(0)
    >>> ref = build_reference(pd.DataFrame({"x": rng.normal(size=500), "prediction": rng.normal(size=500)}),
    ...                       model="m", model_version="1", task="regression")
    >>> panes = RecordPanes({"m": ref}, pane_s=60, allowed_lateness_s=30, source="0")
    >>> records = [PredictionRecord(str(i), float(i), "m", "1", str(i), {"x": float(rng.normal())}, 0.1)
    ...            for i in range(200)]
    >>> panes.add_records(records)
    >>> [(p.pane_start, p.n_events) for p in panes.close_panes()]
    [(0.0, 60), (60.0, 60)]
    """

    def __init__(self, *args: Any, native: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.native = native and _NATIVE
        self._layout_generation = 0
        self._scanner: PredictionScanner | None = None

    def set_profile(self, profile: ReferenceProfile) -> None:
        super().set_profile(profile)
        self._layout_generation += 1  # what was scanned with the old layout takes the Python path
        self._scanner = None

    def scanner(self) -> PredictionScanner | None:
        """The native scanner for the profiles held now (None: not installed, or not asked for)."""
        if not self.native:
            return None
        if self._scanner is None:
            layouts = {}
            for model in self.models:
                bins = self.bins(model)
                numeric = _numeric_names(bins.profile)
                layouts[model] = (numeric, [(name, b.category_ids(), b.unseen, b.n_bins)
                                            for name, b in bins.features.items() if name not in numeric])
            self._scanner = PredictionScanner(layouts, self._layout_generation)
        return self._scanner

    def add_records(self, records: Sequence[HeldPrediction]) -> None:
        """Apply predictions (any models, in order), as ``add_predictions`` applies events."""
        if not records:
            return
        batches: dict[str, Columns] = {}
        for model, positions in rows_by_model(list(map(attrgetter("model"), records))).items():
            rows = records if len(positions) == len(records) else [records[i] for i in positions]
            profile = self.profile(model)
            if profile is None:  # counted as unmonitored: only the times matter
                ts = np.fromiter(map(attrgetter("ts"), rows), dtype=np.float64, count=len(rows))
                batches[model] = Columns(ts, _EMPTY, {}, _EMPTY, _EMPTY)
            elif not self.native or (columns := columns_from_scanned(rows, profile, self._layout_generation,
                                                                      seed=self.seed)) is None:
                batches[model] = columns_from_records(list(map(_as_record, rows)), profile, seed=self.seed)
            else:
                batches[model] = columns
        self.add_column_batches(batches)  # one watermark for the whole batch, as add_predictions

    def add_labeled_rows(self, rows: list[LabeledRow], outcome_ts: np.ndarray | None = None,
                         models: list[str] | None = None) -> None:
        """Apply joined rows to the pane of their outcome time, as ``add_labeled`` applies labeled events.

        ``outcome_ts`` and ``models``: the rows' outcome times and models, when the caller has them.
        """
        if not rows:
            return
        native_path = self.native

        def columns_of(positions: np.ndarray, task: str, positive_label: str | None) -> LabeledColumns:
            if native_path and task != "ranking":
                columns = native.labeled_columns(rows, positions.astype(np.intp, copy=False).tobytes(),
                                                 task == "classification", positive_label)
                if columns is not None:
                    return _native_labeled_columns(columns)
            return labeled_columns_from_rows([rows[i] for i in positions], task, positive_label=positive_label)

        if outcome_ts is None:
            outcome_ts = np.fromiter((outcome.ts for _, _, outcome in rows), dtype=np.float64, count=len(rows))
        if models is None:
            models = [prediction.model for _, prediction, _ in rows]
        self.add_labeled_columns(outcome_ts, models, columns_of)


def _native_labeled_columns(columns: tuple) -> LabeledColumns:
    """`LabeledColumns` from what the native `labeled_columns` wrote (see there)."""
    if len(columns) == 2:  # regression
        y_true, y_pred = (np.frombuffer(column, dtype=np.float64) for column in columns)
        valid = ~(np.isnan(y_true) | np.isnan(y_pred))
        return LabeledColumns(y_true[valid], y_pred[valid], None, None)
    true_codes, true_width, predicted_codes, predicted_width, scores = columns
    return LabeledColumns(np.frombuffer(true_codes, dtype=f"<U{true_width}"),
                          np.frombuffer(predicted_codes, dtype=f"<U{predicted_width}"),
                          None if scores is None else np.frombuffer(scores, dtype=np.float64), None)

"""Training data of record: `LabeledEvent`s read back from `labeled` by event time.

`LabeledReader` is the Kafka adapter (offsets for times, read to the end, filter by model
and event time); `build_frame` and `time_split` are pure and turn events into the training
frame the trainers take.

Frame layout
------------
One row per labeled event for classification and regression: the event's features as
columns, then ``prediction`` (what the serving model said: label or number), ``outcome``
(the target) and ``ts`` (event time). For ranking, one row per ranked item: see
`build_frame` for the ``<item_id>.<feature>`` convention, plus ``group_id``, ``item_id``
and ``relevance`` (the target).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from driftline.config import KafkaSettings
from driftline.consumers.common.kafka import make_reader, read_range, to_raw, topic_partitions
from driftline.schemas.codec import decode_one
from driftline.schemas.events import ClassPrediction, LabeledEvent, RankingOutcome, RankingPrediction

__all__ = [
    "FRAME_COLUMNS",
    "LabeledReader",
    "Task",
    "TrainingData",
    "build_frame",
    "feature_columns",
    "infer_task",
    "reference_sample",
    "time_split",
]

Task = Literal["classification", "regression", "ranking"]
FRAME_COLUMNS = ("prediction", "outcome", "ts", "group_id", "item_id", "relevance", "score")
"""Columns of the training frame that are not model inputs."""


def infer_task(events: Sequence[LabeledEvent]) -> Task:
    """The task from the outcome type: a label, a number or a relevance table."""
    if not events:
        raise ValueError("no labeled events to infer the task from")
    outcome = events[0].outcome
    if isinstance(outcome, RankingOutcome):
        return "ranking"
    if isinstance(outcome, str):
        return "classification"
    return "regression"


def _prediction_value(prediction: Any) -> Any:
    if isinstance(prediction, ClassPrediction):
        return prediction.label
    return prediction


def _split_item_features(
    features: dict[str, Any], item_ids: set[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Group-level features, and per item its own features under their short names."""
    shared: dict[str, Any] = {}
    per_item: dict[str, dict[str, Any]] = {}
    for name, value in features.items():
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] in item_ids:
            per_item.setdefault(parts[0], {})[".".join(parts[1:])] = value
        elif len(parts) >= 3 and parts[1] in item_ids:
            per_item.setdefault(parts[1], {})[".".join(parts[2:])] = value
        else:
            shared[name] = value
    return shared, per_item


def build_frame(events: Iterable[LabeledEvent], task: Task) -> pd.DataFrame:
    """The training frame, sorted by event time (then request id, for a stable order).

    Ranking convention (the simulator's): one labeled event per group (e.g. a race), its
    prediction a `RankingPrediction` and its outcome a `RankingOutcome`. Each ranked item
    becomes a row. A feature named ``runner.<item_id>.<name>`` (any first word) or
    ``<item_id>.<name>`` belongs to that item and becomes column ``<name>``; any other
    feature describes the whole group and is copied to every item's row. Items missing from
    the outcome's relevance table are dropped; the serving model's score of the item is kept
    as ``score`` (for the champion baseline), never as a model input.
    """
    rows: list[dict[str, Any]] = []
    for event in events:
        if task != "ranking":
            rows.append({**event.features, "prediction": _prediction_value(event.prediction),
                         "outcome": event.outcome, "ts": event.ts, "_request": event.request_id})
            continue
        prediction, outcome = event.prediction, event.outcome
        if not isinstance(prediction, RankingPrediction) or not isinstance(outcome, RankingOutcome):
            continue
        shared, per_item = _split_item_features(event.features, {item.item_id for item in prediction.items})
        for item in prediction.items:
            if item.item_id not in outcome.relevance:
                continue
            rows.append({**shared, **per_item.get(item.item_id, {}), "group_id": prediction.group_id,
                         "item_id": item.item_id,
                         "score": item.score, "relevance": outcome.relevance[item.item_id],
                         "ts": event.ts, "_request": event.request_id})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    order = ["ts", "_request", "item_id"] if task == "ranking" else ["ts", "_request"]
    return frame.sort_values(order, kind="stable").drop(columns="_request").reset_index(drop=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Model inputs: every column that is not bookkeeping, in a stable (sorted) order."""
    return sorted(column for column in frame.columns if column not in FRAME_COLUMNS)


@dataclass(frozen=True, slots=True)
class TrainingData:
    """A time-ordered split: train on the past, hold out the most recent part."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    features: list[str]
    task: Task
    span_start_ts: float
    span_end_ts: float

    @property
    def n_samples(self) -> int:
        return len(self.train) + len(self.holdout)


def time_split(frame: pd.DataFrame, holdout_fraction: float, *, task: Task) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a time-sorted frame: the last ``holdout_fraction`` is the holdout.

    Ranking frames split on whole groups, so no race is half in train and half in holdout.

    >>> frame = pd.DataFrame({"x": range(10), "ts": range(10)})
    >>> train, holdout = time_split(frame, 0.2, task="regression")
    >>> len(train), len(holdout), int(holdout["ts"].min())
    (8, 2, 8)
    """
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    if task == "ranking":
        groups = frame["group_id"].drop_duplicates().tolist()
        n_holdout = max(1, math.ceil(len(groups) * holdout_fraction))
        held = set(groups[len(groups) - n_holdout:])
        mask = frame["group_id"].isin(held)
        return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)
    n_holdout = max(1, math.ceil(len(frame) * holdout_fraction))
    cut = len(frame) - n_holdout
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)


class LabeledReader:
    """Read one model's labeled events whose label became known in ``[start_ts, end_ts)`` from Kafka.

    The span is on ``outcome_ts``, as the monitor assigns labeled events to windows: the rows
    behind a concept alert are exactly those, and ingest commits each labeled event in the same
    transaction as the panes it fed, so every one of them is readable once the alert exists
    (a prediction-time span would miss rows whose labels were still pending at the window end).

    The reader seeks each partition to the first record whose Kafka timestamp is at or after
    ``start_ts`` (``offsets_for_times``) and reads to the partition's end as it was when the
    read began. A record's Kafka timestamp is when it was produced, never before the event
    it carries, so seeking by ``start_ts`` cannot skip an event of the span; events outside
    the span and other models' events are filtered out by their own ``outcome_ts``.

    It uses its own group-less consumer and never commits, so it does not disturb the worker's
    group. Records that do not decode are skipped and counted in `rejected`.
    """

    def __init__(self, settings: KafkaSettings, topic: str, *, timeout_s: float = 60.0) -> None:
        self.settings = settings
        self.topic = topic
        self.timeout_s = timeout_s
        self.rejected = 0

    def read(
        self, model: str, start_ts: float, end_ts: float, *, max_events: int | None = None,
        seek_ts: float | None = None,
    ) -> list[LabeledEvent]:
        """Events of ``model`` in the span, oldest first; the most recent ``max_events`` when capped.

        ``seek_ts`` (default ``start_ts``) is where reading starts by Kafka timestamp, for
        callers that want "what arrived lately" whatever its event time.
        """
        consumer = make_reader(self.settings, "driftline-retrain-reader")
        try:
            return self._read(consumer, model, start_ts if seek_ts is None else seek_ts, start_ts, end_ts,
                              max_events)
        finally:
            consumer.close()

    def _read(
        self, consumer: Consumer, model: str, seek_ts: float, start_ts: float, end_ts: float, max_events: int | None
    ) -> list[LabeledEvent]:
        try:
            partitions = topic_partitions(consumer, self.topic, timeout_s=self.timeout_s)
        except KeyError as exc:
            raise RuntimeError(exc.args[0]) from None
        seek_ms = max(0, int(seek_ts * 1000)) if math.isfinite(seek_ts) else 0
        found = consumer.offsets_for_times([TopicPartition(self.topic, tp.partition, seek_ms) for tp in partitions],
                                           timeout=self.timeout_s)
        # no record at or after seek_ts: nothing to read there
        starts = [TopicPartition(self.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END) for tp in found]
        events: list[LabeledEvent] = []
        for message in read_range(consumer, starts, timeout_s=self.timeout_s, poll_s=0.1):
            if message.key() is not None and message.key() != model.encode():
                continue
            decoded = decode_one(to_raw(message), LabeledEvent)
            if not isinstance(decoded, LabeledEvent):
                self.rejected += 1
                continue
            if decoded.model == model and start_ts <= decoded.outcome_ts < end_ts:
                events.append(decoded)
        events.sort(key=lambda e: (e.ts, e.request_id))
        if max_events is not None and len(events) > max_events:
            events = events[-max_events:]
        return events


def reference_sample(
    events: Iterable[LabeledEvent], holdout: pd.DataFrame, predictions: Sequence[Any], task: Task
) -> pd.DataFrame:
    """The sample a new version's reference profile is built from: the holdout, scored by that version.

    The holdout is the most recent data and unseen in training, so the profile describes
    today's inputs and an honest performance. Columns follow `driftline.stream.build_reference`:
    the events' own feature names (for ranking every group feature, one row per item, as the
    monitor sees them), ``prediction`` from the new version, ``outcome`` and ``group_id``.
    """
    if task != "ranking":
        sample = holdout.drop(columns=[c for c in ("prediction", "score") if c in holdout.columns])
        return sample.assign(prediction=list(predictions))
    by_item = dict(zip(zip(holdout["group_id"], holdout["item_id"], strict=True), predictions, strict=True))
    rows: list[dict[str, Any]] = []
    for event in events:
        prediction, outcome = event.prediction, event.outcome
        if not isinstance(prediction, RankingPrediction) or not isinstance(outcome, RankingOutcome):
            continue
        for item in prediction.items:
            key = (prediction.group_id, item.item_id)
            if key in by_item:
                rows.append({**event.features, "prediction": float(by_item[key]),
                             "outcome": outcome.relevance[item.item_id], "group_id": prediction.group_id})
    return pd.DataFrame(rows)

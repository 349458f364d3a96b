"""Stage 1 of the drift core: partition-local pane sketches per model.

`PaneAggregator` assigns each event to the event-time pane ``[k * pane_s, (k + 1) * pane_s)``
of its model and updates that pane's sketches with whole batches. The watermark is the
largest event time seen minus the allowed lateness; it moves after each call, so all
events of one call (`add_batch` takes predictions and labeled events together) are judged
against the watermark as it stood before the call: an event whose pane ended at that
watermark is late, counted and not applied. `close_panes` returns every pane that ended
at the watermark, exactly once, as a `PanePartial` for stage 2.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from driftline.schemas.events import LabeledEvent, PredictionEvent
from driftline.schemas.profiles import CategoricalFeatureProfile, PanePartial, ReferenceProfile, SketchData
from driftline.stream.columns import Columns, LabeledColumns, columns_from_events, labeled_columns
from driftline.stream.concept import LabeledSketch
from driftline.stream.reference import binary_positive
from driftline.stream.sketch import (
    Bins,
    NumericBins,
    NumericBlock,
    Sketch,
    StackedBins,
    bins_for,
    sketch_for,
    sketch_from_data,
)

__all__ = [
    "OTHER_MODELS", "UNMONITORED_MODELS_KEPT", "AggregatorCounters", "LabeledColumnsOf", "PaneAggregator",
    "ProfileBins", "rows_by_model",
]

UNMONITORED_MODELS_KEPT = 100
"""Models without a profile counted by name; later ones are counted together as `OTHER_MODELS`, so
a producer that writes an id into ``model`` cannot grow the state (and its changelog snapshot)."""
OTHER_MODELS = "_other"

LabeledColumnsOf = Callable[[np.ndarray, str, str | None], LabeledColumns]
"""``(row positions, task, positive label) -> LabeledColumns`` of labeled rows held in any form."""


@dataclass(frozen=True, slots=True)
class ProfileBins:
    """The bins of every feature and of the prediction of one reference profile.

    ``numeric`` names the numeric features in profile order; ``stacked`` holds their bins
    side by side, for the pane's feature-major `NumericBlock` (None without numeric features).
    """

    profile: ReferenceProfile
    features: dict[str, Bins]
    prediction: Bins
    score: Bins | None
    positive_label: str | None
    numeric: tuple[str, ...]
    stacked: StackedBins | None

    @classmethod
    def of(cls, profile: ReferenceProfile) -> ProfileBins:
        """Bins for ``profile``; the positive class is the last label of a binary classifier."""
        prediction = profile.prediction
        positive = binary_positive(prediction.categories) if isinstance(prediction, CategoricalFeatureProfile) else None
        score = bins_for(profile.prediction_score) if profile.prediction_score is not None else None
        features = {name: bins_for(f) for name, f in profile.features.items()}
        numeric_bins = {name: b for name, b in features.items() if isinstance(b, NumericBins)}
        stacked = StackedBins(list(numeric_bins.values())) if numeric_bins else None
        numeric = tuple(numeric_bins)
        return cls(profile, features, bins_for(profile.prediction), score, positive, numeric, stacked)


@dataclass(slots=True)
class _OpenPane:
    bins: ProfileBins  # of the reference the pane began with, which it keeps
    numeric: NumericBlock | None  # the numeric features, feature-major
    features: dict[str, Sketch]  # the categorical features
    prediction: Sketch
    score: Sketch | None = None
    n_events: int = 0
    labeled: LabeledSketch | None = None

    @property
    def model_version(self) -> str:
        return self.bins.profile.model_version


@dataclass(frozen=True, slots=True)
class AggregatorCounters:
    """What an aggregator did, as data for the service's metrics (cumulative per model)."""

    applied: dict[str, int] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=dict)
    unmonitored: dict[str, int] = field(default_factory=dict)
    labeled: dict[str, int] = field(default_factory=dict)


class PaneAggregator:
    """Pane sketches per model for one source (e.g. one input partition).

    Parameters
    ----------
    profiles
        Reference profile per model; events of other models are counted as unmonitored.
    pane_s
        Pane length in seconds of event time.
    allowed_lateness_s
        How far behind the largest event time an event may be and still be applied.
    source
        Name of this source in the partials (e.g. ``"ingest-3"``).
    sample_capacity
        Values sampled per numeric feature per pane (bounds the partial's size).
    labeled_capacity
        Labeled rows sampled per pane for concept drift.
    heartbeats
        Emit an empty partial for the latest closed pane of every monitored model that had no
        events in it (also models this source never saw), so stage 2's watermark advances
        through quiet periods and for models absent from this partition.
    seed
        Seed of the sample keys.

    Examples
    --------
    >>> import pandas as pd
    >>> from driftline.stream.reference import build_reference
    >>> rng = np.random.default_rng(0)
    >>> ref = build_reference(pd.DataFrame({"x": rng.normal(size=500), "prediction": rng.normal(size=500)}),
    ...                       model="m", model_version="1", task="regression")
    >>> agg = PaneAggregator({"m": ref}, pane_s=60, allowed_lateness_s=30, source="ingest-0")
    >>> events = [PredictionEvent(event_id=str(i), ts=float(i), model="m", model_version="1",
    ...                           request_id=str(i), features={"x": float(rng.normal())}, prediction=0.1)
    ...           for i in range(200)]
    >>> agg.add_predictions(events)
    >>> [(p.pane_start, p.n_events) for p in agg.close_panes()], agg.watermark
    ([(0.0, 60), (60.0, 60)], 169.0)
    """

    def __init__(
        self,
        profiles: Mapping[str, ReferenceProfile],
        *,
        pane_s: float,
        allowed_lateness_s: float,
        source: str,
        sample_capacity: int = 128,
        labeled_capacity: int = 500,
        heartbeats: bool = True,
        seed: int = 0,
    ) -> None:
        if pane_s <= 0:
            raise ValueError(f"pane_s must be > 0, got {pane_s}")
        if allowed_lateness_s < 0:
            raise ValueError(f"allowed_lateness_s must be >= 0, got {allowed_lateness_s}")
        if sample_capacity < 1 or labeled_capacity < 1:
            raise ValueError("sample_capacity and labeled_capacity must be >= 1")
        self.pane_s = pane_s
        self.allowed_lateness_s = allowed_lateness_s
        self.source = source
        self.sample_capacity = sample_capacity
        self.labeled_capacity = labeled_capacity
        self.heartbeats = heartbeats
        self.seed = seed
        self._bins = {model: ProfileBins.of(profile) for model, profile in profiles.items()}
        self._reset()

    def _reset(self) -> None:
        self._max_ts = -math.inf
        self._open: dict[tuple[str, str, int], _OpenPane] = {}
        self._last_closed: dict[str, int] = {}  # model -> index of the latest pane closed
        self._late_pending: Counter[str] = Counter()  # late events not yet reported in a partial
        self._applied: Counter[str] = Counter()
        self._late: Counter[str] = Counter()
        self._unmonitored: Counter[str] = Counter()
        self._labeled: Counter[str] = Counter()

    # --- state --------------------------------------------------------------------------

    @property
    def watermark(self) -> float:
        """Largest event time seen minus the allowed lateness (-inf before any event)."""
        return self._max_ts - self.allowed_lateness_s

    @property
    def counters(self) -> AggregatorCounters:
        """Cumulative counts per model: applied, late, unmonitored (no profile; see `UNMONITORED_MODELS_KEPT`),
        labeled rows."""
        return AggregatorCounters(dict(self._applied), dict(self._late), dict(self._unmonitored),
                                  dict(self._labeled))

    @property
    def models(self) -> list[str]:
        """Models with a reference profile."""
        return sorted(self._bins)

    def profile(self, model: str) -> ReferenceProfile | None:
        """The profile events of ``model`` are sketched against, if any."""
        bins = self._bins.get(model)
        return bins.profile if bins else None

    def bins(self, model: str) -> ProfileBins | None:
        """The bins events of ``model`` are sketched into, if it has a profile."""
        return self._bins.get(model)

    def set_profile(self, profile: ReferenceProfile) -> None:
        """Use a new reference for the model from now on; open panes keep the reference they began with."""
        self._bins[profile.model] = ProfileBins.of(profile)

    # --- input --------------------------------------------------------------------------

    def add_batch(self, predictions: Sequence[PredictionEvent], labeled: Sequence[LabeledEvent]) -> None:
        """Apply predictions and labeled events of one input batch against the same watermark."""
        watermark = self.watermark
        self._add_predictions(predictions, watermark)
        self._add_labeled(labeled, watermark)

    def add_predictions(self, events: Sequence[PredictionEvent]) -> None:
        """Apply a batch of predictions (any models, any order)."""
        self._add_predictions(events, self.watermark)

    def add_labeled(self, events: Sequence[LabeledEvent]) -> None:
        """Apply labeled events to the pane of their outcome time (when the label became known).

        Outcome times move the watermark too: they are event times.
        """
        self._add_labeled(events, self.watermark)

    def _add_predictions(self, events: Sequence[PredictionEvent], watermark: float) -> None:
        if not events:
            return
        ts = np.fromiter(map(attrgetter("ts"), events), dtype=np.float64, count=len(events))
        on_time = self._advance(ts, watermark)
        for model, rows in rows_by_model(list(map(attrgetter("model"), events))).items():
            bins, kept = self._on_time_rows(model, rows, on_time)
            if bins is not None and len(kept):
                chosen = events if len(kept) == len(events) else [events[i] for i in kept]
                self._apply(model, columns_from_events(chosen, bins.profile, seed=self.seed))

    def add_columns(self, model: str, columns: Columns) -> None:
        """Apply a column batch of one model (for callers that hold columnar data, e.g. from Arrow).

        Judged and counted like `add_predictions`: late rows are counted, not applied.
        """
        self.add_column_batches({model: columns})

    def add_column_batches(self, batches: Mapping[str, Columns]) -> None:
        """Apply column batches of several models against one watermark, as `add_predictions` does."""
        watermark = self.watermark
        for model, columns in batches.items():
            if len(columns) == 0:
                continue
            on_time = self._advance(columns.ts, watermark)
            bins, kept = self._on_time_rows(model, np.arange(len(columns)), on_time)
            if bins is not None and len(kept):
                self._apply(model, columns if len(kept) == len(columns) else columns.take(kept))

    def _apply(self, model: str, columns: Columns) -> None:
        """Update the panes of on-time columns: per pane, one vectorised update per feature."""
        bins = self._bins[model]
        reference_id = bins.profile.reference_id
        pane_index = np.floor(columns.ts / self.pane_s).astype(np.int64)
        for index, batch in _by_pane(columns, pane_index):
            pane = self._pane(model, reference_id, index, bins)
            if pane.numeric is not None:
                pane.numeric.update(np.stack([batch.features[name] for name in bins.numeric], dtype=np.float64),
                                    batch.keys)
            for name, sketch in pane.features.items():
                sketch.update(batch.features[name], batch.keys)
            pane.prediction.update(batch.prediction, batch.prediction_keys)
            if pane.score is not None and batch.score is not None:
                pane.score.update(batch.score, batch.keys)
            pane.n_events += len(batch)
        self._applied[model] += len(columns)

    def add_labeled_columns(self, outcome_ts: np.ndarray, models: Sequence[str], columns_of: LabeledColumnsOf) -> None:
        """Apply labeled rows held in any form, given their outcome times and models.

        ``columns_of(positions, task, positive_label)`` turns the rows at ``positions`` (one
        model, one pane) into `LabeledColumns`; `add_labeled` passes one for `LabeledEvent`
        objects, ingest one for its decoded records.
        """
        self._add_labeled_columns(outcome_ts, models, columns_of, self.watermark)

    def _add_labeled(self, events: Sequence[LabeledEvent], watermark: float) -> None:
        if not events:
            return

        def columns_of(positions: np.ndarray, task: str, positive_label: str | None) -> LabeledColumns:
            return labeled_columns([events[i] for i in positions], task, positive_label=positive_label)

        ts = np.fromiter((e.outcome_ts for e in events), dtype=np.float64, count=len(events))
        self._add_labeled_columns(ts, [e.model for e in events], columns_of, watermark)

    def _add_labeled_columns(
        self, ts: np.ndarray, models: Sequence[str], columns_of: LabeledColumnsOf, watermark: float
    ) -> None:
        if not len(ts):
            return
        on_time = self._advance(ts, watermark)
        for model, rows in rows_by_model(models).items():
            bins, kept = self._on_time_rows(model, rows, on_time)
            if bins is None:
                continue
            pane_index = np.floor(ts[kept] / self.pane_s).astype(np.int64)
            for index in np.unique(pane_index).tolist():
                chosen = kept[pane_index == index]
                pane = self._pane(model, bins.profile.reference_id, index, bins)
                if pane.labeled is None:
                    pane.labeled = LabeledSketch.empty(bins.profile.task, capacity=self.labeled_capacity,
                                                       seed=self.seed, positive_label=bins.positive_label)
                cols = columns_of(chosen, bins.profile.task, bins.positive_label)
                pane.labeled.update(cols.y_true, cols.y_pred, scores=cols.scores, groups=cols.groups)
                self._labeled[model] += len(chosen)

    def _advance(self, ts: np.ndarray, watermark: float) -> np.ndarray:
        """True where the event's pane is still open at ``watermark``; then move the watermark past ``ts``."""
        pane_end = (np.floor(ts / self.pane_s) + 1) * self.pane_s
        self._max_ts = max(self._max_ts, float(ts.max()))
        return pane_end > watermark

    def _on_time_rows(
        self, model: str, rows: np.ndarray, on_time: np.ndarray
    ) -> tuple[ProfileBins | None, np.ndarray]:
        """A model's bins and its on-time rows, counting the others as late (all as unmonitored without a profile)."""
        bins = self._bins.get(model)
        if bins is None:
            unmonitored = self._unmonitored
            if model not in unmonitored and len(unmonitored) >= UNMONITORED_MODELS_KEPT:
                model = OTHER_MODELS
            unmonitored[model] += len(rows)
            return None, rows[:0]
        kept = rows[on_time[rows]]
        self._count_late(model, len(rows) - len(kept))
        return bins, kept

    def _count_late(self, model: str, n_late: int) -> None:
        if n_late:
            self._late[model] += n_late
            self._late_pending[model] += n_late

    def _pane(self, model: str, reference_id: str, index: int, bins: ProfileBins) -> _OpenPane:
        key = (model, reference_id, index)
        pane = self._open.get(key)
        if pane is None:
            numeric = NumericBlock.empty(bins.stacked, self.sample_capacity) if bins.stacked is not None else None
            features = {name: sketch_for(b, self.sample_capacity) for name, b in bins.features.items()
                        if name not in bins.numeric}
            score = sketch_for(bins.score, self.sample_capacity) if bins.score is not None else None
            pane = _OpenPane(bins, numeric, features, sketch_for(bins.prediction, self.sample_capacity), score)
            self._open[key] = pane
        return pane

    # --- output -------------------------------------------------------------------------

    def close_panes(self) -> list[PanePartial]:
        """Every pane that ended at the watermark, once, plus heartbeats; ordered by (pane, model)."""
        if self._max_ts == -math.inf:
            return []
        closed_below = math.floor(self.watermark / self.pane_s)  # panes with index < this have ended
        partials: list[PanePartial] = []
        for key in sorted(k for k in self._open if k[2] < closed_below):
            model, reference_id, index = key
            pane = self._open.pop(key)
            partials.append(self._partial(model, reference_id, index, pane))
            self._last_closed[model] = max(self._last_closed.get(model, index), index)
        if self.heartbeats and self._last_closed:  # no heartbeat before this source has closed a real pane
            latest = closed_below - 1
            # Every monitored model, including those this source never saw: stage 2 waits for all sources,
            # so a model whose requests never hash to this partition must still see its watermark move.
            for model in sorted(self._bins):
                if self._last_closed.get(model, -math.inf) >= latest:
                    continue
                partials.append(self._partial(model, self._bins[model].profile.reference_id, latest, None))
                self._last_closed[model] = latest
        partials.sort(key=lambda p: (p.pane_start, p.model))
        return partials

    def _partial(self, model: str, reference_id: str, index: int, pane: _OpenPane | None) -> PanePartial:
        n_late = self._late_pending.pop(model, 0)
        model_version = pane.model_version if pane is not None else self._bins[model].profile.model_version
        common: dict[str, Any] = {
            "model": model, "model_version": model_version, "reference_id": reference_id,
            "source": self.source, "pane_start": index * self.pane_s, "pane_s": self.pane_s, "n_late": n_late,
        }
        if pane is None:
            return PanePartial(n_events=0, **common)
        bins = pane.bins
        block = pane.numeric.to_block_data(bins.numeric) if pane.numeric is not None else None
        if block is None:
            features = self._feature_data(pane)
        else:  # the numeric features travel as one block, the others one by one
            features = {name: pane.features[name].to_data() for name in bins.profile.features if name in pane.features}
        return PanePartial(
            n_events=pane.n_events,
            features=features,
            numeric=block,
            prediction=pane.prediction.to_data(),
            prediction_score=pane.score.to_data() if pane.score is not None else None,
            labeled=pane.labeled.to_dict() if pane.labeled is not None else None,
            **common,
        )

    @staticmethod
    def _feature_data(pane: _OpenPane) -> dict[str, SketchData]:
        """Wire form of every feature's sketch, in its profile's order."""
        bins = pane.bins
        numeric = dict(zip(bins.numeric, pane.numeric.to_data(), strict=True)) if pane.numeric is not None else {}
        return {name: numeric[name] if name in numeric else pane.features[name].to_data()
                for name in bins.profile.features if name in numeric or name in pane.features}

    # --- persistence --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (open panes, watermark, counters) for a changelog; profiles are not included."""
        return {
            "max_ts": None if self._max_ts == -math.inf else self._max_ts,
            "open": [self._partial_state(key, pane) for key, pane in sorted(self._open.items())],
            "last_closed": dict(self._last_closed),
            "late_pending": dict(self._late_pending),
            "applied": dict(self._applied), "late": dict(self._late),
            "unmonitored": dict(self._unmonitored), "labeled": dict(self._labeled),
        }

    def _partial_state(self, key: tuple[str, str, int], pane: _OpenPane) -> dict[str, Any]:
        model, reference_id, index = key
        return {
            "model": model, "model_version": pane.model_version, "reference_id": reference_id, "index": index,
            "n_events": pane.n_events,
            "features": {name: data.model_dump(mode="json") for name, data in self._feature_data(pane).items()},
            "prediction": pane.prediction.to_data().model_dump(mode="json"),
            "prediction_score": pane.score.to_data().model_dump(mode="json") if pane.score is not None else None,
            "labeled": pane.labeled.to_dict() if pane.labeled is not None else None,
        }

    def load_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `to_dict` output into this aggregator (built with the same profiles).

        Open panes whose reference is no longer known are dropped and counted as late.
        """
        self._reset()
        self._max_ts = -math.inf if state["max_ts"] is None else float(state["max_ts"])
        self._last_closed = {k: int(v) for k, v in state["last_closed"].items()}
        self._late_pending.update(state["late_pending"])
        self._applied.update(state["applied"])
        self._late.update(state["late"])
        self._unmonitored.update(state["unmonitored"])
        self._labeled.update(state["labeled"])
        for item in state["open"]:
            bins = self._bins.get(item["model"])
            if bins is None or bins.profile.reference_id != item["reference_id"]:
                self._count_late(item["model"], item["n_events"])
                continue
            partial = PanePartial(model=item["model"], model_version=bins.profile.model_version,
                                  reference_id=item["reference_id"], source=self.source, pane_start=0.0,
                                  pane_s=self.pane_s, n_events=item["n_events"], features=item["features"],
                                  prediction=item["prediction"], prediction_score=item.get("prediction_score"))
            labeled = LabeledSketch.from_dict(item["labeled"]) if item["labeled"] is not None else None
            numeric = (NumericBlock.from_data([partial.features[name] for name in bins.numeric], bins.stacked)
                       if bins.stacked is not None else None)
            features = {name: sketch_from_data(data, bins.features[name]) for name, data in partial.features.items()
                        if name not in bins.numeric}
            score = None
            if partial.prediction_score is not None and bins.score is not None:
                score = sketch_from_data(partial.prediction_score, bins.score)
            self._open[(item["model"], item["reference_id"], int(item["index"]))] = _OpenPane(
                bins, numeric, features, sketch_from_data(partial.prediction, bins.prediction), score,
                partial.n_events, labeled,
            )


def rows_by_model(models: Sequence[str]) -> dict[str, np.ndarray]:
    """Row indices of each model in a batch's model column, in input order (one step for a single model)."""
    if models.count(models[0]) == len(models):
        return {models[0]: np.arange(len(models), dtype=np.intp)}
    by_model: dict[str, list[int]] = {}
    for index, model in enumerate(models):
        by_model.setdefault(model, []).append(index)
    return {model: np.asarray(indices, dtype=np.intp) for model, indices in by_model.items()}


def _by_pane(columns: Columns, pane_index: np.ndarray) -> list[tuple[int, Columns]]:
    """The rows of each pane, in pane order: views of consecutive runs when the batch is in time order."""
    first, last = int(pane_index.min()), int(pane_index.max())
    if first == last:
        return [(first, columns)]
    if np.all(pane_index[1:] >= pane_index[:-1]):
        bounds = [0, *(np.flatnonzero(pane_index[1:] != pane_index[:-1]) + 1).tolist(), len(pane_index)]
        return [(int(pane_index[start]), columns.rows(start, stop)) for start, stop in itertools.pairwise(bounds)]
    return [(index, columns.take(np.flatnonzero(pane_index == index))) for index in np.unique(pane_index).tolist()]

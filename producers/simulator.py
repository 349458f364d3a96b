"""Realistic prediction and outcome streams for N models, deterministic by seed.

`Simulator` is pure generation: it turns a seed and settings into batches of encoded Kafka
records (`RecordBatch`) in event-time order; `driftline.producers.publish` sends them with the
SDK and ``driftline simulate`` is the command. Generation is vectorised with numpy per batch;
only JSON encoding runs per event.

Event time
    Predictions arrive at ``events_per_s`` simulated events per event-time second (Poisson
    arrivals, all models together) from ``start_ts``; this is independent of the wall-clock
    send rate, so hours of event time can be replayed in seconds. Each model's drift
    scenario (`DriftScenario`) starts at its ``shift_at_s`` event-time offset.
Outcomes
    A share ``outcome_fraction`` of predictions gets an outcome, ``label_delay_s`` later on
    average (exponential delays). Outcomes are emitted in event-time order, interleaved
    with the predictions, so a batch's records are sorted by ``ts``.
Missing values and malformed records
    Each feature value is null with probability ``missing_fraction``. A share
    ``malformed_fraction`` of records is broken on purpose, one of `MALFORMED_KINDS` each
    (named like the decoder's reject reasons), so the dead-letter path is exercised.
Identifiers
    ``request_id`` is ``<model>-<run_id>-<sequence>``; the prediction's ``event_id`` is
    ``<request_id>:p`` and the outcome's ``<request_id>:o``. ``run_id`` defaults to a hash of
    seed and start time: the same settings replay the same stream, ids included.
Ranking convention (model ``race``)
    One `PredictionEvent` per race: ``request_id`` (= ``entity_id``) is the race id and the
    `RankingPrediction` ranks its runners (``group_id`` = race id, ``item_id`` = saddle-cloth
    number ``"1"``..``"12"``). ``features`` hold race-level features (``distance_m``,
    ``n_runners``, ``prize_k``, ``race_class``, ``going``, ``track``) plus per-runner features
    named ``runner.<item_id>.<feature>`` (``rating``, ``weight_kg``, ``draw``,
    ``days_since_run``, ``jockey_win_rate``, ``age``); runners beyond the field size are
    absent, not null. The `RankingOutcome` gives relevance ``n_runners - finishing_position``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from driftline.producers.scenarios import DriftScenario
from driftline.producers.tasks import TASKS, Drift, Rows, Task
from driftline.schemas.events import SCHEMA_VERSION, LabeledEvent, deterministic_id

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_START_TS",
    "MALFORMED_KINDS",
    "ModelSpec",
    "RecordBatch",
    "Simulator",
]

DEFAULT_START_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z; the CLI uses the current time
DEFAULT_MODELS = ("churn", "eta", "race")
MALFORMED_KINDS = ("malformed_json", "schema_violation", "non_finite", "payload_too_large",
                   "unknown_schema_version")
_TASK_TEMPLATES = {"classification": "churn", "regression": "eta", "ranking": "race"}


@dataclass(frozen=True)
class ModelSpec:
    """One simulated model: its name, which template generates it, its version and drift.

    ``template`` is ``churn``, ``eta`` or ``race`` (or the task name ``classification``,
    ``regression``, ``ranking``); ``weight`` is its share of the traffic relative to the others.
    """

    name: str
    template: str
    version: str = "1"
    scenario: DriftScenario = field(default_factory=DriftScenario)
    weight: float = 1.0

    def __post_init__(self) -> None:
        template = _TASK_TEMPLATES.get(self.template, self.template)
        if template not in TASKS:
            raise ValueError(f"model {self.name!r}: unknown template {self.template!r}; "
                             f"known: {', '.join([*TASKS, *_TASK_TEMPLATES])}")
        object.__setattr__(self, "template", template)
        if self.weight <= 0:
            raise ValueError(f"model {self.name!r}: weight must be > 0, got {self.weight}")

    @classmethod
    def parse(cls, text: str, **kwargs: Any) -> ModelSpec:
        """``churn`` (a template by name) or ``fraud:churn`` / ``fraud:classification``."""
        name, _, template = text.partition(":")
        return cls(name=name.strip(), template=(template or name).strip(), **kwargs)

    @property
    def task(self) -> str:
        """classification, regression or ranking."""
        return TASKS[self.template].task


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Encoded records in event-time order, ready for ``produce``; columns index-aligned.

    ``kinds`` holds the logical topic (``predictions`` or ``outcomes``) and ``malformed`` the
    kind of deliberate damage (one of `MALFORMED_KINDS`) or None.
    """

    kinds: list[str]
    keys: list[bytes]
    values: list[bytes]
    models: list[str]
    ts: np.ndarray
    malformed: list[str | None]

    def __len__(self) -> int:
        return len(self.values)


def _stable_hash(text: str) -> int:
    return int(deterministic_id(text)[:12], 16)


def _as_list(column: np.ndarray) -> list[Any]:
    """A column as JSON-ready Python values; NaN becomes None (a missing value)."""
    values = column.tolist()
    if column.dtype.kind == "f":
        for index in np.flatnonzero(np.isnan(column)).tolist():
            values[index] = None
    return values


class Simulator:
    """Prediction and outcome streams of several models with configurable drift.

    Parameters
    ----------
    models
        `ModelSpec`s, or strings for `ModelSpec.parse` (no drift).
    seed
        Everything random derives from it: same seed and settings, same records.
    start_ts
        Event time of the first prediction (epoch seconds).
    events_per_s
        Predictions per event-time second over all models.
    label_delay_s
        Mean delay (exponential) from a prediction to its outcome, in event time.
    outcome_fraction
        Share of predictions that ever get an outcome.
    missing_fraction
        Probability of each feature value being null.
    malformed_fraction
        Share of records broken on purpose (see `MALFORMED_KINDS`).
    malformed_kinds
        Which kinds of damage to draw from.
    oversize_bytes
        Size of a ``payload_too_large`` record: the consumer's limit plus one.
    run_id
        Part of every request id; defaults to a hash of seed and start time.

    Examples
    --------
    >>> sim = Simulator(["churn", "eta"], seed=7, events_per_s=10.0, label_delay_s=5.0)
    >>> batches = list(sim.batches(400, batch_size=100))
    >>> records = sum(len(b) for b in batches)
    >>> predictions = sum(b.kinds.count("predictions") for b in batches)
    >>> ordered = all(bool(np.all(np.diff(b.ts) >= 0)) for b in batches)
    >>> predictions, records == 800, ordered
    (400, True, True)
    >>> sim.reference_frame("churn", 300).shape
    (300, 17)
    """

    def __init__(
        self,
        models: Sequence[ModelSpec | str] = DEFAULT_MODELS,
        *,
        seed: int = 0,
        start_ts: float = DEFAULT_START_TS,
        events_per_s: float = 100.0,
        label_delay_s: float = 60.0,
        outcome_fraction: float = 1.0,
        missing_fraction: float = 0.01,
        malformed_fraction: float = 0.0,
        malformed_kinds: Sequence[str] = MALFORMED_KINDS,
        oversize_bytes: int = 1_048_577,
        run_id: str | None = None,
    ) -> None:
        specs = [m if isinstance(m, ModelSpec) else ModelSpec.parse(m) for m in models]
        if not specs:
            raise ValueError("at least one model is needed")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        if events_per_s <= 0 or label_delay_s < 0:
            raise ValueError(f"events_per_s must be > 0 and label_delay_s >= 0, got {events_per_s}, {label_delay_s}")
        for name, share in (("outcome_fraction", outcome_fraction), ("missing_fraction", missing_fraction),
                            ("malformed_fraction", malformed_fraction)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {share}")
        unknown = sorted(set(malformed_kinds) - set(MALFORMED_KINDS))
        if unknown or not malformed_kinds:
            raise ValueError(f"malformed kinds must be a non-empty subset of {MALFORMED_KINDS}, got {unknown}")
        self.models = {spec.name: spec for spec in specs}
        self.seed = seed
        self.start_ts = start_ts
        self.events_per_s = events_per_s
        self.label_delay_s = label_delay_s
        self.outcome_fraction = outcome_fraction
        self.missing_fraction = missing_fraction
        self.malformed_fraction = malformed_fraction
        self.malformed_kinds = tuple(malformed_kinds)
        self.oversize_bytes = oversize_bytes
        self.run_id = run_id or deterministic_id("run", seed, start_ts)[:8]
        # Each model's own coefficients are fixed by the seed and its name, not by the run.
        self._tasks: dict[str, Task] = {
            spec.name: TASKS[spec.template](np.random.default_rng([seed, _stable_hash(spec.name)]))
            for spec in specs
        }

    # --- the stream ----------------------------------------------------------------------

    def batches(self, n_predictions: int, batch_size: int = 10_000) -> Iterator[RecordBatch]:
        """The stream of ``n_predictions`` predictions and their outcomes, in event-time order.

        Each batch holds ``batch_size`` predictions plus the outcomes that fell due meanwhile;
        the last batch also carries every outcome still pending. Calling it again replays the
        same records.
        """
        if n_predictions < 0 or batch_size < 1:
            raise ValueError(f"n_predictions must be >= 0 and batch_size >= 1, got {n_predictions}, {batch_size}")
        rng = np.random.default_rng([self.seed, 1])
        specs = list(self.models.values())
        weights = np.array([s.weight for s in specs])
        weights /= weights.sum()
        pending = _Pending()
        clock_ts, sequence, remaining = self.start_ts, 0, n_predictions
        while remaining > 0:
            n = min(batch_size, remaining)
            ts = np.round(clock_ts + np.cumsum(rng.exponential(1.0 / self.events_per_s, n)), 3)
            clock_ts = float(ts[-1])
            which = rng.choice(len(specs), n, p=weights)
            keys: list[bytes] = [b""] * n
            values: list[bytes] = [b""] * n
            models: list[str] = [""] * n
            for index, spec in enumerate(specs):
                rows_at = np.flatnonzero(which == index)
                if rows_at.size == 0:
                    continue
                request_ids = [f"{spec.name}-{self.run_id}-{s}" for s in (rows_at + sequence).tolist()]
                model_ts = ts[rows_at]
                rows = self._sample(rng, spec, request_ids, model_ts)
                encoded = [orjson.dumps(e) for e in self._prediction_dicts(spec, request_ids, model_ts, rows)]
                for at, request_id, value in zip(rows_at.tolist(), request_ids, encoded, strict=True):
                    keys[at], values[at], models[at] = request_id.encode(), value, spec.name
                self._schedule_outcomes(rng, pending, spec, request_ids, model_ts, rows)
            sequence += n
            remaining -= n
            due = pending.pop_due(clock_ts if remaining > 0 else np.inf)
            yield self._merge(rng, ts, keys, values, models, due)

    def _sample(self, rng: np.random.Generator, spec: ModelSpec, request_ids: list[str],
                ts: np.ndarray) -> Rows:
        intensity = spec.scenario.intensity(ts - self.start_ts) * spec.scenario.magnitude
        zeros = np.zeros_like(intensity)
        effect = spec.scenario.effect
        drift = Drift(*(intensity if effect == name else zeros
                        for name in ("covariate", "concept", "new_category", "prediction")))
        rows = self._tasks[spec.name].sample(rng, drift, request_ids)
        return self._with_missing(rng, rows)

    def _with_missing(self, rng: np.random.Generator, rows: Rows) -> Rows:
        if self.missing_fraction <= 0:
            return rows
        columns = {}
        for name, column in rows.columns.items():
            missing = rng.random(column.size) < self.missing_fraction
            if missing.any():
                column = column.copy()
                column[missing] = np.nan if column.dtype.kind == "f" else None
            columns[name] = column
        return Rows(columns, rows.predictions, rows.outcomes, rows.n_present)

    def _prediction_dicts(self, spec: ModelSpec, request_ids: list[str], ts: np.ndarray,
                          rows: Rows) -> Iterator[dict[str, Any]]:
        names = list(rows.columns)
        feature_rows = zip(*(_as_list(column) for column in rows.columns.values()), strict=True)
        present = [len(names)] * len(request_ids) if rows.n_present is None else rows.n_present.tolist()
        ranking = rows.n_present is not None
        for request_id, event_ts, row, n_present, prediction in zip(
            request_ids, ts.tolist(), feature_rows, present, rows.predictions, strict=True
        ):
            event = {
                "schema_version": SCHEMA_VERSION,
                "event_id": f"{request_id}:p",
                "ts": event_ts,
                "model": spec.name,
                "model_version": spec.version,
                "request_id": request_id,
                "features": dict(zip(names[:n_present], row, strict=False)),
                "prediction": prediction,
            }
            if ranking:
                event["entity_id"] = request_id
            yield event

    def _schedule_outcomes(self, rng: np.random.Generator, pending: _Pending, spec: ModelSpec,
                           request_ids: list[str], ts: np.ndarray, rows: Rows) -> None:
        labelled = np.flatnonzero(rng.random(len(request_ids)) < self.outcome_fraction)
        delays = rng.exponential(self.label_delay_s, labelled.size) if self.label_delay_s > 0 else 0.0
        outcome_ts = np.round(ts[labelled] + delays, 3)
        for at, event_ts in zip(labelled.tolist(), outcome_ts.tolist(), strict=True):
            request_id = request_ids[at]
            pending.keys.append(request_id.encode())
            pending.models.append(spec.name)
            pending.values.append(orjson.dumps({
                "schema_version": SCHEMA_VERSION,
                "event_id": f"{request_id}:o",
                "ts": event_ts,
                "request_id": request_id,
                "model": spec.name,
                "outcome": rows.outcomes[at],
            }))
        pending.ts = np.concatenate([pending.ts, outcome_ts])

    def _merge(self, rng: np.random.Generator, ts: np.ndarray, keys: list[bytes], values: list[bytes],
               models: list[str], due: _Pending) -> RecordBatch:
        all_ts = np.concatenate([ts, due.ts])
        order = np.argsort(all_ts, kind="stable").tolist()
        all_keys, all_values, all_models = keys + due.keys, values + due.values, models + due.models
        kinds = ["predictions"] * len(keys) + ["outcomes"] * len(due.keys)
        batch = RecordBatch(
            kinds=[kinds[i] for i in order],
            keys=[all_keys[i] for i in order],
            values=[all_values[i] for i in order],
            models=[all_models[i] for i in order],
            ts=all_ts[order],
            malformed=[None] * len(order),
        )
        if self.malformed_fraction > 0:
            broken = np.flatnonzero(rng.random(len(order)) < self.malformed_fraction)
            kinds_drawn = rng.integers(0, len(self.malformed_kinds), broken.size)
            for at, kind_index in zip(broken.tolist(), kinds_drawn.tolist(), strict=True):
                kind = self.malformed_kinds[kind_index]
                batch.values[at] = self._break(batch.values[at], kind)
                batch.malformed[at] = kind
        return batch

    def _break(self, value: bytes, kind: str) -> bytes:
        """Damage one encoded record so the decoder rejects it with the reason named ``kind``."""
        if kind == "malformed_json":
            return value[: len(value) // 2]
        if kind == "schema_violation":
            return value.replace(b'"model":', b'"model_name":', 1)
        if kind == "non_finite":
            return value[:-1] + b',"confidence":NaN}'
        if kind == "payload_too_large":
            padding = max(0, self.oversize_bytes - len(value) - len(b',"padding":""'))
            return value[:-1] + b',"padding":"' + b"x" * padding + b'"}'
        return value.replace(b'"schema_version":1', b'"schema_version":99', 1)

    # --- reference samples ---------------------------------------------------------------

    def _reference_rows(self, model: str, n: int) -> tuple[ModelSpec, list[str], np.ndarray, Rows]:
        if model not in self.models:
            raise KeyError(f"unknown model {model!r}; simulated: {', '.join(self.models)}")
        spec = self.models[model]
        rng = np.random.default_rng([self.seed, 3, _stable_hash(model)])
        request_ids = [f"{model}-{self.run_id}-ref-{i}" for i in range(n)]
        ts = np.round(self.start_ts - n / self.events_per_s + np.arange(n) / self.events_per_s, 3)
        rows = self._with_missing(rng, self._tasks[model].sample(rng, Drift.none(n), request_ids))
        return spec, request_ids, ts, rows

    def reference_frame(self, model: str, n: int) -> pd.DataFrame:
        """A no-drift sample of ``n`` events of ``model`` to build its reference profile from.

        The layout of ``driftline.stream.build_reference``: the features as the events carry
        them (nulls included), ``prediction`` and ``outcome``. Classification: labels (str) and
        ``score``, the probability of the positive class ``"1"``. Regression: floats. Ranking:
        one row per runner (``n`` races give more rows): the race's features, ``group_id`` (the
        race), ``item_id``, ``prediction`` (the model's score) and ``outcome`` (the relevance).
        """
        import pandas as pd  # only here: the streaming path and `driftline --help` stay light

        spec, request_ids, _, rows = self._reference_rows(model, n)
        frame = pd.DataFrame(dict(rows.columns))
        if spec.task == "classification":
            frame["prediction"] = [p["label"] for p in rows.predictions]
            frame["score"] = [p["probabilities"]["1"] for p in rows.predictions]
            frame["outcome"] = rows.outcomes
            return frame
        if spec.task == "regression":
            frame["prediction"] = rows.predictions
            frame["outcome"] = rows.outcomes
            return frame
        frame["group_id"] = request_ids
        frame["item_id"] = [[i["item_id"] for i in p["items"]] for p in rows.predictions]
        frame["prediction"] = [[i["score"] for i in p["items"]] for p in rows.predictions]
        frame["outcome"] = [[o["relevance"][i] for i in ids]
                            for o, ids in zip(rows.outcomes, frame["item_id"], strict=True)]
        frame = frame.explode(["item_id", "prediction", "outcome"], ignore_index=True)
        return frame.astype({"prediction": float, "outcome": float})

    def reference_events(self, model: str, n: int) -> list[LabeledEvent]:
        """The same no-drift sample as `reference_frame`, as labeled events (the wire form)."""
        spec, request_ids, ts, rows = self._reference_rows(model, n)
        return [
            LabeledEvent.model_validate({**event, "outcome": outcome, "outcome_ts": event["ts"]})
            for event, outcome in zip(self._prediction_dicts(spec, request_ids, ts, rows), rows.outcomes, strict=True)
        ]

    def write_references(self, directory: str | Path, n: int) -> dict[str, Path]:
        """Write ``<model>.parquet`` (`reference_frame`) for every model; returns the paths."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for model in self.models:
            paths[model] = out / f"{model}.parquet"
            self.reference_frame(model, n).to_parquet(paths[model], index=False)
        return paths


@dataclass
class _Pending:
    """Outcomes generated but not yet due in event time."""

    ts: np.ndarray = field(default_factory=lambda: np.empty(0))
    keys: list[bytes] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    def pop_due(self, horizon_ts: float) -> _Pending:
        """Remove and return the outcomes at or before ``horizon_ts``, oldest first."""
        due_mask = self.ts <= horizon_ts
        due_at = np.flatnonzero(due_mask)
        due_at = due_at[np.argsort(self.ts[due_at], kind="stable")].tolist()
        keep_at = np.flatnonzero(~due_mask).tolist()
        due = _Pending(self.ts[due_at], [self.keys[i] for i in due_at], [self.values[i] for i in due_at],
                       [self.models[i] for i in due_at])
        self.ts = self.ts[keep_at]
        self.keys = [self.keys[i] for i in keep_at]
        self.values = [self.values[i] for i in keep_at]
        self.models = [self.models[i] for i in keep_at]
        return due


"""The work of stage 2 for one `panes` partition, without Kafka: windows, watermark, alert policy.

`MonitorHandler` keeps, per model, a `WindowEvaluator` (the pure core's window merge and
tests), the `AlertState` of the `AlertPolicy` (hysteresis, cooldown) and the end of the last
evaluated window; and, for the partition, the latest closed pane end per source.

Watermark: a source (an ingest input partition) closes panes for all models at once and
writes its partials in order, so any partial it wrote to this partition proves it has closed
every earlier pane of every model here. The watermark is the minimum over all ``n_sources``
sources of their latest pane end; until every source has reported there is none. Empty
partials (heartbeats) keep it moving through quiet periods.

`handle` returns the alerts to publish and the changelog records that let `restore` rebuild
the same state:

- ``pane\\x1f<model>\\x1f<source>\\x1f<pane_start>`` -> the pane partial, while a future window
  may still include it, then a tombstone;
- ``model\\x1f<model>`` -> alert state and the last evaluated window end;
- ``sources`` -> latest pane end per source.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from driftline.config import MonitorSettings
from driftline.schemas.codec import encode
from driftline.schemas.events import DriftAlert
from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream.policy import AlertPolicy, AlertState
from driftline.stream.windows import WindowEvaluator, WindowResult

__all__ = ["Evaluation", "ModelState", "MonitorHandler", "MonitorOutputs", "evaluator_for"]

_SEP = b"\x1f"
_PANE = b"pane"
_MODEL = b"model"
_SOURCES = b"sources"


def evaluator_for(profile: ReferenceProfile, settings: MonitorSettings) -> WindowEvaluator:
    """The window evaluator stage 2 runs for ``profile`` with the monitor section ``settings``.

    One definition, so `driftline report` rebuilds a window exactly as the monitor judged it.
    """
    return WindowEvaluator(
        profile,
        window_s=settings.window_s,
        step_s=settings.step_s,
        pane_s=settings.pane_s,
        allowed_lateness_s=settings.allowed_lateness_s,
        correction=settings.correction,
        alpha=settings.alpha,
        min_effect=settings.min_effect,
        drift_ratio_threshold=settings.drift_ratio_threshold,
        min_samples=settings.min_samples,
        concept_relative_drop=settings.concept_drop_threshold,
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One evaluated window and how long the core took, for the metrics exporter."""

    model: str
    result: WindowResult
    elapsed_s: float


@dataclass(slots=True)
class MonitorOutputs:
    alerts: list[DriftAlert] = field(default_factory=list)
    changelog: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    watermarks: dict[str, float] = field(default_factory=dict)
    mismatched_panes: int = 0


@dataclass(slots=True)
class ModelState:
    """Everything stage 2 remembers about one model."""

    alert_state: AlertState = field(default_factory=AlertState)
    last_window_end: float = float("-inf")
    panes: dict[tuple[str, float], PanePartial] = field(default_factory=dict)
    evaluator: WindowEvaluator | None = None

    def to_record(self) -> bytes:
        """The model's changelog record; the evaluator itself is rebuilt from the kept panes, bar its loss monitor."""
        return orjson.dumps(
            {
                "alert_state": self.alert_state.to_dict(),
                "last_window_end": self.last_window_end if self.last_window_end != float("-inf") else None,
                **({"reference_id": self.evaluator.profile.reference_id, **self.evaluator.loss_state()}
                   if self.evaluator is not None else {}),
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelState:
        """`to_record` parsed; its loss monitor part goes to the rebuilt evaluator (`MonitorHandler.restore`)."""
        last = data.get("last_window_end")
        return cls(
            alert_state=AlertState.from_dict(data["alert_state"]),
            last_window_end=float("-inf") if last is None else float(last),
        )


def _pane_key(partial: PanePartial) -> bytes:
    return _SEP.join((_PANE, partial.model.encode(), partial.source.encode(), repr(partial.pane_start).encode()))


def _model_key(model: str) -> bytes:
    return _SEP.join((_MODEL, model.encode()))


class MonitorHandler:
    """Stage 2's state for the models of one `panes` partition.

    Parameters
    ----------
    settings
        The monitor section: window, step, pane, tests, alert policy.
    profiles
        Reference profile per model (shared with the app's `ReferenceBook`, so updates show).
    n_sources
        How many sources write panes: the partition count of the ingest input topics.
    """

    def __init__(
        self, settings: MonitorSettings, profiles: Mapping[str, ReferenceProfile], *, n_sources: int
    ) -> None:
        if n_sources < 1:
            raise ValueError(f"n_sources must be >= 1, got {n_sources}")
        self.settings = settings
        self.profiles = profiles
        self.n_sources = n_sources
        self.source_progress: dict[str, float] = {}
        self.policy = AlertPolicy(hysteresis_windows=settings.hysteresis_windows, cooldown_s=settings.cooldown_s)
        self.models: dict[str, ModelState] = {}

    def _ensure_evaluator(self, model: str, state: ModelState) -> WindowEvaluator | None:
        """The model's evaluator on its current profile; rebuilt from held panes when the profile changes."""
        profile = self.profiles.get(model)
        if profile is None:
            return None
        if state.evaluator is None or state.evaluator.profile.reference_id != profile.reference_id:
            state.evaluator = evaluator_for(profile, self.settings)
            for partial in sorted(state.panes.values(), key=lambda p: (p.pane_start, p.source)):
                if partial.reference_id == profile.reference_id:
                    state.evaluator.add(partial)
        return state.evaluator

    def set_profile(self, profile: ReferenceProfile) -> None:
        """A new reference for a model: its evaluator restarts on the panes of that reference."""
        state = self.models.get(profile.model)
        if state is not None:
            self._ensure_evaluator(profile.model, state)

    def handle(self, partials: Sequence[PanePartial], values: Sequence[bytes] | None = None) -> MonitorOutputs:
        """Add pane partials, evaluate every window the watermark has passed, decide alerts.

        ``values``: the partials' JSON as consumed (index-aligned), written to the changelog as
        it is instead of encoding each partial again; without them the partials are encoded.
        """
        out = MonitorOutputs()
        touched: dict[str, ModelState] = {}
        for index, partial in enumerate(partials):
            if abs(partial.pane_s - self.settings.pane_s) > 1e-9:
                out.mismatched_panes += 1
                continue
            state = self.models.setdefault(partial.model, ModelState())
            touched[partial.model] = state
            self.source_progress[partial.source] = max(
                self.source_progress.get(partial.source, float("-inf")), partial.pane_end
            )
            pane_id = (partial.source, partial.pane_start)
            if pane_id in state.panes or partial.pane_start < self._oldest_useful_pane(state):
                continue  # a replayed duplicate, or too old for any future window
            state.panes[pane_id] = partial
            out.changelog.append((_pane_key(partial), values[index] if values is not None else encode(partial)))
            evaluator = self._ensure_evaluator(partial.model, state)
            if evaluator is not None and partial.reference_id == evaluator.profile.reference_id:
                evaluator.add(partial)
        if touched:
            out.changelog.append((_SOURCES, orjson.dumps(self.source_progress)))
        watermark = self.watermark
        for model, state in self.models.items():
            evaluated = self._evaluate(model, state, watermark, out)
            if evaluated or model in touched:
                out.changelog.append((_model_key(model), state.to_record()))
        return out

    @property
    def watermark(self) -> float | None:
        """Min over all sources of their latest pane end; None until every source has reported."""
        if len(self.source_progress) < self.n_sources:
            return None
        return min(self.source_progress.values())

    def _oldest_useful_pane(self, state: ModelState) -> float:
        """Panes starting before this cannot be part of a window not yet evaluated."""
        if state.last_window_end == float("-inf"):
            return float("-inf")
        return state.last_window_end + self.settings.step_s - self.settings.window_s

    def _evaluate(self, model: str, state: ModelState, watermark: float | None, out: MonitorOutputs) -> bool:
        """Evaluate the model's windows up to the watermark; True when any was evaluated."""
        evaluator = self._ensure_evaluator(model, state)
        if watermark is None or evaluator is None:
            return False
        out.watermarks[model] = watermark
        evaluated_before = len(out.evaluations)
        started = time.perf_counter()
        results = evaluator.ready(watermark)
        elapsed_s = time.perf_counter() - started
        for result in results:
            if result.window_end <= state.last_window_end:
                continue  # evaluated before a restart: its alerts were already committed
            alerts, state.alert_state = self.policy.decide(result, state.alert_state)
            out.alerts.extend(alerts)
            out.evaluations.append(Evaluation(model, result, elapsed_s / max(len(results), 1)))
            state.last_window_end = result.window_end
        oldest = self._oldest_useful_pane(state)
        for pane_id, partial in list(state.panes.items()):
            if partial.pane_start < oldest:
                del state.panes[pane_id]
                out.changelog.append((_pane_key(partial), None))
        return len(out.evaluations) > evaluated_before

    @classmethod
    def restore(
        cls,
        settings: MonitorSettings,
        profiles: Mapping[str, ReferenceProfile],
        records: Iterable[tuple[bytes, bytes | None]],
        *,
        n_sources: int,
    ) -> MonitorHandler:
        """Rebuild the handler from its changelog records (oldest first)."""
        latest: dict[bytes, bytes | None] = {}
        for key, value in records:
            latest[key] = value
        handler = cls(settings, profiles, n_sources=n_sources)
        sources = latest.pop(_SOURCES, None)
        if sources is not None:
            handler.source_progress = {k: float(v) for k, v in orjson.loads(sources).items()}
        panes: list[PanePartial] = []
        model_records: dict[str, dict[str, Any]] = {}
        for key, value in latest.items():
            if value is None:
                continue
            kind, _, rest = key.partition(_SEP)
            if kind == _MODEL:
                model_records[rest.decode()] = record = orjson.loads(value)
                handler.models[rest.decode()] = ModelState.from_dict(record)
            elif kind == _PANE:
                panes.append(PanePartial.model_validate_json(value))
        for partial in panes:
            state = handler.models.setdefault(partial.model, ModelState())
            state.panes[(partial.source, partial.pane_start)] = partial
        for model, state in handler.models.items():
            evaluator = handler._ensure_evaluator(model, state)
            record = model_records.get(model, {})
            if evaluator is not None and record.get("reference_id") == evaluator.profile.reference_id:
                evaluator.load_loss_state(record)  # goes on where it stopped, not fed the kept panes again
        return handler

"""One window of one model rebuilt from its pane partials, judged exactly as stage 2 judges it.

Pure: no Kafka, no clock. The partials are what the `panes` topic holds for the model; the
evaluator is built from the monitor's settings the way `MonitorHandler` builds it, so the
report and the alert of a window agree.

Completeness follows the monitor's watermark: every source (an ingest partition) writes its
partials in pane order, heartbeats included, so a window is complete once every source that
wrote for the model has closed a pane ending at or after the window's end.

Choosing the window needs only each partial's header (`PaneHeader`: model, source, reference,
pane, event count), so a reader can scan a long `panes` topic keeping headers alone and then
decode just the partials of the chosen window: `select_window`, then `evaluate_window`.
`build_window_report` does both on full partials.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from driftline.config import MonitorSettings
from driftline.consumers.monitor.handler import evaluator_for
from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream.windows import WindowResult, window_ends

__all__ = [
    "PaneHeader",
    "ReportError",
    "build_window_report",
    "evaluate_window",
    "evaluator_for",
    "select_window",
    "source_watermark",
]

_TOLERANCE_S = 1e-6


class PaneHeader(Protocol):
    """What choosing a window needs of a partial; `PanePartial` has it all."""

    @property
    def model(self) -> str: ...
    @property
    def reference_id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def pane_start(self) -> float: ...
    @property
    def pane_s(self) -> float: ...
    @property
    def pane_end(self) -> float: ...
    @property
    def n_events(self) -> int: ...


H = TypeVar("H", bound=PaneHeader)


class ReportError(ValueError):
    """Why no report can be made, in one line an operator can act on."""


def source_watermark(partials: Iterable[PaneHeader]) -> float:
    """Minimum over the sources of the latest pane end each wrote (-inf without partials)."""
    latest: dict[str, float] = {}
    for partial in partials:
        latest[partial.source] = max(latest.get(partial.source, -math.inf), partial.pane_end)
    return min(latest.values()) if latest else -math.inf


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usable(profile: ReferenceProfile, partials: Sequence[H], settings: MonitorSettings) -> list[H]:
    """Partials of the profile's reference with the monitor's pane length; a replayed pane counts once."""
    kept: dict[tuple[str, float], H] = {}
    other_reference = other_pane_s = 0
    for partial in partials:
        if partial.reference_id != profile.reference_id:
            other_reference += 1
        elif abs(partial.pane_s - settings.pane_s) > _TOLERANCE_S:
            other_pane_s += 1
        else:
            kept.setdefault((partial.source, partial.pane_start), partial)
    if not kept:
        raise ReportError(
            f"no pane partials of reference {profile.reference_id} for model {profile.model!r} "
            f"({other_reference} of other references, {other_pane_s} with pane_s != {settings.pane_s:g})"
        )
    return sorted(kept.values(), key=lambda p: (p.pane_start, p.source))


def _ends_with_events(partials: Sequence[PaneHeader], settings: MonitorSettings) -> set[float]:
    """Ends of every window holding at least one event of ``partials`` (heartbeats do not count)."""
    return {
        end
        for partial in partials
        if partial.n_events > 0
        for end in window_ends(partial.pane_start, pane_s=settings.pane_s, window_s=settings.window_s,
                               step_s=settings.step_s)
    }


def _chosen_end(
    model: str, ends: set[float], watermark: float, settings: MonitorSettings, window_end: float | None
) -> float:
    if window_end is None:
        complete = [end for end in ends if end <= watermark + _TOLERANCE_S]
        if not complete:
            first = f"; the first window with events ends at {_utc(min(ends))}" if ends else ""
            raise ReportError(f"no complete window with events for model {model!r}: every source's panes reach "
                              f"{_utc(watermark)}{first}")
        return max(complete)
    steps = window_end / settings.step_s
    if abs(steps - round(steps)) > 1e-9:
        raise ReportError(f"window end {window_end:g} ({_utc(window_end)}) is not a multiple of "
                          f"monitor.step_s={settings.step_s:g}")
    end = round(steps) * settings.step_s
    if end > watermark + _TOLERANCE_S:
        raise ReportError(f"the window ending {_utc(end)} is not complete: every source's panes reach only "
                          f"{_utc(watermark)}")
    if not any(abs(end - other) <= _TOLERANCE_S for other in ends):
        raise ReportError(f"no events of model {model!r} in the window [{_utc(end - settings.window_s)}, "
                          f"{_utc(end)})")
    return end


def select_window(
    profile: ReferenceProfile,
    headers: Iterable[H],
    monitor_settings: MonitorSettings,
    *,
    window_end: float | None = None,
) -> tuple[float, list[H]]:
    """The end of the window to report and the usable partials inside it, in pane order.

    Parameters are those of `build_window_report`; ``headers`` may be partials or any
    `PaneHeader`. Raises `ReportError` in the same cases.
    """
    of_model = [h for h in headers if h.model == profile.model]
    if not of_model:
        raise ReportError(f"no pane partials for model {profile.model!r} on `panes`")
    usable = _usable(profile, of_model, monitor_settings)
    end = _chosen_end(profile.model, _ends_with_events(usable, monitor_settings), source_watermark(of_model),
                      monitor_settings, window_end)
    start = end - monitor_settings.window_s
    return end, [h for h in usable if start - _TOLERANCE_S <= h.pane_start < end - _TOLERANCE_S]


def evaluate_window(
    profile: ReferenceProfile, partials: Iterable[PanePartial], monitor_settings: MonitorSettings, window_end: float
) -> WindowResult:
    """The window ending at ``window_end`` evaluated on ``partials`` (those `select_window` chose)."""
    evaluator = evaluator_for(profile, monitor_settings)
    for partial in partials:
        evaluator.add(partial)
    results = [r for r in evaluator.ready(window_end) if abs(r.window_end - window_end) <= _TOLERANCE_S]
    if not results:
        raise ReportError(f"no partials of model {profile.model!r} in the window ending {_utc(window_end)}")
    return results[-1]


def build_window_report(
    profile: ReferenceProfile,
    partials: Iterable[PanePartial],
    monitor_settings: MonitorSettings,
    *,
    window_end: float | None = None,
) -> WindowResult:
    """The evaluated window ``[window_end - window_s, window_end)`` of ``profile.model``.

    Parameters
    ----------
    profile
        The reference to test against; partials of other references are left out.
    partials
        Pane partials as read from `panes` (any models, any order; other models are ignored).
    monitor_settings
        Window, step, pane, tests and thresholds: the ones stage 2 runs with.
    window_end
        End of the window, epoch seconds, a multiple of ``step_s``; default: the last complete
        window holding events.

    Raises
    ------
    ReportError
        No partials for the model or its reference, no complete window, or the requested window
        is misaligned, incomplete or empty.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from driftline.schemas.events import PredictionEvent
    >>> from driftline.stream.panes import PaneAggregator
    >>> from driftline.stream.reference import build_reference
    >>> rng = np.random.default_rng(1)
    >>> ref = build_reference(pd.DataFrame({"x": rng.normal(size=2000), "prediction": rng.normal(size=2000)}),
    ...                       model="m", model_version="1", task="regression")
    >>> agg = PaneAggregator({"m": ref}, pane_s=60, allowed_lateness_s=0, source="ingest-0")
    >>> agg.add_predictions([PredictionEvent(event_id=str(t), ts=float(t), model="m", model_version="1",
    ...     request_id=str(t), features={"x": float(rng.normal(0.0 if t < 600 else 1.0))},
    ...     prediction=float(rng.normal())) for t in range(1200)])
    >>> settings = MonitorSettings(pane_s=60, window_s=300, step_s=300, min_samples=100)
    >>> result = build_window_report(ref, agg.close_panes(), settings)
    >>> result.window_start, result.window_end, result.data.drifted_features
    (600.0, 900.0, ('x',))
    """
    end, inside = select_window(profile, partials, monitor_settings, window_end=window_end)
    return evaluate_window(profile, inside, monitor_settings, end)

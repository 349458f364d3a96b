"""The pure, deterministic drift core: reference profiles, pane sketches, windows, tests, alert policy.

Nothing here does I/O or reads a clock: time is an argument (event ``ts``, watermark) and
late, null and unmonitored counts come back as data for the services to export.

Stage 1 (`PaneAggregator`) sketches each event-time pane per model on one source; stage 2
(`WindowEvaluator`) merges the pane partials into sliding windows and tests them against
the `ReferenceProfile` made by `build_reference`; `AlertPolicy` turns window results into
`DriftAlert`s with hysteresis and cooldown.
"""

from driftline.stream.correction import adjust_p_values
from driftline.stream.panes import AggregatorCounters, PaneAggregator
from driftline.stream.policy import AlertPolicy, AlertState, KindState
from driftline.stream.reference import build_reference
from driftline.stream.windows import DataDriftResult, Histogram, WindowEvaluator, WindowResult

__all__ = [
    "AggregatorCounters",
    "AlertPolicy",
    "AlertState",
    "DataDriftResult",
    "Histogram",
    "KindState",
    "PaneAggregator",
    "WindowEvaluator",
    "WindowResult",
    "adjust_p_values",
    "build_reference",
]

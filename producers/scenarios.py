"""Drift scenarios of the simulator: what changes in a model's stream, when, and how fast.

A scenario is an *effect* (what changes) with a *shape* over event time (how it sets in):

=================  ======================================================  ==========
scenario           effect                                                  shape
=================  ======================================================  ==========
none               nothing                                                 -
sudden             covariate shift: feature distributions move             step
gradual            covariate shift                                         linear ramp
recurring          covariate shift                                         on/off
concept            the labels' relation to the features changes            step
new_category       categorical features take values never seen before      step
prediction_shift   the model's outputs move (e.g. a bad deployment)        step
=================  ======================================================  ==========

Intensity 0 means the reference distribution and 1 the fully shifted one; ``magnitude``
scales how far "fully shifted" is (1.0 is clearly visible in a window of a few hundred events).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

__all__ = ["SCENARIOS", "DriftScenario", "ScenarioName"]

ScenarioName = Literal["none", "sudden", "gradual", "recurring", "concept", "new_category", "prediction_shift"]
SCENARIOS: tuple[str, ...] = get_args(ScenarioName)
_COVARIATE = frozenset({"sudden", "gradual", "recurring"})


@dataclass(frozen=True)
class DriftScenario:
    """When and how strongly one model's stream drifts, in event time.

    Parameters
    ----------
    kind
        One of `SCENARIOS`.
    shift_at_s
        Event-time offset from the simulation start where the drift begins.
    ramp_s
        ``gradual``: seconds from no drift to full drift.
    period_s
        ``recurring``: the drift is on for one period, off for the next, and so on.
    magnitude
        How far the fully shifted distribution is from the reference (1.0 = clearly visible).

    Examples
    --------
    >>> ramp = DriftScenario("gradual", shift_at_s=100.0, ramp_s=50.0)
    >>> ramp.intensity(np.array([0.0, 100.0, 125.0, 500.0])).tolist()
    [0.0, 0.0, 0.5, 1.0]
    >>> DriftScenario("recurring", shift_at_s=0.0, period_s=10.0).intensity(np.array([5.0, 15.0, 25.0])).tolist()
    [1.0, 0.0, 1.0]
    """

    kind: ScenarioName = "none"
    shift_at_s: float = 600.0
    ramp_s: float = 600.0
    period_s: float = 600.0
    magnitude: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.kind!r}; known: {', '.join(SCENARIOS)}")
        if self.ramp_s <= 0 or self.period_s <= 0:
            raise ValueError(f"ramp_s and period_s must be > 0, got {self.ramp_s} and {self.period_s}")
        if self.magnitude < 0:
            raise ValueError(f"magnitude must be >= 0, got {self.magnitude}")

    @property
    def effect(self) -> Literal["none", "covariate", "concept", "new_category", "prediction"]:
        """What changes: covariate, concept, new_category, prediction or none."""
        if self.kind in _COVARIATE:
            return "covariate"
        if self.kind == "prediction_shift":
            return "prediction"
        return self.kind  # type: ignore[return-value]

    def intensity(self, offset_s: np.ndarray) -> np.ndarray:
        """Drift intensity in [0, 1] per event, from its event-time offset to the simulation start."""
        since = np.asarray(offset_s, dtype=float) - self.shift_at_s
        if self.kind == "none":
            return np.zeros_like(since)
        if self.kind == "gradual":
            return np.clip(since / self.ramp_s, 0.0, 1.0)
        on = since >= 0
        if self.kind == "recurring":
            on &= (np.floor(np.maximum(since, 0.0) / self.period_s) % 2) == 0
        return on.astype(float)

"""Alert policy: from window verdicts to drift alerts and recoveries, with hysteresis and cooldown.

Per model and kind (data, prediction, concept) the policy counts consecutive drifted
windows. After ``hysteresis_windows`` of them it raises an alert, unless one of that kind
was raised less than ``cooldown_s`` (event time) ago; while the drift persists it repeats
the alert once per cooldown. The first window without drift after an alert produces a
recovery event. Windows with too little data leave the state as it is. The state is a
small immutable object with `AlertState.to_dict` / `AlertState.from_dict`, so a service
can keep it in a changelogged table; replaying a window already decided changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from driftline.schemas.events import DriftAlert, FeatureResult, MetricResult, deterministic_id
from driftline.stream.windows import WindowResult

__all__ = ["DEFAULT_RETRAIN_ON", "AlertPolicy", "AlertState", "KindState"]

Kind = Literal["data", "prediction", "concept"]
Severity = Literal["warning", "critical"]
KINDS: tuple[Kind, ...] = ("data", "prediction", "concept")
_SEVERITY_RANK = {"warning": 1, "critical": 2}

#: which kinds trigger a retrain, and from which severity on
DEFAULT_RETRAIN_ON: Mapping[str, Severity] = {"concept": "warning", "data": "critical"}


@dataclass(frozen=True, slots=True)
class KindState:
    """Hysteresis and cooldown state of one kind of drift of one model."""

    consecutive: int = 0
    active: bool = False
    last_alert_ts: float | None = None


@dataclass(frozen=True, slots=True)
class AlertState:
    """Policy state of one model: per kind, and the last window decided (replays are ignored)."""

    kinds: Mapping[str, KindState] = field(default_factory=dict)
    last_window_end: float | None = None

    def kind(self, kind: str) -> KindState:
        """State of one kind (fresh when never seen)."""
        return self.kinds.get(kind, KindState())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for a changelogged table."""
        return {
            "last_window_end": self.last_window_end,
            "kinds": {k: {"consecutive": s.consecutive, "active": s.active, "last_alert_ts": s.last_alert_ts}
                      for k, s in sorted(self.kinds.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        """Inverse of `to_dict`."""
        return cls({k: KindState(int(v["consecutive"]), bool(v["active"]), v["last_alert_ts"])
                    for k, v in data.get("kinds", {}).items()}, data.get("last_window_end"))


class AlertPolicy:
    """Turns `WindowResult`s into `DriftAlert`s.

    Parameters
    ----------
    hysteresis_windows
        Consecutive drifted windows needed before an alert.
    cooldown_s
        Minimum event time between two alerts of one (model, kind).
    critical_psi
        Data and prediction drift is critical when a drifted feature's PSI reaches this.
    critical_drift_ratio
        Data drift is critical when this share of features drifted (or when categories
        the reference never saw flood a feature, or a feature's nulls rise).
    critical_relative_drop
        Concept drift is critical when a dropped metric fell by this share or more.
    retrain_on
        Kind -> lowest severity whose alerts carry ``action="retrain"``; other alerts
        carry ``"none"``. Default: concept drift of any severity, critical data drift.
    correction
        Named in the alerts (the evaluator's multiple-testing correction).

    Examples
    --------
    >>> policy = AlertPolicy(hysteresis_windows=2, cooldown_s=3600)
    >>> policy
    AlertPolicy(hysteresis_windows=2, cooldown_s=3600)
    """

    def __init__(
        self,
        *,
        hysteresis_windows: int = 2,
        cooldown_s: float = 3600.0,
        critical_psi: float = 0.25,
        critical_drift_ratio: float = 0.6,
        critical_relative_drop: float = 0.05,
        retrain_on: Mapping[str, Severity] | None = None,
    ) -> None:
        if hysteresis_windows < 1:
            raise ValueError(f"hysteresis_windows must be >= 1, got {hysteresis_windows}")
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {cooldown_s}")
        retrain_on = dict(DEFAULT_RETRAIN_ON if retrain_on is None else retrain_on)
        for kind, severity in retrain_on.items():
            if kind not in KINDS or severity not in _SEVERITY_RANK:
                raise ValueError(f"retrain_on: unknown kind or severity {kind!r}: {severity!r}")
        self.hysteresis_windows = hysteresis_windows
        self.cooldown_s = cooldown_s
        self.critical_psi = critical_psi
        self.critical_drift_ratio = critical_drift_ratio
        self.critical_relative_drop = critical_relative_drop
        self.retrain_on = retrain_on

    def __repr__(self) -> str:
        return f"AlertPolicy(hysteresis_windows={self.hysteresis_windows}, cooldown_s={self.cooldown_s:g})"

    def decide(self, result: WindowResult, state: AlertState) -> tuple[list[DriftAlert], AlertState]:
        """Alerts (and recoveries) for one window, and the state after it; the input state is unchanged."""
        if state.last_window_end is not None and result.window_end <= state.last_window_end:
            return [], state
        alerts: list[DriftAlert] = []
        kinds = dict(state.kinds)
        for kind in KINDS:
            verdict = self._verdict(result, kind)
            if verdict is None:
                continue
            previous = state.kind(kind)
            if verdict:
                consecutive = previous.consecutive + 1
                cooled = previous.last_alert_ts is None or result.window_end - previous.last_alert_ts >= self.cooldown_s
                if consecutive >= self.hysteresis_windows and cooled:
                    alerts.append(self._alert(result, kind, "drift"))
                    kinds[kind] = KindState(consecutive, True, result.window_end)
                else:
                    kinds[kind] = replace(previous, consecutive=consecutive)
            else:
                if previous.active:
                    alerts.append(self._alert(result, kind, "recovered"))
                kinds[kind] = KindState(0, False, previous.last_alert_ts)
        return alerts, AlertState(kinds, result.window_end)

    @staticmethod
    def _verdict(result: WindowResult, kind: Kind) -> bool | None:
        """Whether the window shows drift of this kind; None when it cannot tell."""
        if kind == "data":
            return result.data.drifted if result.data.sufficient else None
        if kind == "prediction":
            return result.prediction_drifted if result.prediction else None
        return result.concept_drifted if result.concept else None

    def _evidence(self, result: WindowResult, kind: Kind) -> tuple[list[FeatureResult], list[MetricResult], float,
                                                                     int]:
        if kind == "data":
            return list(result.data.results), [], result.data.drift_ratio, result.n_events
        if kind == "prediction":
            return list(result.prediction), [], 1.0 if result.prediction_drifted else 0.0, result.n_events
        dropped = sum(m.dropped for m in result.concept)
        return [], list(result.concept), dropped / len(result.concept), result.n_labeled

    def severity(self, result: WindowResult, kind: Kind) -> Severity:
        """How bad the drift of one kind is in one window (see the class parameters)."""
        if kind == "concept":
            worst = max((m.relative_drop for m in result.concept if m.dropped), default=0.0)
            return "critical" if worst >= self.critical_relative_drop else "warning"
        results = result.data.results if kind == "data" else result.prediction
        drifted = {r.feature for r in results if r.test in ("ks", "chi2") and r.drifted}
        worst_psi = max((r.score or 0.0 for r in results if r.test == "psi" and r.feature in drifted), default=0.0)
        if worst_psi >= self.critical_psi:
            return "critical"
        if kind == "data" and (result.data.drift_ratio >= self.critical_drift_ratio
                               or result.data.new_category_features or result.data.null_features):
            return "critical"
        return "warning"

    def _alert(self, result: WindowResult, kind: Kind, status: Literal["drift", "recovered"]) -> DriftAlert:
        results, metrics, ratio, n_current = self._evidence(result, kind)
        if status == "drift":
            severity = self.severity(result, kind)
            floor = self.retrain_on.get(kind)
            retrain = floor is not None and _SEVERITY_RANK[severity] >= _SEVERITY_RANK[floor]
            action: Literal["retrain", "none"] = "retrain" if retrain else "none"
        else:
            severity, action = "info", "none"
        return DriftAlert(
            alert_id=deterministic_id(result.model, result.model_version, kind, result.window_start,
                                      result.window_end, status),
            ts=result.window_end, model=result.model, model_version=result.model_version, kind=kind,
            status=status, window_start=result.window_start, window_end=result.window_end, results=results,
            metrics=metrics, drift_ratio=min(max(ratio, 0.0), 1.0), severity=severity, n_current=n_current,
            n_reference=result.n_reference, reference_id=result.reference_id, correction=result.correction,
            action=action, early_signals=list(result.early_signals),
        )

"""Alert policy: hysteresis, cooldown, recovery, deterministic ids, actions, persistence."""

from __future__ import annotations

import orjson
import pytest

from driftline.schemas.events import FeatureResult, MetricResult
from driftline.stream import AlertPolicy, AlertState, DataDriftResult, WindowResult

STEP_S = 300.0


def _feature(name: str, drifted: bool, psi: float) -> list[FeatureResult]:
    return [
        FeatureResult(feature=name, test="ks", statistic=0.3, p_value=1e-6 if drifted else 0.5,
                      p_adjusted=1e-5 if drifted else 0.6, threshold=0.05, drifted=drifted, n_reference=1000,
                      n_current=800),
        FeatureResult(feature=name, test="psi", statistic=psi, score=psi, threshold=0.1, drifted=psi >= 0.1,
                      n_reference=5000, n_current=800),
    ]


def _window(k: int, *, data: bool = False, psi: float = 0.15, concept_drop: float | None = None,
            sufficient: bool = True, model: str = "m") -> WindowResult:
    names = [f"x{i}" for i in range(10)]
    drifted = names[:4] if data else []
    results = tuple(r for n in names for r in _feature(n, n in drifted, psi if n in drifted else 0.01))
    concept = ()
    if concept_drop is not None:
        concept = (MetricResult(metric="accuracy", reference=0.9, current=0.9 * (1 - concept_drop),
                                relative_drop=concept_drop, significance_test="binomtest", p_value=1e-4,
                                dropped=concept_drop > 0.02, n=2000),)
    return WindowResult(
        model=model, model_version="3", reference_id="ref", window_start=k * STEP_S - 3600, window_end=k * STEP_S,
        n_events=800, n_reference=5000, n_late=0, n_labeled=2000 if concept else 0, correction="bh",
        data=DataDriftResult(results if sufficient else (), tuple(drifted), 10 if sufficient else 0,
                             len(drifted) / 10, data and sufficient, sufficient),
        prediction=(), concept=concept,
    )


def _run(policy: AlertPolicy, windows: list[WindowResult], state: AlertState | None = None):
    state = state or AlertState()
    out = []
    for w in windows:
        alerts, state = policy.decide(w, state)
        out.extend((w.window_end, a.kind, a.status) for a in alerts)
    return out, state


def test_hysteresis_needs_k_consecutive_drifted_windows() -> None:
    policy = AlertPolicy(hysteresis_windows=2, cooldown_s=0)
    pattern = [False, True, False, True, True, True]
    alerts, _ = _run(policy, [_window(k + 1, data=d) for k, d in enumerate(pattern)])
    assert [a for a in alerts if a[2] == "drift"] == [(1500.0, "data", "drift"), (1800.0, "data", "drift")]


def test_cooldown_limits_repeats_and_recovery_follows() -> None:
    policy = AlertPolicy(hysteresis_windows=1, cooldown_s=3600)
    windows = [_window(k, data=True) for k in range(1, 16)] + [_window(16), _window(17)]
    alerts, state = _run(policy, windows)
    assert alerts == [(300.0, "data", "drift"), (3900.0, "data", "drift"), (4800.0, "data", "recovered")]
    assert not state.kind("data").active and state.kind("data").consecutive == 0


def test_insufficient_windows_leave_the_state_alone() -> None:
    policy = AlertPolicy(hysteresis_windows=2, cooldown_s=0)
    alerts, state = _run(policy, [_window(1, data=True), _window(2, sufficient=False), _window(3, data=True)])
    assert alerts == [(900.0, "data", "drift")]
    assert state.kind("data").consecutive == 2


def test_alert_carries_evidence_severity_action_and_a_deterministic_id() -> None:
    policy = AlertPolicy(hysteresis_windows=1)
    (warning,), _ = policy.decide(_window(1, data=True, psi=0.15), AlertState())
    (critical,), _ = policy.decide(_window(1, data=True, psi=0.4), AlertState())
    assert warning.severity == "warning" and warning.action == "none"
    assert critical.severity == "critical" and critical.action == "retrain"
    assert warning.alert_id == critical.alert_id  # same model, version, kind and window
    assert warning.alert_id != policy.decide(_window(1, data=True, model="other"), AlertState())[0][0].alert_id
    assert warning.drift_ratio == 0.4 and warning.window_end == 300.0 and warning.ts == 300.0
    assert warning.n_current == 800 and warning.n_reference == 5000 and warning.reference_id == "ref"
    assert {r.feature for r in warning.results if r.drifted and r.test == "ks"} == {"x0", "x1", "x2", "x3"}


def test_concept_drift_alerts_with_its_metrics_and_retrains() -> None:
    policy = AlertPolicy(hysteresis_windows=1)
    alerts, _ = policy.decide(_window(1, concept_drop=0.05), AlertState())
    (alert,) = alerts
    assert alert.kind == "concept" and alert.severity == "critical" and alert.action == "retrain"
    assert alert.metrics[0].metric == "accuracy" and alert.n_current == 2000
    no_retrain = AlertPolicy(hysteresis_windows=1, retrain_on={})
    assert no_retrain.decide(_window(1, concept_drop=0.05), AlertState())[0][0].action == "none"


def test_replayed_windows_change_nothing_and_state_round_trips() -> None:
    policy = AlertPolicy(hysteresis_windows=2, cooldown_s=0)
    windows = [_window(1, data=True), _window(2, data=True)]
    alerts, state = _run(policy, windows)
    again, same = _run(policy, windows, state)
    assert alerts and again == [] and same == state
    restored = AlertState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert restored == state
    assert _run(policy, [_window(3)], restored)[0] == [(900.0, "data", "recovered")]


@pytest.mark.parametrize("kw", [{"hysteresis_windows": 0}, {"cooldown_s": -1}, {"retrain_on": {"data": "huge"}},
                                {"retrain_on": {"weather": "warning"}}])
def test_bad_settings_are_refused(kw: dict) -> None:
    with pytest.raises(ValueError):
        AlertPolicy(**kw)

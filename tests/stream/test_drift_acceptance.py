"""Statistical acceptance of the drift core on seeded simulated streams: false alarms and detection.

Windows are tumbling (600 s of event time, 10 panes of 60 s) with 1 000 events each, so 200
windows are 200 independent chances for a false alarm.
"""

from __future__ import annotations

import numpy as np
import pytest
from streamsim import reference_frame, stream_columns

from driftline.schemas.events import DriftAlert
from driftline.schemas.profiles import ReferenceProfile
from driftline.stream import AlertPolicy, AlertState, PaneAggregator, WindowEvaluator, WindowResult, build_reference

WINDOW_S = 600.0
PANE_S = 60.0
EVENTS_PER_WINDOW = 1000
N_FEATURES = 20
#: the false-alarm budget: at most 1 % of windows may raise a data-drift alert
FALSE_ALARM_BUDGET = 0.01


def _profile(seed: int, *, categorical: bool = False, n_numeric: int = N_FEATURES) -> ReferenceProfile:
    frame = reference_frame(np.random.default_rng(seed), n=5000, n_numeric=n_numeric, categorical=categorical)
    return build_reference(frame, model="m", model_version="1", task="regression")


def _partials(profile: ReferenceProfile, seed: int, n_windows: int, shift_from: int | None = None,
              shift: dict[str, float] | None = None, new_category_share: float = 0.0) -> list:
    rng = np.random.default_rng(seed)
    agg = PaneAggregator({"m": profile}, pane_s=PANE_S, allowed_lateness_s=0.0, source="sim")
    partials = []
    for w in range(n_windows):
        drifting = shift_from is not None and w >= shift_from
        agg.add_columns("m", stream_columns(profile, rng, n=EVENTS_PER_WINDOW, t0=w * WINDOW_S, t1=(w + 1) * WINDOW_S,
                                            first_id=w * EVENTS_PER_WINDOW, shift=shift if drifting else None,
                                            new_category_share=new_category_share if drifting else 0.0))
        partials.extend(agg.close_panes())
    # a last empty batch moves the watermark past the final window
    agg.add_columns("m", stream_columns(profile, rng, n=1, t0=n_windows * WINDOW_S, t1=n_windows * WINDOW_S + 1,
                                        first_id=10**9))
    partials.extend(agg.close_panes())
    return partials


def _run(profile: ReferenceProfile, partials: list, evaluator_kw: dict,
         policy: AlertPolicy) -> tuple[list[WindowResult], list[DriftAlert]]:
    evaluator = WindowEvaluator(profile, window_s=WINDOW_S, step_s=WINDOW_S, pane_s=PANE_S, min_samples=500,
                                **evaluator_kw)
    for partial in partials:
        evaluator.add(partial)
    results = evaluator.ready()
    state, alerts = AlertState(), []
    for result in results:
        new, state = policy.decide(result, state)
        alerts.extend(a for a in new if a.kind == "data" and a.status == "drift")
    return results, alerts


@pytest.mark.slow
def test_stationary_stream_stays_within_the_false_alarm_budget_only_with_the_guards() -> None:
    """200 stationary windows of 20 features: the guards keep data alerts within 1 % of windows.

    The setting is the most alarm-prone one: a single drifted feature is enough for data
    drift (``drift_ratio_threshold=0.05``). Guarded: Benjamini-Hochberg, minimum PSI 0.1,
    2 windows of hysteresis. Unguarded: no correction, no minimum effect, no hysteresis;
    then about 1 - 0.95**20 = 64 % of windows alarm, which must exceed the budget.
    """
    n_windows = 200
    profile = _profile(seed=11)
    partials = _partials(profile, seed=12, n_windows=n_windows)
    results, guarded = _run(profile, partials, {"correction": "bh", "min_effect": 0.1, "drift_ratio_threshold": 0.05},
                            AlertPolicy(hysteresis_windows=2, cooldown_s=0))
    _, unguarded = _run(profile, partials, {"correction": "none", "min_effect": 0.0, "drift_ratio_threshold": 0.05},
                        AlertPolicy(hysteresis_windows=1, cooldown_s=0))
    _, defaults = _run(profile, partials, {}, AlertPolicy(cooldown_s=0))
    assert len(results) == n_windows
    assert all(r.n_events == EVENTS_PER_WINDOW for r in results)
    rates = {name: len(alerts) / n_windows for name, alerts in
             (("guarded", guarded), ("unguarded", unguarded), ("defaults", defaults))}
    print(f"false-alarm rate over {n_windows} windows x {N_FEATURES} features: {rates} "
          f"(budget {FALSE_ALARM_BUDGET:.0%})")
    assert rates["guarded"] <= FALSE_ALARM_BUDGET
    assert rates["defaults"] <= FALSE_ALARM_BUDGET
    assert rates["unguarded"] > FALSE_ALARM_BUDGET


def test_half_sigma_shift_in_6_of_20_features_alerts_within_2_windows() -> None:
    """Defaults (BH, min PSI 0.1, ratio 0.3, hysteresis 2): the alert comes on the 2nd shifted window."""
    profile = _profile(seed=21)
    shifted = {f"x{i:02d}": 0.5 for i in (1, 4, 7, 10, 13, 16)}
    shift_from = 10
    partials = _partials(profile, seed=22, n_windows=14, shift_from=shift_from, shift=shifted)
    results, alerts = _run(profile, partials, {}, AlertPolicy())
    before = [r for r in results if r.window_end <= shift_from * WINDOW_S]
    after = [r for r in results if r.window_end > shift_from * WINDOW_S]
    assert not any(r.data.drifted for r in before)
    assert all(set(r.data.drifted_features) == set(shifted) for r in after)
    assert alerts, "no data-drift alert after the shift"
    first = alerts[0]
    windows_to_alert = round((first.window_end - shift_from * WINDOW_S) / WINDOW_S)
    print(f"0.5 sigma shift in 6/20 features: alert after {windows_to_alert} windows, severity {first.severity}")
    assert windows_to_alert <= 2
    assert first.window_start >= shift_from * WINDOW_S
    assert first.drift_ratio == pytest.approx(6 / 20)


def test_flood_of_new_categories_alerts() -> None:
    """40 % of a categorical feature's values are categories the reference never saw."""
    profile = _profile(seed=31, categorical=True, n_numeric=5)
    shift_from = 4
    partials = _partials(profile, seed=32, n_windows=7, shift_from=shift_from, new_category_share=0.4)
    results, alerts = _run(profile, partials, {}, AlertPolicy())
    assert not any(r.data.drifted for r in results if r.window_end <= shift_from * WINDOW_S)
    assert alerts
    first = alerts[0]
    assert first.window_end <= (shift_from + 2) * WINDOW_S
    assert first.severity == "critical"
    rate = next(r for r in first.results if r.feature == "city" and r.test == "new_category_rate")
    assert rate.drifted and rate.score == pytest.approx(0.4, abs=0.05)
    assert any("new categories: city" in s for s in first.early_signals)

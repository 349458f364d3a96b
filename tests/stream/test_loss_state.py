"""The loss monitor's checkpoint: LossMonitor.to_dict/from_dict and its place in WindowEvaluator's state."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable

import numpy as np
import orjson
import pytest
from streamsim import accuracy_drop_panes

from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream import WindowEvaluator
from driftline.stream.concept import LossMonitor

PANE_S = 60.0
DETECTORS = [("adwin", {}), ("page_hinkley", {"threshold": 20.0})]


def rising_errors(seed: int) -> np.ndarray:
    """0/1 errors whose rate rises twice: 0.1, then 0.3 from row 1000, then 0.5 from row 2000."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(1000) < rate for rate in (0.1, 0.3, 0.5)]).astype(float)


def through_json(state: dict) -> dict:
    return orjson.loads(orjson.dumps(state))


# --- LossMonitor ------------------------------------------------------------------------


@pytest.mark.parametrize(("detector", "params"), DETECTORS)
@pytest.mark.parametrize("cut", ["before_change", "after_change", "just_after_a_detection"])
def test_a_restored_monitor_detects_what_an_uninterrupted_one_does(detector: str, params: dict, cut: str) -> None:
    losses = rising_errors(42)
    straight = LossMonitor(detector, **params)
    expected = straight.update(losses)
    assert len(expected) >= 2
    at = {"before_change": 500, "after_change": 1050, "just_after_a_detection": expected[0] + 1}[cut]

    first = LossMonitor(detector, **params)
    got = first.update(losses[:at])
    restored = LossMonitor.from_dict(through_json(first.to_dict()))
    assert restored.to_dict() == first.to_dict() and restored.n == at
    got += [at + position for position in restored.update(losses[at:])]

    assert got == expected
    assert restored.to_dict() == straight.to_dict()  # the very same detector state at the end
    if detector == "adwin":
        assert restored._detector.estimation == straight._detector.estimation
    if cut == "just_after_a_detection":
        # river resets a detector on the loss after a detection: the flag is the state that matters here
        assert first.to_dict()["state"]["drift_detected"]
    else:  # what a monitor that forgot the first part would have said: the checkpoint matters
        forgetful = [at + position for position in LossMonitor(detector, **params).update(losses[at:])]
        assert forgetful != [p for p in expected if p >= at]


@pytest.mark.parametrize(("detector", "params"), DETECTORS)
def test_state_is_plain_json_even_before_the_first_loss(detector: str, params: dict) -> None:
    for n in (0, 1, 700):
        monitor = LossMonitor(detector, **params)
        monitor.update(rising_errors(7)[:n])
        state = monitor.to_dict()
        assert through_json(state) == state  # no infinity, NaN, bytes or numpy scalars
        assert LossMonitor.from_dict(state).to_dict() == state


def _adwin_state(edit: Callable[[bytes], bytes]) -> dict:
    """A valid ADWIN monitor state whose detector bytes went through ``edit``."""
    monitor = LossMonitor("adwin")
    monitor.update(rising_errors(1)[:300])
    state = monitor.to_dict()
    encoded = base64.b64encode(edit(base64.b64decode(state["state"]["adwin"]))).decode()
    return {**state, "state": {**state["state"], "adwin": encoded}}


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(_adwin_state(lambda raw: raw[:20]), id="adwin-truncated-bytes"),
        pytest.param(_adwin_state(lambda raw: bytes(8) + raw), id="adwin-shifted-bytes"),
        pytest.param(_adwin_state(lambda raw: raw + b"more"), id="adwin-extra-bytes"),
        pytest.param({**_adwin_state(bytes), "state": {"adwin": "not base64!", "drift_detected": False}},
                     id="adwin-not-base64"),
        pytest.param({"detector": "adwin", "params": {}, "n": 5, "state": {"drift_detected": False}},
                     id="adwin-missing-bytes"),
        pytest.param({"detector": "page_hinkley", "params": {"mode": "up", "threshold": 20.0}, "n": 5,
                      "state": {"mean_n": "five"}}, id="page-hinkley-bad-fields"),
    ],
)
def test_an_unreadable_state_gives_a_fresh_monitor_and_a_warning(state: dict, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="driftline.stream.concept"):
        monitor = LossMonitor.from_dict(state)
    assert any("starts afresh" in record.getMessage() for record in caplog.records)
    fresh = LossMonitor(state["detector"], **state["params"])
    assert (monitor.n, monitor.params, monitor.to_dict()) == (0, fresh.params, fresh.to_dict())
    assert monitor.update(rising_errors(42)) == fresh.update(rising_errors(42))


def test_bad_settings_in_a_state_are_refused() -> None:
    with pytest.raises(ValueError, match="detector"):
        LossMonitor.from_dict({**LossMonitor("adwin").to_dict(), "detector": "kswin"})


# --- WindowEvaluator --------------------------------------------------------------------


@pytest.fixture(scope="module")
def labeled_stream() -> tuple[ReferenceProfile, list[PanePartial]]:
    """Twenty labeled panes; the model's accuracy falls from 0.9 to 0.8 at t=600."""
    return accuracy_drop_panes(n_reference=3000, n_per_half=2000, drop_at=600.0, accuracy_after=0.8, pane_s=PANE_S,
                               tail_at=1300.0)


def _evaluator(reference: ReferenceProfile, detector: str | None) -> WindowEvaluator:
    """Windows of two panes: a detector started afresh has little history to learn from."""
    return WindowEvaluator(reference, window_s=120.0, step_s=60.0, pane_s=PANE_S, min_samples=100,
                           loss_detector=detector)


def _run(evaluator: WindowEvaluator, watermarks: list[float]) -> list[tuple[float, tuple[str, ...], int]]:
    """Per window after each watermark: its end, early signals and the losses the monitor has seen by then."""
    out = []
    for watermark in watermarks:
        for result in evaluator.ready(watermark=watermark):
            out.append((result.window_end, result.early_signals, evaluator.to_dict()["loss_monitor"]["n"]))
    return out


def _checkpointed(reference: ReferenceProfile, partials: list[PanePartial], detector: str, checkpoint: float) -> dict:
    """The state, through JSON, of an evaluator that has evaluated every window up to ``checkpoint``."""
    evaluator = _evaluator(reference, detector)
    for partial in partials:
        evaluator.add(partial)
    _run(evaluator, [checkpoint])
    return through_json(evaluator.to_dict())


def _loss_signals(run: list[tuple[float, tuple[str, ...], int]]) -> list[tuple[float, str]]:
    return [(end, signal) for end, signals, _ in run for signal in signals if signal.startswith("concept:")]


LATER = [660.0, 720.0, 900.0, 1200.0]


@pytest.mark.parametrize("detector", ["adwin", "page_hinkley"])
@pytest.mark.parametrize("checkpoint", [480.0, 600.0])
def test_a_restored_evaluator_gives_the_early_signals_of_an_uninterrupted_one(
    labeled_stream: tuple[ReferenceProfile, list[PanePartial]], detector: str, checkpoint: float
) -> None:
    reference, partials = labeled_stream
    straight = _evaluator(reference, detector)
    for partial in partials:
        straight.add(partial)
    _run(straight, [checkpoint])
    expected = _run(straight, LATER)
    assert _loss_signals(expected)

    state = _checkpointed(reference, partials, detector, checkpoint)
    assert state["losses_fed_below"] == round(checkpoint / PANE_S) and state["loss_monitor"]["n"] > 0
    restored = _evaluator(reference, detector)
    restored.load_dict(state)
    assert restored.to_dict() == state
    # equal early signals, and equal losses seen: the panes fed before the checkpoint are not fed again
    assert _run(restored, LATER) == expected

    legacy = _evaluator(reference, detector)
    legacy.load_dict({k: v for k, v in state.items() if k not in ("loss_monitor", "losses_fed_below")})
    # a fresh monitor learns the panes still held, as before: more losses than the window's new pane
    assert _run(legacy, LATER)[0][2] > expected[0][2] - state["loss_monitor"]["n"]


@pytest.mark.parametrize("detector", ["adwin", "page_hinkley"])
def test_without_the_monitor_state_a_restored_evaluator_gives_other_early_signals(
    labeled_stream: tuple[ReferenceProfile, list[PanePartial]], detector: str
) -> None:
    """Why the checkpoint matters: checkpointed at the change, a fresh detector misses or delays the rise."""
    reference, partials = labeled_stream
    state = _checkpointed(reference, partials, detector, 600.0)
    restored, legacy = _evaluator(reference, detector), _evaluator(reference, detector)
    restored.load_dict(state)
    legacy.load_dict({k: v for k, v in state.items() if k not in ("loss_monitor", "losses_fed_below")})
    assert _loss_signals(_run(restored, LATER)) != _loss_signals(_run(legacy, LATER))


def test_states_without_the_monitor_or_for_another_detector_load_with_a_fresh_one(
    labeled_stream: tuple[ReferenceProfile, list[PanePartial]],
) -> None:
    reference, partials = labeled_stream
    adwin = _evaluator(reference, "adwin")
    for partial in partials:
        adwin.add(partial)
    adwin.ready(watermark=600.0)
    state = through_json(adwin.to_dict())
    old = {k: v for k, v in state.items() if k not in ("loss_monitor", "losses_fed_below")}
    for detector, loaded in [("adwin", old), ("page_hinkley", state), ("adwin", {**state, "loss_monitor": None})]:
        evaluator = _evaluator(reference, detector)
        evaluator.load_dict(loaded)
        got = evaluator.to_dict()
        assert got["loss_monitor"] == LossMonitor(detector).to_dict() and got["losses_fed_below"] is None
        assert got["panes"] == state["panes"]
    off = _evaluator(reference, None)
    off.load_dict(state)
    assert (off.to_dict()["loss_monitor"], off.to_dict()["losses_fed_below"]) == (None, None)

"""`build_window_report` on seeded pane partials: the shifted features, the window chosen, the errors."""

from __future__ import annotations

import doctest

import pytest
import typer
from report_stream import MODEL, SETTINGS, SHIFTED, partials, reference

from driftline.consumers.monitor.handler import MonitorHandler
from driftline.consumers.report import builder
from driftline.consumers.report.builder import ReportError, build_window_report, source_watermark
from driftline.consumers.report.cli import parse_window_end
from driftline.schemas.profiles import PanePartial, ReferenceProfile


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return reference()


@pytest.fixture(scope="module")
def stream(profile: ReferenceProfile) -> list[PanePartial]:
    return partials(profile)


def test_the_last_complete_window_names_the_shifted_features(profile, stream) -> None:
    result = build_window_report(profile, stream, SETTINGS)
    # The sources have closed panes up to 1140 s: [900, 1200) is not complete, [600, 900) is, after the shift.
    assert (result.window_start, result.window_end) == (600.0, 900.0)
    assert result.data.drifted_features == SHIFTED
    assert set(result.histograms) == {"x0", "x1", "x2", "x3", "city"}
    assert result.reference_id == profile.reference_id


def test_a_window_before_the_shift_has_no_drift(profile, stream) -> None:
    result = build_window_report(profile, stream, SETTINGS, window_end=600.0)
    assert (result.window_start, result.window_end) == (300.0, 600.0)
    assert result.data.sufficient and result.data.drifted_features == ()


def test_partials_of_other_models_and_replayed_panes_change_nothing(profile, stream) -> None:
    other = partials(reference(model="fraud"), seed=5)
    result = build_window_report(profile, [*other, *stream, *stream[:10]], SETTINGS)
    plain = build_window_report(profile, stream, SETTINGS)
    assert result.n_events == plain.n_events
    assert [r.p_adjusted for r in result.data.primary()] == [r.p_adjusted for r in plain.data.primary()]


def test_a_lagging_source_holds_the_last_complete_window_back(profile, stream) -> None:
    held_back = [p for p in stream if p.source == "ingest-0" or p.pane_start < 600.0]
    assert source_watermark(held_back) == 600.0
    assert build_window_report(profile, held_back, SETTINGS).window_end == 600.0


def test_the_report_judges_a_window_as_the_monitor_does(profile, stream) -> None:
    sliding = SETTINGS.model_copy(update={"step_s": 120.0})
    handler = MonitorHandler(sliding, {MODEL: profile}, n_sources=2)
    by_end = {e.result.window_end: e.result for e in handler.handle(stream).evaluations}
    result = build_window_report(profile, stream, sliding)
    monitor = by_end[result.window_end]
    assert result.window_end == max(by_end) == 1080.0
    assert result.data.drifted_features == monitor.data.drifted_features == SHIFTED
    assert [(r.feature, r.test) for r in result.data.results] == [(r.feature, r.test) for r in monitor.data.results]
    assert [r.statistic for r in result.data.results] == pytest.approx([r.statistic for r in monitor.data.results])
    assert [r.p_adjusted for r in result.data.primary()] == pytest.approx(
        [r.p_adjusted for r in monitor.data.primary()])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other model", "no pane partials for model 'churn'"),
        ("other reference", "no pane partials of reference"),
        ("misaligned", "is not a multiple of monitor.step_s=300"),
        ("incomplete", "the window ending 1970-01-01T00:20:00Z is not complete"),
        ("empty", "no events of model 'churn' in the window"),
        ("too early", "no complete window with events"),
    ],
)
def test_clear_errors(profile, stream, case: str, message: str) -> None:
    window_end = {"misaligned": 700.0, "incomplete": 1200.0, "empty": 0.0}.get(case)
    given = {
        "other model": partials(reference(model="fraud"), until_s=400.0),
        "other reference": [p.model_copy(update={"reference_id": "old"}) for p in stream],
        "too early": [p for p in stream if p.pane_start < 240.0],
    }.get(case, stream)
    with pytest.raises(ReportError, match=message):
        build_window_report(profile, given, SETTINGS, window_end=window_end)


def test_the_builder_example_runs() -> None:
    assert doctest.testmod(builder).failed == 0


@pytest.mark.parametrize(
    "text", ["600", "600.0", "1970-01-01T00:10:00Z", "1970-01-01T00:10:00", "1970-01-01 01:10+01:00"])
def test_window_end_is_epoch_seconds_or_iso_8601(text: str) -> None:
    assert parse_window_end(text) == 600.0


@pytest.mark.parametrize(("text", "message"), [("yesterday", "neither epoch seconds nor an ISO 8601 time"),
                                               ("nan", "not a finite time"), ("inf", "not a finite time")])
def test_a_bad_window_end_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        parse_window_end(text)

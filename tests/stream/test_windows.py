"""Stage 2: window maths, each window exactly once, late and foreign partials, persistence, results."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamsim import accuracy_drop_panes, reference_frame, stream_columns

from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream import PaneAggregator, WindowEvaluator, build_reference
from driftline.stream.windows import window_ends

PANE_S = 60.0


@pytest.mark.parametrize(
    ("pane_start", "window_s", "step_s", "expected"),
    [
        (0.0, 300.0, 300.0, [300.0]),  # tumbling: one window
        (240.0, 300.0, 300.0, [300.0]),
        (300.0, 300.0, 300.0, [600.0]),
        (0.0, 300.0, 60.0, [60.0, 120.0, 180.0, 240.0, 300.0]),  # sliding every pane
        (120.0, 300.0, 120.0, [240.0, 360.0]),
        (180.0, 3600.0, 300.0, [300.0 * k for k in range(1, 13)]),  # 1 h every 5 min: 12 windows
        (-60.0, 120.0, 120.0, [0.0]),
    ],
)
def test_window_ends_table(pane_start: float, window_s: float, step_s: float, expected: list[float]) -> None:
    ends = window_ends(pane_start, pane_s=PANE_S, window_s=window_s, step_s=step_s)
    assert ends == expected
    assert all(end - window_s <= pane_start and pane_start + PANE_S <= end for end in ends)


@settings(max_examples=80, deadline=None)
@given(st.sets(st.integers(-20, 60), min_size=1, max_size=12), st.sampled_from([(300.0, 120.0), (600.0, 300.0),
       (180.0, 180.0), (3600.0, 300.0)]), st.lists(st.integers(-10, 80), min_size=1, max_size=5))
def test_windows_due_are_every_window_ending_over_a_pane(panes: set[int], shape: tuple[float, float],
                                                         watermarks: list[int]) -> None:
    """Whatever the panes (sparse, negative) and watermarks: each window holding a pane, once, in order."""
    window_s, step_s = shape
    frame = reference_frame(np.random.default_rng(1), n=200, n_numeric=1)
    profile = build_reference(frame, model="m", model_version="1", task="regression")
    evaluator = WindowEvaluator(profile, window_s=window_s, step_s=step_s, pane_s=PANE_S)
    for index in sorted(panes):  # heartbeats: windows too small to test, but due all the same
        evaluator.add(PanePartial(model="m", model_version="1", reference_id=profile.reference_id, source="s",
                                  pane_start=index * PANE_S, pane_s=PANE_S, n_events=0))
    got = [r.window_end for w in sorted(watermarks) for r in evaluator.ready(watermark=w * PANE_S)]
    last = max(watermarks) * PANE_S
    expected = sorted({end for index in panes for end in window_ends(index * PANE_S, pane_s=PANE_S, window_s=window_s,
                                                                     step_s=step_s) if end <= last})
    assert got == expected


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    frame = reference_frame(np.random.default_rng(40), n=3000, n_numeric=4, categorical=True)
    return build_reference(frame, model="m", model_version="1", task="regression")


def _partials(profile: ReferenceProfile, *, n_panes: int, sources: int = 3, seed: int = 41) -> list[PanePartial]:
    """Partials of several sources over ``n_panes`` panes, 100 events per source and pane."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(sources):
        agg = PaneAggregator({"m": profile}, pane_s=PANE_S, allowed_lateness_s=0.0, source=f"src-{s}")
        for p in range(n_panes):
            agg.add_columns("m", stream_columns(profile, rng, n=100, t0=p * PANE_S, t1=(p + 1) * PANE_S,
                                                first_id=(s * n_panes + p) * 100))
        agg.add_columns("m", stream_columns(profile, rng, n=1, t0=n_panes * PANE_S, t1=n_panes * PANE_S + 1,
                                            first_id=10**8 + s))
        out.extend(agg.close_panes())
    return out


def _evaluator(profile: ReferenceProfile, **kw) -> WindowEvaluator:
    return WindowEvaluator(profile, window_s=kw.pop("window_s", 300.0), step_s=kw.pop("step_s", 120.0), pane_s=PANE_S,
                           min_samples=kw.pop("min_samples", 100), **kw)


def _summary(results) -> list[tuple]:
    return [(r.window_start, r.window_end, r.n_events, r.data.drift_ratio,
             tuple(round(f.p_value, 12) for f in r.data.primary())) for r in results]


def test_each_window_once_under_shuffled_partials_and_random_watermarks(profile: ReferenceProfile) -> None:
    partials = _partials(profile, n_panes=20)
    ordered = _evaluator(profile)
    for partial in sorted(partials, key=lambda p: p.pane_start):
        ordered.add(partial)
    expected = ordered.ready(watermark=20 * PANE_S)
    assert [r.window_end for r in expected] == [120.0 * k for k in range(1, 11)]
    assert [r.n_events for r in expected][:3] == [600, 1200, 1500]  # windows fill up, then 5 panes x 3 sources

    rng = np.random.default_rng(7)
    shuffled = _evaluator(profile)
    results = []
    order = rng.permutation(len(partials))
    # the watermark only passes a pane once every source has sent it (as stage 2 does)
    for i in order:
        shuffled.add(partials[i])
    for wm in [*sorted(rng.uniform(0, 20 * PANE_S, size=8)), 20 * PANE_S, 20 * PANE_S]:
        results.extend(shuffled.ready(watermark=float(wm)))
    assert _summary(results) == _summary(expected)


@pytest.mark.parametrize(("window_s", "step_s"), [(300.0, 120.0), (600.0, 300.0), (420.0, 420.0)])
def test_windows_merged_from_cached_blocks_equal_windows_of_all_panes(profile: ReferenceProfile, window_s: float,
                                                                       step_s: float) -> None:
    partials = sorted(_partials(profile, n_panes=24), key=lambda p: p.pane_start)
    stepwise = _evaluator(profile, window_s=window_s, step_s=step_s)  # windows one by one: blocks are reused
    results = []
    for partial in partials:
        stepwise.add(partial)
        results.extend(stepwise.ready(watermark=partial.pane_start))
    results.extend(stepwise.ready(watermark=24 * PANE_S))
    for result in results:  # each window again, on a fresh evaluator holding just its own panes
        alone = _evaluator(profile, window_s=window_s, step_s=step_s)
        for partial in partials:
            if result.window_start <= partial.pane_start < result.window_end:
                alone.add(partial)
        expected = alone.ready(watermark=result.window_end)[-1]  # earlier windows hold some of its panes too
        assert expected.window_end == result.window_end and repr(result) == repr(expected)


def test_late_and_foreign_partials_are_counted_and_ignored(profile: ReferenceProfile) -> None:
    partials = _partials(profile, n_panes=6, sources=1)
    evaluator = _evaluator(profile, window_s=120.0, step_s=120.0)
    assert all(evaluator.add(p) for p in partials[:4])
    assert [r.window_end for r in evaluator.ready(watermark=240.0)] == [120.0, 240.0]
    late = partials[1].model_copy(update={"source": "slow"})
    assert not evaluator.add(late)
    assert evaluator.n_late_partials == 1
    assert not evaluator.add(partials[4].model_copy(update={"reference_id": "other"}))
    assert evaluator.n_foreign == 1
    assert evaluator.ready(watermark=240.0) == []  # nothing twice


def test_default_watermark_is_latest_pane_end_minus_lateness(profile: ReferenceProfile) -> None:
    evaluator = _evaluator(profile, window_s=120.0, step_s=120.0, allowed_lateness_s=60.0)
    for partial in _partials(profile, n_panes=5, sources=1):
        evaluator.add(partial)
    assert evaluator.default_watermark == 5 * PANE_S - 60.0
    assert [r.window_end for r in evaluator.ready()] == [120.0, 240.0]


def test_small_windows_are_not_tested(profile: ReferenceProfile) -> None:
    evaluator = _evaluator(profile, window_s=120.0, step_s=120.0, min_samples=1000)
    for partial in _partials(profile, n_panes=2, sources=1):
        evaluator.add(partial)
    (result,) = evaluator.ready(watermark=120.0)
    assert not result.data.sufficient and result.data.results == () and result.prediction == ()
    assert result.n_events == 200


def test_result_holds_every_test_and_the_histograms(profile: ReferenceProfile) -> None:
    evaluator = _evaluator(profile, window_s=300.0, step_s=300.0)
    for partial in _partials(profile, n_panes=5):
        evaluator.add(partial)
    (result,) = evaluator.ready(watermark=300.0)
    tests = {(r.feature, r.test) for r in result.data.results}
    assert {("x01", t) for t in ("ks", "psi", "jensen_shannon", "wasserstein")} <= tests
    assert {("city", t) for t in ("chi2", "psi", "jensen_shannon", "new_category_rate")} <= tests
    assert all(r.p_adjusted is not None for r in result.data.primary())
    assert {r.test for r in result.prediction} >= {"ks", "psi"}
    assert result.data.n_tested == 5 and not result.data.drifted
    histogram = result.histograms["city"]
    assert histogram.labels[-2:] == ("other", "unseen") and sum(histogram.current_counts) == 1500
    assert len(result.histograms["x01"].labels) == len(profile.features["x01"].counts)
    assert result.n_reference == profile.n_samples and result.correction == "bh"


def test_state_round_trip_mid_stream(profile: ReferenceProfile) -> None:
    partials = sorted(_partials(profile, n_panes=12), key=lambda p: p.pane_start)
    straight = _evaluator(profile)
    for p in partials:
        straight.add(p)
    expected = straight.ready(watermark=12 * PANE_S)

    first = _evaluator(profile)
    for p in partials[:15]:
        first.add(p)
    got = first.ready(watermark=partials[15].pane_start)
    restored = _evaluator(profile)
    restored.load_dict(orjson.loads(orjson.dumps(first.to_dict())))
    for p in partials[15:]:
        restored.add(p)
    got += restored.ready(watermark=12 * PANE_S)
    assert _summary(got) == _summary(expected)
    with pytest.raises(ValueError, match="reference"):
        _evaluator(profile).load_dict({**first.to_dict(), "reference_id": "other"})


def test_concept_results_come_from_labeled_panes() -> None:
    reference, partials = accuracy_drop_panes(n_reference=4000, n_per_half=3000, drop_at=300.0, accuracy_after=0.8,
                                              pane_s=PANE_S, tail_at=700.0)
    evaluator = WindowEvaluator(reference, window_s=300.0, step_s=300.0, pane_s=PANE_S, min_samples=200)
    for partial in partials:
        evaluator.add(partial)
    stable, dropped = evaluator.ready(watermark=600.0)
    assert stable.n_labeled == 3000 and not stable.concept_drifted
    assert dropped.concept_drifted
    accuracy = next(m for m in dropped.concept if m.metric == "accuracy")
    assert accuracy.dropped and accuracy.current == pytest.approx(0.8, abs=0.03)
    # the loss monitor (ADWIN on the panes' per-row losses, in pane order) fires after the change only
    assert not any(s.startswith("concept:") for s in stable.early_signals)
    assert any(s.startswith("concept: adwin saw the loss rise") for s in dropped.early_signals)


@pytest.mark.parametrize("kw", [{"window_s": 90.0}, {"step_s": 600.0}, {"alpha": 1.5}, {"correction": "holm"}])
def test_bad_settings_are_refused(profile: ReferenceProfile, kw: dict) -> None:
    with pytest.raises(ValueError):
        _evaluator(profile, **kw)


def test_window_statistics_equal_scipy_on_the_merged_sample(profile: ReferenceProfile) -> None:
    """KS and Wasserstein of a window are scipy's on the window's sample; chi-square on its counts."""
    from scipy import stats

    from driftline.stream.sample import Sample

    partials = [p for p in _partials(profile, n_panes=5) if p.pane_start < 300]
    evaluator = _evaluator(profile, window_s=300.0, step_s=300.0)
    for partial in partials:
        evaluator.add(partial)
    (result,) = evaluator.ready(watermark=300.0)
    window_sample = Sample.merge_all([Sample.from_data(p.sketches()["x01"].sample) for p in partials], capacity=2000)
    reference_sample = np.asarray(profile.features["x01"].sample)
    ks = next(r for r in result.data.results if r.feature == "x01" and r.test == "ks")
    expected = stats.ks_2samp(reference_sample, window_sample.values, method="asymp")
    assert ks.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert ks.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert ks.n_current == len(window_sample.values) == 1500
    wasserstein = next(r for r in result.data.results if r.feature == "x01" and r.test == "wasserstein")
    assert wasserstein.statistic == pytest.approx(stats.wasserstein_distance(reference_sample, window_sample.values))
    chi2 = next(r for r in result.data.results if r.feature == "city" and r.test == "chi2")
    current = np.sum([p.features["city"].counts for p in partials], axis=0)
    table = np.vstack([np.append(profile.features["city"].counts, 0), current])
    table = table[:, table.sum(axis=0) > 0]
    assert chi2.statistic == stats.chi2_contingency(table, correction=False).statistic


def test_a_feature_turning_null_makes_the_window_drift_and_its_test_is_scipys(profile: ReferenceProfile) -> None:
    from scipy import stats

    rng = np.random.default_rng(60)
    agg = PaneAggregator({"m": profile}, pane_s=PANE_S, allowed_lateness_s=0.0, source="s")
    for p in range(10):
        columns = stream_columns(profile, rng, n=200, t0=p * PANE_S, t1=(p + 1) * PANE_S, first_id=p * 200)
        if p >= 5:
            columns.features["x02"][:120] = np.nan  # 60 % of x02 is null from pane 5 on
            columns.features["city"][:10] = None  # 5 %: below the increase threshold
        agg.add_columns("m", columns)
    agg.add_columns("m", stream_columns(profile, rng, n=1, t0=700, t1=701, first_id=10**6))
    evaluator = _evaluator(profile, window_s=300.0, step_s=300.0)
    for partial in agg.close_panes():
        evaluator.add(partial)
    before, after = evaluator.ready(watermark=600.0)
    assert not before.data.drifted and before.data.null_features == ()
    assert after.data.drifted and after.data.null_features == ("x02",)
    null_x02 = next(r for r in after.data.results if r.feature == "x02" and r.test == "null_rate")
    x02 = profile.features["x02"]
    table = np.array([[x02.n, x02.n_null], [400, 600]])
    expected = stats.chi2_contingency(table, correction=False)
    assert null_x02.statistic == pytest.approx(expected.statistic)
    assert null_x02.p_value == pytest.approx(expected.pvalue)
    assert null_x02.score == pytest.approx(0.6) and null_x02.n_current == 1000
    assert any(s.startswith("nulls: x02") for s in after.early_signals)
    city = next(r for r in after.data.results if r.feature == "city" and r.test == "null_rate")
    assert not city.drifted and city.score == pytest.approx(0.05)


def test_classifier_scores_drift_while_the_classes_do_not() -> None:
    """KS on P(positive) catches a model growing unsure; chi-square on the classes sees nothing."""
    from streamsim import scored_predictions

    from driftline.stream.reference import events_to_frame

    rng = np.random.default_rng(70)
    reference = build_reference(events_to_frame(scored_predictions(rng, n=3000, t0=0, t1=1)), model="m",
                                model_version="1", task="classification")
    assert reference.prediction_score is not None and reference.prediction_score.min > 0.0
    agg = PaneAggregator({"m": reference}, pane_s=PANE_S, allowed_lateness_s=0.0, source="s")
    agg.add_predictions(scored_predictions(rng, n=1500, t0=0, t1=300))
    agg.add_predictions(scored_predictions(rng, n=1500, t0=300, t1=600, confidence=0.5, first_id=10**6))
    agg.add_predictions(scored_predictions(rng, n=1, t0=700, t1=701, first_id=10**7))
    evaluator = WindowEvaluator(reference, window_s=300.0, step_s=300.0, pane_s=PANE_S, min_samples=200)
    for partial in agg.close_panes():
        evaluator.add(partial)
    stable, unsure = evaluator.ready(watermark=600.0)
    assert not stable.prediction_drifted

    def primary(result, feature):
        return next(r for r in result.prediction if r.feature == feature and r.test in ("ks", "chi2"))

    assert primary(unsure, "prediction").test == "chi2" and not primary(unsure, "prediction").drifted
    score = primary(unsure, "prediction_score")
    assert score.test == "ks" and score.drifted and score.p_adjusted == pytest.approx(min(2 * score.p_value, 1.0))
    assert unsure.prediction_drifted


def test_partials_with_a_numeric_block_give_the_results_of_their_per_feature_form(profile: ReferenceProfile) -> None:
    """Stage 1 sends the numeric sketches as one block; unpacked (or in another order) they give the same windows."""
    partials = _partials(profile, n_panes=8)
    assert all(p.numeric is not None for p in partials if p.n_events)

    def unpacked(p: PanePartial) -> PanePartial:
        return p.model_copy(update={"numeric": None, "features": p.sketches()})

    def reordered(p: PanePartial) -> PanePartial:
        if p.numeric is None:
            return p
        block = p.numeric.sketches()
        names = list(block)[::-1]
        first, rest = block[names[0]], {name: block[name] for name in names[1:]}
        moved = p.numeric.model_copy(update={
            "features": names[1:], "counts": [s.counts for s in rest.values()], "n": [s.n for s in rest.values()],
            "n_null": [s.n_null for s in rest.values()], "mean": [s.mean for s in rest.values()],
            "m2": [s.m2 for s in rest.values()], "min": [s.min for s in rest.values()],
            "max": [s.max for s in rest.values()],
            "values": [v for s in rest.values() for v in s.sample.values]})
        return p.model_copy(update={"numeric": moved, "features": {**p.features, names[0]: first}})

    runs = []
    for form in (lambda p: p, unpacked, reordered):
        evaluator = _evaluator(profile)
        for partial in partials:
            evaluator.add(form(partial))
        runs.append([repr(r) for r in evaluator.ready(watermark=8 * PANE_S)])
    assert runs[0] and runs[0] == runs[1] == runs[2]

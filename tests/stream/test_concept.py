"""LabeledSketch contract, ConceptDriftTest verdicts on seeded streams, LossMonitor pinned detections."""

from __future__ import annotations

import functools
import itertools
import pickle

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import drift as river_drift
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from driftline.stream.concept import (
    ConceptDriftTest,
    LabeledSketch,
    LossMonitor,
    _auc_replicates,
    _confusion_metrics,
    _resample_rows,
)
from driftline.stream.performance import compute_metrics, label_metrics

# --- seeded data ------------------------------------------------------------------------


def classification_rows(seed: int, n: int, accuracy: float = 0.90) -> dict[str, np.ndarray]:
    """Binary rows whose predictions are right with probability ``accuracy``; calibrated-ish scores."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(["fraud", "legit"], size=n, p=[0.4, 0.6])
    right = rng.random(n) < accuracy
    predicted = np.where(right, truth, np.where(truth == "legit", "fraud", "legit"))
    confidence = rng.uniform(0.5, 1.0, size=n)
    scores = np.where(predicted == "legit", confidence, 1.0 - confidence)
    return {"y_true": truth, "y_pred": predicted, "scores": scores}


def regression_rows(seed: int, n: int, noise: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(50.0, 10.0, size=n)
    return {"y_true": truth, "y_pred": truth + rng.normal(0.0, noise, size=n)}


def ranking_rows(seed: int, n_groups: int, noise: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), 8)
    strength = np.tile(np.arange(8, dtype=float)[::-1], n_groups)
    relevance = np.maximum(strength - 4.0, 0.0)  # the first three places are relevant: 3, 2, 1
    return {"y_true": relevance, "y_pred": strength + rng.normal(0.0, noise * 3, size=groups.size), "groups": groups}


ROWS = {
    "classification": lambda seed, n: classification_rows(seed, n),
    "regression": lambda seed, n: regression_rows(seed, n),
    "ranking": lambda seed, n: ranking_rows(seed, n // 8),
}


def sketch_of(task: str, rows: dict[str, np.ndarray], **settings: int) -> LabeledSketch:
    sketch = LabeledSketch.empty(task, **settings)
    sketch.update(rows["y_true"], rows["y_pred"], scores=rows.get("scores"), groups=rows.get("groups"))
    return sketch


def split(rows: dict[str, np.ndarray], *bounds: int) -> list[dict[str, np.ndarray]]:
    edges = [0, *bounds, len(rows["y_true"])]
    return [{k: v[a:b] for k, v in rows.items()} for a, b in itertools.pairwise(edges)]


# --- LabeledSketch ----------------------------------------------------------------------


@pytest.mark.parametrize("task", list(ROWS))
def test_sketch_metrics_equal_compute_metrics(task: str) -> None:
    rows = ROWS[task](0, 1600)
    sketch = sketch_of(task, rows)
    expected = compute_metrics(task, rows["y_true"], rows["y_pred"], scores=rows.get("scores"),
                               groups=rows.get("groups"))
    assert sketch.metrics() == pytest.approx(expected)
    assert sketch.n == (200 if task == "ranking" else 1600)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), n_labels=st.integers(1, 4),
       positive=st.sampled_from([None, "a", "z"]), decimals=st.integers(0, 2))
def test_sketch_classification_metrics_equal_sklearns(
    seed: int, n: int, n_labels: int, positive: str | None, decimals: int
) -> None:
    """Metrics from confusion counts and the Mann-Whitney count equal `label_metrics` and sklearn's ROC AUC.

    Which metrics are defined as well as their values: binary and multi-class, tied scores,
    and a configured positive class that no row has.
    """
    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c", "d"][:n_labels]
    truth, predicted = rng.choice(labels, size=n), rng.choice(labels, size=n)
    scores = np.round(rng.random(n), decimals)
    sketch = LabeledSketch.empty("classification", capacity=n, positive_label=positive)
    sketch.update(truth, predicted, scores=scores)
    expected = compute_metrics("classification", truth, predicted, scores=scores, positive_label=positive)
    assert sketch.metrics() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("correct", "n"), [(0, 50), (1, 50), (37, 50), (49, 50), (50, 50), (4707, 6000)])
@pytest.mark.parametrize("level", [0.05, 0.05 / 6])
def test_accuracy_interval_is_binomtests_exact_interval(correct: int, n: int, level: float) -> None:
    truth = np.array(["yes"] * n)
    sketch = sketch_of("classification", {"y_true": truth, "y_pred": np.where(np.arange(n) < correct, "yes", "no")})
    evidence = ConceptDriftTest._binomial_evidence(sketch, 0.9, level)
    exact = binomtest(correct, n).proportion_ci(confidence_level=1.0 - 2.0 * level, method="exact")
    assert (evidence["ci_low"], evidence["ci_high"]) == pytest.approx((exact.low, exact.high), abs=1e-10)
    assert evidence["p_value"] == binomtest(correct, n, 0.9, alternative="less").pvalue


@pytest.mark.parametrize("task", list(ROWS))
def test_merged_panes_equal_one_pass(task: str) -> None:
    rows = ROWS[task](1, 2400)
    panes = [sketch_of(task, part, capacity=500) for part in split(rows, 800, 1600)]
    merged = panes[0].merge(panes[1]).merge(panes[2])
    whole = sketch_of(task, rows, capacity=500)
    exact = {k: v for k, v in whole.metrics().items() if k != "roc_auc"}  # roc_auc comes from the sample
    assert {k: v for k, v in merged.metrics().items() if k != "roc_auc"} == pytest.approx(exact)
    assert merged.n == whole.n


@pytest.mark.parametrize("task", list(ROWS))
def test_merge_is_associative_and_commutative(task: str) -> None:
    a, b, c = (sketch_of(task, part, capacity=300) for part in split(ROWS[task](2, 2400), 400, 1000))
    assert a.merge(b).to_dict() == b.merge(a).to_dict()
    left, right = a.merge(b).merge(c).to_dict(), a.merge(b.merge(c)).to_dict()
    assert left["sample"] == right["sample"]
    assert (left["n"], left.get("confusion")) == (right["n"], right.get("confusion"))
    assert a.merge(b).merge(c).metrics() == pytest.approx(a.merge(b.merge(c)).metrics())


@pytest.mark.parametrize("task", list(ROWS))
def test_to_dict_round_trips_through_json(task: str) -> None:
    sketch = sketch_of(task, ROWS[task](3, 1200), capacity=256)
    restored = LabeledSketch.from_dict(orjson.loads(orjson.dumps(sketch.to_dict())))
    assert restored.to_dict() == sketch.to_dict()
    assert restored.metrics() == sketch.metrics()
    assert pickle.loads(pickle.dumps(sketch)).to_dict() == sketch.to_dict()
    for name, column in sketch._sample.items():  # the same arrays, string widths included
        assert restored._sample[name].dtype == column.dtype
        np.testing.assert_array_equal(restored._sample[name], column)


@pytest.mark.parametrize("labels", [[], ["a"], ["yes", "no"], ["ja", "née", "𝔁"]])
def test_a_restored_sample_keeps_its_labels_as_numpy_types_them(labels: list[str]) -> None:
    sketch = LabeledSketch.empty("classification")
    if labels:
        sketch.update(np.array(labels * 3), np.array(labels[::-1] * 3))
    restored = LabeledSketch.from_dict(orjson.loads(orjson.dumps(sketch.to_dict())))
    for name in ("true", "pred"):
        assert restored._sample[name].dtype == np.asarray(sketch.to_dict()["sample"][name], dtype=str).dtype
        np.testing.assert_array_equal(restored._sample[name], sketch._sample[name])


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 600), min_size=1, max_size=5),
    capacity=st.integers(1, 200),
    seed=st.integers(0, 2**32),
)
def test_any_split_merged_in_any_order_equals_one_pass(cuts: list[int], capacity: int, seed: int) -> None:
    rows = classification_rows(seed % 1000, 600)
    parts = [sketch_of("classification", part, capacity=capacity, seed=seed) for part in split(rows, *sorted(cuts))]
    forward, backward = parts[0], parts[-1]
    for part in parts[1:]:
        forward = forward.merge(part)
    for part in reversed(parts[:-1]):
        backward = part.merge(backward)
    assert forward.to_dict()["confusion"] == sketch_of("classification", rows).to_dict()["confusion"]
    assert forward.to_dict()["sample"] == backward.to_dict()["sample"]
    assert len(forward.sample()["true"]) == min(capacity, 600)


def test_missing_scores_survive_the_round_trip_as_null() -> None:
    rows = classification_rows(4, 50)
    sketch = LabeledSketch.empty("classification")
    sketch.update(rows["y_true"], rows["y_pred"])
    state = sketch.to_dict()
    assert state["sample"]["score"] == [None] * 50
    assert "log_loss" not in LabeledSketch.from_dict(orjson.loads(orjson.dumps(state))).metrics()


def test_same_input_and_seed_give_the_same_sketch_and_another_seed_another_sample() -> None:
    rows = regression_rows(5, 3000)
    assert sketch_of("regression", rows, seed=1).to_dict() == sketch_of("regression", rows, seed=1).to_dict()
    assert sketch_of("regression", rows, seed=1).to_dict()["sample"] != sketch_of("regression", rows, seed=2).to_dict()[
        "sample"
    ]


def test_update_leaves_its_inputs_untouched() -> None:
    rows = regression_rows(6, 500)
    before = {k: v.copy() for k, v in rows.items()}
    sketch_of("regression", rows, capacity=100)
    assert all(np.array_equal(rows[k], before[k]) for k in rows)


def test_merged_sample_is_uniform_over_unequal_panes() -> None:
    """A pane with 10 % of the rows holds about 10 % of the merged sample (weighted by counts)."""
    shares = []
    for seed in range(20):
        small = LabeledSketch.empty("regression", capacity=1000, seed=seed)
        small.update(np.zeros(500), np.zeros(500))  # rows of the small pane are marked by y_true == 0
        large = LabeledSketch.empty("regression", capacity=1000, seed=seed)
        large.update(np.ones(4500), np.ones(4500))
        merged_sample = small.merge(large).sample()["true"]
        assert merged_sample.size == 1000
        shares.append(np.mean(merged_sample == 0))
    assert np.mean(shares) == pytest.approx(0.10, abs=0.01)


def test_sample_holds_every_row_while_under_capacity() -> None:
    rows = classification_rows(7, 300)
    sample = sketch_of("classification", rows, capacity=300).sample()
    assert sorted(sample["score"]) == sorted(rows["scores"])


@pytest.mark.parametrize("labels", [["no", "yes"], ["a", "b", "c", "d"]], ids=["binary", "multiclass"])
def test_vectorised_confusion_metrics_equal_label_metrics(labels: list[str]) -> None:
    rng = np.random.default_rng(8)
    truth = rng.choice(labels, size=700)
    predicted = np.where(rng.random(700) < 0.6, truth, rng.choice(labels, size=700))
    sketch = sketch_of("classification", {"y_true": truth, "y_pred": predicted})
    seen, counts = sketch.confusion_matrix()
    positive = sketch.positive()
    vectorised = _confusion_metrics(counts[None], seen.index(positive) if positive else None)
    assert {k: float(v[0]) for k, v in vectorised.items()} == pytest.approx(label_metrics(truth, predicted))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 120), decimals=st.sampled_from([0, 1, 2, 3, 12]))
def test_bootstrap_auc_equals_roc_auc_of_each_resample(seed: int, size: int, decimals: int) -> None:
    """Counting draws per distinct score gives each resample's mid-rank ROC AUC (ties or none), NaN for one class."""
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(size), decimals)
    is_positive = rng.random(size) < rng.random()
    rows = rng.integers(0, size, size=(8, size))
    got = _auc_replicates(is_positive, scores, rows)
    for resample, value in zip(rows, got, strict=True):
        truth = is_positive[resample]
        if truth.all() or not truth.any():
            assert np.isnan(value)
        else:
            assert value == pytest.approx(roc_auc_score(truth, scores[resample]), abs=1e-12)


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        ("classification", {"scores": [0.5, 1.5]}, r"\[0, 1\]"),
        ("ranking", {}, "group id"),
        ("regression", {}, "one length"),
    ],
)
def test_bad_rows_are_rejected(task: str, kwargs: dict, message: str) -> None:
    y_pred = ["a", "b"] if task == "classification" else [1.0, 2.0]
    y_true = y_pred if task != "regression" else [1.0]
    with pytest.raises(ValueError, match=message):
        LabeledSketch.empty(task).update(y_true, y_pred, **kwargs)


def test_sketches_of_different_tasks_do_not_merge() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        LabeledSketch.empty("regression").merge(LabeledSketch.empty("ranking"))


# --- ConceptDriftTest -------------------------------------------------------------------


@functools.cache
def reference_performance(task: str) -> dict[str, float]:
    """The model's performance on a large reference set from the stationary process."""
    rows = {"classification": classification_rows(999, 200_000), "regression": regression_rows(999, 200_000),
            "ranking": ranking_rows(999, 25_000)}[task]
    return compute_metrics(task, rows["y_true"], rows["y_pred"], scores=rows.get("scores"), groups=rows.get("groups"))


@pytest.mark.parametrize(("seed", "n"), [(11, 2000), (12, 3500), (13, 5000)])
def test_five_percent_accuracy_drop_is_concept_drift(seed: int, n: int) -> None:
    window = sketch_of("classification", classification_rows(seed, n, accuracy=0.855))
    test = ConceptDriftTest("classification", {"accuracy": 0.90}, seed=seed)
    (result,) = test.evaluate(window)
    assert (result.metric, result.significance_test, result.dropped) == ("accuracy", "binomial_test", True)
    assert result.relative_drop == pytest.approx(0.05, abs=0.015)
    assert result.p_value < 1e-6
    assert result.ci_high < 0.90


@pytest.mark.parametrize("seed", range(20, 26))
def test_stationary_classification_stream_does_not_drop(seed: int) -> None:
    window = sketch_of("classification", classification_rows(seed, 3000))
    results = ConceptDriftTest("classification", reference_performance("classification"), seed=seed).evaluate(window)
    assert [r.metric for r in results] == ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]
    assert not any(r.dropped for r in results), [r for r in results if r.dropped]


def test_every_classification_metric_drops_on_a_degraded_model() -> None:
    window = sketch_of("classification", classification_rows(30, 4000, accuracy=0.80))
    results = ConceptDriftTest("classification", reference_performance("classification"), seed=0).evaluate(window)
    assert {r.metric: r.dropped for r in results} == dict.fromkeys(
        ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"], True
    )
    assert {r.significance_test for r in results} == {
        f"{name}+bonferroni(6)" for name in ("binomial_test", "bootstrap_confusion", "bootstrap_sample")
    }
    assert all(r.p_value < 0.05 for r in results)
    for result in results:
        assert result.ci_low <= result.current <= result.ci_high


@pytest.mark.parametrize(
    ("task", "degraded"),
    [
        ("regression", lambda seed: regression_rows(seed, 4000, noise=1.15)),
        ("ranking", lambda seed: ranking_rows(seed, 500, noise=1.4)),
    ],
)
def test_regression_and_ranking_drops_are_found(task, degraded) -> None:
    results = ConceptDriftTest(task, reference_performance(task), seed=1).evaluate(sketch_of(task, degraded(41)))
    assert [r.metric for r in results] == (["mae", "rmse"] if task == "regression" else ["ndcg@3", "ndcg@5", "mrr",
                                                                                         "map"])
    assert all(r.dropped and r.significance_test.startswith("bootstrap_sample+bonferroni") for r in results), results


@pytest.mark.parametrize(
    ("task", "stationary"),
    [("regression", lambda seed: regression_rows(seed, 4000)), ("ranking", lambda seed: ranking_rows(seed, 500))],
)
def test_stationary_windows_rarely_alert(task, stationary) -> None:
    """Per-window false alarms over all metrics stay near alpha (Bonferroni over the metrics)."""
    reference = reference_performance(task)
    alerts = [
        any(r.dropped for r in ConceptDriftTest(task, reference, seed=seed).evaluate(sketch_of(task, stationary(seed))))
        for seed in range(100, 140)
    ]
    assert np.mean(alerts) <= 0.1


def test_window_without_positives_does_not_alert_on_undefined_ratios() -> None:
    window = LabeledSketch.empty("classification", positive_label="fraud")
    window.update(np.full(400, "legit"), np.full(400, "legit"))
    reference = {"accuracy": 0.95, "precision": 0.8, "recall": 0.7, "f1": 0.75}
    results = ConceptDriftTest("classification", reference).evaluate(window)
    assert [(r.metric, r.dropped) for r in results] == [("accuracy", False)]


def test_large_but_not_significant_drop_does_not_alert() -> None:
    truth = np.array(["a"] * 125 + ["b"] * 125)
    predicted = truth.copy()
    predicted[:30] = "b"  # 220 of 250 right: accuracy 0.88, a 2.2 % drop from 0.90
    (result,) = ConceptDriftTest("classification", {"accuracy": 0.90}).evaluate(
        sketch_of("classification", {"y_true": truth, "y_pred": predicted})
    )
    assert result.relative_drop > 0.02
    assert result.p_value > 0.05
    assert not result.dropped


def test_significant_but_small_drop_does_not_alert() -> None:
    window = sketch_of("classification", classification_rows(50, 200_000, accuracy=0.895), capacity=100)
    (result,) = ConceptDriftTest("classification", {"accuracy": 0.90}).evaluate(window)
    assert result.p_value < 0.05
    assert result.relative_drop < 0.02
    assert not result.dropped


def test_small_window_is_not_tested() -> None:
    window = sketch_of("classification", classification_rows(60, 150, accuracy=0.5))
    (result,) = ConceptDriftTest("classification", {"accuracy": 0.9}, min_samples=200).evaluate(window)
    assert (result.significance_test, result.p_value, result.dropped, result.n) == ("insufficient_samples", None,
                                                                                     False, 150)


def test_same_seed_same_verdicts() -> None:
    window = sketch_of("regression", regression_rows(70, 3000, noise=1.05))
    reference = reference_performance("regression")
    assert ConceptDriftTest("regression", reference, seed=3).evaluate(window) == ConceptDriftTest(
        "regression", reference, seed=3
    ).evaluate(window)


@pytest.mark.parametrize(("sample_size", "n_boot", "cached"), [(2000, 1000, True), (50_000, 100, False)])
def test_resample_rows_depend_on_seed_and_sizes_only(sample_size: int, n_boot: int, cached: bool) -> None:
    """Windows with full samples share one draw; draws too large to keep are made again, the same."""
    first, again = list(_resample_rows(5, sample_size, n_boot)), list(_resample_rows(5, sample_size, n_boot))
    assert sum(len(rows) for rows in first) == n_boot and (len(first) == 1) == cached
    assert all(rows.shape[1] == sample_size and rows.min() >= 0 and rows.max() < sample_size for rows in first)
    assert all((a is b) == cached and np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    other = np.concatenate(list(_resample_rows(6, sample_size, n_boot)))
    assert not np.array_equal(other, np.concatenate(first))
    counts = np.bincount(np.concatenate(first).ravel(), minlength=sample_size)
    assert counts.min() > 0.5 * n_boot and counts.max() < 1.5 * n_boot  # uniform over the sample


def test_two_windows_with_full_samples_are_tested_with_the_same_draws_and_keep_their_own_verdicts() -> None:
    reference = reference_performance("classification")
    test = ConceptDriftTest("classification", reference, seed=3)
    fine = sketch_of("classification", classification_rows(71, 5000, accuracy=0.90))
    worse = sketch_of("classification", classification_rows(72, 5000, accuracy=0.80))
    verdicts = {r.metric: r.dropped for r in test.evaluate(worse)}
    assert not any(r.dropped for r in test.evaluate(fine))
    assert verdicts["roc_auc"] or verdicts["log_loss"]  # sample-bootstrapped metrics still see the drop
    assert test.evaluate(worse) == ConceptDriftTest("classification", reference, seed=3).evaluate(worse)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"relative_drop": 1.5}, "relative_drop"),
        ({"alpha": 0.0}, "alpha"),
        ({"metrics": ["rmse"]}, "not a classification metric"),
        ({"metrics": ["f1"]}, "finite value for 'f1'"),
        ({"correction": "holm"}, "correction"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConceptDriftTest("classification", {"accuracy": 0.9}, **kwargs)


# --- LossMonitor ------------------------------------------------------------------------


def error_stream(seed: int, change_at: int = 1000, before: float = 0.1, after: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(change_at) < before, rng.random(1000) < after].astype(float)


@pytest.mark.parametrize(("detector", "params", "expected"), [("adwin", {}, [1183]),
                                                              ("page_hinkley", {"threshold": 20.0}, [1118])])
def test_detectors_fire_after_the_change_point_and_not_before(detector: str, params: dict, expected: list) -> None:
    assert LossMonitor(detector, **params).update(error_stream(42)) == expected


def adwin_through_rivers_api(losses: np.ndarray) -> tuple[list[int], int, object]:
    """What `LossMonitor` reports, by river's public ADWIN API alone (a rise: a detection that raised the
    estimate), the detections and the detector."""
    detector, fired, detections = river_drift.ADWIN(), [], 0
    for position, loss in enumerate(losses.tolist()):
        before = detector.estimation
        detector.update(loss)
        detections += detector.drift_detected
        if detector.drift_detected and detector.estimation > before:
            fired.append(position)
    return fired, detections, detector


@pytest.mark.parametrize("batch", [1, 37, 5000])
def test_adwin_reports_and_keeps_what_rivers_api_does(batch: int) -> None:
    # rises, a fall (a detection that is not reported) and back-to-back detections across batch ends
    rng = np.random.default_rng(5)
    rates = (0.05, 0.4, 0.05, 0.6, 0.9, 0.1)
    losses = np.concatenate([rng.random(700) < rate for rate in rates]).astype(float)
    expected, detections, detector = adwin_through_rivers_api(losses)
    monitor = LossMonitor("adwin")
    fired = []
    for start in range(0, len(losses), batch):
        fired += [start + position for position in monitor.update(losses[start:start + batch])]
    assert fired == expected and len(expected) >= 3
    assert detections > len(expected)  # the falls were detected and left out
    assert monitor._detector._helper.__getstate__() == detector._helper.__getstate__()
    assert monitor._detector.drift_detected == detector.drift_detected


def test_batches_report_positions_within_each_batch() -> None:
    losses = error_stream(42)
    monitor = LossMonitor("adwin")
    fired = [monitor.update(batch) for batch in np.split(losses, 8)]
    assert [(i, positions) for i, positions in enumerate(fired) if positions] == [(4, [1183 - 1000])]
    assert monitor.n == 2000


@pytest.mark.parametrize("detector", ["adwin", "page_hinkley"])
def test_a_falling_loss_is_not_reported(detector: str) -> None:
    assert LossMonitor(detector).update(error_stream(43, before=0.3, after=0.05)) == []


def test_reset_keeps_settings_and_forgets_losses() -> None:
    monitor = LossMonitor("page_hinkley", threshold=20.0)
    monitor.update(error_stream(42))
    monitor.reset()
    assert (monitor.n, monitor.params) == (0, {"mode": "up", "threshold": 20.0})
    assert monitor.update(error_stream(42)) == [1118]


def test_pane_losses_feed_the_monitor_and_fire_after_the_change() -> None:
    monitor, fired_in = LossMonitor("adwin"), []
    for pane in range(20):
        rows = classification_rows(200 + pane, 300, accuracy=0.9 if pane < 10 else 0.7)
        sketch = sketch_of("classification", rows, capacity=300)
        assert sketch.losses().mean() == pytest.approx(1 - sketch.metrics()["accuracy"])
        if monitor.update(sketch.losses()):
            fired_in.append(pane)
    assert fired_in and min(fired_in) >= 10
    assert fired_in[0] == 10


@pytest.mark.parametrize("task", ["regression", "ranking"])
def test_sample_losses_follow_the_task(task: str) -> None:
    sketch = sketch_of(task, ROWS[task](9, 800), capacity=5000)
    expected = sketch.metrics()["mae"] if task == "regression" else 1 - sketch.metrics()["ndcg@5"]
    assert sketch.losses().mean() == pytest.approx(expected)


def test_unknown_detector_is_rejected() -> None:
    with pytest.raises(ValueError, match="adwin"):
        LossMonitor("kswin")

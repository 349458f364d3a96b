"""Every drift test: one contract suite, then agreement with scipy and hand-computed values."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from driftline.schemas.events import FeatureResult
from driftline.stream.drift import (
    PSI,
    ChiSquareTest,
    DriftTest,
    JensenShannon,
    KSTest,
    Wasserstein,
    binned_ks_statistic,
    binned_scores,
    sample_distances,
)

RNG = np.random.default_rng(2024)
REF_SAMPLE, CUR_SAMPLE = RNG.normal(size=800), RNG.normal(0.3, 1.2, size=600)
REF_COUNTS, CUR_COUNTS = np.array([120, 300, 250, 80, 0]), np.array([90, 260, 300, 100, 15])

SAMPLE_TESTS = [KSTest, Wasserstein]
BINNED_TESTS = [ChiSquareTest, PSI, JensenShannon]


def _inputs(test_class: type[DriftTest]) -> tuple[np.ndarray, np.ndarray]:
    return (REF_SAMPLE, CUR_SAMPLE) if test_class in SAMPLE_TESTS else (REF_COUNTS, CUR_COUNTS)


@pytest.mark.parametrize("test_class", SAMPLE_TESTS + BINNED_TESTS)
class TestContract:
    def test_result_carries_the_evidence(self, test_class: type[DriftTest]) -> None:
        ref, cur = _inputs(test_class)
        result = test_class().result("f", ref, cur)
        assert isinstance(result, FeatureResult)
        assert result.feature == "f" and result.test == test_class.name
        assert result.threshold == test_class.default_threshold
        assert (result.p_value is not None) == test_class.has_p_value
        assert (result.score is not None) != test_class.has_p_value
        expected_n = (len(ref), len(cur)) if test_class in SAMPLE_TESTS else (int(ref.sum()), int(cur.sum()))
        assert (result.n_reference, result.n_current) == expected_n

    def test_verdict_follows_the_threshold(self, test_class: type[DriftTest]) -> None:
        ref, cur = _inputs(test_class)
        value = test_class().result("f", ref, cur)
        measured = value.p_value if test_class.has_p_value else value.score
        assert measured is not None
        if test_class.has_p_value:
            strict, loose = measured / 2, min(measured * 2, 0.99)
        else:
            strict, loose = measured * 2, measured / 2
        assert not test_class(threshold=strict).result("f", ref, cur).drifted
        assert test_class(threshold=loose).result("f", ref, cur).drifted

    def test_identical_inputs_do_not_drift_and_results_are_deterministic(self, test_class: type[DriftTest]) -> None:
        ref, _ = _inputs(test_class)
        assert not test_class().result("f", ref, ref).drifted
        assert test_class().result("f", *_inputs(test_class)) == test_class().result("f", *_inputs(test_class))

    def test_empty_current_gives_no_drift(self, test_class: type[DriftTest]) -> None:
        ref, cur = _inputs(test_class)
        assert not test_class().result("f", ref, np.zeros_like(cur)[:0] if test_class in SAMPLE_TESTS
                                       else np.zeros_like(cur)).drifted

    def test_bad_threshold_is_refused_and_pickling_keeps_settings(self, test_class: type[DriftTest]) -> None:
        with pytest.raises(ValueError):
            test_class(threshold=0.0)
        clone = pickle.loads(pickle.dumps(test_class(threshold=0.2)))
        assert clone.threshold == 0.2 and repr(clone) == repr(test_class(threshold=0.2))


def test_ks_is_scipys_exactly() -> None:
    result = KSTest().result("x", REF_SAMPLE, CUR_SAMPLE)
    expected = stats.ks_2samp(REF_SAMPLE, CUR_SAMPLE)
    assert result.statistic == expected.statistic and result.p_value == expected.pvalue


def test_chi_square_is_scipys_exactly_on_the_non_empty_bins() -> None:
    result = ChiSquareTest().result("c", REF_COUNTS, CUR_COUNTS)
    expected = stats.chi2_contingency(np.vstack([REF_COUNTS, CUR_COUNTS]), correction=False)
    assert result.statistic == expected.statistic and result.p_value == expected.pvalue
    with_empty_bin = ChiSquareTest().result("c", np.append(REF_COUNTS, 0), np.append(CUR_COUNTS, 0))
    assert with_empty_bin.statistic == expected.statistic


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 40).flatmap(lambda k: st.tuples(st.lists(st.integers(0, 10**6), min_size=k, max_size=k),
                                                      st.lists(st.integers(0, 10**6), min_size=k, max_size=k))))
def test_chi_square_equals_chi2_contingency_float_for_float(counts: tuple[list[int], list[int]]) -> None:
    """It follows chi2_contingency's operations instead of calling it: the same statistic and p-value bits."""
    reference, current = np.array(counts[0]), np.array(counts[1])
    result = ChiSquareTest().compute(reference, current)
    table = np.vstack([reference, current]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or np.any(table.sum(axis=1) == 0):
        assert (result.statistic, result.p_value) == (0.0, 1.0)
        return
    expected = stats.chi2_contingency(table, correction=False)
    assert (result.statistic, result.p_value) == (expected.statistic, expected.pvalue)


def test_psi_against_hand_computed_values() -> None:
    # p_ref = (0.5, 0.5), p_cur = (0.4, 0.6): (0.4-0.5) ln(0.8) + (0.6-0.5) ln(1.2)
    assert PSI().result("x", np.array([50, 50]), np.array([40, 60])).score == pytest.approx(
        -0.1 * np.log(0.8) + 0.1 * np.log(1.2))
    # an empty reference bin is floored at epsilon=1e-4: (0.1 - 1e-4) ln(0.1 / 1e-4) + (0.9 - 1) ln(0.9)
    assert PSI().result("x", np.array([100, 0]), np.array([90, 10])).score == pytest.approx(
        (0.1 - 1e-4) * np.log(0.1 / 1e-4) + (0.9 - 1.0) * np.log(0.9))
    assert PSI().result("x", np.array([10, 20, 30]), np.array([1, 2, 3])).score == 0.0


def test_jensen_shannon_and_wasserstein_are_scipys() -> None:
    js = JensenShannon().result("x", REF_COUNTS, CUR_COUNTS)
    assert js.score == pytest.approx(distance.jensenshannon(REF_COUNTS / REF_COUNTS.sum(),
                                                            CUR_COUNTS / CUR_COUNTS.sum(), base=2))
    w = Wasserstein().result("x", REF_SAMPLE, CUR_SAMPLE)
    assert w.statistic == pytest.approx(stats.wasserstein_distance(REF_SAMPLE, CUR_SAMPLE))
    assert w.score == pytest.approx(w.statistic / REF_SAMPLE.std())


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(-1.0, 1.0), st.integers(50, 2000))
def test_binned_ks_is_within_the_documented_bound_of_the_exact_statistic(seed: int, shift: float, n: int) -> None:
    """binned <= D <= binned + max over bins of the larger bin proportion."""
    rng = np.random.default_rng(seed)
    ref, cur = rng.normal(size=2000), rng.normal(shift, size=n)
    edges = np.quantile(ref, np.linspace(0, 1, 21))
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    ref_counts, cur_counts = np.histogram(ref, bins)[0], np.histogram(cur, bins)[0]
    exact = stats.ks_2samp(ref, cur).statistic
    binned = binned_ks_statistic(ref_counts, cur_counts)
    bound = max((ref_counts / ref_counts.sum()).max(), (cur_counts / cur_counts.sum()).max())
    assert binned <= exact + 1e-12
    assert exact <= binned + bound + 1e-12


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 300), st.integers(3, 300), st.booleans())
def test_vectorised_distances_equal_scipy(seed: int, n_ref: int, n_cur: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    draw = (lambda n: rng.integers(0, 5, size=n).astype(float)) if ties else (lambda n: rng.normal(size=n))
    refs = [draw(n_ref), draw(n_ref + 3)]
    curs = [draw(n_cur), draw(max(n_cur - 1, 1))]
    got = sample_distances(refs, curs)
    for i, (ref, cur) in enumerate(zip(refs, curs, strict=True)):
        expected = stats.ks_2samp(ref, cur, method="asymp")
        assert got.ks_statistic[i] == pytest.approx(expected.statistic, abs=1e-12)
        assert got.ks_p_value[i] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)
        assert got.wasserstein[i] == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9, abs=1e-12)


def test_memoised_ks_p_values_equal_kstwo_sf() -> None:
    rng = np.random.default_rng(11)
    refs = [np.sort(rng.normal(size=500)) for _ in range(6)]  # sorted references skip the sort
    curs = [rng.normal(0.05 * i, size=200) for i in range(6)]
    first, again = sample_distances(refs, curs), sample_distances(refs[::-1], curs[::-1])
    expected = np.clip(stats.kstwo.sf(first.ks_statistic, np.full(6, round(500 * 200 / 700))), 0.0, 1.0)
    assert first.ks_p_value.tolist() == expected.tolist()
    assert again.ks_p_value.tolist() == first.ks_p_value.tolist()[::-1]  # from the memo, unchanged
    assert again.wasserstein.tolist() == first.wasserstein.tolist()[::-1]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.sampled_from([2, 5, 22]), min_size=1, max_size=8))
def test_binned_scores_equal_the_test_classes(seed: int, bins: list[int]) -> None:
    rng = np.random.default_rng(seed)
    refs = [rng.integers(0, 400, size=b) * (rng.random() > 0.1) for b in bins]  # some sides without counts
    curs = [rng.integers(0, int(rng.choice([3, 3000])), size=b) for b in bins]
    got = binned_scores(refs, curs)
    for i, (ref, cur) in enumerate(zip(refs, curs, strict=True)):
        assert float(got.psi[i]) == PSI().compute(ref, cur).score
        assert float(got.jensen_shannon[i]) == JensenShannon().compute(ref, cur).score


def test_vectorised_distances_of_empty_samples() -> None:
    got = sample_distances([np.array([1.0, 2.0]), np.array([])], [np.array([]), np.array([3.0])])
    assert got.ks_statistic.tolist() == [0.0, 0.0] and got.ks_p_value.tolist() == [1.0, 1.0]
    assert got.wasserstein.tolist() == [0.0, 0.0]


def test_ks_method_is_passed_to_scipy() -> None:
    asymp = KSTest(method="asymp").result("x", REF_SAMPLE, CUR_SAMPLE)
    assert asymp.p_value == stats.ks_2samp(REF_SAMPLE, CUR_SAMPLE, method="asymp").pvalue
    with pytest.raises(ValueError, match="method"):
        KSTest(method="fast")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(2, 900), st.integers(2, 3000), st.booleans())
def test_features_of_equal_sizes_computed_together_equal_one_at_a_time(seed: int, n_features: int, n_ref: int,
                                                                       n_cur: int, ties: bool) -> None:
    """Rows of 2-D arrays (chunked to bound the temporaries) give each feature's values to the last bit."""
    rng = np.random.default_rng(seed)
    def draw(*shape: int) -> np.ndarray:
        return rng.integers(0, 5, size=shape).astype(float) if ties else rng.normal(size=shape)

    refs = np.sort(draw(n_features, n_ref), axis=1)
    curs = list(draw(n_features, n_cur))
    together, as_list = sample_distances(refs, curs), sample_distances(list(refs), curs)
    alone = [sample_distances([ref], [cur]) for ref, cur in zip(refs, curs, strict=True)]
    for got in (together, as_list):
        assert got.ks_statistic.tolist() == [a.ks_statistic[0] for a in alone]
        assert got.ks_p_value.tolist() == [a.ks_p_value[0] for a in alone]
        assert got.wasserstein.tolist() == [a.wasserstein[0] for a in alone]

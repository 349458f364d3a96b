"""The compiled kernels against numpy and scipy on the same data, ties, NaN and infinities included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from driftline.stream.kernels import (
    binned_distances,
    ks_wasserstein,
    merge_samples,
    moments,
    moments_without_nan,
    resampled_statistics,
    update_samples,
)
from driftline.stream.sample import Sample

finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(finite, min_size=1, max_size=300), min_size=1, max_size=4))
def test_moments_equal_numpys_up_to_rounding(rows: list[list[float]]) -> None:
    for row in rows:
        values = np.array([row])
        total, m2, low, high = (np.empty(1) for _ in range(4))
        moments(values, total, m2, low, high)
        assert total[0] == pytest.approx(values.sum(), rel=1e-12, abs=1e-6)
        assert m2[0] == pytest.approx(((values - values.mean()) ** 2).sum(), rel=1e-9, abs=1e-6)
        assert (low[0], high[0]) == (values.min(), values.max())  # no rounding in a minimum


def test_moments_sum_is_nan_exactly_when_a_row_holds_nan() -> None:
    matrix = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [1.0, np.nan, 3.0, 4.0, 5.0], [np.inf, -np.inf, 0.0, 0.0, 0.0]])
    total, m2, low, high = (np.empty(3) for _ in range(4))
    moments(matrix, total, m2, low, high)
    assert total[0] == 15.0 and m2[0] == 10.0 and (low[0], high[0]) == (1.0, 5.0)
    assert np.isnan(total[1:]).all()  # a null, and inf - inf: both send the caller to filter


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(finite, st.just(float("nan"))), min_size=0, max_size=40), min_size=1,
                max_size=4).map(lambda rows: [np.resize(np.array(r, dtype=float), 40) if r else np.full(40, np.nan)
                                              for r in rows]))
def test_moments_without_nan_equal_moments_of_the_values_kept_to_the_bit(rows: list[np.ndarray]) -> None:
    matrix = np.array(rows)
    nulls = np.empty(len(matrix), dtype=np.int64)
    total, m2, low, high = (np.empty(len(matrix)) for _ in range(4))
    moments_without_nan(matrix, nulls, total, m2, low, high)
    for row, values in enumerate(matrix):
        kept = values[~np.isnan(values)][None, :].copy()
        want = [np.empty(1) for _ in range(4)]
        moments(kept, *want)
        assert nulls[row] == np.isnan(values).sum()
        assert [total[row], m2[row], low[row], high[row]] == [w[0] for w in want]  # bit for bit, not approx


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.booleans())
def test_sample_kernels_equal_sample_update_and_merge_all(seed: int, capacity: int, ties: bool) -> None:
    """Row by row, `update_samples` is `Sample.update` (nulls dropped) and `merge_samples` `Sample.merge_all`."""
    rng = np.random.default_rng(seed)
    samples = [Sample.empty(capacity) for _ in range(3)]
    keys, values = np.zeros((3, capacity)), np.zeros((3, capacity))
    lengths, thresholds = np.zeros(3, dtype=np.intp), np.ones(3)
    for _ in range(3):
        n = int(rng.integers(0, 30))
        matrix = np.round(rng.normal(size=(3, n)), 1)  # tied values
        matrix[rng.random(matrix.shape) < 0.2] = np.nan
        batch_keys = np.round(rng.random(n), 2 if ties else 12)
        out_keys, out_values = np.empty((3, capacity)), np.empty((3, capacity))
        update_samples(keys, values, lengths, thresholds, matrix, batch_keys, np.full(3, capacity), out_keys,
                       out_values)
        keys, values = out_keys, out_values
        for sample, row in zip(samples, matrix, strict=True):
            if (~np.isnan(row)).any():  # as NumericSketch.update: a feature without a value leaves its sample
                sample.update(row, batch_keys)
    for row, sample in enumerate(samples):
        assert keys[row, :lengths[row]].tolist() == sample.keys.tolist()
        assert values[row, :lengths[row]].tolist() == sample.values.tolist()
        assert thresholds[row] == sample.threshold
    merged_capacity = int(rng.integers(1, 12))  # block 0 holds the rows, block 1 them in reverse order
    stacked = [keys[None], values[None], lengths[None].copy(), thresholds[None].copy()]
    out = [np.empty((3, merged_capacity)), np.empty((3, merged_capacity)), np.empty(3, dtype=np.intp), np.empty(3)]
    merge_samples(np.concatenate([stacked[0], stacked[0][:, ::-1].copy()]),
                  np.concatenate([stacked[1], stacked[1][:, ::-1].copy()]),
                  np.concatenate([stacked[2], stacked[2][:, ::-1].copy()]),
                  np.concatenate([stacked[3], stacked[3][:, ::-1].copy()]), merged_capacity, *out)
    for row, sample in enumerate(samples):
        want = Sample.merge_all([sample, samples[2 - row]], capacity=merged_capacity)
        assert out[0][row, :out[2][row]].tolist() == want.keys.tolist()
        assert out[1][row, :out[2][row]].tolist() == want.values.tolist()
        assert out[3][row] == want.threshold


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 7), st.integers(1, 40), st.booleans())
def test_merge_samples_of_many_blocks_is_sample_merge_all_in_any_order(seed: int, n_blocks: int, capacity: int,
                                                                      ties: bool) -> None:
    """Ascending blocks are merged as runs; a block out of order takes the general path: the same sample."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_blocks):
        sample = Sample.empty(int(rng.integers(1, 30)))
        n = int(rng.integers(0, 40))
        sample.update(np.round(rng.normal(size=n), 1), np.round(rng.random(n), 2 if ties else 12))
        samples.append(sample)
    width = max(1, *(len(s.keys) for s in samples))
    keys, values = np.zeros((n_blocks, 1, width)), np.zeros((n_blocks, 1, width))
    lengths = np.array([[len(s.keys)] for s in samples], dtype=np.intp)
    thresholds = np.array([[s.threshold] for s in samples])
    for b, sample in enumerate(samples):
        keys[b, 0, :len(sample.keys)], values[b, 0, :len(sample.keys)] = sample.keys, sample.values
    want = Sample.merge_all(samples, capacity=capacity)
    shuffled = rng.permutation(width)  # every block's slots in another order: not ascending
    for block_keys, block_values in ((keys, values), (keys[:, :, shuffled].copy(), values[:, :, shuffled].copy())):
        if block_keys is not keys:  # lengths count the first slots: move the filled ones first, out of order
            filled = np.argsort(np.where(np.arange(width)[shuffled][None, None, :] < lengths[:, :, None], 0, 1),
                                axis=2, kind="stable")
            block_keys = np.take_along_axis(block_keys, filled, axis=2).copy()
            block_values = np.take_along_axis(block_values, filled, axis=2).copy()
        out = [np.empty((1, capacity)), np.empty((1, capacity)), np.empty(1, dtype=np.intp), np.empty(1)]
        merge_samples(block_keys, block_values, lengths.copy(), thresholds.copy(), capacity, *out)
        assert out[0][0, :out[2][0]].tolist() == want.keys.tolist()
        assert out[1][0, :out[2][0]].tolist() == want.values.tolist()
        assert out[3][0] == want.threshold


@pytest.mark.filterwarnings("ignore:divide by zero")  # scipy's p-value of one-value samples; the statistic is read
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-20, 20), min_size=1, max_size=120), st.lists(st.integers(-20, 20), min_size=1,
                                                                          max_size=120), st.integers(0, 3))
def test_ks_wasserstein_equal_scipys_on_tied_samples(reference: list[int], current: list[int], scale: int) -> None:
    """Integers scaled down: many ties within and across the samples, where the merge's tie rule matters."""
    ref, cur = np.sort(np.array(reference) / 10**scale), np.sort(np.array(current) / 10**scale)
    ks, wasserstein = np.empty(1), np.empty(1)
    ks_wasserstein(ref[None, :], cur[None, :], ks, wasserstein)
    assert ks[0] == stats.ks_2samp(ref, cur, method="asymp").statistic  # the same float, not just close
    assert wasserstein[0] == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9, abs=1e-12)


def test_ks_wasserstein_reads_each_row_on_its_own() -> None:
    rng = np.random.default_rng(3)
    ref, cur = np.sort(rng.normal(size=(4, 200)), axis=1), np.sort(rng.normal(0.5, size=(4, 150)), axis=1)
    ks, wasserstein = np.empty(4), np.empty(4)
    ks_wasserstein(ref, cur, ks, wasserstein)
    for row in range(4):
        assert ks[row] == stats.ks_2samp(ref[row], cur[row], method="asymp").statistic
        assert wasserstein[row] == pytest.approx(stats.wasserstein_distance(ref[row], cur[row]), rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 30).flatmap(lambda bins: st.tuples(
    st.lists(st.integers(0, 1000), min_size=bins, max_size=bins),
    st.lists(st.integers(0, 1000), min_size=bins, max_size=bins))))
def test_binned_distances_equal_the_formulas_and_scipys_jensen_shannon(counts: tuple[list[int], list[int]]) -> None:
    reference, current = (np.array([c], dtype=float) for c in counts)
    psi, js = np.empty(1), np.empty(1)
    binned_distances(reference, current, 1e-4, psi, js)
    if reference.sum() == 0 or current.sum() == 0:
        assert (psi[0], js[0]) == (0.0, 0.0)
        return
    p, q = np.maximum(reference / reference.sum(), 1e-4), np.maximum(current / current.sum(), 1e-4)
    assert psi[0] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-9, abs=1e-12)
    assert js[0] == pytest.approx(float(distance.jensenshannon(reference[0], current[0], base=2)), rel=1e-9,
                                  abs=1e-12)


_NONE = np.empty(0, dtype=np.intp)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 200), n_values=st.integers(0, 3),
       index_type=st.sampled_from([np.int64, np.int16]))
def test_resampled_means_equal_numpys_gathered_means(seed: int, size: int, n_values: int, index_type: type) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n_values, size)) * 10.0 ** rng.integers(-3, 4, size=(n_values, 1))
    rows = rng.integers(0, size, size=(6, size), dtype=index_type)
    means = np.full((6, n_values), np.nan)
    resampled_statistics(rows, values, means, _NONE, _NONE, np.empty(0, dtype=bool), np.empty(0))
    for k in range(n_values):
        expected = values[k][rows].mean(axis=1)
        np.testing.assert_allclose(means[:, k], expected, rtol=1e-12, atol=1e-13 * np.abs(values[k]).max())


def test_resampled_auc_beside_means_changes_neither() -> None:
    """Asked together (log loss and ROC AUC of one window), each statistic is what it is alone."""
    rng = np.random.default_rng(4)
    scores, positive = np.round(rng.random(300), 2), rng.random(300) < 0.4
    values, rows = rng.random((1, 300)), rng.integers(0, 300, size=(50, 300))
    order = np.argsort(scores, kind="stable").astype(np.intp)
    ordered = scores[order]
    run_ends = np.append(np.flatnonzero(ordered[1:] != ordered[:-1]) + 1, 300).astype(np.intp)
    means_alone, auc_alone, means, auc = np.empty((50, 1)), np.empty(50), np.empty((50, 1)), np.empty(50)
    resampled_statistics(rows, values, means_alone, _NONE, _NONE, np.empty(0, dtype=bool), np.empty(0))
    resampled_statistics(rows, np.empty((0, 300)), np.empty((50, 0)), order, run_ends, positive, auc_alone)
    resampled_statistics(rows, values, means, order, run_ends, positive, auc)
    assert np.array_equal(means, means_alone) and np.array_equal(auc, auc_alone)
    assert auc[0] == pytest.approx(stats.mannwhitneyu(scores[rows[0]][positive[rows[0]]],
                                                      scores[rows[0]][~positive[rows[0]]]).statistic
                                   / (positive[rows[0]].sum() * (~positive[rows[0]]).sum()), abs=1e-12)

"""Pane sketches: merge properties under hypothesis, batch independence, nulls, wire form."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.schemas.profiles import CategoricalSketchData, NumericBlockData, NumericSketchData
from driftline.stream.sample import hashed_keys
from driftline.stream.sketch import (
    CategoricalBins,
    CategoricalSketch,
    NumericBins,
    NumericBlock,
    NumericSketch,
    StackedBins,
    sketch_from_data,
)

BINS = NumericBins([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0])
CATS = CategoricalBins(["a", "b", "c"], other_categories=["d"])
_ids = iter(range(10**9))


@st.composite
def numeric_sketches(draw: st.DrawFn) -> NumericSketch:
    values = draw(st.lists(st.one_of(st.floats(-5, 5), st.just(float("nan"))), max_size=30))
    sketch = NumericSketch.empty(BINS, 8)
    start = next(_ids) * 100  # distinct keys across sketches
    sketch.update(np.array(values, dtype=float), hashed_keys(np.arange(start, start + len(values), dtype=np.uint64)))
    return sketch


@st.composite
def categorical_sketches(draw: st.DrawFn) -> CategoricalSketch:
    values = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "new", None]), max_size=30))
    sketch = CategoricalSketch.empty(CATS)
    sketch.update(np.array(values, dtype=object))
    return sketch


def _assert_numeric_equal(x: NumericSketch, y: NumericSketch) -> None:
    assert x.counts.tolist() == y.counts.tolist()
    assert (x.n, x.n_null, x.min, x.max) == (y.n, y.n_null, y.min, y.max)
    assert x.mean == pytest.approx(y.mean, abs=1e-9) and x.m2 == pytest.approx(y.m2, rel=1e-9, abs=1e-9)
    assert np.array_equal(x.sample.keys, y.sample.keys) and x.sample.threshold == y.sample.threshold


@settings(max_examples=150, deadline=None)
@given(numeric_sketches(), numeric_sketches(), numeric_sketches())
def test_numeric_merge_is_associative_and_commutative(a, b, c) -> None:
    _assert_numeric_equal(a.merge(b), b.merge(a))
    _assert_numeric_equal(a.merge(b).merge(c), a.merge(b.merge(c)))


@settings(max_examples=150, deadline=None)
@given(categorical_sketches(), categorical_sketches(), categorical_sketches())
def test_categorical_merge_is_associative_and_commutative(a, b, c) -> None:
    for x, y in ((a.merge(b), b.merge(a)), (a.merge(b).merge(c), a.merge(b.merge(c)))):
        assert x.counts.tolist() == y.counts.tolist() and (x.n, x.n_null) == (y.n, y.n_null)


def test_numeric_sketch_matches_numpy_and_does_not_depend_on_batching() -> None:
    rng = np.random.default_rng(8)
    values = rng.normal(size=5000)
    values[rng.random(5000) < 0.05] = np.nan
    keys = hashed_keys(np.arange(5000, dtype=np.uint64))
    whole = NumericSketch.empty(BINS, 64)
    whole.update(values, keys)
    parts = NumericSketch.empty(BINS, 64)
    for chunk in np.array_split(np.arange(5000), 9):
        piece = NumericSketch.empty(BINS, 64)
        piece.update(values[chunk], keys[chunk])
        parts = parts.merge(piece)
    _assert_numeric_equal(whole, parts)
    finite = values[~np.isnan(values)]
    assert whole.n == len(finite) and whole.n_null == 5000 - len(finite)
    assert whole.mean == pytest.approx(finite.mean()) and whole.std == pytest.approx(finite.std())
    expected = np.histogram(finite, bins=[-np.inf, -2, -1, 0, 0.5, 1, np.nextafter(2, 3), np.inf])[0]
    assert whole.counts.tolist() == expected.tolist()


def test_values_outside_the_reference_land_in_the_open_ends() -> None:
    sketch = NumericSketch.empty(BINS, 4)
    sketch.update(np.array([-9.0, -2.0, 2.0, 9.0]), np.array([0.1, 0.2, 0.3, 0.4]))
    assert sketch.counts.tolist() == [1, 1, 0, 0, 0, 1, 1]
    assert len(BINS.labels()) == BINS.n_bins == 7


def test_categorical_sketch_counts_other_unseen_and_nulls() -> None:
    sketch = CategoricalSketch.empty(CATS)
    sketch.update(np.array(["a", "d", "zzz", None, "a", float("nan")], dtype=object))
    assert sketch.counts.tolist() == [2, 0, 0, 1, 1]
    assert (sketch.n, sketch.n_null) == (4, 2)
    assert sketch.unseen_rate == 0.25
    assert CATS.labels() == ["a", "b", "c", "other", "unseen"]


def test_a_categorical_sketch_takes_bin_ids_as_the_values_they_bin() -> None:
    strings = np.array(["a", "d", "zzz", None, "a", "c", None, "b"], dtype=object)  # JSON strings: no NaN
    by_value, by_id = CategoricalSketch.empty(CATS), CategoricalSketch.empty(CATS)
    by_value.update(strings)
    by_id.update(CATS.ids(strings, none_apart=True))
    assert (by_id.counts.tolist(), by_id.n, by_id.n_null) == (by_value.counts.tolist(), by_value.n, by_value.n_null)
    assert by_id.counts.tolist() == [2, 1, 1, 1, 1] and by_id.n_null == 2
    assert CATS.category_ids() == {"a": 0, "b": 1, "c": 2, "d": 3}


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_wire_form_and_pickle_round_trip(kind: str) -> None:
    if kind == "numeric":
        sketch = NumericSketch.empty(BINS, 8)
        sketch.update(np.array([0.1, 3.0, np.nan]), np.array([0.5, 0.25, 0.75]))
        data = NumericSketchData.model_validate_json(sketch.to_data().model_dump_json())
        _assert_numeric_equal(sketch_from_data(data, BINS), sketch)
        _assert_numeric_equal(pickle.loads(pickle.dumps(sketch)), sketch)
    else:
        sketch = CategoricalSketch.empty(CATS)
        sketch.update(np.array(["b", "x"], dtype=object))
        data = CategoricalSketchData.model_validate_json(sketch.to_data().model_dump_json())
        assert sketch_from_data(data, CATS).counts.tolist() == sketch.counts.tolist()
        assert pickle.loads(pickle.dumps(sketch)).counts.tolist() == sketch.counts.tolist()
        with pytest.raises(ValueError, match="does not fit"):
            sketch_from_data(data, BINS)


def test_empty_sketch_wire_form_has_no_min_max() -> None:
    data = NumericSketch.empty(BINS, 4).to_data()
    assert data.min is None and data.max is None and data.n == 0
    assert NumericSketch.from_data(data, BINS).merge(NumericSketch.empty(BINS, 4)).n == 0
    with pytest.raises(ValueError, match="bins"):
        NumericSketch.from_data(data, NumericBins([0.0, 1.0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40), st.integers(0, 2**32 - 1))
def test_grid_binning_equals_searchsorted(reference: list[float], seed: int) -> None:
    """NumericBins' compiled counts are exactly the bincount of searchsorted's bins."""
    edges = np.unique(np.quantile(np.array(reference), np.linspace(0, 1, 21)))
    if len(edges) == 1:
        edges = np.repeat(edges, 2)
    bins = NumericBins(edges)
    rng = np.random.default_rng(seed)
    spread = max(float(edges[-1] - edges[0]), 1.0)
    values = np.concatenate([
        rng.uniform(edges[0] - spread, edges[-1] + spread, size=500), edges, np.nextafter(edges, np.inf),
        np.nextafter(edges, -np.inf), [np.nan, np.inf, -np.inf],
    ])
    expected = np.searchsorted(np.append(edges[:-1], np.nextafter(edges[-1], np.inf)), values, side="right")
    assert np.array_equal(bins.ids(values), expected)
    assert bins.counts(values).tolist() == np.bincount(expected, minlength=bins.n_bins).tolist()


def _assert_numeric_identical(x: NumericSketch, y: NumericSketch) -> None:
    """Equal to the last bit (the block layout promises the per-feature sketches' values, not approximations)."""
    assert x.counts.tolist() == y.counts.tolist() and (x.n, x.n_null) == (y.n, y.n_null)
    assert np.array_equal([x.mean, x.m2, x.min, x.max], [y.mean, y.m2, y.min, y.max], equal_nan=True)
    assert np.array_equal(x.sample.values, y.sample.values) and np.array_equal(x.sample.keys, y.sample.keys)
    assert (x.sample.threshold, x.sample.capacity) == (y.sample.threshold, y.sample.capacity)


def _stacked(bins: list[NumericBins], path: str) -> StackedBins:
    """StackedBins that take the comparison kernel or the grid kernel, whatever the bin count."""
    stacked = StackedBins(bins)
    stacked.comparison_bins = stacked.n_bins if path == "comparison" else 0
    return stacked


@pytest.mark.parametrize("path", ["comparison", "grid"])
@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=30), min_size=1, max_size=5),
       st.integers(0, 2**32 - 1))
def test_stacked_binning_equals_each_features_bins(path: str, references: list[list[float]], seed: int) -> None:
    """One pass over a (features x values) matrix counts what each feature's NumericBins.ids gives."""
    bins = []
    for reference in references:
        edges = np.unique(np.quantile(np.array(reference), np.linspace(0, 1, 21)))
        bins.append(NumericBins(np.repeat(edges, 2) if len(edges) == 1 else edges))  # one value: no grid
    rng = np.random.default_rng(seed)
    rows = []
    for b in bins:  # the edges, their neighbours and both infinities, then random values around the edges
        special = np.concatenate([b.edges, np.nextafter(b.edges, np.inf), np.nextafter(b.edges, -np.inf),
                                  [np.inf, -np.inf]])
        rows.append(np.concatenate([special, rng.uniform(b.edges[0] - 1, b.edges[-1] + 1, size=400 - len(special))]))
    matrix = np.array(rows)
    expected = [np.bincount(b.ids(row), minlength=b.n_bins) for b, row in zip(bins, matrix, strict=True)]
    counts = _stacked(bins, path).counts(matrix)
    assert [row[:b.n_bins].tolist() for row, b in zip(counts, bins, strict=True)] == [e.tolist() for e in expected]
    assert all(not row[b.n_bins:].any() for row, b in zip(counts, bins, strict=True))


@pytest.mark.parametrize("path", ["comparison", "grid"])
@pytest.mark.filterwarnings("ignore:overflow encountered in nextafter")  # the largest float's next is inf
@pytest.mark.filterwarnings("ignore:overflow encountered in subtract")  # edges a float range apart
@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=30), min_size=1,
                max_size=4),
       st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=60), st.integers(0, 2**32 - 1))
def test_stacked_binning_equals_searchsorted_on_any_floats(path: str, references: list[list[float]],
                                                          extra: list[float], seed: int) -> None:
    """Both binning paths stay exact where a grid's arithmetic overflows: huge spans, subnormals, NaN, inf."""
    bins = []
    for reference in references:
        with np.errstate(over="ignore", invalid="ignore"):
            edges = np.unique(np.quantile(np.array(reference), np.linspace(0, 1, 21)))
        edges = edges[np.isfinite(edges)]
        bins.append(NumericBins(np.repeat(edges, 2) if len(edges) == 1 else edges if len(edges) else [0.0, 0.0]))
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        matrix = np.array([np.resize(np.concatenate([
            extra, b.edges, np.nextafter(b.edges, np.inf), np.nextafter(b.edges, -np.inf),
            rng.choice(b.edges, 30) * rng.uniform(0.5, 1.5, 30)]), 200) for b in bins])
    counts = _stacked(bins, path).counts(matrix)
    for row, b, values in zip(counts, bins, matrix, strict=True):
        search_edges = np.append(b.edges[:-1], np.nextafter(b.edges[-1], np.inf))
        ids = np.where(np.isnan(values), len(search_edges), np.searchsorted(search_edges, values, side="right"))
        assert row.tolist() == np.bincount(ids, minlength=counts.shape[1]).tolist()
        assert b.ids(values).tolist() == ids.tolist()  # and the per-feature numpy path


def _random_batches(rng: np.random.Generator, n_features: int, *, nulls: bool, ties: bool) -> list[tuple]:
    batches = []
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.integers(0, 2500))
        matrix = rng.normal(size=(n_features, n))
        matrix[:, : n // 4] = np.round(matrix[:, : n // 4])  # values on the edges, tied values
        keys = rng.random(n)
        if nulls and n:  # one null, a share of nulls, or a feature without any value in the batch
            shape = int(rng.integers(0, 3))
            if shape == 0:
                matrix[rng.integers(0, n_features), rng.integers(0, n)] = np.nan
            elif shape == 1:
                matrix[rng.random(matrix.shape) < rng.uniform(0.001, 0.3)] = np.nan
            else:
                matrix[rng.integers(0, n_features)] = np.nan
        if ties and n > 1:
            keys[1] = keys[0]
        batches.append((matrix, keys))
    return batches


@pytest.mark.parametrize(("nulls", "ties"), [(False, False), (True, False), (False, True), (True, True)])
def test_numeric_block_equals_per_feature_sketches(nulls: bool, ties: bool) -> None:
    """Updates, wire form and its inverse give exactly the per-feature sketches of the same batches."""
    rng = np.random.default_rng(21)
    for bins in ([BINS, NumericBins([-1.0, 0.0, 1.0]), NumericBins([0.5, 0.5])],
                 [BINS, NumericBins([0.0, 0.0])]):  # a constant 0.0 reference has no grid: row by row
        _assert_block_equals_sketches(rng, bins, nulls=nulls, ties=ties)


def _assert_block_equals_sketches(rng: np.random.Generator, bins: list[NumericBins], *, nulls: bool,
                                  ties: bool) -> None:
    stacked = StackedBins(bins)
    for _ in range(10):
        capacity = int(rng.integers(1, 60))
        block, sketches = NumericBlock.empty(stacked, capacity), [NumericSketch.empty(b, capacity) for b in bins]
        for matrix, keys in _random_batches(rng, len(bins), nulls=nulls, ties=ties):
            block.update(matrix, keys)
            for sketch, row in zip(sketches, matrix, strict=True):
                sketch.update(row, keys)
        for x, y in zip(block.sketches(), sketches, strict=True):
            _assert_numeric_identical(x, y)
        data = block.to_data()
        assert data == [s.to_data() for s in sketches]
        for x, y in zip(NumericBlock.from_data(data, stacked).sketches(), sketches, strict=True):
            _assert_numeric_identical(x, y)
        _assert_block_data_equals_sketch_data(block, data)


def _assert_block_data_equals_sketch_data(block: NumericBlock, data: list[NumericSketchData]) -> None:
    """The block's wire form (when it has one) carries exactly the per-feature wire forms, and reads back exact."""
    names = [f"f{row}" for row in range(len(data))]
    block_data = block.to_block_data(names)
    own = block.own_samples
    if not block.n.all() or (own is not None and not own.uniform() and own.union() is None):  # tied keys in a row
        assert block_data is None
        return
    assert block_data is not None
    assert (block_data.thresholds is None) == (own is None or own.uniform())
    assert block_data.sketches() == dict(zip(names, data, strict=True))
    wire = NumericBlockData.model_validate_json(block_data.model_dump_json())
    assert wire == block_data
    rebuilt = NumericBlock.from_block_data(wire, block.bins)
    assert (rebuilt.own_samples is None) == (own is None or own.uniform())
    for x, y in zip(rebuilt.sketches(), block.sketches(), strict=True):
        _assert_numeric_identical(x, y)


def test_numeric_block_shares_one_sample_until_a_null_or_a_tie() -> None:
    rng = np.random.default_rng(4)
    stacked = StackedBins([BINS, BINS])
    block = NumericBlock.empty(stacked, 16)
    block.update(rng.normal(size=(2, 100)), rng.random(100))
    assert block.own_samples is None and block.values.shape == (2, 16)
    block.update(np.array([[1.0, np.nan], [2.0, 3.0]]), np.array([0.0, 0.999]))  # a null not sampled: still shared
    assert block.own_samples is None and [s.n_null for s in block.sketches()] == [1, 0]
    assert block.keys[0] == 0.0 and block.values[:, 0].tolist() == [1.0, 2.0]
    block.update(np.array([[np.nan], [4.0]]), np.array([0.0001]))  # a sampled null: each feature its own sample
    assert block.own_samples is not None and [s.n_null for s in block.sketches()] == [2, 0]
    first, second = (s.sample for s in block.sketches())
    assert 0.0001 not in first.keys and second.keys[1] == 0.0001 and second.values[1] == 4.0
    tied = NumericBlock.empty(stacked, 16)
    tied.update(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([0.5, 0.5]))  # each feature orders ties by value
    assert [s.sample.values.tolist() for s in tied.sketches()] == [[1.0, 2.0], [1.0, 2.0]]


@pytest.mark.parametrize("nulls", [False, True])
def test_numeric_block_merge_all_equals_per_feature_merge_all(nulls: bool) -> None:
    """Merging blocks (some empty, some with each feature's own sample) gives exactly `NumericSketch.merge_all`."""
    rng = np.random.default_rng(5)
    bins = [BINS, NumericBins([-3.0, 3.0])]
    stacked = StackedBins(bins)
    for _ in range(15):
        blocks, per_feature = [], [[], []]
        for _ in range(int(rng.integers(0, 6))):
            block, sketches = NumericBlock.empty(stacked, 32), [NumericSketch.empty(b, 32) for b in bins]
            for matrix, keys in _random_batches(rng, 2, nulls=nulls and rng.random() < 0.5, ties=rng.random() < 0.2):
                block.update(matrix, keys)
                for sketch, row in zip(sketches, matrix, strict=True):
                    sketch.update(row, keys)
            blocks.append(block)
            for merged, sketch in zip(per_feature, sketches, strict=True):
                merged.append(sketch)
        capacity = int(rng.integers(1, 100))
        merged = NumericBlock.merge_all(blocks, bins=stacked, sample_capacity=capacity)
        for got, b, sketches in zip(merged.sketches(), bins, per_feature, strict=True):
            _assert_numeric_identical(got, NumericSketch.merge_all(sketches, bins=b, sample_capacity=capacity))


def test_numeric_block_rejects_foreign_bins() -> None:
    data = NumericBlock.empty(StackedBins([BINS]), 4).to_data()
    with pytest.raises(ValueError, match="bins"):
        NumericBlock.from_data(data, StackedBins([NumericBins([0.0, 1.0])]))


def test_constant_zero_reference_bins_without_a_grid() -> None:
    """A reference of only 0.0 spans a subnormal width: no grid (its scale would be infinite), still exact bins."""
    sketch = NumericSketch.empty(NumericBins([0.0, 0.0]), 4)
    sketch.update(np.array([0.0, 1.0, -1.0]), np.array([0.1, 0.2, 0.3]))
    assert sketch.counts.tolist() == [1, 1, 1]


def test_numeric_block_from_data_with_keys_out_of_order_is_per_feature_and_still_exact() -> None:
    """A producer that sends a sample's keys unsorted gets the per-feature path, with the same results."""
    rng = np.random.default_rng(6)
    stacked = StackedBins([BINS, BINS])
    sketches = [NumericSketch.empty(BINS, 8) for _ in range(2)]
    keys = rng.random(50)
    for sketch in sketches:
        sketch.update(rng.normal(size=50), keys)
    data = [s.to_data() for s in sketches]
    data = [d.model_copy(update={"sample": d.sample.model_copy(update={"values": d.sample.values[::-1],
                                                                       "keys": d.sample.keys[::-1]})}) for d in data]
    block = NumericBlock.from_data(data, stacked)
    assert block.own_samples is not None
    other = NumericBlock.empty(stacked, 8)
    other.update(rng.normal(size=(2, 30)), rng.random(30))
    merged = NumericBlock.merge_all([block, other], bins=stacked, sample_capacity=8)
    expected = [NumericSketch.merge_all([NumericSketch.from_data(d, BINS), o], bins=BINS, sample_capacity=8)
                for d, o in zip(data, other.sketches(), strict=True)]
    for got, want in zip(merged.sketches(), expected, strict=True):
        _assert_numeric_identical(got, want)


def test_numeric_block_data_with_keys_out_of_order_is_read_per_feature_and_still_exact() -> None:
    """A block whose shared keys arrive unsorted gives what its per-feature forms give: a sample per feature."""
    rng = np.random.default_rng(7)
    stacked = StackedBins([BINS, NumericBins([-1.0, 1.0])])
    block = NumericBlock.empty(stacked, 8)
    block.update(rng.normal(size=(2, 50)), rng.random(50))
    data = block.to_block_data(["a", "b"])
    assert data is not None
    reversed_values = np.asarray(data.values).reshape(2, -1)[:, ::-1].ravel().tolist()
    shuffled = data.model_copy(update={"keys": data.keys[::-1], "values": reversed_values})
    got = NumericBlock.from_block_data(shuffled, stacked)
    want = NumericBlock.from_data(list(shuffled.sketches().values()), stacked)
    assert got.own_samples is not None
    for x, y in zip(got.sketches(), want.sketches(), strict=True):
        _assert_numeric_identical(x, y)


def test_numeric_block_data_rejects_foreign_bins() -> None:
    block = NumericBlock.empty(StackedBins([BINS]), 4)
    block.update(np.array([[0.1, 0.2]]), np.array([0.3, 0.4]))
    data = block.to_block_data(["a"])
    assert data is not None
    with pytest.raises(ValueError, match="bins"):
        NumericBlock.from_block_data(data, StackedBins([NumericBins([0.0, 1.0])]))
    with pytest.raises(ValueError, match="features"):
        NumericBlock.from_block_data(data, StackedBins([BINS, BINS]))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_numeric_block_wire_forms_both_refuse_an_infinite_value() -> None:
    """The block form skips validation only for values it knows are valid: an infinite input is refused as before."""
    from pydantic import ValidationError

    block = NumericBlock.empty(StackedBins([BINS, BINS]), 4)
    block.update(np.array([[0.1, np.inf], [0.2, 0.3]]), np.array([0.1, 0.2]))
    with pytest.raises(ValidationError):
        block.to_data()
    with pytest.raises(ValidationError):
        block.to_block_data(["a", "b"])

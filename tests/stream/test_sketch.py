"""Pane sketches: merge properties under hypothesis, batch independence, nulls, wire form."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.schemas.profiles import CategoricalSketchData, NumericSketchData
from driftline.stream.sample import hashed_keys
from driftline.stream.sketch import CategoricalBins, CategoricalSketch, NumericBins, NumericSketch, sketch_from_data

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
    """The lookup-table path of NumericBins.ids gives exactly searchsorted's bins."""
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

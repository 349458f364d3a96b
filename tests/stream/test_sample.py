"""Bounded uniform samples: exact merges (hypothesis), uniformity, order-independent keys."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.schemas.profiles import SampleData
from driftline.stream.sample import Sample, event_keys, hashed_keys

CAPACITY = 16


@st.composite
def samples(draw: st.DrawFn, capacity: int = CAPACITY) -> tuple[Sample, np.ndarray, np.ndarray]:
    """A sample of a stream of distinct keys, with the stream itself."""
    n = draw(st.integers(0, 40))
    keys = np.array(draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=n, max_size=n, unique=True)))
    values = np.array(draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n)))
    sample = Sample.empty(capacity)
    sample.update(values, keys)
    return sample, values, keys


def _same(a: Sample, b: Sample) -> bool:
    return (a.threshold == b.threshold and np.array_equal(a.keys, b.keys) and np.array_equal(a.values, b.values))


def _disjoint(*parts: tuple[Sample, np.ndarray, np.ndarray]) -> bool:
    keys = np.concatenate([p[2] for p in parts])
    return len(np.unique(keys)) == len(keys)


@settings(max_examples=150, deadline=None)
@given(samples(), samples(), samples())
def test_merge_is_associative_and_commutative(a, b, c) -> None:
    if not _disjoint(a, b, c):
        return
    sa, sb, sc = a[0], b[0], c[0]
    assert _same(sa.merge(sb), sb.merge(sa))
    assert _same(sa.merge(sb).merge(sc), sa.merge(sb.merge(sc)))


@settings(max_examples=150, deadline=None)
@given(samples(), samples())
def test_merge_equals_the_sample_of_the_concatenated_stream(a, b) -> None:
    if not _disjoint(a, b):
        return
    whole = Sample.empty(CAPACITY)
    whole.update(np.concatenate([a[1], b[1]]), np.concatenate([a[2], b[2]]))
    assert _same(a[0].merge(b[0]), whole)


def test_batches_and_order_do_not_matter() -> None:
    rng = np.random.default_rng(5)
    values, keys = rng.normal(size=1000), rng.random(1000)
    one = Sample.empty(50)
    one.update(values, keys)
    pieces = Sample.empty(50)
    order = rng.permutation(1000)
    for chunk in np.array_split(order, 7):
        pieces.update(values[chunk], keys[chunk])
    assert _same(one, pieces)
    assert len(one.values) == 50 and one.threshold < 1.0


def test_folding_small_samples_into_a_large_one_keeps_every_key_below_the_threshold() -> None:
    rng = np.random.default_rng(6)
    parts, all_values, all_keys = [], [], []
    for _ in range(30):
        values, keys = rng.normal(size=100), rng.random(100)
        part = Sample.empty(32)
        part.update(values, keys)
        parts.append(part)
        all_values.append(values)
        all_keys.append(keys)
    window = Sample.empty(500)
    for part in parts[::-1]:
        window = window.merge(part)
    keys = np.concatenate(all_keys)
    expected = np.sort(keys[keys < window.threshold])
    assert np.array_equal(np.sort(window.keys), expected)
    assert window.threshold <= min(part.threshold for part in parts)
    assert len(window.keys) == min(500, len(expected))


def test_sample_is_uniform_over_the_stream() -> None:
    """The kept positions of a 10 000-value stream are uniform (KS against U(0, 1))."""
    positions = np.arange(10_000, dtype=float)
    sample = Sample.empty(1000)
    sample.update(positions, hashed_keys(np.arange(10_000, dtype=np.uint64), seed=3))
    assert stats.kstest(sample.values / 10_000, "uniform").pvalue > 0.01


def test_nulls_are_never_sampled_and_wire_form_round_trips() -> None:
    sample = Sample.empty(8)
    sample.update(np.array([1.0, np.nan, 2.0]), np.array([0.1, 0.2, 0.3]))
    assert sample.values.tolist() == [1.0, 2.0]
    data = SampleData.model_validate_json(sample.to_data().model_dump_json())
    assert _same(Sample.from_data(data), sample)


def test_event_keys_are_deterministic_and_seeded() -> None:
    ids = [f"e{i}" for i in range(100)]
    assert np.array_equal(event_keys(ids), event_keys(ids))
    assert np.array_equal(event_keys(ids[::-1]), event_keys(ids)[::-1])
    assert not np.array_equal(event_keys(ids, seed=1), event_keys(ids))

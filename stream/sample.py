"""Bounded uniform samples that merge exactly: priority (bottom-k) sampling.

Every value carries a key uniform in [0, 1). A sample keeps the values whose key is below
its ``threshold``, at most ``capacity`` of them; when it overflows it keeps the smallest
keys and lowers the threshold to the first key it dropped. Merging keeps what lies below
both thresholds, so the merge of samples of disjoint streams is a uniform sample of their
union, and merging is associative and commutative (for equal capacities; folding samples
into one of larger capacity is order-independent too). Keys come from a hash of the event
id (`event_keys`), so the same events give the same sample whatever their arrival order.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from driftline.schemas.profiles import SampleData

__all__ = ["Sample", "event_keys"]

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Scramble uint64 values (Steele et al.'s SplitMix64 finaliser); wraps around on purpose."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def event_keys(event_ids: Iterable[str], *, seed: int = 0) -> np.ndarray:
    """Sample keys in [0, 1) from event ids: deterministic, independent of order and process.

    Examples
    --------
    >>> keys = event_keys(["a", "b", "a"])
    >>> bool(keys[0] == keys[2]), bool(0.0 <= keys.min() and keys.max() < 1.0)
    (True, True)
    """
    crc = np.fromiter(map(zlib.crc32, map(str.encode, event_ids)), dtype=np.uint64)
    return hashed_keys(crc, seed=seed)


def hashed_keys(ids: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Sample keys in [0, 1) from integer ids (e.g. a hash of the event id, or a row number)."""
    mixed = _splitmix64(ids.astype(np.uint64) ^ _splitmix64(np.full(1, seed, dtype=np.uint64)))
    return (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


@dataclass(slots=True)
class Sample:
    """A bounded uniform sample of float values; see the module docstring.

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> a, b = Sample.empty(100), Sample.empty(100)
    >>> a.update(rng.normal(size=500), rng.random(500))
    >>> b.update(rng.normal(size=300), rng.random(300))
    >>> merged = a.merge(b)
    >>> len(merged.values), merged.threshold < a.threshold
    (100, True)
    """

    values: np.ndarray
    keys: np.ndarray
    threshold: float
    capacity: int

    @classmethod
    def empty(cls, capacity: int) -> Sample:
        """A sample that has seen nothing yet."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        return cls(np.empty(0), np.empty(0), 1.0, capacity)

    def update(self, values: np.ndarray, keys: np.ndarray) -> None:
        """Offer a batch of values with their keys; NaN values (nulls) are never sampled."""
        take = (keys < self.threshold).nonzero()[0]  # after warm-up few values qualify: filter those
        if len(take) == 0:
            return
        values, keys = values[take], keys[take]
        present = ~np.isnan(values)
        if not present.all():
            values, keys = values[present], keys[present]
        self._absorb(np.concatenate([self.values, values]), np.concatenate([self.keys, keys]), self.threshold)

    def merge(self, other: Sample, *, capacity: int | None = None) -> Sample:
        """Uniform sample of the union of both streams, with ``capacity`` (default: the larger)."""
        return Sample.merge_all([self, other], capacity=capacity or max(self.capacity, other.capacity))

    @staticmethod
    def merge_all(samples: list[Sample], *, capacity: int) -> Sample:
        """Uniform sample of the union of many streams in one pass (e.g. the panes of a window)."""
        merged = Sample.empty(capacity)
        if not samples:
            return merged
        threshold = min(s.threshold for s in samples)
        values = np.concatenate([s.values for s in samples])
        keys = np.concatenate([s.keys for s in samples])
        below = keys < threshold
        merged._absorb(values[below], keys[below], threshold)
        return merged

    def _absorb(self, values: np.ndarray, keys: np.ndarray, threshold: float) -> None:
        """Keep ``values`` (all keyed below ``threshold``), shrinking to capacity by key."""
        if len(keys) > self.capacity:
            # keep the keys strictly below the (capacity+1)-th smallest: a function of the key
            # multiset alone, so merging stays associative and commutative even with tied keys
            threshold = float(np.partition(keys, self.capacity)[self.capacity])
            keep = keys < threshold
            values, keys = values[keep], keys[keep]
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        if len(keys) > 1 and np.any(keys[1:] == keys[:-1]):  # rare tie: order by value too
            order = order[np.lexsort((values[order], keys))]  # keys stay sorted: only ties move
        self.values, self.keys, self.threshold = values[order], keys, threshold

    def to_data(self) -> SampleData:
        """Wire form (pydantic), for a PanePartial."""
        return SampleData(values=self.values.tolist(), keys=self.keys.tolist(), threshold=self.threshold,
                          capacity=self.capacity)

    @classmethod
    def from_data(cls, data: SampleData) -> Sample:
        """Inverse of `to_data`."""
        return cls(np.asarray(data.values, dtype=float), np.asarray(data.keys, dtype=float), data.threshold,
                   data.capacity)

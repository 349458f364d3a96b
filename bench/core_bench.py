"""Benchmark of the pure drift core: events/s per core from decoded events to window results.

Run: ``.venv/bin/python bench/core_bench.py`` (about a minute; ``--quick`` for a smoke run).

Every core run is repeated (``--repeats``, default 5) and the naive run at 10^5 three
times; the tables give the median repetition and the range. One core run at 10^5 events
per window takes about 0.2 CPU s, so a single one moves by ±10 % with whatever else the
machine does. Each repetition starts cold: new aggregator and evaluator, the p-value memo
emptied, as in a fresh process.

What is measured, on one process (numpy single-threaded):

- ``core, columnar``: batches of 5 000 events as columns (20 float64 feature arrays, a
  prediction array, event times and a uint64 id column, as a columnar decoder such as Arrow
  would give them) go through `PaneAggregator.add_columns` (pane assignment, lateness,
  sketch updates), `close_panes` (PanePartial objects), `WindowEvaluator.add` and `ready`
  (merge, tests, correction). Kafka and JSON are not included.
- ``core, from PredictionEvent``: the same, starting from pydantic `PredictionEvent`
  objects (as `decode_batch` returns them), so the conversion to columns is included.
- ``naive ks_2samp``: per window, buffer every raw value and run
  ``scipy.stats.ks_2samp(reference, window)`` per feature; same stream, same windows.
- memory: tracemalloc peak of the core with 10^5 and 10^6 events per window (input
  batches generated on the fly, so the peak is the core's state plus one batch).
- per stage: the columnar runs' CPU time per window step (5 minutes of event time) in each
  stage the services chain: `add_columns` (stage 1), `close_panes` (the PanePartial objects
  stage 1 publishes), `WindowEvaluator.add` (stage 2 reading them) and `ready` (windows).

Windows are the defaults (1 h every 5 min, panes of 1 min); the event-time rate sets the
events per window.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
from scipy import stats

from driftline.schemas.events import PredictionEvent
from driftline.schemas.profiles import ReferenceProfile
from driftline.stream import PaneAggregator, WindowEvaluator, build_reference
from driftline.stream.columns import Columns
from driftline.stream.drift.vectorised import clear_p_value_memo
from driftline.stream.sample import hashed_keys

N_FEATURES = 20
BATCH = 5000
WINDOW_S, STEP_S, PANE_S = 3600.0, 300.0, 60.0
NAMES = [f"x{i:02d}" for i in range(N_FEATURES)]


@dataclass(frozen=True)
class Row:
    """One measurement: the median repetition's CPU time, and the fastest and slowest repetition's."""

    name: str
    events: int
    windows: int
    cpu_s: float
    wall_s: float
    peak_mb: float | None = None
    cpu_range_s: tuple[float, float] | None = None

    @property
    def rate(self) -> float:
        return self.events / self.cpu_s

    @property
    def rates(self) -> str:
        """Events/s of the slowest and the fastest repetition."""
        low, high = self.cpu_range_s or (self.cpu_s, self.cpu_s)
        return f"{self.events / high:,.0f}-{self.events / low:,.0f}"


def reference(rng: np.random.Generator) -> tuple[ReferenceProfile, dict[str, np.ndarray]]:
    frame = pd.DataFrame({name: rng.normal(size=5000) for name in NAMES})
    frame["prediction"] = frame["x00"] * 0.5 + rng.normal(scale=0.1, size=5000)
    profile = build_reference(frame, model="m", model_version="1", task="regression")
    return profile, {name: frame[name].to_numpy() for name in NAMES}


class Stream:
    """Column batches in event-time order, ``events_per_window`` events per hour of event time.

    The feature values come from a pool of pre-drawn batches (drawing normals would cost
    more than the core itself); event times, ids and sample keys are made per batch.
    """

    def __init__(self, seed: int, pool_size: int = 16) -> None:
        rng = np.random.default_rng(seed)
        self.pool = [{name: rng.normal(size=BATCH) for name in NAMES} for _ in range(pool_size)]

    def batches(self, n_events: int, events_per_window: int) -> Iterator[Columns]:
        rate = events_per_window / WINDOW_S
        for number, start in enumerate(range(0, n_events, BATCH)):
            n = min(BATCH, n_events - start)
            values = self.pool[number % len(self.pool)]
            ids = np.arange(start, start + n, dtype=np.uint64)
            keys = hashed_keys(ids)
            features = {name: v[:n] for name, v in values.items()}
            yield Columns(ids.astype(np.float64) / rate, keys, features, features["x00"] * 0.5, keys)


def events_of(columns: Columns, first_id: int) -> list[PredictionEvent]:
    """The same batch as decoded PredictionEvent objects."""
    rows = np.column_stack([columns.features[name] for name in NAMES]).tolist()
    return [
        PredictionEvent(event_id=f"e{first_id + i}", ts=float(t), model="m", model_version="1",
                        request_id=f"r{first_id + i}", features=dict(zip(NAMES, row, strict=True)), prediction=float(p))
        for i, (t, row, p) in enumerate(zip(columns.ts.tolist(), rows, columns.prediction.tolist(), strict=True))
    ]


STAGES = ("stage 1: add batch", "stage 1: close panes", "stage 2: add partials", "stage 2: windows")


def run_core(profile: ReferenceProfile, inputs: Iterator, feed: Callable[[PaneAggregator, object], None],
             stage_cpu_s: dict[str, float] | None = None) -> int:
    """The core as the services chain it; ``stage_cpu_s`` (optional) collects CPU seconds per stage."""
    aggregator = PaneAggregator({"m": profile}, pane_s=PANE_S, allowed_lateness_s=0.0, source="bench")
    evaluator = WindowEvaluator(profile, window_s=WINDOW_S, step_s=STEP_S, pane_s=PANE_S)
    windows = 0
    spent = dict.fromkeys(STAGES, 0.0)
    for item in inputs:
        start = time.process_time()
        feed(aggregator, item)
        fed = time.process_time()
        partials = aggregator.close_panes()
        closed = time.process_time()
        for partial in partials:
            evaluator.add(partial)
        added = time.process_time()
        windows += len(evaluator.ready(watermark=aggregator.watermark))
        done = time.process_time()
        for stage, (begin, end) in zip(STAGES, itertools.pairwise((start, fed, closed, added, done)), strict=True):
            spent[stage] += end - begin
    if stage_cpu_s is not None:
        stage_cpu_s.update(spent)
    return windows


def run_naive(reference_values: dict[str, np.ndarray], inputs: Iterator[Columns]) -> int:
    """Per window, every raw value kept, then one exact ks_2samp per feature."""
    buffers: dict[float, list[Columns]] = {}  # step end -> batches of that step
    windows, next_end = 0, STEP_S
    for columns in inputs:
        step_end = (np.floor(columns.ts / STEP_S) + 1) * STEP_S
        for end in np.unique(step_end):
            buffers.setdefault(float(end), []).append(columns.take(np.flatnonzero(step_end == end)))
        while next_end <= columns.ts[-1]:
            parts = [b for end, bs in buffers.items() if next_end - WINDOW_S < end <= next_end for b in bs]
            for name in NAMES:
                stats.ks_2samp(reference_values[name], np.concatenate([p.features[name] for p in parts]))
            windows += 1
            buffers = {end: bs for end, bs in buffers.items() if end > next_end + STEP_S - WINDOW_S}
            next_end += STEP_S
    return windows


def timed(name: str, n_events: int, work: Callable[[], int], repeats: int) -> Row:
    """``work`` ``repeats`` times from a cold p-value memo: the median repetition, with the range."""
    runs = []
    for _ in range(repeats):
        clear_p_value_memo()
        cpu, wall = time.process_time(), time.perf_counter()
        windows = work()
        runs.append((time.process_time() - cpu, time.perf_counter() - wall))
    cpu_s = [c for c, _ in runs]
    median = sorted(runs)[(len(runs) - 1) // 2]
    return Row(name, n_events, windows, median[0], median[1], cpu_range_s=(min(cpu_s), max(cpu_s)))


def peak_memory(name: str, n_events: int, work: Callable[[], int]) -> Row:
    tracemalloc.start()
    cpu, wall = time.process_time(), time.perf_counter()
    windows = work()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Row(name, n_events, windows, time.process_time() - cpu, time.perf_counter() - wall, peak / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of each core run (median reported)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    profile, reference_values = reference(np.random.default_rng(0))
    stream = Stream(seed=1)
    rows: list[Row] = []
    stage_runs: dict[str, list[dict[str, float]]] = {}  # per size: each repetition's CPU seconds per stage

    def columnar(n: int, per_window: int, runs: list[dict[str, float]]) -> int:
        runs.append({})
        return run_core(profile, stream.batches(n, per_window), lambda a, c: a.add_columns("m", c), runs[-1])

    for per_window in (100_000, 1_000_000):
        n = 3 * per_window // scale if per_window == 100_000 else 2_000_000 // scale
        label = f"{per_window:.0e} ev/window"
        stage_runs[label] = []
        rows.append(timed(f"core, columnar, {label}", n, lambda n=n, w=per_window, r=stage_runs[label]: columnar(
            n, w, r), args.repeats))
    n_objects = 200_000 // scale
    event_batches = [events_of(c, i * BATCH) for i, c in enumerate(stream.batches(n_objects, 100_000))]
    rows.append(timed("core, from PredictionEvent, 1e+05 ev/window", n_objects, lambda: run_core(
        profile, iter(event_batches), lambda a, e: a.add_predictions(e)), args.repeats))
    for per_window, n_naive, repeats in ((100_000, 300_000 // scale, 3), (1_000_000, 2_000_000 // scale, 1)):
        rows.append(timed(f"naive ks_2samp per window, {per_window:.0e} ev/window", n_naive,
                          lambda n=n_naive, w=per_window: run_naive(reference_values, stream.batches(n, w)), repeats))
    stages = {label: {stage: float(np.median([run[stage] for run in runs])) for stage in STAGES}
              for label, runs in stage_runs.items()}
    memory = [
        peak_memory(f"core memory, {w:.0e} ev/window", n, lambda n=n, w=w: run_core(
            profile, stream.batches(n, w), lambda a, c: a.add_columns("m", c)))
        for w, n in ((100_000, 300_000 // scale), (1_000_000, 3_000_000 // scale))
    ]
    memory.append(peak_memory("naive memory, 1e+05 ev/window", 150_000 // scale, lambda: run_naive(
        reference_values, stream.batches(150_000 // scale, 100_000))))

    print(f"driftline core bench: {N_FEATURES} numeric features, window {WINDOW_S:.0f} s every {STEP_S:.0f} s, "
          f"panes {PANE_S:.0f} s, batches of {BATCH}\n")
    print(f"Core runs: median of {args.repeats} repetitions; naive: median of 3 at 1e+05, one run at 1e+06. "
          "Ranges: slowest to fastest repetition.\n")
    print("| run | events | windows | CPU s | events/s per core | range | feature values/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row.name} | {row.events:,} | {row.windows} | {row.cpu_s:.2f} | {row.rate:,.0f} | {row.rates} | "
              f"{row.rate * N_FEATURES:,.0f} |")
    print()
    for size in ("1e+05", "1e+06"):
        naive = next(r for r in rows if r.name.startswith(f"naive ks_2samp per window, {size}"))
        core = next(r for r in rows if r.name.startswith(f"core, columnar, {size}"))
        assert core.cpu_range_s is not None and naive.cpu_range_s is not None
        worst = naive.cpu_range_s[0] / core.cpu_range_s[1]  # fastest naive against slowest core
        best = naive.cpu_range_s[1] / core.cpu_range_s[0]
        print(f"core (columnar) vs naive ks_2samp at {size} events/window: {core.rate / naive.rate:.1f}x faster "
              f"(medians; {worst:.1f}x-{best:.1f}x over the repetitions' extremes)")
    print()
    print("| core, columnar: CPU ms per window step (5 min of event time), median | " + " | ".join(stages) + " |")
    print("|---|" + "---:|" * len(stages))
    steps = {label: next(r.windows for r in rows if r.name == f"core, columnar, {label}") for label in stages}
    for stage in (*STAGES, "total"):
        cells = [sum(spent.values()) if stage == "total" else spent[stage] for spent in stages.values()]
        print(f"| {stage} | " + " | ".join(f"{1000 * c / steps[label]:.2f}" for c, label in zip(
            cells, stages, strict=True)) + " |")
    print()
    print("| memory run | events | windows | tracemalloc peak MiB |")
    print("|---|---:|---:|---:|")
    for row in memory:
        print(f"| {row.name} | {row.events:,} | {row.windows} | {row.peak_mb:.1f} |")


if __name__ == "__main__":
    main()

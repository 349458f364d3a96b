"""Send a simulated stream through the SDK at a target wall-clock rate and summarise it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from driftline.producers.client import DriftlineProducer
from driftline.producers.simulator import Simulator

__all__ = ["SimulationSummary", "publish"]

_RATE_SLICE_S = 0.1


@dataclass
class SimulationSummary:
    """What a simulation sent: records per (model, kind), deliberate damage, timing, delivery."""

    records: Counter[tuple[str, str]] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    first_ts: float | None = None
    last_ts: float | None = None
    elapsed_s: float = 0.0
    delivery_errors: int = 0
    undelivered: int = 0
    interrupted: bool = False

    @property
    def total(self) -> int:
        return sum(self.records.values())

    @property
    def rate_per_s(self) -> float:
        """Records per wall-clock second, flush included."""
        return self.total / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def event_time_span_s(self) -> float:
        return 0.0 if self.first_ts is None or self.last_ts is None else self.last_ts - self.first_ts


def publish(
    simulator: Simulator,
    producer: DriftlineProducer,
    n_predictions: int,
    *,
    rate_per_s: float = 0.0,
    batch_size: int = 10_000,
    on_progress: Callable[[int], None] | None = None,
    flush_timeout_s: float = 60.0,
) -> SimulationSummary:
    """Send ``n_predictions`` predictions and their outcomes; returns what was sent.

    ``rate_per_s`` caps records per wall-clock second (0 = as fast as possible); the cap is
    applied per slice of a tenth of a second so the stream stays smooth. ``on_progress`` is
    called with the number of predictions sent so far. Ctrl-C stops sending early: what was
    handed over is still flushed and the summary says ``interrupted`` (its counts then include
    the whole batch that was being sent).
    """
    if rate_per_s > 0:
        batch_size = max(1, min(batch_size, int(rate_per_s * _RATE_SLICE_S)))
    summary = SimulationSummary()
    errors_before = producer.stats.errors
    started = time.monotonic()
    try:
        _send(simulator, producer, n_predictions, batch_size, rate_per_s, on_progress, summary, started)
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.undelivered = producer.flush(flush_timeout_s)
    summary.elapsed_s = time.monotonic() - started
    summary.delivery_errors = producer.stats.errors - errors_before
    return summary


def _send(simulator: Simulator, producer: DriftlineProducer, n_predictions: int, batch_size: int,
          rate_per_s: float, on_progress: Callable[[int], None] | None, summary: SimulationSummary,
          started: float) -> None:
    topics = {"predictions": producer.topics["predictions"], "outcomes": producer.topics["outcomes"]}
    sent = predictions_done = 0
    for batch in simulator.batches(n_predictions, batch_size):
        summary.records.update(zip(batch.models, batch.kinds, strict=True))
        summary.malformed.update(kind for kind in batch.malformed if kind is not None)
        produce = producer.produce_raw
        for kind, key, value in zip(batch.kinds, batch.keys, batch.values, strict=True):
            produce(topics[kind], key, value)
        if len(batch):
            summary.first_ts = float(batch.ts[0]) if summary.first_ts is None else summary.first_ts
            summary.last_ts = float(batch.ts[-1])
        sent += len(batch)
        predictions_done += batch.kinds.count("predictions")
        producer.poll(0)
        while rate_per_s > 0 and (ahead_s := sent / rate_per_s - (time.monotonic() - started)) > 0:
            producer.poll(min(ahead_s, _RATE_SLICE_S))  # wait, serving delivery reports meanwhile
        if on_progress is not None:
            on_progress(predictions_done)

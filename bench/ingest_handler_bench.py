"""Ingest's work without Kafka: `PartitionState.handle` over the e2e bench's stream.

The same two models, simulator seed, event-time rate and label delay as ``bench/e2e_bench.py``,
one source partition, the settings ingest runs with there (panes 10 s, lateness 10 s). The
stream is cut into batches of ``--batch`` predictions and as many outcomes, as a consumer
would hand them over; the changelog is taken every ``--commit-every`` events, as a commit
would take it; the cyclic GC is set as the services set it. Prints, per run, CPU time per event
and events per CPU-second of the handler alone: no consume, no produce, no broker. Runs in
10-40 s; no broker needed.

Use it to compare two versions of the hot path: run it on each, alternating, several times
(``--repeats``); a single run moves by ±5 % on a shared VM. ``--paths both`` alternates the
native hot path (``ingest.native``, when built) with the Python path in one process.

Usage::

    python bench/ingest_handler_bench.py --predictions 200000 --repeats 3 [--paths both]
"""

from __future__ import annotations

import argparse
import time

from driftline.config import load_config
from driftline.consumers.common.service import gc_for_streaming
from driftline.consumers.ingest.handler import PartitionState
from driftline.producers.scenarios import DriftScenario
from driftline.producers.simulator import ModelSpec, Simulator
from driftline.schemas.codec import RawMessage
from driftline.schemas.profiles import ReferenceProfile
from driftline.stream.reference import build_reference


def stream(n_predictions: int, events_per_s: float) -> tuple[list[RawMessage], list[RawMessage],
                                                              dict[str, ReferenceProfile]]:
    """Predictions and outcomes as the e2e bench produces them, and the two models' references."""
    shift_at_s = n_predictions / events_per_s / 2
    models = [ModelSpec("a", "churn", scenario=DriftScenario("sudden", shift_at_s=shift_at_s)), ModelSpec("b", "eta")]
    sim = Simulator(models, seed=5, events_per_s=events_per_s, label_delay_s=5.0)
    profiles = {model: build_reference(sim.reference_frame(model, 5000), model=model, model_version="1", task=task)
                for model, task in (("a", "classification"), ("b", "regression"))}
    predictions: list[RawMessage] = []
    outcomes: list[RawMessage] = []
    for batch in sim.batches(n_predictions, batch_size=20_000):
        for kind, key, value in zip(batch.kinds, batch.keys, batch.values, strict=True):
            (predictions if kind == "predictions" else outcomes).append(RawMessage(value, key))
    return predictions, outcomes, profiles


def run(predictions: list[RawMessage], outcomes: list[RawMessage], profiles: dict[str, ReferenceProfile],
        batch: int, commit_every: int, native: bool = True) -> tuple[float, int, int]:
    """CPU seconds, events and labeled records of one pass over the stream with a fresh state."""
    settings = load_config(None, ingest={"pane_s": 10.0, "allowed_lateness_s": 10.0, "max_label_delay_s": 3600.0,
                                         "batch_size": 2 * batch, "native": native}).ingest
    state = PartitionState(0, settings, profiles)
    events = labeled = since_commit = 0
    started = time.process_time()
    for first in range(0, max(len(predictions), len(outcomes)), batch):
        out = state.handle(predictions[first:first + batch], outcomes[first:first + batch], wall_clock_s=time.time())
        labeled += len(out.labeled)
        events += out.predictions_in + out.outcomes_in
        since_commit += out.predictions_in + out.outcomes_in
        if since_commit >= commit_every:
            state.changelog()
            since_commit = 0
    labeled += len(state.handle([], [], predictions_idle=True, outcomes_idle=True).labeled)
    state.changelog()
    return time.process_time() - started, events, labeled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, default=200_000, help="predictions (outcomes as many again)")
    parser.add_argument("--events-per-s", type=float, default=200.0, help="simulated event-time rate")
    parser.add_argument("--batch", type=int, default=5000, help="predictions (and outcomes) per handle call")
    parser.add_argument("--commit-every", type=int, default=65_000, help="events between changelog takes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paths", default="native", help="native, python, or both (alternated each repeat)")
    args = parser.parse_args()
    predictions, outcomes, profiles = stream(args.predictions, args.events_per_s)
    paths = ["native", "python"] if args.paths == "both" else [args.paths]
    print(f"{'run':>3}  {'path':>6}  {'events':>9}  {'labeled':>9}  {'CPU µs per event':>16}  "
          f"{'events per CPU-second':>21}")
    for index in range(args.repeats):
        for path in paths:
            with gc_for_streaming():  # the cyclic GC as the services run it
                cpu_s, events, labeled = run(predictions, outcomes, profiles, args.batch, args.commit_every,
                                             native=path == "native")
            print(f"{index + 1:>3}  {path:>6}  {events:>9,}  {labeled:>9,}  {cpu_s / events * 1e6:>16.2f}  "
                  f"{events / cpu_s:>21,.0f}")


if __name__ == "__main__":
    main()

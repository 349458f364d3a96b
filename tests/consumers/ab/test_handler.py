"""The A/B handler without Kafka: which events count, snapshots, conclusion once."""

from __future__ import annotations

import numpy as np

from driftline.consumers.ab.handler import ABHandler
from driftline.schemas.events import ClassPrediction, Experiment, LabeledEvent, VariantSpec


def experiment(ts: float = 100.0, min_samples: int = 300) -> Experiment:
    return Experiment(
        experiment_id="e1", ts=ts, model="churn", metric="accuracy", min_samples_per_variant=min_samples,
        variants=[VariantSpec(name="a", model_version="1", traffic=0.5),
                  VariantSpec(name="b", model_version="2", traffic=0.5)],
    )


def labeled(i: int, variant: str | None, correct: bool, *, ts: float = 200.0, model: str = "churn") -> LabeledEvent:
    return LabeledEvent(
        event_id=f"e{i}", ts=ts, outcome_ts=ts + 1, model=model, model_version="1", request_id=f"r{i}",
        features={"x": 1.0}, prediction=ClassPrediction(label="yes"), outcome="yes" if correct else "no",
        variant=variant,
    )


def test_only_matching_events_count() -> None:
    handler = ABHandler()
    handler.on_experiment(experiment())
    events = [
        labeled(1, "a", True),
        labeled(2, "b", False),
        labeled(3, None, True),  # no variant
        labeled(4, "c", True),  # not an arm
        labeled(5, "a", True, ts=50.0),  # before the experiment started
        labeled(6, "a", True, model="other"),
    ]
    assert handler.on_labeled(events) == 2
    arms = handler.experiments["e1"].arms
    assert (arms["a"].n, arms["a"].total) == (1, 1.0)
    assert (arms["b"].n, arms["b"].total) == (1, 0.0)


def test_concludes_once_with_the_better_arm_and_stops_accumulating() -> None:
    rng = np.random.default_rng(0)
    handler = ABHandler()
    handler.on_experiment(experiment())
    events = [labeled(i, "a", bool(rng.random() < 0.7)) for i in range(400)]
    events += [labeled(1000 + i, "b", bool(rng.random() < 0.9)) for i in range(400)]
    handler.on_labeled(events)
    results, concluded = handler.snapshot(ts=300.0)
    assert results[0].conclusion == "significant" and results[0].winner == "b"
    assert [e.status for e in concluded] == ["concluded"]
    assert handler.snapshot(ts=301.0) == ([], [])
    # the concluded definition read back from the compacted topic does not restart it
    handler.on_experiment(concluded[0])
    assert handler.experiments == {}


def test_redefined_experiment_restarts_its_arms() -> None:
    handler = ABHandler()
    handler.on_experiment(experiment())
    handler.on_labeled([labeled(1, "a", True)])
    handler.on_experiment(experiment(min_samples=1000))
    assert handler.experiments["e1"].arms == {}

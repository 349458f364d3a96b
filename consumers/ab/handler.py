"""The A/B analyzer's decisions, free of Kafka: experiments in, labeled events in, results out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from driftline.schemas.events import ABResult, Experiment, LabeledEvent
from driftline.stream.abtest import ArmStats, analyze_experiment, per_event_value

__all__ = ["ABHandler", "ExperimentState"]


@dataclass
class ExperimentState:
    experiment: Experiment
    arms: dict[str, ArmStats] = field(default_factory=dict)
    ignored: int = 0


class ABHandler:
    """Keeps arm statistics per running experiment and turns them into `ABResult` snapshots.

    A labeled event counts for an experiment when its model matches, its variant is one of the
    experiment's arms and its event time is at or after the experiment's start. An experiment
    stops accumulating when it concludes at its fixed horizon; the concluded definition is
    returned once so the service can publish it on `experiments`.
    """

    def __init__(self) -> None:
        self.experiments: dict[str, ExperimentState] = {}

    def on_experiment(self, experiment: Experiment) -> None:
        current = self.experiments.get(experiment.experiment_id)
        if experiment.status != "running":
            self.experiments.pop(experiment.experiment_id, None)
        elif current is None or current.experiment != experiment:
            self.experiments[experiment.experiment_id] = ExperimentState(experiment)

    def on_labeled(self, events: Iterable[LabeledEvent]) -> int:
        """Add events to the arms they belong to; returns how many counted."""
        counted = 0
        for event in events:
            if event.variant is None:
                continue
            for state in self.experiments.values():
                exp = state.experiment
                if exp.model != event.model or event.ts < exp.ts:
                    continue
                if event.variant not in {v.name for v in exp.variants}:
                    continue
                value = per_event_value(exp.metric, event)
                if value is None:
                    state.ignored += 1
                    continue
                arm = state.arms.get(event.variant, ArmStats())
                state.arms[event.variant] = arm.merge(ArmStats(1, value, value * value))
                counted += 1
        return counted

    def snapshot(self, *, ts: float) -> tuple[list[ABResult], list[Experiment]]:
        """Results for every running experiment, and the definitions that just concluded."""
        results: list[ABResult] = []
        concluded: list[Experiment] = []
        for experiment_id, state in list(self.experiments.items()):
            result = analyze_experiment(state.experiment, state.arms, ts=ts)
            results.append(result)
            if result.conclusion in ("significant", "no_difference"):
                concluded.append(state.experiment.model_copy(update={"status": "concluded", "ts": ts}))
                del self.experiments[experiment_id]
        return results, concluded

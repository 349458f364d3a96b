"""The decision flow against in-memory fakes: no broker, no MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from retrain_helpers import classification_events, make_alert

from driftline.config import RetrainSettings
from driftline.consumers.retrain.handler import RetrainHandler
from driftline.consumers.retrain.registry import LeaseBusy, RunRecord
from driftline.consumers.retrain.trainers import sklearn_trainer
from driftline.schemas.events import LabeledEvent, ModelEvent


@dataclass
class FakeRun:
    tags: dict[str, str]
    texts: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "RUNNING"


class FakeRegistry:
    """Just enough of `MlflowRegistry` for the handler: runs, versions, aliases, a lease."""

    def __init__(self) -> None:
        self.runs: dict[str, FakeRun] = {}
        self.versions: dict[str, Any] = {}
        self.aliases: dict[str, str] = {}
        self.lease: str | None = None
        self.last_ts: float | None = None
        self.discarded: list[str] = []

    def find_run(self, model: str, alert_id: str) -> RunRecord | None:
        for run_id, run in self.runs.items():
            if run.tags.get("driftline.alert_id") == alert_id:
                return RunRecord(run_id, run.tags.get("driftline.status", "started"),
                                 run.tags.get("driftline.published") == "true", run.tags.get("driftline.model_event"),
                                 run.tags.get("driftline.reference_logged") == "true")
        return None

    def discard_run(self, model: str, run_id: str) -> None:
        self.discarded.append(run_id)
        del self.runs[run_id]

    def last_retrain_ts(self, model: str) -> float | None:
        return self.last_ts

    def acquire_lease(self, name: str, owner: str, now_ts: float, lease_s: float) -> None:
        if self.lease not in (None, owner):
            raise LeaseBusy(f"held by {self.lease}")
        self.lease = owner

    def release_lease(self, name: str, owner: str) -> None:
        self.lease = None

    def start_run(self, model: str, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        run_id = f"run{len(self.runs) + 1}"
        self.runs[run_id] = FakeRun({**tags, "driftline.status": "started"})
        return run_id

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.runs[run_id].texts[artifact_file] = text

    def read_text(self, run_id: str, artifact_file: str) -> str:
        return self.runs[run_id].texts[artifact_file]

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        self.runs[run_id].metrics.update(metrics)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.runs[run_id].tags.update(tags)

    def version_for_alias(self, name: str, alias: str) -> str | None:
        return self.aliases.get(alias)

    def load_version(self, name: str, version: str) -> Any:
        return self.versions[version]

    def log_model(self, run_id: str, model: Any, name: str, input_example: Any) -> str:
        version = str(len(self.versions) + 1)
        self.versions[version] = model
        return version

    def promote(self, name: str, version: str) -> str | None:
        previous, self.aliases["champion"] = self.aliases.get("champion"), version
        return previous

    def make_challenger(self, name: str, version: str) -> None:
        self.aliases["challenger"] = version

    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:
        return None

    def finish_run(self, run_id: str, model_event_json: str) -> None:
        self.runs[run_id].tags.update({"driftline.status": "done", "driftline.model_event": model_event_json})
        self.runs[run_id].status = "FINISHED"

    def fail_run(self, model: str, run_id: str, reason: str) -> None:
        self.runs[run_id].tags.update({"driftline.status": "failed", "driftline.reason": reason})
        self.runs[run_id].status = "FAILED"


class ListSource:
    def __init__(self, events: list[LabeledEvent]) -> None:
        self.events = events
        self.calls = 0

    def read(self, model: str, start_ts: float, end_ts: float, *, max_events: int | None = None
             ) -> list[LabeledEvent]:
        self.calls += 1
        return [e for e in self.events if e.model == model and start_ts <= e.ts < end_ts][-(max_events or 0):]


EVENTS = classification_events(600, model="churn")
SETTINGS = RetrainSettings(min_samples=200, cooldown_s=3600.0, train_threads=1)


def handler_with(registry: FakeRegistry, *, events: list[LabeledEvent] = EVENTS, trainer: Any = sklearn_trainer,
                 settings: RetrainSettings = SETTINGS, now: float = 1_800_000_000.0) -> RetrainHandler:
    return RetrainHandler(settings, registry, ListSource(events), trainer, owner="me", clock=lambda: now)  # type: ignore[arg-type]


def test_an_alert_without_retrain_action_is_only_logged() -> None:
    registry = FakeRegistry()
    result = handler_with(registry).handle(make_alert("churn", EVENTS, action="none"))
    assert (result.outcome, result.outputs) == ("ignored", ())
    assert registry.runs == {}


def test_retrain_registers_decides_and_publishes_decision_and_reference() -> None:
    registry = FakeRegistry()
    alert = make_alert("churn", EVENTS)
    result = handler_with(registry).handle(alert)
    assert result.outcome == "promoted" and result.version == "1" and result.run_id == "run1"
    assert [o.topic for o in result.outputs] == ["models", "references"]
    event = ModelEvent.model_validate_json(result.outputs[0].value)
    assert (event.action, event.alert_id, event.run_id, event.champion) == ("promoted", alert.alert_id, "run1", "1")
    run = registry.runs["run1"]
    assert run.tags["driftline.status"] == "done" and run.status == "FINISHED"
    assert {"alert.json", "drift_report.md", "reference.json"} <= set(run.texts)
    assert "| x1 | ks |" in run.texts["drift_report.md"]
    assert run.metrics["candidate_accuracy"] == result.metrics["accuracy"]
    assert result.n_train == 480 and result.n_holdout == 120
    assert registry.lease is None  # released


def test_a_finished_alert_is_a_duplicate_and_an_unpublished_one_is_published_again() -> None:
    registry = FakeRegistry()
    alert = make_alert("churn", EVENTS)
    first = handler_with(registry).handle(alert)
    again = handler_with(registry).handle(alert)
    assert again.outcome == "republished"
    assert [o.value for o in again.outputs] == [o.value for o in first.outputs]
    registry.runs["run1"].tags["driftline.published"] = "true"
    assert handler_with(registry).handle(alert).outcome == "duplicate"
    assert len(registry.runs) == 1 and len(registry.versions) == 1


def test_an_unfinished_run_is_discarded_and_the_alert_handled_afresh() -> None:
    registry = FakeRegistry()
    alert = make_alert("churn", EVENTS)
    registry.runs["crashed"] = FakeRun({"driftline.alert_id": alert.alert_id, "driftline.status": "started"})
    result = handler_with(registry).handle(alert)
    assert registry.discarded == ["crashed"]
    assert result.outcome == "promoted" and list(registry.runs) == [result.run_id] != ["crashed"]


def test_cooldown_defers_without_a_run_and_names_the_standing_champion() -> None:
    registry = FakeRegistry()
    registry.last_ts = 1_800_000_000.0 - 600
    registry.aliases["champion"] = "4"
    result = handler_with(registry).handle(make_alert("churn", EVENTS))
    assert result.outcome == "deferred" and "3000 s left" in result.reason
    event = ModelEvent.model_validate_json(result.outputs[0].value)
    # the compacted `models` topic keeps only this record for the model: it must still name the champion
    assert (event.action, event.version, event.champion) == ("deferred", "1", "4")
    assert registry.runs == {}


def test_too_few_samples_defers_with_the_count() -> None:
    registry = FakeRegistry()
    result = handler_with(registry, events=EVENTS[:150]).handle(make_alert("churn", EVENTS[:150]))
    assert result.outcome == "deferred"
    assert "only 150 labeled events" in result.reason and "need 200" in result.reason
    assert registry.runs == {}


def test_a_failing_trainer_closes_the_run_as_failed_once() -> None:
    def broken(frame: Any, spec: Any) -> Any:
        raise ValueError("bad hyperparameter")

    registry = FakeRegistry()
    alert = make_alert("churn", EVENTS)
    result = handler_with(registry, trainer=broken).handle(alert)
    assert result.outcome == "failed" and "bad hyperparameter" in result.reason
    assert registry.runs["run1"].status == "FAILED"
    assert handler_with(registry, trainer=broken).handle(alert).outcome == "duplicate"  # not retried forever


def test_a_held_lease_is_raised_for_the_loop_to_retry() -> None:
    registry = FakeRegistry()
    registry.lease = "another-worker"
    with pytest.raises(LeaseBusy):
        handler_with(registry).handle(make_alert("churn", EVENTS))
    assert registry.runs == {}


def test_the_champion_is_judged_on_the_same_holdout() -> None:
    registry = FakeRegistry()
    handler = handler_with(registry, settings=SETTINGS.model_copy(update={"cooldown_s": 0.0}))
    first = handler.handle(make_alert("churn", EVENTS, salt="1"))
    second = handler.handle(make_alert("churn", EVENTS, salt="2"))
    assert second.champion_metrics == first.metrics  # same data, same seed: the champion scores what it scored
    assert second.outcome == "challenger" and "does not beat the champion" in second.reason
    decision = ModelEvent.model_validate_json(second.outputs[0].value)
    assert (decision.version, decision.champion) == ("2", "1")  # a challenger leaves the champion standing


@pytest.mark.parametrize("model", ["churn", "eta", "race"])
def test_the_simulators_models_retrain_with_the_default_trainer(model: str) -> None:
    """The simulator's wire form (``runner.<id>.<feature>`` for races) trains end to end."""
    from driftline.consumers.retrain.trainers import auto_trainer, load_trainer
    from driftline.producers.simulator import Simulator

    assert load_trainer(RetrainSettings().trainer) is auto_trainer
    events = Simulator([model], seed=3).reference_events(model, 400)
    registry = FakeRegistry()
    result = handler_with(registry, events=events, trainer=auto_trainer).handle(make_alert(model, events))
    assert result.outcome in ("promoted", "challenger"), result.reason
    assert result.metrics and result.champion_metrics  # candidate and serving model on the same holdout
    reference = registry.runs[result.run_id].texts["reference.json"]
    assert '"model_version":"1"' in reference


def test_a_primary_metric_of_another_task_is_refused_before_any_run() -> None:
    registry = FakeRegistry()
    settings = SETTINGS.model_copy(update={"primary_metric": "rmse"})
    with pytest.raises(ValueError, match="'rmse' does not apply to classification"):
        handler_with(registry, settings=settings).handle(make_alert("churn", EVENTS))
    assert registry.runs == {}

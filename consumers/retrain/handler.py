"""The decision flow for one alert: find or start its run, train, evaluate, register, decide.

`RetrainHandler.handle` does every MLflow write for an alert and returns what must be
published (`Output`s); the loop publishes them and only then commits the alert. MLflow and
Kafka are reached through the registry and the labeled source it is given, so the flow is
tested with fakes.

Exactly one run per alert: the run carries the tag ``driftline.alert_id``. A redelivered
alert whose run is finished is a duplicate (its decision is published again only if the
first delivery never confirmed publication); a run left unfinished by a crash or an MLflow
outage is discarded (with any version it registered) and the alert handled afresh.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from threadpoolctl import threadpool_limits

from driftline import __version__
from driftline.config import MonitorSettings, RetrainSettings
from driftline.consumers.retrain.data import (
    Task,
    TrainingData,
    build_frame,
    feature_columns,
    infer_task,
    reference_sample,
    time_split,
)
from driftline.consumers.retrain.drift import check_window
from driftline.consumers.retrain.evaluation import evaluate, evaluate_predictions, model_inputs, serving_metrics
from driftline.consumers.retrain.policy import PromotionDecision, PromotionPolicy, cooldown_remaining_s
from driftline.consumers.retrain.registry import ALIAS_CHAMPION, MlflowRegistry, RunRecord, is_transient
from driftline.consumers.retrain.trainers import Trainer, TrainingSpec
from driftline.schemas.codec import encode
from driftline.schemas.events import DriftAlert, LabeledEvent, ModelEvent, deterministic_id
from driftline.schemas.profiles import ReferenceProfile
from driftline.stream.performance import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    PRIMARY_METRIC,
    RANKING_METRICS,
    REGRESSION_METRICS,
)
from driftline.stream.reference import build_reference
from driftline.stream.report import render_window_report

__all__ = ["HandleResult", "LabeledSource", "Output", "RetrainHandler", "drift_summary"]

log = logging.getLogger(__name__)

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS, "ranking": RANKING_METRICS,
}
OutcomeKind = Literal["ignored", "duplicate", "republished", "deferred", "failed", "promoted", "challenger"]


class LabeledSource(Protocol):
    """Where training data comes from (`driftline.consumers.retrain.data.LabeledReader` in production)."""

    def read(self, model: str, start_ts: float, end_ts: float, *, max_events: int | None = None
             ) -> list[LabeledEvent]: ...


@dataclass(frozen=True, slots=True)
class Output:
    """A record to publish: ``topic`` is the logical name (``models`` or ``references``)."""

    topic: Literal["models", "references"]
    key: bytes
    value: bytes


@dataclass(frozen=True)
class HandleResult:
    """What happened to one alert, with its evidence and the records to publish."""

    outcome: OutcomeKind
    reason: str
    outputs: tuple[Output, ...] = ()
    run_id: str | None = None
    version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    n_train: int = 0
    n_holdout: int = 0
    registered_after_s: float | None = None
    """Seconds from receiving the alert to the new version being registered."""


def drift_summary(alert: DriftAlert) -> str:
    """A Markdown drift report of the alert: what drifted, by how much, on which window."""
    lines = [
        f"# Drift on {alert.model} v{alert.model_version}: {alert.kind} ({alert.severity})",
        "",
        f"- window: [{alert.window_start:.0f}, {alert.window_end:.0f}) event time, "
        f"{alert.n_current} events vs {alert.n_reference} in reference `{alert.reference_id}`",
        f"- drift ratio: {alert.drift_ratio:.3f}, correction: {alert.correction}, action: {alert.action}",
    ]
    if alert.early_signals:
        lines.append(f"- early signals: {', '.join(alert.early_signals)}")
    if alert.results:
        lines += ["", "| feature | test | statistic | p (adjusted) | score | threshold | drifted |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(alert.results, key=lambda r: (not r.drifted, r.p_adjusted if r.p_adjusted is not None else 1)):
            p = "" if r.p_adjusted is None else f"{r.p_adjusted:.3g}"
            score = "" if r.score is None else f"{r.score:.4f}"
            lines.append(f"| {r.feature} | {r.test} | {r.statistic:.4f} | {p} | {score} | {r.threshold:.4g} | "
                         f"{'yes' if r.drifted else 'no'} |")
    if alert.metrics:
        lines += ["", "| metric | reference | current | relative drop | dropped |", "|---|---|---|---|---|"]
        for m in alert.metrics:
            lines.append(f"| {m.metric} | {m.reference:.4f} | {m.current:.4f} | {m.relative_drop:.3f} | "
                         f"{'yes' if m.dropped else 'no'} |")
    return "\n".join(lines) + "\n"


class RetrainHandler:
    """Answer drift alerts with a retrain run, evaluated against the champion and registered.

    Parameters
    ----------
    settings
        The ``retrain`` section (span, holdout, minimum samples, policy, cooldown, tuning).
    registry
        The MLflow adapter.
    source
        Reads the model's labeled events by event time.
    trainer
        ``trainer(frame, spec) -> model`` (see `driftline.consumers.retrain.trainers`).
    owner
        This worker's name in the registry lease.
    clock, monotonic
        Wall-clock (cooldown, event times) and elapsed-time sources; tests pass fakes.
    references, monitor
        The model's current reference profile and the monitor's settings: with both, the run
        also gets the HTML drift report and PNG summary of the alert's window, re-tested as
        stage 2 does, beside the Markdown summary of the alert.
    """

    def __init__(
        self,
        settings: RetrainSettings,
        registry: MlflowRegistry,
        source: LabeledSource,
        trainer: Trainer,
        *,
        owner: str,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        code_version: str = __version__,
        references: Callable[[str], ReferenceProfile | None] | None = None,
        monitor: MonitorSettings | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.source = source
        self.trainer = trainer
        self.owner = owner
        self.clock = clock
        self.monotonic = monotonic
        self.code_version = code_version
        self.references = references
        self.monitor = monitor

    def handle(self, alert: DriftAlert, *, received_at: float | None = None) -> HandleResult:
        """Every MLflow write for ``alert``; returns the records to publish before committing it."""
        received_at = self.monotonic() if received_at is None else received_at
        if alert.action != "retrain" or alert.status != "drift":
            return HandleResult("ignored", f"alert action={alert.action} status={alert.status}: logged only")
        record = self.registry.find_run(alert.model, alert.alert_id)
        if record is not None:
            if record.status != "started":
                if record.published or record.model_event is None:
                    return HandleResult("duplicate", f"alert already handled by run {record.run_id}",
                                        run_id=record.run_id)
                return self._republish(alert, record)
            log.warning("discarding unfinished run %s of alert %s", record.run_id, alert.alert_id)
            self.registry.discard_run(alert.model, record.run_id)
        remaining_s = cooldown_remaining_s(self.registry.last_retrain_ts(alert.model), self.clock(),
                                           self.settings.cooldown_s)
        if remaining_s > 0:
            return self._deferred(alert, f"cooldown: {alert.model} was retrained recently, {remaining_s:.0f} s left")
        self.registry.acquire_lease(alert.model, self.owner, self.clock(), self.settings.lease_s)
        try:
            with threadpool_limits(limits=self.settings.train_threads or None):
                return self._retrain(alert, received_at)
        finally:
            self.registry.release_lease(alert.model, self.owner)

    # --- steps -------------------------------------------------------------------------

    def _deferred(self, alert: DriftAlert, reason: str) -> HandleResult:
        event = ModelEvent(
            event_id=deterministic_id("deferred", alert.alert_id), ts=self.clock(), model=alert.model,
            version=alert.model_version, action="deferred", reason=reason, alert_id=alert.alert_id,
            champion=self.registry.version_for_alias(alert.model, ALIAS_CHAMPION),
        )
        return HandleResult("deferred", reason, (Output("models", alert.model.encode(), encode(event)),))

    def _republish(self, alert: DriftAlert, record: RunRecord) -> HandleResult:
        """The run is done but its decision may not have reached Kafka: publish it again."""
        assert record.model_event is not None
        event = ModelEvent.model_validate_json(record.model_event)
        outputs = [Output("models", alert.model.encode(), encode(event))]
        if event.action == "promoted" and record.reference_artifact:
            profile_json = self.registry.read_text(record.run_id, "reference.json").encode()
            outputs.append(Output("references", alert.model.encode(), profile_json))
        return HandleResult("republished", f"decision of run {record.run_id} published again", tuple(outputs),
                            run_id=record.run_id, version=event.version)

    def _load_data(self, alert: DriftAlert) -> tuple[list[LabeledEvent], TrainingData | None, str]:
        end_ts = alert.window_end
        start_ts = end_ts - self.settings.span_s
        events = self.source.read(alert.model, start_ts, end_ts, max_events=self.settings.max_training_rows)
        if len(events) < self.settings.min_samples:
            return events, None, (f"only {len(events)} labeled events for {alert.model} in "
                                  f"[{start_ts:.0f}, {end_ts:.0f}), need {self.settings.min_samples}")
        task: Task = infer_task(events)
        frame = build_frame(events, task)
        train, holdout = time_split(frame, self.settings.holdout_fraction, task=task)
        data = TrainingData(train=train, holdout=holdout, features=feature_columns(frame), task=task,
                            span_start_ts=start_ts, span_end_ts=end_ts)
        return events, data, ""

    def _policy(self, task: Task) -> PromotionPolicy:
        metric = self.settings.primary_metric or PRIMARY_METRIC[task]
        if metric not in TASK_METRICS[task]:
            raise ValueError(f"retrain.primary_metric {metric!r} does not apply to {task}; "
                             f"choose from {', '.join(TASK_METRICS[task])}")
        return PromotionPolicy(metric, HIGHER_IS_BETTER[metric], self.settings.min_metric,
                               self.settings.min_improvement)

    def _champion_metrics(self, model: str, data: TrainingData) -> tuple[str | None, dict[str, float], str]:
        """The champion's metrics on the same holdout; without a champion, those of the serving predictions."""
        version = self.registry.version_for_alias(model, ALIAS_CHAMPION)
        if version is None:
            return None, serving_metrics(data.holdout, data.task), "serving predictions (no champion registered)"
        champion = self.registry.load_version(model, version)
        try:
            return version, evaluate(champion, data.holdout, data.task, data.features), f"champion v{version}"
        except (KeyError, ValueError) as exc:  # the champion expects other features: judge what served instead
            log.warning("champion v%s of %s cannot score the holdout (%s); using serving predictions",
                        version, model, exc)
            return version, serving_metrics(data.holdout, data.task), f"serving predictions (champion v{version} " \
                f"cannot score the holdout: {exc})"

    def _retrain(self, alert: DriftAlert, received_at: float) -> HandleResult:
        events, data, why_not = self._load_data(alert)
        if data is None:
            return self._deferred(alert, why_not)
        policy = self._policy(data.task)
        spec = TrainingSpec(
            task=data.task, features=data.features, primary_metric=policy.metric,
            higher_is_better=policy.higher_is_better, params=dict(self.settings.trainer_params),
            seed=self.settings.seed, optuna_trials=self.settings.optuna_trials,
            optuna_timeout_s=self.settings.optuna_timeout_s,
        )
        run_id = self.registry.start_run(alert.model, f"retrain-{alert.kind}-{alert.alert_id[:8]}",
                                         self._tags(alert, data), self._params(data, policy))
        try:
            return self._train_and_decide(alert, run_id, events, data, policy, spec, received_at)
        except Exception as exc:
            if is_transient(exc):  # MLflow went away: the loop retries, the run is discarded then
                raise
            return self._failed(alert, run_id, exc)

    def _train_and_decide(
        self, alert: DriftAlert, run_id: str, events: Sequence[LabeledEvent], data: TrainingData,
        policy: PromotionPolicy, spec: TrainingSpec, received_at: float,
    ) -> HandleResult:
        self.registry.log_text(run_id, alert.model_dump_json(indent=2), "alert.json")
        self.registry.log_text(run_id, drift_summary(alert), "drift_report.md")
        self._log_window_report(run_id, alert, events)
        candidate = self.trainer(data.train, spec)
        candidate_metrics, holdout_predictions = evaluate_predictions(candidate, data.holdout, data.task,
                                                                      data.features)
        champion_version, champion_metrics, champion_source = self._champion_metrics(alert.model, data)
        self.registry.log_metrics(run_id, {**{f"candidate_{k}": v for k, v in candidate_metrics.items()},
                                           **{f"champion_{k}": v for k, v in champion_metrics.items()}})
        version = self.registry.log_model(run_id, candidate, alert.model,
                                          model_inputs(data.train.head(5), data.features))
        registered_after_s = self.monotonic() - received_at
        decision = policy.decide(candidate_metrics.get(policy.metric, float("nan")),
                                 champion_metrics.get(policy.metric))
        previous = self._apply(alert.model, version, decision)
        profile = build_reference(
            reference_sample(events, data.holdout, holdout_predictions, data.task),
            model=alert.model, model_version=version, task=data.task, feature_names=None, created_ts=self.clock(),
            seed=self.settings.seed,
        )
        profile_json = encode(profile)
        self.registry.log_text(run_id, profile_json.decode(), "reference.json")
        reason = f"{decision.reason} (compared with {champion_source})"
        event = ModelEvent(
            event_id=deterministic_id("decision", alert.alert_id), ts=self.clock(), model=alert.model,
            version=version, action=decision.action, previous_champion=previous or champion_version,
            champion=self.registry.version_for_alias(alert.model, ALIAS_CHAMPION), reason=reason,
            run_id=run_id, alert_id=alert.alert_id, metrics=candidate_metrics, champion_metrics=champion_metrics,
        )
        self.registry.set_tags(run_id, {
            "driftline.decision": decision.action, "driftline.reason": reason[:4000], "driftline.version": version,
            "driftline.new_reference_id": profile.reference_id, "driftline.reference_logged": "true",
        })
        self.registry.finish_run(run_id, event.model_dump_json(exclude_none=True))
        outputs = [Output("models", alert.model.encode(), encode(event))]
        if decision.promote:
            outputs.append(Output("references", alert.model.encode(), profile_json))
        log.info("%s v%s %s: %s", alert.model, version, decision.action, reason)
        return HandleResult(decision.action, reason, tuple(outputs), run_id=run_id, version=version,
                            metrics=candidate_metrics, champion_metrics=champion_metrics, n_train=len(data.train),
                            n_holdout=len(data.holdout), registered_after_s=registered_after_s)

    def _log_window_report(self, run_id: str, alert: DriftAlert, events: Sequence[LabeledEvent]) -> None:
        """The alert's window re-tested against the model's reference, as HTML and PNG artifacts."""
        if self.references is None or self.monitor is None:
            return
        profile = self.references(alert.model)
        window_events = [e for e in events if alert.window_start <= e.ts < alert.window_end]
        if profile is None or not window_events:
            self.registry.set_tags(run_id, {"driftline.window_report": "none: no reference or no labeled events"})
            return
        try:
            window = check_window(profile, window_events, self.monitor, alert.window_end - alert.window_start)
            if window is None:
                self.registry.set_tags(run_id, {"driftline.window_report": "none: too few labeled events"})
                return
            with tempfile.TemporaryDirectory() as tmp:
                files = render_window_report(window, Path(tmp))
                self.registry.log_file(run_id, files.html)
                self.registry.log_file(run_id, files.png)
        except (ValueError, KeyError) as exc:  # the report is evidence, not a reason to skip the retrain
            log.warning("drift report of alert %s failed: %s", alert.alert_id, exc)
            self.registry.set_tags(run_id, {"driftline.window_report": f"failed: {exc}"[:4000]})

    def _apply(self, model: str, version: str, decision: PromotionDecision) -> str | None:
        """Aliases and stages for the decision; returns the champion the new version replaced."""
        self.registry.tag_version(model, version, {"driftline.decision": decision.action,
                                                   "driftline.reason": decision.reason[:4000]})
        if decision.promote:
            return self.registry.promote(model, version)
        self.registry.make_challenger(model, version)
        return None

    def _failed(self, alert: DriftAlert, run_id: str, exc: Exception) -> HandleResult:
        """Close the run as failed: the alert counts as handled, not retried forever."""
        reason = f"retrain failed: {type(exc).__name__}: {exc}"
        log.error("%s alert %s: %s", alert.model, alert.alert_id, reason, exc_info=exc)
        self.registry.fail_run(alert.model, run_id, reason)
        return HandleResult("failed", reason, run_id=run_id)

    def _tags(self, alert: DriftAlert, data: TrainingData) -> dict[str, str]:
        return {
            "driftline.alert_id": alert.alert_id,
            "driftline.model": alert.model,
            "driftline.alert_model_version": alert.model_version,
            "driftline.drift_kind": alert.kind,
            "driftline.severity": alert.severity,
            "driftline.window": f"[{alert.window_start:.3f}, {alert.window_end:.3f})",
            "driftline.reference_id": alert.reference_id,
            "driftline.data_span": f"[{data.span_start_ts:.3f}, {data.span_end_ts:.3f})",
            "driftline.code_version": self.code_version,
            "driftline.worker": self.owner,
        }

    def _params(self, data: TrainingData, policy: PromotionPolicy) -> dict[str, Any]:
        s = self.settings
        return {
            "trainer": s.trainer, "task": data.task, "n_train": len(data.train), "n_holdout": len(data.holdout),
            "n_features": len(data.features), "features": ",".join(data.features), "span_s": s.span_s,
            "holdout_fraction": s.holdout_fraction, "primary_metric": policy.metric, "min_metric": s.min_metric,
            "min_improvement": s.min_improvement, "optuna_trials": s.optuna_trials, "seed": s.seed,
            **{f"trainer.{k}": v for k, v in s.trainer_params.items()},
        }



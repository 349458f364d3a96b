"""``driftline retrain --model M``: check a model's drift now and retrain it when needed.

Drift comes from the latest alert for the model on `alerts`; without one, the recent
`labeled` data is tested against the model's reference profile (from `references`, else the
champion's run) with the monitor's own window evaluator and settings. When the drift ratio
reaches the threshold (or performance dropped, or ``--force``), the retrain runs through the
worker's handler, so cooldown, lease, evaluation, registration and policy are the same, and
the decision is published on `models` like the worker's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from driftline.config import DriftlineConfig
from driftline.consumers.common.kafka import produce_and_wait
from driftline.consumers.retrain.app import build_handler, configure_mlflow_client
from driftline.consumers.retrain.data import LabeledReader
from driftline.consumers.retrain.drift import check_window, latest_alert, latest_reference
from driftline.consumers.retrain.handler import HandleResult
from driftline.consumers.retrain.registry import ALIAS_CHAMPION, MlflowRegistry
from driftline.schemas.events import DriftAlert, deterministic_id
from driftline.schemas.profiles import ReferenceProfile
from driftline.stream import WindowResult

__all__ = ["DriftCheck", "OneShotReport", "model_reference", "print_summary", "retrain_once"]


@dataclass(frozen=True)
class DriftCheck:
    """Where the drift verdict came from and what it says."""

    source: str
    drift_ratio: float | None
    concept_drifted: bool
    alert: DriftAlert | None


@dataclass(frozen=True)
class OneShotReport:
    model: str
    check: DriftCheck
    drift_threshold: float
    outcome: str
    reason: str
    result: HandleResult | None = None


def model_reference(cfg: DriftlineConfig, registry: MlflowRegistry, model: str) -> ReferenceProfile | None:
    """The model's current reference: the last one on `references`, else its champion run's."""
    profile = latest_reference(cfg.kafka, model)
    if profile is not None:
        return profile
    version = registry.version_for_alias(model, ALIAS_CHAMPION)
    run_id = registry.client.get_model_version(model, version).run_id if version else None
    document = registry.reference_json(run_id) if run_id else None
    return ReferenceProfile.model_validate_json(document) if document else None


def _alert_from_window(model: str, profile: ReferenceProfile, window: WindowResult) -> DriftAlert:
    kind = "concept" if window.concept_drifted and not window.data.drifted else "data"
    return DriftAlert(
        alert_id=deterministic_id("oneshot", model, window.window_end, kind, profile.reference_id),
        ts=window.window_end, model=model, model_version=window.model_version, kind=kind,
        window_start=window.window_start, window_end=window.window_end, results=list(window.data.results),
        metrics=list(window.concept),
        drift_ratio=window.data.drift_ratio, severity="warning", n_current=window.n_events,
        n_reference=window.n_reference, reference_id=profile.reference_id, correction=window.correction,
        action="retrain",
    )


def retrain_once(cfg: DriftlineConfig, model: str, *, drift_threshold: float, lookback_s: float,
                 force: bool = False) -> OneShotReport:
    """Check drift, retrain when needed, publish the decision; returns what happened."""
    configure_mlflow_client(cfg.retrain)
    handler = build_handler(cfg, owner=f"oneshot:{model}")
    alert = latest_alert(cfg.kafka, model)
    if alert is not None and alert.status == "drift":
        check = DriftCheck(f"alert {alert.alert_id[:12]} (window end {alert.window_end:.0f})", alert.drift_ratio,
                           any(m.dropped for m in alert.metrics), alert)
    else:
        check = _computed_check(cfg, handler.registry, model, lookback_s)
    drifted = check.drift_ratio is not None and check.drift_ratio >= drift_threshold
    if not (drifted or check.concept_drifted or force):
        return OneShotReport(model, check, drift_threshold, "no_drift",
                             "drift below the threshold" if check.drift_ratio is not None else check.source)
    now = time.time()
    if force:  # a run of its own, even when that alert was answered already
        base = check.alert or DriftAlert(
            alert_id="forced", ts=now, model=model, model_version="unknown", kind="data",
            window_start=now - lookback_s, window_end=now, drift_ratio=0.0, severity="info", n_current=0,
            n_reference=0, reference_id="",
        )
        trigger = base.model_copy(update={"alert_id": deterministic_id("oneshot-forced", base.alert_id, now)})
    else:  # the alert's own id: if the worker already answered it, this is a duplicate, not a second run
        assert check.alert is not None
        trigger = check.alert
    result = handler.handle(trigger.model_copy(update={"action": "retrain"}))
    _publish(cfg, handler.registry, result)
    reason = result.reason if (drifted or check.concept_drifted) else f"forced: {result.reason}"
    return OneShotReport(model, check, drift_threshold, result.outcome, reason, result)


def _computed_check(cfg: DriftlineConfig, registry: MlflowRegistry, model: str, lookback_s: float) -> DriftCheck:
    profile = model_reference(cfg, registry, model)
    if profile is None:
        return DriftCheck("no alert and no reference profile to test against", None, False, None)
    reader = LabeledReader(cfg.kafka, cfg.kafka.topic("labeled"), timeout_s=cfg.retrain.read_timeout_s)
    events = reader.read(model, -math.inf, math.inf, seek_ts=time.time() - lookback_s,
                         max_events=cfg.retrain.max_training_rows)
    window = check_window(profile, events, cfg.monitor, lookback_s)
    if window is None:
        return DriftCheck(f"too few labeled events ({len(events)}) in the last {lookback_s:.0f} s", None, False,
                          None)
    return DriftCheck(f"computed: {window.n_events} events vs reference {profile.reference_id[:12]}",
                      window.data.drift_ratio, window.concept_drifted, _alert_from_window(model, profile, window))


def _publish(cfg: DriftlineConfig, registry: MlflowRegistry, result: HandleResult) -> None:
    if not result.outputs:
        return
    produce_and_wait(cfg.kafka, [(cfg.kafka.topic(o.topic), o.value, o.key) for o in result.outputs],
                     what="decision", timeout_s=15)
    if result.run_id:
        registry.mark_published(result.run_id)


def print_summary(report: OneShotReport) -> None:
    """The one-shot's result as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"driftline retrain: {report.model}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    ratio = "-" if report.check.drift_ratio is None else f"{report.check.drift_ratio:.3f}"
    table.add_row("drift", f"{report.check.source}")
    table.add_row("drift ratio", f"{ratio} (threshold {report.drift_threshold:.3f})"
                  + (", performance dropped" if report.check.concept_drifted else ""))
    table.add_row("decision", report.outcome)
    result = report.result
    if result is not None:
        table.add_row("version", result.version or "-")
        table.add_row("run", result.run_id or "-")
        table.add_row("data", f"{result.n_train} train / {result.n_holdout} holdout rows")
        for name in sorted(set(result.metrics) | set(result.champion_metrics)):
            candidate, champion = result.metrics.get(name), result.champion_metrics.get(name)
            table.add_row(name, f"candidate {_fmt(candidate)}  champion {_fmt(champion)}")
    table.add_row("reason", report.reason)
    Console().print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"

"""`driftline demo`: its config, its honest verdict, its view, its process handling, and one real run."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from driftline.config import LocalSettings, load_config
from driftline.consumers.common.http import MetricsServer
from driftline.consumers.common.metrics import Metrics
from driftline.demo import (
    ChildProcess,
    DemoError,
    DemoPlan,
    DemoState,
    LoopVerdict,
    demo_config,
    render,
    run_demo,
    scrape,
    stop_all,
    verdict,
    watch_loop,
    write_toml,
)
from driftline.schemas.events import DriftAlert, ModelEvent

PORTS = {"ingest": 19001, "monitor": 19002, "retrain-worker": 19003, "ab-analyzer": 19004}
SHIFT_TS = 1_000.0


def _alert(window_end: float, *, action: str = "retrain", status: str = "drift", model: str = "churn",
           alert_id: str = "a1") -> DriftAlert:
    return DriftAlert(alert_id=alert_id, ts=window_end, model=model, model_version="1", kind="concept",
                      status=status, window_start=window_end - 60, window_end=window_end, drift_ratio=1.0,
                      severity="critical", n_current=500, n_reference=5000, reference_id="r", action=action)


def _decision(alert_id: str, version: str = "1", action: str = "promoted") -> ModelEvent:
    return ModelEvent(event_id=f"d-{alert_id}", ts=0.0, model="churn", version=version, action=action,
                      alert_id=alert_id, run_id="run-1", reason="better")


def test_demo_config_is_valid_and_scoped_to_the_demo(tmp_path: Path) -> None:
    plan = DemoPlan(topic_prefix="demo7.")
    sections = demo_config(plan, bootstrap="127.0.0.1:1", tracking_uri="http://127.0.0.1:2", metrics_ports=PORTS)
    cfg = load_config(write_toml(tmp_path / "driftline.toml", sections))
    assert cfg.kafka.topic("alerts") == "demo7.alerts"
    assert {cfg.ingest.group_id, cfg.monitor.group_id, cfg.retrain.group_id} == {
        "demo7.ingest", "demo7.monitor", "demo7.retrain"}
    assert cfg.ingest.pane_s == cfg.monitor.pane_s == plan.pane_s  # the services must agree on panes
    assert cfg.monitor.window_s < 3600 and cfg.monitor.hysteresis_windows >= 2
    assert cfg.retrain.tracking_uri == "http://127.0.0.1:2"
    assert (cfg.metrics.ingest_port, cfg.metrics.monitor_port, cfg.metrics.retrain_port) == (19001, 19002, 19003)


def test_the_drift_starts_inside_the_simulated_span() -> None:
    plan = DemoPlan(events=20_000, events_per_s=50.0)
    assert plan.event_span_s == 400.0
    assert plan.shift_at_s == 200.0
    with pytest.raises(ValueError, match="must be > 0"):
        DemoPlan(duration_s=0)


@pytest.mark.parametrize(
    ("alerts", "decisions", "versions", "completed", "missing"),
    [
        ([], [], {}, False, "no drift alert"),
        # an alarm about a window before the drift began is never counted
        ([_alert(SHIFT_TS - 1)], [_decision("a1")], {"1": "champion"}, False, "no drift alert"),
        ([_alert(SHIFT_TS + 30, action="none")], [_decision("a1")], {"1": "champion"}, False, "no drift alert"),
        ([_alert(SHIFT_TS + 30, status="recovered")], [_decision("a1")], {"1": "x"}, False, "no drift alert"),
        ([_alert(SHIFT_TS + 30, model="other")], [_decision("a1")], {"1": "x"}, False, "no drift alert"),
        ([_alert(SHIFT_TS + 30)], [], {}, False, "no registered model version"),
        ([_alert(SHIFT_TS + 30)], [_decision("other-alert")], {"1": "x"}, False, "no registered model version"),
        ([_alert(SHIFT_TS + 30)], [_decision("a1", action="deferred")], {"1": "x"}, False,
         "no registered model version"),
        ([_alert(SHIFT_TS + 30)], [_decision("a1", version="2")], {"1": "x"}, False, "version 2 not visible"),
        ([_alert(SHIFT_TS + 30)], [_decision("a1", version="2")], {"2": "champion"}, True, ""),
        ([_alert(SHIFT_TS + 30)], [_decision("a1", action="challenger")], {"1": "challenger"}, True, ""),
    ],
)
def test_verdict_needs_alert_after_shift_decision_answering_it_and_version_in_mlflow(
    alerts: list[DriftAlert], decisions: list[ModelEvent], versions: dict[str, str], completed: bool, missing: str
) -> None:
    state = DemoState(model="churn", shift_ts=SHIFT_TS, alerts=alerts, decisions=decisions, mlflow_versions=versions)
    result = verdict(state)
    assert result.completed is completed
    assert missing in result.missing
    if completed:
        assert result.alert is alerts[0] and result.decision is decisions[0]


def test_state_notes_say_when_an_alert_is_not_counted() -> None:
    state = DemoState(model="churn", shift_ts=SHIFT_TS)
    assert "BEFORE the shift" in state.add_alert(_alert(SHIFT_TS - 10))
    assert "after the shift" in state.add_alert(_alert(SHIFT_TS + 10, alert_id="a2"))
    assert "v3 promoted" in state.add_decision(_decision("a2", version="3"))
    assert len(state.alerts) == 2 and len(state.decisions) == 1


def test_render_shows_the_loop_and_the_links() -> None:
    plan = DemoPlan()
    state = DemoState(model="churn", shift_ts=SHIFT_TS, alerts=[_alert(SHIFT_TS + 30)],
                      decisions=[_decision("a1")], mlflow_versions={"1": "champion"}, events_in=1234.0)
    console = Console(file=io.StringIO(), width=140, record=True)
    console.print(render(state, plan, {"MLflow UI": "http://127.0.0.1:5000"}, elapsed_s=12.0))
    text = console.export_text()
    assert "complete" in text and "v1 (champion)" in text and "http://127.0.0.1:5000" in text
    assert "concept/critical" in text and "1,234" in text


def test_scrape_sums_samples_of_a_real_metrics_endpoint() -> None:
    metrics = Metrics("ingest")
    metrics.events_in.labels(service="ingest", topic="p").inc(3)
    metrics.events_in.labels(service="ingest", topic="o").inc(4)
    with MetricsServer(metrics.registry, host="127.0.0.1", port=0) as server:
        totals = scrape(f"http://127.0.0.1:{server.port}/metrics")
    assert totals["driftline_events_in_total"] == 7.0
    assert totals["driftline_build_info"] == 1.0
    assert scrape("http://127.0.0.1:9/metrics") == {}  # nothing listens: empty, not an exception


def test_stop_all_stops_children_and_kills_one_that_ignores_sigterm(tmp_path: Path) -> None:
    polite = ChildProcess("polite", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "p.log", {})
    stubborn = ChildProcess("stubborn", [sys.executable, "-c", (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(60)")], tmp_path / "s.log", {})
    polite.start()
    stubborn.start()
    deadline = time.monotonic() + 10
    while "ready" not in (tmp_path / "s.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    stop_all([polite, stubborn], timeout_s=2.0)
    assert time.monotonic() - started < 8
    assert polite.exit_code is not None and polite.exit_code < 0  # ended by SIGTERM
    assert stubborn.exit_code == -9  # SIGKILL after the timeout


@pytest.mark.integration
def test_demo_closes_the_loop_on_real_kafka_and_mlflow(kafka, mlflow_server: str, tmp_path: Path) -> None:
    """The whole demo against the session's broker and MLflow: alert, retrain run, registered version, exit 0."""
    from confluent_kafka.admin import AdminClient
    from mlflow import MlflowClient

    tag = uuid.uuid4().hex[:8]
    plan = DemoPlan(data_dir=tmp_path / "demo", duration_s=150.0, model=f"demo-{tag}", rate=0.0,
                    bootstrap=kafka.bootstrap, tracking_uri=mlflow_server, topic_prefix=f"test{tag}.")
    output = io.StringIO()
    client = MlflowClient(mlflow_server)
    try:
        code = run_demo(plan, LocalSettings(), Console(file=output, width=200), live=False)
        log = output.getvalue()
        assert code == 0, log
        assert "loop complete" in log
        versions = client.search_model_versions(f"name='{plan.model}'")
        assert versions, log
        run = client.get_run(versions[0].run_id)
        assert run.data.tags.get("driftline.alert_id"), run.data.tags
        assert not list((tmp_path / "demo").glob("**/*.pid"))  # nothing of ours left running
    finally:
        with contextlib.suppress(Exception):
            client.delete_registered_model(plan.model)
        admin = AdminClient(kafka.client_config())
        ours = [t for t in admin.list_topics(timeout=10).topics if t.startswith(plan.topic_prefix)]
        if ours:
            for future in admin.delete_topics(ours).values():
                with contextlib.suppress(Exception):
                    future.result(timeout=30)


def test_without_a_broker_the_demo_fails_fast_with_a_reason(tmp_path: Path) -> None:
    plan = DemoPlan(data_dir=tmp_path / "demo", duration_s=3.0, bootstrap="127.0.0.1:9",
                    tracking_uri="http://127.0.0.1:9", topic_prefix="nobroker.")
    output = io.StringIO()
    started = time.monotonic()
    environment = dict(os.environ)
    code = run_demo(plan, LocalSettings(), Console(file=output, width=200), live=False)
    assert dict(os.environ) == environment  # the demo's own MLflow client settings do not leak
    assert code == 1
    assert "creating topics on 127.0.0.1:9 failed" in output.getvalue()
    assert "loop NOT complete" in output.getvalue()
    assert time.monotonic() - started < 30


class _IdleWatcher:
    """Sees nothing happen: the loop never closes."""

    def poll(self, state: DemoState) -> None:
        time.sleep(0.05)


class _Child:
    def __init__(self, exit_code: int | None, log_path: Path) -> None:
        self.exit_code = exit_code
        self.log_path = log_path


def test_watch_gives_up_at_the_deadline_with_what_is_missing(tmp_path: Path) -> None:
    state = DemoState(model="churn", shift_ts=SHIFT_TS)
    notes: list[str] = []
    result = watch_loop(DemoPlan(), state, _IdleWatcher(), {"ingest": _Child(None, tmp_path / "i.log")},
                    _Child(0, tmp_path / "s.log"), time.monotonic() + 0.5, notes.append, notes.append)
    assert result == LoopVerdict(False, "no drift alert with action=retrain about a window after the shift yet")
    assert state.simulator_done


class _ScriptedWatcher:
    """Delivers one scripted (alerts, decisions) step per poll, then nothing."""

    def __init__(self, steps: list[tuple[list[DriftAlert], list[ModelEvent]]]) -> None:
        self.steps = steps

    def poll(self, state: DemoState) -> None:
        time.sleep(0.01)
        if self.steps:
            alerts, decisions = self.steps.pop(0)
            for alert in alerts:
                state.add_alert(alert)
            for decision in decisions:
                state.add_decision(decision)
                state.mlflow_versions[decision.version] = decision.action


def _watch(steps: list[tuple[list[DriftAlert], list[ModelEvent]]], tmp_path: Path,
           wait_s: float) -> tuple[LoopVerdict, float]:
    state = DemoState(model="churn", shift_ts=SHIFT_TS)
    started = time.monotonic()
    result = watch_loop(DemoPlan(promotion_wait_s=wait_s), state, _ScriptedWatcher(steps),
                        {"ingest": _Child(None, tmp_path / "i.log")}, _Child(0, tmp_path / "s.log"),
                        time.monotonic() + 10, print, print)
    return result, time.monotonic() - started


def test_watch_waits_after_a_challenger_for_a_later_alerts_promotion(tmp_path: Path) -> None:
    first, second = _alert(SHIFT_TS + 30, alert_id="a1"), _alert(SHIFT_TS + 60, alert_id="a2")
    steps = [([first], [_decision("a1", action="challenger")]), ([], []), ([second], [_decision("a2", version="2")])]
    result, _ = _watch(steps, tmp_path, wait_s=5.0)
    assert result.completed and result.decision is not None
    assert (result.decision.alert_id, result.decision.action, result.decision.version) == ("a2", "promoted", "2")


def test_watch_settles_for_the_challenger_when_no_promotion_comes(tmp_path: Path) -> None:
    result, elapsed = _watch([([_alert(SHIFT_TS + 30)], [_decision("a1", action="challenger")])], tmp_path,
                             wait_s=0.5)
    assert result.completed and result.decision is not None and result.decision.action == "challenger"
    assert 0.5 <= elapsed < 5  # waited for a promotion, then settled: not until the deadline


def test_verdict_prefers_a_promotion_among_the_answers() -> None:
    alerts = [_alert(SHIFT_TS + 30, alert_id="a1"), _alert(SHIFT_TS + 60, alert_id="a2")]
    decisions = [_decision("a1", action="challenger"), _decision("a2", version="2")]
    state = DemoState(model="churn", shift_ts=SHIFT_TS, alerts=alerts, decisions=decisions,
                      mlflow_versions={"1": "challenger", "2": "champion"})
    result = verdict(state)
    assert result.decision is decisions[1] and result.alert is alerts[1]


def test_watch_stops_when_a_service_dies(tmp_path: Path) -> None:
    (tmp_path / "m.log").write_text("Traceback: boom\n")
    with pytest.raises(DemoError, match="monitor exited with code 1"):
        watch_loop(DemoPlan(), DemoState(model="churn"), _IdleWatcher(), {"monitor": _Child(1, tmp_path / "m.log")},
               _Child(None, tmp_path / "s.log"), time.monotonic() + 5, print, print)


def test_the_command_is_wired_and_rejects_an_unknown_scenario() -> None:
    from typer.testing import CliRunner

    from driftline.cli import app

    runner = CliRunner()
    assert "demo" in runner.invoke(app, ["--help"]).output
    result = runner.invoke(app, ["demo", "--scenario", "earthquake"])
    assert result.exit_code == 2
    assert "--scenario must be one of" in result.output

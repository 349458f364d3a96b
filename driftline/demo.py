"""`driftline demo`: the whole loop on one machine, shown as it happens, and checked honestly.

The demo starts a local Kafka broker and MLflow server (no Docker; data in ``var/demo``),
creates the topics, builds the model's reference profile from the simulator's no-drift
sample, starts ``driftline ingest``, ``monitor`` and ``retrain-worker`` as subprocesses with
a generated config (short event-time windows), and replays a simulated stream whose drift
begins at a known event time. It then watches the loop close through the system's own
outputs: the `alerts` and `models` topics, the services' ``/metrics`` and MLflow.

The loop counts as complete only when three things hold (`verdict`): a drift alert with
``action=retrain`` about a window that ends after the drift began (an alarm before the shift is
shown, never counted), a registry decision on `models` answering that very alert, and the
decision's model version present in MLflow. The command exits 0 then and non-zero when the
time runs out first, so it is a check as much as a show. Everything it started is stopped on
the way out, on success, failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from driftline.local.process import LocalServiceError, port_is_free, tail
from driftline.options import ConfigOption, config_or_exit

if TYPE_CHECKING:
    from confluent_kafka import Consumer
    from rich.console import Console, RenderableType

    from driftline.config import DriftlineConfig, LocalSettings
    from driftline.schemas.events import DriftAlert, ModelEvent

__all__ = [
    "ChildProcess",
    "DemoError",
    "DemoPlan",
    "DemoState",
    "LoopVerdict",
    "LoopWatcher",
    "demo_config",
    "register",
    "render",
    "run_demo",
    "scrape",
    "stop_all",
    "verdict",
    "watch_loop",
    "write_toml",
]

SERVICES = ("ingest", "monitor", "retrain-worker")
DECISIONS = frozenset({"promoted", "challenger"})
TEMPLATE = "churn"  # the simulator's tabular classification model


@dataclass(frozen=True)
class DemoPlan:
    """Every setting of one demo run (`driftline demo` exposes the ones worth changing).

    Event time and wall-clock time are separate: ``events / events_per_s`` seconds of event
    time are replayed at ``rate`` records per wall-clock second, so windows of a minute close
    in about a second. The loop is complete at the first registered answer to an alert; when
    that answer is a challenger (the first alert's window may hold mostly data from before the
    drift), the demo watches up to ``promotion_wait_s`` longer for a later alert's promotion.
    """

    data_dir: Path = Path("var/demo")
    duration_s: float = 180.0
    model: str = "churn"
    scenario: str = "concept"
    events: int = 30_000
    events_per_s: float = 50.0
    rate: float = 4_000.0
    label_delay_s: float = 20.0
    reference_n: int = 5_000
    seed: int = 0
    pane_s: float = 10.0
    window_s: float = 60.0
    step_s: float = 30.0
    partitions: int = 2
    topic_prefix: str = "demo."
    kafka_port: int = 39092
    controller_port: int = 39093
    mlflow_port: int = 5000
    bootstrap: str | None = None
    tracking_uri: str | None = None
    keep_running: bool = False
    promotion_wait_s: float = 30.0

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.events <= 0 or self.events_per_s <= 0:
            raise ValueError("duration_s, events and events_per_s must be > 0")

    @property
    def event_span_s(self) -> float:
        """Event time the simulated predictions cover."""
        return self.events / self.events_per_s

    @property
    def shift_at_s(self) -> float:
        """The drift begins halfway: as much clean history before it as drifted data after it."""
        return self.event_span_s / 2


def demo_config(plan: DemoPlan, *, bootstrap: str, tracking_uri: str, metrics_ports: Mapping[str, int]
                ) -> dict[str, dict[str, Any]]:
    """The services' configuration for the demo: short event-time windows, demo-scoped names.

    Group ids carry the topic prefix so a demo against a shared broker never joins another
    deployment's consumer groups. Hysteresis of two windows keeps a half-filled first window
    from alerting; the retrain worker learns from one window before the alert (mostly drifted
    data), so after concept drift its candidate can beat what served.
    """
    prefix = plan.topic_prefix
    return {
        "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "partitions": plan.partitions,
                  "replication_factor": 1},
        "ingest": {"group_id": f"{prefix}ingest", "pane_s": plan.pane_s, "allowed_lateness_s": plan.pane_s,
                   "max_label_delay_s": max(600.0, 20 * plan.label_delay_s), "commit_interval_s": 0.5},
        "monitor": {"group_id": f"{prefix}monitor", "window_s": plan.window_s, "step_s": plan.step_s,
                    "pane_s": plan.pane_s, "allowed_lateness_s": plan.pane_s, "hysteresis_windows": 2,
                    # one window: a chance alert before the shift must not silence the real one after it
                    "cooldown_s": plan.window_s, "min_samples": 200, "commit_interval_s": 0.5},
        "retrain": {"group_id": f"{prefix}retrain", "tracking_uri": tracking_uri, "span_s": plan.window_s,
                    "min_samples": 200, "cooldown_s": 0.0},
        "metrics": {"host": "127.0.0.1", "ingest_port": metrics_ports["ingest"],
                    "monitor_port": metrics_ports["monitor"], "retrain_port": metrics_ports["retrain-worker"],
                    "ab_port": metrics_ports["ab-analyzer"]},
    }


def write_toml(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write flat sections of strings, numbers and booleans as TOML (the stdlib only reads TOML).

    >>> import tempfile, tomllib
    >>> out = write_toml(Path(tempfile.mkdtemp()) / "x.toml", {"kafka": {"topic_prefix": 'a"b.', "partitions": 2}})
    >>> tomllib.loads(out.read_text())
    {'kafka': {'topic_prefix': 'a"b.', 'partitions': 2}}
    """
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, int | float):
                rendered = repr(value)
            else:
                rendered = json.dumps(str(value))  # JSON string escapes are valid TOML basic strings
            lines.append(f"{key} = {rendered}")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


# --- what the demo has seen -----------------------------------------------------------------


@dataclass
class DemoState:
    """What the demo knows so far, read from Kafka, the services' metrics and MLflow."""

    model: str
    shift_ts: float | None = None
    phase: str = "starting"
    events_in: float = 0.0
    events_per_s: float = 0.0
    windows_evaluated: float = 0.0
    retrain_runs: float = 0.0
    mlflow_runs: int = 0
    mlflow_experiment_id: str | None = None
    mlflow_versions: dict[str, str] = field(default_factory=dict)
    """version -> aliases/stage, as MLflow reports them."""
    alerts: list[DriftAlert] = field(default_factory=list)
    decisions: list[ModelEvent] = field(default_factory=list)
    simulator_done: bool = False
    happenings: deque[str] = field(default_factory=lambda: deque(maxlen=8))

    def after_shift(self, alert: DriftAlert) -> bool:
        """Whether the alert's window ends after the drift began, i.e. holds drifted events."""
        return self.shift_ts is not None and alert.window_end > self.shift_ts

    def add_alert(self, alert: DriftAlert) -> str:
        self.alerts.append(alert)
        when = "after the shift" if self.after_shift(alert) else "BEFORE the shift (not counted)"
        return (f"alert {alert.kind}/{alert.status} severity={alert.severity} action={alert.action} "
                f"drift_ratio={alert.drift_ratio:.2f} window ends {_clock(alert.window_end)}, {when}")

    def add_decision(self, event: ModelEvent) -> str:
        self.decisions.append(event)
        return f"registry: {event.model} v{event.version} {event.action} — {event.reason}"


@dataclass(frozen=True)
class LoopVerdict:
    """Whether the loop closed, with the evidence, or what is still missing."""

    completed: bool
    missing: str
    alert: DriftAlert | None = None
    decision: ModelEvent | None = None


def verdict(state: DemoState) -> LoopVerdict:
    """The honest check: an alert on drifted data, a decision answering it, its version in MLflow."""
    alerts = [a for a in state.alerts
              if a.status == "drift" and a.action == "retrain" and a.model == state.model and state.after_shift(a)]
    if not alerts:
        return LoopVerdict(False, "no drift alert with action=retrain about a window after the shift yet")
    by_id = {a.alert_id: a for a in alerts}
    answers = [d for d in state.decisions if d.alert_id in by_id and d.action in DECISIONS]
    if not answers:
        return LoopVerdict(False, "no registered model version answering the alert on `models` yet", alerts[0])
    visible = [d for d in answers if d.version in state.mlflow_versions]
    if visible:
        decision = next((d for d in visible if d.action == "promoted"), visible[0])
        return LoopVerdict(True, "", by_id[decision.alert_id], decision)
    return LoopVerdict(False, f"version {answers[0].version} not visible in MLflow yet", by_id[answers[0].alert_id],
                       answers[0])


# --- processes ----------------------------------------------------------------------------


def _free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else a free ephemeral port."""
    if port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and shows the relevant log."""


@dataclass
class ChildProcess:
    """A `driftline` subcommand run by the demo in its own process group, logging to a file."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    """The child's whole environment."""
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=self.env,
            )
        return self

    @property
    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def terminate(self) -> None:
        """SIGTERM to our process group: the services commit, close their clients and exit."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)

    def wait_or_kill(self, timeout_s: float) -> None:
        """Wait for the exit; SIGKILL the group after ``timeout_s``."""
        if self._process is None:
            return
        try:
            self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


def stop_all(children: list[ChildProcess], timeout_s: float = 20.0) -> None:
    """Stop several children at once: SIGTERM to all, then wait (a SIGKILL for any that hangs)."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout_s
    for child in children:
        child.wait_or_kill(max(0.1, deadline - time.monotonic()))


def _driftline(*args: str) -> list[str]:
    """argv running a driftline subcommand with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "driftline.cli", *args]


def _healthy(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=1.0).status_code == 200
    except requests.RequestException:
        return False


# --- reading the loop's state ------------------------------------------------------------------


def scrape(url: str) -> dict[str, float]:
    """Sample name -> value summed over labels, from one ``/metrics`` endpoint ({} when unreachable)."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = requests.get(url, timeout=1.0).text
    except requests.RequestException:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


class LoopWatcher:
    """Reads alerts and registry decisions from Kafka, counters from /metrics, versions from MLflow."""

    def __init__(self, cfg: DriftlineConfig, *, model: str, tracking_uri: str, metrics_urls: Mapping[str, str],
                 note: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.model = model
        self.tracking_uri = tracking_uri
        self.metrics_urls = dict(metrics_urls)
        self.note = note
        self._consumer: Consumer | None = None
        self._last_scrape = (time.monotonic(), 0.0)
        self._next_mlflow = 0.0

    def __enter__(self) -> LoopWatcher:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self._consumer = Consumer(self.cfg.kafka.client_config(**{
            "group.id": f"{self.cfg.kafka.topic_prefix}demo-view-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
        }))
        topics = [self.cfg.kafka.topic("alerts"), self.cfg.kafka.topic("models")]
        metadata = self._consumer.list_topics(timeout=30).topics
        self._consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)
                               for topic in topics for partition in metadata[topic].partitions])
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def poll(self, state: DemoState) -> None:
        """Bring ``state`` up to date; returns within about a second."""
        self._read_topics(state)
        self._read_metrics(state)
        if time.monotonic() >= self._next_mlflow:
            self._next_mlflow = time.monotonic() + 2.0
            self._read_mlflow(state)

    def _read_topics(self, state: DemoState) -> None:
        from driftline.schemas.events import DriftAlert, ModelEvent

        assert self._consumer is not None, "use LoopWatcher as a context manager"
        alerts_topic = self.cfg.kafka.topic("alerts")
        for message in self._consumer.consume(num_messages=500, timeout=0.3):
            if message.error() is not None or message.value() is None:
                continue
            try:
                if message.topic() == alerts_topic:
                    alert = DriftAlert.model_validate_json(message.value())
                    if alert.model == self.model:
                        self.note(state.add_alert(alert))
                else:
                    event = ModelEvent.model_validate_json(message.value())
                    if event.model == self.model:
                        self.note(state.add_decision(event))
            except ValueError as exc:  # another writer's record: show it, do not stop the demo
                self.note(f"unreadable record on {message.topic()}: {exc}")

    def _read_metrics(self, state: DemoState) -> None:
        ingest = scrape(self.metrics_urls["ingest"])
        if ingest:
            now = time.monotonic()
            events_in = ingest.get("driftline_events_in_total", 0.0)
            then, before = self._last_scrape
            if now - then >= 0.5:
                state.events_per_s = max(0.0, (events_in - before) / (now - then))
                self._last_scrape = (now, events_in)
            state.events_in = events_in
        monitor = scrape(self.metrics_urls["monitor"])
        state.windows_evaluated = monitor.get("driftline_windows_evaluated_total", state.windows_evaluated)
        retrain = scrape(self.metrics_urls["retrain-worker"])
        state.retrain_runs = retrain.get("driftline_retrain_runs_total", state.retrain_runs)

    def _read_mlflow(self, state: DemoState) -> None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(self.tracking_uri)
        try:
            versions = client.search_model_versions(f"name='{self.model}'")
            experiment = client.get_experiment_by_name(f"{self.cfg.retrain.experiment_prefix}{self.model}")
            runs = client.search_runs([experiment.experiment_id], max_results=100) if experiment else []
        except (MlflowException, OSError) as exc:
            state.happenings.append(f"MLflow not answering: {exc}")
            return
        for version in versions:
            stage = version.current_stage if version.current_stage not in (None, "None") else "registered"
            described = ",".join(version.aliases) or stage
            if state.mlflow_versions.get(version.version) != described:
                if version.version not in state.mlflow_versions:
                    self.note(f"MLflow: model {self.model} version {version.version} registered ({described})")
                state.mlflow_versions[version.version] = described
        state.mlflow_runs = len(runs)
        if experiment is not None:
            state.mlflow_experiment_id = experiment.experiment_id


# --- the view ------------------------------------------------------------------------------------


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def render(state: DemoState, plan: DemoPlan, links: Mapping[str, str], elapsed_s: float) -> RenderableType:
    """The live view: progress of each stage of the loop and where to look further."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    # Live re-renders from its own thread while the main thread updates the state: read copies
    # (C-level copies are atomic; iterating a dict or deque that grows meanwhile is not)
    alerts = [a for a in list(state.alerts) if a.status == "drift"]
    decisions = list(state.decisions)
    versions = state.mlflow_versions.copy()
    happenings = state.happenings.copy()
    loop = verdict(state)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    table.add_row("phase", f"{state.phase}  [dim]({elapsed_s:.0f} s of {plan.duration_s:.0f} s)[/dim]")
    table.add_row("events in", f"{state.events_in:,.0f}  ({state.events_per_s:,.0f}/s)"
                               f"{'  simulator done' if state.simulator_done else ''}")
    table.add_row("windows evaluated", f"{state.windows_evaluated:,.0f}  "
                                       f"[dim]({plan.window_s:.0f} s windows every {plan.step_s:.0f} s, event time; "
                                       f"drift '{plan.scenario}' from {_clock(state.shift_ts or 0)})[/dim]")
    table.add_row("drift alerts", ", ".join(
        f"{a.kind}/{a.severity}{'' if state.after_shift(a) else ' (before shift)'}" for a in alerts) or "—")
    table.add_row("retrain runs", f"{state.mlflow_runs} in MLflow; the worker handled {state.retrain_runs:.0f} "
                                  "alert(s)")
    table.add_row("decisions", "; ".join(f"v{d.version} {d.action}" for d in decisions) or "—")
    table.add_row("model versions", ", ".join(
        f"v{v} ({aliases})" for v, aliases in sorted(versions.items(), key=lambda kv: int(kv[0]))) or "—")
    table.add_row("loop", "[bold green]complete[/bold green]" if loop.completed else f"[yellow]{loop.missing}[/yellow]")
    for name, url in links.items():
        table.add_row(name, Text(url))
    recent = Text("\n".join(happenings)) if happenings else Text("nothing yet", style="dim")
    return Group(Panel(table, title=f"driftline demo — model {plan.model}", border_style="cyan"),
                 Panel(recent, title="as it happens", border_style="dim"))


# --- orchestration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Servers:
    bootstrap: str
    tracking_uri: str


def _clean(plan: DemoPlan, local: LocalSettings) -> None:
    """A fresh start: stop a previous demo's broker and MLflow (by their pid files) and drop their data."""
    from driftline.local.kafka import LocalKafka
    from driftline.local.mlflow_server import LocalMlflow

    if plan.bootstrap is None:
        LocalKafka(version=local.kafka_version, cache_dir=local.cache_dir, data_dir=plan.data_dir / "kafka").stop()
        shutil.rmtree(plan.data_dir / "kafka", ignore_errors=True)
    if plan.tracking_uri is None:
        LocalMlflow(data_dir=plan.data_dir / "mlflow").stop()
        shutil.rmtree(plan.data_dir / "mlflow", ignore_errors=True)
    for leftover in ("logs", "reference"):
        shutil.rmtree(plan.data_dir / leftover, ignore_errors=True)


def _start_servers(plan: DemoPlan, local: LocalSettings, stack: contextlib.ExitStack) -> _Servers:
    """The local broker and MLflow, started side by side; each is stopped when the stack closes."""
    from driftline.local.kafka import LocalKafka
    from driftline.local.mlflow_server import LocalMlflow

    jobs: dict[str, Callable[[], str]] = {}
    if plan.bootstrap is None:
        broker = LocalKafka(version=local.kafka_version, cache_dir=local.cache_dir, data_dir=plan.data_dir / "kafka",
                            port=_free_port(plan.kafka_port), controller_port=_free_port(plan.controller_port),
                            heap="512M", start_timeout_s=local.start_timeout_s)
        stack.callback(broker.stop)
        jobs["kafka"] = lambda: broker.start().bootstrap
    if plan.tracking_uri is None:
        mlflow = LocalMlflow(data_dir=plan.data_dir / "mlflow", port=_free_port(plan.mlflow_port),
                             start_timeout_s=local.start_timeout_s)
        stack.callback(mlflow.stop)
        jobs["mlflow"] = lambda: mlflow.start().tracking_uri
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        started = {name: future.result() for name, future in futures.items()}
    return _Servers(bootstrap=plan.bootstrap or started["kafka"], tracking_uri=plan.tracking_uri or started["mlflow"])


def _write_reference_sample(plan: DemoPlan, simulator_start_ts: float, out_dir: Path) -> Path:
    """The simulator's no-drift sample of the model, as parquet for `driftline reference build`."""
    from driftline.producers.simulator import ModelSpec, Simulator

    simulator = Simulator([ModelSpec.parse(f"{plan.model}:{TEMPLATE}")], seed=plan.seed,
                          start_ts=simulator_start_ts, events_per_s=plan.events_per_s)
    return simulator.write_references(out_dir, plan.reference_n)[plan.model]


def _wait_healthy(children: Mapping[str, ChildProcess], urls: Mapping[str, str], deadline: float) -> None:
    waiting = dict(children)
    while waiting:
        for name, child in list(waiting.items()):
            if child.exit_code is not None:
                raise DemoError(f"{name} exited with code {child.exit_code} while starting:\n{tail(child.log_path)}")
            if _healthy(urls[name]):
                del waiting[name]
        if time.monotonic() > deadline:
            names = ", ".join(waiting)
            raise DemoError(f"{names} not healthy in time:\n" + "\n".join(tail(c.log_path) for c in waiting.values()))
        time.sleep(0.3)


@dataclass(frozen=True)
class _Prepared:
    """What the services need once broker, MLflow, config, topics and reference are ready."""

    cfg: DriftlineConfig
    config_path: Path
    tracking_uri: str
    env: dict[str, str]
    metrics_urls: dict[str, str]
    health_urls: dict[str, str]
    simulator_start_ts: float


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set variables for this process while the demo runs (unless already set), then restore them."""
    previous = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        os.environ.setdefault(name, value)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _prepare(plan: DemoPlan, local: LocalSettings, stack: contextlib.ExitStack, env: Mapping[str, str],
             deadline: float, links: dict[str, str], phase: Callable[[str], None],
             note: Callable[[str], None]) -> _Prepared:
    """Fresh data, broker and MLflow, the generated config, the topics and the reference profile."""
    from confluent_kafka import KafkaException

    from driftline.config import load_config
    from driftline.topics import ensure_topics

    phase("cleaning up a previous demo")
    _clean(plan, local)
    phase("starting Kafka and MLflow" if plan.bootstrap is None else "starting MLflow")
    servers = _start_servers(plan, local, stack)
    links["MLflow UI"] = servers.tracking_uri
    links["Kafka"] = servers.bootstrap
    ports = {name: _free_port(port) for name, port in
             (("ingest", 9464), ("monitor", 9465), ("retrain-worker", 9466), ("ab-analyzer", 9467))}
    config_path = write_toml(plan.data_dir / "driftline.toml", demo_config(
        plan, bootstrap=servers.bootstrap, tracking_uri=servers.tracking_uri, metrics_ports=ports))
    cfg = load_config(config_path)
    metrics_urls = {name: f"http://127.0.0.1:{ports[name]}/metrics" for name in SERVICES}
    links.update({f"{name} metrics": url for name, url in metrics_urls.items()})
    links["config and logs"] = f"{config_path}  {plan.data_dir / 'logs'}/"

    phase("creating topics")
    try:
        created = ensure_topics(cfg.kafka, timeout_s=max(1.0, min(30.0, deadline - time.monotonic())))
    except KafkaException as exc:
        raise DemoError(f"creating topics on {servers.bootstrap} failed: {exc}") from None
    note(f"{sum(status == 'created' for status in created.values())} topics created, prefix "
         f"{cfg.kafka.topic_prefix!r}")

    # event time ends about now: the stream looks like the last minutes of production traffic
    simulator_start_ts = time.time() - plan.event_span_s - 60.0
    child_env = {**env, "MLFLOW_TRACKING_URI": servers.tracking_uri, "DRIFTLINE_CONFIG": str(config_path)}
    phase("building the reference profile from the simulator's no-drift sample")
    sample = _write_reference_sample(plan, simulator_start_ts, plan.data_dir / "reference")
    reference = ChildProcess("reference", _driftline(
        "reference", "build", "--config", str(config_path), "--model", plan.model, "--task", "classification",
        "--from", str(sample)), plan.data_dir / "logs" / "reference.log", child_env).start()
    reference.wait_or_kill(max(1.0, deadline - time.monotonic()))
    if reference.exit_code != 0:
        raise DemoError(f"reference build failed ({reference.exit_code}):\n{tail(reference.log_path)}")
    note(tail(reference.log_path, 1))
    return _Prepared(cfg=cfg, config_path=config_path, tracking_uri=servers.tracking_uri, env=child_env,
                     metrics_urls=metrics_urls,
                     health_urls={name: f"http://127.0.0.1:{ports[name]}/healthz" for name in SERVICES},
                     simulator_start_ts=simulator_start_ts)


def _simulator(plan: DemoPlan, prepared: _Prepared) -> ChildProcess:
    """`driftline simulate` for the plan's model: clean history, then the scenario's drift halfway."""
    return ChildProcess("simulate", _driftline(
        "simulate", "--config", str(prepared.config_path), "--models", f"{plan.model}:{TEMPLATE}",
        "--events", str(plan.events), "--events-per-s", str(plan.events_per_s), "--scenario", plan.scenario,
        "--shift-at-s", str(plan.shift_at_s), "--rate", str(plan.rate), "--label-delay-s", str(plan.label_delay_s),
        "--start-ts", f"{prepared.simulator_start_ts:.3f}", "--seed", str(plan.seed), "--no-progress",
    ), plan.data_dir / "logs" / "simulate.log", prepared.env)


def run_demo(plan: DemoPlan, local: LocalSettings, console: Console, *, live: bool) -> int:
    """Run the demo; 0 when the loop completed, 1 when it did not in time or a step failed, 130 on Ctrl-C."""
    from rich.live import Live

    started = time.monotonic()
    deadline = started + plan.duration_s
    state = DemoState(model=plan.model)
    links: dict[str, str] = {}
    inherited_env = dict(os.environ)  # the children's environment, before the demo's own settings

    def note(line: str) -> None:
        stamped = f"[{time.monotonic() - started:5.1f}s] {line}"
        state.happenings.append(stamped)
        if not live:
            console.print(stamped, markup=False, highlight=False, soft_wrap=True)

    def phase(name: str) -> None:
        state.phase = name
        note(name)

    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    outcome: LoopVerdict | None = None
    code = 1
    try:
        with contextlib.ExitStack() as stack:
            # the demo's own MLflow reads fail fast when the server is gone instead of retrying for minutes
            stack.enter_context(_environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="1", MLFLOW_HTTP_REQUEST_TIMEOUT="10"))
            if live:
                stack.enter_context(Live(get_renderable=lambda: render(state, plan, links, time.monotonic() - started),
                                         console=console, refresh_per_second=4))
            prepared = _prepare(plan, local, stack, inherited_env, deadline, links, phase, note)
            state.shift_ts = prepared.simulator_start_ts + plan.shift_at_s

            phase("starting ingest, monitor and retrain-worker")
            children = {name: ChildProcess(name, _driftline(name, "--config", str(prepared.config_path)),
                                           plan.data_dir / "logs" / f"{name}.log", prepared.env).start()
                        for name in SERVICES}
            started_children = list(children.values())  # the simulator joins the list when it starts
            stack.callback(stop_all, started_children)
            _wait_healthy(children, prepared.health_urls, min(deadline, time.monotonic() + 90.0))
            note("services healthy")

            watcher = stack.enter_context(LoopWatcher(prepared.cfg, model=plan.model,
                                                      tracking_uri=prepared.tracking_uri,
                                                      metrics_urls=prepared.metrics_urls, note=note))
            phase(f"simulating {plan.events:,} predictions, drift '{plan.scenario}' at +{plan.shift_at_s:.0f} s")
            simulator = _simulator(plan, prepared).start()
            started_children.append(simulator)

            outcome = watch_loop(plan, state, watcher, children, simulator, deadline, phase, note)
            code = 0 if outcome.completed else 1
            if outcome.completed and plan.keep_running:
                phase("loop complete; the stack keeps running — Ctrl-C stops it")
                while True:
                    watcher.poll(state)
            phase("stopping everything")
    except KeyboardInterrupt:
        code = 130
        note("interrupted; everything the demo started is stopped")
    except (DemoError, LocalServiceError) as exc:
        code = 1
        console.print(f"demo failed: {exc}", style="red", markup=False, soft_wrap=True)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    _summary(console, plan, state, outcome, links, time.monotonic() - started, code)
    return code


def watch_loop(plan: DemoPlan, state: DemoState, watcher: LoopWatcher, children: Mapping[str, ChildProcess],
           simulator: ChildProcess, deadline: float, phase: Callable[[str], None],
           note: Callable[[str], None]) -> LoopVerdict:
    """Follow the loop until it completes or the time is up; a service that dies ends the demo."""
    next_progress = time.monotonic() + 5.0
    outcome = verdict(state)
    settle_until: float | None = None  # complete with a challenger: how long to wait for a promotion
    while time.monotonic() < deadline:
        watcher.poll(state)
        for name, child in children.items():
            if child.exit_code is not None:
                raise DemoError(f"{name} exited with code {child.exit_code}:\n{tail(child.log_path)}")
        if not state.simulator_done and simulator.exit_code is not None:
            if simulator.exit_code != 0:
                raise DemoError(f"the simulator failed ({simulator.exit_code}):\n{tail(simulator.log_path)}")
            state.simulator_done = True
            phase("stream sent; waiting for the alert and the retrain")
        outcome = verdict(state)
        if outcome.completed:
            assert outcome.decision is not None
            if outcome.decision.action == "promoted" or (settle_until is not None and time.monotonic() >= settle_until):
                phase("loop complete")
                return outcome
            if settle_until is None:
                settle_until = min(deadline, time.monotonic() + plan.promotion_wait_s)
                note(f"the first answer is a challenger; watching up to {plan.promotion_wait_s:.0f} s for a "
                     "later alert's retrain to be promoted")
            continue
        if time.monotonic() >= next_progress:
            next_progress += 5.0
            note(f"progress: {state.events_in:,.0f} events in, {state.windows_evaluated:.0f} windows, "
                 f"{len(state.alerts)} alerts, {len(state.decisions)} decisions, "
                 f"{len(state.mlflow_versions)} versions — {outcome.missing}")
    if outcome.completed:
        phase("loop complete")
    return outcome


def _summary(console: Console, plan: DemoPlan, state: DemoState, outcome: LoopVerdict | None,
             links: Mapping[str, str], elapsed_s: float, code: int) -> None:
    if outcome is not None and outcome.completed:
        assert outcome.alert is not None and outcome.decision is not None
        alert, decision = outcome.alert, outcome.decision
        run = decision.run_id
        if run and state.mlflow_experiment_id and "MLflow UI" in links:
            run = f"{links['MLflow UI']}/#/experiments/{state.mlflow_experiment_id}/runs/{decision.run_id}"
        console.print(f"[bold green]loop complete in {elapsed_s:.0f} s[/bold green]: {alert.kind} drift alert "
                      f"(severity {alert.severity}, drift ratio {alert.drift_ratio:.2f}, window ending "
                      f"{_clock(alert.window_end)}) → MLflow run {run} → {plan.model} "
                      f"v{decision.version} {decision.action}: {decision.reason}", soft_wrap=True)
    elif code != 130:
        missing = outcome.missing if outcome is not None else "the demo did not reach the watching stage"
        console.print(f"[bold red]loop NOT complete after {elapsed_s:.0f} s[/bold red]: {missing}", soft_wrap=True)
    console.print(f"events in {state.events_in:,.0f}, windows evaluated {state.windows_evaluated:.0f}, "
                  f"alerts {len(state.alerts)}, registry decisions {len(state.decisions)}; "
                  f"logs in {plan.data_dir / 'logs'}", highlight=False, soft_wrap=True)
    if links.get("MLflow UI") and plan.tracking_uri is None:
        console.print(f"MLflow data stays in {plan.data_dir / 'mlflow'}: `driftline mlflow start --data-dir "
                      f"{plan.data_dir}` shows it again", highlight=False, soft_wrap=True)


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


# --- command ------------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    """Add `driftline demo` to the root CLI."""

    @app.command("demo")
    def demo(
        config: ConfigOption = None,
        duration: Annotated[float, typer.Option("--duration", min=10, help="give up (exit 1) after this many "
                                                "seconds")] = 180.0,
        data_dir: Annotated[Path, typer.Option("--data-dir", help="broker, MLflow, config and logs")] = Path(
            "var/demo"),
        scenario: Annotated[str, typer.Option(help="drift: concept|sudden|gradual|new_category|prediction_shift")
                            ] = "concept",
        model: Annotated[str, typer.Option(help="name of the simulated churn classifier")] = "churn",
        events: Annotated[int, typer.Option(min=1000, help="predictions to simulate")] = 30_000,
        rate: Annotated[float, typer.Option(min=0, help="records per wall-clock second; 0 = max")] = 4_000.0,
        seed: int = 0,
        bootstrap: Annotated[str | None, typer.Option(help="use this Kafka instead of starting one")] = None,
        tracking_uri: Annotated[str | None, typer.Option(help="use this MLflow instead of starting one")] = None,
        topic_prefix: Annotated[str, typer.Option(help="prefix of the demo's topics and groups")] = "demo.",
        mlflow_port: Annotated[int, typer.Option(help="local MLflow UI port (a free one if taken)")] = 5000,
        keep_running: Annotated[bool, typer.Option("--keep-running", help="after success, run on until "
                                                   "Ctrl-C")] = False,
        live: Annotated[bool | None, typer.Option("--live/--plain", help="live view (default: when a "
                                                  "terminal)")] = None,
    ) -> None:
        """Run the whole loop locally: drift, alert, MLflow retrain, new model version; exit 1 if it fails."""
        from rich.console import Console

        from driftline.producers.scenarios import SCENARIOS

        if scenario not in SCENARIOS or scenario == "none":
            typer.echo(f"--scenario must be one of {', '.join(s for s in SCENARIOS if s != 'none')}", err=True)
            raise typer.Exit(2)
        local = config_or_exit(config).local
        plan = DemoPlan(data_dir=data_dir, duration_s=duration, scenario=scenario, model=model, events=events,
                        rate=rate, seed=seed, bootstrap=bootstrap, tracking_uri=tracking_uri,
                        topic_prefix=topic_prefix, mlflow_port=mlflow_port, keep_running=keep_running)
        console = Console()
        raise typer.Exit(run_demo(plan, local, console, live=console.is_terminal if live is None else live))

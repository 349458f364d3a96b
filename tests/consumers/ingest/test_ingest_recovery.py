"""`driftline ingest` as real subprocesses: kill -9 mid-stream and restart; two processes in one group.

Both are compared with an uninterrupted in-process run of the same simulated stream on its own
topic set: the same labeled events (none missing, none duplicated: transactions, read
committed), the same panes, and the same alerts once the monitor has read the panes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from driftline.schemas.events import LabeledEvent
from driftline.schemas.profiles import PanePartial

# The end-to-end helpers live beside the common adapters' tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from pipeline import Pipeline, Run, free_port, referenced_pipeline, run_monitor, run_pipeline, simulator

N_PREDICTIONS = 12_000


@pytest.fixture(scope="module")
def reference_run(kafka) -> Iterator[Run]:
    run = run_pipeline(kafka.bootstrap, f"test{uuid.uuid4().hex[:8]}.", simulator(), N_PREDICTIONS)
    yield run
    run.pipeline.delete_topics()


@pytest.fixture
def fresh_pipeline(kafka) -> Iterator[Pipeline]:
    """A topic set holding the same simulated stream as the reference run, deleted afterwards."""
    with referenced_pipeline(kafka.bootstrap) as (pipeline, sim):
        pipeline.feed(sim, N_PREDICTIONS)
        yield pipeline


def start_ingest(config: Path, instance: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DRIFTLINE_METRICS__INGEST_PORT": str(port)}
    command = [sys.executable, "-m", "driftline.cli", "ingest", "--config", str(config), "--instance", instance,
               "--log-level", "WARNING"]
    return subprocess.Popen(command, env=env)


def scrape(port: int, name: str) -> float:
    """Sum of a metric's samples on a live /metrics endpoint (0 while it is not up)."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except requests.ConnectionError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def wait_until_committed(pipeline: Pipeline, group_id: str, timeout_s: float = 90.0) -> None:
    """Until the group's committed offsets reach the end of predictions and outcomes."""
    cfg = pipeline.config()
    partitions = [TopicPartition(cfg.kafka.topic(t), p) for t in ("predictions", "outcomes")
                  for p in range(pipeline.partitions)]
    probe = Consumer({"bootstrap.servers": pipeline.bootstrap, "group.id": group_id})
    try:
        ends = {(tp.topic, tp.partition): probe.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            committed = probe.committed(partitions, timeout=10)
            if all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in committed):
                return
            time.sleep(0.3)
        raise AssertionError(f"group {group_id} did not commit to the end within {timeout_s} s")
    finally:
        probe.close()


def wait_until_labeled(pipeline: Pipeline, expected: int, timeout_s: float = 60.0) -> None:
    """Until ``labeled`` holds ``expected`` committed events (held events are released at end of input)."""
    deadline = time.monotonic() + timeout_s
    while len(pipeline.read("labeled")) < expected:
        assert time.monotonic() < deadline, f"fewer than {expected} labeled events after {timeout_s} s"
        time.sleep(0.5)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0


def assert_same_outputs(pipeline: Pipeline, reference: Run) -> None:
    labeled = pipeline.read("labeled", LabeledEvent)
    expected_labeled = reference.pipeline.read("labeled", LabeledEvent)
    assert len(labeled) == len({e.event_id for e in labeled}), "duplicate labeled events"
    assert {e.event_id for e in labeled} == {e.event_id for e in expected_labeled}, "labeled events missing"
    panes = pipeline.read("panes", PanePartial)
    keys = Counter((p.source, p.model, p.pane_start) for p in panes)
    assert max(keys.values()) == 1, "a pane was emitted twice"
    expected_panes = reference.pipeline.read("panes", PanePartial)

    def with_data(partials: list[PanePartial]) -> set[tuple[str, str, float, int]]:
        # Empty heartbeats before a model's first event depend on where the first batch ended; not compared.
        return {(p.source, p.model, p.pane_start, p.n_events) for p in partials if p.n_events or p.labeled}

    assert with_data(panes) == with_data(expected_panes), "panes lost or changed"
    _summary, alerts = run_monitor(pipeline, len(panes))
    assert reference.alerts
    def described(items: list) -> list[tuple[str, str, str, float, str]]:
        return sorted((a.model, a.kind, a.status, a.window_end, a.alert_id) for a in items)

    assert described(alerts) == described(reference.alerts)


@pytest.mark.integration
def test_kill_9_mid_stream_then_restart_loses_and_repeats_nothing(
    fresh_pipeline: Pipeline, reference_run: Run, tmp_path: Path
) -> None:
    pipeline = fresh_pipeline
    config = pipeline.write_config(tmp_path / "driftline.toml", ingest={"batch_size": 500})
    port = free_port()
    process = start_ingest(config, "0", port)
    deadline = time.monotonic() + 60
    while scrape(port, "driftline_events_in_total") < 6000:
        assert time.monotonic() < deadline and process.poll() is None, "ingest did not get going"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    restarted = start_ingest(config, "0", port)
    try:
        wait_until_committed(pipeline, pipeline.config().ingest.group_id)
        wait_until_labeled(pipeline, reference_run.ingest.labeled)
    finally:
        stop(restarted)
    assert_same_outputs(pipeline, reference_run)


@pytest.mark.integration
def test_two_processes_split_the_partitions_and_agree_with_one(
    fresh_pipeline: Pipeline, reference_run: Run, tmp_path: Path
) -> None:
    pipeline = fresh_pipeline
    config = pipeline.write_config(tmp_path / "driftline.toml", ingest={"batch_size": 500})
    ports = [free_port(), free_port()]
    processes = [start_ingest(config, str(i), port) for i, port in enumerate(ports)]
    try:
        wait_until_committed(pipeline, pipeline.config().ingest.group_id)
        wait_until_labeled(pipeline, reference_run.ingest.labeled)
        # A rebalance may still be settling when the outputs are complete: read the split once it is stable.
        deadline = time.monotonic() + 30
        while True:
            assigned = [requests.get(f"http://127.0.0.1:{p}/healthz", timeout=5).json()["partitions"] for p in ports]
            if all(len(partitions) == 1 for partitions in assigned) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        for process in processes:
            stop(process)
    assert sorted(p for partitions in assigned for p in partitions) == [0, 1]
    assert all(len(partitions) == 1 for partitions in assigned)
    assert_same_outputs(pipeline, reference_run)

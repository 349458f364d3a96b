"""End-to-end benchmark: simulator -> broker -> `driftline ingest` -> `driftline monitor` -> alerts.

Prints the producer rate, ingest's sustained events/s (from its first commit of input offsets
once every ingest process has its partitions, so process start-up, the group's rebalances as
the processes join and the changelog restore are not counted, to its last commit, which waits
for the inputs to turn idle, ``IDLE_AFTER_S``), the CPU time per event over the same
span of ingest, of the monitor and of the whole machine (every core, broker included, beside
what a rate of 150 000 events/s would leave), the machine's load average around it (the bench
shares its cores with whatever else runs, so the rate moves with the load; the CPU time much
less), the alert latency after the watermark passes a window's end (p50/p99), and, on the same
stream, the rate of a naive faust-streaming agent that decodes and counts every prediction one
event at a time. The monitor's share per event depends on how dense event time is
(``--events-per-s``): it evaluates a window per model every ``step_s`` of event time, whatever
the number of events in it.

Alert latency: for each alert of window ``[start, end)``, the wall time its record was
written to `alerts` minus the wall time the watermark passed ``end``, i.e. the latest over
the sources of the first pane partial whose end reached ``end`` (record timestamps).

Usage (a broker must be running; `driftline kafka start` or any cluster)::

    python bench/e2e_bench.py --bootstrap 127.0.0.1:9092 --predictions 200000

It creates its own topic set under a unique prefix and deletes it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driftline.demo import write_toml

PANE_S, WINDOW_S, STEP_S, LATENESS_S = 10.0, 60.0, 30.0, 10.0
# The events still held when both inputs reach their end go out once the inputs have been idle this
# long, and only then are their offsets committed: the end of the timed span includes it (the
# services' default, 5 s, is for live streams that pause).
IDLE_AFTER_S = 1.0
# ... so the rate up to the first commit past this share of the input is also printed: the same
# stream without that last wait (the events still held then are a few seconds of event time).
STEADY_SHARE = 0.99


def bench_sections(bootstrap: str, prefix: str, partitions: int, batch_size: int = 10_000) -> dict[str, dict[str, Any]]:
    return {
        "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "partitions": partitions},
        "ingest": {"group_id": f"{prefix}ingest", "pane_s": PANE_S, "allowed_lateness_s": LATENESS_S,
                   "max_label_delay_s": 3600.0, "batch_size": batch_size, "commit_interval_s": 1.0,
                   "idle_after_s": IDLE_AFTER_S},
        "monitor": {"group_id": f"{prefix}monitor", "pane_s": PANE_S, "allowed_lateness_s": LATENESS_S,
                    "window_s": WINDOW_S, "step_s": STEP_S, "min_samples": 100, "hysteresis_windows": 2,
                    "concept_drop_threshold": 0.1, "cooldown_s": 0.0, "commit_interval_s": 0.5},
        "metrics": {"host": "127.0.0.1", "ingest_port": 0, "monitor_port": 0},
    }


def _produce(cfg: Any, n_predictions: int, events_per_s: float) -> tuple[int, float]:
    shift_at_s = n_predictions / events_per_s / 2  # model a drifts half way through the stream
    from driftline.consumers.common.references import publish_profile
    from driftline.producers.client import DriftlineProducer
    from driftline.producers.publish import publish
    from driftline.producers.scenarios import DriftScenario
    from driftline.producers.simulator import ModelSpec, Simulator
    from driftline.stream.reference import build_reference

    models = [ModelSpec("a", "churn", scenario=DriftScenario("sudden", shift_at_s=shift_at_s)), ModelSpec("b", "eta")]
    sim = Simulator(models, seed=5, events_per_s=events_per_s, label_delay_s=5.0)
    for model, task in (("a", "classification"), ("b", "regression")):
        publish_profile(cfg.kafka, build_reference(sim.reference_frame(model, 5000), model=model, model_version="1",
                                                   task=task))
    producer = DriftlineProducer(cfg.kafka, client_overrides={
        "linger.ms": 50, "batch.size": 1_000_000, "compression.type": "none", "queue.buffering.max.messages": 1_000_000,
    })
    summary = publish(sim, producer, n_predictions, batch_size=20_000, flush_timeout_s=120)
    if summary.undelivered or summary.delivery_errors:
        raise SystemExit(f"{summary.undelivered} records undelivered, {summary.delivery_errors} delivery errors")
    return summary.total, summary.elapsed_s


def delete_topics(cfg: Any, prefixes: Sequence[str]) -> None:
    """Delete every topic whose name starts with one of ``prefixes``; best effort, saying what was left behind."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(cfg.kafka.client_config())
    ours = [t for t in admin.list_topics(timeout=10).topics if t.startswith(tuple(prefixes))]
    if ours:
        for future in admin.delete_topics(ours).values():
            try:
                future.result(timeout=30)
            except Exception as exc:  # cleanup is best effort
                print(f"could not delete a bench topic: {exc}", file=sys.stderr)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class GroupProbe:
    """Reads consumer groups' committed offsets and state, with one client per group made once.

    The bench asks four times a second while it times the services, on the same cores: a fresh
    client per question cost the machine 6.2 ms of CPU (the bench's and the broker's: connect,
    metadata, coordinator lookup) against 0.7 ms for a call on a kept one.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._consumers: dict[str, Any] = {}
        self._admin: Any = None

    def committed(self, group: str, partitions: list[Any]) -> int:
        """Records the group has committed over ``partitions`` (a partition without a commit counts 0)."""
        from confluent_kafka import Consumer

        if group not in self._consumers:
            self._consumers[group] = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                                               "enable.auto.commit": False})
        return sum(max(tp.offset, 0) for tp in self._consumers[group].committed(partitions, timeout=10))

    def settled(self, group: str, members: int) -> bool:
        """The group is stable with ``members`` members, each assigned partitions: no rebalance to come."""
        from confluent_kafka import ConsumerGroupState
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        description = self._admin.describe_consumer_groups([group])[group].result(timeout=10)
        return (description.state == ConsumerGroupState.STABLE and len(description.members) == members
                and all(member.assignment.topic_partitions for member in description.members))

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()


def _ends(cfg: Any, topics: list[str]) -> tuple[list[Any], int]:
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": cfg.kafka.bootstrap_servers, "group.id": "bench-probe"})
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(cfg.kafka.partitions)]
        return partitions, sum(probe.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions)
    finally:
        probe.close()


def stat_cpu_s(path: str) -> float:
    """User + system CPU seconds from a ``/proc/.../stat`` file (of a process: all its threads; of a task: one)."""
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_s(processes: list[subprocess.Popen[bytes]]) -> float | None:
    """CPU seconds (user + system, all threads) the processes have used so far; None off Linux."""
    try:
        return sum(stat_cpu_s(f"/proc/{process.pid}/stat") for process in processes)
    except (OSError, IndexError, ValueError):
        return None


def _machine_busy_s() -> float | None:
    """CPU seconds every core of the machine has been busy since boot (``/proc/stat``); None off Linux.

    Over a span this counts everything that ran (broker, monitor, ingest, the bench itself, and
    anything else on the machine), which is what a rate on these cores has to fit in.
    """
    try:
        ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def _spawn(command: str, config: Path, instance: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "driftline.cli", command, "--config", str(config),
                             "--instance", instance, "--log-level", "WARNING"])


def _alert_latencies(cfg: Any) -> list[float]:
    from confluent_kafka import TopicPartition

    from driftline.consumers.common.kafka import read_to_end
    from driftline.schemas.events import DriftAlert
    from driftline.schemas.profiles import PanePartial

    def records(name: str) -> list[Any]:
        topic = cfg.kafka.topic(name)
        return read_to_end(cfg.kafka, [TopicPartition(topic, p) for p in range(cfg.kafka.partitions)])

    first_reach: dict[tuple[str, float], float] = {}  # (source, pane_end) -> wall time it was written
    for record in records("panes"):
        partial = PanePartial.model_validate_json(record.value())
        key = (partial.source, partial.pane_end)
        first_reach[key] = min(first_reach.get(key, float("inf")), record.timestamp()[1] / 1000)
    sources = {source for source, _ in first_reach}
    latencies = []
    for record in records("alerts"):
        alert = DriftAlert.model_validate_json(record.value())
        passed = [min((t for (s, end), t in first_reach.items() if s == source and end >= alert.window_end),
                      default=float("nan")) for source in sources]
        latencies.append(record.timestamp()[1] / 1000 - max(passed))
    return [x for x in latencies if x == x]


def _naive_faust(cfg: Any, expected: int, timeout_s: float) -> float | None:
    """Events/s of a per-event faust agent over the predictions topic (None when it did not finish)."""
    env = {**os.environ, "BENCH_BROKER": cfg.kafka.bootstrap_servers, "BENCH_TOPIC": cfg.kafka.topic("predictions"),
           "BENCH_EXPECTED": str(expected), "BENCH_APP": f"naive-{uuid.uuid4().hex[:6]}"}
    with tempfile.TemporaryDirectory() as workdir:
        result = Path(workdir) / "rate"
        env["BENCH_RESULT"] = str(result)
        with (Path(workdir) / "faust.log").open("w") as log:
            process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "faust", "worker", "-l", "warn",
                                        "--without-web"], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout_s
            while not result.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if not result.exists():
            tail = (Path(workdir) / "faust.log").read_text()[-2000:]
            say(f"the faust agent did not finish; its log ends with:\n{tail}")
            return None
        return float(result.read_text())


def _faust_worker() -> None:
    """The naive baseline: one faust agent, one JSON decode and one dict update per prediction."""
    import faust
    import orjson

    expected = int(os.environ["BENCH_EXPECTED"])
    app = faust.App(os.environ["BENCH_APP"], broker=f"kafka://{os.environ['BENCH_BROKER']}", store="memory://",
                    web_enabled=False, topic_allow_declare=False, topic_disable_leader=True)
    topic = app.topic(os.environ["BENCH_TOPIC"], value_serializer="raw")
    counts: dict[str, dict[str, float]] = {}
    progress = {"n": 0, "started": 0.0}

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for value in stream:
            if progress["n"] == 0:
                progress["started"] = time.perf_counter()
            event = orjson.loads(value)
            per_model = counts.setdefault(event["model"], {})
            for name, feature in event["features"].items():
                if isinstance(feature, int | float):
                    per_model[name] = per_model.get(name, 0.0) + feature
            progress["n"] += 1
            if progress["n"] == expected:
                rate = expected / (time.perf_counter() - progress["started"])
                Path(os.environ["BENCH_RESULT"]).write_text(f"{rate:.0f}")

    sys.argv = [sys.argv[0], *sys.argv[2:]]
    app.main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--predictions", type=int, default=200_000, help="predictions (outcomes as many again)")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--ingest-processes", type=int, default=1)
    parser.add_argument("--events-per-s", type=float, default=200.0, help="simulated event-time rate")
    parser.add_argument("--batch-size", type=int, default=10_000, help="ingest.batch_size: records per consume")
    parser.add_argument("--client", action="append", default=[], metavar="KEY=VALUE",
                        help="a [kafka.client] setting for the services (librdkafka), repeatable")
    parser.add_argument("--skip-faust", action="store_true")
    args = parser.parse_args()

    from driftline.config import load_config
    from driftline.topics import ensure_topics

    prefix = f"bench{uuid.uuid4().hex[:6]}."
    sections = bench_sections(args.bootstrap, prefix, args.partitions, args.batch_size)
    sections["kafka"]["client"] = dict(setting.split("=", 1) for setting in args.client)
    cfg = load_config(None, **sections)
    ensure_topics(cfg.kafka)
    results: dict[str, str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="driftline-bench-"))
    config = workdir / "driftline.toml"
    write_toml(config, {**sections, "kafka": {k: v for k, v in sections["kafka"].items() if k != "client"}})
    with config.open("a") as toml:  # dotted librdkafka names are quoted keys of [kafka.client]
        toml.write("[kafka.client]\n" + "".join(f"{json.dumps(k)} = {json.dumps(v)}\n"
                                                for k, v in sections["kafka"]["client"].items()))
    processes: list[subprocess.Popen[bytes]] = []
    probe = GroupProbe(args.bootstrap)
    try:
        say(f"producing {args.predictions:,} predictions and their outcomes under {prefix}")
        sent, produce_s = _produce(cfg, args.predictions, args.events_per_s)
        say(f"produced {sent:,} records in {produce_s:.1f} s; starting monitor and ingest")
        results["records (predictions + outcomes)"] = f"{sent:,}"
        results["producer (driftline SDK, 1 process) events/s"] = f"{sent / produce_s:,.0f}"
        inputs, total = _ends(cfg, [cfg.kafka.topic("predictions"), cfg.kafka.topic("outcomes")])
        load_before = os.getloadavg()[0]
        monitor = [_spawn("monitor", config, "0")]
        ingest = [_spawn("ingest", config, str(i)) for i in range(args.ingest_processes)]
        processes.extend(monitor + ingest)
        first: tuple[float, int, float | None, float | None, float | None] | None = None
        steady: tuple[float, int] | None = None  # the first commit past STEADY_SHARE of the input
        settled_at: int | None = None  # committed when every ingest process had its partitions
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = probe.committed(cfg.ingest.group_id, inputs)
            if settled_at is None and probe.settled(cfg.ingest.group_id, args.ingest_processes):
                settled_at = done
            if first is None and settled_at is not None and done > settled_at:
                first = (time.perf_counter(), done, _cpu_s(ingest), _cpu_s(monitor), _machine_busy_s())
            if steady is None and done >= STEADY_SHARE * total:
                steady = (time.perf_counter(), done)
            if done >= total:
                break
            time.sleep(0.25)
        last = (time.perf_counter(), done, _cpu_s(ingest), _cpu_s(monitor), _machine_busy_s())
        if first is None:
            raise SystemExit("ingest committed nothing within 600 s once its consumer group had settled")
        if last[1] <= first[1]:
            raise SystemExit("ingest committed everything at once: too few predictions to time, use more")
        say(f"ingest committed {last[1]:,} of {total:,} input records")
        results["ingest sustained events/s"] = f"{(last[1] - first[1]) / (last[0] - first[0]):,.0f}"
        if steady is not None and steady[1] < last[1] and steady[0] > first[0]:
            results[f"ingest events/s up to {STEADY_SHARE:.0%} committed (the end's idle wait left out)"] = (
                f"{(steady[1] - first[1]) / (steady[0] - first[0]):,.0f}")
        results["load average (1 min) before / after ingest"] = f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"
        # CPU time does not count the time the processes waited for a core: steadier than the rate here
        per_event = {
            "ingest CPU per event over that span (all threads, all processes) µs": (first[2], last[2]),
            "monitor CPU per ingested event over that span µs": (first[3], last[3]),
            "machine CPU per event over that span (all cores, broker and all) µs": (first[4], last[4]),
        }
        for label, (before, after) in per_event.items():
            if before is not None and after is not None:
                results[label] = f"{(after - before) / (last[1] - first[1]) * 1e6:.1f}"
        from driftline.consumers.common.service import changelog_topic

        _, changelog_written = _ends(cfg, [changelog_topic(cfg.kafka, "ingest", cfg.ingest.group_id)])
        results["ingest changelog records per input record (transaction markers included)"] = (
            f"{changelog_written / total:.3f}")
        cores = os.cpu_count() or 1
        results["machine CPU per event that 150 000 events/s leaves on these cores µs"] = f"{cores / 0.15:.1f}"
        # `panes` is written in transactions: its end offsets count commit markers the monitor never
        # commits past, so "done" is: the monitor's committed offsets stopped moving for 3 s after
        # ingest, at the end of its inputs, has waited `idle_after_s` and released the last events.
        panes, _pane_end = _ends(cfg, [cfg.kafka.topic("panes")])
        seen, stable_since, quiet_s = -1, time.monotonic(), cfg.ingest.idle_after_s + 3.0
        while time.monotonic() < deadline and (seen <= 0 or time.monotonic() - stable_since < quiet_s):
            now = probe.committed(cfg.monitor.group_id, panes)
            if now != seen:
                seen, stable_since = now, time.monotonic()
            time.sleep(0.25)
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
        processes.clear()
        say("monitor done; measuring alert latency")
        latencies = sorted(_alert_latencies(cfg))
        results["alerts"] = str(len(latencies))
        if latencies:
            p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
            results["alert latency after watermark p50 / p99 (s)"] = f"{statistics.median(latencies):.2f} / {p99:.2f}"
        if not args.skip_faust:
            say("naive faust agent on the same predictions")
            rate = _naive_faust(cfg, args.predictions, timeout_s=300)
            results["naive faust agent (per event, predictions only) events/s"] = (
                f"{rate:,.0f}" if rate else "did not finish"
            )
    finally:
        for process in processes:
            process.kill()
        probe.close()
        delete_topics(cfg, (prefix,))
    width = max(len(k) for k in results)
    print(f"\n{'measure':<{width}}  value\n{'-' * width}  -----")
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "faust":
        _faust_worker()
    else:
        main()

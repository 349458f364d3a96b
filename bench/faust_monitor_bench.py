"""Stage 2 on faust-streaming vs `driftline monitor`: alerts, kill -9 safety, throughput, recovery.

One stream for every run: the simulator's predictions (as `bench/e2e_bench.py` makes them, with its windows,
model ``a`` drifting half way, ``b`` not) are cut into pane partials by one `PaneAggregator`
per source and written to `panes` in Kafka transactions, as ingest writes them; every
``--aborted-every``-th transaction is first written and aborted (what a killed ingest leaves).
(`driftline ingest` itself is not run, so the stream does not depend on stage 1's state of
work; the partials carry no labeled rows, so there are data and prediction alerts, no concept
ones.) Then, on that same `panes` topic, each run starts a fresh consumer group of one monitor
as a subprocess and waits until the group's committed offsets reach the end of `panes`:

- ``driftline``: the confluent-kafka monitor (`MonitorApp`, transactions, read_committed);
- ``faust-alo`` / ``faust-eos``: `bench/faust_monitor.py` with ``processing_guarantee``
  ``at_least_once`` / ``exactly_once``.

Runs named ``...-kill`` get SIGKILL at ``--kills`` random points (seeded shares of the panes
done), ``...-killalert`` right after ``--kills`` randomly chosen panes whose processing emits
an alert (found by feeding the panes through `MonitorHandler` beforehand); the worker is
restarted after each kill. Every run's alerts are the records it appended to `alerts` (end
offsets recorded before it started), read ``read_committed`` as a downstream consumer would,
and compared with the uncrashed ``driftline`` run's: duplicates, missing and extra ids, and
ids whose record bytes differ. Throughput is distinct panes over the time from the first pane
received to the last processed (progress lines written by each monitor); changelog overhead
is what the run wrote to its state changelog (aborted records included); recovery is from
the restart to the first processed pane.

Usage (a broker must be running)::

    python bench/faust_monitor_bench.py --bootstrap 127.0.0.1:19092 --predictions 100000 --events-per-s 20

It creates its own topic set under a unique prefix and deletes it (and the faust changelogs)
at the end. ``python bench/faust_monitor_bench.py driftline-worker CONFIG PROGRESS GROUP`` is
the instrumented confluent-kafka monitor the driver spawns.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the sibling script (bench/ is on sys.path when a bench runs as a script): the same windows and helpers
from e2e_bench import GroupProbe, bench_sections, delete_topics, say

from driftline.demo import write_toml

_FAUST_APP = Path(__file__).resolve().parent / "faust_monitor.py"
_RUN_TIMEOUT_S = 240.0
_MAX_EXITS = 3


@dataclass(frozen=True, slots=True)
class KillPoint:
    """Where a crash run sends SIGKILL: once this share of the panes is done, or right after this pane."""

    share: float | None = None
    pane: tuple[int, int] | None = None

    def reached(self, done: set[tuple[int, int]], n_panes: int) -> bool:
        if self.pane is not None:
            return self.pane in done
        return self.share is not None and len(done) >= self.share * n_panes

    def __str__(self) -> str:
        return f"pane {self.pane}" if self.pane is not None else f"{self.share:.2f}"


@dataclass(slots=True)
class RunResult:
    """What one monitor run did, measured from outside and from its progress lines."""

    name: str
    kills: int = 0
    finished: bool = False
    alert_ids: list[str] = field(default_factory=list)
    alert_values: dict[str, bytes] = field(default_factory=dict)
    alert_ids_uncommitted: list[str] = field(default_factory=list)
    distinct_panes: int = 0
    processed_panes: int = 0
    aborted_read: int = 0
    panes_per_s: float = float("nan")
    wall_s: float = float("nan")
    recovery_s: list[float] = field(default_factory=list)
    changelog_records: int = 0
    changelog_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def _driftline_worker(config: str, progress_path: str, group: str) -> None:
    """`MonitorApp` with a progress line per handled pane; the group is given so each run starts fresh."""
    from driftline.config import load_config
    from driftline.consumers.common.signals import StopFlag
    from driftline.consumers.monitor.app import MonitorApp

    class TimedMonitor(MonitorApp):
        def _handle(self, messages: Any) -> None:
            if not self.summary.consumed:
                progress.write(f"begin {time.time():.6f}\n")
            super()._handle(messages)
            now = time.time()
            progress.writelines(f"{now:.6f} {m.partition()} {m.offset()}\n" for m in messages)
            progress.flush()

    cfg = load_config(config, monitor={"group_id": group})
    with Path(progress_path).open("a") as progress:
        TimedMonitor(cfg, instance_id=group, stop=StopFlag().install()).run()


def _read_progress(path: Path) -> tuple[list[float], list[tuple[float, int, int]]]:
    """When each process began handling panes, and every processed pane as (wall time, partition, offset)."""
    begins, panes = [], []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if parts[0] == "begin":
                begins.append(float(parts[1]))
            elif len(parts) == 3:
                panes.append((float(parts[0]), int(parts[1]), int(parts[2])))
    return begins, panes


def _pane_targets(cfg: Any) -> dict[int, int]:
    """Per `panes` partition, the offset after its last committed record: where a finished group stands."""
    from confluent_kafka import TopicPartition

    from driftline.consumers.common.kafka import read_to_end

    topic = cfg.kafka.topic("panes")
    targets: dict[int, int] = {}
    for record in read_to_end(cfg.kafka, [TopicPartition(topic, p) for p in range(cfg.kafka.partitions)]):
        targets[record.partition()] = max(targets.get(record.partition(), 0), record.offset() + 1)
    return targets


def _group_done(probe: GroupProbe, group: str, topic: str, targets: dict[int, int]) -> bool:
    from confluent_kafka import TopicPartition

    return probe.committed(group, [TopicPartition(topic, p) for p in targets]) >= sum(targets.values())


def _alert_offsets(cfg: Any) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": cfg.kafka.bootstrap_servers, "group.id": "bench-probe"})
    try:
        topic = cfg.kafka.topic("alerts")
        return {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(cfg.kafka.partitions)}
    finally:
        probe.close()


def _alerts_since(cfg: Any, since: dict[int, int], isolation: str) -> list[tuple[str, bytes]]:
    """Alert ids and records appended to `alerts` after ``since``, as a consumer with ``isolation`` sees them."""
    from confluent_kafka import Consumer, TopicPartition

    from driftline.schemas.events import DriftAlert

    topic = cfg.kafka.topic("alerts")
    consumer = Consumer({"bootstrap.servers": cfg.kafka.bootstrap_servers, "group.id": "bench-alerts",
                         "enable.auto.commit": False, "enable.partition.eof": True, "isolation.level": isolation})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in since}
        remaining = {p for p in since if ends[p] > since[p]}
        consumer.assign([TopicPartition(topic, p, since[p]) for p in remaining])
        ids: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + 30
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error():
                    remaining.discard(message.partition())
                else:
                    ids.append((DriftAlert.model_validate_json(message.value()).alert_id, message.value()))
        return ids
    finally:
        consumer.close()


def _topic_size(cfg: Any, topic: str) -> tuple[int, int]:
    """Records and value+key bytes written to ``topic`` (aborted ones included: they were written)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": cfg.kafka.bootstrap_servers, "group.id": "bench-size",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_uncommitted"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0, 0
        partitions = [TopicPartition(topic, p, 0) for p in metadata.partitions]
        consumer.assign(partitions)
        remaining = {tp.partition for tp in partitions}
        records = size = 0
        deadline = time.monotonic() + 30
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(10_000, 0.5):
                if message.error():
                    remaining.discard(message.partition())
                else:
                    records += 1
                    size += len(message.value() or b"") + len(message.key() or b"")
        return records, size
    finally:
        consumer.close()


class Supervisor:
    """Runs one monitor as a subprocess, kills it at the planned points, restarts it until it is done."""

    def __init__(self, cfg: Any, workdir: Path, targets: dict[int, int], committed: set[tuple[int, int]]) -> None:
        self.cfg = cfg
        self.workdir = workdir
        self.targets = targets
        self.committed = committed

    def run(self, name: str, command: list[str], env: dict[str, str], group: str, progress: Path,
            kill_points: list[KillPoint], n_panes: int, changelog: str) -> RunResult:
        """Spawn ``command``, SIGKILL and respawn it at each kill point, stop it once ``group`` has committed all."""
        result = RunResult(name)
        since = _alert_offsets(self.cfg)
        log_path = self.workdir / f"{name}.log"
        pending = list(kill_points)
        spawned: list[float] = []
        started = time.time()
        deadline = time.monotonic() + _RUN_TIMEOUT_S
        probe = GroupProbe(self.cfg.kafka.bootstrap_servers)  # asked every 0.05 s once all panes are seen
        with log_path.open("a") as log:
            process = self._spawn(command, env, log, spawned)
            try:
                while time.monotonic() < deadline:
                    time.sleep(0.05)
                    _begins, panes = _read_progress(progress)
                    distinct = {(p, o) for _t, p, o in panes} & self.committed
                    if pending and pending[0].reached(distinct, n_panes):
                        pending.pop(0)
                        process.send_signal(signal.SIGKILL)
                        process.wait()
                        result.kills += 1
                        say(f"{name}: SIGKILL at {len(distinct)}/{n_panes} distinct panes; restarting")
                        process = self._spawn(command, env, log, spawned)
                        continue
                    if process.poll() is not None:
                        result.notes.append(f"exited with {process.returncode}")
                        if len(result.notes) >= _MAX_EXITS:
                            say(f"{name}: worker exited with {process.returncode}; giving up (see {log_path})")
                            break
                        say(f"{name}: worker exited with {process.returncode}; restarting")
                        process = self._spawn(command, env, log, spawned)
                        continue
                    if not pending and len(distinct) >= n_panes and _group_done(
                        probe, group, self.cfg.kafka.topic("panes"), self.targets
                    ):
                        result.finished = True
                        break
                result.wall_s = time.time() - started
                time.sleep(1.0)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    result.notes.append("did not stop on SIGTERM within 30 s")
                probe.close()
        if not result.finished and len(result.notes) < _MAX_EXITS:
            result.notes.append(f"not done after {_RUN_TIMEOUT_S:.0f} s")
        begins, panes = _read_progress(progress)
        result.processed_panes = len(panes)
        seen = {(p, o) for _t, p, o in panes}
        result.distinct_panes = len(seen & self.committed)
        result.aborted_read = len(seen - self.committed)
        if panes:
            first, last = begins[0], panes[-1][0]
            if result.kills == 0 and last > first:
                result.panes_per_s = result.distinct_panes / (last - first)
            for spawn_ts in spawned[1:]:
                after = [t for t, _p, _o in panes if t >= spawn_ts]
                if after:
                    result.recovery_s.append(after[0] - spawn_ts)
        alerts = _alerts_since(self.cfg, since, "read_committed")
        result.alert_ids = [alert_id for alert_id, _value in alerts]
        result.alert_values = {alert_id: value for alert_id, value in reversed(alerts)}  # the first of each id
        result.alert_ids_uncommitted = [alert_id for alert_id, _value in
                                        _alerts_since(self.cfg, since, "read_uncommitted")]
        result.changelog_records, result.changelog_bytes = _topic_size(self.cfg, changelog)
        return result

    def _spawn(
        self, command: list[str], env: dict[str, str], log: Any, spawned: list[float]
    ) -> subprocess.Popen[bytes]:
        spawned.append(time.time())
        return subprocess.Popen(command, env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)


def _compare(result: RunResult, reference: dict[str, bytes]) -> str:
    """Records / distinct ids / duplicates / missing / extra / same id but other content, against the reference."""
    counts = collections.Counter(result.alert_ids)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    missing = len(reference.keys() - counts.keys())
    extra = len(counts.keys() - reference.keys())
    changed = sum(1 for alert_id, value in result.alert_values.items()
                  if alert_id in reference and reference[alert_id] != value)
    return f"{len(result.alert_ids)} / {len(counts)} / {duplicates} / {missing} / {extra} / {changed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--predictions", type=int, default=100_000, help="predictions (outcomes as many again)")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--events-per-s", type=float, default=50.0, help="simulated event-time rate")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per crash run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--compression", default="none", help="of the pane writer; ingest's default is lz4")
    parser.add_argument("--aborted-every", type=int, default=5, help="every n-th pane batch first goes out aborted")
    parser.add_argument("--runs", default="driftline,faust-alo,faust-eos,driftline-kill,faust-alo-kill,faust-eos-kill,"
                        "driftline-killalert,faust-alo-killalert,faust-eos-killalert")
    args = parser.parse_args()

    from driftline.config import load_config
    from driftline.topics import ensure_topics

    rng = random.Random(args.seed)
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    sections = bench_sections(args.bootstrap, prefix, args.partitions)
    cfg = load_config(None, **sections)
    ensure_topics(cfg.kafka)
    workdir = Path(tempfile.mkdtemp(prefix="faust-monitor-bench-"))
    config = workdir / "driftline.toml"
    write_toml(config, sections)
    results: list[RunResult] = []
    faust_apps: list[str] = []
    try:
        say(f"writing pane partials of {args.predictions:,} predictions under {prefix} (workdir {workdir})")
        written, aborted = _produce_panes(cfg, args.predictions, args.events_per_s, args.aborted_every,
                                          args.compression)
        targets = _pane_targets(cfg)
        records = _iter_panes(cfg)
        committed = {(record.partition(), record.offset()) for record in records}
        n_panes = len(committed)
        alert_panes = _alert_panes(cfg, records)
        say(f"{written} pane partials committed (read back: {n_panes}), {aborted} in aborted transactions")
        if not n_panes:
            raise SystemExit("no pane partials on `panes`: nothing to measure")
        supervisor = Supervisor(cfg, workdir, targets, committed)
        for name in args.runs.split(","):
            if name.endswith("-kill"):
                shares = sorted(rng.uniform(0.1, 0.9) for _ in range(args.kills))
                kill_points = [KillPoint(share=share) for share in shares]
            elif name.endswith("-killalert"):
                middle = alert_panes[len(alert_panes) // 10: len(alert_panes) * 9 // 10]
                chosen = sorted(rng.sample(middle, min(args.kills, len(middle))))
                kill_points = [KillPoint(pane=pane) for pane in chosen]
            else:
                kill_points = []
            run_id = f"{prefix}{name}-{uuid.uuid4().hex[:4]}"
            progress = workdir / f"{name}.progress"
            env = {**os.environ}
            if name.startswith("driftline"):
                command = [sys.executable, str(Path(__file__).resolve()), "driftline-worker", str(config),
                           str(progress), run_id]
                changelog = f"{prefix}monitor-{run_id}-changelog"
            else:
                guarantee = "exactly_once" if "eos" in name else "at_least_once"
                env.update(FAUST_MONITOR_CONFIG=str(config), FAUST_MONITOR_APP_ID=run_id,
                           FAUST_MONITOR_GUARANTEE=guarantee, FAUST_MONITOR_PROGRESS=str(progress))
                command = [sys.executable, str(_FAUST_APP), "worker", "-l", "warn", "--without-web"]
                changelog = f"{run_id}-state-changelog"
                faust_apps.append(run_id)
            say(f"run {name} (group {run_id}, kills at {', '.join(map(str, kill_points)) or 'none'})")
            result = supervisor.run(name, command, env, run_id, progress, kill_points, n_panes, changelog)
            say(f"run {name}: finished={result.finished} alerts={len(result.alert_ids)} notes={result.notes}")
            results.append(result)
        _report(results, n_panes, workdir)
    finally:
        delete_topics(cfg, (prefix, *faust_apps))


def _produce_panes(
    cfg: Any, n_predictions: int, events_per_s: float, aborted_every: int, compression: str
) -> tuple[int, int]:
    """Pane partials of the simulated predictions on `panes`, in transactions as ingest writes them.

    The simulator's stream (model ``a`` drifts half way, ``b`` does not) is split over as many
    sources as `predictions` has partitions, one `PaneAggregator` each; the partials one batch
    closes go out in one transaction. Every ``aborted_every``-th batch is first written in a
    transaction that is aborted (what an ingest killed before its commit leaves behind) and
    then again, committed. ``compression`` is the producer's (ingest writes lz4). Returns
    (committed, aborted) partial counts.
    """
    from confluent_kafka import Producer

    from driftline.consumers.common.references import publish_profile
    from driftline.producers.scenarios import DriftScenario
    from driftline.producers.simulator import ModelSpec, Simulator
    from driftline.schemas.codec import encode
    from driftline.schemas.events import PredictionEvent
    from driftline.stream.panes import PaneAggregator
    from driftline.stream.reference import build_reference

    shift_at_s = n_predictions / events_per_s / 2
    models = [ModelSpec("a", "churn", scenario=DriftScenario("sudden", shift_at_s=shift_at_s)), ModelSpec("b", "eta")]
    sim = Simulator(models, seed=5, events_per_s=events_per_s, label_delay_s=5.0)
    profiles = {}
    for model, task in (("a", "classification"), ("b", "regression")):
        profiles[model] = build_reference(sim.reference_frame(model, 5000), model=model, model_version="1", task=task)
        publish_profile(cfg.kafka, profiles[model])
    n_sources = cfg.kafka.partitions
    sources = [PaneAggregator(profiles, pane_s=cfg.ingest.pane_s, allowed_lateness_s=cfg.ingest.allowed_lateness_s,
                              source=f"bench-{i}") for i in range(n_sources)]
    producer = Producer(cfg.kafka.client_config(**{"transactional.id": f"{cfg.kafka.topic_prefix}pane-writer",
                                                   "linger.ms": 5, "compression.type": compression}))
    producer.init_transactions(30)
    topic = cfg.kafka.topic("panes")
    committed = aborted = 0
    for number, batch in enumerate(sim.batches(n_predictions, batch_size=5_000), start=1):
        events: list[list[PredictionEvent]] = [[] for _ in range(n_sources)]
        for kind, key, value, damage in zip(batch.kinds, batch.keys, batch.values, batch.malformed, strict=True):
            if kind == "predictions" and damage is None:
                events[zlib.crc32(key) % n_sources].append(PredictionEvent.model_validate_json(value))
        partials = []
        for source, source_events in zip(sources, events, strict=True):
            source.add_predictions(source_events)
            partials.extend(source.close_panes())
        rounds = (False, True) if aborted_every and number % aborted_every == 0 else (True,)
        for commit in rounds:
            producer.begin_transaction()
            for partial in partials:
                producer.produce(topic, encode(partial), partial.model.encode())
            if commit:
                producer.commit_transaction(30)
                committed += len(partials)
            else:
                producer.flush(30)
                producer.abort_transaction(30)
                aborted += len(partials)
    return committed, aborted


def _alert_panes(cfg: Any, records: list[Any]) -> list[tuple[int, int]]:
    """The panes (partition, offset) after which the monitor's core emits an alert, fed one by one in order."""
    from driftline.consumers.common.references import ReferenceBook
    from driftline.consumers.monitor.handler import MonitorHandler
    from driftline.schemas.profiles import PanePartial

    book = ReferenceBook(cfg.kafka)
    profiles = book.load()
    book.close()
    handlers: dict[int, MonitorHandler] = {}
    panes = []
    for record in sorted(records, key=lambda r: (r.partition(), r.offset())):
        handler = handlers.setdefault(record.partition(),
                                      MonitorHandler(cfg.monitor, profiles, n_sources=cfg.kafka.partitions))
        if handler.handle([PanePartial.model_validate_json(record.value())]).alerts:
            panes.append((record.partition(), record.offset()))
    return panes


def _iter_panes(cfg: Any) -> list[Any]:
    from confluent_kafka import TopicPartition

    from driftline.consumers.common.kafka import read_to_end

    topic = cfg.kafka.topic("panes")
    return read_to_end(cfg.kafka, [TopicPartition(topic, p) for p in range(cfg.kafka.partitions)])


def _report(results: list[RunResult], n_panes: int, workdir: Path) -> None:
    reference_run = next((r for r in results if r.name == "driftline"), None)
    reference = reference_run.alert_values if reference_run else {}
    print(f"\n{n_panes} pane partials; reference: {len(reference)} alert ids from the uncrashed driftline run")
    print("| run | kills | done | alerts read_committed: records / ids / duplicates / missing / extra / other content "
          "| read_uncommitted records | panes processed (distinct committed, aborted) | panes/s | wall s | recovery s "
          "| changelog records / KiB | notes |")
    print("|---|---:|---|---|---:|---|---:|---:|---|---|---|")
    for r in results:
        recovery = ", ".join(f"{x:.1f}" for x in r.recovery_s) or "-"
        rate = f"{r.panes_per_s:,.0f}" if r.panes_per_s == r.panes_per_s else "-"
        print(f"| {r.name} | {r.kills} | {'yes' if r.finished else 'NO'} | {_compare(r, reference)} "
              f"| {len(r.alert_ids_uncommitted)} | {r.processed_panes} ({r.distinct_panes}, {r.aborted_read}) | {rate} "
              f"| {r.wall_s:.1f} | {recovery} | {r.changelog_records} / {r.changelog_bytes / 1024:,.0f} "
              f"| {'; '.join(r.notes) or '-'} |")
    load1, load5, _ = os.getloadavg()
    print(f"\nload average at the end: {load1:.2f} (1 min), {load5:.2f} (5 min); logs in {workdir}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "driftline-worker":
        _driftline_worker(*sys.argv[2:5])
    else:
        main()

"""Ingest ceiling: how fast can *any* Python confluent-kafka ingest of driftline's shape go here?

`bench/e2e_bench.py` times the real `driftline ingest`. This bench times no-op pipelines that do
only what every ingest of that shape must do, on the same backlog (the e2e bench's simulator,
``--predictions`` predictions and as many outcomes, ``--partitions`` partitions) and with the
same client settings as ingest (`consumer_config` / `producer_config` plus ingest's overrides):
whatever a pipeline costs here, the real ingest pays too, so its rate is a ceiling for ingest.

Pipelines, each one step more realistic than the one before, each one process of its own
consuming predictions + outcomes from the start in a consumer group of its own:

``a consume``
    ``consume(10 000)`` batches, ``.value()`` of each message, the offsets (`Consumer.position`)
    committed every ``commit_interval_s`` and at the end; no producer. The cost of getting
    the records into Python: fetch, decompress, one ``Message`` object per record.
``b +produce``
    a, plus the cheapest possible join (a dict of raw predictions by message key, the
    request id, and one of outcomes that came first) and one output record per joined
    outcome, prediction + outcome bytes (the size of a `LabeledEvent`), produced to a topic
    of ``--partitions`` partitions under a model-like key with ingest's producer settings
    (idempotent, lz4, ``linger.ms`` 20, 1 MB batches). Committed at least once: flush, then
    the offsets. Adds the producer: a Python ``produce`` call per record, lz4, a second
    stream for the broker to write.
``c +exactly once``
    b, committed as ingest commits: a transactional producer, ``send_offsets_to_transaction``
    + ``commit_transaction`` every ``commit_interval_s``, consumer ``read_committed``. Adds
    the transaction protocol (coordinator round trips, markers, the flush at each commit).
    This is the ceiling of issue #4's question: it does nothing an exactly-once ingest with
    one labeled record per outcome could leave out.
``d +decode``
    c, plus ``orjson.loads`` of every value (the output key is the decoded model): the
    floor of decoding, without any validation.
``e +encode``
    d, but each value decoded into the records ingest holds (`PredictionRecord`,
    `OutcomeRecord`; msgspec, no validation), plus each output value written as ingest writes
    it (`labeled_id`, `pending_prediction`, `labeled_json` on those records): the floor of the
    labeled record itself.

Not in any pipeline: validation, event-time alignment, the join store's bookkeeping, pane
sketches, the changelog, metrics; that is the real ingest's work on top of the ceiling.

Two series of consumer settings (``--settings``):

- ingest's own, as `TransactionalClients.build` makes them for `driftline ingest`
  (`consumer_config` sets ``fetch.queue.backoff.ms`` to 10 ms);
- the same with `DEFAULT_BACKOFF`: librdkafka's default of 1000 ms, which ingest ran with
  before. Whenever the prefetched records reach ``queued.min.messages`` (100 000) or
  ``queued.max.messages.kbytes``, librdkafka postpones the next fetch by this back-off.
  Catching up on a backlog, ingest's big fetches (10 MB a partition) get there at once, and
  the consumer then sits idle for up to a second with the Python thread waiting in
  ``consume`` (with ``debug=fetch``: "Fetch backoff for 1000ms: Local: Queue full", for
  every input partition); the column "in consume()" shows it (the CPU spent there is making
  the ``Message`` objects). So the first series is the ceiling of the shape, the second
  that of ingest as it was configured before (``driftline ingest`` itself: 50-52 k events/s
  with 1000 ms, 62-63 k with 10 ms, in ``bench/e2e_bench.py``; while its handler was slower,
  14-15 CPU-µs per event, 10 ms had measured slower, 47 k against 54-57 k: the fetcher thread
  then took CPU the handler needed).

Measures, per run: the events consumed; events/s from the first consumed batch to the last
message handled, and from the first to the last commit as the e2e bench counts ingest; CPU-µs
per event from ``subscribe`` to the last commit done (everything durable) of the process
(user + system, all threads, from ``/proc`` as the e2e bench reads it), of its main thread
alone (the Python part, which can use one core at most) and of the broker; where the main
thread's wall time went (in ``consume``, handling, committing); the load average. A
consume never asks for more than what is left, so the end of the backlog costs no poll
timeout (a stream has no end). An untimed warm-up run of ``e`` comes first (the broker's JIT
compiles its fetch, produce and transaction paths on first use); its outputs are read back
``read_committed`` to check that every one was committed. The broker is the process listening on
the bootstrap port (or ``--broker-pid``); its CPU time means something only when nothing else
uses that broker meanwhile.

At the default backlog (the e2e bench's) a run of the faster pipelines lasts about a second,
so rates move by 10-20 % from run to run and first-to-last commit covers a fraction of a second
or, with a single commit, nothing (n/a): ``--repeats`` rounds, medians with their range; the
CPU times per event are steadier. ``--predictions 1000000`` gives longer runs.

Usage (a broker must be running; `driftline kafka start` or any cluster)::

    python bench/ingest_ceiling_bench.py --bootstrap 127.0.0.1:9092

It creates its own topic set under a unique prefix and deletes it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the e2e bench is a sibling script, not a module

from e2e_bench import _ends, _produce, bench_sections, delete_topics, say, stat_cpu_s

# name -> (label, transactional, decode, encode)
PIPELINES: dict[str, tuple[str, bool, bool, bool]] = {
    "a": ("a consume", False, False, False),
    "b": ("b +produce", False, False, False),
    "c": ("c +exactly once", True, False, False),
    "d": ("d +decode", True, True, False),
    "e": ("e +encode", True, True, True),
}
# librdkafka's default, which ingest ran with before: see the module docstring
DEFAULT_BACKOFF: dict[str, Any] = {"fetch.queue.backoff.ms": 1000}
_DEFAULT_LABEL = ", ".join(f"{k}={v}" for k, v in DEFAULT_BACKOFF.items())
TARGET_EVENTS_PER_S = 150_000
_MODEL_KEYS = (b"a", b"b")  # without decoding, a key of the real outputs' cardinality (one per model)


@dataclass(frozen=True, slots=True)
class Mark:
    """One instant of a run: wall time, events handled so far, CPU seconds of process, main thread, broker."""

    wall: float
    events: int
    process_cpu: float
    main_cpu: float
    broker_cpu: float | None


def _broker_cpu_s(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return stat_cpu_s(f"/proc/{pid}/stat")
    except (OSError, IndexError, ValueError):
        return None


def _listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` (Linux, processes we may inspect); None if not found."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                return int(fd_dir.parent.name)
        except OSError:
            continue
    return None


# --- the worker: one pipeline in a process of its own ---------------------------------------------


def _worker(spec_path: str) -> None:
    """Run the pipeline of a spec file written by `_run_pipeline`; write its marks as JSON."""
    import msgspec
    import orjson
    from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

    from driftline.consumers.common.service import gc_for_streaming
    from driftline.schemas.codec import OutcomeRecord, PredictionRecord, labeled_json, pending_prediction
    from driftline.stream.join import labeled_id

    spec = json.loads(Path(spec_path).read_text())
    name: str = spec["pipeline"]
    _label, transactional, decode, encode = PIPELINES[name]
    predictions_topic, outcomes_topic, output_topic = spec["predictions"], spec["outcomes"], spec["output"]
    expected: int = spec["expected"]
    broker_pid: int | None = spec["broker_pid"]
    loads, labeled_of = orjson.loads, labeled_json
    record_decoders = {predictions_topic: msgspec.json.Decoder(PredictionRecord).decode,
                       outcomes_topic: msgspec.json.Decoder(OutcomeRecord).decode}

    consumer = Consumer(spec["consumer"])
    producer = Producer(spec["producer"]) if name != "a" else None
    if producer is not None and transactional:
        producer.init_transactions(30)
        producer.begin_transaction()

    def produce(value: bytes, key: bytes) -> None:
        assert producer is not None
        while True:
            try:
                producer.produce(output_topic, value, key)
                return
            except BufferError:  # local queue full: as ingest does, serve deliveries and retry
                producer.poll(0.05)

    def check(message: Message) -> None:
        error = message.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            raise KafkaException(error)

    def consume_only(messages: list[Message]) -> int:
        n = 0
        for message in messages:
            if message.error() is not None:
                check(message)
                continue
            message.value()
            n += 1
        return n

    predictions: dict[bytes, Any] = {}  # request id -> prediction (raw, or raw + decoded)
    early_outcomes: dict[bytes, Any] = {}  # request id -> outcome that came before its prediction
    produced = [0]

    def join_raw(messages: list[Message]) -> int:
        n = 0
        for message in messages:
            if message.error() is not None:
                check(message)
                continue
            value, key = message.value(), message.key()
            n += 1
            if message.topic() == predictions_topic:
                outcome = early_outcomes.pop(key, None)
                if outcome is None:
                    predictions[key] = value
                    continue
                prediction = value
            else:
                prediction = predictions.pop(key, None)
                if prediction is None:
                    early_outcomes[key] = value
                    continue
                outcome = value
            produce(prediction + outcome, _MODEL_KEYS[len(prediction) & 1])
            produced[0] += 1
        return n

    def join_decoded(messages: list[Message]) -> int:
        n = 0
        for message in messages:
            if message.error() is not None:
                check(message)
                continue
            value, key = message.value(), message.key()
            record = record_decoders[message.topic()](value) if encode else loads(value)
            n += 1
            if message.topic() == predictions_topic:
                other = early_outcomes.pop(key, None)
                if other is None:
                    predictions[key] = (value, record)
                    continue
                (p_value, p), (o_value, o) = (value, record), other
            else:
                other = predictions.pop(key, None)
                if other is None:
                    early_outcomes[key] = (value, record)
                    continue
                (p_value, p), (o_value, o) = other, (value, record)
            if encode:
                produce(labeled_of(labeled_id(p.event_id, o.event_id), pending_prediction(p), o), p.model.encode())
            else:
                produce(p_value + o_value, p["model"].encode())
            produced[0] += 1
        return n

    handle: Callable[[list[Message]], int] = (
        consume_only if name == "a" else join_decoded if decode else join_raw
    )

    def commit() -> None:
        # every message consume() returned is handled: the positions are exactly the offsets to commit
        positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        if producer is None:
            if positions:
                consumer.commit(offsets=positions, asynchronous=False)
        elif transactional:
            if positions:
                producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
            producer.begin_transaction()
        else:
            producer.flush(30)
            if positions:
                consumer.commit(offsets=positions, asynchronous=False)

    pid = os.getpid()

    def mark(events: int) -> Mark:
        return Mark(time.perf_counter(), events, stat_cpu_s(f"/proc/{pid}/stat"),
                    stat_cpu_s(f"/proc/{pid}/task/{pid}/stat"), _broker_cpu_s(broker_pid))

    start = mark(0)  # CPU counts from here: what the fetcher does before the first batch is the pipeline's too
    consumer.subscribe([predictions_topic, outcomes_topic])
    marks: list[Mark] = []
    consumed = committed = 0
    deadline = time.monotonic() + spec["timeout_s"]
    interval, batch_size, poll_timeout = spec["commit_interval_s"], spec["batch_size"], spec["poll_timeout_s"]
    spent = {"consume": 0.0, "handle": 0.0, "commit": 0.0}  # main thread wall time, from the first batch on
    clock = time.perf_counter
    last_commit = time.monotonic()
    with gc_for_streaming():  # the cyclic GC as ingest's loop sets it
        while consumed < expected and time.monotonic() < deadline:
            # never more than what is left: the backlog's end must not cost a poll timeout (a stream has no end)
            started = clock()
            messages = consumer.consume(min(batch_size, expected - consumed), poll_timeout)
            if messages:
                if not marks:
                    marks.append(mark(0))
                else:
                    spent["consume"] += clock() - started
                started = clock()
                consumed += handle(messages)
                spent["handle"] += clock() - started
            if consumed > committed and time.monotonic() - last_commit >= interval:
                started = clock()
                commit()
                spent["commit"] += clock() - started
                committed, last_commit = consumed, time.monotonic()
                marks.append(mark(committed))
        last_message = mark(consumed)
        if consumed > committed:
            started = clock()
            commit()
            spent["commit"] += clock() - started
            marks.append(mark(consumed))
    result = {"consumed": consumed, "produced": produced[0], "unjoined": len(predictions) + len(early_outcomes),
              "spent": spent, "start": list(astuple(start)), "last_message": list(astuple(last_message)),
              "marks": [list(astuple(m)) for m in marks]}
    Path(spec["result"]).write_text(json.dumps(result))
    consumer.close()
    if producer is not None:
        producer.flush(10)


# --- the driver ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One run of one pipeline, per event where it says µs."""

    label: str
    events: int
    produced: int
    wall_s: float  # first consumed batch -> last message handled
    commit_rate: float | None  # events/s first -> last commit, as the e2e bench counts ingest
    process_us: float  # CPU over subscribe -> last commit done, as the broker's
    main_us: float
    broker_us: float | None
    spent: dict[str, float]  # main thread wall seconds in consume() (waiting + making Messages), handle, commit
    load: tuple[float, float]

    @property
    def rate(self) -> float:
        return self.events / self.wall_s


def _row(label: str, result: dict[str, Any], load: tuple[float, float]) -> Row:
    marks = [Mark(*m) for m in result["marks"]]
    first, last, last_message = marks[0], marks[-1], Mark(*result["last_message"])
    start = Mark(*result["start"])
    events = last.events
    commit_rate = None
    if len(marks) >= 3 and last.events > marks[1].events:
        commit_rate = (last.events - marks[1].events) / (last.wall - marks[1].wall)
    broker_us = None
    if start.broker_cpu is not None and last.broker_cpu is not None:
        broker_us = (last.broker_cpu - start.broker_cpu) / events * 1e6
    return Row(label, events, result["produced"], last_message.wall - first.wall, commit_rate,
               (last.process_cpu - start.process_cpu) / events * 1e6, (last.main_cpu - start.main_cpu) / events * 1e6,
               broker_us, result["spent"], load)


def _create_topic(cfg: Any, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(cfg.kafka.client_config())
    new = NewTopic(topic, cfg.kafka.partitions, cfg.kafka.replication_factor)
    admin.create_topics([new])[topic].result(timeout=30)


def _check_committed(cfg: Any, run: str, produced: int) -> None:
    """Read a run's output back ``read_committed``: every record produced must be there, committed."""
    from confluent_kafka import TopicPartition

    from driftline.consumers.common.kafka import read_to_end

    topic = f"{cfg.kafka.topic_prefix}ceiling-{run}-labeled"
    records = read_to_end(cfg.kafka, [TopicPartition(topic, p) for p in range(cfg.kafka.partitions)], timeout_s=60)
    if len(records) != produced:
        raise SystemExit(f"run {run}: {produced:,} records produced but {len(records):,} committed")
    say(f"run {run}: all {produced:,} outputs committed")


def _client_configs(cfg: Any, name: str, group: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ingest's consumer and producer settings (`TransactionalClients.client_configs`), for pipeline ``name``."""
    from driftline.consumers.common.transactional import TransactionalClients
    from driftline.consumers.ingest.app import CONSUMER_REQUIRED, consumer_tuning

    settings = cfg.ingest
    consumer, producer = TransactionalClients.client_configs(
        cfg.kafka, group_id=group, instance_id="0", session_timeout_s=settings.session_timeout_s,
        transaction_timeout_s=settings.transaction_timeout_s, consumer_tuning=consumer_tuning(cfg),
        **CONSUMER_REQUIRED,
    )
    if not PIPELINES[name][1]:  # at least once: a plain producer, and nothing transactional to wait for
        del producer["transactional.id"], producer["transaction.timeout.ms"]
        consumer["isolation.level"] = "read_uncommitted"
    return consumer, producer


def _run_pipeline(cfg: Any, name: str, run: str, expected: int, broker_pid: int | None, workdir: Path,
                  timeout_s: float, *, default_backoff: bool) -> Row:
    """Run pipeline ``name`` in a process of its own, its group and output topic named after ``run``.

    ``default_backoff``: with `DEFAULT_BACKOFF` over ingest's consumer settings.
    """
    label = PIPELINES[name][0] + (f" [{_DEFAULT_LABEL}]" if default_backoff else "")
    output = f"{cfg.kafka.topic_prefix}ceiling-{run}-labeled"
    _create_topic(cfg, output)
    group = f"{cfg.kafka.topic_prefix}ceiling-{run}"
    consumer, producer = _client_configs(cfg, name, group)
    if default_backoff:
        consumer.update(DEFAULT_BACKOFF)
    spec = workdir / f"{run}.json"
    result = workdir / f"{run}.result.json"
    spec.write_text(json.dumps({
        "pipeline": name, "predictions": cfg.kafka.topic("predictions"), "outcomes": cfg.kafka.topic("outcomes"),
        "output": output, "expected": expected, "broker_pid": broker_pid, "consumer": consumer,
        "producer": producer, "batch_size": cfg.ingest.batch_size, "poll_timeout_s": cfg.ingest.poll_timeout_s,
        "commit_interval_s": cfg.ingest.commit_interval_s, "timeout_s": timeout_s, "result": str(result),
    }))
    load_before = os.getloadavg()[0]
    with (workdir / f"{run}.log").open("w") as log:
        process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "worker", str(spec)],
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            code = process.wait(timeout=timeout_s + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
    if code != 0 or not result.exists():
        tail = (workdir / f"{run}.log").read_text()[-2000:]
        raise SystemExit(f"pipeline {label} failed (exit {code}); its log ends with:\n{tail}")
    outcome = json.loads(result.read_text())
    row = _row(label, outcome, (load_before, os.getloadavg()[0]))
    if name != "a" and outcome["unjoined"]:  # every outcome has its prediction: all must have been joined
        say(f"pipeline {label}: {outcome['unjoined']:,} records left unjoined, {outcome['produced']:,} outputs")
    if row.events < expected:
        say(f"pipeline {label} consumed only {row.events:,} of {expected:,} records within {timeout_s:.0f} s")
    return row


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


_HEADER = ("| pipeline | events | events/s | events/s first→last commit | process CPU µs/event "
           "| main thread CPU µs/event | broker CPU µs/event | main thread s: in consume() / handle / commit "
           "| load avg (1 min) before / after |\n"
           "|---|---:|---:|---:|---:|---:|---:|---|---|")


def _spent(spent: dict[str, float]) -> str:
    return " / ".join(f"{spent[k]:.2f}" for k in ("consume", "handle", "commit"))


def _print_runs(rows: Sequence[Row]) -> None:
    print("\nEvery run (events/s: first consumed batch to last message handled; CPU: subscribe to last "
          f"commit done)\n\n{_HEADER}")
    for r in rows:
        print(f"| {r.label} | {r.events:,} | {r.rate:,.0f} | {_fmt(r.commit_rate, ',.0f')} | {r.process_us:.2f} | "
              f"{r.main_us:.2f} | {_fmt(r.broker_us, '.2f')} | {_spent(r.spent)} | "
              f"{r.load[0]:.2f} / {r.load[1]:.2f} |")


def _print_medians(rows: Sequence[Row]) -> None:
    by_label: dict[str, list[Row]] = {}
    for r in rows:
        by_label.setdefault(r.label, []).append(r)
    print(f"\nMedian per pipeline (events/s: median [min–max] of {max(len(v) for v in by_label.values())} runs)\n")
    print(_HEADER)
    cores = os.cpu_count() or 1
    total_us, core_us = cores * 1e6 / TARGET_EVENTS_PER_S, 1e6 / TARGET_EVENTS_PER_S
    budget = []
    for label, runs in by_label.items():
        rates = [r.rate for r in runs]
        rate, commit_rate = statistics.median(rates), _median([r.commit_rate for r in runs])
        process_us = statistics.median(r.process_us for r in runs)
        main_us = statistics.median(r.main_us for r in runs)
        broker_us = _median([r.broker_us for r in runs])
        loads = f"{min(r.load[0] for r in runs):.2f}–{max(r.load[1] for r in runs):.2f}"
        spent = {k: statistics.median(r.spent[k] for r in runs) for k in runs[0].spent}
        print(f"| {label} | {runs[0].events:,} | {rate:,.0f} [{min(rates):,.0f}–{max(rates):,.0f}] | "
              f"{_fmt(commit_rate, ',.0f')} | {process_us:.2f} | {main_us:.2f} | {_fmt(broker_us, '.2f')} | "
              f"{_spent(spent)} | {loads} |")
        if broker_us is not None:
            budget.append(f"- {label}: process + broker {process_us + broker_us:.2f} µs/event; left for real work "
                          f"{total_us - process_us - broker_us:.2f} µs/event of the machine, "
                          f"{core_us - main_us:.2f} µs/event of ingest's main thread")
    print(f"\nAt {TARGET_EVENTS_PER_S:,} events/s the {cores} cores give {total_us:.2f} CPU-µs per event in all "
          f"(broker, ingest, monitor), and ingest's Python thread at most one core: {core_us:.2f} µs per event.")
    print("\n".join(budget))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--predictions", type=int, default=200_000, help="predictions (outcomes as many again)")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--events-per-s", type=float, default=200.0, help="simulated event-time rate")
    parser.add_argument("--pipelines", default="abcde", help=f"which of {''.join(PIPELINES)} to run, in order")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over the pipelines (each run reads it all)")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="longest run of one pipeline")
    parser.add_argument("--settings", choices=("ingest", "default-backoff", "both"), default="both",
                        help=f"consumer settings: ingest's, ingest's with {_DEFAULT_LABEL}, or each in turn")
    parser.add_argument("--broker-pid", type=int, default=None,
                        help="the broker's pid, for its CPU time (default: the process listening on the port)")
    args = parser.parse_args()
    unknown = sorted(set(args.pipelines) - set(PIPELINES))
    if unknown:
        raise SystemExit(f"unknown pipelines {unknown}; choose from {''.join(PIPELINES)}")

    from driftline.config import load_config
    from driftline.topics import ensure_topics

    broker_pid = args.broker_pid or _listener_pid(int(args.bootstrap.rsplit(":", 1)[1]))
    if broker_pid is None:
        say("broker process not found (not local, or not ours to inspect): no broker CPU time")
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    sections = bench_sections(args.bootstrap, prefix, args.partitions)
    cfg = load_config(None, **sections)
    ensure_topics(cfg.kafka)
    rows: list[Row] = []
    try:
        say(f"producing {args.predictions:,} predictions and their outcomes under {prefix}")
        sent, produce_s = _produce(cfg, args.predictions, args.events_per_s)
        _inputs, total = _ends(cfg, [cfg.kafka.topic("predictions"), cfg.kafka.topic("outcomes")])
        say(f"produced {sent:,} records in {produce_s:.1f} s ({total:,} in the input topics); broker pid {broker_pid}")
        with tempfile.TemporaryDirectory(prefix="driftline-ceiling-") as workdir:
            # The broker's JIT compiles its fetch, produce and transaction paths on first use: an untimed
            # run of the most complete pipeline first, so that no timed run pays for it.
            say("warm-up run (not counted)")
            warmup = _run_pipeline(cfg, "e", "warmup", total, broker_pid, Path(workdir), args.timeout_s,
                                   default_backoff=False)
            _check_committed(cfg, "warmup", warmup.produced)
            series = {"ingest": (False,), "default-backoff": (True,), "both": (False, True)}[args.settings]
            for round_ in range(args.repeats):
                for default_backoff in series:
                    for name in args.pipelines:
                        say(f"round {round_ + 1}/{args.repeats}: pipeline {PIPELINES[name][0]}"
                            + (f" [{_DEFAULT_LABEL}]" if default_backoff else ""))
                        time.sleep(1.0)  # the previous run's broker work (log flush, group expiry) out of the way
                        rows.append(_run_pipeline(cfg, name, f"{name}{'d' if default_backoff else ''}{round_}", total,
                                                  broker_pid, Path(workdir), args.timeout_s,
                                                  default_backoff=default_backoff))
    finally:
        delete_topics(cfg, (prefix,))
    _print_runs(rows)
    _print_medians(rows)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "worker":
        _worker(sys.argv[2])
    else:
        main()

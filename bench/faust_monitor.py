"""Stage 2 as a faust-streaming app: the prototype `bench/faust_monitor_bench.py` measures against `driftline monitor`.

One faust agent over `panes` runs driftline's pure core exactly as `driftline monitor` does:
a `MonitorHandler` per `panes` partition (window merge, tests, watermark, alert policy). Its
state is not a private changelog but a faust Table (``state``, raw bytes, one changelog
partition per `panes` partition): every record the handler would write to the monitor's
changelog (pane partials still inside a future window, per-model alert state and last
evaluated window, per-source watermarks) is a table entry, keyed ``<partition>\\x1f<key>``
so the partitions' keys never collide; a tombstone is a ``del``. After a restart faust
recovers the table from its changelog before the agent runs, and the first pane of a
partition rebuilds its handler from the table with `MonitorHandler.restore`. So the state
is the same as the confluent-kafka monitor's and only the runtime differs. DriftAlert JSON
goes to `alerts`, keyed by model.

``consumer_max_fetch_size`` is 16 MiB (``FAUST_MONITOR_FETCH_BYTES``): with faust's default of
1 MiB (about 60 partials of ~16 KiB) the worker stalled 1.1-1.4 s after every fetch
(BENCHMARKS.md, "Stage 2 on faust-streaming").

Run by the bench as a subprocess (environment in, progress lines out)::

    FAUST_MONITOR_CONFIG=driftline.toml FAUST_MONITOR_APP_ID=fm1 FAUST_MONITOR_GUARANTEE=exactly_once \\
    FAUST_MONITOR_PROGRESS=progress.txt python bench/faust_monitor.py worker -l warn --without-web

Each processed pane appends ``<wall time> <partition> <offset>`` to the progress file and the
first pane of a process ``begin <wall time>``, so the driver can time throughput, see replays
after a kill and time recovery.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, TextIO

import faust

from driftline.config import load_config
from driftline.consumers.common.kafka import partition_count
from driftline.consumers.common.references import ReferenceBook
from driftline.consumers.monitor.handler import MonitorHandler
from driftline.schemas.codec import RawMessage, decode_batch, encode
from driftline.schemas.profiles import PanePartial

_SEP = b"\x1f"


def _partition_prefix(partition: int) -> bytes:
    return str(partition).encode() + _SEP


def build_app(
    config_path: str, app_id: str, guarantee: str, progress: TextIO
) -> faust.App:
    """The faust app: settings, references and topics read once, one agent, one table."""
    cfg = load_config(config_path)
    settings = cfg.monitor
    n_panes = partition_count(cfg.kafka, cfg.kafka.topic("panes"))
    n_sources = partition_count(cfg.kafka, cfg.kafka.topic("predictions"))
    references = ReferenceBook(cfg.kafka)
    references.load()
    app = faust.App(
        app_id,
        broker=f"kafka://{cfg.kafka.bootstrap_servers}",
        store="memory://",
        processing_guarantee=guarantee,
        web_enabled=False,
        topic_partitions=n_panes,
        topic_replication_factor=cfg.kafka.replication_factor,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=f"{app_id}-0",  # static membership, as `driftline monitor` has
        consumer_max_fetch_size=int(os.environ.get("FAUST_MONITOR_FETCH_BYTES", 16 * 1024 * 1024)),
    )
    panes = app.topic(cfg.kafka.topic("panes"), key_serializer="raw", value_serializer="raw", partitions=n_panes)
    alerts = app.topic(cfg.kafka.topic("alerts"), key_serializer="raw", value_serializer="raw")
    state = app.Table("state", partitions=n_panes, key_type=bytes, value_type=bytes)  # bytes: raw serializer
    handlers: dict[int, MonitorHandler] = {}

    def handler_for(partition: int) -> MonitorHandler:
        """The partition's handler, rebuilt from the (recovered) table on its first pane."""
        handler = handlers.get(partition)
        if handler is None:
            prefix = _partition_prefix(partition)
            records = [(key[len(prefix):], value) for key, value in state.items() if key.startswith(prefix)]
            handler = MonitorHandler.restore(settings, references.profiles, records, n_sources=n_sources)
            handlers[partition] = handler
        return handler

    @app.on_partitions_revoked.connect
    async def forget(_app: Any, revoked: set[Any], **_: Any) -> None:
        for tp in revoked:
            handlers.pop(tp.partition, None)

    @app.agent(panes)
    async def monitor(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            if not handlers:
                progress.write(f"begin {time.time():.6f}\n")
            record = RawMessage(value=event.value, key=message.key, topic=message.topic, partition=message.partition,
                                offset=message.offset)
            decoded = decode_batch([record], PanePartial)
            if decoded.rejects:  # the bench writes only valid partials: a reject means the prototype is wrong
                raise ValueError(f"pane partial rejected: {decoded.rejects[0].reason} {decoded.rejects[0].detail}")
            out = handler_for(message.partition).handle(decoded.events)  # CPU-bound: blocks the event loop
            for alert in out.alerts:
                await alerts.send(key=alert.model.encode(), value=encode(alert))
            prefix = _partition_prefix(message.partition)
            for key, value in out.changelog:
                if value is None:
                    state.pop(prefix + key, None)
                else:
                    state[prefix + key] = value
            progress.write(f"{time.time():.6f} {message.partition} {message.offset}\n")
            progress.flush()

    return app


def main() -> None:
    """Build the app from the environment and hand the command line to faust."""
    with Path(os.environ["FAUST_MONITOR_PROGRESS"]).open("a") as progress:
        app = build_app(os.environ["FAUST_MONITOR_CONFIG"], os.environ["FAUST_MONITOR_APP_ID"],
                        os.environ.get("FAUST_MONITOR_GUARANTEE", "at_least_once"), progress)
        app.main()


if __name__ == "__main__":
    main()

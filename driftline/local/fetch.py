"""`python -m driftline.local.fetch`: fetch the Kafka jars into the cache (once; then offline)."""

from __future__ import annotations

import sys

from driftline.config import load_config
from driftline.local.kafka import LocalKafka
from driftline.local.process import LocalServiceError


def main() -> int:
    local = load_config().local
    broker = LocalKafka(version=local.kafka_version, cache_dir=local.cache_dir, data_dir=local.data_dir / "kafka")
    try:
        print(f"kafka jars: {broker.ensure_jars()}")
    except LocalServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

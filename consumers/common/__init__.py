"""Adapters shared by the services: Kafka clients and changelogs, checkpoints, references, HTTP, signals.

Submodules are imported where used (``from driftline.consumers.common.kafka import ...``) so
importing one adapter does not load the others.
"""

__all__ = [
    "checkpoint",
    "dlq",
    "http",
    "kafka",
    "lag",
    "metrics",
    "references",
    "service",
    "signals",
    "transactional",
]

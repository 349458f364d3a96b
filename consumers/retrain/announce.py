"""Decisions taken by hand (``driftline models promote|rollback|archive``) announced on Kafka.

The worker's own decisions are published by its loop; this is the same announcement for an
operator's: a `ModelEvent` on `models` and, for a new champion, its reference profile (from
its run's ``reference.json``) on `references`, so the monitor tests against the right baseline.
"""

from __future__ import annotations

import time

from driftline.config import DriftlineConfig
from driftline.consumers.common.kafka import produce_and_wait
from driftline.consumers.retrain.registry import ALIAS_CHAMPION, MlflowRegistry
from driftline.schemas.codec import encode
from driftline.schemas.events import ModelEvent, deterministic_id

__all__ = ["announce_decision"]


def announce_decision(
    cfg: DriftlineConfig,
    registry: MlflowRegistry,
    model: str,
    version: str,
    action: str,
    reason: str,
    previous: str | None,
    *,
    timeout_s: float = 15.0,
) -> int:
    """Publish the decision (and a new champion's reference); returns how many records were sent.

    Raises `DeliveryFailed` (a `RuntimeError`) when the broker did not acknowledge them within ``timeout_s``.
    """
    now = time.time()
    run_id = registry.client.get_model_version(model, version).run_id or None
    event = ModelEvent(
        event_id=deterministic_id("manual", model, version, action, now), ts=now, model=model, version=version,
        action=action, previous_champion=previous, champion=registry.version_for_alias(model, ALIAS_CHAMPION),
        reason=reason, run_id=run_id,
        metrics=registry.version_metrics(model, version),
    )
    records = [(cfg.kafka.topic("models"), encode(event), model.encode())]
    reference = registry.reference_json(run_id) if action in ("promoted", "rolled_back") and run_id else None
    if reference is not None:  # versions not trained by driftline have none
        records.append((cfg.kafka.topic("references"), reference.encode(), model.encode()))
    return produce_and_wait(cfg.kafka, records, what=f"decision {action} of {model} version {version}",
                            timeout_s=timeout_s)

"""The producer SDK: what a prediction service calls to report predictions and outcomes.

One `DriftlineProducer` per process wraps one idempotent confluent-kafka producer. Sends are
asynchronous: `log_prediction` validates and encodes the event, hands it to librdkafka's
queue and returns; delivery reports arrive on later `poll` calls (served on every send) and
failed deliveries are counted, never raised into the request path. `close()` (or leaving the
``with`` block) flushes what is still queued.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, Message, Producer

from driftline.config import DriftlineConfig, KafkaSettings, ProducerSettings
from driftline.consumers.common.kafka import produce_waiting
from driftline.producers.masking import PiiMasker
from driftline.producers.values import clean_features, to_outcome, to_prediction
from driftline.schemas.codec import encode
from driftline.schemas.events import Event, OutcomeEvent, PredictionEvent, deterministic_id

if TYPE_CHECKING:
    from driftline.consumers.common.metrics import Metrics

__all__ = ["DeliveryStats", "DriftlineProducer"]

_POLL_EVERY = 1000


class DeliveryStats:
    """Counts of delivery reports, kept by the SDK whether or not Prometheus is used."""

    def __init__(self) -> None:
        self.produced = 0
        self.delivered = 0
        self.errors = 0
        self.last_error: KafkaError | None = None
        self.buffer_full_waits = 0

    def __repr__(self) -> str:
        return (f"DeliveryStats(produced={self.produced}, delivered={self.delivered}, errors={self.errors}, "
                f"buffer_full_waits={self.buffer_full_waits})")


class DriftlineProducer:
    """Send predictions and outcomes to driftline's topics.

    Parameters
    ----------
    kafka
        Bootstrap servers, topic prefix and pass-through librdkafka settings (SASL, TLS, ...).
    settings
        Batching defaults and PII masking; `ProducerSettings()` when omitted.
    metrics
        Optional Prometheus catalog; delivery errors and acknowledged records are counted on it
        under its ``service`` label.
    client_overrides
        librdkafka settings that win over everything else (e.g. ``{"linger.ms": 5}``).
    on_delivery_error
        Called with ``(error, message)`` for each record the broker did not acknowledge.

    Examples
    --------
    The client is created on the first send, so building one needs no broker:

    >>> from driftline.config import KafkaSettings
    >>> producer = DriftlineProducer(KafkaSettings(bootstrap_servers="127.0.0.1:1", topic_prefix="demo."))
    >>> producer.topics["predictions"], producer.client_config["enable.idempotence"]
    ('demo.predictions', True)
    >>> producer.close(timeout_s=0)
    0
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: ProducerSettings | None = None,
        *,
        metrics: Metrics | None = None,
        client_overrides: Mapping[str, Any] | None = None,
        on_delivery_error: Callable[[KafkaError, Message], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.settings = settings if settings is not None else ProducerSettings()
        self.metrics = metrics
        self.on_delivery_error = on_delivery_error
        salt = self.settings.pii_salt.get_secret_value() if self.settings.pii_salt is not None else None
        self.masker = PiiMasker(self.settings.pii_drop, self.settings.pii_hash, salt)
        self.topics = {name: kafka.topic(name) for name in ("predictions", "outcomes")}
        self.client_config: dict[str, Any] = kafka.client_config(
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": self.settings.linger_ms,
                "batch.size": self.settings.batch_size_bytes,
                "compression.type": self.settings.compression,
                "queue.buffering.max.messages": self.settings.queue_max_messages,
                **(client_overrides or {}),
            }
        )
        self.stats = DeliveryStats()
        self._since_poll = 0
        self._out_children: dict[str, Any] = {}
        self._client: Producer | None = None

    @classmethod
    def from_config(cls, config: DriftlineConfig, **kwargs: Any) -> DriftlineProducer:
        """Build from the loaded driftline configuration (kafka + producer sections)."""
        return cls(config.kafka, config.producer, **kwargs)

    @property
    def _producer(self) -> Producer:
        # Lazy: no network and no librdkafka threads until the first record is sent.
        if self._client is None:
            self._client = Producer({**self.client_config, "on_delivery": self._on_delivery})
        return self._client

    # --- events --------------------------------------------------------------------------

    def log_prediction(
        self,
        model: str,
        model_version: str,
        request_id: str,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        ts: float | None = None,
        event_id: str | None = None,
        variant: str | None = None,
        entity_id: str | None = None,
    ) -> PredictionEvent:
        """Validate, mask and send one prediction keyed by ``request_id``; returns the event sent.

        ``prediction`` may be a number, a label, ``(label, {class: probability})`` or
        ``{item_id: score}`` (a ranking of group ``entity_id`` or, without it, ``request_id``).
        ``ts`` defaults to now; ``event_id`` to a hash of (model, version, request), so a retried
        call is recognised as a duplicate downstream.
        """
        event = PredictionEvent(
            event_id=event_id or deterministic_id("prediction", model, model_version, request_id),
            ts=time.time() if ts is None else ts,
            model=model,
            model_version=model_version,
            request_id=request_id,
            features=self.masker.mask(clean_features(features)),
            prediction=to_prediction(prediction, group_id=entity_id or request_id),
            variant=variant,
            entity_id=entity_id,
        )
        self.produce_event(self.topics["predictions"], request_id, event)
        return event

    def log_outcome(
        self,
        model: str,
        request_id: str,
        outcome: Any,
        *,
        ts: float | None = None,
        event_id: str | None = None,
        group_id: str | None = None,
    ) -> OutcomeEvent:
        """Validate and send what actually happened for ``request_id``; returns the event sent.

        ``outcome`` may be a number, a label or ``{item_id: relevance}`` (group ``group_id``,
        default ``request_id``).
        """
        event = OutcomeEvent(
            event_id=event_id or deterministic_id("outcome", model, request_id),
            ts=time.time() if ts is None else ts,
            request_id=request_id,
            model=model,
            outcome=to_outcome(outcome, group_id=group_id or request_id),
        )
        self.produce_event(self.topics["outcomes"], request_id, event)
        return event

    def produce_event(self, topic: str, key: str | bytes | None, event: Event) -> None:
        """Encode any driftline event with orjson, send it asynchronously, serve delivery reports."""
        self.produce_raw(topic, key, encode(event))
        self.poll(0)

    # --- raw records ---------------------------------------------------------------------

    def produce_raw(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Send pre-encoded bytes (the simulator's bulk path, the dead-letter writer).

        When librdkafka's local queue is full, serve delivery reports until there is room
        instead of failing the caller.
        """
        self.stats.buffer_full_waits += produce_waiting(self._producer, topic, value, key, headers=headers)
        self.stats.produced += 1
        self._since_poll += 1
        if self._since_poll >= _POLL_EVERY:
            self._since_poll = 0
            self._producer.poll(0)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve pending delivery reports; returns how many were served."""
        self._since_poll = 0
        return self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait until queued records are acknowledged; returns how many are still queued."""
        self._since_poll = 0
        return self._producer.flush(timeout_s)

    @property
    def queued(self) -> int:
        """Records handed over but not yet acknowledged or failed."""
        return 0 if self._client is None else len(self._client)

    def close(self, timeout_s: float = 30.0) -> int:
        """Flush before the process ends; returns how many records could not be delivered in time."""
        if self._client is None:
            return 0
        return self.flush(timeout_s)

    def __enter__(self) -> DriftlineProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.stats.delivered += 1
            if self.metrics is not None:
                topic = message.topic()
                child = self._out_children.get(topic)
                if child is None:
                    child = self._out_children[topic] = self.metrics.events_out.labels(self.metrics.service, topic)
                child.inc()
            return
        self.stats.errors += 1
        self.stats.last_error = error
        if self.metrics is not None:
            self.metrics.delivery_errors.labels(self.metrics.service).inc()
        if self.on_delivery_error is not None:
            self.on_delivery_error(error, message)

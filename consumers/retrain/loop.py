"""The worker's loop: poll an alert, handle it (all MLflow writes), publish the decision, commit.

Alerts are rare and each one is expensive, so the loop handles one at a time and commits
each synchronously once its MLflow writes are done and its outputs are acknowledged: a
crash at any point redelivers the alert, and the handler's ``driftline.alert_id`` lookup
makes that harmless.

When MLflow does not answer (or another worker holds the model's lease) the alert is kept,
not committed: the loop pauses its partitions, keeps polling so the group does not evict
it, and retries with exponential backoff until MLflow is back, the partition is taken away
by a rebalance, or the worker is asked to stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from driftline.consumers.common.kafka import DeliveryFailed, raise_for_msg_error, to_raw
from driftline.consumers.common.lag import export_lag
from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.signals import StopFlag
from driftline.consumers.retrain.handler import HandleResult, RetrainHandler
from driftline.consumers.retrain.registry import LeaseBusy, is_transient
from driftline.schemas.codec import Reject, decode_one
from driftline.schemas.events import DriftAlert

__all__ = ["RetrainLoop"]

log = logging.getLogger(__name__)


class RetrainLoop:
    """Consume `alerts` with manual commits after the MLflow writes.

    Parameters
    ----------
    consumer, producer
        Clients built by the composition root; the consumer is subscribed by `run`.
    handler
        Turns one alert into MLflow writes and records to publish.
    topics
        Logical topic name -> full name, for ``alerts``, ``models``, ``references`` and ``dlq``.
    mlflow_ping
        True when MLflow answers; tells an outage apart from a bad request.
    mark_published
        Records on the run that its decision reached Kafka (called after the commit).
    """

    def __init__(
        self,
        consumer: Consumer,
        producer: Producer,
        handler: RetrainHandler,
        *,
        topics: Mapping[str, str],
        metrics: Metrics,
        stop: StopFlag,
        mlflow_ping: Callable[[], bool],
        mark_published: Callable[[str], None],
        poll_timeout_s: float = 1.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.handler = handler
        self.topics = dict(topics)
        self.metrics = metrics
        self.stop = stop
        self.mlflow_ping = mlflow_ping
        self.mark_published = mark_published
        self.poll_timeout_s = poll_timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.mlflow_up = True
        self._revoked: set[tuple[str, int]] = set()
        self._delivery_errors: list[KafkaError] = []

    def set_mlflow_up(self, up: bool) -> None:
        """Whether the last MLflow call succeeded (gauge ``driftline_mlflow_up``)."""
        self.mlflow_up = up
        self.metrics.mlflow_up.set(1 if up else 0)

    def run(self, *, max_alerts: int | None = None) -> int:
        """Handle alerts until stopped (or ``max_alerts`` were committed); returns how many were committed."""
        self.consumer.subscribe([self.topics["alerts"]], on_assign=self._on_assign, on_revoke=self._on_revoke)
        committed = 0
        while not self.stop.is_set() and (max_alerts is None or committed < max_alerts):
            message = self.consumer.poll(self.poll_timeout_s)
            if message is None or not raise_for_msg_error(message):
                continue
            if self._process(message):
                committed += 1
        return committed

    # --- one alert -----------------------------------------------------------------------

    def _process(self, message: Message) -> bool:
        """Handle, publish and commit one alert; False when it was left for redelivery."""
        raw = to_raw(message)
        self.metrics.events_in.labels(service="retrain", topic=raw.topic).inc()
        decoded = decode_one(raw, DriftAlert)
        if isinstance(decoded, Reject):
            self._dead_letter(decoded)
            self._commit(message)
            return True
        result = self._handle_until_done(decoded, message)
        if result is None:
            return False
        self._count(decoded, result)
        if result.outputs:
            self._publish(result)
        self._commit(message)
        if result.run_id and result.outcome in ("promoted", "challenger", "republished"):
            try:
                self.mark_published(result.run_id)
            except Exception as exc:  # the alert is committed; the tag only saves a re-publish
                self.metrics.mlflow_errors.inc()
                log.warning("could not tag run %s as published: %s", result.run_id, exc)
        return True

    def _handle_until_done(self, alert: DriftAlert, message: Message) -> HandleResult | None:
        """The handler's result, retrying while MLflow is away; None when stopped or revoked."""
        received_at = time.monotonic()
        delay_s = self.retry_initial_s
        where = (message.topic(), message.partition())
        self._revoked.discard(where)
        while True:
            try:
                result = self.handler.handle(alert, received_at=received_at)
            except LeaseBusy as exc:
                log.info("%s; retrying in %.1f s", exc, delay_s)
            except Exception as exc:
                if not is_transient(exc) and self.mlflow_ping():
                    self.set_mlflow_up(True)
                    log.exception("alert %s of %s failed; skipping it", alert.alert_id, alert.model)
                    return HandleResult("failed", f"{type(exc).__name__}: {exc}")
                self.set_mlflow_up(False)
                self.metrics.mlflow_errors.inc()
                log.warning("MLflow unavailable (%s); alert %s kept, retrying in %.1f s",
                            type(exc).__name__, alert.alert_id, delay_s)
            else:
                self.set_mlflow_up(True)
                return result
            if not self._wait_paused(delay_s) or where in self._revoked:
                log.info("alert %s left uncommitted for redelivery", alert.alert_id)
                return None
            delay_s = min(delay_s * 2, self.retry_max_s)

    def _wait_paused(self, delay_s: float) -> bool:
        """Back off without leaving the group: partitions paused, poll served. False when stopping."""
        assignment = self.consumer.assignment()
        self.consumer.pause(assignment)
        try:
            deadline = time.monotonic() + delay_s
            while not self.stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
                stray = self.consumer.poll(min(remaining, 0.5))
                if stray is not None and stray.error() is None:  # never expected while paused: give it back
                    self.consumer.seek(TopicPartition(stray.topic(), stray.partition(), stray.offset()))
        finally:
            self.consumer.resume([tp for tp in assignment if (tp.topic, tp.partition) not in self._revoked])
        return not self.stop.is_set()

    # --- outputs and offsets ---------------------------------------------------------------

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._delivery_errors.append(error)

    def _publish(self, result: HandleResult) -> None:
        for output in result.outputs:
            topic = self.topics[output.topic]
            self.producer.produce(topic, output.value, key=output.key, on_delivery=self._on_delivery)
            self.metrics.events_out.labels(service="retrain", topic=topic).inc()
        self._flush()

    def _flush(self) -> None:
        """Wait for every produced record; any not acknowledged stops the loop before the commit."""
        self.producer.flush()
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            self.metrics.delivery_errors.labels(service="retrain").inc(len(errors))
            raise DeliveryFailed(f"{len(errors)} record(s) not acknowledged; first: {errors[0].str()}")

    def _dead_letter(self, reject: Reject) -> None:
        self.metrics.events_rejected.labels(service="retrain", reason=reject.reason.value).inc()
        self.producer.produce(self.topics["dlq"], reject.message.value, key=reject.message.key,
                              headers=reject.dlq_headers(), on_delivery=self._on_delivery)
        self._flush()

    def _commit(self, message: Message) -> None:
        self.consumer.commit(message=message, asynchronous=False)
        export_lag(self.consumer, self.metrics)

    def _count(self, alert: DriftAlert, result: HandleResult) -> None:
        self.metrics.retrain_runs.labels(model=alert.model, outcome=result.outcome).inc()
        if result.registered_after_s is not None:
            self.metrics.retrain_duration_seconds.labels(model=alert.model).observe(result.registered_after_s)
        if result.outcome == "promoted":
            self.metrics.model_promotions.labels(model=alert.model).inc()
        if result.outcome == "failed":  # with a run: the trainer failed; without: the flow did
            reason = "training" if result.run_id else "error"
            self.metrics.retrain_failures.labels(model=alert.model, reason=reason).inc()
        log.info("alert %s (%s, %s): %s — %s", alert.alert_id, alert.model, alert.kind, result.outcome, result.reason)

    # --- rebalances ------------------------------------------------------------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._revoked.difference_update((tp.topic, tp.partition) for tp in partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._revoked.update((tp.topic, tp.partition) for tp in partitions)

"""The latest reference profile per model, from the compacted `references` topic.

`ReferenceBook.load` reads the topic from its start to its end when a service starts; `poll`
then picks up profiles published while it runs (e.g. by the retrain worker after a promotion).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from driftline.config import KafkaSettings
from driftline.consumers.common.kafka import (
    make_consumer,
    produce_and_wait,
    raise_for_msg_error,
    read_to_end,
    topic_partitions,
    watermark_offsets,
)
from driftline.schemas.codec import encode
from driftline.schemas.profiles import ReferenceProfile

__all__ = ["ReferenceBook", "decode_profile", "encode_profile", "publish_profile"]

log = logging.getLogger("driftline.references")


def encode_profile(profile: ReferenceProfile) -> bytes:
    """Wire form of a profile on the `references` topic (JSON, key = model)."""
    return encode(profile)


def decode_profile(value: bytes) -> ReferenceProfile:
    """Parse a `references` record; raises `pydantic.ValidationError` when it is not a profile."""
    return ReferenceProfile.model_validate_json(value)


class ReferenceBook:
    """Reference profiles by model, kept current from the `references` topic.

    Parameters
    ----------
    settings
        Kafka settings (topic prefix, client pass-through).
    on_update
        Called with each profile that arrives after `load` (not for the initial load).
    """

    def __init__(
        self, settings: KafkaSettings, *, on_update: Callable[[ReferenceProfile], None] | None = None
    ) -> None:
        self.settings = settings
        self.topic = settings.topic("references")
        self.on_update = on_update
        self.profiles: dict[str, ReferenceProfile] = {}
        self._tail: Consumer | None = None

    def load(self) -> dict[str, ReferenceProfile]:
        """Read the topic to its end and start following it."""
        tail = make_consumer(self.settings, "driftline-references", **{"enable.partition.eof": False})
        partitions = topic_partitions(tail, self.topic, missing_ok=True)
        ends: list[TopicPartition] = []
        for tp in partitions:
            _low, high = watermark_offsets(tail, tp)
            ends.append(TopicPartition(self.topic, tp.partition, high))
        for message in read_to_end(self.settings, partitions):
            self._apply(message.key(), message.value())
        tail.assign(ends)
        self._tail = tail
        return self.profiles

    def poll(self) -> list[ReferenceProfile]:
        """Profiles published since the last call (non-blocking)."""
        if self._tail is None:
            return []
        updated: list[ReferenceProfile] = []
        for message in self._tail.consume(num_messages=100, timeout=0):
            if raise_for_msg_error(message):
                profile = self._apply(message.key(), message.value())
                if profile is not None:
                    updated.append(profile)
                    if self.on_update is not None:
                        self.on_update(profile)
        return updated

    def close(self) -> None:
        if self._tail is not None:
            self._tail.close()
            self._tail = None

    def _apply(self, key: bytes | None, value: bytes | None) -> ReferenceProfile | None:
        if value is None:
            if key is not None:
                self.profiles.pop(key.decode(), None)
            return None
        try:
            profile = decode_profile(value)
        except ValueError as exc:  # pydantic's ValidationError included: skipped, the book keeps the last good one
            log.warning("reference record on %s skipped: %s", self.topic, str(exc)[:500])
            return None
        self.profiles[profile.model] = profile
        return profile


def publish_profile(settings: KafkaSettings, profile: ReferenceProfile, *, timeout_s: float = 30.0) -> None:
    """Publish a profile on the compacted `references` topic (key = model) and wait for the ack."""
    produce_and_wait(settings, [(settings.topic("references"), encode_profile(profile), profile.model.encode())],
                     what=f"reference {profile.reference_id}", timeout_s=timeout_s)

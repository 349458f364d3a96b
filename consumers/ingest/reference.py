"""Where `driftline reference build` finds its sample: a file, or `labeled` over an event-time span."""

from __future__ import annotations

from pathlib import Path

from driftline.config import DriftlineConfig
from driftline.schemas.codec import RawMessage, decode_one
from driftline.schemas.events import LabeledEvent, PredictionEvent

__all__ = ["load_sample", "read_event_lines"]


def read_event_lines(path: Path) -> list[PredictionEvent | LabeledEvent]:
    """JSON Lines of LabeledEvent or PredictionEvent; a line that is neither is an error naming it."""
    events: list[PredictionEvent | LabeledEvent] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            raw = RawMessage(line.strip())
            decoded = decode_one(raw, LabeledEvent)
            if not isinstance(decoded, LabeledEvent):
                decoded = decode_one(raw, PredictionEvent)
            if not isinstance(decoded, PredictionEvent | LabeledEvent):
                raise ValueError(f"{path}:{number}: not a PredictionEvent or LabeledEvent ({decoded.detail})")
            events.append(decoded)
    return events


def load_sample(
    cfg: DriftlineConfig, model: str, *, source: Path | None, labeled_span: tuple[float, float] | None
) -> Path | list[PredictionEvent | LabeledEvent]:
    """The reference sample in a form `build_reference` accepts."""
    if source is not None:
        if source.suffix in {".jsonl", ".ndjson", ".json"}:
            return read_event_lines(source)
        return source
    if labeled_span is None:
        raise ValueError("a file or a labeled span is needed")
    from driftline.consumers.retrain.data import LabeledReader

    start_ts, end_ts = labeled_span
    events = LabeledReader(cfg.kafka, cfg.kafka.topic("labeled")).read(model, start_ts, end_ts)
    if not events:
        raise ValueError(f"no labeled events of {model} in [{start_ts}, {end_ts})")
    return list(events)

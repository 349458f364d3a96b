"""Pane sketches from records (`RecordPanes`) equal the object path's (`PaneAggregator` on pydantic events).

The object path is the reference: events validated by pydantic, ``add_predictions`` and
``add_labeled`` with `LabeledEvent` objects. The same stream through ``add_records`` and
``add_labeled_rows`` must give byte-identical pane partials and aggregator state, for every
task (classification with probabilities, regression, ranking), with nulls, late events and
a model without a reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from driftline.consumers.ingest.columnar import RecordPanes, columns_from_records, labeled_columns_from_rows
from driftline.producers.simulator import Simulator
from driftline.schemas.codec import RawMessage, decode_batch, decode_records, encode, labeled_json, pending_prediction
from driftline.schemas.events import LabeledEvent, OutcomeEvent, PredictionEvent
from driftline.stream.columns import columns_from_events, labeled_columns
from driftline.stream.join import labeled_id
from driftline.stream.panes import PaneAggregator
from driftline.stream.reference import build_reference

TASKS = {"churn": "classification", "eta": "regression", "race": "ranking"}


@pytest.fixture(scope="module")
def stream() -> tuple[dict, list[bytes], list[bytes]]:
    sim = Simulator([*TASKS, "fraud:churn"], seed=11, events_per_s=40.0, label_delay_s=3.0, missing_fraction=0.05)
    profiles = {m: build_reference(sim.reference_frame(m, 800), model=m, model_version="1", task=t)
                for m, t in TASKS.items()}  # "fraud" has none: unmonitored
    predictions, outcomes = [], []
    for batch in sim.batches(3000, batch_size=1000):
        for kind, value in zip(batch.kinds, batch.values, strict=True):
            (predictions if kind == "predictions" else outcomes).append(value)
    return profiles, predictions, outcomes


def test_columns_from_records_equal_columns_from_events(stream: tuple[dict, list[bytes], list[bytes]]) -> None:
    profiles, predictions, _ = stream
    messages = [RawMessage(v) for v in predictions]
    events = decode_batch(messages, PredictionEvent).events
    records = decode_records(messages, PredictionEvent).records
    for model, profile in profiles.items():
        mine = [i for i, e in enumerate(events) if e.model == model]
        expected = columns_from_events([events[i] for i in mine], profile, seed=3)
        actual = columns_from_records([records[i] for i in mine], profile, seed=3)
        for name in ("ts", "keys", "prediction", "prediction_keys", "prediction_event", "score"):
            want, got = getattr(expected, name), getattr(actual, name)
            assert (want is None) == (got is None), name
            if want is not None:
                np.testing.assert_array_equal(got, want, err_msg=name)
        assert list(actual.features) == list(expected.features)
        for name, column in expected.features.items():
            assert actual.features[name].dtype == column.dtype
            np.testing.assert_array_equal(actual.features[name], column, err_msg=name)


def test_record_panes_equal_the_object_path(stream: tuple[dict, list[bytes], list[bytes]]) -> None:
    profiles, predictions, outcomes = stream
    events = decode_batch([RawMessage(v) for v in predictions], PredictionEvent).events
    records = decode_records([RawMessage(v) for v in predictions], PredictionEvent).records
    outcome_events = decode_batch([RawMessage(v) for v in outcomes], OutcomeEvent).events
    outcome_records = decode_records([RawMessage(v) for v in outcomes], OutcomeEvent).records
    by_request = {r.request_id: i for i, r in enumerate(records)}
    rng = np.random.default_rng(5)
    reference = PaneAggregator(profiles, pane_s=10.0, allowed_lateness_s=5.0, source="0", seed=3)
    fast = RecordPanes(profiles, pane_s=10.0, allowed_lateness_s=5.0, source="0", seed=3)
    step = 200
    for start in range(0, len(records), step):
        rows = list(range(start, min(start + step, len(records))))
        rng.shuffle(rows)  # out of order within a batch; a few events end up late
        for model in [*TASKS, "fraud"]:  # one model per call, as the handler's chunks give them
            mine = [i for i in rows if records[i].model == model]
            reference.add_predictions([events[i] for i in mine])
            fast.add_records([records[i] for i in mine])
        joined = [j for j in range(len(outcome_records))
                  if by_request.get(outcome_records[j].request_id, len(records)) in set(rows)]
        labeled = []
        for j in joined:
            p, o = records[by_request[outcome_records[j].request_id]], outcome_records[j]
            labeled.append((labeled_id(p.event_id, o.event_id), pending_prediction(p), o))
        reference.add_labeled([LabeledEvent.model_validate_json(labeled_json(*row)) for row in labeled])
        fast.add_labeled_rows(labeled)
        assert [encode(p) for p in fast.close_panes()] == [encode(p) for p in reference.close_panes()]
    assert fast.counters == reference.counters
    assert sum(reference.counters.late.values()) > 0 and reference.counters.unmonitored["fraud"] > 0
    assert sum(reference.counters.labeled.values()) > 1000
    assert encode_state(fast) == encode_state(reference)
    assert len(outcome_events) == len(outcome_records)


def encode_state(aggregator: PaneAggregator) -> bytes:
    import orjson

    return orjson.dumps(aggregator.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)


CLASSES = [{"label": "1", "probabilities": {"0": 0.25, "1": 0.75}},
           {"label": "0", "probabilities": {"0": 0.5, "1": 0.5}}]
UNSCORED = [[*CLASSES, {"label": "0"}], [*CLASSES, {"label": "1", "probabilities": None}],
            [*CLASSES, {"label": "0", "probabilities": {"0": 1.0}}]]
MIXED = [*CLASSES, "1", {"group_id": "g", "items": [{"item_id": "x", "score": 0.5}]}]


@pytest.mark.parametrize("shapes", [CLASSES, *UNSCORED, MIXED],
                         ids=["classes", "no-probabilities", "null-probabilities", "no-positive", "mixed"])
def test_class_columns_of_records_equal_the_object_paths_whatever_the_predictions(
        stream: tuple[dict, list[bytes], list[bytes]], shapes: list[object]) -> None:
    """Labels and scores read in one pass when every prediction is a class equal the per-row reading; classes
    without probabilities (or without the positive one's), plain labels and rankings give the same columns."""
    profile = stream[0]["churn"]
    predictions = [PredictionEvent(event_id=f"p{i}", ts=1.0 + i, model="churn", model_version="1",
                                   request_id=f"r{i}", features={}, prediction=shape)
                   for i, shape in enumerate(shapes * 3)]
    outcomes = [OutcomeEvent(event_id=f"o{i}", ts=2.0 + i, request_id=f"r{i}", model="churn", outcome=str(i % 2))
                for i in range(len(predictions))]
    records = decode_records([RawMessage(encode(p)) for p in predictions], PredictionEvent).records
    outcome_records = decode_records([RawMessage(encode(o)) for o in outcomes], OutcomeEvent).records
    expected, actual = columns_from_events(predictions, profile), columns_from_records(records, profile)
    assert expected.score is not None
    for name in ("prediction", "score"):
        np.testing.assert_array_equal(getattr(actual, name), getattr(expected, name), err_msg=name)
    events = [LabeledEvent.model_validate_json(labeled_json(labeled_id(p.event_id, o.event_id),
                                                            pending_prediction(p), o))
              for p, o in zip(records, outcome_records, strict=True)]
    want = labeled_columns(events, "classification", positive_label="1")
    got = labeled_columns_from_rows([(e.event_id, p, o) for e, p, o in zip(events, records, outcome_records,
                                                                            strict=True)],
                                    "classification", positive_label="1")
    assert (want.scores is None) == (got.scores is None) == (shapes is not CLASSES)
    for name in ("y_true", "y_pred", "scores"):
        if getattr(want, name) is not None:
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)

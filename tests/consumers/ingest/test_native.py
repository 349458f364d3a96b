"""The native hot path (``native/``) against the Python path it stands in for.

Where it is sure, the scanner must read exactly what `decode_records` reads and write exactly
what `pending_prediction` writes, and `labeled_records` exactly what `labeled_id` and
`labeled_json` write; where it is not, it must say so (None), and the handler's outputs must be
the same with it and without it.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import msgspec
import numpy as np
import orjson
import pytest

from driftline.config import IngestSettings
from driftline.consumers.ingest.columnar import (
    RecordPanes,
    _native_labeled_columns,
    columns_from_records,
    columns_from_scanned,
    labeled_columns_from_rows,
)
from driftline.consumers.ingest.handler import IngestOutputs, PartitionState
from driftline.consumers.ingest.native import AVAILABLE
from driftline.producers.simulator import ModelSpec, Simulator
from driftline.schemas.codec import (
    OutcomeRecord,
    PendingPrediction,
    RawMessage,
    decode_records,
    labeled_json,
    pending_prediction,
    prediction_json,
)
from driftline.schemas.events import OutcomeEvent, PredictionEvent
from driftline.stream.join import labeled_id
from driftline.stream.panes import ProfileBins
from driftline.stream.reference import build_reference


def _cargo() -> bool:
    return shutil.which("cargo") is not None or (Path.home() / ".cargo" / "bin" / "cargo").exists()


def test_the_scanner_is_built_wherever_cargo_is() -> None:
    """`make install` builds it when Rust is there; a failed build must not pass unnoticed as skips."""
    assert AVAILABLE or not _cargo()


if AVAILABLE:
    from driftline_native import canonical_number, labeled_columns, labeled_records, scan_outcomes

needs_native = pytest.mark.skipif(not AVAILABLE, reason="driftline-native is not built (no cargo)")

SETTINGS = IngestSettings(pane_s=10.0, allowed_lateness_s=5.0, max_label_delay_s=600.0)
NATIVE = SETTINGS.model_copy(update={"native": True})
PYTHON = SETTINGS.model_copy(update={"native": False})


def _simulator(**overrides: object) -> Simulator:
    models = [ModelSpec("a", "churn"), ModelSpec("b", "eta"), ModelSpec("r", "race")]
    return Simulator(models, seed=11, events_per_s=20.0, label_delay_s=5.0, **overrides)


def _profiles(sim: Simulator) -> dict:
    tasks = {"a": "classification", "b": "regression", "r": "ranking"}
    return {model: build_reference(sim.reference_frame(model, 1000), model=model, model_version="1", task=task)
            for model, task in tasks.items()}


def _scanner(profiles: dict) -> object:
    return RecordPanes(profiles, pane_s=10.0, allowed_lateness_s=5.0, source="0", native=True).scanner()


def _scanned_where_sure(pending: PendingPrediction) -> object:
    """The prediction a `PendingPrediction` stands for as the scanner reads it; itself if unsure."""
    return _scanner({}).scan([prediction_json(pending)], 1_048_576, math.inf)[0] or pending


@needs_native
def test_a_number_is_read_only_in_the_form_orjson_writes_it() -> None:
    rng = np.random.default_rng(5)
    magnitudes = 10.0 ** rng.uniform(-6, 17, size=20_000)
    values = [float(round(x, int(d))) for x, d in zip(magnitudes * rng.choice([-1, 1], size=20_000),
                                                       rng.integers(0, 18, size=20_000), strict=True)]
    values += [float(x) for x in rng.random(2_000)] + [0.1 + 0.2, 1e15 - 0.5, 1e-4, 123.0, -0.0, 0.0]
    for value in values:
        token = orjson.dumps(value).decode()
        read = canonical_number(token)
        if read is not None:
            assert read == value and math.copysign(1, read) == math.copysign(1, value), token
        elif value == 0.0 or 1e-4 <= abs(value) < 1e15:  # orjson's fixed notation
            # only a 16- or 17-digit one may be left to Python: Rust prints some ties the other way
            assert len(token.lstrip("-").replace(".", "").strip("0")) > 15, token
        else:
            assert read is None, token  # an exponent: the Python path decides
    read_as = [("12", 12.0), ("-7", -7.0), ("0.5", 0.5), ("-0.0", -0.0), ("0.30000000000000004", 0.1 + 0.2)]
    for token, expected in read_as:
        assert canonical_number(token) == expected
    for token in ["1.50", "01.5", "1e5", "1E5", "-0", "1.", ".5", "+1.0", "0.00", "00", "1234567890123456789",
                  "0.29999999999999999", "0.3000000000000000", "1.0e0", "NaN", "Infinity", "1 ", ""]:
        assert canonical_number(token) is None, token


def _variants() -> tuple[list[bytes], list[bytes]]:
    """Hand-made predictions the scanner must read, and ones it must leave to the Python path."""
    base = {"schema_version": 1, "event_id": "e1", "ts": 1767225600.25, "model": "a", "model_version": "1",
            "request_id": "r1", "features": {"tenure_months": 3.0, "plan": "basic", "extra": "x"},
            "prediction": {"label": "1", "probabilities": {"0": 0.25, "1": 0.75}}}

    def variant(**changes: object) -> bytes:
        event = {**base, **changes}
        return orjson.dumps({k: v for k, v in event.items() if v is not ...})

    plain = variant()

    read = [
        variant(features={"tenure_months": 3.0, "plan": "basic", "age": 40, "region": None}),
        variant(features={}),
        variant(schema_version=...),
        variant(ts=1767225600),
        variant(prediction={"label": "0"}),
        variant(prediction={"label": "0", "probabilities": None}),
        variant(prediction={"probabilities": {}, "label": "0"}),
        variant(model="b", features={"distance_km": 2.5, "weather": "rain"}, prediction=12.5),
        variant(model="unknown-model", prediction=0.5),
        variant(variant="treatment", entity_id="customer-9"),
        variant(variant=None, entity_id="customer-9"),
        variant(event_id="é" * 256, request_id="ключ", features={"plan": "базовый"}),
        orjson.dumps({k: base[k] for k in reversed(list(base))}),  # any order of the top-level keys
    ]
    left = [
        variant(features={"tenure_months": True}),  # a bool: msgspec refuses it, pydantic decides
        variant(features={"tenure_months": "3.5"}),  # a number in a string for a numeric feature
        variant(features={"plan": 3.0}),  # a number for a categorical one
        variant(features={"tenure_months": 1.5e-7}),  # an exponent
        variant(features={"tenure_months": {"nested": 1.0}}),
        variant(prediction=1),  # an int prediction becomes a float
        variant(prediction={"label": "1", "probabilities": {"1": 1.5}}),
        variant(prediction={"label": "1", "probabilities": {"1": 1}}),
        variant(prediction={"group_id": "g", "items": [{"item_id": "i", "score": 0.5}]}),
        variant(prediction={"label": ""}),
        variant(event_id=""),
        variant(event_id="x" * 257),
        variant(request_id="with \"quotes\""),
        variant(schema_version=2),
        variant(unknown_field=1),
        variant(ts=float("nan")),
        variant(ts=1e300),
        plain.replace(b'"plan":"basic"', b'"plan": "basic"'),  # whitespace
        plain.replace(b'"plan":"basic"', b'"plan":"basic","plan":"pro"'),  # a repeated key
        plain.replace(b'"model":"a"', b'"model":"a","model":"a"'),
        plain.replace(b"3.0", b"3.00"),
        plain.replace(b'"r1"', b'"r\\u0031"'),  # an escape
        plain[:-1],
        b"not json",
        b"[]",
        b"{}",
    ]
    return read, left


@needs_native
def test_every_prediction_scanned_is_what_the_python_path_reads() -> None:
    sim = _simulator(malformed_fraction=0.05, missing_fraction=0.05)
    profiles = _profiles(sim)
    scanner = _scanner(profiles)
    values = [v for batch in sim.batches(3000, batch_size=1000)
              for kind, v in zip(batch.kinds, batch.values, strict=True) if kind == "predictions"]
    read, left = _variants()
    scanned = scanner.scan([*values, *read, *left], 1_048_576, math.inf)
    assert [s is None for s in scanned[len(values) + len(read):]] == [True] * len(left)
    assert None not in scanned[len(values):len(values) + len(read)]
    assert scanner.scan([read[0]], len(read[0]) - 1, math.inf) == [None]  # too large: Python rejects it
    assert scanner.scan([read[0]], 1_048_576, 1.0) == [None]  # ts_in_future, likewise
    assert scanner.scan([None], 1_048_576, math.inf) == [None]
    checked = unseen = 0
    for value, record in zip([*values, *read], scanned, strict=False):
        if record is None:
            continue
        decoded = decode_records([RawMessage(value)], PredictionEvent)
        assert not decoded.rejects and len(decoded.records) == 1, value
        python = decoded.records[0]
        waiting = pending_prediction(python)
        assert (record.event_id, record.ts, record.model, record.request_id, record.prediction) == (
            python.event_id, python.ts, python.model, python.request_id, python.prediction)
        assert (record.labeled_body, record.labeled_tail) == (waiting.labeled_body, waiting.labeled_tail), value
        assert prediction_json(record) == prediction_json(waiting)  # what its changelog entry holds
        profile = profiles.get(python.model)
        if profile is not None:
            columns = columns_from_records([python], profile)
            numeric = np.frombuffer(record.numeric, dtype=np.float64)
            names = [n for n in profile.features if columns.features[n].dtype == np.float64]
            np.testing.assert_array_equal(numeric, [columns.features[n][0] for n in names])
            bins = ProfileBins.of(profile).features
            assert np.frombuffer(record.categorical, dtype=np.intp).tolist() == [  # binned as the sketches bin
                bins[n].ids(columns.features[n][:1], none_apart=True)[0] for n in profile.features if n not in names]
            unseen += sum(columns.features[n][0] not in bins[n].category_ids() for n in profile.features
                          if n not in names and columns.features[n][0] is not None)
        checked += 1
    ranking = sum(1 for v in values if b'"items"' in v)
    assert checked >= 0.9 * (len(values) - ranking)  # the Python path is the exception, not the rule
    assert unseen >= 1


@needs_native
def test_scanned_columns_are_the_columns_of_the_records_read_by_the_python_path() -> None:
    """One native pass makes the columns; where a prediction is not in the fast path's form, Python makes them."""
    sim = _simulator(missing_fraction=0.05)
    profiles = _profiles(sim)
    three_classes = sim.reference_frame("a", 600).assign(  # a multiclass model's score: its predicted class's
        prediction=np.random.default_rng(2).choice(["0", "1", "2"], size=600))
    profiles["m"] = build_reference(three_classes, model="m", model_version="1", task="classification")
    assert profiles["m"].prediction_score is not None
    scanner = _scanner(profiles)
    values = [v for batch in sim.batches(600, batch_size=600)
              for kind, v in zip(batch.kinds, batch.values, strict=True) if kind == "predictions"]
    by_model = {model: [v for v in values if f'"model":"{model}"'.encode() in v] for model in ("a", "b")}
    event_a, event_b = orjson.loads(by_model["a"][0]), orjson.loads(by_model["b"][0])

    def event(base: dict, n: int, **changes: object) -> bytes:
        return orjson.dumps({**base, "event_id": f"x{n}", "request_id": f"x{n}", **changes})

    class_forms = [{"label": "0"}, {"label": "1", "probabilities": None}, {"label": "1", "probabilities": {}},
                   {"label": "0", "probabilities": {"0": 0.5}}]
    batches = {
        "plain classification": by_model["a"],
        "probabilities absent": [*by_model["a"][:20], *(event(event_a, n, prediction=form)
                                                        for n, form in enumerate(class_forms))],
        "a float for a classifier": [*by_model["a"][:20], event(event_a, 99, prediction=0.25)],
        "plain regression": by_model["b"],
        "a class for a regressor": [*by_model["b"][:20], event(event_b, 98, prediction={"label": "late"})],
        "a ranker given floats": [event({**event_b, "model": "r", "features": {}}, n, prediction=n + 0.5)
                                  for n in range(5)],
        "multiclass": [event({**event_a, "model": "m"}, n, prediction=form) for n, form in enumerate(
            [*class_forms, {"label": "2", "probabilities": {"0": 0.125, "1": 0.25, "2": 0.625}}] * 3)],
    }
    assert columns_from_scanned(scanner.scan(by_model["a"], 1_048_576, math.inf), profiles["a"], 1) is None
    for name, batch in batches.items():
        scanned = scanner.scan(batch, 1_048_576, math.inf)
        assert None not in scanned, name
        records = decode_records([RawMessage(v) for v in batch], PredictionEvent).records
        profile = profiles[records[0].model]
        native = columns_from_scanned(scanned, profile, 0, seed=3)
        python = columns_from_records(records, profile, seed=3)
        for field in ("ts", "keys", "prediction", "prediction_keys", "prediction_event", "score"):
            expected = getattr(python, field)
            if expected is None:
                assert getattr(native, field) is None, (name, field)
            else:
                np.testing.assert_array_equal(getattr(native, field), expected, err_msg=f"{name}: {field}")
                assert getattr(native, field).dtype == expected.dtype, (name, field)
        bins = ProfileBins.of(profile).features
        assert list(native.features) == list(python.features) == list(profile.features)
        for feature, column in python.features.items():
            expected = column if column.dtype == np.float64 else bins[feature].ids(column, none_apart=True)
            np.testing.assert_array_equal(native.features[feature], expected, err_msg=f"{name}: {feature}")


def _scanned_fields(record: object) -> tuple | None:
    if record is None:
        return None
    return (record.event_id, record.model, record.prediction, record.labeled_body, record.labeled_tail, record.numeric,
            record.categorical)


@needs_native
def test_the_feature_order_a_scanner_learnt_never_changes_what_it_reads() -> None:
    """A scanner matches keys against the last order it saw: it must read every event as one that saw nothing."""
    sim = _simulator(missing_fraction=0.05)
    profiles = _profiles(sim)
    values = [v for batch in sim.batches(300, batch_size=300)
              for kind, v in zip(batch.kinds, batch.values, strict=True) if kind == "predictions"]
    event = orjson.loads(next(v for v in values if b'"model":"a"' in v))
    keys = list(event["features"])

    def with_features(names: list[str], value_of: dict | None = None) -> bytes:
        features = {name: (value_of or event["features"]).get(name) for name in names}
        return orjson.dumps({**event, "features": features})

    def repeated(names: list[str], at: int) -> bytes:  # a key written twice: orjson cannot, so splice it
        body = orjson.dumps({**event, "features": {name: event["features"][name] for name in names}})
        first = f'"{names[0]}":'.encode() + orjson.dumps(event["features"][names[0]])
        parts = body.split(b",")
        feature_start = next(i for i, part in enumerate(parts) if part.startswith(b'"features":{'))
        parts.insert(feature_start + at, first)
        return b",".join(parts)

    shuffled = np.random.default_rng(3).permutation(keys).tolist()
    odd = [with_features(list(reversed(keys))), with_features(keys[:5]), with_features([*keys, "new_one"]),
           with_features(shuffled), with_features(keys[1:]), with_features(keys), repeated(keys, len(keys)),
           repeated(keys, 2), with_features(keys, {name: None for name in keys}), with_features(keys[:1]),
           repeated(keys[:3], 3), with_features(keys)]
    stream = [*values[:50], *odd, *values[50:100], *reversed(odd), *values[100:]]
    learnt = _scanner(profiles).scan(stream, 1_048_576, math.inf)
    fresh = [_scanner(profiles).scan([value], 1_048_576, math.inf)[0] for value in stream]
    assert list(map(_scanned_fields, learnt)) == list(map(_scanned_fields, fresh))
    assert [record is None for record in learnt[50:50 + len(odd)]] == [False] * 6 + [True, True, False, False, True,
                                                                                      False]


@needs_native
def test_every_outcome_scanned_is_what_the_python_path_reads() -> None:
    sim = _simulator(malformed_fraction=0.05)
    values = [v for batch in sim.batches(3000, batch_size=1000)
              for kind, v in zip(batch.kinds, batch.values, strict=True) if kind == "outcomes"]
    base = {"schema_version": 1, "event_id": "o1", "ts": 1767225600.5, "request_id": "r1", "model": "a",
            "outcome": 12.5}
    read = [orjson.dumps({**base, **change}) for change in (
        {}, {"outcome": "churned"}, {"outcome": ""}, {"outcome": "ключ"}, {"ts": 1767225600})]
    read.append(orjson.dumps({k: base[k] for k in reversed(list(base))}))
    left = [orjson.dumps({**base, **change}) for change in (
        {"outcome": 3}, {"outcome": True}, {"outcome": {"group_id": "g", "relevance": {"i": 1.0}}},
        {"outcome": None}, {"model": ""}, {"request_id": "x" * 257}, {"schema_version": 2}, {"extra": 1},
        {"outcome": "a\nb"}, {"ts": 1.5e-7})]
    left.append(read[0].replace(b'"model":"a"', b'"model":"a","model":"b"'))
    scanned = scan_outcomes([*values, *read, *left], OutcomeRecord, 1_048_576, math.inf)
    assert all(s is None for s in scanned[len(values) + len(read):])
    assert None not in scanned[len(values):len(values) + len(read)]
    for value, record in zip([*values, *read], scanned, strict=False):
        if record is None:
            continue
        decoded = decode_records([RawMessage(value)], OutcomeEvent)
        assert not decoded.rejects, value
        python = decoded.records[0]
        assert type(record) is OutcomeRecord
        assert msgspec.structs.astuple(record) == msgspec.structs.astuple(python), value
    ranking = sum(1 for v in values if b'"relevance"' in v)  # a ranking outcome is the Python path's
    assert sum(s is not None for s in scanned[:len(values)]) >= 0.9 * (len(values) - ranking)


@needs_native
def test_labeled_records_are_what_labeled_json_writes() -> None:
    rng = np.random.default_rng(8)
    floats = [float(round(x, int(d))) for x, d in zip(10.0 ** rng.uniform(-6, 17, 3000) * rng.choice([-1, 1], 3000),
                                                      rng.integers(0, 18, 3000), strict=True)]
    floats += [0.0, -0.0, 1767225600.002, 0.1 + 0.2, 1e-4, 123.0]
    texts = ["0", "churn", "ключ", "tab\there", 'quote"d', ""]
    body = b'"model":"m","model_version":"1","request_id":"r","features":{"x":1.0},"prediction":0.5'
    pairs = []
    for index, value in enumerate(floats):
        prediction = PendingPrediction(f"p{index}", abs(value), "m", "r", 0.5, body, b',"variant":"v"' * (index % 2))
        outcome = value if index % 4 else texts[index % len(texts)]
        pairs.append((prediction, OutcomeRecord(f"o{index}", abs(floats[-index]), "r", "m", outcome)))
    pairs.append((pairs[0][0], OutcomeRecord("o", 1.0, "r", "m", {"group_id": "g", "relevance": {"i": 1.0}})))
    pairs = [(_scanned_where_sure(p) if index % 3 else p, o) for index, (p, o) in enumerate(pairs)]
    assert sum(type(p) is not PendingPrediction for p, _ in pairs) > 1000  # read natively
    rows, records, outcome_ts, models = labeled_records(pairs)
    assert [row[1:] for row in rows] == pairs
    assert np.frombuffer(outcome_ts).tolist() == [o.ts for _, o in pairs] and models == ["m"] * len(pairs)
    ids = [row[0] for row in rows]

    def sure(value: object) -> bool:
        """What the native writer writes itself: fixed-notation floats of at most 15 digits, plain strings."""
        if type(value) is str:
            return not any(c in value for c in '"\\') and all(ord(c) >= 0x20 for c in value)
        if type(value) is not float:
            return False
        digits = orjson.dumps(value).decode().lstrip("-").replace(".", "").strip("0")
        return value == 0.0 or (1e-4 <= abs(value) < 1e15 and len(digits) <= 15)

    for event_id, record, (prediction, outcome) in zip(ids, records, pairs, strict=True):
        assert event_id == labeled_id(prediction.event_id, outcome.event_id)
        assert (record is not None) == (sure(prediction.ts) and sure(outcome.ts) and sure(outcome.outcome))
        if record is not None:
            assert record == (b"m", labeled_json(event_id, prediction, outcome))
    assert sum(record is not None for record in records) > 100


@needs_native
def test_labeled_columns_are_what_the_python_path_makes_of_the_rows() -> None:
    """The rows' labeled columns in one native pass, or None (the Python path) where it is not sure."""

    def row(index: int, prediction: object, outcome: object) -> tuple:
        body = b'"model":"m","model_version":"1","request_id":"r%d","features":{},"prediction":%s' % (
            index, orjson.dumps(prediction))
        pending = PendingPrediction(f"p{index}", 1.0, "m", f"r{index}", prediction, body, b"")
        return (f"l{index}", pending, OutcomeRecord(f"o{index}", 2.0, f"r{index}", "m", outcome))

    def check(rows: list[tuple], classification: bool, positive: str | None, sure: bool) -> None:
        check_rows(rows, classification, positive, sure)  # predictions in Python objects
        scanned = [(event_id, _scanned_where_sure(p), o) for event_id, p, o in rows]  # or in Rust
        check_rows(scanned, classification, positive, sure)

    def check_rows(rows: list[tuple], classification: bool, positive: str | None, sure: bool) -> None:
        positions = np.arange(len(rows), dtype=np.intp)[::-1][::2]  # any rows, in any order
        native = labeled_columns(rows, positions.tobytes(), classification, positive)
        assert (native is not None) == sure
        if native is None:
            return
        got = _native_labeled_columns(native)
        task = "classification" if classification else "regression"
        expected = labeled_columns_from_rows([rows[i] for i in positions], task, positive_label=positive)
        for name in ("y_true", "y_pred", "scores"):
            want, have = getattr(expected, name), getattr(got, name)
            assert (want is None) == (have is None), name
            if want is not None:
                np.testing.assert_array_equal(have, want, err_msg=name)
                assert have.dtype == want.dtype, name

    labels = ["0", "churn", "ключ", "😀 x", ""]
    classes = [row(i, {"label": labels[i % 5], "probabilities": {"1": i / 10, "0": 1 - i / 10}}, labels[(i + 1) % 5])
               for i in range(10)]
    floats = [row(i, i * 1.5, 0.25 * i) for i in range(10)]
    for rows in (classes, floats):  # the scanner reads them (bar the empty label)
        assert sum(type(_scanned_where_sure(p)) is not PendingPrediction for _, p, _ in rows) >= 8
    check(classes, True, "1", sure=True)
    check(classes, True, None, sure=True)
    check([row(i, {"label": ""}, "") for i in range(4)], True, None, sure=True)  # numpy's <U1 for empty strings
    for odd in ({"label": "0"}, {"label": "0", "probabilities": None}, {"label": "0", "probabilities": {"0": 1.0}}):
        check([*classes[:5], row(5, odd, "1"), *classes[6:]], True, "1", sure=True)  # no scores for the rows
    for odd, outcome in (({"label": "0", "probabilities": {"1": None}}, "1"), ({"label": "0", "probabilities":
                         {"1": 1}}, "1"), ({"label": 3}, "1"), ("0", "1"), ({"label": "0"}, 1.0), ({}, "1")):
        check([*classes[:5], row(5, odd, outcome), *classes[6:]], True, "1", sure=False)
    check(floats, False, None, sure=True)
    for prediction, outcome in ((1, 0.5), (0.5, 1), ({"label": "0"}, 0.5), (0.5, {"relevance": {}})):
        check([*floats[:5], row(5, prediction, outcome), *floats[6:]], False, None, sure=False)


def _run(settings: IngestSettings, profiles: dict, batches: list, change_at: int | None = None,
         new_profile: object = None) -> list[tuple]:
    """Every output of every batch, with the changelog and the committable offsets after it."""
    state = PartitionState(0, settings, profiles)
    steps = []

    def step(out: IngestOutputs) -> None:
        rejects = [(r.reason, r.message.offset) for r in out.rejects]
        steps.append((out.labeled, [p.model_dump() for p in out.panes], rejects, state.changelog(), out.join_hits,
                       out.late_by_model, out.unmonitored_by_model, state.committable_offsets()))

    for index, (predictions, outcomes) in enumerate(batches):
        if index == change_at:
            state.set_profile(new_profile)
        step(state.handle(predictions, outcomes))
    step(state.handle([], [], predictions_idle=True, outcomes_idle=True))
    return steps


def _batches(sim: Simulator) -> list[tuple[list[RawMessage], list[RawMessage]]]:
    offsets = {"predictions": 0, "outcomes": 0}
    batches = []
    for batch in sim.batches(2400, batch_size=300):
        split: dict[str, list[RawMessage]] = {"predictions": [], "outcomes": []}
        for kind, key, value in zip(batch.kinds, batch.keys, batch.values, strict=True):
            split[kind].append(RawMessage(value, key, kind, 0, offsets[kind]))
            offsets[kind] += 1
        batches.append((split["predictions"], split["outcomes"]))
    return batches


@needs_native
def test_the_handler_gives_the_same_outputs_with_the_scanner_and_without() -> None:
    sim = _simulator(malformed_fraction=0.02, missing_fraction=0.05)
    profiles = _profiles(sim)
    batches = _batches(sim)
    assert _run(NATIVE, profiles, batches) == _run(PYTHON, profiles, batches)


@needs_native
def test_a_profile_that_changes_while_scanned_predictions_are_held() -> None:
    """Predictions scanned with the old layout go through the Python path once the new one is in."""
    sim = _simulator()
    profiles = _profiles(sim)
    frame = sim.reference_frame("a", 1000).drop(columns=["plan", "age"])
    new_profile = build_reference(frame, model="a", model_version="2", task="classification")
    batches = _batches(sim)
    native = _run(NATIVE, profiles, batches, change_at=3, new_profile=new_profile)
    assert native == _run(PYTHON, profiles, batches, change_at=3, new_profile=new_profile)


@needs_native
def test_a_large_scanned_prediction_is_read_again_after_a_profile_change() -> None:
    """Past the Python path's default payload limit (ingest's may be higher): read again all the same."""
    sim = _simulator()
    profiles = _profiles(sim)
    panes = RecordPanes(profiles, pane_s=10.0, allowed_lateness_s=5.0, source="0", native=True)
    value = orjson.dumps({"event_id": "e", "ts": 1767225600.5, "model": "a", "model_version": "1", "request_id": "r",
                          "features": {"plan": "basic", "blob": "x" * 1_100_000}, "prediction": {"label": "1"}})
    [scanned] = panes.scanner().scan([value], 2_000_000, math.inf)
    assert scanned is not None
    panes.set_profile(build_reference(sim.reference_frame("a", 500), model="a", model_version="2",
                                      task="classification"))
    panes.add_records([scanned])
    assert panes.counters.applied == {"a": 1}


def test_the_setting_turns_the_scanner_off() -> None:
    assert PartitionState(0, PYTHON, {}).panes.scanner() is None
    assert (PartitionState(0, NATIVE, {}).panes.scanner() is not None) == AVAILABLE

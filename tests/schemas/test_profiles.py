"""PanePartial's wire forms: the numeric block, its checks, and its per-feature view."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from driftline.schemas.codec import RawMessage, decode_batch, encode
from driftline.schemas.generate import SCHEMA_DIR
from driftline.schemas.profiles import (
    CategoricalSketchData,
    NumericBlockData,
    NumericSketchData,
    PanePartial,
    SampleData,
)


def _block(**changes: object) -> dict:
    fields = {"features": ["a", "b"], "counts": [[1, 2], [3, 0]], "n": [3, 3], "n_null": [0, 0], "mean": [0.5, 1.5],
              "m2": [0.1, 0.2], "min": [0.0, 1.0], "max": [1.0, 2.0], "keys": [0.1, 0.2],
              "values": [0.0, 1.0, 1.0, 2.0], "threshold": 0.5, "capacity": 2}
    return {**fields, **changes}


def _partial(**changes: object) -> PanePartial:
    fields = {"model": "m", "model_version": "1", "reference_id": "r", "source": "s", "pane_start": 60.0,
              "pane_s": 60.0, "n_events": 3, "numeric": NumericBlockData(**_block()),
              "features": {"city": CategoricalSketchData(counts=[2, 1, 0, 0], n=3)}}
    return PanePartial(**{**fields, **changes})


def test_block_unpacks_into_per_feature_sketches() -> None:
    sketches = NumericBlockData(**_block()).sketches()
    assert list(sketches) == ["a", "b"]
    assert sketches["b"] == NumericSketchData(counts=[3, 0], n=3, mean=1.5, m2=0.2, min=1.0, max=2.0,
                                              sample={"values": [1.0, 2.0], "keys": [0.1, 0.2], "threshold": 0.5,
                                                      "capacity": 2})
    assert list(_partial().sketches()) == ["a", "b", "city"]


def test_block_of_samples_that_differ_gives_each_feature_its_keys_and_threshold() -> None:
    sketches = NumericBlockData(**_block(values=[0.0, None, None, 2.0], thresholds=[0.3, 0.4])).sketches()
    assert sketches["a"].sample == SampleData(values=[0.0], keys=[0.1], threshold=0.3, capacity=2)
    assert sketches["b"].sample == SampleData(values=[2.0], keys=[0.2], threshold=0.4, capacity=2)


@pytest.mark.parametrize(("changes", "message"), [
    ({"n": [3]}, "one entry per feature"),
    ({"values": [0.0, 1.0, 1.0]}, "one row of len"),
    ({"features": ["a", "a"]}, "unique"),
    ({"m2": [0.1, -0.2]}, "negative"),
    ({"mean": [float("nan"), 0.0]}, "finite"),
    ({"values": [0.0, None, 1.0, 2.0]}, "None only beside thresholds"),
    ({"values": [0.0, None, 1.0, 2.0], "thresholds": [0.5]}, "one threshold"),
    ({"thresholds": [0.5, 1.5]}, "one threshold"),
])
def test_inconsistent_blocks_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NumericBlockData(**_block(**changes))


def test_a_feature_in_the_block_and_in_features_is_refused() -> None:
    with pytest.raises(ValidationError, match="not in both"):
        _partial(features={"a": CategoricalSketchData(counts=[1], n=1)})


def test_partial_with_a_block_survives_the_codec_and_meets_its_json_schema() -> None:
    partial = _partial()
    raw = encode(partial)
    schema = json.loads((SCHEMA_DIR / "PanePartial.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(orjson.loads(raw))
    decoded = decode_batch([RawMessage(raw)], PanePartial)
    assert decoded.events == [partial] and not decoded.rejects
    values = np.asarray(decoded.events[0].numeric.values).reshape(2, -1)
    assert values.tolist() == [[0.0, 1.0], [1.0, 2.0]]

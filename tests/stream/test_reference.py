"""Reference profiles: every input form, bins, categories, performance, content-hash id, wire form."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from streamsim import labeled_events, prediction_events, reference_frame

from driftline.schemas.codec import RawMessage, decode_one, encode
from driftline.schemas.events import LabeledEvent, RankedItem, RankingOutcome, RankingPrediction
from driftline.schemas.profiles import CategoricalFeatureProfile, NumericFeatureProfile, ReferenceProfile
from driftline.stream import build_reference
from driftline.stream.performance import compute_metrics
from driftline.stream.reference import profile_id


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return reference_frame(np.random.default_rng(1), n=3000, n_numeric=3, categorical=True)


def _build(sample, **kw) -> ReferenceProfile:
    return build_reference(sample, model="m", model_version="7", task=kw.pop("task", "regression"), **kw)


def test_numeric_features_get_equal_frequency_bins_with_open_ends(frame: pd.DataFrame) -> None:
    profile = _build(frame)
    x = profile.features["x01"]
    assert isinstance(x, NumericFeatureProfile)
    assert len(x.edges) == 21 and len(x.counts) == 22
    assert x.counts[0] == 0 and x.counts[-1] == 0  # the open ends are empty in the reference
    assert all(abs(c - 150) <= 1 for c in x.counts[1:-1])
    assert x.min == frame["x01"].min() and x.max == frame["x01"].max()
    assert x.mean == pytest.approx(frame["x01"].mean()) and x.std == pytest.approx(frame["x01"].std(ddof=0))
    assert len(x.sample) == 1000 and set(x.sample) <= set(frame["x01"])


def test_categorical_features_keep_top_k_plus_other(frame: pd.DataFrame) -> None:
    profile = _build(frame, top_k=2)
    city = profile.features["city"]
    assert isinstance(city, CategoricalFeatureProfile)
    counts = frame["city"].value_counts()
    assert city.categories == list(counts.index[:2])
    assert city.counts == [*counts.iloc[:2].tolist(), int(counts.iloc[2:].sum())]
    assert sorted(city.other_categories) == sorted(counts.index[2:])


def test_prediction_and_performance(frame: pd.DataFrame) -> None:
    profile = _build(frame)
    assert profile.prediction.kind == "numeric"
    assert profile.performance == compute_metrics("regression", frame["outcome"], frame["prediction"])
    assert profile.n_samples == len(frame)
    assert "outcome" not in profile.features and "prediction" not in profile.features


def test_reference_id_is_a_content_hash(frame: pd.DataFrame) -> None:
    a, b = _build(frame), _build(frame)
    assert a.reference_id == b.reference_id == profile_id(a.model_dump(mode="json"))
    assert _build(frame, seed=1).reference_id != a.reference_id  # other sample draw
    assert _build(frame, created_ts=5.0).reference_id != a.reference_id


def test_wire_round_trip_through_the_codec(frame: pd.DataFrame) -> None:
    profile = _build(frame)
    raw = encode(profile)
    assert len(raw) < 1_000_000  # fits Kafka's default message size
    decoded = decode_one(RawMessage(raw), ReferenceProfile)
    assert decoded == profile
    assert orjson.loads(raw)["schema_version"] == 1


def test_files_and_arrow_give_the_same_profile(frame: pd.DataFrame, tmp_path) -> None:
    frame.to_csv(tmp_path / "ref.csv", index=False)
    frame.to_parquet(tmp_path / "ref.parquet")
    expected = _build(frame).reference_id
    assert _build(tmp_path / "ref.parquet").reference_id == expected
    assert _build(str(tmp_path / "ref.csv")).features.keys() == _build(frame).features.keys()
    assert _build(pa.Table.from_pandas(frame)).reference_id == expected
    with pytest.raises(ValueError, match="unsupported"):
        _build(tmp_path / "ref.json")


def test_from_prediction_and_labeled_events() -> None:
    rng = np.random.default_rng(4)
    from_predictions = _build(prediction_events(rng, n=300, t0=0, t1=10))
    assert sorted(from_predictions.features) == ["city", "x00", "x01"]
    assert from_predictions.performance == {}
    labeled = labeled_events(rng, n=400, t0=0, t1=10, accuracy=0.9)
    profile = _build(labeled, task="classification")
    assert profile.prediction.kind == "categorical" and sorted(profile.prediction.categories) == ["no", "yes"]
    assert profile.performance["accuracy"] == pytest.approx(0.9, abs=0.05)
    assert "roc_auc" in profile.performance  # probabilities of the positive class became scores
    assert profile.prediction_score is not None and profile.prediction_score.n == 400
    assert from_predictions.prediction_score is None  # regression: the prediction itself is the score


def test_ranking_events_become_one_row_per_item() -> None:
    events = [
        LabeledEvent(event_id=f"e{g}", ts=float(g), outcome_ts=float(g), model="m", model_version="1",
                     request_id=f"r{g}", features={"field_size": 3.0},
                     prediction=RankingPrediction(group_id=f"race{g}", items=[
                         RankedItem(item_id="a", score=0.9), RankedItem(item_id="b", score=0.5),
                         RankedItem(item_id="c", score=0.1)]),
                     outcome=RankingOutcome(group_id=f"race{g}", relevance={"a": 3.0, "b": 1.0}))
        for g in range(20)
    ]
    profile = _build(events, task="ranking")
    assert profile.n_samples == 60
    assert profile.performance["ndcg@3"] == pytest.approx(1.0)


def test_bad_input_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="prediction"):
        _build(frame.drop(columns="prediction"))
    with pytest.raises(ValueError, match="not in the reference"):
        _build(frame, feature_names=["nope"])

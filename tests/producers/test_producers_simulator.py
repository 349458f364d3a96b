"""The simulator: determinism, event-time order, each drift scenario, damage kinds, references."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pandas as pd
import pytest

from driftline.producers.scenarios import DriftScenario
from driftline.producers.simulator import MALFORMED_KINDS, ModelSpec, RecordBatch, Simulator
from driftline.schemas import OutcomeEvent, PredictionEvent, RawMessage, Reject, decode_one
from driftline.schemas.events import ClassPrediction, RankingOutcome, RankingPrediction


def _records(sim: Simulator, n: int, batch_size: int = 1000) -> RecordBatch:
    batches = list(sim.batches(n, batch_size))
    return RecordBatch(
        kinds=[k for b in batches for k in b.kinds],
        keys=[k for b in batches for k in b.keys],
        values=[v for b in batches for v in b.values],
        models=[m for b in batches for m in b.models],
        ts=np.concatenate([b.ts for b in batches]),
        malformed=[m for b in batches for m in b.malformed],
    )


def _predictions(records: RecordBatch, model: str) -> list[PredictionEvent]:
    return [PredictionEvent.model_validate_json(v) for k, m, v in zip(records.kinds, records.models, records.values,
                                                                       strict=True)
            if k == "predictions" and m == model]


def _frame(events: list[PredictionEvent]) -> pd.DataFrame:
    return pd.DataFrame([e.features for e in events])


def test_same_seed_same_stream_and_another_seed_differs() -> None:
    first = _records(Simulator(seed=3), 600)
    again = _records(Simulator(seed=3), 600)
    other = _records(Simulator(seed=4), 600)
    assert first.values == again.values
    assert first.values != other.values


def test_records_are_in_event_time_order_with_every_outcome_after_its_prediction() -> None:
    sim = Simulator(seed=1, events_per_s=50.0, label_delay_s=30.0)
    records = _records(sim, 3000, batch_size=500)
    assert np.all(np.diff(records.ts) >= 0)
    seen_prediction: dict[bytes, float] = {}
    for kind, key, ts in zip(records.kinds, records.keys, records.ts.tolist(), strict=True):
        if kind == "predictions":
            seen_prediction[key] = ts
        else:
            assert key in seen_prediction, "an outcome came before its prediction"
            assert ts >= seen_prediction[key]
    assert records.kinds.count("outcomes") == 3000
    span_s = records.ts[records.kinds.index("outcomes")] - sim.start_ts
    assert span_s >= 0


def test_event_rate_sets_the_event_time_span_and_outcomes_follow_the_label_delay() -> None:
    sim = Simulator(["eta"], seed=2, events_per_s=10.0, label_delay_s=120.0, start_ts=1000.0)
    records = _records(sim, 2000)
    events = {json["request_id"]: json for json in (orjson.loads(v) for v in records.values)
              if "prediction" in json}
    outcomes = [orjson.loads(v) for k, v in zip(records.kinds, records.values, strict=True) if k == "outcomes"]
    last_prediction_ts = max(e["ts"] for e in events.values())
    assert 180 < last_prediction_ts - 1000.0 < 220  # 2000 events at 10/s
    delays = [o["ts"] - events[o["request_id"]]["ts"] for o in outcomes]
    assert 100 < float(np.mean(delays)) < 140


def test_every_record_decodes_and_request_ids_key_the_records() -> None:
    records = _records(Simulator(seed=5, missing_fraction=0.05), 1500)
    for kind, key, value in zip(records.kinds, records.keys, records.values, strict=True):
        event_type = PredictionEvent if kind == "predictions" else OutcomeEvent
        event = decode_one(RawMessage(value, key), event_type)
        assert not isinstance(event, Reject), event
        assert event.request_id.encode() == key


def test_prediction_forms_per_task() -> None:
    records = _records(Simulator(seed=6), 900)
    churn, eta = (_predictions(records, m)[0] for m in ("churn", "eta"))
    assert isinstance(churn.prediction, ClassPrediction) and churn.prediction.label in {"0", "1"}
    assert churn.prediction.probabilities is not None
    assert sum(churn.prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert isinstance(eta.prediction, float) and eta.prediction > 0
    assert len(churn.features) == 14 and len(eta.features) == 13


def test_ranking_convention_one_event_per_race_with_runner_features() -> None:
    records = _records(Simulator(["race"], seed=7), 200)
    outcomes = {o.request_id: o for o in (OutcomeEvent.model_validate_json(v)
                                          for k, v in zip(records.kinds, records.values, strict=True)
                                          if k == "outcomes")}
    for event in _predictions(records, "race"):
        assert isinstance(event.prediction, RankingPrediction)
        n = len(event.prediction.items)
        assert 6 <= n <= 12
        assert event.prediction.group_id == event.request_id == event.entity_id
        scores = [item.score for item in event.prediction.items]
        assert scores == sorted(scores, reverse=True)
        ids = {item.item_id for item in event.prediction.items}
        assert ids == {str(i) for i in range(1, n + 1)}
        runner_features = [f for f in event.features if f.startswith("runner.")]
        assert len(runner_features) == 6 * n
        assert {f.split(".")[1] for f in runner_features} == ids
        assert event.features["n_runners"] in (n, None)
        outcome = outcomes[event.request_id].outcome
        assert isinstance(outcome, RankingOutcome)
        assert sorted(outcome.relevance.values()) == [float(r) for r in range(n)]


def test_missing_fraction_gives_nulls_at_that_rate() -> None:
    records = _records(Simulator(["churn"], seed=8, missing_fraction=0.1), 3000)
    values = [v for e in _predictions(records, "churn") for v in e.features.values()]
    assert values.count(None) / len(values) == pytest.approx(0.1, abs=0.01)
    clean = _records(Simulator(["churn"], seed=8, missing_fraction=0.0), 500)
    assert all(v is not None for e in _predictions(clean, "churn") for v in e.features.values())


def _before_after(kind: str, model: str = "churn", n: int = 6000, **scenario: float) -> tuple[
        list[PredictionEvent], list[PredictionEvent], dict[str, object]]:
    spec = ModelSpec(model, model, scenario=DriftScenario(kind, shift_at_s=300.0, **scenario))  # type: ignore[arg-type]
    sim = Simulator([spec], seed=11, events_per_s=10.0, label_delay_s=0.0, missing_fraction=0.0)
    records = _records(sim, n)
    events = _predictions(records, model)
    outcomes = {o.request_id: o.outcome for o in (OutcomeEvent.model_validate_json(v)
                                                  for k, v in zip(records.kinds, records.values, strict=True)
                                                  if k == "outcomes")}
    before = [e for e in events if e.ts - sim.start_ts < 300.0]
    after = [e for e in events if e.ts - sim.start_ts >= 300.0]
    return before, after, outcomes


def test_no_drift_keeps_feature_means() -> None:
    before, after, _ = _before_after("none")
    shift = _frame(after)["tenure_months"].mean() - _frame(before)["tenure_months"].mean()
    assert abs(shift) < 1.5


def test_sudden_covariate_shift_moves_features_after_the_shift_only() -> None:
    before, after, _ = _before_after("sudden")
    assert _frame(before)["tenure_months"].mean() - _frame(after)["tenure_months"].mean() > 6
    assert _frame(after)["monthly_charges"].mean() - _frame(before)["monthly_charges"].mean() > 8
    early = [e for e in before if e.ts - before[0].ts < 150]
    late = [e for e in before if e.ts - before[0].ts >= 150]
    assert abs(_frame(early)["tenure_months"].mean() - _frame(late)["tenure_months"].mean()) < 2.5


def test_gradual_shift_grows_over_the_ramp() -> None:
    _, after, _ = _before_after("gradual", ramp_s=200.0)
    start = after[0].ts
    first = _frame([e for e in after if e.ts - start < 50])["monthly_charges"].mean()
    last = _frame([e for e in after if e.ts - start >= 200])["monthly_charges"].mean()
    assert last - first > 8


def test_recurring_shift_switches_off_again() -> None:
    _, after, _ = _before_after("recurring", period_s=100.0)
    start = after[0].ts
    on = _frame([e for e in after if 0 <= e.ts - start < 100])["monthly_charges"].mean()
    off = _frame([e for e in after if 100 <= e.ts - start < 200])["monthly_charges"].mean()
    on_again = _frame([e for e in after if 200 <= e.ts - start < 300])["monthly_charges"].mean()
    assert on - off > 8 and on_again - off > 8


def _accuracy(events: list[PredictionEvent], outcomes: dict[str, object]) -> float:
    hits = [e.prediction.label == outcomes[e.request_id] for e in events]  # type: ignore[union-attr]
    return sum(hits) / len(hits)


def test_concept_drift_changes_labels_but_not_features() -> None:
    before, after, outcomes = _before_after("concept")
    for feature in ("tenure_months", "satisfaction_score", "monthly_charges"):
        assert abs(_frame(before)[feature].mean() - _frame(after)[feature].mean()) < 0.1 * _frame(before)[feature].std()
    assert _accuracy(before, outcomes) - _accuracy(after, outcomes) > 0.1


def test_new_categories_appear_only_after_the_shift() -> None:
    before, after, _ = _before_after("new_category")
    known = {"basic", "standard", "premium"}
    assert set(_frame(before)["plan"].dropna()) <= known
    new_share = (~_frame(after)["plan"].isin(known)).mean()
    assert 0.2 < new_share < 0.6


def test_prediction_shift_moves_outputs_not_features() -> None:
    before, after, _ = _before_after("prediction_shift", model="eta")
    predictions_before = np.mean([e.prediction for e in before])
    predictions_after = np.mean([e.prediction for e in after])
    assert predictions_after - predictions_before > 4
    assert abs(_frame(before)["distance_km"].mean() - _frame(after)["distance_km"].mean()) < 0.4


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_malformed_kind_is_rejected_for_the_reason_of_its_name(kind: str) -> None:
    sim = Simulator(seed=12, malformed_fraction=0.2, malformed_kinds=[kind], oversize_bytes=4096)
    records = _records(sim, 300)
    broken = [(k, v) for k, v, m in zip(records.kinds, records.values, records.malformed, strict=True) if m]
    assert 0.1 < len(broken) / len(records) < 0.3
    for topic_kind, value in broken:
        event_type = PredictionEvent if topic_kind == "predictions" else OutcomeEvent
        reject = decode_one(RawMessage(value), event_type, max_payload_bytes=4095)
        assert isinstance(reject, Reject)
        assert reject.reason.value == kind


def test_reference_frame_is_a_no_drift_sample_with_prediction_and_outcome() -> None:
    spec = ModelSpec("churn", "churn", scenario=DriftScenario("sudden", shift_at_s=0.0))
    sim = Simulator([spec, "eta", "race"], seed=13, missing_fraction=0.0)
    churn = sim.reference_frame("churn", 2000)
    assert list(churn.columns[-3:]) == ["prediction", "score", "outcome"]
    assert set(churn["prediction"]) <= {"0", "1"} and set(churn["outcome"]) <= {"0", "1"}
    assert ((churn["score"] >= 0.5) == (churn["prediction"] == "1")).all()
    # The reference ignores the scenario: means are those of the undrifted generator.
    assert 20 < churn["tenure_months"].mean() < 28
    eta = sim.reference_frame("eta", 500)
    assert eta["prediction"].dtype == float and eta["outcome"].dtype == float
    race = sim.reference_frame("race", 300)
    assert {"group_id", "item_id", "prediction", "outcome"} <= set(race.columns)
    assert race["group_id"].nunique() == 300
    per_race = race.groupby("group_id")
    assert (per_race.size() == per_race["n_runners"].first()).all()
    assert (per_race["outcome"].max() == per_race["n_runners"].first() - 1).all()
    assert race["prediction"].dtype == float
    assert sim.reference_frame("churn", 100).equals(sim.reference_frame("churn", 100))


@pytest.mark.parametrize("model", ["churn", "eta", "race"])
def test_reference_frame_builds_a_reference_profile_like_the_events_do(model: str) -> None:
    from driftline.stream import build_reference
    from driftline.stream.reference import events_to_frame

    sim = Simulator(seed=17)
    task = sim.models[model].task
    frame = sim.reference_frame(model, 300)
    from_frame = build_reference(frame, model=model, model_version="1", task=task)  # type: ignore[arg-type]
    from_events = build_reference(sim.reference_events(model, 300), model=model, model_version="1",
                                  task=task)  # type: ignore[arg-type]
    assert set(from_frame.features) == set(from_events.features) == set(events_to_frame(
        sim.reference_events(model, 5)).columns) - {"prediction", "outcome", "score", "group_id"}
    assert from_frame.performance.keys() == from_events.performance.keys() and from_frame.performance


def test_write_references_writes_one_parquet_per_model(tmp_path: pytest.TempPathFactory) -> None:
    paths = Simulator(seed=15).write_references(tmp_path, 200)
    assert sorted(paths) == ["churn", "eta", "race"]
    assert len(pd.read_parquet(paths["churn"])) == 200
    assert pd.read_parquet(paths["race"])["group_id"].nunique() == 200


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown template"):
        ModelSpec.parse("fraud:forest")
    with pytest.raises(ValueError, match="unknown scenario"):
        DriftScenario("wobbly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        Simulator(["churn", "churn"])
    with pytest.raises(ValueError, match="malformed kinds"):
        Simulator(malformed_kinds=["bad_bytes"])
    assert ModelSpec.parse("fraud:classification").template == "churn"


def test_generation_throughput() -> None:
    """Prints the simulator's own rate (records/s, JSON encoding included) per model mix."""
    for models in (["churn"], ["eta"], ["race"], ["churn", "eta", "race"]):
        sim = Simulator(models, seed=16)
        started = time.perf_counter()
        produced = sum(len(b) for b in sim.batches(20_000, 10_000))
        rate = produced / (time.perf_counter() - started)
        print(f"simulator {'+'.join(models)}: {rate:,.0f} records/s")
        assert rate > 5_000


def test_outcome_fraction_leaves_some_predictions_unlabelled() -> None:
    records = _records(Simulator(["eta"], seed=18, outcome_fraction=0.3), 2000)
    assert records.kinds.count("outcomes") / 2000 == pytest.approx(0.3, abs=0.04)

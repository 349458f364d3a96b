"""Seeded synthetic streams for the drift-core tests: reference frames, columns and events."""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftline.schemas.events import ClassPrediction, LabeledEvent, PredictionEvent
from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream.columns import Columns
from driftline.stream.sample import hashed_keys

CITIES = np.array(["amsterdam", "berlin", "cairo", "delhi", "oslo"], dtype=object)
CITY_P = np.array([0.4, 0.25, 0.15, 0.12, 0.08])


def numeric_names(n: int) -> list[str]:
    return [f"x{i:02d}" for i in range(n)]


def reference_frame(rng: np.random.Generator, *, n: int = 5000, n_numeric: int = 20, categorical: bool = False,
                    task: str = "regression") -> pd.DataFrame:
    """Independent standard-normal features (plus a city), a prediction and an outcome."""
    frame = pd.DataFrame({name: rng.normal(size=n) for name in numeric_names(n_numeric)})
    if categorical:
        frame["city"] = rng.choice(CITIES, size=n, p=CITY_P)
    if task == "classification":
        frame["prediction"] = np.where(frame["x00"] > 0, "yes", "no")
        flip = rng.random(n) < 0.1
        frame["outcome"] = np.where(flip, np.where(frame["prediction"] == "yes", "no", "yes"), frame["prediction"])
    else:
        frame["prediction"] = frame["x00"] * 0.5 + rng.normal(scale=0.1, size=n)
        frame["outcome"] = frame["prediction"] + rng.normal(scale=0.3, size=n)
    return frame


def stream_columns(profile: ReferenceProfile, rng: np.random.Generator, *, n: int, t0: float, t1: float,
                   first_id: int, shift: dict[str, float] | None = None, new_category_share: float = 0.0) -> Columns:
    """``n`` events spread uniformly over ``[t0, t1)``; ``shift`` moves numeric means (in sigmas)."""
    shift = shift or {}
    features: dict[str, np.ndarray] = {}
    for name, feature in profile.features.items():
        if feature.kind == "numeric":
            features[name] = rng.normal(loc=shift.get(name, 0.0), size=n)
        else:
            city = rng.choice(CITIES, size=n, p=CITY_P)
            fresh = rng.random(n) < new_category_share
            city[fresh] = np.array([f"new-{k}" for k in rng.integers(0, 50, size=int(fresh.sum()))], dtype=object)
            features[name] = city
    ts = np.sort(rng.uniform(t0, t1, size=n))
    keys = hashed_keys(np.arange(first_id, first_id + n, dtype=np.uint64))
    prediction = features["x00"] * 0.5 + rng.normal(scale=0.1, size=n)
    return Columns(ts, keys, features, prediction, keys)


def prediction_events(rng: np.random.Generator, *, n: int, t0: float, t1: float, model: str = "m",
                      shift: float = 0.0, first_id: int = 0) -> list[PredictionEvent]:
    """Regression prediction events with features x00, x01 and city, times uniform in ``[t0, t1)``."""
    ts = np.sort(rng.uniform(t0, t1, size=n))
    return [
        PredictionEvent(
            event_id=f"{model}-{first_id + i}", ts=float(ts[i]), model=model, model_version="1",
            request_id=f"r{first_id + i}",
            features={"x00": float(rng.normal(shift)), "x01": float(rng.normal()),
                      "city": str(rng.choice(CITIES, p=CITY_P))},
            prediction=float(rng.normal()),
        )
        for i in range(n)
    ]


def labeled_events(rng: np.random.Generator, *, n: int, t0: float, t1: float, accuracy: float,
                   model: str = "m", first_id: int = 0) -> list[LabeledEvent]:
    """Binary classification labeled events whose prediction is right with probability ``accuracy``."""
    ts = np.sort(rng.uniform(t0, t1, size=n))
    events = []
    for i in range(n):
        x = float(rng.normal())
        label = "yes" if x > 0 else "no"
        truth = label if rng.random() < accuracy else ("no" if label == "yes" else "yes")
        p_yes = 0.8 if label == "yes" else 0.2
        events.append(LabeledEvent(
            event_id=f"{model}-{first_id + i}", ts=float(ts[i]), outcome_ts=float(ts[i]), model=model,
            model_version="1", request_id=f"r{first_id + i}", features={"x00": x, "x01": float(rng.normal())},
            prediction=ClassPrediction(label=label, probabilities={"yes": p_yes, "no": 1 - p_yes}), outcome=truth,
        ))
    return events


def accuracy_drop_panes(*, n_reference: int, n_per_half: int, drop_at: float, accuracy_after: float,
                        pane_s: float, tail_at: float | None = None) -> tuple[ReferenceProfile, list[PanePartial]]:
    """A classifier's reference (accuracy 0.9) and its labeled panes over ``[0, 2 * drop_at)``.

    The accuracy falls from 0.9 to ``accuracy_after`` at ``drop_at``; one event at ``tail_at``
    (optional) moves the watermark so that every pane before it closes.
    """
    from driftline.stream import PaneAggregator, build_reference

    rng = np.random.default_rng(50)
    reference = build_reference(labeled_events(rng, n=n_reference, t0=0, t1=1, accuracy=0.9), model="m",
                                model_version="1", task="classification")
    aggregator = PaneAggregator({"m": reference}, pane_s=pane_s, allowed_lateness_s=0.0, source="s")
    aggregator.add_batch([], labeled_events(rng, n=n_per_half, t0=0, t1=drop_at, accuracy=0.9))
    aggregator.add_batch([], labeled_events(rng, n=n_per_half, t0=drop_at, t1=2 * drop_at,
                                            accuracy=accuracy_after, first_id=10**6))
    if tail_at is not None:
        aggregator.add_batch([], labeled_events(rng, n=1, t0=tail_at, t1=tail_at + 1, accuracy=accuracy_after,
                                                first_id=10**7))
    return reference, aggregator.close_panes()


def comparable(partial: object) -> dict:
    """A partial's dump, every feature's sketch in its per-feature form, with the float moments rounded.

    Merge order changes the moments' last bits only; a block of numeric sketches
    (``numeric``) is unpacked, so partials compare whatever form their numeric sketches took.
    """
    dump = partial.model_dump()  # type: ignore[attr-defined]
    dump["features"] = {name: sketch.model_dump() for name, sketch in partial.sketches().items()}  # type: ignore[attr-defined]
    dump.pop("numeric", None)
    for sketch in [*dump["features"].values(), dump["prediction"]]:
        if sketch and sketch["kind"] == "numeric":
            sketch["mean"], sketch["m2"] = round(sketch["mean"], 9), round(sketch["m2"], 6)
    return dump


def scored_predictions(rng: np.random.Generator, *, n: int, t0: float, t1: float, confidence: float = 1.0,
                       first_id: int = 0) -> list[PredictionEvent]:
    """Binary classifications with probabilities; ``confidence < 1`` pulls P(yes) towards 0.5, labels unchanged."""
    ts = np.sort(rng.uniform(t0, t1, size=n))
    x = rng.normal(size=n)
    p_yes = 0.5 + confidence * (1.0 / (1.0 + np.exp(-2.0 * x)) - 0.5)
    return [
        PredictionEvent(event_id=f"s{first_id + i}", ts=float(ts[i]), model="m", model_version="1",
                        request_id=f"s{first_id + i}", features={"x00": float(x[i])},
                        prediction=ClassPrediction(label="yes" if p_yes[i] > 0.5 else "no",
                                                   probabilities={"yes": float(p_yes[i]), "no": float(1 - p_yes[i])}))
        for i in range(n)
    ]

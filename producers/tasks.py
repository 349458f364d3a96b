"""The simulator's three model families: what the world looks like and what the model predicts.

Each task draws feature columns with numpy (vectorised, one call per batch), a ground truth
(what will actually happen) and the model's prediction, both reacting to the drift
intensities of the batch. The model is the ground truth seen through slightly wrong
coefficients, fixed per model from the seed, so it is good but not perfect.

- `ChurnTask` (classification): 10 numeric and 4 categorical customer features, a logistic
  ground truth, predictions ``{"label": "1"|"0", "probabilities": {...}}``, outcomes ``"1"|"0"``.
- `EtaTask` (regression): delivery-time features, a linear ground truth with noise, minutes.
- `RaceTask` (ranking): races of 6 to 12 runners; per-runner features are named
  ``runner.<item_id>.<feature>`` where ``item_id`` is the saddle-cloth number ``"1"``..``"12"``;
  the prediction ranks the runners by the model's score, the outcome gives each runner's
  relevance ``n_runners - finishing_position`` (the winner has the highest).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["TASKS", "ChurnTask", "Drift", "EtaTask", "RaceTask", "Rows", "Task"]


@dataclass(frozen=True)
class Drift:
    """Per-event drift strength (intensity x magnitude) of each effect; zeros mean the reference."""

    covariate: np.ndarray
    concept: np.ndarray
    new_category: np.ndarray
    prediction: np.ndarray

    @classmethod
    def none(cls, n: int) -> Drift:
        zeros = np.zeros(n)
        return cls(zeros, zeros, zeros, zeros)


@dataclass(frozen=True)
class Rows:
    """One batch of one model: feature columns in wire order, predictions and outcomes in wire form.

    ``n_present`` (ranking only) is how many leading columns each row really has: runners
    beyond the field size are absent from the event, not null.
    """

    columns: dict[str, np.ndarray]
    predictions: list[Any]
    outcomes: list[Any]
    n_present: np.ndarray | None = None


def _categorical(rng: np.random.Generator, n: int, categories: tuple[str, ...], probs: tuple[float, ...],
                 shift: np.ndarray) -> np.ndarray:
    """Draw categories; rows with shift > 0 lean towards the reversed distribution."""
    base = np.cumsum(probs)
    shifted = np.cumsum(probs[::-1])
    weight = np.minimum(1.0, 0.6 * shift)[:, None]
    cdf = (1.0 - weight) * base[None, :] + weight * shifted[None, :]
    index = (rng.random(n)[:, None] > cdf).sum(axis=1)
    return np.asarray(categories, dtype=object)[np.minimum(index, len(categories) - 1)]


def _new_categories(rng: np.random.Generator, values: np.ndarray, new: tuple[str, ...],
                    strength: np.ndarray) -> np.ndarray:
    """Replace a share of values (up to 40 % at strength 1) by categories the reference never saw."""
    hit = rng.random(values.size) < np.minimum(1.0, 0.4 * strength)
    if hit.any():
        values = values.copy()
        values[hit] = np.asarray(new, dtype=object)[rng.integers(0, len(new), int(hit.sum()))]
    return values


def _lookup(values: np.ndarray, table: dict[str, float]) -> np.ndarray:
    """Effect per category; categories not in the table (new ones) have none."""
    effect = np.zeros(values.size)
    for category, value in table.items():
        effect[values == category] = value
    return effect


class Task(ABC):
    """One model family. ``rng`` fixes the model's own (slightly wrong) coefficients."""

    task: ClassVar[str]

    def __init__(self, rng: np.random.Generator) -> None:
        self._model_error = 1.0 + 0.08 * rng.standard_normal(16)

    @abstractmethod
    def sample(self, rng: np.random.Generator, drift: Drift, request_ids: list[str]) -> Rows:
        """Features, predictions and outcomes for ``len(request_ids)`` events."""


class ChurnTask(Task):
    """Customer churn: will this customer leave? (binary classification, positive label ``"1"``)."""

    task = "classification"
    PLANS = (("basic", "standard", "premium"), (0.5, 0.35, 0.15))
    REGIONS = (("north", "south", "east", "west"), (0.3, 0.25, 0.25, 0.2))
    PAYMENTS = (("card", "bank_transfer", "paypal", "cash"), (0.45, 0.3, 0.15, 0.1))
    CONTRACTS = (("monthly", "annual", "two_year"), (0.55, 0.3, 0.15))
    _CONTRACT_EFFECT: ClassVar[dict[str, float]] = {"monthly": 0.9, "annual": -0.4, "two_year": -1.1}
    _PLAN_EFFECT: ClassVar[dict[str, float]] = {"basic": 0.2, "standard": 0.0, "premium": -0.2}

    def sample(self, rng: np.random.Generator, drift: Drift, request_ids: list[str]) -> Rows:
        n = len(request_ids)
        cov = drift.covariate
        tenure = np.clip(rng.gamma(2.0, 12.0, n) - 12.0 * cov, 0.0, 72.0)
        monthly = np.clip(rng.normal(70.0, 20.0, n) + 15.0 * cov, 15.0, 150.0)
        support = rng.poisson(1.5 * (1.0 + 0.8 * cov)).astype(float)
        satisfaction = np.clip(rng.normal(3.5, 0.9, n) - 0.6 * cov, 1.0, 5.0)
        days_login = rng.exponential(7.0, n)
        products = 1.0 + rng.poisson(0.8, n)
        columns = {
            "tenure_months": np.round(tenure, 1),
            "monthly_charges": np.round(monthly, 2),
            "total_charges": np.round(tenure * monthly * rng.uniform(0.9, 1.1, n), 2),
            "support_calls": support,
            "age": np.round(np.clip(rng.normal(45.0, 14.0, n), 18.0, 90.0)),
            "data_usage_gb": np.round(rng.lognormal(2.5, 0.6, n), 2),
            "num_products": products,
            "days_since_last_login": np.round(days_login, 1),
            "satisfaction_score": np.round(satisfaction, 2),
            "discount_pct": np.round(rng.beta(2.0, 8.0, n) * 50.0, 1),
            "plan": _new_categories(rng, _categorical(rng, n, *self.PLANS, cov), ("enterprise", "student"),
                                    drift.new_category),
            "region": _new_categories(rng, _categorical(rng, n, *self.REGIONS, cov), ("central", "overseas"),
                                      drift.new_category),
            "payment_method": _categorical(rng, n, *self.PAYMENTS, cov),
            "contract": _categorical(rng, n, *self.CONTRACTS, cov),
        }
        z = np.stack([
            (tenure - 24.0) / 18.0, (monthly - 70.0) / 20.0, (support - 1.5) / 1.2,
            (satisfaction - 3.5) / 0.9, (days_login - 7.0) / 7.0, (products - 1.8) / 0.9,
        ])
        weights = np.array([-0.9, 0.5, 0.6, -0.8, 0.35, -0.25])
        categorical_logit = (_lookup(columns["contract"], self._CONTRACT_EFFECT)
                             + _lookup(columns["plan"], self._PLAN_EFFECT)
                             + 0.3 * (columns["payment_method"] == "cash"))
        # Concept drift: tenure and satisfaction stop protecting (their effects flip sign at strength 1).
        concept = -2.0 * np.array([-0.9, 0.0, 0.0, -0.8, 0.0, 0.0])[:, None] * drift.concept[None, :]
        true_logit = -1.0 + ((weights[:, None] + concept) * z).sum(axis=0) + categorical_logit
        model_logit = (-1.0 + (weights * self._model_error[:6]) @ z + categorical_logit * self._model_error[6]
                       + 1.5 * drift.prediction)
        churn_prob = np.round(1.0 / (1.0 + np.exp(-model_logit)), 4)
        churned = rng.random(n) < 1.0 / (1.0 + np.exp(-true_logit))
        predictions = [
            {"label": label, "probabilities": {"0": stay, "1": leave}}
            for label, stay, leave in zip(np.where(churn_prob >= 0.5, "1", "0").tolist(),
                                          np.round(1.0 - churn_prob, 4).tolist(), churn_prob.tolist(), strict=True)
        ]
        return Rows(columns, predictions, np.where(churned, "1", "0").tolist())


class EtaTask(Task):
    """Delivery time in minutes (regression)."""

    task = "regression"
    WEATHER = (("clear", "rain", "snow", "fog"), (0.6, 0.25, 0.1, 0.05))
    VEHICLES = (("bike", "scooter", "car"), (0.4, 0.35, 0.25))
    CITIES = (("paris", "lyon", "lille", "nantes"), (0.4, 0.25, 0.2, 0.15))
    _WEATHER_MIN: ClassVar[dict[str, float]] = {"clear": 0.0, "rain": 3.5, "snow": 8.0, "fog": 2.5}
    _VEHICLE_MIN: ClassVar[dict[str, float]] = {"bike": 2.5, "scooter": 0.0, "car": -1.0}

    def sample(self, rng: np.random.Generator, drift: Drift, request_ids: list[str]) -> Rows:
        n = len(request_ids)
        cov = drift.covariate
        distance = np.clip(rng.lognormal(1.1, 0.55, n) * np.exp(0.35 * cov), 0.2, 40.0)
        prep = rng.gamma(3.0, 4.0, n) + 4.0 * cov
        hour = rng.integers(0, 24, n).astype(float)
        rating = np.clip(rng.normal(4.6, 0.25, n), 1.0, 5.0)
        items = 1.0 + rng.poisson(2.0, n)
        traffic = np.clip(rng.beta(2.0, 3.0, n) * 10.0 + 2.0 * cov, 0.0, 10.0)
        load = rng.beta(2.0, 2.0, n)
        columns = {
            "distance_km": np.round(distance, 2),
            "prep_time_min": np.round(prep, 1),
            "hour_of_day": hour,
            "courier_rating": np.round(rating, 2),
            "items_count": items,
            "traffic_index": np.round(traffic, 2),
            "temperature_c": np.round(rng.normal(15.0, 8.0, n) - 8.0 * cov, 1),
            "courier_experience_months": np.round(rng.gamma(2.0, 10.0, n), 1),
            "restaurant_load": np.round(load, 3),
            "order_value": np.round(np.clip(rng.normal(30.0, 12.0, n), 5.0, None), 2),
            "weather": _categorical(rng, n, *self.WEATHER, cov),
            "vehicle": _new_categories(rng, _categorical(rng, n, *self.VEHICLES, cov), ("drone", "van"),
                                       drift.new_category),
            "city": _new_categories(rng, _categorical(rng, n, *self.CITIES, cov), ("bordeaux", "nice"),
                                    drift.new_category),
        }
        rush = ((hour >= 11) & (hour <= 13)) | ((hour >= 18) & (hour <= 20))
        weather = _lookup(columns["weather"], self._WEATHER_MIN)
        vehicle = _lookup(columns["vehicle"], self._VEHICLE_MIN)
        terms = np.stack([distance, prep, traffic, rush.astype(float), items, rating - 4.6, load])
        weights = np.array([3.2, 0.9, 1.1, 4.0, 0.4, -1.5, 2.0])
        # Concept drift: roadworks make every kilometre slower; the features do not show it.
        true_mean = 6.0 + weights @ terms + weather + vehicle + 2.5 * distance * drift.concept
        model_mean = (6.0 + (weights * self._model_error[:7]) @ terms + weather * self._model_error[7] + vehicle
                      + 6.0 * drift.prediction)
        actual = np.maximum(2.0, true_mean + rng.normal(0.0, 3.5, n))
        return Rows(columns, np.round(model_mean, 2).tolist(), np.round(actual, 2).tolist())


class RaceTask(Task):
    """Horse races: rank the runners (learning to rank, one event per race)."""

    task = "ranking"
    MAX_RUNNERS = 12
    ITEM_IDS = tuple(str(cloth) for cloth in range(1, MAX_RUNNERS + 1))
    RUNNER_FEATURES = ("rating", "weight_kg", "draw", "days_since_run", "jockey_win_rate", "age")
    GOING = (("firm", "good", "soft", "heavy"), (0.25, 0.4, 0.25, 0.1))
    TRACKS = (("ascot", "york", "newbury", "epsom", "chester"), (0.25, 0.25, 0.2, 0.15, 0.15))
    DISTANCES_M = np.array([1000.0, 1200.0, 1400.0, 1600.0, 2000.0, 2400.0])

    def sample(self, rng: np.random.Generator, drift: Drift, request_ids: list[str]) -> Rows:
        n, k = len(request_ids), self.MAX_RUNNERS
        cov = drift.covariate[:, None]
        n_runners = rng.integers(6, k + 1, n)
        present = np.arange(k)[None, :] < n_runners[:, None]
        distance = self.DISTANCES_M[rng.integers(0, self.DISTANCES_M.size, n)]
        rating = rng.normal(70.0, 12.0, (n, k)) + 8.0 * cov
        weight = rng.normal(57.0, 3.0, (n, k)) + 2.0 * cov
        draw = np.argsort(np.where(present, rng.random((n, k)), 2.0), axis=1).argsort(axis=1) + 1.0
        days = rng.gamma(2.0, 15.0, (n, k)) * (1.0 + cov)
        jockey = rng.beta(2.0, 14.0, (n, k))
        age = rng.integers(2, 10, (n, k)).astype(float)
        going = _new_categories(rng, _categorical(rng, n, *self.GOING, drift.covariate), ("waterlogged",),
                                drift.new_category)
        columns: dict[str, np.ndarray] = {
            "distance_m": distance,
            "n_runners": n_runners.astype(float),
            "prize_k": np.round(rng.lognormal(3.0, 0.7, n), 1),
            "race_class": rng.integers(1, 7, n).astype(float),
            "going": going,
            "track": _new_categories(rng, _categorical(rng, n, *self.TRACKS, drift.covariate), ("dubai",),
                                     drift.new_category),
        }
        per_runner = {
            name: np.where(present, values, np.nan) for name, values in (
                ("rating", np.round(rating, 1)), ("weight_kg", np.round(weight, 1)), ("draw", draw),
                ("days_since_run", np.round(days)), ("jockey_win_rate", np.round(jockey, 3)), ("age", age),
            )
        }
        n_race_level = len(columns)
        for slot in range(k):
            for name in self.RUNNER_FEATURES:
                columns[f"runner.{slot + 1}.{name}"] = per_runner[name][:, slot]
        short = (distance <= 1400.0)[:, None]
        soft = np.isin(going, ("soft", "heavy"))[:, None]
        terms = np.stack([rating, weight - 57.0, draw * short, jockey, days, (age - 5.0) ** 2 * soft])
        weights = np.array([0.06, -0.18, -0.04, 6.0, -0.012, -0.05])
        # Concept drift: ratings stop predicting and freshness starts to matter the other way.
        concept = np.array([-0.06, 0.0, 0.0, 0.0, 0.024, 0.0])[:, None, None] * drift.concept[None, :, None]
        strength = ((weights[:, None, None] + concept) * terms).sum(axis=0)
        model_score = (np.tensordot(weights * self._model_error[:6], terms, axes=1)
                       + 2.0 * drift.prediction[:, None])
        noisy = np.where(present, strength + rng.gumbel(0.0, 1.0, (n, k)), -np.inf)
        position = np.argsort(-noisy, axis=1).argsort(axis=1) + 1
        relevance = n_runners[:, None] - position
        order = np.argsort(np.where(present, -model_score, np.inf), axis=1)
        ranked_ids = np.asarray(self.ITEM_IDS, dtype=object)[order].tolist()
        ranked_scores = np.take_along_axis(np.round(model_score, 4), order, axis=1).tolist()
        relevances = relevance.astype(float).tolist()
        predictions: list[Any] = []
        outcomes: list[Any] = []
        for race_id, runners, ids, scores, rel in zip(request_ids, n_runners.tolist(), ranked_ids, ranked_scores,
                                                      relevances, strict=True):
            predictions.append({"group_id": race_id, "items": [
                {"item_id": item, "score": score} for item, score in zip(ids[:runners], scores, strict=False)
            ]})
            outcomes.append({"group_id": race_id, "relevance": dict(zip(self.ITEM_IDS[:runners], rel, strict=False))})
        return Rows(columns, predictions, outcomes, n_present=n_race_level + len(self.RUNNER_FEATURES) * n_runners)


TASKS: dict[str, type[Task]] = {"churn": ChurnTask, "eta": EtaTask, "race": RaceTask}
"""Built-in model templates by name; a model of another name picks one by task (see `ModelSpec`)."""

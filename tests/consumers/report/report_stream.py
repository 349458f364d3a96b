"""A seeded prediction stream with a known shift, sketched into pane partials as ingest would."""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftline.config import MonitorSettings
from driftline.schemas.events import PredictionEvent
from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream.panes import PaneAggregator
from driftline.stream.reference import build_reference

MODEL = "churn"
SHIFT_FROM_S = 600.0
SHIFTED = ("x1", "x2")
CITIES = ["amsterdam", "berlin", "cairo", "delhi"]
SETTINGS = MonitorSettings(pane_s=60.0, window_s=300.0, step_s=300.0, allowed_lateness_s=0.0, min_samples=100)


def reference(seed: int = 0, *, model: str = MODEL) -> ReferenceProfile:
    """Four standard-normal features, a city, and a regression prediction."""
    rng = np.random.default_rng(seed)
    n = 3000
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(4)})
    frame["city"] = rng.choice(CITIES, size=n)
    frame["prediction"] = frame["x0"] * 0.5 + rng.normal(scale=0.1, size=n)
    return build_reference(frame, model=model, model_version="3", task="regression")


def partials(profile: ReferenceProfile, *, seed: int = 1, until_s: float = 1200.0, rate_per_s: float = 2.0,
             sources: int = 2) -> list[PanePartial]:
    """Events over ``[0, until_s)``, x1 and x2 one sigma up from `SHIFT_FROM_S`, spread over ``sources``.

    Each source closes the panes its own watermark has passed (no lateness), heartbeats included.
    """
    rng = np.random.default_rng(seed)
    n = int(until_s * rate_per_s)
    ts = np.sort(rng.uniform(0.0, until_s, size=n))
    events = []
    for i, t in enumerate(ts):
        shift = 1.0 if t >= SHIFT_FROM_S else 0.0
        features: dict[str, float | str | None] = {f"x{k}": float(rng.normal(shift if f"x{k}" in SHIFTED else 0.0))
                                                   for k in range(4)}
        features["city"] = str(rng.choice(CITIES))
        events.append(PredictionEvent(event_id=f"e{i}", ts=float(t), model=profile.model, model_version="3",
                                      request_id=f"r{i}", features=features, prediction=float(rng.normal(0, 0.5))))
    out: list[PanePartial] = []
    for source in range(sources):
        aggregator = PaneAggregator({profile.model: profile}, pane_s=SETTINGS.pane_s, allowed_lateness_s=0.0,
                                    source=f"ingest-{source}", seed=source)
        aggregator.add_predictions(events[source::sources])
        out.extend(aggregator.close_panes())
    return out

"""The producer SDK (`DriftlineProducer`) and the stream simulator built on it (`Simulator`)."""

from driftline.producers.client import DeliveryStats, DriftlineProducer
from driftline.producers.masking import PiiMasker
from driftline.producers.publish import SimulationSummary, publish
from driftline.producers.scenarios import SCENARIOS, DriftScenario
from driftline.producers.simulator import MALFORMED_KINDS, ModelSpec, RecordBatch, Simulator
from driftline.producers.values import class_prediction, clean_features, ranking_prediction, to_outcome, to_prediction

__all__ = [
    "MALFORMED_KINDS",
    "SCENARIOS",
    "DeliveryStats",
    "DriftScenario",
    "DriftlineProducer",
    "ModelSpec",
    "PiiMasker",
    "RecordBatch",
    "SimulationSummary",
    "Simulator",
    "class_prediction",
    "clean_features",
    "publish",
    "ranking_prediction",
    "to_outcome",
    "to_prediction",
]

"""The A/B analyzer service: experiments and labeled events in, significance results out."""

from driftline.consumers.ab.handler import ABHandler, ExperimentState

__all__ = ["ABHandler", "ExperimentState"]

"""Drift tests of one feature against its reference: a statistic, a verdict, the evidence."""

from driftline.stream.drift.base import BinnedTest, DriftTest, Statistic
from driftline.stream.drift.chi2 import ChiSquareTest
from driftline.stream.drift.jensen_shannon import JensenShannon
from driftline.stream.drift.kolmogorov import kstwo_sf
from driftline.stream.drift.ks import KSTest, binned_ks_statistic
from driftline.stream.drift.psi import PSI
from driftline.stream.drift.vectorised import (
    BinnedScores,
    SampleDistances,
    SampleStatistics,
    binned_scores,
    ks_p_values,
    sample_distances,
    sample_statistics,
)
from driftline.stream.drift.wasserstein import Wasserstein

__all__ = [
    "PSI",
    "BinnedScores",
    "BinnedTest",
    "ChiSquareTest",
    "DriftTest",
    "JensenShannon",
    "KSTest",
    "SampleDistances",
    "SampleStatistics",
    "Statistic",
    "Wasserstein",
    "binned_ks_statistic",
    "binned_scores",
    "ks_p_values",
    "kstwo_sf",
    "sample_distances",
    "sample_statistics",
]

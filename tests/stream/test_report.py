"""The drift report: both files exist, the HTML is self-contained and complete, the PNG is valid."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from driftline.schemas.events import FeatureResult, MetricResult
from driftline.stream.report import FeatureView, ReportFiles, feature_views, render_report, render_window_report
from driftline.stream.windows import DataDriftResult, Histogram, WindowResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def feature_view(name: str, *, drifted: bool, p_value: float, seed: int, kind: str = "numeric") -> FeatureView:
    rng = np.random.default_rng(seed)
    reference_share = np.full(6, 1 / 6)
    current_share = np.array([0.05, 0.1, 0.15, 0.2, 0.2, 0.3]) if drifted else reference_share
    result = FeatureResult(
        feature=name, test="ks" if kind == "numeric" else "chi2", statistic=float(rng.random()), p_value=p_value,
        p_adjusted=min(1.0, p_value * 4), threshold=0.05, drifted=drifted, n_reference=600, n_current=500,
    )
    labels = [f"[{i}, {i + 1})" for i in range(6)] if kind == "numeric" else ["a", "b", "c", "d", "e", "other"]
    return FeatureView(name, kind, labels, rng.multinomial(600, reference_share), rng.multinomial(500, current_share),
                       result)


FEATURES = [
    feature_view("amount", drifted=True, p_value=1.25e-7, seed=1),
    feature_view("merchant <type> & co", drifted=False, p_value=0.4321, seed=2, kind="categorical"),
    feature_view("age", drifted=False, p_value=0.0876, seed=3),
    feature_view("prediction", drifted=True, p_value=0.00314, seed=4, kind="categorical"),
]
METRICS = [
    MetricResult(metric="accuracy", reference=0.9, current=0.855, relative_drop=0.05, significance_test="binomial_test",
                 p_value=3.2e-11, ci_low=0.842, ci_high=0.866, dropped=True, n=3000),
    MetricResult(metric="log_loss", reference=0.31, current=0.315, relative_drop=0.016,
                 significance_test="bootstrap_sample", p_value=0.27, ci_low=0.3, ci_high=0.33, dropped=False, n=3000),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return render_report("fraud-model", 1_700_000_000.0, 1_700_003_600.0, FEATURES, METRICS,
                         tmp_path_factory.mktemp("report") / "nested")


def test_both_files_are_written_in_the_given_directory(report: ReportFiles) -> None:
    assert report.html.is_file() and report.png.is_file()
    assert report.html.parent == report.png.parent
    assert report.html.parent.name == "nested"


def test_html_names_every_feature_escaped_and_shows_p_values(report: ReportFiles) -> None:
    page = report.html.read_text(encoding="utf-8")
    for feature in FEATURES:
        assert html.escape(feature.name) in page
        assert f"{feature.result.p_value:.3g}" in page
        assert f"{feature.result.p_adjusted:.3g}" in page
    assert "merchant <type>" not in page  # escaped, not markup
    for metric in METRICS:
        assert metric.metric in page and f"{metric.p_value:.3g}" in page
    assert "2023-11-14 22:13:20 UTC" in page
    assert "2 of 4 features drifted; 1 of 2 performance metrics dropped" in page


def test_html_is_self_contained_with_one_valid_plot_per_feature(report: ReportFiles) -> None:
    page = report.html.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == len(FEATURES)
    assert all(base64.b64decode(image).startswith(PNG_MAGIC) for image in images)


def test_most_drifted_features_come_first(report: ReportFiles) -> None:
    page = report.html.read_text(encoding="utf-8")
    table = page[page.index("<h2>Feature tests</h2>") : page.index("<h2>Model performance</h2>")]
    order = [table.index(html.escape(name)) for name in ("amount", "prediction", "age", "merchant <type> & co")]
    assert order == sorted(order)


def test_png_summary_is_a_valid_image(report: ReportFiles) -> None:
    assert report.png.read_bytes().startswith(PNG_MAGIC)
    pixels = imread(report.png)
    height, width = pixels.shape[:2]
    assert width >= 800 and height >= 500  # a grid of panels, not a thumbnail
    assert pixels.std() > 0.05  # something was drawn


def test_a_window_without_features_or_metrics_still_renders(tmp_path: Path) -> None:
    files = render_report("empty", 0.0, 60.0, [], [], tmp_path)
    assert "No labeled rows tested." in files.html.read_text(encoding="utf-8")
    assert imread(files.png).shape[0] > 100


def test_misaligned_counts_are_rejected() -> None:
    result = FEATURES[0].result
    with pytest.raises(ValueError, match="must align"):
        FeatureView("x", "numeric", ["a", "b"], [1, 2, 3], [1, 2], result)


def test_window_end_before_start_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="before window_start"):
        render_report("m", 10.0, 5.0, [], [], tmp_path)


def test_an_evaluated_window_renders_with_its_histograms_and_evidence(tmp_path: Path) -> None:
    amount = FEATURES[0]
    psi = FeatureResult(feature="amount", test="psi", statistic=0.37, score=0.37, threshold=0.2, drifted=True,
                        n_reference=600, n_current=500)
    untested = Histogram("numeric", ("[0, 1)",), (5,), (0,))
    window = WindowResult(
        model="fraud-model", model_version="3", reference_id="ref-1", window_start=0.0, window_end=3600.0,
        n_events=500, n_reference=600, n_late=0, n_labeled=3000, correction="bh",
        data=DataDriftResult((amount.result, psi), ("amount",), 1, 1.0, True, sufficient=True),
        prediction=(), concept=tuple(METRICS),
        histograms={"amount": Histogram("numeric", amount.labels, amount.reference_counts, amount.current_counts),
                    "untested": untested},
    )
    (view,) = feature_views(window)
    assert (view.name, view.result, view.others) == ("amount", amount.result, (psi,))
    page = render_window_report(window, tmp_path).html.read_text(encoding="utf-8")
    assert "psi 0.37 (drifted)" in page and "accuracy" in page

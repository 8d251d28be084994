"""The promise of the README: the embedded default converts and is accurate within 100 ms."""

from snnbalance.pipeline import ConvertConfig, convert
from snnbalance.simulate import SimConfig


def test_embedded_default_data_based_within_1pct_of_ann_by_100ms():
    cfg = ConvertConfig(normalizers=["data-based"], samples=1000, sim=SimConfig(duration=100.0))
    report = convert(cfg)
    run = report.runs[0]
    assert report.ann_accuracy > 0.98
    assert run.result.samples == 1000 and len(run.result.accuracy_over_time) == 100
    assert run.result.accuracy_at(100) >= report.ann_accuracy - 0.01, (run.result.accuracy_at(100), report.ann_accuracy)
    # the SNN starts at chance (class 0 before any output spike) and improves: the curve is real
    assert run.result.accuracy_over_time[0] < 0.2

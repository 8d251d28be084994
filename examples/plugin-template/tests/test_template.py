"""Tests of the installed template plugin: snnbalance's conformance suite plus your own checks."""

import numpy as np
import pytest

from snnbalance.errors import SnnBalanceError
from snnbalance.normalize import normalize
from snnbalance.records import Calibration
from snnbalance.testing import reference_graph, reference_inputs, snnbalance_conformance  # noqa: F401  (fixture)

pytest.importorskip("snnbalance_template", reason="the plugin is not installed: pip install ./examples/plugin-template")


def test_normalizer_conforms(snnbalance_conformance):  # noqa: F811  (the fixture imported above)
    snnbalance_conformance.check_normalizer("template-max")
    snnbalance_conformance.check_normalizer("template-max", {"margin": "2"})


def test_simulator_conforms(snnbalance_conformance):  # noqa: F811  (the fixture imported above)
    snnbalance_conformance.check_simulator("template-numpy")


def test_margin_halves_the_activations():
    g, x = reference_graph(), reference_inputs(32)
    one = normalize(g, "template-max", calibration=Calibration(x)).graph.forward(x, keep=True)
    two = normalize(g, "template-max:margin=2", calibration=Calibration(x)).graph.forward(x, keep=True)
    assert float(one["c1"].max()) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(two["c1"], one["c1"] / 2, rtol=1e-5, atol=1e-7)


def test_bad_margin_is_one_clear_line():
    with pytest.raises(SnnBalanceError, match="option margin must be a number >= 1e-06, got 'big'"):
        normalize(reference_graph(), "template-max:margin=big", calibration=Calibration(reference_inputs(4)))

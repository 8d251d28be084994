"""The headless benchmark behind ``snnbalance bench``: how fast each way of simulating the paper's
networks runs on this machine, measured in one run.

For each network (the paper's MLP 784-1200-1200-10 and CNN 12c5-2s-64c5-2s-10, data-based
normalization, Poisson input at 1000 Hz) it measures image-steps per second of:

* ``numpy``: the NumPy reference (on a capped subset: it is slow, and its rate does not depend
  on how many samples or steps are simulated);
* ``spikingjelly``: this project's back end (:mod:`snnbalance.simulate.spikingjelly`), full run;
* ``sj_flow``: SpikingJelly's own ann2snn flow on the same trained network: ``Converter`` with
  ``RateCodingRecipe(mode="max")`` and IF neurons reset to 0, driven by SpikingJelly's
  ``PoissonEncoder`` and stepped as its documentation does, single-step (a Python loop over
  steps, as in its ``cnn_mnist`` example) and multi-step (``set_step_mode(net, "m")`` on chunks
  of steps); the faster of the two is the reference point;
* ``ceiling``: the dense fp32 matrix-product rate of this machine (a measured SGEMM) divided by
  the network's multiply-accumulates per image-step.

Modules: :mod:`.machine` (what it ran on, peak memory, the SGEMM ceiling), :mod:`.networks` (the
networks and their data), :mod:`.measure` (this project's simulators), :mod:`.sj_flow`
(SpikingJelly's flow), :mod:`.run` (the whole run). ``snnbalance bench`` renders the result
(:mod:`snnbalance.cli.bench`).
"""

from __future__ import annotations

from .machine import PeakMemory, load_average, machine, matmul_rate
from .measure import MAX_RATE, NUMPY_CAP, image_step_rate, measure_numpy, measure_ours
from .networks import CALIBRATION, BenchNet, mnist_data, model_network, paper_networks, to_graph, trained_model
from .run import METHODS, measure_network, run_bench
from .sj_flow import measure_sj_flow, sj_convert, sj_flow_rows

#: the name scripts/device_check.py and tests/test_trust.py read MNIST by
_data = mnist_data

__all__ = [
    "CALIBRATION",
    "MAX_RATE",
    "METHODS",
    "NUMPY_CAP",
    "BenchNet",
    "PeakMemory",
    "image_step_rate",
    "load_average",
    "machine",
    "matmul_rate",
    "measure_network",
    "measure_numpy",
    "measure_ours",
    "measure_sj_flow",
    "mnist_data",
    "model_network",
    "paper_networks",
    "run_bench",
    "sj_convert",
    "sj_flow_rows",
    "to_graph",
    "trained_model",
]

"""The embedded CNN's fastest membrane read-out runs on held-out test images (readout-membrane.md).

    SNNBALANCE_DATA=../shared/data .venv/bin/python docs/results/latency/readout-membrane/heldout.py

Test images 1000-1999 and 2000-2999 (the grid used the first 1,000), Poisson 1000 Hz, seed 0, 100 ms:
per run the first time from which accuracy stays within 0.3 / 0.5 / 1 points of the ANN on the same
images. Prints one JSON line per run.
"""

from __future__ import annotations

import json

from snnbalance.normalize import normalize
from snnbalance.pipeline import ConvertConfig, ann_accuracy, fit_inputs, load_data, load_network
from snnbalance.records import Calibration
from snnbalance.simulate import SimConfig, simulate
from snnbalance.simulate.core import shard

RUNS = (
    ("baseline", "zero", None),
    ("baseline", "subtract", None),
    ("threshold-balancing:T=8,v_init=0.5", "subtract", None),
    ("robust", "subtract", 0.5),
)

cfg = ConvertConfig(samples=3000)
graph = load_network(cfg)[0].graph
x, y, calib, _ = load_data(cfg, True, shape=graph.input_shape)
x = fit_inputs(graph, x, cfg.dataset)
calibration = Calibration(calib.reshape(len(calib), *graph.input_shape))
for spec, reset, v in RUNS:
    g = normalize(graph, spec, calibration=calibration).graph
    for lo in (1000, 2000):
        xs, ys = x[lo : lo + 1000], y[lo : lo + 1000]
        ann = ann_accuracy(graph, xs, ys)
        with shard(lo):  # the images' own input spikes (the hash takes the image index)
            r = simulate(g, xs, ys, SimConfig(duration=100, reset=reset, v_init=v, readout="membrane"), simulator="spikingjelly")
        print(
            json.dumps(
                {
                    "normalizer": spec,
                    "reset": reset,
                    "v_init": "its own" if v is None else v,
                    "images": [lo, lo + 1000],
                    "ann": ann,
                    "final": r.final_accuracy,
                    **{f"t_{p:g}": r.time_to_within(p / 100, of=ann) for p in (0.3, 0.5, 1.0)},
                }
            ),
            flush=True,
        )

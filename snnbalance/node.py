"""A layer of the network and the names of the layer kinds: the data every other module shares.

:mod:`snnbalance.graph` (the :class:`~snnbalance.graph.Graph`) and :mod:`snnbalance.graph_ops`
(the per-node arithmetic) both build on this module, which imports neither of them; callers import
these names from :mod:`snnbalance.graph`, which re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INPUT = "input"
WEIGHTED = ("dense", "conv2d")
POOLS = ("avgpool2d", "maxpool2d")
MERGES = ("add", "concat")
NEURON_OPS = ("dense", "conv2d", "avgpool2d", "maxpool2d", "add")
OPS = (*NEURON_OPS, "flatten", "concat")
#: The paper's vocabulary: chains of these need nothing beyond Diehl et al. 2015.
BASIC_OPS = ("dense", "conv2d", "avgpool2d", "flatten")


@dataclass
class Node:
    """One layer of the network.

    Attributes:
        name: unique name; other nodes refer to it in ``inputs``.
        op: one of :data:`OPS`.
        inputs: names of the nodes (or ``"input"``) this node reads (two or more for merges).
        weight: weights of ``dense``/``conv2d``, float32.
        bias: optional bias of ``dense`` (out,) or ``conv2d``: per channel (out,) or, where an
            input normalization was folded into a padded conv, per position (out, H', W').
        stride, padding: for ``conv2d`` and the pools; ``padding`` is ``(ph, pw)`` on both sides, or
            ``(top, left, bottom, right)`` when asymmetric (Keras' 'same' with an even kernel).
        kernel: pooling window of ``avgpool2d``/``maxpool2d``.
        scales: per-input factors of an ``add`` (None: all 1); normalizers set them.
        relu: whether the ANN applies ReLU to this node's output.
        threshold: firing threshold of the node's IF neurons in the SNN.
        v_init: the membrane potential of the node's IF neurons at the start of every sample, as a
            fraction of ``threshold`` (``0.5``: Deng & Gu 2021, Bu et al. 2022): the first spikes come
            earlier and the rate's rounding error is centred. Part of the network, like the
            threshold; ignored by nodes without membranes (max-pool gates, synaptic-only layers).
        source: the layer's name in the source model, for messages.
    """

    name: str
    op: str
    inputs: tuple[str, ...] = (INPUT,)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, ...] = (0, 0)
    kernel: tuple[int, int] | None = None
    relu: bool = False
    threshold: float = 1.0
    source: str = ""
    scales: tuple[float, ...] | None = None
    v_init: float = 0.0

    def label(self) -> str:
        return f"{self.name} ({self.source})" if self.source and self.source != self.name else self.name

    def input_scales(self) -> tuple[float, ...]:
        """The factor of each input of an ``add`` (1 when not set)."""
        return tuple(float(s) for s in self.scales) if self.scales is not None else (1.0,) * len(self.inputs)


__all__ = ["BASIC_OPS", "INPUT", "MERGES", "NEURON_OPS", "OPS", "POOLS", "WEIGHTED", "Node"]

"""A :class:`~snnbalance.graph.Graph` as a PyTorch module: the ANN it describes, in torch ops.

Why: tools that take torch modules (SpikingJelly's own ann2snn converter, which ``snnbalance
bench`` measures against) can then run exactly the network snnbalance imported, whatever file it
came from (ONNX included), with batch norm already folded. Every ReLU is an ``nn.ReLU`` module,
so converters that replace ReLU modules with spiking neurons see them; a max-pool node is
``F.max_pool2d`` (the ANN's max, not the spiking gate).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .graph import INPUT, Graph
from .graph_ops import is_asymmetric, pads4


class GraphModule(nn.Module):
    """Runs ``graph`` as an ANN: ``forward(x)`` with ``x`` of shape (B, *graph.input_shape).

    Layers are torch modules (``nn.Linear``, ``nn.Conv2d``, pools, ``nn.ReLU``; ``nn.ZeroPad2d``
    for asymmetric padding), merges are ``+`` and ``torch.cat``, a per-position bias is a
    parameter added after its convolution: the vocabulary converters that trace modules know.
    """

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        self.layers = nn.ModuleDict()
        self.pads = nn.ModuleDict()
        self.maps = nn.ParameterDict()
        self.relus = nn.ModuleDict()
        shapes = graph.shapes()
        for n in graph.nodes:
            key = _key(n.name)
            t, left, b, r = pads4(n.padding)
            pad = (0, 0)
            if n.op in ("conv2d", "avgpool2d", "maxpool2d"):
                if is_asymmetric(n.padding):
                    fill = float("-inf") if n.op == "maxpool2d" else 0.0
                    self.pads[key] = nn.ConstantPad2d((left, r, t, b), fill)
                else:
                    pad = (t, left)
            bias_map = n.bias is not None and n.bias.ndim > 1
            if n.op == "dense":
                m = nn.Linear(n.weight.shape[1], n.weight.shape[0], bias=n.bias is not None)
            elif n.op == "conv2d":
                o, c, kh, kw = n.weight.shape
                m = nn.Conv2d(c, o, (kh, kw), stride=tuple(n.stride), padding=pad, bias=n.bias is not None and not bias_map)
            elif n.op == "avgpool2d":
                m = nn.AvgPool2d(tuple(n.kernel), tuple(n.stride), pad, count_include_pad=True)
            elif n.op == "maxpool2d":
                m = nn.MaxPool2d(tuple(n.kernel), tuple(n.stride), pad)
            elif n.op == "flatten":
                m = nn.Flatten()
            else:
                m = None
            if m is not None:
                if n.weight is not None:
                    m.weight.data = torch.from_numpy(np.array(n.weight, np.float32))
                    if m.bias is not None:
                        m.bias.data = torch.from_numpy(np.array(n.bias, np.float32))
                self.layers[key] = m.requires_grad_(False)
            if bias_map:
                self.maps[key] = nn.Parameter(torch.from_numpy(np.array(n.bias, np.float32)).reshape(shapes[n.name]), requires_grad=False)
            if n.relu:
                self.relus[key] = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vals = {INPUT: x}
        for n in self.graph.nodes:
            key = _key(n.name)
            ins = [vals[i] for i in n.inputs]
            if n.op == "add":
                scales = n.input_scales()
                y = ins[0] * scales[0] if scales[0] != 1.0 else ins[0]
                for s, v in zip(scales[1:], ins[1:]):
                    y = y + (v * s if s != 1.0 else v)
            elif n.op == "concat":
                y = torch.cat(ins, dim=1)
            else:
                y = ins[0]
                if key in self.pads:
                    y = self.pads[key](y)
                y = self.layers[key](y)
            if key in self.maps:
                y = y + self.maps[key]
            if key in self.relus:
                y = self.relus[key](y)
            vals[n.name] = y
        return vals[self.graph.output.name]


def _key(name: str) -> str:
    """A module-dict key for a node name (no dots)."""
    return "n_" + name.replace(".", "_")


def to_torch(graph: Graph) -> GraphModule:
    """The ANN of ``graph`` as a torch module in eval mode."""
    return GraphModule(graph).eval()


__all__ = ["GraphModule", "to_torch"]

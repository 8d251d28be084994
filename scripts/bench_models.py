"""Write the two networks issue 12's CPU and CUDA targets name, as ONNX files, for `snnbalance bench --model`.

* ``vgg_cifar.onnx``: a CIFAR-shaped VGG: six 3x3 convs (64-64-128-128-256-256) with batch norm and
  biases, three 2x2 max pools, two dense layers (4096-512-10); 154.8M MACs per image-step.
* ``resnet18_sj.onnx``: SpikingJelly's own ``ann2snn.sample_models.cifar10_resnet.ResNet18``
  (batch norm, residual adds, 3x32x32 inputs); 556M MACs per image-step.

Weights are seeded random (He init; batch-norm statistics drawn so that folding them is not the
identity): these files measure speed, not accuracy. Run::

    python scripts/bench_models.py OUT_DIR
    snnbalance bench --model OUT_DIR/vgg_cifar.onnx --dataset random --samples 64 --duration 100
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
from torch import nn


def vgg_cifar() -> nn.Module:
    layers, c = [], 3
    for i, width in enumerate((64, 64, 128, 128, 256, 256)):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        if i % 2:
            layers.append(nn.MaxPool2d(2))
        c = width
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 4 * 4, 512), nn.ReLU(), nn.Linear(512, 10))


def _randomize_bn(model: nn.Module, gen: torch.Generator) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def main(out: str) -> None:
    from spikingjelly.activation_based.ann2snn.sample_models.cifar10_resnet import ResNet18

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in (("vgg_cifar", vgg_cifar), ("resnet18_sj", ResNet18)):
        torch.manual_seed(0)
        model = _randomize_bn(build(), torch.Generator().manual_seed(1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.zeros(1, 3, 32, 32),),
                str(folder / f"{name}.onnx"),
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
        print(f"wrote {folder / name}.onnx")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench-models")

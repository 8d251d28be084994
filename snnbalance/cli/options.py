"""The options every command that builds a network shares, declared once.

``convert``, ``export`` and ``tui`` read a model exactly the same way; their options are these
``Annotated`` types, and :func:`job` turns the values into the library's one job description,
:class:`~snnbalance.pipeline.ConvertConfig`, whose defaults they show.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..errors import SnnBalanceError
from ..pipeline import ConvertConfig

D = ConvertConfig()  # the defaults live in the library; the TUI shows the same ones

ModelArg = Annotated[
    Optional[str],
    typer.Argument(
        help="Trained model: .onnx, TorchScript or pickled nn.Module (.pt, with --trust-model), or a state_dict "
        "with --arch. Omitted: the embedded paper CNN trained on MNIST."
    ),
]
Arch = Annotated[Optional[str], typer.Option(help="package.module:Class (or file.py:Class) to load a state_dict into.")]
TrustModel = Annotated[
    bool,
    typer.Option(
        "--trust-model",
        help="Load a whole pickled nn.Module. Unpickling runs code named in the file: only for "
        "files you trust. Without it such a file is refused and nothing in it runs.",
    ),
]
Dataset = Annotated[
    str,
    typer.Option(
        help="mnist, fashion-mnist, cifar10, cifar100 (torchvision's layout under the data root), a plugin's dataset, "
        "an image folder (one subfolder per class; train/ and test/ inside if it has splits), or an .npz file "
        "with x and y. A PyTorch model takes its input shape from it."
    ),
]
DataDir = Annotated[Optional[str], typer.Option(help="Dataset root (default: $SNNBALANCE_DATA, else the user cache).")]
Download = Annotated[bool, typer.Option("--download", help="Download a missing dataset (needs internet).")]
CalibrationSamples = Annotated[int, typer.Option(help="Training images for data-based normalization (seeded).")]
Threshold = Annotated[float, typer.Option(help="Firing threshold of every spiking layer.")]
Seed = Annotated[int, typer.Option(help="Seed of input spikes and calibration sampling.")]
InputMean = Annotated[
    Optional[str],
    typer.Option(
        help="The model was trained on (x - mean) / std: the mean, one value or one per channel, comma-separated "
        "(e.g. 0.5 or 0.485,0.456,0.406). Folded into the first layer; the SNN reads raw 0-1 pixels."
    ),
]
InputStd = Annotated[Optional[str], typer.Option(help="The std of that normalization (see --input-mean).")]
InputLayout = Annotated[
    Optional[str], typer.Option(help="Input layout of the model: nchw or nhwc (channels-last, e.g. Keras); default: detected.")
]
InputShape = Annotated[
    Optional[str],
    typer.Option(
        help="Per-sample input shape of a PyTorch model, e.g. 3,32,32 (default: the dataset's); ONNX files carry their "
        "own. Image folders are scaled and cropped to it."
    ),
]
MaxPool = Annotated[
    str,
    typer.Option(
        help="Max pooling: spiking (gated by accumulated spike counts) or avg (replaced by average pooling; the ANN "
        "accuracy change is reported)."
    ),
]
ModelOutput = Annotated[
    Optional[str],
    typer.Option(
        help="The ONNX output to convert when the model has several (default: the only one shaped (batch, classes)). "
        "Not -o/--output, which names the results folder."
    ),
]
CalibrationDataset = Annotated[
    Optional[str],
    typer.Option(
        help="Images for data-based normalization: mnist, fashion-mnist or an .npz file [default: the training split "
        "of --dataset; for an .npz dataset, that same file]."
    ),
]
Dt = Annotated[float, typer.Option(help="Time step (ms).")]
Reset = Annotated[str, typer.Option(help="Membrane reset after a spike: zero or subtract.")]
Readout = Annotated[
    str,
    typer.Option(
        help="How the prediction is read: spikes (output spike counts, Diehl et al. 2015) or membrane (the output "
        "layer only integrates its input, no threshold; its potential's argmax, Rueckauer et al. 2017)."
    ),
]
MaxRate = Annotated[float, typer.Option(help="Poisson rate of a pixel of value 1 (Hz).")]
ExecutorKind = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Where simulations run: local (this process) or ray (tasks of test-image slices on a Ray "
        "cluster, same numbers; pip install 'snnbalance[ray]').",
    ),
]
RayAddress = Annotated[
    Optional[str],
    typer.Option(
        "--ray-address",
        help="Ray cluster for --executor ray: auto (the one started on this machine), "
        "ray://HOST:PORT or HOST:PORT (default: $RAY_ADDRESS, else a new local instance).",
    ),
]
SliceSize = Annotated[
    Optional[int],
    typer.Option(
        "--slice-size",
        help="Test images per Ray task (default: whole batches, about 4 tasks per CPU, or per GPU with --device cuda, of the cluster).",
    ),
]


def executor(kind: str, address: Optional[str], slice_size: Optional[int]):
    """The library's :class:`~snnbalance.executors.Executor` for the three options above."""
    from ..executors import Executor

    return Executor(kind=kind, address=address, slice_size=slice_size)


VInit = Annotated[
    Optional[list[float]],
    typer.Option(
        "--v-init",
        help="Initial membrane potential of every spiking layer, as a fraction of its threshold, in "
        "[-1, 1) (0.5: Deng & Gu 2021, Bu et al. 2022); replaces per-layer values a calibration "
        "normalizer chose. Repeat it to compare several values (convert). Default: each layer's own (0).",
    ),
]


def floats(text: Optional[str], option: str) -> Optional[list[float]]:
    """``"0.5"`` or ``"0.485,0.456,0.406"`` as floats."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise SnnBalanceError(f"{option} takes numbers separated by commas, got {text!r}") from None


def ints(text: Optional[str], option: str) -> Optional[list[int]]:
    """``"3,32,32"`` as ints."""
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        raise SnnBalanceError(f"{option} takes whole numbers separated by commas, e.g. 3,32,32; got {text!r}") from None


def job(*, input_mean: Optional[str], input_std: Optional[str], input_shape: Optional[str], **fields) -> ConvertConfig:
    """The job the shared options describe (``fields`` are :class:`ConvertConfig` fields)."""
    return ConvertConfig(
        input_mean=floats(input_mean, "--input-mean"),
        input_std=floats(input_std, "--input-std"),
        input_shape=ints(input_shape, "--input-shape"),
        **fields,
    )

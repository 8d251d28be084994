"""Networks to train and convert: the two of Diehl et al. (2015), and a VGG and a ResNet to try.

The paper's networks (:class:`PaperMLP`, :class:`PaperCNN`) use ReLU, no biases and average
pooling. :class:`VGG` and :class:`ResNet` are what users of converters bring: batch norm (folded
into the convolutions on import), biases, max pooling and residual adds; they take the
dataset's channels and classes, so one class serves MNIST (1x28x28) and CIFAR-10 (3x32x32).

Biases are left out because a constant input current has no faithful rate-coded counterpart
in the paper's scheme (it would need an always-on input neuron), and average pooling replaces
max pooling because it is a linear layer an IF neuron can compute. Dropout is only active in
training; in eval mode it is the identity and converters skip it.

Both classes are :class:`torch.nn.Sequential` with named children, so they can be walked layer
by layer and their state_dict keys read ``fc1.weight``, ``conv1.weight`` and so on.
"""

from __future__ import annotations

from collections import OrderedDict
from importlib import resources
from pathlib import Path

from torch import nn

from .errors import SnnBalanceError

DEFAULT_MODEL_ASSET = "mnist_cnn.pt"


class PaperMLP(nn.Sequential):
    """784-1200-1200-10 fully connected ReLU network without biases.

    Args:
        input_dropout: dropout on the pixels during training.
        hidden_dropout: dropout after each hidden ReLU during training.
    """

    def __init__(self, input_dropout: float = 0.2, hidden_dropout: float = 0.5) -> None:
        super().__init__(
            OrderedDict(
                [
                    ("flatten", nn.Flatten()),
                    ("drop0", nn.Dropout(input_dropout)),
                    ("fc1", nn.Linear(784, 1200, bias=False)),
                    ("relu1", nn.ReLU()),
                    ("drop1", nn.Dropout(hidden_dropout)),
                    ("fc2", nn.Linear(1200, 1200, bias=False)),
                    ("relu2", nn.ReLU()),
                    ("drop2", nn.Dropout(hidden_dropout)),
                    ("fc3", nn.Linear(1200, 10, bias=False)),
                ]
            )
        )


class PaperCNN(nn.Sequential):
    """28x28-12c5-2s-64c5-2s-10 convolutional ReLU network without biases.

    Two 5x5 valid convolutions, each followed by ReLU and 2x2 average pooling
    (28 -> 24 -> 12 -> 8 -> 4), then a dense readout from 64*4*4 = 1024 features.

    Args:
        dropout: dropout on the 1024 features before the readout during training; the
            convolutions share few weights and barely overfit, so they get none.
    """

    def __init__(self, dropout: float = 0.5) -> None:
        super().__init__(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(1, 12, 5, bias=False)),
                    ("relu1", nn.ReLU()),
                    ("pool1", nn.AvgPool2d(2)),
                    ("conv2", nn.Conv2d(12, 64, 5, bias=False)),
                    ("relu2", nn.ReLU()),
                    ("pool2", nn.AvgPool2d(2)),
                    ("flatten", nn.Flatten()),
                    ("drop", nn.Dropout(dropout)),
                    ("fc", nn.Linear(1024, 10, bias=False)),
                ]
            )
        )


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, bias: bool = True) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=bias), nn.BatchNorm2d(cout), nn.ReLU()]


class VGG(nn.Sequential):
    """A small VGG: three stages of two 3x3 conv + batch norm + ReLU blocks, each ending in 2x2
    max pooling, then two dense layers (with biases). Six convolutions and three max pools, the
    shape of the CIFAR VGGs converters are asked about, sized to train in minutes on two CPU
    cores (8-16-32 channels: about 2 M multiply-adds per 28x28 image; an epoch of MNIST takes
    about 20 s on two cores).

    Args:
        in_channels: image channels (1 for MNIST, 3 for CIFAR).
        num_classes: outputs.
        input_size: image height and width (square); it fixes the first dense layer's size.
        width: channels of the first stage; the next two have twice and four times as many
            (16 trains ten times slower on two cores with PyTorch 2.14, not four: measured).
        hidden: units of the hidden dense layer.
        dropout: dropout before each dense layer during training.
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, width: int = 8, hidden: int = 128, dropout: float = 0.3
    ) -> None:
        layers: list[tuple[str, nn.Module]] = []
        cin, size = in_channels, input_size
        for stage, cout in enumerate((width, 2 * width, 4 * width), start=1):
            for part, c in (("a", cin), ("b", cout)):
                conv, bn, relu = _conv_bn_relu(c, cout)
                layers += [(f"conv{stage}{part}", conv), (f"bn{stage}{part}", bn), (f"relu{stage}{part}", relu)]
            layers.append((f"pool{stage}", nn.MaxPool2d(2)))
            cin, size = cout, size // 2
        if size < 1:
            raise SnnBalanceError(f"the vgg arch needs images of at least 8x8 pixels, got input_size={input_size}")
        layers += [
            ("flatten", nn.Flatten()),
            ("drop1", nn.Dropout(dropout)),
            ("fc1", nn.Linear(cin * size * size, hidden)),
            ("relu_fc1", nn.ReLU()),
            ("drop2", nn.Dropout(dropout)),
            ("fc2", nn.Linear(hidden, num_classes)),
        ]
        super().__init__(OrderedDict(layers))
        self.arch_kwargs = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "input_size": input_size,
            "width": width,
            "hidden": hidden,
            "dropout": dropout,
        }


class BasicBlock(nn.Module):
    """Two 3x3 conv + batch norm layers and a residual add (a 1x1 conv + batch norm shortcut where
    the shape changes), then ReLU: He et al. (2016)'s basic block."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Sequential()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet: a 3x3 conv stem, three basic blocks (the last two halve the size and double
    the channels), global average pooling and a dense head. Any image size works.

    Args:
        in_channels: image channels.
        num_classes: outputs.
        width: channels of the stem and the first block.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, width, bias=False))
        self.layer1 = BasicBlock(width, width)
        self.layer2 = BasicBlock(width, 2 * width, stride=2)
        self.layer3 = BasicBlock(2 * width, 4 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * width, num_classes)
        self.arch_kwargs = {"in_channels": in_channels, "num_classes": num_classes, "width": width}

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.layer3(self.layer2(self.layer1(self.stem(x)))))))


ARCHS: dict[str, type[nn.Module]] = {"mlp": PaperMLP, "cnn": PaperCNN, "vgg": VGG, "resnet": ResNet}
#: The dataset-dependent settings of each built-in arch: what ``train`` fills in from the data.
SHAPED = {"vgg": ("in_channels", "num_classes", "input_size"), "resnet": ("in_channels", "num_classes")}


def is_arch_spec(spec: str) -> bool:
    """Whether ``spec`` names a built-in arch: ``vgg`` or ``vgg:key=value,...`` (not ``module:Class``)."""
    name, sep, rest = str(spec).partition(":")
    return name.lower() in ARCHS and (not sep or "=" in rest or not rest)


def build(spec: str) -> nn.Module:
    """A fresh built-in network from ``NAME`` or ``NAME:key=value,key=value``.

    The keys are the class's arguments (``vgg:in_channels=3,input_size=32``); :func:`spec_of`
    writes them for a trained model, so ``convert`` rebuilds exactly what ``train`` trained.

    Raises:
        SnnBalanceError: an unknown name, key or value, on one line.
    """
    name, _, rest = str(spec).partition(":")
    cls = ARCHS.get(name.lower())
    if cls is None:
        raise SnnBalanceError(f"unknown architecture {name!r}: use {', '.join(ARCHS)} or module:Class")
    kwargs: dict[str, int | float] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        try:
            kwargs[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            raise SnnBalanceError(f"--arch {spec!r}: {part!r} is not key=number") from None
        if not eq:
            raise SnnBalanceError(f"--arch {spec!r}: {part!r} is not key=number")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SnnBalanceError(f"--arch {spec!r}: {exc}") from None


def spec_of(name: str, model: nn.Module) -> str:
    """The short spec that rebuilds ``model`` with :func:`build`: its name plus every argument
    that differs from the class's default (``vgg`` for MNIST, ``vgg:in_channels=3,input_size=32``)."""
    import inspect

    kwargs = getattr(model, "arch_kwargs", {})
    defaults = {k: p.default for k, p in inspect.signature(type(model)).parameters.items()}
    extra = [f"{k}={v}" for k, v in kwargs.items() if defaults.get(k) != v]
    return name + (":" + ",".join(extra) if extra else "")


def default_model_path() -> Path:
    """Path of the embedded PaperCNN state_dict trained on MNIST (see ``assets/README.md``)."""
    return Path(str(resources.files("snnbalance") / "assets" / DEFAULT_MODEL_ASSET))


def load_default_model() -> PaperCNN:
    """The embedded MNIST PaperCNN, in eval mode.

    Raises:
        SnnBalanceError: the asset is missing from the installation.
    """
    import torch

    from .errors import SnnBalanceError

    path = default_model_path()
    if not path.is_file():
        raise SnnBalanceError(f"the embedded model {path} is missing; reinstall snnbalance")
    model = PaperCNN()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def recorded_arch(model_path) -> str | None:
    """The built-in arch spec in the JSON record ``snnbalance train`` writes next to a model file.

    Only built-in names are taken (:func:`is_arch_spec`): a ``module:Class`` read from a file next
    to the model would run code the user never named.
    """
    import json

    record = Path(model_path).with_suffix(".json")
    if record == Path(model_path) or not record.is_file():
        return None
    try:
        arch = json.loads(record.read_text()).get("arch")
    except (OSError, ValueError, AttributeError):
        return None
    return arch if isinstance(arch, str) and is_arch_spec(arch) else None

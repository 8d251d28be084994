"""The two networks of Diehl et al. (2015), built to convert: ReLU, no biases, average pooling.

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

DEFAULT_MODEL_ASSET = "mnist_cnn.pt"


class PaperMLP(nn.Sequential):
    """784-1200-1200-10 fully connected ReLU network without biases.

    Args:
        input_dropout: dropout on the pixels during training.
        hidden_dropout: dropout after each hidden ReLU during training.
    """

    def __init__(self, input_dropout: float = 0.2, hidden_dropout: float = 0.5) -> None:
        super().__init__(OrderedDict([
            ("flatten", nn.Flatten()),
            ("drop0", nn.Dropout(input_dropout)),
            ("fc1", nn.Linear(784, 1200, bias=False)),
            ("relu1", nn.ReLU()),
            ("drop1", nn.Dropout(hidden_dropout)),
            ("fc2", nn.Linear(1200, 1200, bias=False)),
            ("relu2", nn.ReLU()),
            ("drop2", nn.Dropout(hidden_dropout)),
            ("fc3", nn.Linear(1200, 10, bias=False)),
        ]))


class PaperCNN(nn.Sequential):
    """28x28-12c5-2s-64c5-2s-10 convolutional ReLU network without biases.

    Two 5x5 valid convolutions, each followed by ReLU and 2x2 average pooling
    (28 -> 24 -> 12 -> 8 -> 4), then a dense readout from 64*4*4 = 1024 features.

    Args:
        dropout: dropout on the 1024 features before the readout during training; the
            convolutions share few weights and barely overfit, so they get none.
    """

    def __init__(self, dropout: float = 0.5) -> None:
        super().__init__(OrderedDict([
            ("conv1", nn.Conv2d(1, 12, 5, bias=False)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.AvgPool2d(2)),
            ("conv2", nn.Conv2d(12, 64, 5, bias=False)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.AvgPool2d(2)),
            ("flatten", nn.Flatten()),
            ("drop", nn.Dropout(dropout)),
            ("fc", nn.Linear(1024, 10, bias=False)),
        ]))


ARCHS: dict[str, type[nn.Module]] = {"mlp": PaperMLP, "cnn": PaperCNN}


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

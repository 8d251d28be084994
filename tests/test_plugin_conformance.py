"""snnbalance.testing's conformance suite against every registered normalizer and simulator:
the built-ins and whatever plugins are installed (CI installs the ones in plugins/)."""

import importlib.util
import os
from pathlib import Path

import pytest

from snnbalance.plugins import registry
from snnbalance.testing import check_normalizer, check_simulator

ROOT = Path(__file__).resolve().parents[1]
# Options that keep slow normalizers quick on the small reference network.
FAST = {"spikenorm": "steps=30,samples=16"}
FIRST_PARTY = {"robust": "normalizers", "spikenorm": "normalizers", "torch-ref": "simulators"}


@pytest.mark.parametrize("name", sorted(registry().normalizers))
def test_normalizer_conforms(name):
    check_normalizer(name, FAST.get(name))


@pytest.mark.parametrize("name", sorted(registry().simulators))
def test_simulator_conforms_on_cpu(name):
    if "cpu" not in registry().simulators[name].devices:
        pytest.skip(f"{name} does not run on the CPU")
    check_simulator(name, "cpu")


def _cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("name", sorted(k for k, v in registry().simulators.items() if "cuda" in v.devices))
def test_simulator_conforms_on_cuda(name):
    if not _cuda():
        pytest.skip("no CUDA device")
    check_simulator(name, "cuda")


def test_installed_plugins_load_without_problems():
    assert registry().problems == []


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI installs the plugins in plugins/")
@pytest.mark.parametrize("name, kind", sorted(FIRST_PARTY.items()))
def test_first_party_plugins_are_installed_like_third_party_ones(name, kind):
    records = getattr(registry(), kind)
    assert name in records, f"{name} is not installed: see plugins/INSTALL.txt"
    fn = records[name].normalize if kind == "normalizers" else records[name].simulate
    source = Path(importlib.util.find_spec(fn.__module__).origin).resolve()
    assert ROOT / "plugins" not in source.parents, f"{name} is imported from the source tree ({source})"

"""snnbalance.testing's conformance suite against every registered normalizer and simulator:
the built-ins and whatever plugins are installed (CI installs the ones in plugins/)."""

import importlib.metadata
import importlib.util
import os
from pathlib import Path

import pytest

from snnbalance.plugins import registry
from snnbalance.testing import check_normalizer, check_simulator

ROOT = Path(__file__).resolve().parents[1]
# Options that keep slow normalizers quick on the small reference network.
FAST = {"spikenorm": "steps=30,samples=16"}
# record name -> (what it provides, the distribution in plugins/ that provides it)
FIRST_PARTY = {
    "robust": ("normalizers", "snnbalance-robust"),
    "spikenorm": ("normalizers", "snnbalance-spikenorm"),
    "torch-ref": ("simulators", "snnbalance-torchref"),
}


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


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(FIRST_PARTY))
def test_first_party_plugins_are_installed_like_third_party_ones(name):
    kind, dist = FIRST_PARTY[name]
    if not _installed(dist):
        why = f"{dist} is not installed: see plugins/INSTALL.txt"
        if os.environ.get("CI") == "true":  # CI installs them: a missing one is a broken CI setup
            pytest.fail(why)
        pytest.skip(why)
    records = getattr(registry(), kind)
    assert name in records, f"{dist} is installed but {name!r} is not among the {kind}: {registry().problems}"
    fn = records[name].normalize if kind == "normalizers" else records[name].simulate
    source = Path(importlib.util.find_spec(fn.__module__).origin).resolve()
    assert ROOT / "plugins" not in source.parents, f"{name} is imported from the source tree ({source})"

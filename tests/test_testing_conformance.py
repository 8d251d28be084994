"""snnbalance.testing fails a broken plugin even under ``python -O``, which strips bare ``assert``
statements (and pytest does not rewrite them inside an installed library)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Runs in a fresh ``python -O``: registers one broken record per check and reports, as JSON, the
# AssertionError each conformance check raised (None where it passed). No assert statements here:
# -O would strip those too.
SCRIPT = textwrap.dedent("""
    import json
    import sys

    from snnbalance import hookimpl
    from snnbalance.normalize.baseline import baseline
    from snnbalance.plugins import registry
    from snnbalance.records import Balanced, Normalizer, Simulator
    from snnbalance.simulate import simulate
    from snnbalance.testing import check_normalizer, check_simulator


    def mutates_its_input(graph, ctx):
        out = baseline(graph, ctx)
        graph.nodes[0].weight *= 2  # the conformance suite must notice
        return out


    def forgets_a_factor(graph, ctx):
        out = baseline(graph, ctx)
        return Balanced(out.graph, dict(list(out.scale_factors.items())[1:]))


    def one_spike_too_many(graph, x, y, config, progress=None, task="simulate"):
        result = simulate(graph, x, y, config, simulator="numpy", progress=progress, task=task)
        result.spike_counts = {k: v + 1 for k, v in result.spike_counts.items()}
        return result


    def wrong_potentials(graph, x, y, config, progress=None, task="simulate"):
        result = simulate(graph, x, y, config, simulator="numpy", progress=progress, task=task)
        if config.readout == "membrane":
            result.output_counts = result.output_counts + 0.5  # the conformance suite must notice
        return result


    class Broken:
        @hookimpl
        def snnbalance_normalizers(self):
            yield Normalizer("mutates-input", "modifies the graph it is given", mutates_its_input)
            yield Normalizer("missing-factor", "leaves a layer out of scale_factors", forgets_a_factor)

        @hookimpl
        def snnbalance_simulators(self):
            yield Simulator("extra-spike", "counts one spike too many per layer", one_spike_too_many)
            yield Simulator("wrong-potentials", "declares the membrane read-out, gets it wrong", wrong_potentials,
                            readouts=("spikes", "membrane"))


    problems = registry().register(Broken(), name="broken-plugin")
    if problems:
        sys.exit(f"could not register the broken plugin: {problems}")
    found = {"optimized": sys.flags.optimize}
    for name, check in (("mutates-input", check_normalizer), ("missing-factor", check_normalizer),
                        ("extra-spike", check_simulator), ("wrong-potentials", check_simulator),
                        ("baseline", check_normalizer)):
        try:
            check(name)
            found[name] = None
        except AssertionError as exc:
            found[name] = str(exc)
    print(json.dumps(found))
""")


@pytest.fixture(scope="module")
def optimized_run():
    out = subprocess.run([sys.executable, "-O", "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_subprocess_really_runs_optimized(optimized_run):
    assert optimized_run["optimized"] == 1


@pytest.mark.parametrize(
    "name, message",
    [
        ("mutates-input", "normalizer 'mutates-input' modified the graph it was given"),
        (
            "missing-factor",
            "normalizer 'missing-factor': expected scale_factors for each weighted layer ['c1', 'c2', 'd'], found ['c2', 'd']",
        ),
        ("extra-spike", "simulator 'extra-spike' on cpu differs from the NumPy reference on 'integration, reset to zero'"),
        (
            "wrong-potentials",
            "simulator 'wrong-potentials' on cpu: with readout='membrane' the output potentials differ from the NumPy reference",
        ),
    ],
    ids=["mutates-input", "missing-factor", "extra-spike", "wrong-potentials"],
)
def test_a_broken_plugin_fails_its_conformance_check_under_python_O(optimized_run, name, message):
    assert optimized_run[name] is not None, f"{name} passed the conformance check under python -O"
    assert message in optimized_run[name]


def test_a_conforming_plugin_still_passes_under_python_O(optimized_run):
    assert optimized_run["baseline"] is None

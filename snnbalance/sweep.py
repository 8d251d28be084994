"""A grid of conversion jobs that differ only in the initial membrane potential (``--v-init``).

``snnbalance convert --v-init 0 --v-init 0.5`` compares every normalizer at every value on the same
input spikes: one :func:`snnbalance.pipeline.convert` per value, merged into one report whose runs
are labelled ``NAME v_init=F``, so the table, ``results.json`` and the frontier picture show one
line per (normalizer, value).
"""

from __future__ import annotations

import dataclasses

from .pipeline import ConversionReport, ConvertConfig, convert
from .progress import Progress


def run_label(spec: str, v_init: float | None) -> str:
    """How a run of a grid is named: the normalizer spec, then its ``v_init``."""
    return spec if v_init is None else f"{spec} v_init={v_init:g}"


def convert_grid(cfg: ConvertConfig, v_inits: list[float | None], progress: Progress | None = None) -> ConversionReport:
    """Run ``cfg`` once per value of ``v_inits`` and merge the reports.

    Args:
        cfg: the job; its ``sim.v_init`` is replaced by each value in turn.
        v_inits: the values (``None``: each layer's own, as without ``--v-init``); with one value
            this is :func:`convert` with that value and the runs keep their plain names.
        progress: as for :func:`convert`; cancelling stops the grid after the current run.
    Returns:
        The first job's report holding every job's runs (each run's ``v_init`` attribute says
        which value it ran with), in the order value by value, normalizer by normalizer.
    """
    values = list(dict.fromkeys(v_inits)) or [cfg.sim.v_init]
    merged: ConversionReport | None = None
    for v in values:
        job = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, v_init=v))
        report = convert(job, progress)
        for run in report.runs:
            run.v_init = v
            if len(values) > 1:
                run.normalizer = run_label(run.normalizer, v)
        if merged is None:
            merged = report
        else:
            merged.runs += report.runs
            merged.wall_seconds += report.wall_seconds
            merged.cancelled = report.cancelled
        if report.cancelled:
            break
    return merged


__all__ = ["convert_grid", "run_label"]

"""Experiments: sweeps over config grids and seeds, and presets that reproduce published tables.

``sweep`` trains (and optionally evaluates) one run directory per grid point and seed, resumably,
in a local process pool or on Ray, and aggregates mean and std over seeds. ``reproduce`` builds
such sweeps from declarative presets (Kim, Gupta, Zou et al.) at three scales and puts our numbers
beside the papers'.
"""

from __future__ import annotations

from rlrobust.experiments.sweep import (
    SweepPoint,
    SweepSpec,
    aggregate,
    expand_points,
    parse_grid,
    plot_heatmap,
    run_sweep,
    set_option,
)

__all__ = [
    "SweepPoint",
    "SweepSpec",
    "aggregate",
    "expand_points",
    "parse_grid",
    "plot_heatmap",
    "run_sweep",
    "set_option",
]

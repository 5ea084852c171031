"""One colour per run in every panel of a report.

matplotlib hands out colours per axes in plotting order, so a run that is missing from one panel
(no diagnostics, no eps curve) would shift every later run to another colour there, and the
reader would match the wrong lines. The report therefore fixes a ``run name -> colour`` map once,
from the order the runs were given, and every figure draws each run in its colour. Several
evaluation records of one run (``evaluation``, ``standard``, ...) share the run's colour and
differ by hatch (bars) or line style and marker (curves).
"""

from __future__ import annotations

from matplotlib import colormaps
from matplotlib.colors import to_hex

HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "++", "--")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def run_colours(names: list[str]) -> dict[str, str]:
    """``name -> '#rrggbb'``: tab10 for the first ten runs, then the lighter tab20 shades, then
    evenly spaced hues; the same names in the same order always get the same colours."""
    palette = [to_hex(c) for c in colormaps["tab10"].colors]
    palette += [to_hex(c) for c in colormaps["tab20"].colors[1::2]]
    unique = list(dict.fromkeys(names))
    extra = len(unique) - len(palette)
    if extra > 0:
        hsv = colormaps["hsv"]
        palette += [to_hex(hsv(i / extra)) for i in range(extra)]
    return {name: palette[i] for i, name in enumerate(unique)}


def variant_styles(keys: list[tuple[str, str]], colours: dict[str, str]) -> dict[tuple, dict]:
    """``(run, record) -> {color, hatch, linestyle, marker}``: the run's colour, and for its
    second, third ... record another hatch, line style and marker."""
    styles: dict[tuple, dict] = {}
    seen: dict[str, int] = {}
    for run, record in keys:
        k = seen.get(run, 0)
        seen[run] = k + 1
        styles[(run, record)] = {
            "color": colours[run],
            "hatch": HATCHES[k % len(HATCHES)],
            "linestyle": LINESTYLES[k % len(LINESTYLES)],
            "marker": MARKERS[k % len(MARKERS)],
        }
    return styles

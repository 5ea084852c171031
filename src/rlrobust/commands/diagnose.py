"""``rlrobust diagnose``: why is it robust? Masking checks, gradients, entropy, landscapes,
sharpness, measured on one or more runs and drawn side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlrobust.commands.common import make_logger
from rlrobust.errors import RLRobustError

NAME = "diagnose"
PART_HELP = {
    "masking": "gradient-masking checks and a verdict (docs/masking_flags.md)",
    "gradients": "static and dynamic input-gradient indicators (Zou et al.)",
    "entropy": "predictive entropy on clean and PGD inputs",
    "landscape": "weight-space (Kim Eq. 30; see --landscape-directions) and input-space loss "
    "landscapes",
    "sharpness": "top Hessian eigenvalue and Hessian trace",
}


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        NAME,
        help="why is it robust: masking checks, gradient indicators, entropy, landscapes, sharpness",
        description="Measure each indicator on one or more runs and draw them side by side. "
        f"With no part selected, all parts run. Parts: {', '.join(PART_HELP)}.",
    )
    parser.add_argument("runs", nargs="+", help="run directories written by `rlrobust train`")
    for part, text in PART_HELP.items():
        parser.add_argument(f"--{part}", action="store_true", help=text)
    parser.add_argument(
        "--eps", type=float, required=True, help="threat-model radius, e.g. 0.1 (MNIST)"
    )
    parser.add_argument(
        "--norm", default="linf", choices=["linf", "l2"], help="threat model (default: linf)"
    )
    parser.add_argument(
        "--n-examples", type=int, default=500, help="test images to use (default: 500)"
    )
    parser.add_argument(
        "--landscape-points",
        type=int,
        default=21,
        help="grid points per landscape axis (default: 21; Kim used 50)",
    )
    parser.add_argument(
        "--landscape-directions",
        default="filter_normalized",
        choices=["filter_normalized", "gaussian"],
        help="random weight directions: filter_normalized (Li et al. 2018, the default) or "
        "gaussian (plain standard Gaussian, as Kim Eq. 30 states); records and figures say which",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for points, directions and noise")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument(
        "--out",
        help="folder for the combined record and figures "
        "(default: diagnostics/ beside the first run)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace earlier diagnostics: each run's diagnostics.json and the --out folder's "
        "records and figures (removed first, so no stale figure survives)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


#: what diagnose writes into --out besides the figures its diagnostics.md names
OUT_RECORDS = ("diagnostics.json", "diagnostics.md")


def check_arguments(args: argparse.Namespace, parts: list[str]) -> None:
    """Every argument checked before any model is loaded or measured."""
    import math

    if not math.isfinite(args.eps) or args.eps <= 0:
        raise RLRobustError(
            f"--eps must be a radius > 0, got {args.eps:g}; e.g. --eps 0.1 for MNIST (linf)"
        )
    if args.norm == "linf" and args.eps > 1:
        raise RLRobustError(
            f"--eps {args.eps:g} is larger than the whole pixel range: linf eps is in pixel "
            f"units of [0, 1] images, e.g. 0.1 (MNIST) or 8/255 = 0.0314 (did you mean "
            f"{args.eps:g}/255 = {args.eps / 255:.4f}?)"
        )
    if args.n_examples < 1:
        raise RLRobustError(f"--n-examples must be at least 1, got {args.n_examples}")
    if "landscape" in parts and args.landscape_points < 3:
        raise RLRobustError(
            f"--landscape-points must be at least 3 (a centre and a point either side, for the "
            f"curvature at the minimum), got {args.landscape_points}"
        )
    names = [Path(run).name for run in args.runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RLRobustError(
            f"two runs are named {', '.join(twice)}: the combined record keys runs by folder "
            "name, so one would hide the other; diagnose them separately (different --out)"
        )
    for run_path in args.runs:
        if not (Path(run_path) / "config.json").is_file():
            raise RLRobustError(f"{run_path} is not a run directory (no config.json)")


def earlier_outputs(out: Path, runs: list[str], overwrite: bool) -> list[Path]:
    """Earlier diagnostics that this call would overwrite: refused without --overwrite."""
    import re

    from rlrobust.outputs import claim_outputs

    old_md = out / "diagnostics.md"
    figures = re.findall(r"\]\(([^)/]+\.png)\)", old_md.read_text()) if old_md.is_file() else []
    stale = claim_outputs(out, [*OUT_RECORDS, *figures], overwrite, "`rlrobust diagnose`")
    for run in runs:  # each run's own record is rewritten in place
        claim_outputs(run, ["diagnostics.json"], overwrite, "`rlrobust diagnose`")
    return stale


def run(args: argparse.Namespace) -> int:
    from rlrobust.devices import resolve_device
    from rlrobust.diagnostics.analysis import PARTS, analyse, plot_analysis, summary_table
    from rlrobust.files import atomic_write_json, atomic_write_text
    from rlrobust.outputs import remove_outputs
    from rlrobust.runs import load_run, saved_config

    parts = [part for part in PARTS if getattr(args, part)] or list(PARTS)
    check_arguments(args, parts)
    out = Path(args.out) if args.out else Path(args.runs[0]).parent / "diagnostics"
    stale = earlier_outputs(out, args.runs, args.overwrite)
    device = resolve_device(args.device)
    log = make_logger(args)
    records = {}
    for run_path in args.runs:
        run_dir = Path(run_path)
        cfg = saved_config(run_dir)
        cfg.eval.n_examples = args.n_examples
        loaded = load_run(run_dir, cfg, device="cpu")
        test = loaded.test
        log(f"diagnosing {run_dir.name} on {len(test)} images: {', '.join(parts)}")
        record = analyse(
            loaded.model,
            test,
            eps=args.eps,
            norm=args.norm,
            parts=parts,
            training_loss=(cfg.objective.name, cfg.objective.options),
            landscape_points=args.landscape_points,
            landscape_directions=args.landscape_directions,
            seed=args.seed,
            device=device,
            log=log,
        )
        atomic_write_json(run_dir / "diagnostics.json", record)
        records[run_dir.name] = record
    remove_outputs(stale)  # the earlier figures: a part not measured now leaves none behind
    atomic_write_json(out / "diagnostics.json", records)
    figures = plot_analysis(records, out)
    table = summary_table(records)
    atomic_write_text(
        out / "diagnostics.md",
        "\n".join(
            ["# Diagnostics", "", table, "", *[f"![{p.stem}]({p.name})" for p in figures], ""]
        ),
    )
    log(table)
    log(f"figures and records in {out}")
    return 0

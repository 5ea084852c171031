"""Command line: ``rlrobust train | evaluate | diagnose | attack | report | sweep | reproduce | demo``.

Every config field is an option (``--train.epochs 5``, ``--objective.options '{"lam": 1.5}'``),
documented from the config's own help texts, so ``--help`` always matches the code.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path

from rlrobust.attacks.rlab.command import add_rlab_parser, cmd_attack
from rlrobust.config import RunConfig, iter_fields, load_config, set_by_path, validate
from rlrobust.errors import RLRobustError

TRAIN_EPILOG = """examples:
  rlrobust train --data.name mnist --model.name lenet5 --train.epochs 10 --out runs/ce
  rlrobust train --config kim.json --objective.options '{"lam": 1.5, "action": "greedy"}' --out runs/kim
  rlrobust train --out runs/kim --resume          # continue an interrupted run
"""

EVALUATE_EPILOG = """examples:
  rlrobust evaluate runs/ce
  rlrobust evaluate runs/ce --name standard --eval.preset standard --eval.eps 0.3 --eval.n_examples 1000
  rlrobust evaluate runs/kim --eval.preset quick --eval.eps 0.1 --eval.surrogate runs/ce --eval.masking
  rlrobust evaluate runs/kim --eval.eps_curve '[0.05, 0.1, 0.2, 0.3]' --eval.attacks '[]'
  rlrobust evaluate --model mypkg.models:build --weights w.safetensors --data.name mnist \\
      --eval.preset standard --eval.eps 0.3 --out results/mine
  rlrobust evaluate runs/ce --eval.attacks '[{"name": "pgd", "settings": {"eps": 0.3, "steps": 100}}]'
"""


SWEEP_EPILOG = """examples:
  rlrobust sweep --data.name digits --model.name mlp --train.epochs 5 \\
      --grid 'optim.lr=[0.1, 0.01]' --seeds 0,1,2 --evaluate --out sweeps/lr
  rlrobust sweep --config kim.json --grid 'two_stage.warmup_options.lam=[0.25, 0.75]' \\
      --grid 'objective.options.lam=[0.75, 1.5]' --evaluate --jobs 4 --out sweeps/kim-lambda
"""


def _type_name(annotation) -> str:
    options = [a for a in (typing.get_args(annotation) or (annotation,)) if a is not type(None)]
    return "/".join(getattr(a, "__name__", str(a)) for a in options)


def add_config_options(parser: argparse.ArgumentParser, sections: set[str] | None = None) -> None:
    """One ``--section.field`` option per config field; only options given become overrides."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for key, annotation, default, help_text in iter_fields(RunConfig):
        section = key.split(".")[0]
        if sections is not None and key not in sections and section not in sections:
            continue
        group = groups.setdefault(section, parser.add_argument_group(f"{section} options"))
        shown = json.dumps(default) if isinstance(default, (dict, list)) else default
        kwargs = {"nargs": "?", "const": "true"} if annotation is bool else {}
        group.add_argument(
            f"--{key}",
            dest=key,
            default=argparse.SUPPRESS,
            metavar=_type_name(annotation).upper(),
            help=(
                help_text if "default" in help_text else f"{help_text} (default: {shown})"
            ).replace("%", "%%"),
            **kwargs,
        )


def overrides_from(args: argparse.Namespace) -> dict:
    return {key: value for key, value in vars(args).items() if "." in key}


def progress_enabled(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def make_logger(args: argparse.Namespace):
    return (lambda *_: None) if args.quiet else print


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlrobust",
        description="Train image classifiers with policy-gradient objectives and evaluate their "
        "adversarial robustness.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train",
        help="train a model",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "--config", help="JSON or TOML config file; command-line options override it"
    )
    train.add_argument(
        "--out", help="run directory to create (default: runs/DATA-MODEL-OBJECTIVE-sSEED)"
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run in --out from its last complete epoch",
    )
    train.add_argument(
        "--evaluate",
        action="store_true",
        help="after training, run the attacks of the eval section and write evaluation.json",
    )
    train.add_argument(
        "--list",
        action="store_true",
        help="list the available data sets, models, objectives and attacks, then exit",
    )
    train.add_argument(
        "--quiet", action="store_true", help="print nothing but errors; no progress bars"
    )
    add_config_options(train)

    evaluate = sub.add_parser(
        "evaluate",
        help="attack a trained run (or any model) and write its evaluation record",
        epilog=EVALUATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("run", nargs="?", help="run directory written by `rlrobust train`")
    evaluate.add_argument(
        "--model",
        help="bring your own model: MODULE:FUNCTION that returns an nn.Module taking [0, 1] images "
        "and returning logits (called without arguments); use with --data.name and --out",
    )
    evaluate.add_argument("--weights", help="safetensors weights to load into --model")
    evaluate.add_argument(
        "--out", help="result folder for --model (default for runs: the run directory)"
    )
    evaluate.add_argument(
        "--name",
        default="evaluation",
        help="base name of the result files (default: evaluation)",
    )
    evaluate.add_argument(
        "--overwrite", action="store_true", help="replace existing result files of that name"
    )
    evaluate.add_argument(
        "--quiet", action="store_true", help="print nothing but errors; no progress bars"
    )
    add_config_options(
        evaluate, {"eval", "data.name", "data.data_dir", "data.eval_batch_size", "train.device"}
    )

    diagnose = sub.add_parser(
        "diagnose",
        help="why is it robust: masking checks, gradient indicators, entropy, landscapes, sharpness",
        description="Measure each indicator on one or more runs and draw them side by side. "
        "With no part selected, all parts run.",
    )
    diagnose.add_argument("runs", nargs="+", help="run directories written by `rlrobust train`")
    for part, text in [
        ("masking", "gradient-masking checks and a verdict (docs/masking_flags.md)"),
        ("gradients", "static and dynamic input-gradient indicators (Zou et al.)"),
        ("entropy", "predictive entropy on clean and PGD inputs"),
        (
            "landscape",
            "weight-space (filter-normalised, Kim Eq. 30) and input-space loss landscapes",
        ),
        ("sharpness", "top Hessian eigenvalue and Hessian trace"),
    ]:
        diagnose.add_argument(f"--{part}", action="store_true", help=text)
    diagnose.add_argument(
        "--eps", type=float, required=True, help="threat-model radius, e.g. 0.1 (MNIST)"
    )
    diagnose.add_argument(
        "--norm", default="linf", choices=["linf", "l2"], help="threat model (default: linf)"
    )
    diagnose.add_argument(
        "--n-examples", type=int, default=500, help="test images to use (default: 500)"
    )
    diagnose.add_argument(
        "--landscape-points",
        type=int,
        default=21,
        help="grid points per landscape axis (default: 21; Kim used 50)",
    )
    diagnose.add_argument(
        "--seed", type=int, default=0, help="seed for points, directions and noise"
    )
    diagnose.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    diagnose.add_argument(
        "--out",
        help="folder for the combined record and figures "
        "(default: diagnostics/ beside the first run)",
    )
    diagnose.add_argument("--quiet", action="store_true", help="print nothing but errors")

    report = sub.add_parser(
        "report",
        help="HTML page and markdown from the records of runs or sweeps (nothing is rerun)",
    )
    report.add_argument(
        "runs", nargs="+", metavar="RUN_OR_SWEEP", help="run directories or sweep folders"
    )
    report.add_argument(
        "--out",
        help="folder for report.html, report.md, figures/ (default: report/ beside the first)",
    )

    sweep = sub.add_parser(
        "sweep",
        help="train (and evaluate) a grid of configs x seeds, resumably; mean ± std over seeds",
        epilog=SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument(
        "--config", help="base JSON or TOML config; --section.key options override it"
    )
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=JSON_LIST",
        help="a config key and its values (repeatable: the cartesian product); keys may go "
        "inside option dicts, e.g. objective.options.lam=[0.5,1.5]",
    )
    sweep.add_argument("--seeds", default="0", help="seeds, comma-separated (default: 0)")
    sweep.add_argument("--out", required=True, help="sweep directory (rerun it to resume)")
    sweep.add_argument(
        "--evaluate", action="store_true", help="attack every run as its eval section says"
    )
    sweep.add_argument(
        "--backend", default="local", choices=["local", "ray"], help="local process pool or Ray"
    )
    sweep.add_argument(
        "--jobs", type=int, default=None, help="parallel runs (default: the number of cores)"
    )
    sweep.add_argument("--address", help="ray only: address of a running Ray cluster")
    sweep.add_argument("--quiet", action="store_true", help="print nothing but errors")
    add_config_options(sweep)

    reproduce = sub.add_parser(
        "reproduce",
        help="rerun a paper's table (Kim, Gupta, Zou et al.) and put our numbers beside theirs",
    )
    reproduce.add_argument("preset", help="kim-mnist, kim-lambda, gupta-fgsm-at, zou or kim-trades")
    reproduce.add_argument(
        "--scale",
        default="smoke",
        choices=["smoke", "laptop", "paper"],
        help="smoke: digits + MLP in seconds; laptop: MNIST LeNet5, a few epochs; paper: the "
        "paper's data, model, epochs and attacks (default: smoke)",
    )
    reproduce.add_argument("--out", help="output folder (default: reproduce/PRESET-SCALE)")
    reproduce.add_argument("--jobs", type=int, default=1, help="parallel runs (default: 1)")
    reproduce.add_argument(
        "--backend", default="local", choices=["local", "ray"], help="local process pool or Ray"
    )
    reproduce.add_argument("--address", help="ray only: address of a running Ray cluster")
    reproduce.add_argument("--quiet", action="store_true", help="print nothing but errors")

    attack = sub.add_parser(
        "attack",
        help="run a stand-alone attack experiment on a trained run (rlab)",
        description="Stand-alone attack experiments with their own outputs; the eps-bounded "
        "attacks (FGSM, PGD, AutoAttack, Square, transfer) run through `rlrobust evaluate`.",
    )
    attack_sub = attack.add_subparsers(dest="attack", metavar="ATTACK", required=True)
    add_rlab_parser(attack_sub)

    demo = sub.add_parser(
        "demo", help="offline demo on scikit-learn's digits: CE vs policy, FGSM and PGD"
    )
    demo.add_argument(
        "--out", default="rlrobust-demo", help="output directory (default: rlrobust-demo)"
    )
    demo.add_argument(
        "--epochs", type=int, default=None, help="training epochs per model (default: 30)"
    )
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    demo.add_argument(
        "--quiet", action="store_true", help="print nothing but errors; no progress bars"
    )
    return parser


def cmd_list() -> int:
    import rlrobust.attacks  # noqa: F401 - registration
    import rlrobust.data  # noqa: F401
    import rlrobust.models  # noqa: F401
    import rlrobust.objectives  # noqa: F401
    from rlrobust.registry import ATTACKS, DATASETS, MODELS, OBJECTIVES

    for registry in (DATASETS, MODELS, OBJECTIVES, ATTACKS):
        print(f"{registry.kind}s: {', '.join(registry.names())}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rlrobust.training.run import saved_config, train_run

    if args.list:
        return cmd_list()
    overrides = overrides_from(args)
    if args.resume:
        if not args.out:
            raise RLRobustError("--resume needs --out RUN_DIR: the run directory to continue")
        if args.config or overrides:
            raise RLRobustError(
                "--resume continues with the run's saved config.json; drop --config and the "
                "--section.key options (or start a new run in another --out)"
            )
        cfg = saved_config(Path(args.out))
    else:
        cfg = load_config(args.config, overrides)
    out = Path(
        args.out or f"runs/{cfg.data.name}-{cfg.model.name}-{cfg.objective.name}-s{cfg.train.seed}"
    )
    log = make_logger(args)
    log(f"training into {out}")
    state = train_run(cfg, out, resume=args.resume, progress=progress_enabled(args), log=log)
    log(f"finished {state['epoch']} epochs; weights in {out / 'model.safetensors'}")
    if args.evaluate:
        return cmd_evaluate(
            argparse.Namespace(
                run=str(out),
                model=None,
                weights=None,
                out=None,
                name="evaluation",
                overwrite=False,
                quiet=args.quiet,
            )
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rlrobust.evaluation.report import write_evaluation
    from rlrobust.evaluation.suite import run_suite_for_config
    from rlrobust.training.setup import load_test_split, resolve_device

    cfg, model, out = evaluation_target(args)
    outputs = [out / f"{args.name}{suffix}" for suffix in (".json", ".md", "-per-sample.json")]
    if not args.overwrite and any(p.exists() for p in outputs):
        raise RLRobustError(
            f"{outputs[0]} already exists; pass --name NEW_NAME to keep both, or --overwrite to replace it"
        )
    device = resolve_device(cfg.train.device)
    test = load_test_split(cfg)
    model = model.to(device)
    log = make_logger(args)
    log(f"evaluating {args.run or args.model} on {len(test)} {cfg.data.name} test images")
    result = run_suite_for_config(model, test, cfg, device=device, progress=progress_enabled(args))
    table = write_evaluation(
        out, args.name, result, cfg, title=Path(args.run).name if args.run else args.model
    )
    log(table)
    if not result["evaluation"]["audit_passed"]:
        print(f"WARNING: the constraint audit failed; see {outputs[0]}", file=sys.stderr)
        return 3
    return 0


def evaluation_target(args: argparse.Namespace):
    """(config, model, output folder) for a run directory or a user's MODULE:FUNCTION."""
    from rlrobust.models.external import load_model_function
    from rlrobust.training.checkpoint import load_weights
    from rlrobust.training.run import saved_config
    from rlrobust.training.setup import load_test_split, model_for

    overrides = overrides_from(args)
    if (args.run is None) == (args.model is None):
        raise RLRobustError("give either a run directory or --model MODULE:FUNCTION (not both)")
    if args.model is not None:
        if not args.out:
            raise RLRobustError("--model needs --out DIR: the folder for the result files")
        cfg = load_config(overrides=overrides)
        model = load_model_function(args.model)
        if args.weights:
            load_weights(model, args.weights)
        return cfg, model, Path(args.out)
    run_dir = Path(args.run)
    if not (run_dir / "config.json").is_file():
        raise RLRobustError(
            f"{run_dir} is not a run directory (no config.json); give the --out of `rlrobust train`"
        )
    if args.weights:
        raise RLRobustError(
            "--weights goes with --model; a run directory brings its own model.safetensors"
        )
    cfg = saved_config(run_dir)
    if "data.name" in overrides and overrides["data.name"] != cfg.data.name:
        raise RLRobustError(f"{run_dir} was trained on {cfg.data.name}; drop --data.name")
    for key, value in overrides.items():
        set_by_path(cfg, key, value)
    validate(cfg)
    test = load_test_split(cfg)
    model = load_weights(model_for(cfg.model, test), run_dir / "model.safetensors")
    return cfg, model, Path(args.out) if args.out else run_dir


def cmd_diagnose(args: argparse.Namespace) -> int:
    from rlrobust.diagnostics.analysis import PARTS, analyse, plot_analysis, summary_table
    from rlrobust.files import atomic_write_json, atomic_write_text
    from rlrobust.training.checkpoint import load_weights
    from rlrobust.training.run import saved_config
    from rlrobust.training.setup import load_test_split, model_for, resolve_device

    parts = [part for part in PARTS if getattr(args, part)] or list(PARTS)
    device = resolve_device(args.device)
    log = make_logger(args)
    records = {}
    for run in args.runs:
        run_dir = Path(run)
        if not (run_dir / "config.json").is_file():
            raise RLRobustError(f"{run_dir} is not a run directory (no config.json)")
        cfg = saved_config(run_dir)
        cfg.eval.n_examples = args.n_examples
        test = load_test_split(cfg)
        model = load_weights(model_for(cfg.model, test), run_dir / "model.safetensors")
        log(f"diagnosing {run_dir.name} on {len(test)} images: {', '.join(parts)}")
        record = analyse(
            model,
            test,
            eps=args.eps,
            norm=args.norm,
            parts=parts,
            training_loss=(cfg.objective.name, cfg.objective.options),
            landscape_points=args.landscape_points,
            seed=args.seed,
            device=device,
            log=log,
        )
        atomic_write_json(run_dir / "diagnostics.json", record)
        records[run_dir.name] = record
    out = Path(args.out) if args.out else Path(args.runs[0]).parent / "diagnostics"
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


def cmd_demo(args: argparse.Namespace) -> int:
    from rlrobust.demo import run_demo

    run_demo(
        Path(args.out),
        epochs=args.epochs,
        overwrite=args.overwrite,
        progress=progress_enabled(args),
        log=make_logger(args),
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rlrobust.reporting.run_report import build_report

    out = Path(args.out) if args.out else Path(args.runs[0]).resolve().parent / "report"
    written = build_report(args.runs, out)
    print(f"report: {written['html']} and {written['markdown']}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import os

    from rlrobust.experiments.sweep import SweepSpec, parse_grid, parse_seeds, run_sweep

    base = load_config(args.config, overrides_from(args)).to_dict()
    spec = SweepSpec(
        base=base, grid=parse_grid(args.grid), seeds=parse_seeds(args.seeds), evaluate=args.evaluate
    )
    jobs = args.jobs or os.cpu_count() or 1
    run_sweep(
        spec,
        Path(args.out),
        jobs=jobs,
        backend=args.backend,
        address=args.address,
        log=make_logger(args),
    )
    return _sweep_status(Path(args.out), args)


def _sweep_status(out: Path, args: argparse.Namespace) -> int:
    manifest = json.loads((out / "sweep.json").read_text())
    failed = [slug for slug, p in manifest["points"].items() if p.get("status") == "failed"]
    if failed:
        print(
            f"{len(failed)} point(s) failed: {', '.join(failed)}; see {out / 'sweep.json'}; "
            "rerun the same command to retry them",
            file=sys.stderr,
        )
        return 1
    make_logger(args)(f"summary in {out / 'summary.md'}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from rlrobust.experiments.reproduce import reproduce

    out = Path(args.out or f"reproduce/{args.preset}-{args.scale}")
    reproduce(
        args.preset,
        args.scale,
        out,
        jobs=args.jobs,
        backend=args.backend,
        address=args.address,
        log=make_logger(args),
    )
    status = _sweep_status(out, args)
    make_logger(args)(f"report in {out / 'reproduce.md'}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "diagnose": cmd_diagnose,
        "report": cmd_report,
        "sweep": cmd_sweep,
        "reproduce": cmd_reproduce,
        "demo": cmd_demo,
        "attack": cmd_attack,
    }
    try:
        return handlers[args.command](args)
    except RLRobustError as error:
        print(f"rlrobust {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

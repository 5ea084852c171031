"""Command line: ``rlrobust train | evaluate | demo``.

Every config field is an option (``--train.epochs 5``, ``--objective.options '{"lam": 1.5}'``),
documented from the config's own help texts, so ``--help`` always matches the code.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path

from rlrobust.config import RunConfig, iter_fields, load_config, set_by_path, validate
from rlrobust.errors import RLRobustError

TRAIN_EPILOG = """examples:
  rlrobust train --data.name mnist --model.name lenet5 --train.epochs 10 --out runs/ce
  rlrobust train --config kim.json --objective.options '{"lam": 1.5, "action": "greedy"}' --out runs/kim
  rlrobust train --out runs/kim --resume          # continue an interrupted run
"""

EVALUATE_EPILOG = """examples:
  rlrobust evaluate runs/ce
  rlrobust evaluate runs/ce --eval.attacks '[{"name": "pgd", "settings": {"eps": 0.3, "steps": 100}}]'
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
        help="attack a trained run and write its evaluation record",
        epilog=EVALUATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("run", help="run directory written by `rlrobust train`")
    evaluate.add_argument(
        "--name",
        default="evaluation",
        help="base name of the result files in the run directory (default: evaluation)",
    )
    evaluate.add_argument(
        "--overwrite", action="store_true", help="replace existing result files of that name"
    )
    evaluate.add_argument(
        "--quiet", action="store_true", help="print nothing but errors; no progress bars"
    )
    add_config_options(evaluate, {"eval", "data.data_dir", "data.eval_batch_size", "train.device"})

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
        return run_evaluation(out, {}, "evaluation", False, args)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    return run_evaluation(Path(args.run), overrides_from(args), args.name, args.overwrite, args)


def run_evaluation(run_dir: Path, overrides: dict, name: str, overwrite: bool, args) -> int:
    from rlrobust.evaluation.protocol import evaluate, markdown_table
    from rlrobust.files import atomic_write_json, atomic_write_text
    from rlrobust.reporting.report import attack_settings_lines
    from rlrobust.training.checkpoint import load_weights
    from rlrobust.training.run import saved_config
    from rlrobust.training.setup import load_splits, model_for, resolve_device

    if not (run_dir / "config.json").is_file():
        raise RLRobustError(
            f"{run_dir} is not a run directory (no config.json); give the --out of `rlrobust train`"
        )
    outputs = [run_dir / f"{name}{suffix}" for suffix in (".json", ".md", "-per-sample.json")]
    if not overwrite and any(p.exists() for p in outputs):
        raise RLRobustError(
            f"{outputs[0]} already exists; pass --name NEW_NAME to keep both, or --overwrite to replace it"
        )
    cfg = saved_config(run_dir)
    for key, value in overrides.items():
        set_by_path(cfg, key, value)
    validate(cfg)
    device = resolve_device(cfg.train.device)
    splits = load_splits(cfg.data, cfg.train.seed)
    test = splits.test
    if cfg.eval.n_examples is not None:
        test = test.take(min(cfg.eval.n_examples, len(test)), cfg.eval.seed)
    model = load_weights(model_for(cfg.model, test), run_dir / "model.safetensors").to(device)
    log = make_logger(args)
    log(f"evaluating {run_dir} on {len(test)} {cfg.data.name} test images")
    record = evaluate(
        model,
        test,
        cfg.eval.attacks,
        batch_size=cfg.data.eval_batch_size,
        device=device,
        cascade=cfg.eval.cascade,
        progress=progress_enabled(args),
    )
    per_sample = record.pop("per_sample")
    record["config"] = cfg.to_dict()
    atomic_write_json(outputs[2], per_sample)
    atomic_write_json(outputs[0], record)
    table = markdown_table({run_dir.name: record})
    atomic_write_text(
        outputs[1],
        "\n".join(
            [f"# Evaluation of {run_dir.name}", "", table, "", *attack_settings_lines(record), ""]
        ),
    )
    log(table)
    if not record["audit_passed"]:
        print(
            "WARNING: the constraint audit failed; see the audit entries in " + str(outputs[0]),
            file=sys.stderr,
        )
        return 3
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "demo": cmd_demo}
    try:
        return handlers[args.command](args)
    except RLRobustError as error:
        print(f"rlrobust {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

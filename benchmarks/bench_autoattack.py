"""Our AutoAttack path against calling pyautoattack directly.

Both run the same AutoAttack configuration with the same seed on the same model and test
batch: an MLP trained for a few epochs on the offline ``digits`` data set (8x8 images, so even
the slower attacks finish quickly). Ours is ``build_attack("autoattack", ...)`` called as
``attack(model, x, y)``; theirs is ``pyautoattack.AutoAttack(...).run_standard_evaluation``.
The default is ``--version custom --attacks apgd-ce apgd-t`` (the standard version's Square
attack runs 5000 queries per robust point: minutes on a laptop CPU; ask for it with
``--version standard``).

Ratio: their_time / our_time; target >= 0.95 (the adapter adds at most 5 %). Each RESULT line
also reports how many pixels of the two outputs differ and both robust accuracies.
Prints "not yet available" and exits 0 while ``rlrobust.attacks.autoattack`` does not exist.
"""

from __future__ import annotations

import importlib.util
import sys

import torch
from common import (
    build_base_parser,
    finish,
    milliseconds,
    print_environment,
    report,
    resolve_args,
    time_interleaved,
)

TARGET = ">=0.95"
MODULE = "rlrobust.attacks.autoattack"
NORMS = {"linf": "Linf", "l2": "L2"}  # our names -> pyautoattack's


def build_parser():
    parser = build_base_parser(__doc__.split("\n\n")[0], repeats=3, warmup=1)
    parser.add_argument("--n", type=int, default=64, help="test images attacked")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--norm", default="linf", choices=sorted(NORMS))
    parser.add_argument("--version", default="custom", choices=("custom", "standard"))
    parser.add_argument("--attacks", nargs="+", default=["apgd-ce", "apgd-t"])
    parser.add_argument("--epochs", type=int, default=5, help="training epochs of the MLP")
    parser.add_argument("--batch-size", type=int, default=250, help="pyautoattack's batch size")
    return parser


def trained_digits_mlp(seed: int, epochs: int, device: torch.device):
    """An MLP after ``epochs`` of cross-entropy on digits/train, in eval mode, and digits/test."""
    from rlrobust.data import BatchLoader, load_dataset
    from rlrobust.models import build_model
    from rlrobust.objectives import cross_entropy_loss
    from rlrobust.training.loop import train_one_epoch

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    torch.manual_seed(seed)
    channels, size, _ = train.shape
    model = build_model(
        "mlp", num_classes=10, in_channels=channels, image_size=size, mean=train.mean, std=train.std
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = BatchLoader(train, 64, shuffle=True, seed=seed, device=device)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        train_one_epoch(
            model, loader, lambda z, y, generator=None: cross_entropy_loss(z, y), optimizer
        )
    return model.eval(), test


def main() -> int:
    args = resolve_args(build_parser().parse_args(), quick_repeats=1)
    if importlib.util.find_spec(MODULE) is None:
        print(f"# autoattack: not yet available ({MODULE} does not exist)")
        print("RESULT name=autoattack_vs_pyautoattack ratio=nan status=not_yet_available")
        return 0
    from pyautoattack import AutoAttack

    from rlrobust.attacks import build_attack

    if args.quick:
        args.n, args.epochs, args.version, args.attacks = 4, 1, "custom", ["apgd-ce"]
    # The first AutoAttack call in a process is several times slower than later ones, whoever
    # makes it (pyautoattack's first checks); the warm-up round absorbs it, even with --quick.
    args.warmup = max(args.warmup, 1)
    print_environment(args)
    model, test = trained_digits_mlp(args.seed, args.epochs, args.device)
    x = test.images[: args.n].to(args.device).float() / 255
    y = test.labels[: args.n].to(args.device)
    attacks = args.attacks if args.version == "custom" else None
    settings = {"eps": args.eps, "norm": args.norm, "version": args.version, "seed": args.seed}
    settings["batch_size"] = args.batch_size
    ours = build_attack("autoattack", **settings, **({"attacks": attacks} if attacks else {}))
    theirs = AutoAttack(
        model,
        attacks=attacks,
        device=args.device,
        eps=args.eps,
        norm=NORMS[args.norm],
        seed=args.seed,
        version=args.version,
    )

    outputs = {}  # the last output of each, compared below (both are deterministic)

    def run_ours():
        outputs["ours"] = ours(model, x, y)

    def run_theirs():
        outputs["theirs"] = theirs.run_standard_evaluation(x, y, batch_size=args.batch_size)[0]

    timings = time_interleaved(
        {"ours": run_ours, "theirs": run_theirs},
        device=args.device,
        repeats=args.repeats,
        warmup=args.warmup,
    )
    x_ours, x_theirs = outputs["ours"], outputs["theirs"]
    with torch.no_grad():
        robust_ours = (model(x_ours).argmax(1) == y).float().mean().item()
        robust_theirs = (model(x_theirs).argmax(1) == y).float().mean().item()
    diff = (x_ours - x_theirs).abs()
    print(
        f"# {args.version} {attacks or 'standard'} eps {args.eps} {args.norm} on {len(x)} digits: "
        f"ours {milliseconds(timings['ours'].median):.0f} ms, "
        f"theirs {milliseconds(timings['theirs'].median):.0f} ms"
    )
    report(
        "autoattack_vs_pyautoattack",
        timings["theirs"].median / timings["ours"].median,
        TARGET,
        ratio_best=timings["theirs"].best / timings["ours"].best,
        robust_ours=robust_ours,
        robust_theirs=robust_theirs,
        max_abs_diff=diff.max().item(),
        differing_pixels=int((diff > 0).sum()),
        pixels=diff.numel(),
    )
    return finish(args)


if __name__ == "__main__":
    sys.exit(main())

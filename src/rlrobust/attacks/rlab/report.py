"""``rlab.md``: the RLAB record as markdown tables (built from the record only)."""

from __future__ import annotations

import math


def _num(value: float, digits: int = 1) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def attack_row(name: str, m: dict) -> str:
    q, qa = m["queries_success"], m["queries_all"]
    steps = m.get("steps_success")  # RLAB only: Square has no steps
    step_cell = "-" if steps is None else f"{_num(steps['mean'])} / {_num(steps['median'])}"
    return (
        f"| {name} | {100 * m['success_rate']:.1f} ({m['n_success']}/{m['n_attacked']}) | "
        f"{_num(q['mean'])} / {_num(q['median'])} | {_num(qa['mean'])} | {step_cell} | "
        f"{_num(m['l0']['mean'])} | {_num(m['l2']['mean'], 2)} | {_num(m['linf']['mean'], 3)} |"
    )


ATTACK_HEADER = (
    "| attack | success % | queries on success (mean / median) | queries, all inputs (mean) "
    "| steps on success (mean / median) | L0 (elements) | L2 | Linf |\n"
    "|---|---|---|---|---|---|---|---|"
)


def rlab_markdown(record: dict) -> str:
    s = record["settings"]
    lines = [
        "# RLAB",
        "",
        f"Agent: **{record['agent']}**; patches of {s['patch_size']}; operations "
        f"{', '.join(s['operations'])}; budget {s['budget']} queries per input; distortion "
        f"penalty {s['penalty']}; refine {s['refine']}; seed {s['seed']}; step budget "
        f"{s.get('max_steps') or 'none'}; stacking {s.get('stacking', 'none')}; re-probing "
        f"{s.get('reprobe', False)}.",
        "",
        ATTACK_HEADER,
        attack_row(f"RLAB ({record['agent']})", record["rlab"]),
    ]
    for eps, metrics in record.get("square", {}).items():
        lines.append(attack_row(f"Square linf eps {eps}", metrics))
    lines += [
        "",
        "Distortions are over successful inputs; Square is bounded by its eps, RLAB is not.",
    ]
    lines += mask_lines(record.get("masks"))
    retraining = record.get("retraining")
    if retraining:
        b, a = retraining["before"], retraining["after"]
        lines += [
            "",
            f"## Retraining on {retraining['n_rlab_examples']} RLAB examples "
            f"(from {retraining['n_train_images']} training images, "
            f"{retraining['settings']['epochs']} epochs)",
            "",
            ATTACK_HEADER,
            attack_row("RLAB before", retraining["rlab_before"]),
            attack_row("RLAB after", retraining["rlab_after"]),
            "",
            f"| model | clean % | FGSM % (eps {retraining['eps']}) | PGD-40 % |",
            "|---|---|---|---|",
            f"| before | {100 * b['clean']:.2f} | {100 * b['fgsm']:.2f} | {100 * b['pgd40']:.2f} |",
            f"| after | {100 * a['clean']:.2f} | {100 * a['fgsm']:.2f} | {100 * a['pgd40']:.2f} |",
        ]
    if record.get("grid"):
        lines += ["", f"![original, adversarial, mask]({record['grid']})"]
    return "\n".join(lines) + "\n"


def mask_lines(masks: dict | None) -> list[str]:
    """The localisation-mask section: scores against the reference, agreement with baselines."""
    if not masks:
        return []
    scores = masks.get("vs_reference", masks.get("vs_foreground"))
    what = masks.get("reference_description", "the foreground")
    lines = [
        "",
        f"## Localisation masks ({masks['n']} successful inputs, "
        f"{masks['mask_pixels_mean']:.1f} elements per mask on average)",
        "",
        f"Reference: {what}. Every baseline keeps as many elements as the RLAB mask of the same "
        "input.",
        "",
    ]
    agreement = masks["rlab_vs_baselines"]
    if scores is None:
        lines += ["| mask | Dice with the RLAB mask | IoU with the RLAB mask |", "|---|---|---|"]
        for name, sc in agreement.items():
            lines.append(f"| {name} | {sc['dice_mean']:.3f} | {sc['iou_mean']:.3f} |")
        return lines
    lines += ["| mask | Dice | IoU | Dice with the RLAB mask |", "|---|---|---|---|"]
    for name, sc in scores.items():
        agree = agreement.get(name, {}).get("dice_mean")
        lines.append(
            f"| {name} | {sc['dice_mean']:.3f} ± {sc['dice_std']:.3f} | "
            f"{sc['iou_mean']:.3f} ± {sc['iou_std']:.3f} | "
            f"{'-' if agree is None else f'{agree:.3f}'} |"
        )
    return lines

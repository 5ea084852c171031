"""Render ``docs/findings.md`` (and an HTML page) from ``results/`` alone.

Nothing here reads a clock, a path outside ``results/`` or a random stream without a fixed
seed, so the same records give the same document byte for byte; ``tests/test_findings.py``
checks that the committed document is exactly what the committed records give.
"""

from __future__ import annotations

from pathlib import Path

from rlrobust.files import atomic_write_text
from rlrobust.findings.claims import CLAIMS, Claim
from rlrobust.findings.rules import RESAMPLES, Finding, find

TITLE = "Findings: the seed papers' claims, measured"
BUILD_COMMAND = "rlrobust findings build --results results --out docs/findings.md"

INTRO = f"""\
Generated from the records in `results/` alone by
`{BUILD_COMMAND}`; do not edit by hand:
`tests/test_findings.py` fails when this file differs from what the records give. Each run's
records and their `provenance.json` (command, git commit, date, machine, wall time) are under
`results/<claim>/`; `results/README.md` explains the layout and how runs are filed.

The study runs at laptop scale: CIFAR-10 claims are mapped to MNIST or Fashion-MNIST, and each
row says how. For a paired claim, arm A is the one the paper says is more robust and B the
baseline; accuracies are in %, as mean ± std over seeds with the 95 % Student-t interval across
seeds; A - B is the paired difference on the same test images (per seed: a paired bootstrap
interval with {RESAMPLES} resamples and McNemar's exact test, in the claim's section). The metric
is AutoAttack (standard) when the records hold it, else PGD.

Verdicts for a paired claim (`rlrobust/findings/paired.py`): **holds**: A - B > 0 under
AutoAttack, its interval above 0, at least two seeds, and the masking checks ran on A without
evidence; **holds weakly**: the direction is right but one of those is missing, or the whole
interval lies below half the paper's A - B (the reason names which); **does not hold**: A - B <= 0, or evidence of gradient masking on A; **not testable here**:
no records yet, or records that cannot answer, with the reason and the command that would. The
other kinds of claim have their own rule, in one module each (`rlrobust/findings/rules.py` lists
them; each module's docstring states its verdicts and every threshold that is ours): `grid`
(Kim's MNIST lambda table), `breaks` (AutoAttack against FGSM without adversarial training),
`flatness` (Hessian sharpness, Kim Eq. 30), `indicators` (Zou's gradient indicators and
entropy), `transfer` (examples crafted on a supervised model against the white-box attack),
`cost` (L2L against PGD-AT: non-inferior robustness at a lower training cost) and `rlab`
(RLAB's success rate and queries against Square). Some claims read another claim's records
(the same runs answer both); their section names the folder.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(findings: list[Finding]) -> list[str]:
    lines = [
        "| claim | paper's number | our number | protocol difference | verdict | evidence |",
        "|---|---|---|---|---|---|",
    ]
    for f in findings:
        cells = [
            f"[{f.claim.id}](#{f.claim.id}): {f.claim.paper}",
            f.paper_number,
            f.our_number,
            f.protocol,
            f"**{f.verdict}**",
            "; ".join(f.evidence) or "-",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def section(f: Finding) -> list[str]:
    c: Claim = f.claim
    lines = [
        f'<a id="{c.id}"></a>',
        "",
        f"## {c.id}",
        "",
        f"**Claim** ({c.paper}): {c.statement}.",
        "",
        f"**Paper's number**: {f.paper_number} ({f.paper_source}).",
        "",
    ]
    if c.arms:
        lines += [f"**Arms**: A = `{c.arms[0]}`, B = `{c.arms[1]}`.", ""]
    lines += [f"**Verdict**: {f.verdict}: {f.reason}.", ""]
    lines += [f"**Command that produces the records**: `{c.run}`", ""]
    if c.records_of:
        lines += [
            f"The records are those of [{c.records_of}](#{c.records_of}) (`results/"
            f"{c.records_of}/`): the same runs answer both claims.",
            "",
        ]
    if f.details:
        lines += ["**Records**:", "", *f.details, ""]
    differences = f.numbers.get("differences", [])
    lines += [f"**Planned mapping of the paper's protocol**: {c.mapping}.", ""]
    if differences:
        lines += ["Differences from the paper's protocol:", ""]
        lines += [f"- {d}" for d in differences]
        lines.append("")
    return lines


def findings(results: str | Path) -> list[Finding]:
    return [find(claim, Path(results)) for claim in CLAIMS]


def markdown(results: str | Path) -> str:
    found = findings(results)
    lines = [f"# {TITLE}", "", INTRO, *table(found), ""]
    for f in found:
        lines += section(f)
    return "\n".join(lines).rstrip("\n") + "\n"


def html_page(results: str | Path) -> str:
    """The same document as a self-contained HTML page (``reporting.html``)."""
    from rlrobust.reporting.html import esc, page
    from rlrobust.reporting.html import table as html_table

    found = findings(results)
    rows = [
        [
            f"{f.claim.id}: {f.claim.paper}",
            f.paper_number,
            f.our_number,
            f.protocol,
            f.verdict,
            "; ".join(f.evidence) or "-",
        ]
        for f in found
    ]
    parts = [
        *(f"<p>{esc(p)}</p>" for p in INTRO.split("\n\n")),
        html_table(
            ["claim", "paper's number", "our number", "protocol difference", "verdict", "evidence"],
            rows,
        ),
    ]
    for f in found:
        parts.append(f'<h2 id="{esc(f.claim.id)}">{esc(f.claim.id)}</h2>')
        parts.append(f"<p>{esc(f.claim.statement)} ({esc(f.claim.paper)})</p>")
        parts.append(f'<p class="verdict">{esc(f.verdict)}: {esc(f.reason)}</p>')
        parts.append(f"<p>Command: <code>{esc(f.claim.run)}</code></p>")
        items = [*f.details, *(f"- {d}" for d in f.numbers.get("differences", []))]
        if items:
            parts.append("<pre>" + esc("\n".join(items)) + "</pre>")
    return page(TITLE, parts)


def build(
    results: str | Path = "results",
    out: str | Path = "docs/findings.md",
    html: str | Path | None = None,
) -> dict[str, Path]:
    """Write the markdown document (and the HTML page when ``html`` is given)."""
    written = {"markdown": atomic_write_text(Path(out), markdown(results))}
    if html is not None:
        written["html"] = atomic_write_text(Path(html), html_page(results))
    return written

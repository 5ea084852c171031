"""The seed papers' claims as data: what each says, the paper's number and where it comes from,
which records answer it, how our number is computed and the command that produces them.

A claim's ``kind`` names its rule in ``rules.py``. ``paired``: arm A (``arms[0]``, the one the
paper says is more robust) against arm B (``arms[1]``) on the same test images, seed by seed;
the paper's number is read from the reproduction preset's references (``preset``,
``reference_metric``), never copied here. The other kinds (``grid``, ``breaks``, ``flatness``,
``indicators``, ``cost``, ``rlab``) each have a module of their own, listed in ``rules.py``;
``what_would_test`` says, for a claim, what its rule computes from the records.

The study runs at laptop scale: CIFAR-10 claims are mapped to MNIST / Fashion-MNIST as the
presets' laptop scale does, and ``mapping`` says so in each row.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How the study files a claim's records: run, then collect (docs/findings.md, "Records").
COLLECT = "rlrobust findings collect {out} --claim {claim} --command '{run}'"
#: The evaluation every paired claim reads, added to the presets' own: FGSM, PGD-40 and
#: AutoAttack (standard) at the preset's eps, with the masking checks; ``EVALUATE`` is run on
#: each run directory of the reproduce folder.
EVALUATE = (
    "rlrobust evaluate {run} --name standard --eval.preset standard --eval.eps {eps} --eval.masking"
)


@dataclass(frozen=True)
class Claim:
    id: str  # the folder results/<id>/
    paper: str  # paper and table
    statement: str  # the claim, in the paper's words or close to them
    kind: str  # the rule of rules.py that answers it
    run: str  # the command (or commands) that produce the records
    mapping: str = ""  # how our protocol maps the paper's (data set, scale), in words
    preset: str | None = None  # reproduction preset whose references and differences apply
    scale: str = "laptop"
    arms: tuple[str, str] | None = None  # (A: claimed more robust, B: baseline)
    reference_metric: str | None = None  # the preset reference metric quoted as the paper's
    paper_number: str = ""  # when the presets hold no number: the paper's words
    evaluations: tuple[str, ...] = ("standard", "evaluation")  # evaluation records, preferred first
    what_would_test: str = ""  # for kinds without a rule: what a rule must compute
    records_of: str | None = None  # another claim whose records answer this one (same runs)

    @property
    def records(self) -> str:
        """The folder under results/ that holds the records this claim reads."""
        return self.records_of or self.id

    @property
    def command(self) -> str:
        return self.run


def _reproduce(preset: str, eps: str, claim: str, scale: str = "laptop") -> str:
    out = f"reproduce/{preset}-{scale}"
    run = f"rlrobust reproduce {preset} --scale {scale} --out {out}"
    evaluate = EVALUATE.format(run='"$RUN"', eps=eps)
    collect = COLLECT.format(out=out, claim=claim, run=run)
    return f"{run}; for RUN in {out}/runs/*; do {evaluate}; done; {collect}"


def _diagnosed(preset: str, eps: str, claim: str, runs: str, parts: str) -> str:
    """Train (or reuse: a rerun skips finished points) the preset's laptop runs, diagnose
    ``runs`` of them, then collect the reproduce folder. Diagnose writes each run's own
    diagnostics.json into its run folder, which the collection carries beside its config (the
    seed); the folder's sweep manifest names each run's arm. The ``--out`` folder holds the
    figures and a combined record without configs: it is not collected."""
    out = f"reproduce/{preset}-laptop"
    run = (
        f"rlrobust reproduce {preset} --scale laptop --out {out}; rlrobust diagnose "
        f"{runs.format(out=out)} {parts} --eps {eps} --out diagnose/{claim}"
    )
    return f"{run}; {COLLECT.format(out=out, claim=claim, run=run)}"


def _reproduce_lambda() -> str:
    """Kim's lambda grid, then its (1.5, 1.5) cell again at lr 0.01 (the preset's is 0.1)."""
    out, claim = "reproduce/kim-lambda-laptop", "kim-table2-lambda"
    run = f"rlrobust reproduce kim-lambda --scale laptop --out {out}"
    cell = f"{out}/runs/two_stage.warmup_options.lam-1.5__objective.options.lam-1.5__s0"
    retrain = (
        f"for S in 0 1 2; do rlrobust train --config {cell}/config.json --optim.lr 0.01 "
        "--train.seed $S --evaluate --out reproduce/kim-lambda-lr/runs/lr0.01__s$S; done"
    )
    lr_run = "rlrobust train --config CELL_1.5_1.5/config.json --optim.lr 0.01 ..."
    return "; ".join(
        [
            run,
            COLLECT.format(out=out, claim=claim, run=run),
            retrain,
            COLLECT.format(out="reproduce/kim-lambda-lr", claim=claim, run=lr_run),
        ]
    )


def _reproduce_rlab() -> str:
    """The rlab preset's laptop runs, then Square beside RLAB: the reproduction's post step runs
    no Square, so the learned agent it saved (RUN/rlab-agent) attacks the same seeded test images
    again with the preset's laptop RLAB settings (tests/test_findings_rlab.py checks them against
    the preset), with Square at the same query budget, replacing RUN/rlab-learned (the same RLAB
    numbers, Square added)."""
    out = "reproduce/rlab-laptop"
    square = (
        f'for RUN in {out}/runs/*; do rlrobust attack rlab "$RUN" --agent learned --agent-dir '
        '"$RUN/rlab-agent" --n-examples 500 --patch-size 4 --max-steps 500 --budget 5000 '
        '--square-eps 0.1 0.3 --no-masks --out "$RUN/rlab-learned" --overwrite --quiet; done'
    )
    run = f"rlrobust reproduce rlab --scale laptop --out {out}; {square}"
    steps = [run, COLLECT.format(out=out, claim="rlab", run=run)]
    for victim in RLAB_VICTIMS:
        steps += _rlab_victim(*victim)
    return "; ".join(steps)


#: RLAB's 1-D and 3-D victims, as docs/rlab.md measured them (ours: the preset is 2-D):
#: (folder, run name, arm, training flags, RLAB flags, learned-agent flags)
RLAB_VICTIMS = (
    (
        "reproduce/rlab-1d",
        "gunpoint",
        "GunPoint cnn1d",
        "--data.name ucr-gunpoint --model.name cnn1d --optim.name adam --optim.lr 0.003 "
        "--optim.schedule cosine --data.batch_size 16 --train.epochs 120",
        "--n-examples 150 --patch-size 10 --budget 500",
        "--train-iterations 100 --train-batch 32",
    ),
    (
        "reproduce/rlab-3d",
        "mmnist",
        "Moving-MNIST cnn3d",
        "--data.name moving-mnist --model.name cnn3d --optim.name adam --optim.lr 0.003 "
        "--data.batch_size 32 --train.epochs 4",
        "--n-examples 50 --patch-size 5 16 16 --budget 500 --batch-size 25",
        "--train-iterations 40 --train-batch 16",
    ),
)


def _rlab_victim(out: str, name: str, arm: str, train: str, attack: str, agent: str) -> list:
    """Two seeds of a victim: train it, attack it with the learned agent (Square at the same
    budget, localisation masks, retraining on its examples with FGSM and PGD-40 at eps 0.1
    before and after), then with the greedy baseline; then collect the folder under the
    victim's arm."""
    run_dir = f"{out}/runs/{name}__s$S"
    loop = (
        f"for S in 0 1; do rlrobust train {train} --train.seed $S --out {run_dir}; "
        f"rlrobust attack rlab {run_dir} --agent learned --agent-dir {run_dir}/rlab-agent "
        f"{agent} {attack} --square-eps 0.1 0.3 --retrain-epochs 2 --eps 0.1 "
        f"--out {run_dir}/rlab-learned; "
        f"rlrobust attack rlab {run_dir} {attack} --no-masks --out {run_dir}/rlab; done"
    )
    return [loop, COLLECT.format(out=out, claim=f"rlab --arm '{arm}'", run=loop)]


CLAIMS: tuple[Claim, ...] = (
    Claim(
        id="kim-table3",
        paper="Kim (001), Table 3, MNIST column",
        statement="the policy loss (Eq. 12 warm-up, then Eq. 4) is more robust than CE under "
        "FGSM and PGD at no clean cost",
        kind="paired",
        run=_reproduce("kim-mnist", "0.1", "kim-table3"),
        mapping="MNIST, LeNet5 as the paper; laptop epochs and 1000 test images",
        preset="kim-mnist",
        arms=("policy (Eq. 12 warm-up + Eq. 4)", "CE"),
        reference_metric="pgd",
    ),
    Claim(
        id="kim-table2-lambda",
        paper="Kim (001), Table 2 (MNIST lambda1 x lambda2 grid, mean of 3 runs)",
        statement="on MNIST every (lambda1, lambda2) cell trains (99.02 - 99.30 % clean, PGD "
        "56.18 - 69.06 %) and 'there is no particular tendency' (the lambda2 trend of the text is "
        "CIFAR-10's, Table 1); the (1.5, 1.5) cell is also retrained at a tenth of the learning "
        "rate, to see whether a collapse there is the step size's",
        kind="grid",
        run=_reproduce_lambda(),
        mapping="MNIST, LeNet5; a 3 x 3 sub-grid with 3 seeds at laptop epochs; the preset's "
        "FGSM and PGD-40 on 1000 test images (Table 2 reports PGD; no AutoAttack over 27 runs)",
        preset="kim-lambda",
        reference_metric="pgd",
        evaluations=("evaluation",),
    ),
    Claim(
        id="kim-table4-ablation",
        paper="Kim (001), Table 4 (CIFAR-10 ablation, VGG13, eps 0.04)",
        statement="the Eq. 12 warm-up matters: a CE warm-up then Eq. 4 is far less robust",
        kind="paired",
        run=_reproduce("kim-cifar", "0.04", "kim-table4-ablation"),
        mapping="CIFAR-10 mapped to Fashion-MNIST with LeNet5 (the preset's laptop scale)",
        preset="kim-cifar",
        arms=("policy (Eq. 12 warm-up + Eq. 4)", "CE warm-up + Eq. 4"),
        reference_metric="pgd",
    ),
    Claim(
        id="kim-table6-trades",
        paper="Kim (001), Table 6 (CIFAR-10, ResNet-18, TRADES, eps 8/255)",
        statement="TRADES then policy fine-tuning (lambda 0.5) is more robust than TRADES alone, "
        "under AutoAttack too",
        kind="paired",
        run=_reproduce("kim-trades", "0.1", "kim-table6-trades"),
        mapping="CIFAR-10 / ResNet-18 mapped to Fashion-MNIST / LeNet5 (laptop scale)",
        preset="kim-trades",
        arms=("TRADES + policy (lambda=0.5)", "TRADES (CE)"),
        reference_metric="autoattack",
    ),
    Claim(
        id="kim-flatness",
        paper="Kim (001), Eq. 30 and Figure 1 (loss landscapes, CIFAR-10, VGG13)",
        statement="the policy loss converges to flatter minima than CE ('the smoothness of the "
        "policy loss is better than that of the CE loss')",
        kind="flatness",
        run=_diagnosed(
            "kim-mnist", "0.1", "kim-flatness", "{out}/runs/*", "--sharpness --landscape"
        ),
        mapping="CIFAR-10 / VGG13 mapped to MNIST / LeNet5",
        arms=("policy (Eq. 12 warm-up + Eq. 4)", "CE"),
        paper_number="no number: figures only",
        what_would_test="per seed, the top Hessian eigenvalue of cross-entropy at the policy and "
        "the CE model's weights (the same loss on both), policy - CE, with its mean and 95 % t "
        "interval across seeds; the Hessian trace, the Eq. 30 landscape's loss rise and each "
        "model's own-loss eigenvalue beside it",
    ),
    Claim(
        id="gupta-table1",
        paper="Gupta (002), Table 1 (CIFAR-10, FGSM-AT eps 8/255, AutoAttack eps 8/255)",
        statement="with FGSM adversarial training the RL model (gupta_vpg, LayerNorm CNN) is "
        "more robust under AutoAttack than CE, each at its best-FGSM checkpoint",
        kind="paired",
        run=_reproduce("gupta-fgsm-at", "0.1", "gupta-table1"),
        mapping="CIFAR-10 mapped to Fashion-MNIST (laptop scale); checkpoint selection by FGSM "
        "accuracy as the paper",
        preset="gupta-fgsm-at",
        arms=("RL", "CE (best FGSM checkpoint)"),
        reference_metric="autoattack",
    ),
    Claim(
        id="gupta-no-at",
        paper="Gupta (002), Results and Appendix (Figure 5)",
        statement="without adversarial training the RL model's FGSM accuracy beats CE's, 'but it "
        "was easy to attack the trained model via AutoAttack'",
        kind="breaks",
        run=_reproduce("gupta-no-at", "0.1", "gupta-no-at"),
        mapping="CIFAR-10 mapped to Fashion-MNIST with LeNet5 (laptop scale), eps 0.1",
        preset="gupta-no-at",
        arms=("RL", "CE"),
        paper_number="no number given ('AutoAttack very easily attacked this')",
    ),
    Claim(
        id="zou",
        paper="Zou et al. (000), authors' code README (not the paper)",
        statement="RL training disrupts gradient-based attacks: RL is far more robust than SL "
        "under PGD",
        kind="paired",
        run=_reproduce("zou", "0.1", "zou"),
        mapping="CIFAR-10 mapped to Fashion-MNIST, the 6-layer CNN replaced as the preset says",
        preset="zou",
        arms=("RL", "SL"),
        reference_metric="pgd",
    ),
    Claim(
        id="zou-adv",
        paper="Zou et al. (000), the adversarially trained arms (SL-adv, RL-adv)",
        statement="with FGSM adversarial training on both sides, RL (RL-adv) stays more robust "
        "than SL (SL-adv)",
        kind="paired",
        run=_reproduce("zou", "0.1", "zou"),
        records_of="zou",
        mapping="CIFAR-10 mapped to Fashion-MNIST, the 6-layer CNN replaced as the preset says; "
        "the same runs as the zou claim",
        preset="zou",
        arms=("RL-adv", "SL-adv"),
        paper_number="no SL-adv number in our sources (RL-adv: about 30 % under transfer)",
    ),
    Claim(
        id="zou-transfer",
        paper="Zou et al. (000), authors' code README (not the paper)",
        statement="examples transferred from supervised models drop plain RL to about 8 % "
        "(RL-adv about 30 %): RL's white-box robustness does not survive a transfer attack",
        kind="transfer",
        run=_reproduce("zou", "0.1", "zou"),
        records_of="zou",
        mapping="CIFAR-10 mapped to Fashion-MNIST; transfer crafted on the SL run of the same "
        "seed (the preset's transfer step), at eps 0.1",
        preset="zou",
        arms=("RL", "SL"),
        paper_number="transfer from SL: RL about 8 %, RL-adv about 30 % (RL under white-box "
        "attack: about 55 %)",
        what_would_test="per seed, the RL run's accuracy under PGD and momentum PGD crafted on "
        "the SL run (transfer.json) against its own white-box accuracy (AutoAttack, else PGD) on "
        "the same test images; transfer - white-box with its interval across seeds",
    ),
    Claim(
        id="zou-indicators",
        paper="Zou et al. (000)",
        statement="RL shows the static and dynamic gradient indicators and the higher "
        "predictive entropy of disrupted gradient-based optimisation",
        kind="indicators",
        run=_diagnosed(
            "zou",
            "0.1",
            "zou-indicators",
            "{out}/runs/SL__s* {out}/runs/RL__s*",
            "--gradients --entropy --masking",
        ),
        mapping="CIFAR-10 mapped to Fashion-MNIST",
        arms=("RL", "SL"),
        paper_number="no number in our sources",
        what_would_test="per seed, on the same test images, whether each static (gradient norm, "
        "nearby gradient cosine) and dynamic (PGD step cosine, noise cosine) indicator is on "
        "Zou's side for RL against SL (95 % t interval over the images), and the clean entropy "
        "RL - SL with its interval across seeds; masking verdicts beside them (the zou claim's "
        "AutoAttack comparison tells masking from robustness)",
    ),
    Claim(
        id="l2l",
        paper="Dai et al. (004), L2L vs PGD adversarial training",
        statement="learning to attack gives PGD-AT's robustness at a lower training cost",
        kind="cost",
        run=_reproduce("l2l", "0.3", "l2l"),
        mapping="CIFAR-10 / ResNet-18 mapped to MNIST / LeNet5 at eps 0.3 (laptop scale)",
        preset="l2l",
        paper_number="no number in our sources",
        what_would_test="per L2L variant (plain, gradient, 2-step) against PGD-AT, seed by seed "
        "on the same test images: the robust-accuracy difference L2L - PGD-AT under AutoAttack "
        "(else the preset's PGD) with a Bonferroni interval over the variants, and the training "
        "cost ratio L2L / PGD-AT from metrics.csv (train_backward_passes: example-backward "
        "passes through the classifier, where recorded; wall time beside); a variant supports "
        "the claim when non-inferior (within 2 points, ours) and cheaper",
    ),
    Claim(
        id="rlab",
        paper="Sarkar et al. (003), RLAB abstract",
        statement="the RLAB agent reaches a '100 % average success rate' with fewer queries",
        kind="rlab",
        run=_reproduce_rlab(),
        mapping="their data and victims mapped to Fashion-MNIST LeNet5 victims trained with CE "
        "and with Kim's policy loss (2-D, the preset), a UCR GunPoint cnn1d victim (1-D) and a "
        "Moving-MNIST cnn3d victim (3-D), two seeds each for 1-D and 3-D; our RLAB agent (reward, "
        "policy and state are ours: docs/rlab.md)",
        preset="rlab",
        reference_metric="rlab_learned_success",
        what_would_test="per victim (CE and policy), the learned agent's success rate with its "
        "Wilson interval and queries per success (the greedy baseline beside), against Square "
        "(eps 0.1 and 0.3) at the same query budget on the same images: whether RLAB needs fewer "
        "queries on the images both fooled (decided from the counts, the records holding no "
        "per-image queries); beside it, the localisation masks' Dice against the gradient "
        "baselines and RLAB's success before and after retraining on its examples",
    ),
)


def claim_ids() -> list[str]:
    return [c.id for c in CLAIMS]


def get_claim(claim_id: str) -> Claim:
    for claim in CLAIMS:
        if claim.id == claim_id:
            return claim
    from rlrobust.errors import UnknownNameError

    raise UnknownNameError(f"unknown claim {claim_id!r}; choose one of: {', '.join(claim_ids())}")

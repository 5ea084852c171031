"""AutoAttack (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks") through the authors' ``pyautoattack`` package.

The ensemble runs its attacks one after the other, each only on the points that are still
robust: standard version APGD-CE (100 iterations, 1 restart), APGD-T (9 target classes), FAB-T
(9 targets) and Square (5000 queries); ``"plus"`` adds APGD-DLR and untargeted FAB with 5
restarts each; ``"rand"`` is the version for randomised defences (APGD-CE and APGD-DLR, each
averaging its gradient over ``eot_iter`` = 20 forward passes: Expectation over Transformation,
Athalye et al. 2018); ``"custom"`` runs the ``attacks`` you list, with pyautoattack's per-attack
defaults. Points that no attack fools are returned unchanged (the clean x), as pyautoattack
does, so ``model(x_adv).argmax(1) == y`` is the per-sample robust flag.

This class is a thin adapter: the numbers are pyautoattack's. It only

- maps our settings onto pyautoattack's (``"linf"`` -> ``"Linf"``, ``"l2"`` -> ``"L2"``,
  ``n_queries`` -> Square's budget, ``n_iter`` -> APGD's and FAB's iterations);
- keeps pyautoattack quiet unless ``verbose=True`` (its log messages go to the
  ``"auto-attack"`` logger, which is switched off for the call) but records the warnings of its
  sanity checks (``pyautoattack/checks.py``: randomised or dynamic model, probabilities for
  logits, zero gradients, Square beating the gradient attacks) in ``last_sanity_warnings``,
  so the masking diagnostics can report them (M15) instead of losing them;
- restores what pyautoattack changes globally: it seeds torch's global RNG inside every
  sub-attack and its dynamic-defence check replaces the trace function (``sys.settrace``); both
  are put back afterwards, so the caller's random stream and debugger/coverage survive; its
  dynamic-defence check counts calls in a module-level dict that it never resets, so one
  dynamic model would make it warn for every later model: the counts are zeroed before a run;
- records which sub-attack fooled which sample: ``last_breakdown`` (samples fooled per attack)
  and ``last_fooled_by`` (per sample: the attack's name, ``"clean"`` for points misclassified
  before any attack, ``None`` for robust points); when it cannot, ``last_breakdown`` is None
  and ``last_breakdown_reason`` says why.

pyautoattack reseeds its RNG for every batch, so the result depends on ``batch_size`` exactly
as calling pyautoattack with that ``batch_size`` does.

Example::

    attack = AutoAttack(eps=8 / 255, version="standard", seed=0)
    x_adv = attack(model, x, y)
    attack.last_breakdown   # {"apgd-ce": 412, "apgd-t": 20, "fab-t": 0, "square": 1}
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import Attack, check_labels, check_positive_int
from rlrobust.errors import ConfigError

VERSIONS = ("standard", "plus", "rand", "custom")
SUB_ATTACKS = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
# The attack lists that pyautoattack's versions run, in its order (AutoAttack._set_version).
VERSION_ATTACKS = {
    "standard": ["apgd-ce", "apgd-t", "fab-t", "square"],
    "plus": ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"],
    "rand": ["apgd-ce", "apgd-dlr"],
}
RAND_EOT_ITER = 20  # pyautoattack's rand version: APGD's gradient averaged over 20 passes
PYAUTOATTACK_NORMS = {"linf": "Linf", "l2": "L2"}
LOGGER_NAME = "auto-attack"  # the logger that pyautoattack writes to
BREAKDOWN_MISMATCH = (
    "pyautoattack's batches did not match the schedule the recorder follows (another "
    "pyautoattack version?), so no point was attributed to a member"
)


class AutoAttack(Attack):
    """The AutoAttack ensemble via pyautoattack; see the module docstring.

    Args:
        eps: ball radius in pixel units (default 8/255 for linf, 0.5 for l2).
        norm: ``"linf"`` or ``"l2"``.
        version: ``"standard"`` (default), ``"plus"``, ``"rand"`` (randomised models) or
            ``"custom"``.
        attacks: for ``version="custom"`` only, the sub-attacks to run in order, from
            ``"apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"``.
        n_queries: Square's query budget (5000 in the standard version).
        n_iter: iterations of APGD, APGD-T and FAB (100 in the standard version).
        eot_iter: forward passes APGD and APGD-T average their gradient over (EOT); default
            20 for ``"rand"``, else 1 (pyautoattack's values).
        seed: the seed pyautoattack gives each sub-attack.
        batch_size: points per pyautoattack batch (its default, 250).
        verbose: print pyautoattack's progress log to stdout.

    After a call: ``last_breakdown`` (dict attack -> samples it fooled, or None),
    ``last_breakdown_reason`` (why it is None), ``last_fooled_by`` (list, one entry per
    sample), ``last_robust`` (bool tensor (N,)) and ``last_sanity_warnings`` (list of str).
    """

    #: the evaluation never wraps AutoAttack in bf16 autocast: no test shows its verdicts agree
    #: with float32 ones (its step-size schedule and DLR loss depend on small logit gaps).
    float32_only = True

    name = "autoattack"

    def __init__(
        self,
        eps: float | None = None,
        norm: str = "linf",
        version: str = "standard",
        attacks: Sequence[str] | None = None,
        n_queries: int = 5000,
        n_iter: int = 100,
        eot_iter: int | None = None,
        seed: int = 0,
        batch_size: int = 250,
        verbose: bool = False,
    ) -> None:
        super().__init__(eps=eps, norm=norm, seed=seed)
        if version not in VERSIONS:
            raise ConfigError(
                f"unknown AutoAttack version {version!r}; choose one of: {', '.join(VERSIONS)}"
            )
        self.version = version
        self.attacks = self._check_attacks(version, attacks)
        self.n_queries = check_positive_int(n_queries, "n_queries")
        self.n_iter = check_positive_int(n_iter, "n_iter")
        default_eot = RAND_EOT_ITER if version == "rand" else 1
        self.eot_iter = check_positive_int(
            default_eot if eot_iter is None else eot_iter, "eot_iter"
        )
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.verbose = bool(verbose)
        self.last_breakdown: dict[str, int] | None = None
        self.last_fooled_by: list[str | None] | None = None
        self.last_robust: Tensor | None = None
        self.last_breakdown_reason: str | None = None
        self.last_sanity_warnings: list[str] = []

    @staticmethod
    def _check_attacks(version: str, attacks: Sequence[str] | None) -> list[str]:
        if version != "custom":
            if attacks is not None:
                raise ConfigError(
                    f"attacks={list(attacks)!r} is only used with version='custom'; pass "
                    f"version='custom' or drop attacks (version {version!r} runs "
                    f"{', '.join(VERSION_ATTACKS[version])})"
                )
            return list(VERSION_ATTACKS[version])
        if isinstance(attacks, str) or not attacks:
            raise ConfigError(
                "version='custom' needs a list of attacks, e.g. attacks=['apgd-ce', 'apgd-t']; "
                f"choose from: {', '.join(SUB_ATTACKS)}"
            )
        unknown = [a for a in attacks if a not in SUB_ATTACKS]
        if unknown:
            raise ConfigError(
                f"unknown AutoAttack attack(s) {', '.join(map(repr, unknown))}; choose from: "
                f"{', '.join(SUB_ATTACKS)}"
            )
        if len(set(attacks)) != len(attacks):
            raise ConfigError(f"attacks lists an attack twice: {list(attacks)}; list each once")
        return list(attacks)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        from pyautoattack import AutoAttack as Reference

        clean_correct = self._clean_correct(model, x, y)
        fork_devices = [x.device] if x.device.type == "cuda" else []
        # pyautoattack seeds torch's global RNG inside each sub-attack: fork it so the caller's
        # random stream is the same after the call as before.
        warnings: list[str] = []
        _reset_dynamic_check_counts()
        with (
            torch.random.fork_rng(devices=fork_devices),
            _pyautoattack_logging(self.verbose, warnings),
            _trace_function_kept(),
        ):
            adversary = Reference(
                model,
                attacks=self.attacks if self.version == "custom" else None,
                device=x.device,
                eps=self.eps,
                norm=PYAUTOATTACK_NORMS[self.norm],
                seed=self.seed,
                version=self.version,
            )
            self._configure(adversary)
            recorder = _Recorder(model, x, y, clean_correct)
            recorder.install(adversary)
            x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=self.batch_size)

        self.last_sanity_warnings = list(dict.fromkeys(warnings))
        self.last_robust = recorder.robust.clone()
        self.last_fooled_by = recorder.fooled_by() if recorder.consistent else None
        self.last_breakdown = (
            {name: recorder.counts.get(name, 0) for name in self.attacks}
            if recorder.consistent
            else None
        )
        self.last_breakdown_reason = None if recorder.consistent else BREAKDOWN_MISMATCH
        return x_adv

    def _clean_correct(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Clean predictions in pyautoattack's batches (so ties break the same way)."""
        correct = []
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                logits = model(x[start : start + self.batch_size])
                check_labels(logits, y[start : start + self.batch_size])
                correct.append(logits.argmax(dim=1) == y[start : start + self.batch_size])
        return torch.cat(correct)

    def _configure(self, adversary: Any) -> None:
        """Apply n_queries and n_iter on top of the version's settings."""
        adversary.verbose = self.verbose
        adversary.square.n_queries = self.n_queries
        for apgd in (adversary.apgd, adversary.apgd_targeted):
            if apgd.n_iter != self.n_iter:
                _set_apgd_iterations(apgd, self.n_iter)
        adversary.fab.n_iter = self.n_iter
        adversary.apgd.eot_iter = self.eot_iter
        adversary.apgd_targeted.eot_iter = self.eot_iter

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "version": self.version,
            "attacks": list(self.attacks),
            "n_queries": self.n_queries,
            "n_iter": self.n_iter,
            "eot_iter": self.eot_iter,
            "batch_size": self.batch_size,
        }


def _set_apgd_iterations(apgd: Any, n_iter: int) -> None:
    """Set APGD's iterations and the checkpoint lengths its constructor derives from them.

    APGD (Croce & Hein 2020, Sec. 3.2) halves the step size at checkpoints whose spacing is
    0.22 * n_iter, shrinking by 0.03 * n_iter down to 0.06 * n_iter; these are computed once in
    the constructor, so they are recomputed here as if APGD had been built with ``n_iter``.
    """
    apgd.n_iter = n_iter
    apgd.n_iter_orig = n_iter
    apgd.n_iter_2 = max(int(0.22 * n_iter), 1)
    apgd.n_iter_min = max(int(0.06 * n_iter), 1)
    apgd.size_decr = max(int(0.03 * n_iter), 1)


class _Recorder:
    """Follows pyautoattack's schedule to attribute each fooled sample to one sub-attack.

    pyautoattack runs each attack on the still-robust points in index order, in batches. The
    recorder wraps every sub-attack's ``perturb``, maps each batch back to sample indices in the
    same way (checking that the batch really holds those samples), and marks the samples the
    attack's output misclassifies. If a batch does not match (a different pyautoattack
    version), ``consistent`` turns False and no attribution is reported.
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, clean_correct: Tensor) -> None:
        self.model, self.x, self.y = model, x, y
        self.clean_correct = clean_correct
        self.robust = clean_correct.clone()
        self.names: list[str | None] = [None] * len(x)
        self.counts: dict[str, int] = {}
        self.consistent = True
        self._current: str | None = None
        self._queue = torch.empty(0, dtype=torch.int64)
        self._position = 0

    def install(self, adversary: Any) -> None:
        def apgd_name() -> str:
            return "apgd-ce" if adversary.apgd.loss == "ce" else "apgd-dlr"

        def fab_name() -> str:
            return "fab-t" if adversary.fab.targeted else "fab"

        self._wrap(adversary.apgd, apgd_name)
        self._wrap(adversary.apgd_targeted, lambda: "apgd-t")
        self._wrap(adversary.fab, fab_name)
        self._wrap(adversary.square, lambda: "square")

    def _wrap(self, sub_attack: Any, name: Callable[[], str]) -> None:
        original = sub_attack.perturb

        def perturb(x: Tensor, y: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            adv = original(x, y, *args, **kwargs)
            self._record(name(), x, y, adv)
            return adv

        sub_attack.perturb = perturb  # an instance attribute shadows the method

    def _record(self, name: str, x: Tensor, y: Tensor, adv: Tensor) -> None:
        if not self.consistent:
            return
        if name != self._current:
            self._current = name
            self._queue = self.robust.nonzero().flatten()
            self._position = 0
        index = self._queue[self._position : self._position + len(x)]
        self._position += len(x)
        if len(index) != len(x) or not (
            torch.equal(self.x[index], x) and torch.equal(self.y[index], y)
        ):
            self.consistent = False
            return
        with torch.no_grad():
            fooled = self.model(adv).argmax(dim=1) != y
        for i in index[fooled].tolist():
            self.names[i] = name
        self.robust[index[fooled]] = False
        self.counts[name] = self.counts.get(name, 0) + int(fooled.sum())

    def fooled_by(self) -> list[str | None]:
        clean = self.clean_correct.tolist()
        return [name if ok else "clean" for name, ok in zip(self.names, clean, strict=True)]


class _WarningsKept(logging.Handler):
    """Keeps the text of every WARNING (or worse) record: pyautoattack's sanity checks."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@contextmanager
def _pyautoattack_logging(verbose: bool, warnings: list[str] | None = None) -> Iterator[None]:
    """Quiet pyautoattack's logger (or send debug and up to stdout when verbose) and append its
    warnings to ``warnings``; the logger's state is put back afterwards."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = (logger.disabled, logger.level, logger.propagate)
    handlers: list[logging.Handler] = [_WarningsKept(warnings if warnings is not None else [])]
    if verbose:
        printer = logging.StreamHandler(sys.stdout)
        printer.setFormatter(logging.Formatter("autoattack: %(message)s"))
        handlers.append(printer)
    for handler in handlers:
        logger.addHandler(handler)
    # Quiet: only warnings reach the logger, and only our keeper hears them (no propagation).
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate = False
    logger.disabled = False
    try:
        yield
    finally:
        logger.disabled, _, logger.propagate = saved
        logger.setLevel(saved[1])
        for handler in handlers:
            logger.removeHandler(handler)


def _reset_dynamic_check_counts() -> None:
    """Zero pyautoattack's module-level call counts used by ``checks.check_dynamic``.

    ``checks.funcs`` counts calls to ``grad``/``backward``/``_make_grads`` made during a forward
    pass and is never reset by pyautoattack, so after one dynamic model every later model would
    be reported dynamic.
    """
    from pyautoattack import checks

    for name in checks.funcs:
        checks.funcs[name] = 0


def sanity_warnings(
    model: nn.Module, x: Tensor, y: Tensor, attacks: Sequence[str] = ()
) -> list[str]:
    """The warnings of pyautoattack's own input checks on (x, y), run as it runs them before an
    evaluation (randomised outputs, probabilities for logits, dynamic defence, class count).

    Used by the masking diagnostics (M15) where the evaluation's AutoAttack object is not at
    hand. The model is called in its current mode; nothing global is left changed.
    """
    from pyautoattack import checks

    attacks = list(attacks) or VERSION_ATTACKS["standard"]
    found: list[str] = []
    logger = logging.getLogger(LOGGER_NAME)
    _reset_dynamic_check_counts()
    with (
        torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []),
        _pyautoattack_logging(False, found),
        _trace_function_kept(),
    ):
        checks.check_randomized(model, x, y, bs=len(x), logger=logger)
        n_classes = checks.check_range_output(model, x, logger=logger)
        checks.check_dynamic(model, x, False, logger=logger)
        # The standard version's target counts (AutoAttack._set_version: 9 for both).
        checks.check_n_classes(n_classes, attacks, 9, 9, logger=logger)
    return list(dict.fromkeys(found))


@contextmanager
def _trace_function_kept() -> Iterator[None]:
    """pyautoattack's dynamic-defence check ends with sys.settrace(None); put back the old one."""
    previous = sys.gettrace()
    try:
        yield
    finally:
        if sys.gettrace() is not previous:
            sys.settrace(previous)

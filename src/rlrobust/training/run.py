"""A whole training run: epochs, the two-stage switch, metrics.csv and resumable checkpoints.

Run directory layout::

    RUN/config.json       the resolved config
    RUN/metrics.csv       one row per epoch (loss, reward, accuracy, stage, lr, time, cost)
    RUN/state.json        the committed checkpoint (epoch, stage, finished flag, file names)
    RUN/checkpoints/      weights and optimiser tensors of the newest epoch (safetensors)
    RUN/model.safetensors the newest weights under a stable name (with
                          train.select_checkpoint = best_fgsm_test: the selected ones)
    RUN/select/           train.checkpoint_every: weights every K epochs (selection.py)
    RUN/model-last.safetensors, RUN/selection.json   the last weights and the selection record

The cost of an epoch, beside its wall time ``epoch_seconds`` (which depends on the machine and
its load), in two metrics.csv columns measured by ``training/cost.py``:

- ``train_backward_passes``: the backward passes through the classifier during the epoch's
  training steps, in examples (a pass over a batch of n counts n): the weight updates, the
  attacks' input-gradient passes, L2L's attacker update (it backpropagates through the frozen
  classifier), both passes of a loss on two forward passes (TRADES, RL-adv). Forwards under
  ``torch.no_grad``, the held-out accuracy and the end-of-epoch monitor are not counted. Under
  torchrun the ranks' counts are summed: the job's count, equal to a single process's.
- ``train_backward_passes_per_example``: that total divided by the training examples of the
  epoch (1 for plain training, 2 for FGSM-AT, K + 1 for PGD-AT with K steps, K + 2 for TRADES).

Rows written before these columns existed have them empty; such a run resumes as any other.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from rlrobust.config import RunConfig
from rlrobust.data import BatchLoader
from rlrobust.errors import RunDirectoryError
from rlrobust.evaluation.clean import accuracy
from rlrobust.files import atomic_write_json, atomic_write_text, remove_orphans
from rlrobust.runs import (  # noqa: F401 - saved_config re-exported
    clear_pre_checkpoint,
    never_checkpointed,
    read_state,
    saved_config,
)
from rlrobust.seeding import make_generator, seed_everything
from rlrobust.training.checkpoint import load_checkpoint, save_checkpoint
from rlrobust.training.cost import EPOCH_TOTALS
from rlrobust.training.distributed import from_environment, rank_stream
from rlrobust.training.fast import (
    compile_errors,
    compile_model,
    model_to_channels_last,
    warn_if_amp_on_cpu,
)
from rlrobust.training.loop import train_one_epoch
from rlrobust.training.optim import build_optimizer, lr_at_epoch, set_lr
from rlrobust.training.schedules import TwoStageState
from rlrobust.training.selection import (
    choose,
    install_selected,
    is_selection_epoch,
    prepare_final,
    record_checkpoint,
)
from rlrobust.training.setup import (
    augment_for,
    build_step,
    load_splits,
    model_for,
    objective_for,
    resolve_device,
)
from rlrobust.training.tracking import open_tracker


@contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """``train.deterministic``: the settings PyTorch's reproducibility notes give for CUDA, for
    the duration of the run (the previous settings come back afterwards).

    cuBLAS reads its workspace setting when it starts, hence the environment variable before
    any CUDA work; an operation without a deterministic kernel then raises instead of silently
    varying. On a CPU the default kernels are already deterministic.
    """
    if not enabled:
        yield
        return
    previous = (
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[:2]
        torch.use_deterministic_algorithms(previous[2])


def epoch_seed(seed: int, epoch: int) -> int:
    """Every random draw of an epoch derives from (seed, epoch), so a resumed run replays exactly."""
    return seed * 1_000_003 + epoch


def check_run_dir(run_dir: Path, resume: bool, log=print) -> dict | None:
    """The committed state of ``run_dir`` (None for a new run), or a clear error; nothing is read
    from data or model files yet, so a wrong folder fails at once.

    A folder that holds only what a run writes before its first checkpoint (a run killed in
    epoch 1) is emptied and restarted, with or without ``--resume``: no finished work is lost.
    """
    state = read_state(run_dir)
    if state is not None and state.get("finished"):
        raise RunDirectoryError(
            f"{run_dir} already holds a finished run; choose another output directory (--out), "
            "nothing there was changed"
        )
    if state is not None and not resume:
        raise RunDirectoryError(
            f"{run_dir} holds an unfinished run (epoch {state['epoch']}); pass --resume to continue "
            "it or choose another output directory"
        )
    if state is None and never_checkpointed(run_dir):
        log(f"{run_dir} holds a run that never reached its first checkpoint: restarting it")
        clear_pre_checkpoint(run_dir)
        return None
    if state is None and resume:
        raise RunDirectoryError(
            f"{run_dir} holds no checkpoint to resume; drop --resume to start a new run"
        )
    if state is None and run_dir.exists() and any(run_dir.iterdir()):
        raise RunDirectoryError(
            f"{run_dir} exists and is not empty but holds no run; choose an empty or new directory"
        )
    return state


def ensure_writable(run_dir: Path) -> None:
    """Create ``run_dir`` and prove it takes a file, before any data or model is loaded."""
    probe = run_dir / ".rlrobust-write-check"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise RunDirectoryError(
            f"cannot write into the run directory {run_dir} ({error.strerror or error}); "
            "choose a writable --out"
        ) from None


def _prepare_here(run_dir: Path, resume: bool, log) -> dict | None:
    state = check_run_dir(run_dir, resume, log)
    ensure_writable(run_dir)  # before any data or model is loaded
    if state is not None:
        remove_orphans(run_dir)  # temporary files of writes that a kill interrupted
    return state


def prepared_run_dir(run_dir: Path, resume: bool, log, ddp) -> dict | None:
    """Check and prepare ``run_dir``; its committed state, or None for a new run.

    Under torchrun only rank 0 looks at the folder and the others take its outcome, error
    included: a rank that checked the folder itself could see rank 0's files half-written (and
    refuse a folder that is fine), and a rank that failed alone would leave the others waiting.
    """
    if ddp is None:
        return _prepare_here(run_dir, resume, log)
    outcome, failure = None, None
    if ddp.is_main:
        try:
            outcome = ("state", _prepare_here(run_dir, resume, log))
        except Exception as error:  # every rank must hear of it, whatever it is
            outcome, failure = ("error", f"{type(error).__name__}: {error}"), error
    kind, value = ddp.from_main(outcome)
    if failure is not None:
        raise failure
    if kind == "error":
        raise RunDirectoryError(f"rank 0 could not prepare {run_dir}: {value}")
    return value


def train_run(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    log=print,
    stop_after_epoch: int | None = None,
) -> dict:
    """Train as ``cfg`` says, writing into ``run_dir``; returns the final state record.

    ``stop_after_epoch`` ends the process early as an interruption would (used to test resume).
    """
    with deterministic_kernels(cfg.train.deterministic):
        return _train_here(cfg, Path(run_dir), resume, progress, log, stop_after_epoch)


def _train_here(cfg, run_dir: Path, resume, progress, log, stop_after_epoch) -> dict:
    """``train_run`` in this process, or as one rank of a torchrun job."""
    device = resolve_device(cfg.train.device)
    ddp = from_environment(device)  # None unless started by torchrun with WORLD_SIZE > 1
    if ddp is None:
        return _train(cfg, run_dir, device, None, resume, progress, log, stop_after_epoch)
    try:
        return _train(
            cfg,
            run_dir,
            ddp.device,
            ddp,
            resume,
            progress and ddp.is_main,
            log if ddp.is_main else (lambda *_: None),
            stop_after_epoch,
        )
    finally:
        ddp.close()


def _train(cfg, run_dir, device, ddp, resume, progress, log, stop_after_epoch) -> dict:
    """The run itself; ``ddp`` (a ``DistributedContext`` or None) switches on data parallelism."""
    writes = ddp is None or ddp.is_main  # only rank 0 writes files
    state = prepared_run_dir(run_dir, resume, log, ddp)
    if state is not None:
        # Everything from the saved config but the device, which may change on resume (a run
        # trained on a GPU continues on a CPU-only host: `rlrobust train --resume --device cpu`).
        device_name = cfg.train.device
        cfg = saved_config(run_dir)
        cfg.train.device = device_name
    seed = cfg.train.seed

    seed_everything(seed)
    splits = load_splits(cfg.data, seed)
    model = model_for(cfg.model, splits.train).to(device)
    # Fast paths (docs/training.md), all off by default; a config saved before they existed
    # loads with the defaults, so it resumes without them.
    channels_last, amp = cfg.train.channels_last, cfg.train.amp
    if channels_last:
        model_to_channels_last(model)
    warn_if_amp_on_cpu(amp, device, log)
    main_objective = objective_for(cfg.objective.name, cfg.objective.options)
    two_stage = TwoStageState(cfg.two_stage.enabled, cfg.two_stage.switch_accuracy)
    warmup_objective = (
        objective_for(cfg.two_stage.warmup_objective, cfg.two_stage.warmup_options)
        if two_stage.enabled
        else None
    )
    optimizer = build_optimizer(cfg.optim, model.parameters())
    step = build_step(cfg, splits.train)
    make_loader = BatchLoader if ddp is None else ddp.loader
    loader = make_loader(
        splits.train,
        cfg.data.batch_size,
        shuffle=True,
        seed=seed,
        device=device,
        augment=augment_for(cfg.data),
    )
    train_model = model if ddp is None else ddp.wrap(model)
    if cfg.train.compile:
        # Only the training forward runs compiled; `model` (the plain module, same parameters)
        # is what checkpoints save and what the held-out accuracy uses.
        train_model = compile_model(train_model)

    metrics: list[dict] = []
    start_epoch = 0
    if state is None:
        if writes:
            atomic_write_json(run_dir / "config.json", cfg.to_dict())
    else:
        state = load_checkpoint(run_dir, model, optimizer, step)
        start_epoch = state["epoch"]
        two_stage.restore(state["two_stage"])
        metrics = state["metrics"]
        log(f"resuming {run_dir} after epoch {start_epoch}")
    tracker = open_tracker(cfg.train, run_dir, start_epoch, enabled=writes)  # train.tensorboard

    for epoch in range(start_epoch, cfg.train.epochs):
        started = time.perf_counter()
        # Each rank its own stream under torchrun; rank 0 (and a single process) the plain one.
        stream = rank_stream(epoch_seed(seed, epoch), 0 if ddp is None else ddp.rank)
        torch.manual_seed(stream)  # dropout and other global-RNG draws
        # Action sampling, exploration, attack starts. On a GPU the generator lives there, so
        # sampled actions never travel GPU -> CPU -> GPU (the CPU stream is unchanged).
        generator = make_generator(stream, device if device.type == "cuda" else "cpu")
        loader.set_epoch(epoch)
        lr = lr_at_epoch(cfg.optim, epoch, cfg.train.epochs)
        set_lr(optimizer, lr)
        stage = two_stage.stage
        objective = warmup_objective if stage == "warmup" else main_objective
        with compile_errors():  # a compiler failing at the first call: a ConfigError
            stats = train_one_epoch(
                train_model,
                loader,
                objective,
                optimizer,
                generator,
                step=step,
                epoch=epoch,
                progress=progress,
                description=f"epoch {epoch + 1}/{cfg.train.epochs}",
                channels_last=channels_last,
                amp=amp,
            )
        if ddp is not None:  # means over the ranks; the cost is summed (cost.EPOCH_TOTALS)
            stats = ddp.average_stats(stats, loader.local_samples(), totals=EPOCH_TOTALS)
        stats["backward_passes"] = round(stats["backward_passes"])  # a count: 256, not 256.0
        heldout = accuracy(model, splits.heldout, cfg.data.eval_batch_size, device)
        if ddp is not None:  # BatchNorm statistics differ per rank: rank 0 decides for all
            heldout = ddp.from_main(heldout)
        switched = two_stage.update(epoch + 1, heldout, cfg.two_stage.switch_epoch)
        # A step may monitor the epoch (adversarial defences: catastrophic overfitting) and ask
        # to stop; an early-stopped run counts as finished.
        epoch_metrics, stop_reason = {}, None
        end_of_epoch = getattr(step, "end_of_epoch", None)
        if end_of_epoch is not None:
            epoch_metrics, stop_reason = end_of_epoch(
                model, epoch, heldout=splits.heldout, run_dir=run_dir if writes else None, log=log
            )
            if ddp is not None:  # one early-stop decision (and one monitor row) for all ranks
                epoch_metrics, stop_reason = ddp.from_main((epoch_metrics, stop_reason))
        # Gupta's checkpoints (train.checkpoint_every, selection.py): FGSM test accuracy and
        # the weights every K epochs; draws no random numbers, so training is unchanged.
        selection_metrics = {}
        if is_selection_epoch(cfg.train, epoch + 1):
            selection_metrics = record_checkpoint(
                model,
                cfg.train,
                splits.test,
                cfg.data.eval_batch_size,
                device,
                epoch + 1,
                run_dir if writes else None,
            )
        row = {
            "epoch": epoch + 1,
            "stage": stage,
            "lr": lr,
            **{f"train_{k}": v for k, v in stats.items()},
            f"{splits.heldout_name}_accuracy": heldout,
            **epoch_metrics,
            **selection_metrics,
            "epoch_seconds": time.perf_counter() - started,
        }
        metrics.append(row)
        tracker.log_epoch(row, epoch + 1)
        if switched:
            tracker.log_event("stage_switch", epoch + 1, f"switching to {cfg.objective.name}")
        if stop_reason is not None:
            tracker.log_event("early_stop", epoch + 1, stop_reason)
        finished = epoch + 1 == cfg.train.epochs or stop_reason is not None
        record = {
            "epoch": epoch + 1,
            "finished": finished,
            "stopped_early": stop_reason is not None,
            "stop_reason": stop_reason,
            "two_stage": two_stage.to_dict(),
            "metrics": metrics,
        }
        selection = None
        if finished and cfg.train.checkpoint_every is not None:
            selection = record["selection"] = choose(metrics, cfg.train)
        if writes:
            write_metrics_csv(run_dir / "metrics.csv", metrics)
            if selection is not None:
                prepare_final(run_dir, model, selection)  # model-last, selection.json
            save_checkpoint(run_dir, model, optimizer, step, record)
            if selection is not None:
                install_selected(run_dir, selection)  # model.safetensors <- selected epoch
                log(
                    f"model.safetensors: epoch {selection['selected_epoch']} "
                    f"({selection['reason']})"
                )
        log(format_epoch(row) + (f"  -> switching to {cfg.objective.name}" if switched else ""))
        if stop_reason is not None:
            log(f"stopping early after epoch {epoch + 1}: {stop_reason}")
            break
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and not finished:
            break
    tracker.close()
    if ddp is not None:
        ddp.barrier()  # rank 0's last checkpoint is on disk before any rank reads it
    return read_state(run_dir)


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def format_epoch(row: dict) -> str:
    parts = [f"epoch {row['epoch']:>3}", f"[{row['stage']}]", f"loss {row['train_loss']:.4f}"]
    for key in ("train_accuracy", "train_reward_mean", "validation_accuracy", "test_accuracy"):
        if key in row:
            parts.append(f"{key.removeprefix('train_')} {row[key]:.4f}")
    parts.append(f"{row['epoch_seconds']:.1f}s")
    return "  ".join(parts)

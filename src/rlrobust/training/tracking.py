"""Optional TensorBoard event files for a training run (``train.tensorboard``).

What is written to ``RUN/tensorboard/``, with the epoch (1-based, the ``epoch`` column of
metrics.csv) as the step:

- every numeric value of a metrics.csv row as a scalar under its column name (``train_loss``,
  ``test_accuracy``, ``lr``, the adversarial monitor's ``monitor_pgd_accuracy`` ...), so the
  curves are the metrics.csv columns, rounded to float32 as TensorBoard stores scalars;
- events (the two-stage switch, an early stop) as a scalar 1.0 under ``events/<name>`` at the
  epoch after which they happened, with an optional text under the same tag. Text columns of
  metrics.csv (``stage``) are not written: the ``events/stage_switch`` marker shows the stage.

A resumed run opens the writer with ``purge_step`` = the first epoch it will log: TensorBoard then
hides the scalars an interrupted process logged for that epoch or later (an epoch that was logged
but whose checkpoint never committed is trained again), so each epoch's scalars show once.
TensorBoard purges scalars only, which is why text goes to events alone: an event's text can show
twice only if the process died between logging that epoch and committing its checkpoint.

TensorBoard is an optional extra (``pip install 'rlrobust[tensorboard]'``); it is imported only
when a run asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlrobust.errors import ConfigError

TRACKING_DIR = "tensorboard"
EVENT_PREFIX = "events/"


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or a ConfigError naming the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:  # torch raises this when the tensorboard package is missing
        raise ConfigError(
            f"train.tensorboard needs the tensorboard package ({error}); install it with "
            "pip install 'rlrobust[tensorboard]', or set train.tensorboard false"
        ) from None
    return SummaryWriter


class TensorBoardTracker:
    """Write metrics rows and events of a run as TensorBoard events under ``log_dir``.

    ``first_epoch``: the first epoch (1-based) this writer will log; anything logged earlier
    for that epoch or later is purged (see the module docstring). Example::

        tracker = TensorBoardTracker(run_dir / "tensorboard")
        tracker.log_epoch({"epoch": 1, "stage": "main", "train_loss": 0.5}, epoch=1)
        tracker.log_event("stage_switch", epoch=1, text="switching to kim_policy")
        tracker.close()
    """

    def __init__(self, log_dir: str | Path, first_epoch: int = 1) -> None:
        writer_class = summary_writer_class()
        self.log_dir = Path(log_dir)
        # purge_step only on a resume: a fresh writer needs no purge marker.
        purge = int(first_epoch) if first_epoch > 1 else None
        self.writer = writer_class(log_dir=str(self.log_dir), purge_step=purge)

    def log_epoch(self, row: dict[str, Any], epoch: int) -> None:
        """The numbers of one metrics.csv row as scalars (strings are skipped); step ``epoch``."""
        for key, value in row.items():
            if key == "epoch" or value is None or isinstance(value, str):
                continue
            if isinstance(value, bool | int | float):
                self.writer.add_scalar(key, float(value), global_step=int(epoch))
            elif hasattr(value, "item"):  # a 0-d tensor or numpy scalar
                self.writer.add_scalar(key, float(value.item()), global_step=int(epoch))
        self.writer.flush()  # an interrupted run keeps every epoch it logged

    def log_event(self, name: str, epoch: int, text: str | None = None) -> None:
        """Mark event ``name`` (e.g. "stage_switch") after ``epoch`` with the scalar 1.0."""
        tag = EVENT_PREFIX + name
        self.writer.add_scalar(tag, 1.0, global_step=int(epoch))
        if text:
            self.writer.add_text(tag, text, global_step=int(epoch))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class NullTracker:
    """The tracker of a run without ``train.tensorboard`` (and of non-main ranks): does nothing."""

    def log_epoch(self, row: dict[str, Any], epoch: int) -> None:
        pass

    def log_event(self, name: str, epoch: int, text: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def open_tracker(
    train_cfg: Any, run_dir: str | Path, start_epoch: int = 0, enabled: bool = True
) -> TensorBoardTracker | NullTracker:
    """The tracker for a run: TensorBoard under ``RUN/tensorboard`` when ``train_cfg.tensorboard``.

    ``start_epoch``: epochs already done (0 for a new run, the checkpoint's epoch on a resume).
    ``enabled=False`` (a non-main rank) always gives a ``NullTracker``. A config saved before
    ``train.tensorboard`` existed has no such field and tracks nothing.
    """
    if not enabled or not getattr(train_cfg, "tensorboard", False):
        return NullTracker()
    return TensorBoardTracker(Path(run_dir) / TRACKING_DIR, first_epoch=int(start_epoch) + 1)

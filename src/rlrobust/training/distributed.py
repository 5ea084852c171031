"""Data-parallel training under ``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on GPU).

``torchrun --nproc_per_node=N -m rlrobust train ...`` starts N copies of the ordinary command.
Each finds ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in its environment (``from_environment``),
joins the process group and trains the same model on its own part of every batch:

- every rank draws the same epoch permutation (a pure function of ``(seed, epoch)``, see
  ``data/loader.py``) and cuts each global batch of ``data.batch_size`` samples into
  ``world_size`` disjoint contiguous slices, one per rank, so the global batch is unchanged;
- DDP averages the gradients over the ranks; with equal slices the mean of the per-rank mean
  losses is the mean over the global batch, so one step equals the single-process step up to
  floating-point summation order;
- the epoch statistics (loss, reward mean, ...) are all-reduced, weighted by the samples each
  rank saw, so metrics.csv holds global-batch numbers as in a single-process run; the epoch's
  cost in backward passes (``cost.py``, counted in examples) is summed over the ranks instead,
  so ``train_backward_passes`` is the job's count, the same as a single process's, and
  ``train_backward_passes_per_example`` (a mean) is the global count over the global examples;
- every decision that changes control flow (the two-stage switch, an early stop of a defence's
  monitor) is taken on rank 0 and broadcast (``from_main``): with BatchNorm the ranks' running
  statistics differ, so their held-out accuracies can differ, and a switch on one rank but not
  another would leave the others waiting for ever; only rank 0 writes files;
- the per-epoch random streams (sampled actions, exploration, attack starts, dropout) mix in the
  rank (``rank_stream``), so the ranks draw independent numbers for their different samples;
  rank 0 draws exactly what a single process draws;
- a second model trained beside the classifier (L2L's attacker) has its gradients averaged over
  the ranks (``average_gradients``), as DDP does for the classifier, so its copies stay equal.

Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) nothing here is used and training is the
plain single-process path.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rlrobust.data.dataset import ImageData
from rlrobust.data.loader import (
    _AUGMENT_STREAM,
    CROP_PADDING,
    BatchLoader,
    apply_crop_flip,
    epoch_seed,
    to_unit_float,
)
from rlrobust.errors import ConfigError


class ShardedBatchLoader(BatchLoader):
    """``BatchLoader`` whose every global batch is split into ``world_size`` disjoint slices.

    Rank ``r`` yields slice ``r`` of each global batch (``torch.tensor_split``, so slices differ
    by at most one sample). The augmentation draws are made for the whole global batch, exactly
    as ``crop_flip`` draws them, and then sliced: each image gets the same crop and flip as in a
    single-process run. A final batch with fewer samples than ranks is dropped on every rank
    (an empty slice would leave one rank without a backward pass and hang DDP).
    """

    def __init__(self, data: ImageData, batch_size: int, *, rank: int, world_size: int, **kw):
        super().__init__(data, batch_size, **kw)
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside 0..{world_size - 1}; check RANK/WORLD_SIZE")
        self.rank, self.world_size = int(rank), int(world_size)

    def __len__(self) -> int:
        # Global batches per epoch (as BatchLoader), less a final one too small to split.
        n = self.images.shape[0]
        full = super().__len__()
        last = n - (full - 1) * self.batch_size if full else 0
        return full - 1 if full and last < self.world_size else full

    def local_samples(self) -> int:
        """Samples this rank sees in one epoch (the weight of its epoch statistics)."""
        n = self.images.shape[0]
        total = 0
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            size = min(self.batch_size, n - start)
            total += len(torch.arange(size).tensor_split(self.world_size)[self.rank])
        return total

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        generator = None
        if self.augment is not None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(epoch_seed(self.seed, self.epoch, _AUGMENT_STREAM))
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            mine = torch.arange(len(index), device=self.device).tensor_split(self.world_size)
            mine = mine[self.rank]
            images = self.images[index[mine]]
            if generator is not None:
                # Same draws, same order as loader.crop_flip on the whole global batch.
                n = len(index)
                span = 2 * CROP_PADDING + 1
                top = torch.randint(0, span, (n,), generator=generator, device=self.device)
                left = torch.randint(0, span, (n,), generator=generator, device=self.device)
                flip = torch.randint(0, 2, (n,), generator=generator, device=self.device).bool()
                images = apply_crop_flip(images, top[mine], left[mine], flip[mine])
            yield to_unit_float(images), self.labels[index[mine]]


@dataclass
class DistributedContext:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # True when this module started the process group (and must end it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DDP around ``model``; the wrapped module shares its parameters with ``model``."""
        from torch.nn.parallel import DistributedDataParallel

        if self.device.type == "cuda":
            return DistributedDataParallel(
                model, device_ids=[self.device.index], output_device=self.device.index
            )
        return DistributedDataParallel(model)

    def loader(self, data: ImageData, batch_size: int, **kw) -> ShardedBatchLoader:
        if batch_size < self.world_size:
            raise ConfigError(
                f"data.batch_size {batch_size} is smaller than the {self.world_size} processes; "
                f"use a batch size of at least {self.world_size} (the global batch is split)"
            )
        kw["device"] = self.device  # this rank's GPU, whatever train.device said
        return ShardedBatchLoader(
            data, batch_size, rank=self.rank, world_size=self.world_size, **kw
        )

    def average_stats(
        self, stats: dict[str, float], local_samples: int, totals: Collection[str] = ()
    ) -> dict[str, float]:
        """Sample-weighted mean of every epoch statistic over all ranks (one all_reduce); the
        stats named in ``totals`` (epoch totals such as ``backward_passes``) are summed instead,
        so they count the whole job."""
        names = sorted(stats)
        values = [stats[k] * (1 if k in totals else local_samples) for k in names]
        buffer = torch.tensor(
            values + [float(local_samples)], dtype=torch.float64, device=self.device
        )
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        total = max(float(buffer[-1]), 1.0)
        reduced = {
            k: float(v) if k in totals else float(v) / total
            for k, v in zip(names, buffer[:-1].tolist(), strict=True)
        }
        return {k: reduced[k] for k in stats}  # keep the single-process column order

    def from_main(self, value):
        """Rank 0's ``value`` on every rank (any picklable value): one decision for all."""
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


#: the offset between ranks' random streams: rank 0 keeps the single-process stream exactly. A
#: prime below 2**32, because torch's CPU generator (mt19937) keeps only a seed's low 32 bits;
#: the epoch streams of one rank (seed * 1_000_003 + epoch) are far from another rank's.
RANK_STREAM_OFFSET = 1_000_000_007


def rank_stream(seed: int, rank: int) -> int:
    """The seed of ``rank``'s stream derived from a single-process seed."""
    return seed + rank * RANK_STREAM_OFFSET


def average_gradients(module: torch.nn.Module) -> None:
    """Average ``module``'s gradients over the ranks of the running job (no-op outside one).

    For a model trained beside the DDP-wrapped classifier (L2L's attacker): the same start, the
    same averaged gradient and the same optimiser keep every rank's copy identical, so the
    attacker saved by rank 0 is the one every rank used, and a resumed run matches.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return
    world = dist.get_world_size()
    for parameter in module.parameters():
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad.div_(world)


def from_environment(device: torch.device) -> DistributedContext | None:
    """The torchrun context, or None when this is an ordinary single process.

    ``device`` is the configured one (``train.device``); on CUDA each rank takes GPU
    ``LOCAL_RANK`` and the NCCL backend, on CPU gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    try:
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError):
        raise ConfigError(
            "WORLD_SIZE is set but RANK is missing or not a number; start distributed training "
            "with `torchrun --nproc_per_node=N -m rlrobust train ...`"
        ) from None
    if device.type == "cuda":
        if torch.cuda.device_count() <= local_rank:
            raise ConfigError(
                f"LOCAL_RANK {local_rank} has no GPU ({torch.cuda.device_count()} visible); use "
                "--nproc_per_node <= the GPU count, or --train.device cpu"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, device, owns)

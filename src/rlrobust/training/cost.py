"""The training cost in backward passes through the classifier (metrics.csv
``train_backward_passes`` and ``train_backward_passes_per_example``).

Wall time (``epoch_seconds``) depends on the machine and on what else runs on it; the number of
backward passes through the classifier does not, so methods can be compared by it directly.

Unit: a backward pass through the classifier over a batch of n examples counts n (an
*example-backward*: the gradient of one example's loss through the network). The epoch total,
divided by the training examples seen, is the number of backward passes per example: 1 for
plain training, K + 1 for PGD-AT with K steps (K input-gradient passes for the attack, one for
the weight update), 2 for FGSM-AT. Counting examples rather than batches makes the figure
independent of the batch size (a short last batch counts what it holds) and makes the sum over
the ranks of a torchrun job equal the count of the same run in a single process.

What counts: every backward pass that reaches the classifier's output (its logits) --
``loss.backward()`` of the weight update, the input-gradient passes of an attack
(``torch.autograd.grad(loss, x)``, parameters frozen), the update of L2L's attacker (the
gradient flows through the frozen classifier into the attacker), each of two forward passes
that one backward runs through (TRADES, RL-adv: natural and adversarial logits are two passes).
What does not: forwards under ``torch.no_grad()`` (their output needs no gradient), forwards
whose output no backward reaches, and anything outside the epoch (the held-out accuracy, the
defences' end-of-epoch monitor, evaluation).

Mechanism: a forward hook on the module the training step calls (``train_one_epoch``'s
``model``) registers a tensor hook on each output that requires a gradient; autograd calls that
hook once for every backward pass that reaches the output, whichever call started it. The hook
adds the output's batch size (a shape, known on the host) to a python integer: no device read,
no extra autograd node, nothing changed in the gradients. The hook sits on the outermost module:

- under ``train.compile`` that is the ``torch.compile`` wrapper, whose own hooks run eagerly
  around the compiled call. Hooks on the inner module are traced by TorchDynamo: with torch
  2.13 they cost an extra compiled frame, and for an ``nn.Sequential`` classifier a graph
  break (checked with the ``eager`` backend);
- under torchrun it is the DDP wrapper: every forward of the step goes through it, and its
  output carries the gradient to the classifier on this rank. Each rank counts its own slice;
  ``DistributedContext.average_stats`` sums the counts over the ranks.

``register_full_backward_hook`` on the inner module would see the same passes, but it wraps
every forward's inputs and outputs in extra autograd nodes and warns at every weight update
(no input needs a gradient there); on the ``torch.compile`` wrapper it never fires.
The forward hook is removed when the epoch ends (also when it fails), and tensor hooks left on
outputs that no backward reached add nothing once the count is closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from torch import Tensor, nn

#: epoch stats that are totals, not means: summed over the ranks of a torchrun job.
EPOCH_TOTALS = ("backward_passes",)


class BackwardPasses:
    """The count of one epoch: ``examples`` is the sum of the batch sizes of the backward
    passes through the model while the count was open."""

    def __init__(self) -> None:
        self.examples = 0
        self.open = True

    def add(self, batch: int, _grad: Tensor) -> None:
        if self.open:
            self.examples += batch

    def per_example(self, seen: int) -> float:
        return self.examples / max(seen, 1)


@contextmanager
def count_backward_passes(model: nn.Module) -> Iterator[BackwardPasses]:
    """Count the backward passes through ``model``'s output inside the block (module docstring)."""
    count = BackwardPasses()

    def on_forward(_module: nn.Module, _inputs, output) -> None:
        if isinstance(output, Tensor) and output.requires_grad:
            output.register_hook(partial(count.add, output.shape[0] if output.dim() else 1))

    handle = model.register_forward_hook(on_forward)
    try:
        yield count
    finally:
        handle.remove()
        count.open = False

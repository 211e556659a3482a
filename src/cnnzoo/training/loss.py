"""The training loss of a step (cross-entropy, plus the auxiliary heads') and the epoch's sums over the ranks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .recipes import Recipe
from .run import Run
from .runtime import all_reduce_sum


def _reduced(run: Run, seen_before: int) -> list[float]:
    """This epoch so far, summed over the ranks: loss x n, top-1 hits, images, images since this session began."""
    extra = run.sums.new_tensor([run.seen, run.seen - seen_before])
    return all_reduce_sum(torch.cat([run.sums, extra])).tolist()


def _loss(out: torch.Tensor | tuple[torch.Tensor, ...], y: torch.Tensor, recipe: Recipe
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the main head plus ``aux_loss_weight`` x each auxiliary head (Szegedy et al. §5)."""
    logits, *aux = out if isinstance(out, tuple) else (out,)
    loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    for head in aux:
        loss = loss + recipe.aux_loss_weight * F.cross_entropy(head, y, label_smoothing=recipe.label_smoothing)
    return loss, logits


def _zero_loss(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """0, through every output: a data-parallel rank whose batch had no readable image still takes part in the
    gradient all-reduce (with zeros) instead of leaving the other ranks waiting for it."""
    return sum(o.float().sum() for o in (out if isinstance(out, tuple) else (out,))) * 0.0

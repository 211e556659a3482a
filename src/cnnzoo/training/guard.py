"""Decisions every rank must share: stop on a signal, stop on (or skip) a non-finite loss.

Each step's loss is checked for inf/NaN on the device (no host read); the first bad iteration and its loss value are
kept there. ``poll`` reads them, together with the signal flag, every ``check_every`` steps (every step on the CPU,
where reading costs nothing; every 16 on a GPU) and at the end of each epoch. Under torchrun the flags are reduced
with MAX over the ranks first, so every rank takes the same decision at the same step: a NaN on one rank, or SIGTERM
delivered to one process, stops them all together instead of leaving the others waiting in an all-reduce.

Policies for a non-finite loss (``--on-nonfinite``):

- ``stop`` (default): training stops with :class:`NonFiniteLoss` naming the epoch, step and loss; nothing computed
  after the bad step is saved, so the last checkpoint (written at the previous epoch's end) stays the last good one;
- ``skip``: the step is not applied (gradients dropped, no optimizer update; with a skip decision every step, read
  on the host), counted in ``metrics.jsonl`` as ``skipped_steps``; ``MAX_CONSECUTIVE_SKIPS`` bad steps in a row stop
  training as ``stop`` does.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from .runtime import Runtime, all_reduce_max

POLICIES = ("stop", "skip")
MAX_CONSECUTIVE_SKIPS = 20
_NONE = 2**62  # "no bad iteration yet": MAX-reduced as _NONE - iteration


class NonFiniteLoss(RuntimeError):
    """The loss became inf or NaN; the message names the epoch, step and value and where the last good state is."""

    def __init__(self, message: str, out: object) -> None:
        super().__init__(message)
        self.out = out


class StepGuard:
    def __init__(self, device: torch.device, runtime: Runtime, *, policy: str = "stop") -> None:
        if policy not in POLICIES:
            raise UserError(f"--on-nonfinite must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.device, self.runtime, self.policy = device, runtime, policy
        self.check_every = 1 if device.type == "cpu" else 16
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)  # iteration, -1: none
        self.bad_value = torch.zeros((), dtype=torch.float32, device=device)
        self.consecutive = 0

    def record(self, loss: torch.Tensor, iteration: int) -> None:
        """Remember the first iteration whose loss is not finite (device ops only)."""
        if self.policy == "skip":
            return  # decided by ``skip`` right after the backward pass
        value = loss.detach().float()
        first = (self.first_bad < 0) & ~torch.isfinite(value)
        self.first_bad = torch.where(first, iteration, self.first_bad)
        self.bad_value = torch.where(first, value, self.bad_value)

    def skip(self, loss: torch.Tensor, iteration: int) -> bool:
        """``skip`` policy: True when any rank's loss is not finite (the step must then be dropped on every rank)."""
        if self.policy != "skip":
            return False
        bad = all_reduce_max((~torch.isfinite(loss.detach().float())).to(torch.int64).view(1))
        if not bad.item():
            self.consecutive = 0
            return False
        self.consecutive += 1
        if self.consecutive >= MAX_CONSECUTIVE_SKIPS:  # not a spike: training has diverged
            self.first_bad.fill_(iteration)
            self.bad_value.copy_(loss.detach().float())
        return True

    def poll(self, signum: int | None, step: int, *, force: bool = False) -> tuple[int | None, int | None, float]:
        """(signal to stop on, first non-finite iteration, its loss value), agreed by every rank.

        Reads device state only every ``check_every`` steps or when ``force``d (the epoch's last step). In one
        process a signal is acted on at once (it is a host flag), after the same check, so that no checkpoint is
        ever written with the weights of a bad step; under torchrun it waits for the next check, which every rank
        makes at the same step."""
        local_signal = signum is not None and not self.runtime.distributed
        if not (force or local_signal or (step + 1) % self.check_every == 0):
            return None, None, 0.0
        first = self.first_bad
        encoded = torch.where(first >= 0, _NONE - first, torch.zeros_like(first))
        flags = torch.stack([torch.tensor(signum or 0, device=self.device), encoded])
        got_signal, encoded = all_reduce_max(flags).tolist()
        bad = _NONE - encoded if encoded else None
        value = self.bad_value.item() if bad is not None and self.first_bad.item() == bad else float("nan")
        return (int(got_signal) or None), bad, value

    def message(self, bad: int, value: float, *, steps_per_epoch: int, last_good: str) -> str:
        epoch, step = divmod(bad, steps_per_epoch)
        what = "non-finite loss"
        if self.consecutive:
            what = f"{MAX_CONSECUTIVE_SKIPS} non-finite losses in a row, the last"
        advice = "" if self.consecutive else ", or skip such steps with --on-nonfinite skip"
        return (f"{what} ({value:g}) at epoch {epoch + 1}, step {step + 1} of {steps_per_epoch} (iteration {bad + 1}); "
                f"training stopped, {last_good}. Lower the learning rate (--set lr=...){advice}")


__all__ = ["MAX_CONSECUTIVE_SKIPS", "POLICIES", "NonFiniteLoss", "StepGuard"]

"""Why a run stops early, decided in one place: signals, a data-loading worker that died, a non-finite loss, weights
that became non-finite. (What the loop then does, checkpoint, summary, exception, is the trainer's.)

- :class:`StopFlag` turns SIGINT/SIGTERM/SIGHUP into a flag the trainer checks after every step (it checkpoints and
  raises :class:`TrainingInterrupted`, exit 128 + the signal); a data-loading worker that died stops the run the same
  way (:func:`worker_death` recognises PyTorch's report; :class:`WorkerDied`, exit 1);
- :class:`StepGuard` takes the decisions every rank must share. Each step's loss is checked for inf/NaN on the device
  (no host read); the first bad iteration and its loss value are kept there. ``poll`` reads them, together with the
  signal flag, every ``check_every`` steps (every step on the CPU, where reading costs nothing; every 16 on a GPU)
  and at the end of each epoch. Under torchrun the flags are reduced with MAX over the ranks first, so every rank
  takes the same decision at the same step: a NaN on one rank, or SIGTERM delivered to one process, stops them all
  together instead of leaving the others waiting in an all-reduce. ``bad_weights`` finds weights that became
  non-finite (never saved, as ``last`` or ``best``), also agreed by every rank.

Policies for a non-finite loss (``--on-nonfinite``):

- ``stop`` (default): training stops with :class:`NonFiniteLoss` naming the epoch, step and loss; nothing computed
  after the bad step is saved, so the last checkpoint (written at the previous epoch's end) stays the last good one;
- ``skip``: the step is not applied (gradients dropped, no optimizer update; with a skip decision every step, read
  on the host), counted in ``metrics.jsonl`` as ``skipped_steps``; ``MAX_CONSECUTIVE_SKIPS`` bad steps in a row stop
  training as ``stop`` does.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import unusable_tensors
from ..errors import UserError
from .distributed import Runtime, all_reduce_max

POLICIES = ("stop", "skip")
MAX_CONSECUTIVE_SKIPS = 20
_NONE = 2**62  # "no bad iteration yet": MAX-reduced as _NONE - iteration


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM/SIGHUP arrived: the state was checkpointed in ``out``; ``--resume out`` continues."""

    def __init__(self, signum: int, out: Path) -> None:
        super().__init__(f"{signal.Signals(signum).name}: checkpoint saved; resume with --resume {out}")
        self.signum, self.out = signum, out

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP (the terminal closed)


class WorkerDied(TrainingInterrupted):
    """A data-loading process died (the OOM killer, a signal): checkpointed like a signal, exit status 1."""

    def __init__(self, reason: str, out: Path) -> None:
        KeyboardInterrupt.__init__(self, f"{reason}; checkpoint saved at the last finished step; resume with "
                                   f"--resume {out}")
        self.signum, self.out, self.reason = 0, out, reason

    @property
    def exit_code(self) -> int:
        return 1


def worker_death(exc: BaseException) -> str | None:
    """The reason, when ``exc`` is PyTorch's report of a DataLoader worker that died; else None."""
    text = str(exc)
    if isinstance(exc, RuntimeError) and "DataLoader worker" in text:
        return "a data-loading worker died (" + text.split(". ")[0].strip().rstrip(".") + ")"
    return None


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopFlag:
    """SIGINT/SIGTERM/SIGHUP set a flag that the loop checks after every step; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class NonFiniteLoss(RuntimeError):
    """The loss became inf or NaN; the message names the epoch, step and value and where the last good state is."""

    def __init__(self, message: str, out: object) -> None:
        super().__init__(message)
        self.out = out


class StepGuard:
    """The non-finite guard: the decisions every rank must share, read together with the signal flag (module doc)."""

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

    def bad_weights(self, net: nn.Module, where: str, *, last_good: str) -> str | None:
        """The stop message when a tensor of ``net`` became inf/NaN by ``where`` (``checkpoint.unusable_tensors``) on
        any rank (batch-norm statistics may differ between ranks: one stops, all stop); None when all are finite."""
        bad = unusable_tensors(net)
        if not all_reduce_max(torch.tensor([len(bad)], device=self.device)).item():
            return None
        bad = bad or ["on another process"]
        return (f"{len(bad)} tensors of the network became non-finite (inf/NaN; first {bad[0]}) by {where}; "
                f"training stopped and nothing of it was saved, {last_good}. Lower the learning rate (--set lr=...)")


__all__ = ["MAX_CONSECUTIVE_SKIPS", "POLICIES", "STOP_SIGNALS", "NonFiniteLoss", "StepGuard", "StopFlag",
           "TrainingInterrupted", "WorkerDied", "worker_death"]

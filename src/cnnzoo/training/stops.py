"""Signals and dead workers: :class:`StopFlag` turns SIGINT/SIGTERM into a flag the trainer checks after every step
(it checkpoints and raises :class:`TrainingInterrupted`); a data-loading worker that died stops the run the same way
(:class:`WorkerDied`).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any


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


__all__ = ["STOP_SIGNALS", "StopFlag", "TrainingInterrupted", "WorkerDied", "worker_death"]

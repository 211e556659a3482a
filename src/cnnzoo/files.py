"""Files written atomically: a temporary name in the same folder, flushed and fsynced, then ``os.replace`` (atomic on
POSIX and Windows), so a crash or kill at any moment leaves the previous file intact; JSON without bare NaN.

A write that runs out of space is one :class:`DiskFull`; one that may not write there is a ``UserError``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import UserError


class DiskFull(UserError, OSError):
    """A write ran out of space; the file it would have replaced is intact."""


_TMP = re.compile(r"^\..+\.tmp-(\d+)$")  # ``.NAME.tmp-PID``: a write in progress (or interrupted by a kill)


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """``write(file)`` into a temporary file next to ``path``, fsync it, then ``os.replace`` it onto ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writes = None
    try:
        with open(tmp, "wb") as f:
            writes = _Writes(f)
            write(writes)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as raised:
        tmp.unlink(missing_ok=True)
        # torch.save reports a failed write as RuntimeError("unexpected pos ..."): the OSError it hid says why
        exc = raised if isinstance(raised, OSError) else getattr(writes, "error", None)
        if exc is None:
            raise
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = "the previous file is intact" if path.exists() else "nothing was written"
            raise DiskFull(f"{path}: no space left on device ({kept})") from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise UserError(f"{path.parent}: cannot write there ({exc.strerror})") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class _Writes:
    """A file's ``write``/``flush`` that remember the OSError they raised (torch.save replaces it with its own)."""

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        try:
            self.f.flush()
        except OSError as exc:
            self.error = exc
            raise


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files of writes whose process is gone (a kill mid-write leaves ``.NAME.tmp-PID``)."""
    removed = []
    for entry in Path(folder).iterdir() if Path(folder).is_dir() else ():
        match = _TMP.match(entry.name)
        if match is None or not entry.is_file() or _alive(int(match.group(1))):
            continue
        entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not writing it now: a leftover of an earlier process with the same id
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: leave its file alone
        return True
    return True


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as ``None`` (a bare ``NaN`` is not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")

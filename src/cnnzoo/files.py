"""Outputs written so that a crash never leaves half a file, and so that what is at the path is respected.

How an output is written depends on what its path names (README, "Bad files and faults"):

- nothing, or a regular file: the new content goes to a temporary name in the same folder (``.NAME.tmp-PID``), is
  flushed and fsynced, then renamed onto the path with ``os.replace`` (atomic on POSIX and Windows): a crash or kill
  at any moment leaves the previous file intact, or nothing. A file that replaces another keeps its permission
  bits; a read-only file is not replaced;
- a symbolic link: the same rule for the file it leads to (the link stays a link; a dangling link's file is created);
- anything else (a device such as ``/dev/null`` or ``/dev/full``, a FIFO, ``/dev/stdout``, ``/dev/stderr``,
  ``/dev/fd/N``): written through, in place, never replaced by a regular file. ``/dev/stdout`` and its kin write to
  this process's own descriptor, after what it has printed (a reader that went away ends the output, not the work);
- a folder, a path whose folder does not exist, a name too long, a link loop: a one-line :class:`WriteError`.

Every failure to write is one :class:`WriteError` (a ``UserError`` and an ``OSError``) naming the path and why; one
that runs out of space is :class:`DiskFull`. JSON is written without bare NaN.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError


class WriteError(UserError, OSError):
    """An output that cannot be written; the message names the path and why. A file it would replace is intact."""


class DiskFull(WriteError):
    """A write ran out of space (a file it would have replaced is intact)."""


# ``.NAME.tmp-PID`` (``.NAME.tmp-PID.SUFFIX`` for writers that want a suffix): a write in progress, or one a kill
# interrupted
_TMP = re.compile(r"^\..+\.tmp-(\d+)(?:\.\w+)?$")
# this process's descriptors by name: written to the descriptor itself (its offset, after what was printed)
_DESCRIPTOR = re.compile(r"^/(?:dev/(?P<std>stdout|stderr)|dev/fd/(?P<fd>\d+)|"
                         r"proc/(?P<pid>self|thread-self|\d+)/fd/(?P<pfd>\d+))$")
_MAX_LINKS = 40  # as the kernel's limit on symbolic links in one lookup
_NAME_MAX = 255  # bytes in one path component on the common file systems


@dataclass(frozen=True)
class Target:
    """Where an output's bytes go: ``path`` (the given path, or the file a symbolic link leads to), replaced
    atomically unless ``through`` (a device, a FIFO, a descriptor: written in place)."""

    path: Path
    through: bool = False
    fd: int | None = None  # ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``: this process's descriptor N
    mode: int | None = None  # permission bits of the regular file a replacement takes the place of

    @property
    def exists(self) -> bool:
        return self.through or self.mode is not None


def output_target(path: str | Path) -> Target:
    """What writing ``path`` means (see the module docstring); a path that cannot be written is a WriteError."""
    path = Path(path)
    fd = _descriptor(path)
    if fd is not None:
        return Target(path, through=True, fd=fd)
    real = Path(os.path.realpath(path)) if os.path.islink(path) else path
    try:
        st = os.stat(real)
    except FileNotFoundError:
        if not real.parent.is_dir():
            where = f"{real.parent}, where the link {path} leads," if real != path else real.parent
            raise WriteError(f"{path}: the folder {where} does not exist") from None
        if len(real.name.encode()) > _NAME_MAX:
            raise WriteError(f"{path}: file name too long ({len(real.name.encode())} bytes, at most "
                             f"{_NAME_MAX})") from None
        return Target(real)
    except OSError as exc:  # a link loop, a name too long, a file where a folder should be, no permission
        raise write_error(path, exc) from None
    if stat.S_ISDIR(st.st_mode):
        raise WriteError(f"{path}: is a folder; name a file in it")
    if stat.S_ISREG(st.st_mode):
        if not os.access(real, os.W_OK):
            raise WriteError(f"{path}: a read-only file; not replaced (make it writable, or name another file)")
        return Target(real, mode=stat.S_IMODE(st.st_mode))
    return Target(real, through=True)


def _descriptor(path: Path) -> int | None:
    """The descriptor of this process that ``path`` names (``/dev/stdout``, ``/proc/self/fd/1``, a link leading to
    one of them), else None. Followed link by link: resolved whole, ``/proc/self/fd/1`` would name a pipe's
    ``pipe:[N]`` or the file the shell redirected to, which must not be replaced."""
    current = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        named = _DESCRIPTOR.match(current)
        if named and named["pid"] in (None, "self", "thread-self", str(os.getpid())):
            return {"stdout": 1, "stderr": 2}.get(named["std"] or "") or int(named["fd"] or named["pfd"])
        if not os.path.islink(current):
            return None
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return None  # a loop: output_target names it


def temp_path(path: Path, *, keep_suffix: bool = False) -> Path:
    """``.NAME.tmp-PID`` beside ``path`` (a shortened name where NAME is too long to take the prefix and suffix);
    ``keep_suffix``: ``.NAME.tmp-PID.SUFFIX``, for writers that go by the file's suffix (``torch.export.save``)."""
    path = Path(path)
    suffix = f".tmp-{os.getpid()}" + (path.suffix if keep_suffix and re.fullmatch(r"\.\w+", path.suffix) else "")
    name = path.name
    if len(f".{name}{suffix}".encode()) > _NAME_MAX:
        name = hashlib.sha256(name.encode()).hexdigest()[:24]
    return path.with_name(f".{name}{suffix}")


def write_error(path: str | Path, exc: OSError, *, kept: str = "") -> WriteError:
    """One line for a failed write of ``path``; ``kept``: what is left at the path (e.g. "the previous file is
    intact")."""
    if isinstance(exc, WriteError):
        return exc
    path = Path(path)
    note = f" ({kept})" if kept else ""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"{path}: no space left on device{note}")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return WriteError(f"{path}: cannot write there ({exc.strerror}){note}")
    if code == errno.ENOENT and not path.parent.is_dir():
        return WriteError(f"{path}: the folder {path.parent} does not exist{note}")
    if code == errno.EISDIR:
        return WriteError(f"{path}: is a folder; name a file in it")
    if code == errno.ENAMETOOLONG:
        return WriteError(f"{path}: file name too long{note}")
    return WriteError(f"{path}: cannot write ({exc.strerror or type(exc).__name__}){note}")


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """``write(file)`` to ``path`` by the rule of the module docstring: atomically through a temporary file beside
    it for a new path or a regular file, in place for a device, a FIFO or a descriptor."""
    target = output_target(path)
    if target.through:
        _write_through(Path(path), target, write)
        return
    tmp = temp_path(target.path)
    writes = None
    try:
        with _create(tmp, target.mode) as f:
            writes = _Writes(f)
            write(writes)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target.path)
    except (OSError, RuntimeError) as raised:
        tmp.unlink(missing_ok=True)
        # torch.save reports a failed write as RuntimeError("unexpected pos ..."): the OSError it hid says why
        exc = raised if isinstance(raised, OSError) else getattr(writes, "error", None)
        if exc is None:
            raise
        kept = "the previous file is intact" if target.exists else "nothing was written"
        raise write_error(path, exc, kept=kept) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.path.parent)


def _create(tmp: Path, mode: int | None) -> Any:
    """A new file ``tmp`` open for binary writing, with ``mode``'s permission bits when it replaces a file."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def _write_through(path: Path, target: Target, write: Callable[[Any], None]) -> None:
    """``write(file)`` into a device, a FIFO or one of this process's descriptors, in place."""
    writes = None
    try:
        if target.fd is not None:
            for stream in (sys.stdout, sys.stderr):  # what was printed comes first
                try:
                    stream.flush()
                except (OSError, ValueError, AttributeError):
                    pass
            f = os.fdopen(os.dup(target.fd), "wb")
        else:
            f = open(target.path, "wb")  # noqa: SIM115  (O_TRUNC means nothing to a device or a FIFO)
        with f:
            writes = _Writes(f)
            write(writes)
            f.flush()
    except (OSError, RuntimeError) as raised:
        exc = raised if isinstance(raised, OSError) else getattr(writes, "error", None)
        if exc is None:
            raise
        if target.fd is not None and exc.errno == errno.EPIPE:
            return  # the reader went away: the output ends there, the work does not (as for printed output)
        raise write_error(path, exc) from None


class Replacement:
    """A new version of ``path`` built at ``self.tmp`` by something that writes files by name (an exporter), then
    put in place by :meth:`commit` under the rule of the module docstring. Leaving the ``with`` block without a
    commit removes the temporary file: a failure (an error, a kill's leftover aside) leaves the previous file at
    ``path``, or nothing.

    The temporary file is beside the target (same folder, so the replacement is one rename); for a target written
    through (a device, a FIFO, a descriptor) it is in the system's temporary folder and copied through on commit.
    ``keep_suffix``: the temporary name ends in the target's suffix too (see :func:`temp_path`).
    """

    def __init__(self, path: str | Path, *, keep_suffix: bool = False) -> None:
        self.path = Path(path)
        self.target = output_target(self.path)
        if self.target.through:
            fd, name = tempfile.mkstemp(prefix=".cnnzoo-", suffix=temp_path(self.path, keep_suffix=keep_suffix).name)
            os.close(fd)
            self.tmp = Path(name)
        else:
            self.tmp = temp_path(self.target.path, keep_suffix=keep_suffix)

    def __enter__(self) -> Replacement:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.tmp.unlink(missing_ok=True)

    def keep_as(self, path: Path) -> Path:
        """Move the temporary file to ``path`` instead (e.g. a result that failed its verification)."""
        shutil.move(str(self.tmp), str(path))
        return path

    def commit(self) -> None:
        """Put the temporary file in place: one rename (fsynced) onto a file, or its bytes written through."""
        if self.target.through:
            with open(self.tmp, "rb") as src:
                _write_through(self.path, self.target, lambda f: shutil.copyfileobj(src, f, 1 << 20))
            return
        kept = "the previous file is intact" if self.target.exists else "nothing was written"
        try:
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
                if self.target.mode is not None:
                    os.fchmod(f.fileno(), self.target.mode)
            os.replace(self.tmp, self.target.path)
        except OSError as exc:
            raise write_error(self.path, exc, kept=kept) from None
        _fsync_dir(self.target.path.parent)


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

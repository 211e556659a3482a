"""What a run writes: its directory (config.json, metrics.jsonl, summary.json, confusion_matrix.csv, weights) and
its console output (the header, one line per epoch with the ETA, the progress bar).

Every file is written whole and atomically (temporary file + ``os.replace``): metrics.jsonl is rewritten from the
checkpointed history each epoch, so a resumed run has exactly one line per epoch.

The first lines of a run, ``header_lines(...)``, say what it trains on, what it trains, with which recipe, schedule
and augmentation, e.g.::

    data: /photos (train/ + val/), 10 classes, 8,000 training / 2,000 validation images, held in memory (decoded once)
    model: resnet20, 272,474 parameters
    recipe: resnet_cifar (He et al. 2016 §4.2 (batch 128, ...))
    schedule: lr 0.1, x0.1 at epochs 4 and 6 of 8 (He et al.'s 32k/48k of 64k iterations, scaled x0.0077)
    augmentation at 32 px: pad 4 (zeros) + random 32x32 crop, flip on
    plan: 8 epochs x 62 steps = 496 steps, batch 128
    layout: channels-last, measured 810 img/s against NCHW 640 img/s (1.27x; a probe of 15 steps, 2.4 s)
    precision: fp32; bf16 trained 1.74x faster in the probe on this CPU (native AVX512_BF16, AMX-BF16): try --amp bf16

(the layout lines come from ``training.layout``).
"""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tqdm.auto import tqdm

from .. import checkpoint as ckpt
from .. import files
from ..data import Data, Geometry
from ..errors import UserError
from ..metrics import confusion_csv
from ..version import __version__
from .config import RunConfig

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

METRIC_FIELDS = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "images_per_s",
                 "seconds")


def config_record(
    config: RunConfig, *, data: Data, eval_resize: int, device: torch.device, amp_dtype: torch.dtype | None,
    channels_last: bool, steps_per_epoch: int, total_steps: int, epochs: int, world_size: int,
) -> dict[str, Any]:
    """config.json: the run's settings and what was resolved from its data and machine (everything needed to
    rebuild the model, its input pipeline and the schedule; plain data)."""
    return {
        **config.to_dict(),
        "data": data.spec,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "in_channels": data.in_channels,
        "eval_resize": eval_resize,
        "mean": list(data.mean),
        "std": list(data.std),
        "train_images": len(data.train),
        "val_images": len(data.val),
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "device": str(device),
        "amp": {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype],
        "channels_last": channels_last,
        "world_size": world_size,  # processes; recipe.batch_size is the global batch, split evenly over them
    }


def git_commit() -> str | None:
    """The commit of the cnnzoo checkout this runs from, if it is one."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def summary(
    config: dict[str, Any], data: Data, history: list[dict[str, Any]], best: dict[str, Any], train_seconds: float,
    images_seen: int, *, interrupted: bool, net: nn.Module, skipped_files: list[str] | None = None,
    stop_reason: str | None = None,
) -> dict[str, Any]:
    """``skipped_files``: every unreadable file (the folder scan's and those that failed to decode while training,
    on every rank); ``stop_reason``: why an interrupted run stopped (a signal, a non-finite loss)."""
    last = history[-1] if history else {}
    return {
        "model": config["model"],
        "recipe": config["recipe"]["name"],
        "data": config["data"],
        "epochs": len(history),
        "planned_epochs": config["epochs"],
        "best_epoch": best["epoch"],
        "best_val_top1": best["val_top1"] if history else None,
        "best_val_top5": best["val_top5"] if history else None,
        "final_val_top1": last.get("val_top1"),
        "final_val_top5": last.get("val_top5"),
        "final_val_loss": last.get("val_loss"),
        "train_seconds": train_seconds,
        "images_per_s": images_seen / train_seconds if train_seconds > 0 else None,
        "skipped_files": list(data.skipped_files if skipped_files is None else skipped_files),
        "skipped_count": len(data.skipped_files if skipped_files is None else skipped_files),
        "seed": config["seed"],
        "params": sum(p.numel() for p in net.parameters()),
        "device": config["device"],
        "interrupted": interrupted,
        "stop_reason": stop_reason,
        "world_size": config.get("world_size", 1),
        "cnnzoo_version": __version__,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "git_commit": git_commit(),
    }


# what a run writes: an --out holding any of these is an earlier run, never written over without --overwrite
RUN_FILE_NAMES = ("config.json", "metrics.jsonl", "summary.json", "confusion_matrix.csv", "last.pt", "previous.pt",
                  "last.safetensors", "best.safetensors", "report.html")


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    """``runs/<model>-<time>``, created here so that no other run can take it: two runs started in the same second
    (fast restarts, several jobs) get ``-2``, ``-3``... Under torchrun rank 0 alone calls this and shares the name."""
    base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"cannot create the run directory {path} ({exc.strerror}); pass --out DIR") from None
    raise UserError(f"{base}: 10,000 runs started in one second; pass --out DIR")


def check_out(out: Path, *, overwrite: bool) -> list[str]:
    """Refuse an ``--out`` the run cannot own: a file, a folder it cannot write, an earlier run (unless
    ``overwrite``: then that run's files are removed first, so that nothing of two runs ever mixes)."""
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out}: is an existing file, not a run directory")
        existing = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
        found = [name for name in RUN_FILE_NAMES if (out / name).exists()]
    except OSError as exc:  # a name too long, a loop of links...
        raise UserError(f"--out {out}: not a usable path ({exc.strerror})") from None
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: cannot write in {existing} (permission denied or read-only)")
    if found and not overwrite:
        raise UserError(f"--out {out}: holds an earlier run ({', '.join(found)}); continue it with --resume {out}, "
                        "or replace it with --overwrite")
    return found  # removed by ``RunFiles.create(..., replace=found)``, once the new run has passed every check


LOCK_NAME = ".lock"  # in the run directory; holds the PID of the process that holds it


class RunLock:
    """One run per folder: an exclusive ``fcntl.flock`` on ``DIR/.lock``, held from before the run reads or writes
    anything there until it ends. The OS releases it when the process ends, however it ends (a kill included), so a
    lock is never stale; the file itself stays. A second run, ``--overwrite`` or ``--resume`` of a held folder is
    refused naming the holder's PID. Under torchrun rank 0 alone takes it. (Where ``fcntl`` is missing, Windows,
    nothing is locked.)"""

    def __init__(self, folder: Path, fd: int | None, created: Path | None) -> None:
        self.folder, self.fd, self.created = folder, fd, created

    @classmethod
    def take(cls, folder: Path, flag: str = "--out", *, made: bool = False) -> RunLock:
        """Lock ``folder``, creating it (and its missing parents) if needed; ``made``: the caller just created it
        for this run (``abandon`` removes it then too)."""
        try:
            if folder.exists() and not folder.is_dir():
                raise UserError(f"{flag} {folder}: is an existing file, not a run directory")
            missing = [p for p in reversed([folder, *folder.parents]) if not p.exists()]
            created = missing[0] if missing else folder if made else None
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            what = "cannot write there" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "cannot create it"
            raise UserError(f"{flag} {folder}: {what} ({exc.strerror})") from None
        if fcntl is None:
            return cls(folder, None, created)
        try:
            fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"{flag} {folder}: cannot write there ({exc.strerror})") from None
        refusal = _held_by_another(fd, folder, flag)
        if refusal is not None:
            os.close(fd)
            raise UserError(refusal)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(folder, fd, created)

    @staticmethod
    def refusal(folder: Path, flag: str = "--out") -> str | None:
        """The refusal ``take`` would give ``folder`` now, because another process holds it; None when it is free (or
        has no lock file), without creating or keeping anything."""
        if fcntl is None:
            return None
        try:
            fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
        except OSError:  # no such folder or lock file: nobody holds it
            return None
        try:
            return _held_by_another(fd, folder, flag)
        finally:
            os.close(fd)  # (and the probe's own lock with it)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None

    __del__ = release  # a Run dropped without run_training's end (prepare alone)

    def abandon(self) -> None:
        """Release, and remove what ``take`` created if nothing else was put there (a refused run leaves nothing)."""
        self.release()
        if self.created is None:
            return
        (self.folder / LOCK_NAME).unlink(missing_ok=True)
        for path in (self.folder, *self.folder.parents):
            try:
                path.rmdir()
            except OSError:
                return
            if path == self.created:
                return


def _held_by_another(fd: int, folder: Path, flag: str) -> str | None:
    """Lock ``fd`` (the folder's lock file); the refusal naming the holder's PID if another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        who = f"process {holder}" if holder.isdigit() else "another process"
        return f"{flag} {folder}: in use by {who} (a run is training there); wait for it to end, or use another folder"


def row_for_json(row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A metrics row as JSON: a non-finite value becomes null and is named under ``nonfinite``."""
    out = {k: row[k] for k in keys if k in row}
    bad = [k for k, v in out.items() if isinstance(v, float) and not math.isfinite(v)]
    for k in bad:
        out[k] = None
    return {**out, "nonfinite": bad} if bad else out


@dataclass
class RunFiles:
    """The run directory. ``main=False`` (data-parallel ranks other than 0): nothing is written, no progress shown."""

    out: Path
    main: bool = True

    @classmethod
    def create(cls, out: str | Path, *, main: bool = True, replace: list[str] = ()) -> RunFiles:
        path = Path(out)
        if main:
            for name in replace:  # an earlier run's files (--overwrite): none of them may mix with this run's
                (path / name).unlink(missing_ok=True)
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"--out {path}: cannot create it ({exc.strerror})") from None
            files.clean_stale_temps(path)  # left by writes a kill interrupted
        return cls(path, main)

    def progress(self, total: int, initial: int, desc: str, enabled: bool | None, seen: int = 0) -> ProgressBar:
        return ProgressBar(total, initial, desc, enabled if self.main else False, seen)

    def write_config(self, config: dict[str, Any]) -> None:
        if self.main:
            files.write_json(self.out / "config.json", config)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.main:
            files.write_json(self.out / "summary.json", summary)

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        if not self.main:
            return
        keys = (*METRIC_FIELDS, "lr_first", "val_count", "train_images", "skipped_steps")
        lines = (json.dumps(row_for_json(row, keys), allow_nan=False) for row in history)
        files.write_text(self.out / "metrics.jsonl", "".join(line + "\n" for line in lines))

    def write_confusion(self, confusion: torch.Tensor, classes: tuple[str, ...]) -> None:
        if self.main:
            files.write_text(self.out / "confusion_matrix.csv", confusion_csv(confusion, classes))

    def save_weights(self, kind: str, net: nn.Module, config: dict[str, Any], *, epoch: int,
                     metrics: dict[str, Any]) -> None:
        """``kind``.safetensors with what evaluation needs to rebuild the model and its inputs."""
        if not self.main:
            return
        keys = ("model", "model_kwargs", "num_classes", "classes", "in_channels", "image_size", "eval_resize",
                "mean", "std", "data", "val_fraction")
        metadata = {k: config[k] for k in keys}
        # where and how the run computed: evaluation on the same kind of device uses the run's layout and precision
        metadata.update({k: config[k] for k in ("device", "amp", "layout") if k in config})
        metadata.update(recipe=config["recipe"]["name"], epoch=epoch, cnnzoo_version=__version__,
                        val_top1=metrics.get("val_top1"), val_top5=metrics.get("val_top5"))
        ckpt.save_weights(self.out / f"{kind}.safetensors", net.state_dict(), metadata)


# --- console output --------------------------------------------------------------------------------------------------

def print_line(line: str) -> None:
    print(line, flush=True)  # flushed: a pipe (a log file, a parent process) sees every epoch as it ends


def silent(line: str) -> None:
    """The log of a run that prints nothing (``log=None``, and every data-parallel rank but 0)."""


def epoch_line(row: dict[str, Any], num_epochs: int) -> str:
    """One epoch; ``lr A->B``: the first and the last step's learning rates, when they differ (warm-up, cosine...)."""
    first = row.get("lr_first", row["lr"])
    lr = f"{row['lr']:.4g}" if math.isclose(first, row["lr"], rel_tol=1e-6) else f"{first:.4g}->{row['lr']:.4g}"
    return (
        f"epoch {row['epoch']:>3}/{num_epochs}  lr {lr}  train loss {row['train_loss']:.4f} "
        f"top-1 {row['train_top1']:.2f}%  val loss {row['val_loss']:.4f} top-1 {row['val_top1']:.2f}% "
        f"top-5 {row['val_top5']:.2f}%  {row['images_per_s']:,.0f} img/s  {row['seconds']:.1f} s"
    )


HELD = {"resident": "held in memory (decoded once)", "cache": "held in memory (read from the disk cache)",
        "streamed": "streamed from the files (decoded every epoch)"}


def header_lines(config: RunConfig, data: Data, *, params: int, geo: Geometry, schedule_line: str,
                 steps_per_epoch: int, total_steps: int, num_epochs: int, extra: list[str] = ()) -> list[str]:
    """``extra``: lines after the model's (fine-tuning: what was loaded, what is frozen)."""
    recipe = config.recipe
    layout = f" ({data.layout})" if data.layout else ""
    held = HELD.get(data.held, data.held) if data.layout else "resident on the device"
    options = "".join(f", {k}={v}" for k, v in config.model_kwargs.items())
    if config.resume is not None:
        default = ", as the run started"
    elif config.recipe_reason == "digits":  # (finetune's source says it is the default with --weights)
        default = f", the default on {config.data} at {config.image_size} px, whatever the length"
    else:
        default = ""
    return [
        f"data: {data.spec}{layout}, {data.num_classes} classes, {len(data.train):,} training / "
        f"{len(data.val):,} validation images, {held}",
        f"model: {config.model}, {params:,} parameters{options}",
        *extra,
        f"recipe: {recipe.name}{default} ({recipe.source})",
        schedule_line,
        augmentation_line(geo),
        f"plan: {num_epochs} epochs x {steps_per_epoch:,} steps = {total_steps:,} steps, batch {recipe.batch_size}",
    ]


def augmentation_line(geo: Geometry) -> str:
    """The augmentation actually applied at this input size (pixel counts already scaled to it)."""
    s = geo.size
    match geo.policy:
        case "pad_crop":
            what = f"pad {geo.pad} ({geo.pad_mode}) + random {s}x{s} crop" if geo.pad else f"no crop ({s}x{s} view)"
        case "random_crop":
            what = f"short side {geo.resize}, random {s}x{s} crop"
        case "scale_jitter":
            lo, hi = geo.short_side_range
            what = f"short side jittered in [{lo}, {hi}], random {s}x{s} crop"
        case "random_resized_crop":
            a, b = geo.area_range
            what = f"random-resized crop ({a:.0%}-{b:.0%} of the area) to {s}x{s}"
        case _:
            what = f"none (centre {s}x{s} view)"
    light = f", PCA lighting {geo.pca_lighting:g}" if geo.pca_lighting else ""
    return f"augmentation at {s} px: {what}, flip {'on' if geo.flip else 'off'}{light}"


def eta(seconds_done: float, epochs_done: int, num_epochs: int) -> str:
    """``, ETA 1m23s`` from the mean epoch time so far."""
    left = (num_epochs - epochs_done) * seconds_done / max(1, epochs_done)
    if epochs_done >= num_epochs:
        return ""
    minutes, secs = divmod(round(left), 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    return f", ETA {text}"


class ProgressBar:
    """tqdm with loss / top-1 / img/s, refreshed about once a second (the only mid-epoch host sync)."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool | None, seen: int) -> None:
        # enabled=None: tqdm decides, i.e. quiet when stderr is not a terminal
        self.bar = tqdm(total=total, initial=initial, desc=desc, leave=False, disable=None if enabled is None
                        else not enabled, dynamic_ncols=True)
        self.t0 = self.last = time.perf_counter()
        self.seen0 = seen  # a resumed epoch starts part-way

    def step(self, sums: torch.Tensor, seen: int, lr: float) -> None:
        if self.bar.disable:
            return
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.last >= 1.0:
            loss, hits = sums.tolist()
            self.bar.set_postfix(loss=f"{loss / max(seen, 1):.3f}", top1=f"{100 * hits / max(seen, 1):.1f}%",
                                 img_s=f"{(seen - self.seen0) / (now - self.t0):,.0f}", lr=f"{lr:.3g}",
                                 refresh=False)
            self.last = now

    def close(self) -> None:
        self.bar.close()


__all__ = ["LOCK_NAME", "METRIC_FIELDS", "RUN_FILE_NAMES", "ProgressBar", "RunFiles", "RunLock", "augmentation_line",
           "check_out", "config_record", "default_run_dir", "epoch_line", "eta", "git_commit", "header_lines",
           "print_line", "row_for_json", "silent", "summary"]

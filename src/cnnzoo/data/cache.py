"""Image folders decoded once: ``hold_folder(data, ...)`` turns a folder's file splits into resident uint8 tensors.

Decoding a small folder per sample, every epoch, in loader workers makes the CPU decode the same files again and
again while it should be training. A folder whose decoded images fit a memory budget (a quarter of the free memory
of the device that holds them) is decoded once, in parallel over the machine's cores, and then trained through the
resident loader exactly like CIFAR (augmentation in whole batches on the device).

What is stored, per split, at the resolution the run needs and no more:

- validation, and training under ``pad_crop``/``none``: the evaluation view (short side resized, centre crop), the
  very pixels the per-sample path crops from, so the run's geometry applies unchanged (its ``resize`` becomes the
  stored side);
- training under ``random_crop``/``scale_jitter``/``random_resized_crop``: the centre square of the image at a side
  of the recipe's ``resize`` (random-resized crops: at least the crop x 1.14, the 256/224 of Krizhevsky et al. 2012
  §4.1; scale jitter: its largest short side), so every crop box is drawn from the same stored image. A non-square
  photo loses the sides outside its centre square, as its evaluation view does.

``--cache disk`` (and ``auto`` when decoding took more than ``AUTO_DISK_SECONDS`` and the disk has room) writes the decoded arrays once to a folder under
``$CNNZOO_CACHE_DIR`` (default ``~/.cache/cnnzoo``) keyed by the file list, every file's size and modification time and
the stored resolution: a second run on the same folder reads them back instead of decoding, and a changed, added or
removed file gives another key. A file that fails to decode is skipped, warned about and listed in
``skipped_files`` (the cache remembers it). A cache folder that is damaged or of another layout (a ``meta.json``
without its keys, arrays that disagree) is decoded again and replaced; a cache root that cannot be written
(``$CNNZOO_CACHE_DIR`` naming a file, a read-only folder) is one warning and the run goes on from memory. ``off``,
or a folder over the budget, keeps the streaming loader.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import UserError
from .augment import Geometry, resize_center_crop
from .folder import decode_image_file
from .sources import Data, FileSource, TensorSource

CACHE_MODES = ("auto", "memory", "disk", "off")
RRC_RESIZE = 1.14  # Krizhevsky et al. 2012 §4.1: 224 crops of 256 images (256 / 224)
_VERSION = 1  # of the stored layout
AUTO_DISK_SECONDS = 5.0  # auto keeps a disk copy when decoding took longer than this (tiny folders: memory only)
PARALLEL_DECODE_SECONDS = 0.5e-3  # per image, measured on the first 8 images: slower images are decoded in threads
VIEW_BATCH_PIXELS = 2**18  # pixels per resize call: a batch of small images, one large image at a time
DECODE_CHUNK = 64  # files per decoding task: large enough that a hand-off and a resize call are paid per 64 images



def default_cache_dir() -> Path:
    """Where cnnzoo keeps what it computed once (decoded folders, the report's zoo rows): ``$CNNZOO_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/cnnzoo``, else ``~/.cache/cnnzoo``."""
    if os.environ.get("CNNZOO_CACHE_DIR"):
        return Path(os.environ["CNNZOO_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnzoo"

def stored_side(geo: Geometry) -> int:
    """The side at which a training image is stored for ``geo`` (see the module docstring)."""
    if geo.policy in ("pad_crop", "none"):
        return geo.size
    if geo.policy == "scale_jitter":
        return max(geo.resize, geo.short_side_range[1])
    if geo.policy == "random_resized_crop":
        return max(geo.resize, round(geo.size * RRC_RESIZE))
    return geo.resize


def hold_folder(
    data: Data, train_geo: Geometry, eval_geo: Geometry, *, mode: str = "auto", device: torch.device | None = None,
    cache_root: str | Path | None = None, threads: int | None = None, progress: bool | None = None,
) -> tuple[Data, Geometry, Geometry]:
    """``data`` with its file splits decoded to resident tensors (``data.held`` says how), and the geometries that
    apply to what is stored; unchanged when the data is resident already, ``mode`` is ``off`` or it does not fit."""
    if mode not in CACHE_MODES:
        raise UserError(f"--cache must be one of {', '.join(CACHE_MODES)}, got {mode!r}")
    if not isinstance(data.train, FileSource):
        return data, train_geo, eval_geo
    if mode == "off":
        return replace(data, held="streamed"), train_geo, eval_geo
    device = device or torch.device("cpu")
    side = stored_side(train_geo)
    c = data.in_channels
    need = c * (len(data.train) * side * side + len(data.val) * eval_geo.size * eval_geo.size)
    fits = need <= free_memory(device) // 4
    if mode == "auto" and not fits:
        return replace(data, held="streamed"), train_geo, eval_geo
    key = cache_key(data, side, eval_geo)
    root = Path(cache_root or default_cache_dir())
    folder = root / key
    stored = _read(folder, data.in_channels) if mode != "memory" else None
    held = "cache" if stored is not None else "resident"
    if stored is None:
        t0 = time.perf_counter()
        stored = _decode_all(data, train_geo, side, eval_geo, threads=threads, progress=progress)
        slow = time.perf_counter() - t0 > AUTO_DISK_SECONDS
        if mode == "disk" or (mode == "auto" and slow and _disk_free(folder) > 4 * need):
            if usable_cache_dir(root) is not None:
                _write(folder, stored, data.in_channels)
    train, val, skipped = stored
    for path in skipped:
        if path not in data.skipped_files:
            warnings.warn(f"skipped {path}: cannot decode this image", stacklevel=2)
    if len(train) < 2 or len(val) == 0:
        raise UserError(f"{data.spec}: too few decodable images ({len(train)} training, {len(val)} validation)")
    held_data = replace(data, train=train, val=val, held=held,
                        skipped_files=[*data.skipped_files, *(p for p in skipped if p not in data.skipped_files)])
    train_geo = replace(train_geo, resize=side) if train_geo.policy in ("pad_crop", "none") else train_geo
    return held_data, train_geo, replace(eval_geo, resize=eval_geo.size)


def free_memory(device: torch.device) -> int:
    """Free bytes of the device's memory (CUDA: its free memory; the CPU: MemAvailable)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def cache_key(data: Data, side: int, eval_geo: Geometry) -> str:
    """Hash of every file (path, split, label, size, mtime) and of what is stored: any change gives a new key."""
    h = hashlib.sha256(json.dumps([_VERSION, data.in_channels, side, eval_geo.size, eval_geo.resize]).encode())
    for split, source in (("train", data.train), ("val", data.val)):
        for path, label in zip(source.paths, source.labels):
            st = os.stat(path)
            h.update(f"{split}\0{path}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _decode_all(data: Data, train_geo: Geometry, side: int, eval_geo: Geometry, *, threads: int | None,
                progress: bool | None) -> tuple[TensorSource, TensorSource, list[str]]:
    jobs = [(p, label, True) for p, label in zip(data.train.paths, data.train.labels)]
    jobs += [(p, label, False) for p, label in zip(data.val.paths, data.val.labels)]
    square = Geometry.eval_view(side, side)

    def geometry(is_train: bool) -> Geometry:
        if is_train and train_geo.policy in ("pad_crop", "none"):
            return train_geo
        return square if is_train else eval_geo

    def chunk(part: list[tuple[str, int, bool]]) -> list[torch.Tensor | None]:
        """Decode a run of files, then resize them in one batch per (geometry, size): small images are dominated by
        per-call overhead, so a task of one image costs a thread hand-off and a resize call each (6 s for 10,000
        28-px PNGs on 2 cores, against 1 s so)."""
        images: list[torch.Tensor | None] = []
        for path, _, is_train in part:
            try:  # decoded at a reduced size where the format allows (JPEG draft), never below what is stored
                images.append(decode_image_file(path, data.in_channels, min_side=geometry(is_train).resize))
            except UserError:
                images.append(None)
        groups: dict[tuple, list[int]] = {}
        for i, (img, (_, _, is_train)) in enumerate(zip(images, part)):
            if img is not None:
                groups.setdefault((is_train, *img.shape), []).append(i)
        views: list[torch.Tensor | None] = [None] * len(part)
        for (is_train, _, h, w), members in groups.items():
            step = max(1, VIEW_BATCH_PIXELS // (h * w))  # small images in one call, large ones a few at a time
            for k in range(0, len(members), step):
                batch = members[k : k + step]
                for i, view in zip(batch, _view(torch.stack([images[i] for i in batch]), geometry(is_train))):
                    views[i] = view
        return views

    first = 9  # images decoded alone: one to warm up, eight to time
    parts = [jobs[i : i + DECODE_CHUNK] for i in range(first, len(jobs), DECODE_CHUNK)]
    with tqdm(total=len(jobs), desc="decoding images", unit="img", leave=False,
              disable=not progress if progress is not None else None) as bar:
        results = chunk(jobs[:1])  # the first call pays for lazy imports and plugin set-up: not timed
        t0 = time.perf_counter()
        results += chunk(jobs[1:first])
        bar.update(len(results))
        # PIL's decoders release the GIL, so large images decode in parallel; small ones are Python-bound and threads
        # only contend for the GIL (10,000 28-px PNGs: 1.0 s in one thread, 1.9 s in two on 2 cores)
        per_image = (time.perf_counter() - t0) / max(1, len(results) - 1)
        workers = (threads or os.cpu_count() or 1) if per_image > PARALLEL_DECODE_SECONDS else 1
        with ThreadPoolExecutor(workers) as pool:
            for views in pool.map(chunk, parts):
                results.extend(views)
                bar.update(len(views))
    skipped = [job[0] for job, img in zip(jobs, results) if img is None]
    splits = []
    for is_train in (True, False):
        kept = [(img, job[1]) for job, img in zip(jobs, results) if img is not None and job[2] == is_train]
        c, s = data.in_channels, side if is_train else eval_geo.size
        images = torch.stack([img for img, _ in kept]) if kept else torch.zeros(0, c, s, s, dtype=torch.uint8)
        splits.append(TensorSource(images, torch.tensor([label for _, label in kept], dtype=torch.long)))
    return splits[0], splits[1], skipped


def _view(img: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """Short side to ``geo.resize``, centre ``geo.size`` crop, as uint8 (the streaming path's rounding); one image
    or a batch of equal size."""
    return resize_center_crop(img, geo).round().clamp(0, 255).to(torch.uint8).contiguous()


def _read(folder: Path, channels: int) -> tuple[TensorSource, TensorSource, list[str]] | None:
    """The stored splits, or None for a folder that is absent, partial, damaged or of another layout (a
    ``meta.json`` without its keys, arrays that disagree with each other): such a folder is decoded again and
    replaced."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if not isinstance(meta, dict) or meta.get("version") != _VERSION:
            return None
        skipped = meta["skipped_files"]
        if not isinstance(skipped, list) or not all(isinstance(p, str) for p in skipped):
            return None
        splits = [TensorSource(torch.from_numpy(np.load(folder / f"{s}_images.npy", allow_pickle=False)),
                               torch.from_numpy(np.load(folder / f"{s}_labels.npy", allow_pickle=False)))
                  for s in ("train", "val")]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for split in splits:
        images, labels = split.images, split.labels
        if (images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != channels
                or labels.dtype != torch.int64 or labels.ndim != 1 or len(labels) != len(images)):
            return None
    return splits[0], splits[1], list(skipped)


def _write(folder: Path, stored: tuple[TensorSource, TensorSource, list[str]], channels: int) -> None:
    """All files into a temporary sibling, then one rename: a cache folder is complete or absent. A stale folder
    under the same key (damaged, or of an older layout) is replaced."""
    train, val, skipped = stored
    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        for name, source in (("train", train), ("val", val)):
            np.save(tmp / f"{name}_images.npy", source.images.numpy())
            np.save(tmp / f"{name}_labels.npy", source.labels.numpy())
        (tmp / "meta.json").write_text(json.dumps({"version": _VERSION, "skipped_files": skipped}))
        if folder.exists():
            if _read(folder, channels) is not None:  # another run wrote the same key meanwhile
                shutil.rmtree(tmp, ignore_errors=True)
                return
            stale = folder.with_name(f".{folder.name}-stale-{os.getpid()}")
            os.replace(folder, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, folder)
    except OSError as exc:  # a full cache disk (usable_cache_dir saw the rest): train from memory, say so once
        warnings.warn(f"cannot write the image cache {folder} ({exc.strerror or exc}); decoding again next run",
                      stacklevel=3)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def usable_cache_dir(root: str | Path | None = None) -> Path | None:
    """``root`` (default: :func:`default_cache_dir`) if files can be kept there: a folder that exists or can be
    created, and takes a file. Otherwise (``$CNNZOO_CACHE_DIR`` naming a file, a read-only folder) one warning and
    None: the caller runs without the cache, and never says it cached."""
    root = Path(root) if root is not None else default_cache_dir()
    env = os.environ.get("CNNZOO_CACHE_DIR")
    named = " ($CNNZOO_CACHE_DIR)" if env and Path(env) == root else ""
    if root.exists() and not root.is_dir():
        why = "is a file, not a folder"
    else:
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=root)
            os.close(fd)
            os.unlink(probe)
            return root
        except OSError as exc:
            why = f"cannot write there ({exc.strerror or exc})"
    warnings.warn(f"cache folder {root}{named} {why}; running without the cache", stacklevel=2)
    return None


def _disk_free(folder: Path) -> int:
    probe = folder.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return 0


__all__ = ["CACHE_MODES", "cache_key", "default_cache_dir", "free_memory", "hold_folder", "stored_side",
           "usable_cache_dir"]

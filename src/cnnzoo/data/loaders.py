"""Batches for the trainer: ``loader.epoch(e, start_step)`` yields normalised (x, y) on the device.

Shuffling is a permutation seeded by (seed, epoch), as ``DistributedSampler`` derives it (``loader.epoch(e)`` is its
``set_epoch(e)``), so a run resumed at any step sees the same batches as the uninterrupted run. ``rank``/``world_size``
shard the permutation for data-parallel training: each rank takes every ``world_size``-th sample, so global batch
``k`` is the same set of samples on any number of ranks. Training gives every rank the same number of samples (the
remainder is dropped with the last partial batch); validation pads nothing, so every sample is counted exactly once.

Image files that fail to decode (truncated data) are dropped from their batch and listed in ``loader.skipped``,
with a warning the first time (``announce_skipped=False``: listed only, for a caller that reports each file itself,
so that no file is reported twice); a batch in which no file decodes comes back with its blank images and no
labels. A streamed folder's JPEGs are decoded by PIL in the workers, or with ``decode="gpu"`` by nvJPEG on the
device (``gpu_decode``), giving the same view of each sample.
"""

from __future__ import annotations

import abc
import os
import warnings
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from .augment import Geometry, augment_batch, pca_lighting, resize_center_crop, rng
from .folder import FolderDataset
from .gpu_decode import EncodedFiles, as_list, decode_batch
from .sources import Data, FileSource, TensorSource


MAX_WORKERS = 32  # decoding processes per loader: past this, their prefetched batches cost more memory than they help


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or a job's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def loader_workers(workers: int | None, *, cores: int | None = None, batches: int | None = None) -> int:
    """Decoding processes of an image-folder loader: ``workers`` when given; else every core of this process's
    share (``cores``: ``available_cores()`` divided among the machine's training processes) but one, which runs the
    process itself, at most ``MAX_WORKERS``; none for a single batch (a few images to predict)."""
    if workers is not None:
        return max(0, workers)
    if batches is not None and batches <= 1:
        return 0
    return max(0, min(MAX_WORKERS, (available_cores() if cores is None else cores) - 1))


class Loader(abc.ABC):
    """Shared by both kinds: sample order, sharding, batch count, normalisation."""

    def __init__(
        self,
        num_samples: int,
        *,
        train: bool,
        batch_size: int,
        geo: Geometry,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        seed: int,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.train, self.batch_size, self.geo, self.device, self.seed = train, batch_size, geo, device, seed
        self.channels_last, self.rank, self.world_size = channels_last, rank, world_size
        self.num_samples = num_samples
        self.skipped: list[str] = []  # files that failed to decode, in the order met
        # per-channel normalisation on the 0-255 scale, applied on the device
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255.0
        self.inv_std = 1.0 / (torch.tensor(std, device=device).view(1, -1, 1, 1) * 255.0)

    def indices(self, epoch: int) -> torch.Tensor:
        """This rank's sample order for ``epoch`` (train: shuffled by (seed, epoch); val: in order)."""
        if not self.train:
            return torch.arange(self.num_samples)[self.rank :: self.world_size]
        perm = torch.randperm(self.num_samples, generator=rng(self.seed, epoch))
        per_rank = self.num_samples // self.world_size
        return perm[self.rank :: self.world_size][:per_rank]

    def __len__(self) -> int:
        """Batches per epoch. Training drops a last partial batch (BN needs > 1 sample; stable shapes for compile)."""
        if self.train:
            n = self.num_samples // self.world_size
            return 0 if n < 2 else max(1, n // self.batch_size)  # fewer than batch_size samples: one batch
        return -(-len(range(self.rank, self.num_samples, self.world_size)) // self.batch_size)

    def key(self, epoch: int, step: int, *extra: int) -> tuple[int, ...]:
        """Seed key of a batch's random augmentation; data-parallel ranks draw independently of each other."""
        rank = (self.rank,) if self.world_size > 1 else ()
        return (self.seed, epoch, step, *extra, *rank)

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """Float batch on the 0-255 scale -> normalised, in the requested memory format."""
        x = (x - self.mean) * self.inv_std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def close(self) -> None:
        """Release what the loader holds (worker processes); it may be used again afterwards."""

    @abc.abstractmethod
    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images, labels) batches of one epoch from ``start_step`` on (a resumed run skips the steps done)."""


class ResidentLoader(Loader):
    """The whole split lives on the device as uint8; batches are gathered and augmented there (airbench-style)."""

    def __init__(self, source: TensorSource, **kwargs) -> None:
        super().__init__(len(source), **kwargs)
        self.images = source.images.to(self.device)
        self.labels = source.labels.to(self.device)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices(epoch).to(self.device)
        for step in range(start_step, len(self)):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            x, y = self.images[idx], self.labels[idx]
            if self.train:  # crop boxes drawn on the host (read there without a device sync), the rest on the device
                key = self.key(epoch, step)
                box_gen = rng(*key) if self.device.type != "cpu" else None
                x = augment_batch(x, self.geo, rng(*key, device=self.device), box_gen)
            else:
                x = resize_center_crop(x, self.geo).float()
            yield self.finish(x), y


class FolderLoader(Loader):
    """Files decoded and cropped per sample by DataLoader workers (``decode="gpu"``: read by the workers, decoded
    and cropped on the device); lighting and normalisation on the device."""

    def __init__(self, source: FileSource, *, channels: int, workers: int | None = None, cores: int | None = None,
                 decode: str = "cpu", announce_skipped: bool = True, **kwargs) -> None:
        super().__init__(len(source), **kwargs)
        kind = EncodedFiles if decode == "gpu" else FolderDataset
        self.dataset = kind(source, self.geo, channels=channels, train=self.train, seed=self.seed)
        self.channels, self.decode, self.announce_skipped = channels, decode, announce_skipped
        self.workers = loader_workers(workers, cores=cores, batches=len(self))
        self.sampler = _Items()
        self.loader: DataLoader | None = None

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices(epoch)[start_step * self.batch_size : len(self) * self.batch_size].tolist()
        if not order:
            return
        self.sampler.items = [(epoch, i) for i in order]  # the epoch travels with each index to the workers
        if self.loader is None:  # one loader for the run: its workers persist from epoch to epoch
            self.loader = DataLoader(
                self.dataset,
                batch_size=self.batch_size,
                sampler=self.sampler,
                num_workers=self.workers,
                pin_memory=self.device.type == "cuda",
                persistent_workers=self.workers > 0,
                prefetch_factor=4 if self.workers > 0 else None,
                collate_fn=as_list if self.decode == "gpu" else None,
            )
        for step, batch in enumerate(self.loader, start=start_step):
            x, y = batch if self.decode != "gpu" else decode_batch(
                batch, geo=self.geo, channels=self.channels, train=self.train, device=self.device,
                paths=self.dataset.source.paths)
            bad = y < 0  # on the host, as DataLoader returns it: no device sync
            if bad.any():
                x, y = self._drop(x, y, bad)
            x = x.to(self.device, non_blocking=True).float()
            if self.train:
                x = pca_lighting(x, self.geo.pca_lighting, rng(*self.key(epoch, step, 1), device=self.device))
            yield self.finish(x), y.to(self.device, non_blocking=True)

    def close(self) -> None:
        """Let the persistent workers go (after one died: torch's SIGCHLD handler would report it again)."""
        iterator = getattr(self.loader, "_iterator", None)  # persistent workers live on the loader's iterator
        if iterator is not None:  # (a reference to it may outlive this call, in the worker error's traceback)
            iterator._shutdown_workers()
        self.loader = None

    def _drop(self, x: torch.Tensor, y: torch.Tensor, bad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Remove the samples whose file failed to decode (labelled ``-1 - index`` by the dataset); report them."""
        for index in (-1 - y[bad]).tolist():
            path = self.dataset.source.paths[index]
            if path not in self.skipped:
                self.skipped.append(path)
                if self.announce_skipped:
                    warnings.warn(f"skipped {path}: cannot decode this image", stacklevel=2)
        if bool(bad.all()):  # nothing readable: blank images and no labels (the trainer learns nothing from it)
            return x, y[:0]
        return x[~bad], y[~bad]


class _Items:
    """A sampler whose items the loader replaces each epoch (read when an epoch's iteration starts)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int]] = []

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def make_loader(data: Data, split: str, *, geo: Geometry, workers: int | None = None, cores: int | None = None,
                decode: str = "cpu", announce_skipped: bool = True, **kwargs) -> Loader:
    """The loader of ``data``'s ``split``. An image folder's: ``workers``/``cores``, its decoding processes (see
    ``loader_workers``; default: the cores'); ``decode``, its JPEGs decoded by PIL (``cpu``) or by nvJPEG on the
    device (``gpu``); ``announce_skipped``, warn about each file that fails to decode (False: only list it in
    ``loader.skipped``, for a caller that reports each file itself)."""
    source = data.train if split == "train" else data.val
    common = dict(train=split == "train", geo=geo, mean=data.mean, std=data.std, **kwargs)
    if isinstance(source, TensorSource):
        return ResidentLoader(source, **common)
    return FolderLoader(source, channels=data.in_channels, workers=workers, cores=cores, decode=decode,
                        announce_skipped=announce_skipped, **common)

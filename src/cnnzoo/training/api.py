"""``cnnzoo.train(...)``: the trainer behind keyword arguments, for Python users (it builds a ``RunConfig``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Data
from .config import configure
from .recipes import Recipe
from .run import RunResult
from .run_files import print_line
from .trainer import run_training


def train(
    model: str | nn.Module | None = None,
    *,
    data: str | Data | None = None,
    recipe: str | Recipe | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    epochs: int | None = None,
    batch_size: int | None = None,
    image_size: int | None = None,
    out: str | Path | None = None,
    device: str | torch.device = "auto",
    seed: int | None = None,
    amp: str | None = None,
    channels_last: bool | None = None,
    compile: bool = False,
    resume: str | Path | None = None,
    val_fraction: float = 0.2,
    download: bool = False,
    workers: int | None = None,
    checkpoints: bool = True,
    progress: bool | None = None,
    sync_bn: bool = False,
    on_nonfinite: str = "stop",
    overwrite: bool = False,
    model_kwargs: Mapping[str, Any] | None = None,
    model_name: str | None = None,
    cache: str = "auto",
    threads: int | None = None,
    weights: str | Path | None = None,
    freeze: str | None = None,
    deterministic: bool = False,
    tf32: bool = True,
    decode: str = "cpu",
    log: Any = "print",
) -> RunResult:
    """Train ``model`` (a registered name, or a module with ``image_size=``) with its paper's recipe.

    Args:
        data: ``"digits"`` (default), ``"cluttered-digits"``, ``"synthetic[:N]"``, ``"cifar10:PATH"``,
            ``"cifar100:PATH"``, an image folder path, or a :class:`~cnnzoo.data.Data`.
        recipe: a name from ``RECIPES`` (default: the model's ``ModelInfo.recipe``), with ``overrides``
            (``["lr=0.05", ...]`` or a mapping) applied; ``batch_size`` is a shortcut for one. Under torchrun the
            batch size is the global batch, split evenly over the processes.
        epochs: the run's length (default: the recipe's epochs or iterations).
        image_size: input side (default: the model's); digits are resized to it.
        amp: ``"off"``, ``"bf16"`` or ``"fp16"`` (CUDA only); default bf16 on CUDA, off on CPU.
        channels_last: force the memory layout; None (default): a resumed run's own, else the faster of NCHW and
            channels-last as timed at the run's start when the run is long enough (``training.layout``), else
            channels-last on CUDA only.
        resume: a run directory (or its ``last.pt``): continues that run, writing into it, on any number of
            processes; a damaged ``last.pt`` falls back to ``previous.pt``.
        checkpoints: write ``last``/``best`` checkpoints (off for smoke tests and benchmarks).
        sync_bn: under torchrun on CUDA, batch-norm statistics over the global batch (``SyncBatchNorm``).
        on_nonfinite: ``"stop"`` (default) or ``"skip"`` a step whose loss is inf/NaN (see ``stopping``).
        overwrite: ``out`` may hold an earlier run, whose files are removed first (default: refused).
        cache: image folders: ``"auto"`` (decoded once, held in memory when they fit a quarter of the free
            memory, kept on disk for the next run), ``"memory"``, ``"disk"`` or ``"off"`` (decoded every epoch).
        weights: fine-tune from this file (every tensor that fits is loaded, a classifier of another class
            count is new; default recipe ``finetune``); ``freeze="backbone"`` trains the classifier alone.
        threads: CPU threads (``torch.set_num_threads``; default: torch's), recorded in config.json.
        deterministic: deterministic algorithms, cuDNN benchmark off, ``CUBLAS_WORKSPACE_CONFIG=:4096:8``: a resume
            on a GPU is then bit-exact (the mode stays on for the process).
        tf32: on CUDA, TF32 tensor cores for fp32 matmuls and convolutions (default on).
        decode: a streamed image folder's JPEGs decoded by PIL in the loader workers (``"cpu"``) or by nvJPEG on
            the GPU (``"gpu"``, CUDA only); the run's header says which.
        log: called with one line per epoch (default: print it; ``None``: silent).

    Every other keyword is a field of :class:`~cnnzoo.training.config.RunConfig`. Returns the trained model (eval
    mode, on ``device``), the summary and the per-epoch history. Writes ``out`` (default ``runs/<model>-<time>``;
    under torchrun rank 0 alone writes). SIGINT/SIGTERM checkpoint and raise ``TrainingInterrupted``; a non-finite
    loss raises ``NonFiniteLoss``, leaving the last good checkpoint.
    """
    given = data if isinstance(data, Data) else None
    spec = None if given is not None and resume is not None else given.spec if given is not None else data
    config = configure(
        model, data=spec, recipe=recipe, overrides=overrides,
        batch_size=batch_size, image_size=image_size, seed=seed, val_fraction=val_fraction,
        model_kwargs=model_kwargs, model_name=model_name, out=out, resume=resume, epochs=epochs, device=str(device),
        amp=amp, channels_last=channels_last, compile=compile, download=download, workers=workers,
        checkpoints=checkpoints, progress=progress, sync_bn=sync_bn, on_nonfinite=on_nonfinite, threads=threads,
        overwrite=overwrite, deterministic=deterministic, tf32=tf32, decode=decode,
        **({"cache": cache, "weights": None if weights is None else str(weights), "freeze": freeze}
           if resume is None else {}),
    )
    net = model if isinstance(model, nn.Module) else None
    return run_training(config, net=net, data=given, log=print_line if log == "print" else log)

"""The training loop: one readable function, ``train``, with the papers' recipes and a fast data path.

Per step: set the scheduled lr, forward under autocast (bf16; fp16 with a grad scaler on CUDA), cross-entropy (+0.3 x
each auxiliary head's loss for GoogLeNet), backward, SGD step. Loss and accuracy are summed on the device and read
once per epoch (and about once a second for the progress bar), so the device never waits for the host.
After each epoch: top-1/top-5 on the validation split, metrics.jsonl, the ``last`` checkpoint, ``best`` weights.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from . import checkpoint as ckpt
from .augment import Geometry
from .data import Data, load_data
from .loaders import Loader, make_loader
from .recipes import Recipe, parse_overrides, resolve_recipe
from .run_files import RunFiles, epoch_line, run_config, summary
from .schedules import Plateau, lr_at
from .setup import (
    StopFlag,
    TrainingInterrupted,
    amp_dtype_for,
    check_image_size,
    default_workers,
    first_conv_channels,
    make_sgd,
    model_identity,
    print_line,
    resolve_device,
    resume_settings,
)


@dataclass
class RunResult:
    out: Path
    model: nn.Module
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over data-parallel ranks (a no-op in a single process): the hook for distributed training."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(t)
    return t


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Loader, *, num_classes: int, amp_dtype: torch.dtype | None = None
) -> dict[str, Any]:
    """Loss, top-1/top-5 (micro-averaged, in %) and the confusion matrix (rows true, columns predicted)."""
    model.eval()
    device = loader.device
    sums = torch.zeros(3, dtype=_acc_dtype(device), device=device)  # loss, top-1 hits, top-5 hits
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    count, k = 0, min(5, num_classes)
    for x, y in loader.epoch(0):
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            logits = model(x)
        logits = logits.float()
        top = logits.topk(k, dim=1).indices
        hits1, hitsk = (top[:, 0] == y).sum(), (top == y[:, None]).any(1).sum()
        sums += torch.stack([F.cross_entropy(logits, y, reduction="sum"), hits1, hitsk]).to(sums.dtype)
        confusion.scatter_add_(0, y * num_classes + top[:, 0], torch.ones_like(y))  # bincount would sync on CUDA
        count += len(y)  # known on the host: no device read
    totals = all_reduce_sum(torch.cat([sums, sums.new_tensor([count])]))
    loss, top1, top5, count = totals.tolist()
    all_reduce_sum(confusion)
    count = max(count, 1.0)
    return {
        "val_loss": loss / count,
        "val_top1": 100.0 * top1 / count,
        "val_top5": 100.0 * top5 / count,
        "val_count": int(count),
        "confusion": confusion.view(num_classes, num_classes).cpu(),
    }


def _acc_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def _loss(
    out: torch.Tensor | tuple[torch.Tensor, ...], y: torch.Tensor, recipe: Recipe
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the main head plus ``aux_loss_weight`` x each auxiliary head (Szegedy et al. §5)."""
    logits, *aux = out if isinstance(out, tuple) else (out,)
    loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    for head in aux:
        loss = loss + recipe.aux_loss_weight * F.cross_entropy(head, y, label_smoothing=recipe.label_smoothing)
    return loss, logits


def train(
    model: str | nn.Module | None,
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
    model_kwargs: Mapping[str, Any] | None = None,
    model_name: str | None = None,
    log: Any = "print",
) -> RunResult:
    """Train ``model`` (a registered name, or a module with ``image_size=``) with its paper's recipe.

    Args:
        data: ``"digits"`` (default), ``"synthetic[:N]"``, ``"cifar10:PATH"``, ``"cifar100:PATH"``, an image
            folder path, or a :class:`Data`.
        recipe: a name from ``RECIPES`` (default: the model's ``ModelInfo.recipe``), with ``overrides``
            (``["lr=0.05", ...]`` or a mapping) applied; ``batch_size`` is a shortcut for one.
        epochs: the run's length (default: the recipe's epochs or iterations).
        image_size: input side (default: the model's); digits are resized to it.
        amp: ``"off"``, ``"bf16"`` or ``"fp16"`` (CUDA only); default bf16 on CUDA, off on CPU.
        resume: a run directory (or its ``last.pt``): continues that run, writing into it.
        checkpoints: write ``last``/``best`` checkpoints (off for smoke tests and benchmarks).
        log: called with one line per epoch (default: print it; ``None``: silent).

    Returns the trained model (eval mode, on ``device``), the summary and the per-epoch history. Writes ``out``
    (default ``runs/<model>-<time>``). SIGINT/SIGTERM checkpoint and raise :class:`TrainingInterrupted`.
    """
    if log == "print":
        log = print_line
    log = log or (lambda *_: None)
    device = resolve_device(device)
    state: dict[str, Any] | None = None
    if resume is not None:
        path, state = ckpt.find_resume_state(Path(resume))
        saved = resume_settings(state, path, changes_recipe=bool(overrides) or batch_size is not None, model=model,
                                data=data, recipe=recipe, image_size=image_size, seed=seed)
        data = data if isinstance(data, Data) else saved["data"]
        recipe, image_size, seed = saved["recipe"], saved["image_size"], saved["seed"]
        val_fraction = saved["val_fraction"]
        model_kwargs, model_name, out = saved["model_kwargs"], saved["model"], saved["out"]
        model = saved["model"] if model is None else model
    if model is None:
        raise UserError("train: name a model (or pass a module) or resume a run")
    seed = 0 if seed is None else seed
    name, info = model_identity(model, model_name)
    in_channels = info.input_size[0] if info else first_conv_channels(model)
    size = check_image_size(image_size, info)
    recipe = resolve_recipe(recipe or (info.recipe if info and info.recipe else "quick"),
                            {**parse_overrides(overrides), **({"batch_size": batch_size} if batch_size else {})})
    amp_dtype = amp_dtype_for(amp, device)
    if not isinstance(data, Data):
        data = load_data(data or "digits", image_size=size, in_channels=in_channels,
                         num_classes=info.num_classes if info else 10, val_fraction=val_fraction, download=download)
    files = RunFiles.create(out, name)

    torch.manual_seed(seed)  # initial weights, then dropout / drop-path masks, follow the seed
    random.seed(seed)
    if isinstance(model, str):
        from ..registry import create_model

        net = create_model(name, num_classes=data.num_classes, in_channels=in_channels, **(model_kwargs or {}))
    else:
        net = model
    if channels_last is None:
        channels_last = device.type == "cuda"  # NHWC pays off with tensor-core dtypes (performance.md §2.4)

    geo = Geometry.from_recipe(recipe, size)
    eval_geo = Geometry.from_recipe(recipe.replace(augment="none"), size)
    common = dict(batch_size=recipe.batch_size, device=device, seed=seed, channels_last=channels_last,
                  workers=default_workers(workers))
    train_loader = make_loader(data, "train", geo=geo, **common)
    val_loader = make_loader(data, "val", geo=eval_geo, **common)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise UserError(f"--data {data.spec}: the training split has fewer than 2 images")
    if epochs is not None:
        if epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {epochs}")
        total_steps = epochs * steps_per_epoch
    elif state is not None:
        total_steps = state["config"]["total_steps"]
    else:
        total_steps = recipe.iterations or recipe.epochs * steps_per_epoch
    num_epochs = math.ceil(total_steps / steps_per_epoch)

    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    optimizer = make_sgd(net, recipe, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype is torch.float16 else None
    plateau = Plateau.from_recipe(recipe)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    config = run_config(name=name, model_kwargs=model_kwargs, data=data, recipe=recipe, image_size=size,
                        eval_resize=eval_geo.resize, seed=seed, device=device, amp_dtype=amp_dtype,
                        channels_last=channels_last, compile=compile, val_fraction=val_fraction,
                        steps_per_epoch=steps_per_epoch, total_steps=total_steps, epochs=num_epochs)

    history: list[dict[str, Any]] = []
    start_epoch, start_step, best = 0, 0, {"val_top1": -1.0, "val_top5": 0.0, "epoch": 0}
    sums = torch.zeros(2, dtype=_acc_dtype(device), device=device)  # this epoch's loss x n and top-1 hits
    seen = 0  # this epoch's training images (a host count: reading it never waits for the device)
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        plateau.load_state_dict(state["plateau"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, best = [dict(row) for row in state["history"]], dict(state["best"])
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        sums, seen = state["partial_sums"].to(device, sums.dtype), state["partial_count"]
        ckpt.set_rng_state(state["rng"], device)  # last: nothing above may draw random numbers after this
        log(f"resuming {files.out} after epoch {start_epoch}" + (f", step {start_step}" if start_step else ""))
    files.write_config(config)
    forward = torch.compile(net) if compile else net

    def save_last(epoch: int, step_in_epoch: int) -> None:
        if not checkpoints:
            return
        files.save_weights("last", net, config, epoch=epoch, metrics=history[-1] if history else {})
        ckpt.save_state(files.out / "last.pt", {
            "format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION, "config": config,
            "model": net.state_dict(), "optimizer": optimizer.state_dict(), "plateau": plateau.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "epoch": epoch, "step_in_epoch": step_in_epoch, "partial_sums": sums.cpu(), "partial_count": seen,
            "history": history, "best": best, "rng": ckpt.rng_state(device),
        })

    def finish(interrupted: bool) -> dict[str, Any]:
        result = summary(config, data, history, best, train_seconds, images_seen, interrupted=interrupted, net=net)
        files.write_summary(result)
        return result

    train_seconds = sum(row["train_seconds"] for row in history)
    images_seen = sum(row["train_images"] for row in history)
    with StopFlag() as stop:
        for epoch in range(start_epoch, num_epochs):
            steps_this_epoch = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
            net.train()
            t0, seen_before = time.perf_counter(), seen
            bar = files.progress(steps_this_epoch, start_step, f"epoch {epoch + 1}/{num_epochs}", progress, seen)
            lr = recipe.lr
            for step, (x, y) in enumerate(train_loader.epoch(epoch, start_step), start=start_step):
                if step >= steps_this_epoch:
                    break
                lr = lr_at(epoch * steps_per_epoch + step, recipe, steps_per_epoch=steps_per_epoch,
                           total_steps=total_steps, plateau_factor=plateau.lr_factor)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                    loss, logits = _loss(forward(x), y, recipe)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                sums += torch.stack([loss.detach() * len(y), (logits.argmax(1) == y).sum()]).to(sums.dtype)
                seen += len(y)
                bar.step(sums, seen, lr)
                if stop.signum is not None:  # checkpoint mid-epoch; the resumed run replays the rest exactly
                    bar.close()
                    train_seconds += time.perf_counter() - t0
                    images_seen += seen - seen_before
                    save_last(epoch, step + 1)
                    finish(interrupted=True)
                    raise TrainingInterrupted(stop.signum, files.out)
            bar.close()
            loss_sum, hits, count = all_reduce_sum(torch.cat([sums, sums.new_tensor([seen])])).tolist()
            epoch_train_seconds = time.perf_counter() - t0  # after the read above: the device has caught up
            val = evaluate(forward, val_loader, num_classes=data.num_classes, amp_dtype=amp_dtype)
            confusion = val.pop("confusion")
            if recipe.schedule == "plateau":
                plateau.step(val["val_top1"])
            train_seconds += epoch_train_seconds
            images_seen += seen - seen_before
            row = {
                "epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / max(count, 1.0),
                "train_top1": 100.0 * hits / max(count, 1.0), **val,
                "images_per_s": (seen - seen_before) / max(epoch_train_seconds, 1e-9),
                "seconds": time.perf_counter() - t0, "train_seconds": epoch_train_seconds, "train_images": int(count),
            }
            history.append(row)
            start_step, seen = 0, 0
            sums.zero_()
            if row["val_top1"] > best["val_top1"]:
                best = {"val_top1": row["val_top1"], "val_top5": row["val_top5"], "epoch": epoch + 1}
                if checkpoints:
                    files.save_weights("best", net, config, epoch=epoch + 1, metrics=row)
            files.write_metrics(history)
            files.write_confusion(confusion, data.classes)
            save_last(epoch + 1, 0)
            log(epoch_line(row, num_epochs))
            if stop.signum is not None:
                finish(interrupted=True)
                raise TrainingInterrupted(stop.signum, files.out)
    result = finish(interrupted=False)
    net.eval()
    return RunResult(files.out, net, result, history)

"""The training loop: one readable function, ``train``, with the papers' recipes and a fast data path.

Per step: set the scheduled lr, forward under autocast (bf16; fp16 with a grad scaler on CUDA), cross-entropy (+0.3 x
each auxiliary head's loss for GoogLeNet), backward, SGD step. Loss and accuracy are summed on the device and read
once per epoch (and about once a second for the progress bar), so the device never waits for the host.
After each epoch: top-1/top-5 on the validation split, metrics.jsonl, the ``last`` checkpoint, ``best`` weights.

The same loop runs under ``torchrun`` (``distributed``: sharded loaders, DDP, sums reduced over the ranks, rank 0
writes), and every decision that ends a run early, a signal or a non-finite loss (``guard``), is taken by all ranks
at the same step.
"""

from __future__ import annotations

import math
import random
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..weights import load_weights
from . import checkpoint as ckpt
from .augment import Geometry
from .data import Data, load_data
from .distributed import Runtime, all_reduce_sum, broadcast_buffers, convert_sync_batchnorm, wrap
from .guard import NonFiniteLoss, StepGuard
from .loaders import Loader, make_loader
from .recipes import Recipe, parse_overrides, resolve_recipe
from .run_files import RunFiles, default_run_dir, epoch_line, run_config, summary
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


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Loader, *, num_classes: int, amp_dtype: torch.dtype | None = None,
    outputs: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Loss, top-1/top-5 (micro-averaged, in %) and the confusion matrix (rows true, columns predicted).

    Under torchrun every rank passes its shard (no sample twice, none padded in) and the sums are reduced over the
    ranks, so the counts are exact. ``outputs``: a list that receives each batch's (logits, labels) on the CPU
    (for ensembles and predictions; it costs a device read per batch).
    """
    model.eval()
    device = loader.device
    sums = torch.zeros(3, dtype=_acc_dtype(device), device=device)  # loss, top-1 hits, top-5 hits
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    count, k = 0, min(5, num_classes)
    for x, y in loader.epoch(0):
        if not len(y):  # no file of this batch could be decoded (the loader reported them)
            continue
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            logits = model(x)
        logits = logits.float()
        if outputs is not None:
            outputs.append((logits.cpu(), y.cpu()))
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


def _zero_loss(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """0, through every output: a data-parallel rank whose batch had no readable image still takes part in the
    gradient all-reduce (with zeros) instead of leaving the other ranks waiting for it."""
    return sum(o.float().sum() for o in (out if isinstance(out, tuple) else (out,))) * 0.0


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
    sync_bn: bool = False,
    on_nonfinite: str = "stop",
    model_kwargs: Mapping[str, Any] | None = None,
    model_name: str | None = None,
    log: Any = "print",
) -> RunResult:
    """Train ``model`` (a registered name, or a module with ``image_size=``) with its paper's recipe.

    Args:
        data: ``"digits"`` (default), ``"synthetic[:N]"``, ``"cifar10:PATH"``, ``"cifar100:PATH"``, an image
            folder path, or a :class:`Data`.
        recipe: a name from ``RECIPES`` (default: the model's ``ModelInfo.recipe``), with ``overrides``
            (``["lr=0.05", ...]`` or a mapping) applied; ``batch_size`` is a shortcut for one. Under torchrun the
            batch size is the global batch, split evenly over the processes.
        epochs: the run's length (default: the recipe's epochs or iterations).
        image_size: input side (default: the model's); digits are resized to it.
        amp: ``"off"``, ``"bf16"`` or ``"fp16"`` (CUDA only); default bf16 on CUDA, off on CPU.
        resume: a run directory (or its ``last.pt``): continues that run, writing into it, on any number of
            processes; a damaged ``last.pt`` falls back to ``previous.pt``.
        checkpoints: write ``last``/``best`` checkpoints (off for smoke tests and benchmarks).
        sync_bn: under torchrun on CUDA, batch-norm statistics over the global batch (``SyncBatchNorm``).
        on_nonfinite: ``"stop"`` (default) or ``"skip"`` a step whose loss is inf/NaN (see ``guard``).
        log: called with one line per epoch (default: print it; ``None``: silent).

    Returns the trained model (eval mode, on ``device``), the summary and the per-epoch history. Writes ``out``
    (default ``runs/<model>-<time>``; under torchrun rank 0 alone writes). SIGINT/SIGTERM checkpoint and raise
    :class:`TrainingInterrupted`; a non-finite loss raises :class:`NonFiniteLoss`, leaving the last good checkpoint.
    """
    runtime = Runtime.from_env()
    if log == "print":
        log = print_line
    log = (log or (lambda *_: None)) if runtime.main else (lambda *_: None)
    device = runtime.device(resolve_device(device))
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
    shortcut = {"batch_size": batch_size} if batch_size is not None else {}
    recipe = resolve_recipe(recipe or (info.recipe if info and info.recipe else "quick"),
                            {**parse_overrides(overrides), **shortcut})
    rank_batch = runtime.split_batch(recipe.batch_size)
    amp_dtype = amp_dtype_for(amp, device)
    guard = StepGuard(device, runtime, policy=on_nonfinite)
    if sync_bn and device.type != "cuda":
        convert_sync_batchnorm(nn.Identity(), device)  # refuses with the reason, before anything is written
    runtime.start(device)
    if not isinstance(data, Data):
        data = load_data(data or "digits", image_size=size, in_channels=in_channels,
                         num_classes=info.num_classes if info else 10, val_fraction=val_fraction, download=download)
    if state is not None and list(data.classes) != state["config"]["classes"]:
        raise UserError(f"--resume {path.parent}: the data's classes changed since the run started "
                        f"({data.num_classes} now, {len(state['config']['classes'])} then)")
    files = RunFiles.create(runtime.broadcast(out if out is not None else default_run_dir(name)), name,
                            main=runtime.main)

    torch.manual_seed(seed)  # initial weights, then dropout / drop-path masks, follow the seed (on every rank)
    random.seed(seed)
    if isinstance(model, str):
        from ..registry import create_model

        net = create_model(name, num_classes=data.num_classes, in_channels=in_channels, **(model_kwargs or {}))
    else:
        net = model
    if sync_bn:
        net = convert_sync_batchnorm(net, device)
    if channels_last is None:
        channels_last = device.type == "cuda"  # NHWC pays off with tensor-core dtypes (performance.md §2.4)

    geo = Geometry.from_recipe(recipe, size)
    eval_geo = Geometry.from_recipe(recipe.replace(augment="none"), size)
    if workers is None and runtime.distributed:  # the machine's cores are shared by its processes
        workers = default_workers(None) // runtime.world_size
    common = dict(batch_size=rank_batch, device=device, seed=seed, channels_last=channels_last,
                  workers=default_workers(workers), rank=runtime.rank, world_size=runtime.world_size)
    train_loader = make_loader(data, "train", geo=geo, **common)
    val_loader = make_loader(data, "val", geo=eval_geo, **common)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise UserError(f"--data {data.spec}: the training split has fewer than {2 * runtime.world_size} images")
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
                        steps_per_epoch=steps_per_epoch, total_steps=total_steps, epochs=num_epochs,
                        world_size=runtime.world_size, sync_bn=sync_bn, on_nonfinite=on_nonfinite)

    history: list[dict[str, Any]] = []
    start_epoch, start_step, best = 0, 0, {"val_top1": -1.0, "val_top5": 0.0, "epoch": 0}
    sums = torch.zeros(2, dtype=_acc_dtype(device), device=device)  # this epoch's loss x n and top-1 hits
    seen = 0  # this epoch's training images (a host count: reading it never waits for the device)
    last_good = "checkpoints are off" if not checkpoints else "no checkpoint had been written yet"
    if state is not None:
        load_weights(net, state["model"], name=name)  # another architecture or class count: keys/shapes named
        optimizer.load_state_dict(state["optimizer"])
        plateau.load_state_dict(state["plateau"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, best = [dict(row) for row in state["history"]], dict(state["best"])
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        if runtime.main:  # the partial sums are the whole job's: counted once, on rank 0
            sums, seen = state["partial_sums"].to(device, sums.dtype), state["partial_count"]
        ckpt.set_rng_state(state["rng"], device)  # last: nothing above may draw random numbers after this
        last_good = _checkpoint_name(path, start_epoch, start_step)
        log(f"resuming {files.out} after epoch {start_epoch}" + (f", step {start_step}" if start_step else ""))
    files.write_config(config)
    ddp = wrap(net, device, runtime)
    forward = torch.compile(ddp) if compile else ddp
    # validation runs the bare network: ranks hold different numbers of validation batches, and a DDP forward may
    # synchronise buffers (a collective each rank would call a different number of times)
    evaluator = forward if not runtime.distributed else (torch.compile(net) if compile else net)

    def reduced() -> list[float]:
        """This epoch so far, summed over the ranks: loss x n, top-1 hits, images, images since this session began."""
        return all_reduce_sum(torch.cat([sums, sums.new_tensor([seen, seen - seen_before])])).tolist()

    def save_last(epoch: int, step_in_epoch: int, partial: list[float] | None = None) -> None:
        nonlocal last_good
        if not checkpoints or not runtime.main:
            return
        files.save_weights("last", net, config, epoch=epoch, metrics=history[-1] if history else {})
        ckpt.save_state(files.out / "last.pt", {
            "format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION, "config": config,
            "model": net.state_dict(), "optimizer": optimizer.state_dict(), "plateau": plateau.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "epoch": epoch, "step_in_epoch": step_in_epoch,
            "partial_sums": torch.tensor(partial[:2] if partial else [0.0, 0.0], dtype=sums.dtype),
            "partial_count": int(partial[2]) if partial else 0,
            "history": history, "best": best, "rng": ckpt.rng_state(device),
        })
        last_good = _checkpoint_name(files.out / "last.pt", epoch, step_in_epoch)

    def finish(interrupted: bool, reason: str | None = None) -> dict[str, Any]:
        skipped = runtime.union([*data.skipped_files, *train_loader.skipped, *val_loader.skipped])
        result = summary(config, data, history, best, train_seconds, images_seen, interrupted=interrupted, net=net,
                         skipped_files=skipped, stop_reason=reason)
        files.write_summary(result)
        return result

    train_seconds = sum(row["train_seconds"] for row in history)
    images_seen = sum(row["train_images"] for row in history)
    with StopFlag() as stop:
        for epoch in range(start_epoch, num_epochs):
            steps_this_epoch = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
            net.train()
            t0, seen_before, skipped_steps = time.perf_counter(), seen, 0
            bar = files.progress(steps_this_epoch, start_step, f"epoch {epoch + 1}/{num_epochs}", progress, seen)
            lr = recipe.lr
            for step, (x, y) in enumerate(train_loader.epoch(epoch, start_step), start=start_step):
                if step >= steps_this_epoch:
                    break
                iteration = epoch * steps_per_epoch + step
                lr = lr_at(iteration, recipe, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                           plateau_factor=plateau.lr_factor)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if len(y) or runtime.distributed:  # no labels: no image of this batch decoded (the loader says which)
                    with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                        outputs = forward(x)
                        loss, logits = _loss(outputs, y, recipe) if len(y) else (_zero_loss(outputs), None)
                    guard.record(loss, iteration)
                    optimizer.zero_grad(set_to_none=True)
                    (scaler.scale(loss) if scaler is not None else loss).backward()
                    if guard.skip(loss, iteration):  # --on-nonfinite skip: every rank drops this step
                        optimizer.zero_grad(set_to_none=True)
                        skipped_steps += 1
                    else:
                        if scaler is not None:
                            scaler.step(optimizer)
                            scaler.update()
                        else:
                            optimizer.step()
                        if len(y):
                            sums += torch.stack([loss.detach() * len(y), (logits.argmax(1) == y).sum()]).to(sums.dtype)
                            seen += len(y)
                bar.step(sums, seen, lr)
                signum, bad, value = guard.poll(stop.signum, step, force=step + 1 == steps_this_epoch)
                if bad is not None:  # nothing after the bad step is saved: the last checkpoint stays the good one
                    bar.close()
                    message = guard.message(bad, value, steps_per_epoch=steps_per_epoch, last_good=last_good)
                    finish(interrupted=True, reason=message)
                    raise NonFiniteLoss(message, files.out)
                if signum is not None:  # checkpoint mid-epoch; the resumed run replays the rest exactly
                    bar.close()
                    train_seconds += time.perf_counter() - t0
                    partial = reduced()
                    images_seen += int(partial[3])
                    save_last(epoch, step + 1, partial)
                    finish(interrupted=True, reason=signal.Signals(signum).name)
                    raise TrainingInterrupted(signum, files.out)
            bar.close()
            loss_sum, hits, count, new_images = reduced()
            epoch_train_seconds = time.perf_counter() - t0  # after the read above: the device has caught up
            broadcast_buffers(net)  # every rank validates rank 0's network, the one the checkpoint holds
            val = evaluate(evaluator, val_loader, num_classes=data.num_classes, amp_dtype=amp_dtype)
            confusion = val.pop("confusion")
            if recipe.schedule == "plateau":
                plateau.step(val["val_top1"])
            train_seconds += epoch_train_seconds
            images_seen += int(new_images)
            row = {
                "epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / max(count, 1.0),
                "train_top1": 100.0 * hits / max(count, 1.0), **val,
                "images_per_s": new_images / max(epoch_train_seconds, 1e-9),
                "seconds": time.perf_counter() - t0, "train_seconds": epoch_train_seconds, "train_images": int(count),
                **({"skipped_steps": skipped_steps} if on_nonfinite == "skip" else {}),
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
            signum, _, _ = guard.poll(stop.signum, 0, force=True)  # a signal during validation: agreed by all
            if signum is not None:
                finish(interrupted=True, reason=signal.Signals(signum).name)
                raise TrainingInterrupted(signum, files.out)
    result = finish(interrupted=False)
    net.eval()
    return RunResult(files.out, net, result, history)


def _checkpoint_name(path: Path, epoch: int, step_in_epoch: int) -> str:
    where = f"after epoch {epoch}" + (f", step {step_in_epoch}" if step_in_epoch else "")
    return f"the last good checkpoint is {path} ({where})"

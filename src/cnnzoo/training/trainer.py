"""The trainer, the whole loop in the order a run happens: ``prepare(config) -> Run``, then per epoch ``train_epoch``
(each batch one ``sgd_step``), ``validate`` and ``end_epoch`` (metrics, best weights, ``save`` of the training state,
see ``run``); ``finish`` writes the summary, for a finished run or one that stopped early. ``run_training`` is that
sequence. Before the first step ``prepare`` chooses the memory layout, NCHW or channels-last, by timing a few steps
of each on copies of the network (``layout``), unless a flag or the resumed run's record decides it.

Per step: set the scheduled lr, forward under autocast (bf16; fp16 with a grad scaler on CUDA), cross-entropy (+0.3 x
each auxiliary head's loss for GoogLeNet), backward, SGD step. Loss and accuracy are summed on the device and read
once per epoch (and about once a second for the progress bar), so the device never waits for the host.
After each epoch: top-1/top-5 on the validation split, metrics.jsonl, the ``last`` checkpoint, ``best`` weights.
On the CPU the memory a step frees stays with the process for the next step (``device.keep_cpu_heap``, set with the
run's backends) and is given back when the run ends.

The same loop runs under ``torchrun`` (``distributed``: sharded loaders, DDP, sums reduced over the ranks, rank 0
writes), and every decision that ends a run early, a signal, a dead loader worker or a non-finite loss, is taken by
all ranks at the same step (``stopping``). A run stopped mid-epoch is checkpointed at its last finished step and
resumes bit-identically on the CPU with the same thread count (a resume reuses the run's own). The run directory is
held by one process for the run's life (``claim_run_dir``, ``run_files.RunLock``). Weights that became non-finite are
never saved (``check_weights``).
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..analysis import analyze
from ..data import Data, TensorSource, load_data, make_loader
from ..data.cache import hold_folder
from ..data.gpu_decode import check_gpu_decode
from ..device import amp_dtype_for, native_bf16_isa, release_cpu_heap, resolve_device, set_backends, sum_dtype
from ..errors import UserError
from ..metrics import classification_metrics
from ..registry import model_info
from .config import RunConfig, default_num_classes, input_channels
from .distributed import RankStreams, Runtime, all_reduce_sum, broadcast_buffers, convert_sync_batchnorm, wrap
from .finetune import head_parameters, start_net
from .layout import choose_layout
from .recipes import Recipe
from .run import Run, RunResult, check_same_data, restore, resume_point, save
from .run_files import (RUN_FILE_NAMES, RunFiles, RunLock, check_out, config_record, default_run_dir, epoch_line, eta,
                        header_lines, print_line, silent, summary)
from .schedules import Plateau, fit_schedule, lr_at, make_sgd, replanned
from .stopping import NonFiniteLoss, StepGuard, StopFlag, TrainingInterrupted, WorkerDied, worker_death


def prepare(config: RunConfig, *, net: nn.Module | None = None, data: Data | None = None,
            log: Callable[[str], None] | None = print_line) -> Run:
    """Everything a run needs, checked before its directory is created (a refused run leaves nothing behind).

    ``net``: a module to train instead of ``create_model(config.model)``; ``data``: a :class:`Data` instead of
    loading ``config.data``. With ``config.resume``, the state of the run's ``last.pt`` (or ``previous.pt``)."""
    runtime = Runtime.from_env()
    device = runtime.device(resolve_device(config.device))
    backends = set_backends(device, deterministic=config.deterministic, tf32=config.tf32)  # before any CUDA work
    if config.decode == "gpu":
        check_gpu_decode(device)
    rank_batch = runtime.split_batch(config.recipe.batch_size)
    amp_dtype = amp_dtype_for(config.amp, device)
    if config.sync_bn and device.type != "cuda":
        convert_sync_batchnorm(nn.Identity(), device)  # refuses with the reason, before anything is written
    if net is None:  # an absurd --image-size: refused first
        check_memory(config.model, config.image_size, rank_batch, device, amp_dtype)
    runtime.start(device)
    refuse_if_held(config, runtime)  # a folder another process holds: refused before any data is read
    resumed = resume_point(Path(config.resume)) if config.resume else (None, None, None)
    size = config.image_size
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    in_channels = input_channels(config, net)
    if data is None:
        data = load_data(config.data, image_size=size, in_channels=in_channels,
                         num_classes=default_num_classes(config, net), val_fraction=config.val_fraction,
                         download=config.download)
    # a small image folder is decoded once and trained like CIFAR (data/cache.py)
    data, train_geo, eval_geo = hold_folder(data, config.recipe.geometry(size), config.recipe.eval_geometry(size),
                                            mode=config.cache, device=device,
                                            threads=config.threads or runtime.cpu_share(), progress=config.progress)
    if net is None and device.type == "cuda" and isinstance(data.train, TensorSource):  # and with the data on it
        held = sum(split.images.numel() * split.images.element_size() for split in (data.train, data.val))
        check_memory(config.model, size, rank_batch, device, amp_dtype, held_bytes=held)
    out, lock = claim_run_dir(config, runtime)  # held from here on, before anything is written there
    try:
        return _prepare(config, net, data, log, runtime=runtime, device=device, amp_dtype=amp_dtype, out=out,
                        lock=lock, resumed=resumed, geos=(train_geo, eval_geo), in_channels=in_channels,
                        backends=backends)
    except BaseException:
        if lock is not None:
            lock.abandon()  # released; a folder this run created and left empty is removed
        raise


def refuse_if_held(config: RunConfig, runtime: Runtime) -> None:
    """Refuse at once a run folder another process holds (``claim_run_dir`` takes it, once the data is read)."""
    refusal = None
    if runtime.main and config.out is not None:
        refusal = RunLock.refusal(Path(config.out), "--resume" if config.resume else "--out")
    refusal = runtime.broadcast(refusal)
    if refusal is not None:
        raise UserError(refusal)


def claim_run_dir(config: RunConfig, runtime: Runtime) -> tuple[Path, RunLock | None]:
    """The run directory (``--out``, ``--resume``'s, or a new ``runs/<model>-<time>``), created if needed and locked
    by rank 0 for the run's life (``RunLock``): a second run, ``--overwrite`` or ``--resume`` of a folder in use is
    refused. Under torchrun every rank learns rank 0's folder and its refusal, if any."""
    flag = "--resume" if config.resume else "--out"
    lock, refusal, out = None, None, config.out
    if runtime.main:
        try:
            made = out is None
            out = str(default_run_dir(config.model)) if made else out
            lock = RunLock.take(Path(out), flag, made=made)
        except UserError as exc:
            refusal = str(exc)
    out, refusal = runtime.broadcast((out, refusal))
    if refusal is not None:
        raise UserError(refusal)
    return Path(out), lock


def _prepare(config: RunConfig, net: nn.Module | None, data: Data, log: Callable[[str], None] | None, *,
             runtime: Runtime, device: torch.device, amp_dtype: torch.dtype | None, out: Path, lock: RunLock | None,
             resumed: tuple[Path | None, dict[str, Any] | None, dict[str, Any] | None],
             geos: tuple[Any, Any], in_channels: int, backends: dict[str, Any]) -> Run:
    """``prepare`` once the data is read and the run directory held."""
    path, state, recorded = resumed
    train_geo, eval_geo = geos
    if not config.resume:
        earlier = check_out(out, overwrite=config.overwrite)  # under the lock: no other run writes there now
    else:  # a run killed before its first checkpoint starts over: what its first attempt wrote goes
        earlier = [n for n in RUN_FILE_NAMES if n != "config.json" and (out / n).exists()] if state is None else []
        if state is None and runtime.main and log is not None:
            log(f"resuming {out}: it has no checkpoint yet (stopped before its first epoch ended): starting it over "
                "from its config.json")
    recipe, size = config.recipe, config.image_size
    rank_batch = runtime.split_batch(recipe.batch_size)
    if recorded is not None:
        check_same_data(data, recorded, out)
    # one step of the whole split: say so and record the batch used (too few images for a step: refused below)
    if recipe.batch_size > len(data.train) >= 2 * runtime.world_size and state is None:
        clamped = max(runtime.world_size, len(data.train) // runtime.world_size * runtime.world_size)
        warnings.warn(f"batch_size {recipe.batch_size:,} is larger than the training split ({len(data.train):,} "
                      f"images): using {clamped:,} (recorded in config.json)", stacklevel=3)
        recipe = recipe.replace(batch_size=clamped)
        config = config.replace(recipe=recipe)
        rank_batch = runtime.split_batch(clamped)
    common = dict(batch_size=rank_batch, device=device, seed=config.seed,
                  workers=config.workers, cores=runtime.cpu_share(), decode=config.decode, rank=runtime.rank,
                  world_size=runtime.world_size)
    train_loader = make_loader(data, "train", geo=train_geo, **common)
    val_loader = make_loader(data, "val", geo=eval_geo, **common)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise UserError(f"--data {data.spec}: the training split has fewer than {2 * runtime.world_size} images")
    if config.epochs is not None:
        total_steps = config.epochs * steps_per_epoch
    elif recorded is not None:
        total_steps = recorded["total_steps"]
    else:
        total_steps = recipe.iterations or recipe.epochs * steps_per_epoch
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    schedule = fit_schedule(recipe, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                            explicit=config.recipe_set)  # the recipe's shape at this run's length
    if state is not None and total_steps != state["config"]["total_steps"] and runtime.main and log is not None:
        log(replanned(state, recipe, steps_per_epoch, total_steps))

    torch.manual_seed(config.seed)  # initial weights, then the shared dropout / drop-path stream, follow the seed
    random.seed(config.seed)
    # the model with its --model-arg options; fine-tuning: --weights (not on resume) and --freeze
    net, start_lines = start_net(config, net, num_classes=data.num_classes, in_channels=in_channels,
                                 resumed=state is not None)
    if config.decode == "gpu":
        start_lines.append(decode_line(data, device, train_loader))
    if config.compile and getattr(net, "skips_layers", False):
        raise UserError(f"--compile: {config.model} skips layers per mini-batch (stochastic depth's gates or "
                        "FractalNet's drop-path, drawn on the host), which torch.compile can only follow by breaking "
                        "its graph in every block and recompiling for each drop pattern; train it without --compile")
    if config.sync_bn:
        net = convert_sync_batchnorm(net, device)
    net.to(device)
    # NCHW or channels-last: the flag, a resumed run's own, else timed on copies of the network (training/layout.py)
    side = train_loader.geo.size
    layout = choose_layout(
        forced=config.channels_last, recorded=state["config"] if state is not None else None, device=device,
        total_steps=total_steps - (state["epoch"] * steps_per_epoch if state is not None else 0), net=net,
        make_step=lambda copy, dtype: training_step(copy, dtype, recipe=recipe, device=device,
                                                    head=config.weights is not None),
        batch_shape=(min(rank_batch, len(data.train) // runtime.world_size), in_channels, side, side),
        num_classes=data.num_classes, amp_dtype=amp_dtype, broadcast=runtime.broadcast,
        bf16_isa=native_bf16_isa() if device.type == "cpu" and config.amp is None else [])
    if layout.channels_last:
        net.to(memory_format=torch.channels_last)
    train_loader.channels_last = val_loader.channels_last = layout.channels_last
    record = config_record(config, data=data, eval_resize=val_loader.geo.resize, device=device, amp_dtype=amp_dtype,
                           channels_last=layout.channels_last, steps_per_epoch=steps_per_epoch,
                           total_steps=total_steps, epochs=num_epochs, world_size=runtime.world_size)
    record.update(schedule={"line": schedule.line, "factor": schedule.factor, "scaled": schedule.scaled},
                  threads=torch.get_num_threads(), data_held=data.held, data_layout=data.layout, backends=backends,
                  **layout.record())
    header = header_lines(config, data, params=sum(p.numel() for p in net.parameters()), geo=recipe.geometry(size),
                          schedule_line=schedule.line, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                          num_epochs=num_epochs, extra=start_lines) + layout.lines()
    config = config.replace(recipe=schedule.recipe)  # the run trains with the fitted schedule
    ddp = wrap(net, device, runtime)
    forward = torch.compile(ddp) if config.compile else ddp
    # validation runs the bare network under torchrun: ranks hold different numbers of validation batches, and a
    # DDP forward may synchronise buffers (a collective each rank would call a different number of times)
    evaluator = forward if not runtime.distributed else (torch.compile(net) if config.compile else net)
    run = Run(
        config=config, record=record, runtime=runtime, device=device, amp_dtype=amp_dtype, data=data, net=net,
        forward=forward, evaluator=evaluator,
        optimizer=make_sgd(net, recipe, device, head=head_parameters(net) if config.weights else None,
                           scaled=amp_dtype is torch.float16),
        scaler=torch.amp.GradScaler("cuda") if amp_dtype is torch.float16 else None,
        plateau=Plateau.from_recipe(schedule.recipe),
        guard=StepGuard(device, runtime, policy=config.on_nonfinite),
        streams=RankStreams(net, device, runtime, config.seed), train_loader=train_loader, val_loader=val_loader,
        files=RunFiles.create(out, main=runtime.main, replace=earlier), lock=lock,
        log=(log or silent) if runtime.main else silent,
        steps_per_epoch=steps_per_epoch, total_steps=total_steps, num_epochs=num_epochs,
        sums=torch.zeros(2, dtype=sum_dtype(device), device=device),
        last_good="checkpoints are off" if not config.checkpoints else "no checkpoint had been written yet",
        zero_grads_to_none=not getattr(net, "skips_layers", False),
    )
    if not run.zero_grads_to_none:  # zero, not None, from the first step on: fused SGD needs every buffer alike
        for p in net.parameters():
            p.grad = torch.zeros_like(p) if p.requires_grad else None
    for line in header:
        run.log(line)
    for note in schedule.warnings:
        warnings.warn(f"schedule: {note}", stacklevel=3)
    if state is not None:
        restore(run, state, path)
    run.files.write_config(record)
    return run


CUDA_WORKSPACE_BYTES = 1 << 30  # kept free beyond the estimate on a GPU: cuDNN/cuBLAS workspaces, allocator slack


def training_memory_bytes(model: str, size: int, batch: int, amp_dtype: torch.dtype | None = None) -> int:
    """Training memory of ``model`` at ``size`` as the analyzer predicts it: parameters, buffers, gradients and
    optimizer state (fp32, under autocast too), saved activations and the input batch.

    The analyzer runs at the model's own side and the per-image bytes are scaled by the area ratio. Under autocast
    (``amp_dtype``) the saved activations take that dtype's bytes, autocast keeps a copy of the weights in it, and
    the fp32 input batch gets a copy in it."""
    native = model_info(model).input_size
    report = analyze(model, native, batch_size=1).totals
    ratio = 1.0 if amp_dtype is None else torch.finfo(amp_dtype).bits / 32
    fixed = report.param_bytes + report.buffer_bytes + report.grad_bytes + report.optimizer_bytes
    if amp_dtype is not None:
        fixed += report.param_bytes * ratio
    saved = report.saved_activation_bytes or report.activation_bytes
    per_image = saved * ratio + report.input_bytes * (1 + (ratio if amp_dtype is not None else 0))
    return int(fixed + per_image * batch * (size / native[1]) ** 2)


def decode_line(data: Data, device: torch.device, loader: Any) -> str:
    """The header's line on ``--decode gpu``: what it decodes, or why it does not apply."""
    if data.held == "streamed":
        return (f"decoding: JPEG files by nvJPEG on {device}, a batch at a time (other formats, CMYK JPEGs and "
                f"files nvJPEG refuses by PIL); {loader.workers} workers read the files")
    what = "is held in memory, decoded once by PIL (--cache off streams it)" if data.layout else "is no image folder"
    return f"decoding: --decode gpu does not apply: {data.spec} {what}"


def check_memory(model: str, size: int, batch: int, device: torch.device, amp_dtype: torch.dtype | None = None,
                 held_bytes: int = 0) -> None:
    """Refuse an input side whose training memory (``training_memory_bytes``, plus ``held_bytes`` of data held on
    the device) exceeds what the device can give, instead of trying to allocate it. On a GPU that is its free
    memory (after the CUDA context and other processes) less ``CUDA_WORKSPACE_BYTES``.

    Only sides above twice the model's own are checked (where such surprises happen)."""
    if size <= 2 * model_info(model).input_size[1]:
        return
    need = training_memory_bytes(model, size, batch, amp_dtype) + held_bytes
    have = device_memory_bytes(device)
    if have is not None and need > have:
        precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]
        held = f", with {held_bytes / 2**30:,.1f} GiB of data held on the device" if held_bytes else ""
        where = f"free on {device} (after the CUDA context, less {CUDA_WORKSPACE_BYTES / 2**30:g} GiB for " \
                "cuDNN/cuBLAS workspaces)" if device.type == "cuda" else f"{device} has"
        raise UserError(f"--image-size {size}: training {model} at {size}x{size}, batch {batch}, needs about "
                        f"{need / 2**30:,.1f} GiB (the analyzer's estimate in {precision}{held}), more than the "
                        f"{have / 2**30:,.1f} GiB {where}; use a smaller --image-size or --batch-size")


def device_memory_bytes(device: torch.device) -> int | None:
    """What a run may allocate: a GPU's free memory less the workspace margin; the machine's memory on the CPU."""
    if device.type == "cuda":
        return max(0, torch.cuda.mem_get_info(device)[0] - CUDA_WORKSPACE_BYTES)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def train_epoch(run: Run, stop: StopFlag) -> dict[str, Any]:
    """One epoch of SGD from ``run.step`` on; returns its training metrics. A signal checkpoints and raises
    :class:`TrainingInterrupted`; a non-finite loss raises :class:`NonFiniteLoss` (the last checkpoint is kept)."""
    epoch, spe = run.epoch, run.steps_per_epoch
    steps = min(spe, run.total_steps - epoch * spe)
    run.net.train()
    t0, seen_before, skipped = time.perf_counter(), run.seen, 0
    bar = run.files.progress(steps, run.step, f"epoch {epoch + 1}/{run.num_epochs}", run.config.progress, run.seen)
    lr, first_lr, done = None, None, run.step
    epoch_batches = run.train_loader.epoch(epoch, run.step)
    batches = enumerate(epoch_batches, start=run.step)
    while done < steps:
        try:
            step, (x, y) = next(batches)
            lr = lr_at(epoch * spe + step, run.recipe, steps_per_epoch=spe, total_steps=run.total_steps,
                       plateau_factor=run.plateau.lr_factor)
            first_lr = lr if step == 0 else first_lr
            for group in run.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)
            if len(y) or run.runtime.distributed:  # no labels: no image of this batch decoded (the loader says which)
                run.streams.begin_step(epoch, step)
                skipped += not sgd_step(run, x, y, epoch * spe + step)
            done = step + 1
        except StopIteration:
            break
        except RuntimeError as exc:  # a loader worker killed (OOM killer, a signal): stop as a signal would
            reason = worker_death(exc)
            if reason is None:
                raise
            bar.close()
            epoch_batches.close()  # every loader's workers go before the checkpoint is written: torch's SIGCHLD
            run.train_loader.close()  # handler would report a dead one again in the middle of it
            run.val_loader.close()
            stop_mid_epoch(run, epoch, done, seen_before, t0, reason)
            raise WorkerDied(reason, run.files.out) from None
        bar.step(run.sums, run.seen, lr)
        signum, bad, value = run.guard.poll(stop.signum, step, force=step + 1 == steps)
        if bad is not None:  # nothing after the bad step is saved: the last checkpoint stays the good one
            bar.close()
            message = run.guard.message(bad, value, steps_per_epoch=spe, last_good=run.last_good)
            finish(run, interrupted=True, reason=message)
            raise NonFiniteLoss(message, run.files.out)
        if signum is not None:  # checkpoint mid-epoch; the resumed run replays the rest exactly
            bar.close()
            stop_mid_epoch(run, epoch, step + 1, seen_before, t0, signal.Signals(signum).name)
            raise TrainingInterrupted(signum, run.files.out)
    if lr is None:  # resumed after the epoch's last step: log the lr that step used, not the recipe's base lr
        lr = lr_at(epoch * spe + max(steps - 1, 0), run.recipe, steps_per_epoch=spe, total_steps=run.total_steps,
                   plateau_factor=run.plateau.lr_factor)
    if first_lr is None:  # resumed mid-epoch: its first step ran before (the plateau factor changes between epochs)
        first_lr = lr_at(epoch * spe, run.recipe, steps_per_epoch=spe, total_steps=run.total_steps,
                         plateau_factor=run.plateau.lr_factor)
    bar.close()
    loss_sum, hits, count, new_images = epoch_sums(run, seen_before)
    seconds = time.perf_counter() - t0  # after the read above: the device has caught up
    run.train_seconds += seconds
    run.images_seen += int(new_images)
    return {"epoch": epoch + 1, "lr": lr, "lr_first": first_lr, "train_loss": loss_sum / max(count, 1.0),
            "train_top1": 100.0 * hits / max(count, 1.0), "images_per_s": new_images / max(seconds, 1e-9),
            "train_seconds": seconds, "train_images": int(count),
            **({"skipped_steps": skipped} if run.config.on_nonfinite == "skip" else {})}


def forward_loss(forward: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, device: torch.device,
                 amp_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of a training batch, under autocast when ``amp_dtype`` is set."""
    with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        outputs = forward(x)
        logits, *aux = outputs if isinstance(outputs, tuple) else (outputs,)
        if len(y):  # cross-entropy of the main head plus aux_loss_weight x each auxiliary head's (Szegedy et al. §5)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
            for head in aux:
                loss = loss + recipe.aux_loss_weight * F.cross_entropy(head, y, label_smoothing=recipe.label_smoothing)
        else:  # no image of this batch decoded: 0 through every output, so that a data-parallel rank still takes
            # part in the gradient all-reduce (with zeros) instead of leaving the other ranks waiting for it
            loss = sum(o.float().sum() for o in (logits, *aux)) * 0.0
    return loss, logits


def sgd_step(run: Run, x: torch.Tensor, y: torch.Tensor, iteration: int) -> bool:
    """Forward, loss, backward, update; False when the guard drops the step (``--on-nonfinite skip``)."""
    loss, logits = forward_loss(run.forward, x, y, run.recipe, run.device, run.amp_dtype)
    run.guard.record(loss, iteration)
    run.optimizer.zero_grad(set_to_none=run.zero_grads_to_none)
    (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
    if run.guard.skip(loss, iteration):  # every rank drops this step
        run.optimizer.zero_grad(set_to_none=run.zero_grads_to_none)
        return False
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    if len(y):
        run.sums += torch.stack([loss.detach() * len(y), (logits.argmax(1) == y).sum()]).to(run.sums.dtype)
        run.seen += len(y)
    return True


def training_step(net: nn.Module, amp_dtype: torch.dtype | None, *, recipe: Recipe, device: torch.device,
                  head: bool) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """A step of the run's training on ``net`` with an optimizer of its own (``head``: the fine-tuning groups), as
    ``sgd_step`` takes it without the run's counters and guard: what the layout probe times on its copies."""
    optimizer = make_sgd(net, recipe, device, head=head_parameters(net) if head else None,
                         scaled=amp_dtype is torch.float16)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype is torch.float16 else None
    to_none = not getattr(net, "skips_layers", False)  # as the run: zero gradients where layers are skipped
    if not to_none:
        for p in net.parameters():
            p.grad = torch.zeros_like(p) if p.requires_grad else None

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss, _ = forward_loss(net, x, y, recipe, device, amp_dtype)
        optimizer.zero_grad(set_to_none=to_none)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

    return step


def epoch_sums(run: Run, seen_before: int) -> list[float]:
    """This epoch so far, summed over the ranks: loss x n, top-1 hits, images, images since this session began."""
    extra = run.sums.new_tensor([run.seen, run.seen - seen_before])
    return all_reduce_sum(torch.cat([run.sums, extra])).tolist()


def validate(run: Run, row: dict[str, Any]) -> torch.Tensor:
    """Validation metrics into ``row`` (every rank validates rank 0's network); returns the confusion matrix."""
    broadcast_buffers(run.net)
    val = classification_metrics(run.evaluator, run.val_loader, num_classes=run.data.num_classes,
                                 amp_dtype=run.amp_dtype, reduce=all_reduce_sum)
    row.update({k: v for k, v in val.items() if k != "confusion"})
    if run.recipe.schedule == "plateau":
        run.plateau.step(row["val_top1"])
    return val["confusion"]


def end_epoch(run: Run, row: dict[str, Any], confusion: torch.Tensor, t0: float) -> None:
    """The epoch's row in the history and metrics.jsonl, best weights, the ``last`` checkpoint, the log line."""
    row["seconds"] = time.perf_counter() - t0
    run.history.append(row)
    run.epoch, run.step, run.seen = run.epoch + 1, 0, 0
    run.sums.zero_()
    if row["val_top1"] > run.best["val_top1"]:
        run.best = {"val_top1": row["val_top1"], "val_top5": row["val_top5"], "epoch": row["epoch"]}
        if run.config.checkpoints:
            run.files.save_weights("best", run.net, run.record, epoch=row["epoch"], metrics=row)
    run.files.write_metrics(run.history)
    run.files.write_confusion(confusion, run.data.classes)
    save(run, run.epoch, 0)
    run.log(epoch_line(row, run.num_epochs) + eta(sum(r["seconds"] for r in run.history), run.epoch,
                                                  run.num_epochs))


def check_weights(run: Run, where: str) -> None:
    """Weights that became non-finite (``checkpoint.unusable_tensors``) are never saved, as ``last`` or ``best``:
    training stops with :class:`NonFiniteLoss`, the last checkpoint stays the last good one."""
    message = run.guard.bad_weights(run.net, where, last_good=run.last_good)
    if message is not None:
        finish(run, interrupted=True, reason=message)
        raise NonFiniteLoss(message, run.files.out)


def stop_mid_epoch(run: Run, epoch: int, done: int, seen_before: int, t0: float, reason: str) -> None:
    """A run stopped mid-epoch (a signal, a data-loading worker that died): checkpoint after step ``done`` of
    ``epoch`` (weights checked first) and write the summary with ``reason``."""
    run.train_seconds += time.perf_counter() - t0
    partial = epoch_sums(run, seen_before)
    run.images_seen += int(partial[3])
    check_weights(run, f"epoch {epoch + 1}, step {done}")
    save(run, epoch, done, partial)
    finish(run, interrupted=True, reason=reason)


def finish(run: Run, *, interrupted: bool, reason: str | None = None) -> dict[str, Any]:
    """summary.json, for every run, stopped or not (every rank takes part: the skipped files are gathered from all of
    them)."""
    skipped = run.runtime.union([*run.data.skipped_files, *run.train_loader.skipped, *run.val_loader.skipped])
    result = summary(run.record, run.data, run.history, run.best, run.train_seconds, run.images_seen,
                     interrupted=interrupted, net=run.net, skipped_files=skipped, stop_reason=reason)
    run.files.write_summary(result)
    return result


def run_training(config: RunConfig, *, net: nn.Module | None = None, data: Data | None = None,
                 log: Callable[[str], None] | None = print_line) -> RunResult:
    """``prepare``, then the epochs; a signal during validation is agreed by all ranks and stops after it."""
    run = prepare(config, net=net, data=data, log=log)
    try:
        with StopFlag() as stop:
            while run.epoch < run.num_epochs:
                t0 = time.perf_counter()
                row = train_epoch(run, stop)
                check_weights(run, f"the end of epoch {run.epoch + 1}")
                confusion = validate(run, row)
                end_epoch(run, row, confusion, t0)
                signum, _, _ = run.guard.poll(stop.signum, 0, force=True)
                if signum is not None:
                    finish(run, interrupted=True, reason=signal.Signals(signum).name)
                    raise TrainingInterrupted(signum, run.files.out)
        result = finish(run, interrupted=False)
    finally:
        if run.lock is not None:
            run.lock.release()
        if run.device.type == "cpu":
            release_cpu_heap()  # the memory the steps kept for each other (set_backends): the run is over
    run.net.eval()
    return RunResult(run.files.out, run.net, result, run.history)

"""Every GPU question about cnnzoo answered by one run on one GPU (issue 20): at most 8 minutes, results as JSON.

    python benchmarks/gpu_check.py                 # on the GPU machine: JSON in --out, else $OUT, else build/gpu_check
    python benchmarks/gpu_check.py --smoke         # the CPU: every case that can run there, at tiny sizes (the test)
    python benchmarks/gpu_check.py --only resume,memory

No install step: the checkout's ``src`` goes on ``sys.path`` first, so the machine's own Python and torch run this
checkout's cnnzoo. The versions and the GPU's compute capability come first. Each case runs in its own ``try`` under
its own alarm (one failure or hang never hides the others) and ``gpu_check.json`` is rewritten after each, so a run
cut short still leaves every finished case. The cases, in order (the slowest last, with what time is left):

- ``fp16_overflow``: ``cnnzoo.train --amp fp16`` with a gradient overflow forced in its first step: the step is
  skipped (the scale drops) and the weights change and stay finite; beside it, torch's fused SGD under a scaler with
  a skipped first step (non-finite weights: why ``make_sgd`` does not fuse under a scaler);
- ``lrn_precision``: AlexNet, ZFNet, GoogLeNet, VGG-11-LRN in bf16/fp16 autocast against fp32, and one LRN layer fed
  activations up to 600 (fp16 squares overflow past 256);
- ``torchrun_nccl``: ``torchrun --nproc_per_node 1`` with NCCL and ``--sync-bn``: the child asserts the process group,
  its backend, the DDP wrapper and the SyncBatchNorm layers (one GPU cannot show ranks whose statistics differ);
- ``resume``: SIGTERM mid-epoch, a model with dropout, ``--deterministic``, resumed; against an uninterrupted run,
  and a second uninterrupted run as the floor (both differences should be 0);
- ``throughput``: ``cnnzoo.train`` images/s (second epoch) against a plain loop on the same model, resnet50_tv at 224
  (batch 256) and resnet56 at 32 (batch 128); the precision matrix of resnet50_tv (fp32 TF32 off/on, bf16 NCHW and
  channels-last, fp16);
- ``host_syncs``: CUDA's sync debug mode over 50 trainer steps: the lines that wait for the GPU, and how often;
- ``data_loader``: ~2,000 generated JPEGs through the streamed folder loader, PIL in 8 and 15 workers against nvJPEG;
- ``memory``: the analyzer's training-memory estimate (fp32, bf16) against ``max_memory_allocated`` for resnet50,
  vgg16 and densenet121;
- ``compile``: ``torch.compile`` seconds, speed-up, graph breaks and graphs for resnet50_tv and the trainer's path,
  stochastic depth and FractalNet compiled raw (which ``--compile`` refuses, and why), and a CUDA graph of a whole
  resnet56 step against eager, as figures.

Statuses: ``ok``, ``fail`` (a check that did not hold), ``error`` (an exception), ``timeout``, ``measured`` (figures
only) and ``skipped`` (with the reason). Exit 1 when any case failed or raised, else 0.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's cnnzoo, whatever is installed

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

import cnnzoo  # noqa: E402
from cnnzoo.data import load_data, make_loader  # noqa: E402
from cnnzoo.data.loaders import available_cores, loader_workers  # noqa: E402
from cnnzoo.device import amp_dtype_for, set_backends  # noqa: E402
from cnnzoo.errors import UserError  # noqa: E402
from cnnzoo.training import RECIPES, TrainingInterrupted, load_state  # noqa: E402
from cnnzoo.training.recipes import Recipe  # noqa: E402
from cnnzoo.training.run_files import git_commit  # noqa: E402
from cnnzoo.training.schedules import make_sgd  # noqa: E402
from cnnzoo.training.trainer import training_memory_bytes  # noqa: E402

BUDGET_S = 480.0  # the whole run: 8 minutes


@dataclass(frozen=True)
class Sizes:
    """One GPU, or the CPU smoke run (tiny)."""

    cifar_images: int = 1024  # synthetic CIFAR-size set of the correctness runs (8 steps of 128)
    cifar_batch: int = 128
    cifar_side: int = 32
    lrn_batch: int = 8
    r50_side: int = 224
    r50_batch: int = 256
    r50_steps: int = 12  # per epoch of the trainer runs (the second epoch is measured)
    r56_batch: int = 128
    r56_steps: int = 40
    warm: int = 5  # plain-loop steps before timing
    timed: int = 20
    sync_steps: int = 50
    jpegs: int = 2000
    jpeg_side: tuple[int, int] = (500, 375)
    loader_batch: int = 256
    memory_batch: int = 64


SMOKE = Sizes(cifar_images=32, cifar_batch=8, cifar_side=8, lrn_batch=1, r50_side=64, r50_batch=2, r50_steps=2,
              r56_batch=4, r56_steps=2, warm=1, timed=1, sync_steps=4, jpegs=16, jpeg_side=(60, 45), loader_batch=4,
              memory_batch=2)  # fmt: skip
QUIET = dict(progress=False, log=None)
FLAT = ["schedule=constant", "warmup_epochs=0"]  # the correctness runs: a constant lr


class CaseTimeout(Exception):
    """A case ran past its share of the time budget."""


def _alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout("ran past its time limit")


class Check:
    """The JSON report: environment, then one entry per case, rewritten after each."""

    def __init__(self, out: Path, *, cuda: bool, smoke: bool, budget: float) -> None:
        self.out, self.cuda, self.smoke, self.budget = out, cuda, smoke, budget
        self.t0 = time.perf_counter()
        self.path = out / "gpu_check.json"
        self.report: dict[str, Any] = {"gpu_check": {"smoke": smoke, "budget_s": budget,
                                                     "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())},
                                       "environment": {}, "cases": {}}  # fmt: skip
        signal.signal(signal.SIGALRM, _alarm)

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.report, indent=1, default=str) + "\n")

    def case(self, name: str, fn: Callable[[dict[str, Any]], bool | None], *, limit: float,
             cuda_only: str | None = None, smoke_skip: str | None = None) -> None:
        """Run ``fn(figures)`` within ``limit`` seconds: it fills ``figures`` as it goes (what it measured before a
        timeout or an exception is kept) and returns True/False (the check held or not) or None (figures only)."""
        entry: dict[str, Any]
        if cuda_only and not self.cuda:
            entry = {"status": "skipped", "reason": cuda_only}
        elif smoke_skip and self.smoke:
            entry = {"status": "skipped", "reason": smoke_skip}
        elif self.left() < 5:
            entry = {"status": "skipped", "reason": f"the {self.budget:.0f} s budget is spent"}
        else:
            start, figures = time.perf_counter(), {}
            seconds = max(1, int(min(limit, self.left())))
            signal.alarm(seconds)
            try:
                ok = fn(figures)
                entry = {"status": "measured" if ok is None else "ok" if ok else "fail", **figures}
            except CaseTimeout:
                entry = {"status": "timeout", "reason": f"over {seconds} s", **figures}
            except Exception as exc:  # one broken path must not hide the others
                entry = {"status": "error", "reason": f"{type(exc).__name__}: {str(exc).strip()[:500]}",
                         "traceback": traceback.format_exc()[-2000:], **figures}
            finally:
                signal.alarm(0)
            entry["seconds"] = round(time.perf_counter() - start, 2)
        self.report["cases"][name] = entry
        print(f"{name}: {entry['status']} ({entry.get('seconds', 0):.1f} s)"
              + (f": {entry['reason'][:200]}" if "reason" in entry else ""), flush=True)
        self.write()


# ---- environment ----------------------------------------------------------------------------------------------------


def environment(cuda: bool) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "cnnzoo": cnnzoo.__version__, "git_commit": git_commit(), "platform": platform.platform(),
        "cpu_cores": os.cpu_count(), "available_cores": available_cores(), "cuda_runtime": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }  # fmt: skip
    if cuda:
        props = torch.cuda.get_device_properties(0)
        capability = torch.cuda.get_device_capability(0)
        env.update(gpu=props.name, compute_capability=f"{capability[0]}.{capability[1]}",
                   gpu_memory_gib=round(props.total_memory / 2**30, 1), gpus=torch.cuda.device_count(),
                   cudnn=torch.backends.cudnn.version(), bf16_tensor_cores=capability >= (8, 0),
                   default_amp=str(amp_dtype_for(None, torch.device("cuda", 0))))
        try:
            version = torch.cuda.nccl.version()
            env["nccl"] = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
        except Exception as exc:
            env["nccl"] = f"unknown ({type(exc).__name__})"
    return env


# ---- fp16 -----------------------------------------------------------------------------------------------------------


class _Overflow(torch.autograd.Function):
    """The identity, whose gradient is multiplied by 1e8: past fp16's 65,504, i.e. inf."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * 1e8


class OverflowOnce(nn.Module):
    """Overflows the gradients behind it in the first training step only."""

    def __init__(self) -> None:
        super().__init__()
        self.left = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.left:
            self.left -= 1
            return _Overflow.apply(x)
        return x


def _skipped_first_step(fused: bool, device: str) -> int:
    """Non-finite weights after a GradScaler-skipped first step and one real step (torch's SGD, fused or as
    ``make_sgd`` builds it under a scaler)."""
    torch.manual_seed(0)
    net = nn.Linear(100, 1000).to(device)
    recipe = RECIPES["quick"]
    if fused:
        opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum, fused=True)
    else:
        opt = make_sgd(net, recipe, torch.device(device), scaled=True)
    scaler = torch.amp.GradScaler(device)
    for overflow in (True, False):
        opt.zero_grad()
        scaler.scale(net(torch.randn(4, 100, device=device)).sum()).backward()
        if overflow:
            net.weight.grad[0, 0] = float("inf")
        scaler.step(opt)
        scaler.update()
    return sum(int((~torch.isfinite(p)).sum()) for p in net.parameters())


def fp16_overflow(check: Check, sz: Sizes, tmp: Path, result: dict[str, Any]) -> bool:
    device = "cuda" if check.cuda else "cpu"
    result.update(torch_fused_sgd_nonfinite=_skipped_first_step(True, device),
                  make_sgd_scaled_nonfinite=_skipped_first_step(False, device))
    ok = result["make_sgd_scaled_nonfinite"] == 0
    if not check.cuda:
        result["trainer"] = "skipped: --amp fp16 needs CUDA"
        return ok
    net = cnnzoo.create_model("resnet20")
    net.stem = nn.Sequential(net.stem, OverflowOnce())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    run = cnnzoo.train(net, image_size=sz.cifar_side, data=f"synthetic:{sz.cifar_images}", batch_size=sz.cifar_batch,
                       epochs=1, amp="fp16", device="cuda", out=tmp / "fp16", overrides=FLAT, **QUIET)
    after = {k: v.cpu() for k, v in run.model.state_dict().items()}
    scale = load_state(tmp / "fp16" / "last.pt")["scaler"]["scale"]
    changed = any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    finite = all(bool(torch.isfinite(v).all()) for v in after.values() if v.is_floating_point())
    result.update(trainer_scale_after=scale, trainer_first_step_skipped=scale < 65536.0, weights_changed=changed,
                  weights_finite=finite, train_loss=run.history[-1]["train_loss"])
    return ok and changed and finite and scale < 65536.0


# ---- LRN ------------------------------------------------------------------------------------------------------------


def lrn_precision(check: Check, sz: Sizes, result: dict[str, Any]) -> bool:
    device = torch.device("cuda" if check.cuda else "cpu")
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16} if check.cuda else {"bf16": torch.bfloat16}
    ok = True
    for name in ("alexnet", "zfnet", "googlenet", "vgg11_lrn"):
        info = cnnzoo.model_info(name)
        side = info.input_size[1] if check.cuda else info.test_size
        torch.manual_seed(0)
        net = cnnzoo.create_model(name).to(device).eval()
        x = torch.randn(sz.lrn_batch, 3, side, side, device=device)
        with torch.no_grad():
            ref = net(x).float()
            row: dict[str, Any] = {}
            for label, dtype in dtypes.items():
                with torch.autocast(device.type, dtype=dtype):
                    out = net(x).float()
                finite = bool(torch.isfinite(out).all())
                rel = float((out - ref).norm() / ref.norm().clamp(min=1e-12))
                row[label] = {"finite": finite, "relative_error": rel,
                              "top1_agreement": float((out.argmax(1) == ref.argmax(1)).float().mean())}
                ok &= finite
            lrn = next(m for m in net.modules() if isinstance(m, nn.LocalResponseNorm))
            a = torch.rand(2, 64, 13, 13, device=device) * 600.0  # ReLU outputs as large as AlexNet's conv1 gives
            for label, dtype in dtypes.items():  # against fp32 arithmetic on the same (rounded) input
                exact = lrn(a.to(dtype).float())
                err = float(((lrn(a.to(dtype)).float() - exact).abs() / exact.abs().clamp(min=1e-6)).max())
                row[f"lrn_layer_{label}_max_relative_error"] = err
                ok &= err < 1e-2
        result[name] = row
        del net
    return ok


# ---- torchrun -------------------------------------------------------------------------------------------------------

TORCHRUN_CHILD = """
import json, sys
sys.path.insert(0, {src!r})
import torch.distributed as dist
from torch import nn
import cnnzoo
from cnnzoo.training import trainer

seen = {{}}
prepare = trainer.prepare

def spy(*args, **kwargs):
    run = prepare(*args, **kwargs)
    seen.update(group=dist.is_initialized(), backend=dist.get_backend(), world=dist.get_world_size(),
                forward=type(run.forward).__name__, device=str(run.device),
                sync_bn_layers=sum(isinstance(m, nn.SyncBatchNorm) for m in run.net.modules()))
    return run

trainer.prepare = spy
r = cnnzoo.train("resnet20", data="synthetic:{images}", image_size={side}, batch_size={batch}, epochs=1,
                 device="cuda", sync_bn=True, checkpoints=False, progress=False, log=None, out=sys.argv[1])
seen.update(loss=r.history[-1]["train_loss"], group_after=dist.is_initialized())
print("SEEN " + json.dumps(seen), flush=True)
assert seen["group"] and seen["backend"] == "nccl" and seen["forward"] == "DistributedDataParallel", seen
assert seen["sync_bn_layers"] > 0 and not seen["group_after"], seen
"""


def torchrun_nccl(check: Check, sz: Sizes, tmp: Path, result: dict[str, Any]) -> bool:
    script = tmp / "torchrun_child.py"
    script.write_text(TORCHRUN_CHILD.format(src=str(ROOT / "src"), images=sz.cifar_images, side=sz.cifar_side,
                                            batch=sz.cifar_batch))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", str(script),
           str(tmp / "ddp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(10, check.left() - 5))
    seen = [json.loads(line[5:]) for line in proc.stdout.splitlines() if line.startswith("SEEN ")]
    result.update(exit=proc.returncode, seen=seen[0] if seen else None,
                  stderr_tail=proc.stderr[-1500:] if proc.returncode else "",
                  not_checked="one GPU: SyncBatchNorm statistics and gradient all-reduces across ranks that differ")
    return proc.returncode == 0 and bool(seen)


# ---- resume ---------------------------------------------------------------------------------------------------------


class Interrupting(nn.Module):
    """The network behind input dropout (per-element masks: the device's random stream), sending this process
    SIGTERM in its ``at``-th training forward (None: never)."""

    def __init__(self, net: nn.Module, at: int | None) -> None:
        super().__init__()
        self.net, self.at, self.calls = net, at, 0
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
        return self.net(self.drop(x))


def resume(check: Check, sz: Sizes, tmp: Path, result: dict[str, Any]) -> bool:
    device = "cuda" if check.cuda else "cpu"
    steps = sz.cifar_images // sz.cifar_batch
    kw = dict(image_size=sz.cifar_side, data=f"synthetic:{sz.cifar_images}", batch_size=sz.cifar_batch, epochs=2,
              device=device, deterministic=True, overrides=FLAT, **QUIET)

    def fresh(at: int | None) -> Interrupting:
        torch.manual_seed(0)
        return Interrupting(cnnzoo.create_model("resnet20"), at)

    try:
        return _resume_runs(kw, fresh, steps, tmp, result)
    finally:  # the deterministic mode stays on for a process: off again for the cases after this one
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


def _resume_runs(kw: dict[str, Any], fresh: Callable[[int | None], nn.Module], steps: int, tmp: Path,
                 result: dict[str, Any]) -> bool:
    ref = cnnzoo.train(fresh(None), out=tmp / "ref", **kw).model.state_dict()
    floor = cnnzoo.train(fresh(None), out=tmp / "again", **kw).model.state_dict()
    at = steps + steps // 2  # in the middle of the second epoch
    try:
        cnnzoo.train(fresh(at), out=tmp / "cut", **kw)
        result["interrupted_at"] = "nowhere: SIGTERM did not interrupt the run"
        return False
    except TrainingInterrupted:
        pass
    state = load_state(tmp / "cut" / "last.pt")
    resumed = cnnzoo.train(fresh(None), resume=tmp / "cut", **{k: v for k, v in kw.items()
                                                               if k not in ("image_size", "data", "batch_size",
                                                                            "overrides")}).model.state_dict()

    def diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())

    d_resume, d_floor = diff(ref, resumed), diff(ref, floor)
    result.update(interrupted_at=f"epoch {state['epoch'] + 1}, step {state['step_in_epoch']} of {steps}",
                  max_abs_diff_resumed_vs_uninterrupted=d_resume, max_abs_diff_two_uninterrupted_runs=d_floor,
                  deterministic=True, dropout=True)
    return d_resume == 0 and d_floor == 0


# ---- throughput -----------------------------------------------------------------------------------------------------


def trainer_rate(model: str, side: int, batch: int, steps: int, device: str, out: Path, **options: Any) -> float:
    """``cnnzoo.train``'s images/s in its second epoch (synthetic data resident on the device)."""
    run = cnnzoo.train(model, data=f"synthetic:{batch * steps}", image_size=side, batch_size=batch, epochs=2,
                       device=device, checkpoints=False, out=out, **options, **QUIET)
    return run.history[1]["images_per_s"]


def plain_rate(net: nn.Module, side: int, batch: int, sz: Sizes, device: str, amp: torch.dtype | None) -> float:
    """A plain loop: SGD with momentum, autocast, channels-last on CUDA, one random batch resident on the device."""
    cuda = device == "cuda"
    net = net.to(device).train()
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, side, side, device=device)
    x = x.contiguous(memory_format=torch.channels_last) if cuda else x
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=amp or torch.float32, enabled=amp is not None):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(sz.warm):
        step()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(sz.timed):
        step()
    if cuda:
        torch.cuda.synchronize()
    return batch * sz.timed / (time.perf_counter() - start)


def throughput(check: Check, sz: Sizes, tmp: Path, result: dict[str, Any]) -> bool | None:
    device = "cuda" if check.cuda else "cpu"
    matrix = {"fp32_tf32_off": dict(amp="off", tf32=False, channels_last=True),
              "fp32_tf32_on": dict(amp="off", tf32=True, channels_last=True),
              "bf16_nchw": dict(amp="bf16", channels_last=False),
              "bf16_channels_last": dict(amp="bf16", channels_last=True),
              "fp16_channels_last": dict(amp="fp16", channels_last=True)}  # fmt: skip
    if not check.cuda:  # the CPU smoke run: fp32 only
        matrix = {"fp32_cpu": dict(amp="off")}
    rates = result["resnet50_tv_trainer_images_per_s"] = {}
    for label, options in matrix.items():
        rates[label] = trainer_rate("resnet50_tv", sz.r50_side, sz.r50_batch, sz.r50_steps, device, tmp / f"m_{label}",
                                    **options)
    amp = torch.bfloat16 if check.cuda else None
    torch.manual_seed(0)
    plain50 = plain_rate(torchvision.models.resnet50(num_classes=1000), sz.r50_side, sz.r50_batch, sz, device, amp)
    mine = rates["bf16_channels_last" if check.cuda else "fp32_cpu"]
    result["resnet50"] = {"trainer_images_per_s": mine, "plain_torchvision_loop_images_per_s": plain50,
                          "ratio": mine / plain50, "target": ">= 0.9 (bf16, channels-last, batch 256)"}
    r56 = trainer_rate("resnet56", sz.cifar_side, sz.r56_batch, sz.r56_steps, device, tmp / "r56",
                       amp="bf16" if check.cuda else "off")
    torch.manual_seed(0)
    plain56 = plain_rate(cnnzoo.create_model("resnet56"), sz.cifar_side, sz.r56_batch, sz, device, amp)
    result["resnet56"] = {"trainer_images_per_s": r56, "plain_loop_images_per_s": plain56, "ratio": r56 / plain56,
                          "target": ">= 0.8 (the trainer also augments on the device and sums the metrics)"}
    return None if not check.cuda else result["resnet50"]["ratio"] >= 0.9 and result["resnet56"]["ratio"] >= 0.8


# ---- host syncs -----------------------------------------------------------------------------------------------------


def host_syncs(check: Check, sz: Sizes, tmp: Path, result: dict[str, Any]) -> bool:
    """Every synchronizing CUDA call over ``sync_steps`` trainer steps (and the epoch's end), by source line."""
    steps = sz.sync_steps
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            cnnzoo.train("resnet56", data=f"synthetic:{sz.r56_batch * steps}", image_size=sz.cifar_side,
                         batch_size=sz.r56_batch, epochs=1, device="cuda", checkpoints=False, out=tmp / "syncs",
                         **QUIET)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    where = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught
                    if "synchroniz" in str(w.message).lower())
    per_step = {k: v for k, v in where.items() if v >= steps}
    result.update(steps=steps, syncs=sum(where.values()), by_line=dict(where.most_common(20)), every_step=per_step,
                  target="0 per step besides the periodic reads")
    return not per_step


# ---- data loading ---------------------------------------------------------------------------------------------------


def _jpeg(args: tuple[Path, int, tuple[int, int]]) -> None:
    path, seed, (width, height) = args
    rs = np.random.RandomState(seed)
    ramp = np.linspace(0, 255, width)[None, :, None] * rs.rand(1, 1, 3) + np.linspace(0, 255, height)[:, None, None] * rs.rand(1, 1, 3)
    pixels = np.clip(ramp / 2 + rs.randint(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def jpeg_folder(root: Path, count: int, side: tuple[int, int]) -> Path:
    """``count`` photo-like JPEGs in 10 class folders (train/), one per class in val/."""
    jobs = []
    for i in range(count + 10):
        split, label = ("train", i % 10) if i < count else ("val", i - count)
        folder = root / split / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((folder / f"{i}.jpg", i, side))
    with multiprocessing.get_context("fork").Pool(min(16, os.cpu_count() or 1)) as pool:
        pool.map(_jpeg, jobs)
    return root


def data_loader(check: Check, sz: Sizes, tmp: Path, result: dict[str, Any]) -> None:
    device = torch.device("cuda" if check.cuda else "cpu")
    data = load_data(str(jpeg_folder(tmp / "jpegs", sz.jpegs, sz.jpeg_side)), image_size=224)
    geo = RECIPES["resnet_imagenet"].geometry(224 if check.cuda else 32)
    settings = [("cpu", 8), ("cpu", 15), ("gpu", 8)] if check.cuda else [("cpu", 0), ("gpu", 0)]
    result.update(images=len(data.train), jpeg_size=list(sz.jpeg_side), default_workers=loader_workers(None))
    for decode, workers in settings:
        loader = make_loader(data, "train", geo=geo, batch_size=sz.loader_batch, device=device, seed=0,
                             workers=workers, decode=decode)
        for _ in loader.epoch(0):  # workers start, decoders warm up
            pass
        if check.cuda:
            torch.cuda.synchronize()
        start, seen = time.perf_counter(), 0
        for x, _ in loader.epoch(1):
            seen += len(x)
        if check.cuda:
            torch.cuda.synchronize()
        loader.close()
        label = f"{decode}_decode_{workers}_workers" + ("" if check.cuda or decode == "cpu" else "_on_the_cpu")
        result[label] = {"images_per_s": seen / (time.perf_counter() - start)}
    return None


# ---- memory ---------------------------------------------------------------------------------------------------------


def memory(check: Check, sz: Sizes, result: dict[str, Any]) -> None:
    set_backends(torch.device("cuda", 0), deterministic=False)
    result.update(batch=sz.memory_batch, side=224)
    for name in ("resnet50", "vgg16", "densenet121"):
        for label, amp in (("fp32", None), ("bf16", torch.bfloat16)):
            estimate = training_memory_bytes(name, 224, sz.memory_batch, amp)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            net = cnnzoo.create_model(name).cuda().to(memory_format=torch.channels_last).train()
            opt = make_sgd(net, RECIPES["quick"], torch.device("cuda"))
            x = torch.randn(sz.memory_batch, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 1000, (sz.memory_batch,), device="cuda")
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
                    loss = F.cross_entropy(net(x), y)
                loss.backward()
                opt.step()
            torch.cuda.synchronize()
            measured = torch.cuda.max_memory_allocated() - base
            result[f"{name}_{label}"] = {"estimate_gib": round(estimate / 2**30, 3),
                                         "max_memory_allocated_gib": round(measured / 2**30, 3),
                                         "measured_over_estimate": round(measured / estimate, 3)}
            del net, opt, x, y, loss
    return None


# ---- compile and CUDA graphs (last) ---------------------------------------------------------------------------------


def _dynamo_counts() -> dict[str, Any]:
    from torch._dynamo.utils import counters

    return {"graph_breaks": sum(counters["graph_break"].values()), "unique_graphs": counters["stats"]["unique_graphs"],
            "frames": dict(counters["frames"]), "break_reasons": dict(Counter(counters["graph_break"]).most_common(5))}


def _compiled_steps(net: nn.Module, side: int, batch: int, steps: int, amp: torch.dtype | None) -> dict[str, Any]:
    """Seconds to the first compiled step, then images/s, and dynamo's counts, for ``steps`` training steps."""
    import torch._dynamo

    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    counters.clear()
    net = net.cuda().to(memory_format=torch.channels_last).train()
    compiled = torch.compile(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, side, side, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device="cuda")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
            loss = F.cross_entropy(compiled(x), y)
        loss.backward()
        opt.step()

    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return {"first_step_s": round(first, 1), "images_per_s": batch * steps / (time.perf_counter() - start),
            **_dynamo_counts()}


def compile_and_graphs(check: Check, sz: Sizes, tmp: Path, result: dict[str, Any]) -> bool:
    ok = True
    try:  # the trainer refuses what it cannot compile without recompiling, in one line
        cnnzoo.train("resnet20", model_kwargs={"drop_path_rate": 0.5, "drop_path_mode": "batch"}, compile=True,
                     data="synthetic:16", image_size=8, batch_size=8, epochs=1, device="cpu", out=tmp / "refused",
                     checkpoints=False, **QUIET)
        result["stochastic_depth_refused"] = False
        ok = False
    except UserError as exc:
        result["stochastic_depth_refused"] = str(exc)
    if not check.cuda:
        result["compiled"] = "skipped: checked on CUDA (inductor's CPU compile takes minutes)"
        return ok
    torch.manual_seed(0)
    eager = plain_rate(cnnzoo.create_model("resnet50_tv"), sz.r50_side, sz.r50_batch, sz, "cuda", torch.bfloat16)
    torch.manual_seed(0)
    compiled = _compiled_steps(cnnzoo.create_model("resnet50_tv"), sz.r50_side, sz.r50_batch, sz.timed,
                               torch.bfloat16)
    result["resnet50_tv"] = {**compiled, "eager_images_per_s": eager, "speed_up": compiled["images_per_s"] / eager}
    start = time.perf_counter()
    run = cnnzoo.train("resnet20", compile=True, data=f"synthetic:{sz.cifar_images}", image_size=sz.cifar_side,
                       batch_size=sz.cifar_batch, epochs=2, device="cuda", checkpoints=False, out=tmp / "compiled",
                       **QUIET)
    result["trainer_compile_resnet20"] = {"seconds": round(time.perf_counter() - start, 1),
                                          "second_epoch_images_per_s": run.history[1]["images_per_s"],
                                          "finite": math.isfinite(run.history[-1]["train_loss"])}
    ok &= result["trainer_compile_resnet20"]["finite"]
    # CUDA graph of a whole resnet56 step (forward, backward, SGD) against eager: launch-bound at batch 128
    result["resnet56_cuda_graph"] = cuda_graph_ratio(sz)
    for name in ("resnet110_sd", "fractalnet20"):  # raw torch.compile of what --compile refuses: the figures why
        if check.left() < 60:
            result[name] = "skipped: time budget"
            continue
        torch.manual_seed(0)
        try:
            result[name] = _compiled_steps(cnnzoo.create_model(name), sz.cifar_side, sz.cifar_batch, 8, None)
        except Exception as exc:
            result[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return ok


def cuda_graph_ratio(sz: Sizes) -> dict[str, Any]:
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet56").cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(sz.r56_batch, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (sz.r56_batch,), device="cuda")

    def step() -> None:
        opt.zero_grad(set_to_none=False)
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    def rate(fn: Callable[[], None]) -> float:
        for _ in range(sz.warm):
            fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(sz.timed):
            fn()
        torch.cuda.synchronize()
        return sz.r56_batch * sz.timed / (time.perf_counter() - start)

    eager = rate(step)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    captured = rate(graph.replay)
    return {"graph_images_per_s": captured, "eager_images_per_s": eager, "ratio": captured / eager}


# ---- the run --------------------------------------------------------------------------------------------------------


CASES = ("fp16_overflow", "lrn_precision", "torchrun_nccl", "resume", "throughput", "host_syncs", "data_loader",
         "memory", "compile")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the CPU, tiny sizes; CUDA-only cases skipped")
    parser.add_argument("--out", help="folder for gpu_check.json (default: $OUT, else build/gpu_check)")
    parser.add_argument("--only", help=f"comma-separated cases to run ({', '.join(CASES)})")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds for the whole run ({BUDGET_S:g})")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        print("cnnzoo: error: no CUDA device (use --smoke for the CPU run)", file=sys.stderr)
        return 2
    only = set(args.only.split(",")) if args.only else set(CASES)
    unknown = only - set(CASES)
    if unknown:
        print(f"cnnzoo: error: --only: no case {', '.join(sorted(unknown))} ({', '.join(CASES)})", file=sys.stderr)
        return 2
    out = Path(args.out or os.environ.get("OUT") or ROOT / "build" / "gpu_check")
    sz = SMOKE if args.smoke else Sizes()
    check = Check(out, cuda=cuda, smoke=args.smoke, budget=args.budget)
    check.report["environment"] = environment(cuda)
    print(json.dumps(check.report["environment"]), flush=True)
    check.write()
    need_cuda = "needs CUDA"
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        cases = {
            "fp16_overflow": (lambda r: fp16_overflow(check, sz, tmp, r), 60, None, None),
            "lrn_precision": (lambda r: lrn_precision(check, sz, r), 60, None, None),
            "torchrun_nccl": (lambda r: torchrun_nccl(check, sz, tmp, r), 120, "NCCL needs CUDA (the gloo path, one "
                              "and two processes: tests/test_distributed.py)", None),
            "resume": (lambda r: resume(check, sz, tmp, r), 90, None, None),
            "throughput": (lambda r: throughput(check, sz, tmp, r), 150, None, None),
            "host_syncs": (lambda r: host_syncs(check, sz, tmp, r), 60, f"the sync debug mode {need_cuda}", None),
            "data_loader": (lambda r: data_loader(check, sz, tmp, r), 90, None, None),
            "memory": (lambda r: memory(check, sz, r), 90, f"max_memory_allocated {need_cuda}", None),
            "compile": (lambda r: compile_and_graphs(check, sz, tmp, r), 600, None, None),
        }  # fmt: skip
        for name, (fn, limit, cuda_only, smoke_skip) in cases.items():
            if name in only:
                check.case(name, fn, limit=limit, cuda_only=cuda_only, smoke_skip=smoke_skip)
            else:
                check.report["cases"][name] = {"status": "skipped", "reason": "not in --only"}
    statuses = Counter(case["status"] for case in check.report["cases"].values())
    check.report["summary"] = {**statuses, "seconds": round(time.perf_counter() - check.t0, 1)}
    check.write()
    print(json.dumps(check.report, indent=1, default=str))
    print(f"-> {check.path}", file=sys.stderr)
    return 1 if statuses["fail"] or statuses["error"] or statuses["timeout"] else 0


if __name__ == "__main__":
    sys.exit(main())

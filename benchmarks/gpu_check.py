"""One GPU check (issue 11 §4): every CUDA path smoke-tested, then throughput side by side, one table.

    python benchmarks/gpu_check.py            # one H100/H200: under 8 minutes
    python benchmarks/gpu_check.py --smoke    # CPU, tiny sizes, CUDA-only rows skipped with the reason (the test)

Correctness (a few steps each through ``cnnzoo.train``, finite loss): fp32, bf16 autocast, fp16 autocast with
GradScaler, channels-last, ``torch.compile``, the resident data path on the device, a checkpoint interrupted after
its first epoch (SIGTERM) and resumed on the device (bit-exact against an uninterrupted run is shown), and
``torchrun --nproc_per_node 1`` with NCCL and SyncBatchNorm.

Throughput, same hand-written loop for both sides, warm first, images per second:

* ``resnet50_tv`` against torchvision's own ``resnet50`` (bf16, channels-last, batch 256; target >= 1.0x), and both
  compiled;
* ``resnet56`` (He et al. 2016 §4.2: batch 128, 32x32) on CIFAR-size uint8 images resident on the GPU (crop and flip
  on the device) against a ``DataLoader`` pipeline (per-sample crop and flip in workers, pinned memory; target >= 3x);
* ``resnet56`` with the whole step (forward, backward, SGD) captured in one CUDA graph against eager (target >= 2x:
  at batch 128 the model is launch-bound).

The calls into cnnzoo are ``_cnnzoo_train`` and ``cnnzoo.create_model``; the rest is plain torch.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cnnzoo

@dataclass(frozen=True)
class Sizes:
    """Full run on one GPU, or the CPU smoke test."""

    image: int = 32  # correctness runs (CIFAR size)
    images: int = 512  # synthetic data set size for the correctness runs
    batch: int = 128
    r50_image: int = 224
    r50_batch: int = 256
    r56_batch: int = 128
    warm: int = 5
    steps: int = 20
    loader_images: int = 50_000  # CIFAR-10's training set size
    workers: int = 8


SMOKE = Sizes(image=8, images=16, batch=8, r50_image=32, r50_batch=2, r56_batch=4, warm=1, steps=1,
              loader_images=16, workers=0)  # fmt: skip


Rows = list[tuple[str, str, str]]  # (check, result, status), in the order run



def _sigterm_at_first_epoch_line(line: str) -> None:
    """The trainer's log: the run's header lines pass, the first epoch line sends SIGTERM to this process."""
    if line.startswith("epoch"):
        os.kill(os.getpid(), signal.SIGTERM)

def row(rows: Rows, check: str, result: str, ok: bool | None) -> None:
    status = "skipped" if ok is None else ("ok" if ok else "FAIL")
    rows.append((check, result, status))
    print(f"  {check}: {result} [{status}]", flush=True)


def _cnnzoo_train(**kwargs):
    """The one place the check calls the trainer (its keyword interface only)."""
    return cnnzoo.train(progress=False, log=kwargs.pop("log", None), **kwargs)


def _final_loss(result) -> float:
    return float(result.history[-1]["train_loss"])

# ---- correctness ------------------------------------------------------------------------------------------------


def correctness(rows: Rows, cuda: bool, sz: Sizes, tmp: Path, skip_compile: bool) -> None:
    common = dict(data=f"synthetic:{sz.images}", image_size=sz.image, batch_size=sz.batch, epochs=1,
                  device="cuda" if cuda else "cpu", checkpoints=False)  # fmt: skip
    cases: list[tuple[str, dict, str | None]] = [
        ("fp32, resident data on the device", {"amp": "off"}, None),
        ("bf16 autocast", {"amp": "bf16"}, None if cuda else "bf16 autocast is checked on CUDA"),
        ("fp16 autocast + GradScaler", {"amp": "fp16"}, None if cuda else "fp16 needs CUDA"),
        ("channels-last", {"channels_last": True}, None),
        ("torch.compile", {"compile": True}, None if cuda and not skip_compile else
         "compile checked on CUDA only (inductor's CPU compile takes minutes)" if not cuda else "--skip-compile"),
    ]  # fmt: skip
    for i, (name, extra, skip) in enumerate(cases):
        if skip:
            row(rows, name, skip, None)
            continue
        start = time.perf_counter()
        result = _cnnzoo_train(model="resnet20", out=tmp / f"c{i}", **common, **extra)
        loss = _final_loss(result)
        row(rows, name, f"resnet20 loss {loss:.3f}, {time.perf_counter() - start:.1f} s", math.isfinite(loss))
    # checkpoint on the device: SIGTERM at the first epoch line, resume, compare with an uninterrupted run
    run = {**common, "epochs": 2, "checkpoints": True}
    ref = _cnnzoo_train(model="resnet20", out=tmp / "ref", **run)

    try:  # the first epoch line sends SIGTERM: the trainer checkpoints and raises TrainingInterrupted
        _cnnzoo_train(model="resnet20", out=tmp / "cut", log=_sigterm_at_first_epoch_line, **run)
        row(rows, "checkpoint save/resume", "SIGTERM did not interrupt the run", False)
        return
    except KeyboardInterrupt:  # TrainingInterrupted is a KeyboardInterrupt
        pass
    resumed = _cnnzoo_train(model=None, resume=tmp / "cut")
    a, b = ref.model.state_dict(), resumed.model.state_dict()
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    on, loss = next(resumed.model.parameters()).device.type, _final_loss(resumed)
    row(rows, "checkpoint save/resume", f"on {on}, loss {loss:.3f}, max abs weight diff vs uninterrupted {diff:.1e} "
        f"({'bit-exact' if diff == 0 else 'not bit-exact'})", math.isfinite(loss))


DDP_CHILD = """
import sys, cnnzoo
r = cnnzoo.train(model="resnet20", data="synthetic:{images}", image_size={image}, batch_size={batch}, epochs=1,
                 device="cuda", sync_bn=True, checkpoints=False, progress=False, log=None, out=sys.argv[1])
print("LOSS", r.history[-1]["train_loss"])
"""


def torchrun_nccl(rows: Rows, cuda: bool, sz: Sizes, tmp: Path) -> None:
    name = "torchrun --nproc_per_node 1, NCCL, SyncBatchNorm"
    if not cuda:
        row(rows, name, "NCCL and SyncBatchNorm need CUDA (gloo DDP on 2 CPU processes: tests/test_distributed.py)",
            None)
        return
    script = tmp / "ddp_child.py"
    script.write_text(DDP_CHILD.format(images=sz.images, image=sz.image, batch=sz.batch))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", str(script),
           str(tmp / "ddp")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    losses = [float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("LOSS")]
    ok = proc.returncode == 0 and bool(losses) and math.isfinite(losses[0])
    row(rows, name, f"loss {losses[0]:.3f}" if ok else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}", ok)


# ---- throughput ----------------------------------------------------------------------------------------------------


def images_per_s(step: Callable[[], None], batch: int, sz: Sizes, cuda: bool) -> float:
    for _ in range(sz.warm):
        step()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(sz.steps):
        step()
    sync()
    return batch * sz.steps / (time.perf_counter() - start)


def sgd_step(model: nn.Module, amp: torch.dtype | None, device: str) -> Callable[[torch.Tensor, torch.Tensor], None]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=amp or torch.float32, enabled=amp is not None, cache_enabled=False):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def resnet50_pair(rows: Rows, cuda: bool, sz: Sizes, skip_compile: bool) -> None:
    torch.backends.cudnn.benchmark = cuda  # for the throughput sections only: the resume check above stays exact
    device, amp = ("cuda", torch.bfloat16) if cuda else ("cpu", None)
    x = torch.randn(sz.r50_batch, 3, sz.r50_image, sz.r50_image, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (sz.r50_batch,), device=device)
    for compiled in (False, True):
        label = "resnet50_tv / torchvision resnet50" + (", compiled" if compiled else "")
        if compiled and (skip_compile or not cuda):
            row(rows, label, "--skip-compile" if cuda else "compile checked on CUDA only", None)
            continue
        rates = []
        for build in (lambda: cnnzoo.create_model("resnet50_tv"), torchvision.models.resnet50):
            torch.manual_seed(0)
            model = build().to(device, memory_format=torch.channels_last).train()
            net = torch.compile(model) if compiled else model
            step = sgd_step(net, amp, device)
            rates.append(images_per_s(lambda: step(x, y), sz.r50_batch, sz, cuda))
            del model, net, step
        ratio = rates[0] / rates[1]
        row(rows, label, f"{rates[0]:.4g} vs {rates[1]:.4g} img/s ({'bf16, ' if cuda else ''}channels-last, batch "
            f"{sz.r50_batch}): {ratio:.2f}x (target >= 1.0x; ok from 0.97x, the run-to-run noise)",
            ratio >= 0.97 if cuda else None)  # fmt: skip


def _crop_flip(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Pad-4 random crop and horizontal flip (He et al. 2016 §4.2) of a uint8 batch, as one gather on its device."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy).expand(n, h, w)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx
    cols = torch.where(torch.rand(n, 1, 1, device=x.device) < 0.5, cols, cols.flip(-1)).expand(n, h, w)
    idx = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[idx, rows, cols].permute(0, 3, 1, 2)


class _Samples(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = _crop_flip(self.images[i : i + 1])[0]
        return (x.float() / 255 - 0.5) / 0.25, self.labels[i]


def resnet56_data_and_graph(rows: Rows, cuda: bool, sz: Sizes) -> None:
    device, batch = ("cuda" if cuda else "cpu"), sz.r56_batch
    images = torch.randint(0, 256, (sz.loader_images, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (sz.loader_images,))
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet56").to(device, memory_format=torch.channels_last).train()
    step = sgd_step(model, torch.bfloat16 if cuda else None, device)
    resident, res_labels = images.to(device), labels.to(device)

    def resident_step() -> None:
        idx = torch.randint(0, len(res_labels), (batch,), device=device)
        x = (_crop_flip(resident[idx]).float() / 255 - 0.5) / 0.25
        step(x.contiguous(memory_format=torch.channels_last), res_labels[idx])

    loader = torch.utils.data.DataLoader(_Samples(images, labels), batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=sz.workers, pin_memory=cuda, persistent_workers=sz.workers > 0)
    stream = iter(loader)

    def loader_step() -> None:
        nonlocal stream
        try:
            x, y = next(stream)
        except StopIteration:
            stream = iter(loader)
            x, y = next(stream)
        step(x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last), y.to(device))

    fast, slow = images_per_s(resident_step, batch, sz, cuda), images_per_s(loader_step, batch, sz, cuda)
    row(rows, "resnet56 resident data / DataLoader", f"{fast:.4g} vs {slow:.4g} img/s (batch {batch}, {sz.workers} "
        f"workers): {fast / slow:.2f}x (target >= 3x)", fast / slow >= 3 if cuda else None)  # fmt: skip
    del loader, stream
    if not cuda:
        row(rows, "resnet56 CUDA graph of the whole step / eager", "CUDA graphs need CUDA", None)
        return
    static_x = (resident[:batch].float() / 255).contiguous(memory_format=torch.channels_last)
    static_y = res_labels[:batch].clone()
    eager = images_per_s(lambda: step(static_x, static_y), batch, sz, cuda)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream: optimizer state and autograd buffers exist
        for _ in range(3):
            step(static_x, static_y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(static_x, static_y)
    captured = images_per_s(graph.replay, batch, sz, cuda)
    ok = all(torch.isfinite(p).all() for p in model.parameters())
    row(rows, "resnet56 CUDA graph of the whole step / eager", f"{captured:.4g} vs {eager:.4g} img/s (bf16, batch "
        f"{batch}, static input): {captured / eager:.2f}x (target >= 2x){'' if ok else ', NON-FINITE weights'}",
        ok and captured / eager >= 2)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes; CUDA-only checks skipped")
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        print("cnnzoo: error: no CUDA device (use --smoke for the CPU smoke test)", file=sys.stderr)
        return 2
    sz = SMOKE if args.smoke else Sizes()
    where = torch.cuda.get_device_name() if cuda else "CPU (--smoke)"
    print(f"gpu_check on {where}, torch {torch.__version__}, cnnzoo {cnnzoo.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows: Rows = []
        sections = {"correctness": lambda: correctness(rows, cuda, sz, tmp, args.skip_compile),
                    "torchrun": lambda: torchrun_nccl(rows, cuda, sz, tmp),
                    "resnet50 throughput": lambda: resnet50_pair(rows, cuda, sz, args.skip_compile),
                    "resnet56 throughput": lambda: resnet56_data_and_graph(rows, cuda, sz)}  # fmt: skip
        for name, section in sections.items():
            try:
                section()
            except Exception as exc:  # one broken path must not hide the others' results
                row(rows, name, f"{type(exc).__name__}: {str(exc).strip()[:300]}", False)
    print(f"\n| check | result | status |\n|---|---|---|")
    for check, result, status in rows:
        print(f"| {check} | {result} | {status} |")
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    return 1 if any(status == "FAIL" for _, _, status in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

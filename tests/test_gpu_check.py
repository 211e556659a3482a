"""``benchmarks/gpu_check.py --smoke``: the GPU check runs end to end on the CPU; CUDA-only rows say why skipped."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
CHECKS = (
    "fp32, resident data on the device", "bf16 autocast", "fp16 autocast + GradScaler", "channels-last",
    "torch.compile", "checkpoint save/resume", "torchrun --nproc_per_node 1, NCCL, SyncBatchNorm",
    "resnet50_tv / torchvision resnet50", "resnet50_tv / torchvision resnet50, compiled",
    "resnet56 resident data / DataLoader", "resnet56 CUDA graph of the whole step / eager",
)  # fmt: skip
CUDA_ONLY = ("fp16 autocast + GradScaler", "torchrun --nproc_per_node 1, NCCL, SyncBatchNorm",
             "resnet56 CUDA graph of the whole step / eager")  # fmt: skip


def _table(stdout: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[0] not in ("check", "---"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def test_smoke_mode_prints_every_check_and_passes_on_cpu():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, env=env,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = _table(proc.stdout)
    assert tuple(table) == CHECKS
    for check in CUDA_ONLY:
        result, status = table[check]
        assert status == "skipped" and "CUDA" in result, (check, result)
    for check in ("fp32, resident data on the device", "channels-last", "checkpoint save/resume"):
        assert table[check][1] == "ok", (check, table[check])
    resume = table["checkpoint save/resume"][0]
    assert "bit-exact" in resume and "not bit-exact" not in resume
    assert "img/s" in table["resnet50_tv / torchvision resnet50"][0]  # the throughput loop ran, at tiny size
    assert "img/s" in table["resnet56 resident data / DataLoader"][0]


def test_without_cuda_and_without_smoke_it_is_a_one_line_error(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)  # in this process: no second torch start-up
    gpu_check = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", gpu_check)  # (its dataclasses look their module up)
    spec.loader.exec_module(gpu_check)
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", [str(SCRIPT)])
    assert gpu_check.main() == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnzoo: error: no CUDA device") and err.count("\n") == 1

"""``benchmarks/gpu_check.py``: the one GPU check. ``--smoke`` runs on the CPU every case that can run there and
writes the JSON with every case present (CUDA-only ones skipped with the reason); without CUDA and without
``--smoke`` it is a one-line error."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
CASES = ("fp16_overflow", "lrn_precision", "torchrun_nccl", "resume", "throughput", "host_syncs", "data_loader",
         "memory", "compile")
CUDA_ONLY = ("torchrun_nccl", "host_syncs", "memory")


def test_smoke_run_writes_every_case_and_passes_on_the_cpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "OUT": str(tmp_path / "ignored")}
    env.pop("PYTHONPATH", None)  # the script puts the checkout's src on the path itself
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(report) == ["gpu_check", "environment", "cases", "summary"]
    env_keys = list(report["environment"])
    assert env_keys[:4] == ["python", "torch", "torchvision", "cnnzoo"] and report["environment"]["cuda_available"] is False
    assert tuple(report["cases"]) == CASES
    for name in CUDA_ONLY:
        case = report["cases"][name]
        assert case["status"] == "skipped" and "CUDA" in case["reason"], (name, case)
    for name in set(CASES) - set(CUDA_ONLY):
        assert report["cases"][name]["status"] in ("ok", "measured"), (name, report["cases"][name])
    assert report["cases"]["resume"]["max_abs_diff_resumed_vs_uninterrupted"] == 0.0
    assert report["cases"]["fp16_overflow"]["make_sgd_scaled_nonfinite"] == 0
    assert "recompiling" in report["cases"]["compile"]["stochastic_depth_refused"]
    assert report["cases"]["throughput"]["resnet50"]["trainer_images_per_s"] > 0
    assert json.loads(proc.stdout[proc.stdout.index('{\n "gpu_check"'):]) == report  # printed whole at the end


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


def test_a_case_that_raises_or_runs_over_keeps_its_figures_and_the_rest_runs(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", gpu_check)
    spec.loader.exec_module(gpu_check)
    check = gpu_check.Check(tmp_path, cuda=False, smoke=True, budget=60)

    def raises(figures):
        figures["measured_before"] = 1
        raise RuntimeError("boom")

    def runs_over(figures):
        figures["first_part"] = 2
        time.sleep(5)

    check.case("raises", raises, limit=30)
    check.case("runs_over", runs_over, limit=1)
    check.case("holds", lambda figures: figures.update(x=3) or True, limit=30)
    cases = json.loads((tmp_path / "gpu_check.json").read_text())["cases"]
    assert cases["raises"]["status"] == "error" and cases["raises"]["measured_before"] == 1
    assert "RuntimeError: boom" in cases["raises"]["reason"]
    assert cases["runs_over"]["status"] == "timeout" and cases["runs_over"]["first_part"] == 2
    assert cases["holds"]["status"] == "ok" and cases["holds"]["x"] == 3

"""Data-parallel training under torchrun, on the CPU with gloo and 2 processes (reliability_and_ecosystem.md §4.3):
2 processes x batch b == 1 process x batch 2b, exact validation counts, rank-0-only files, checkpoints that resume on
any world size, and stop decisions (NaN, SIGTERM) that every rank takes together."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import cnnzoo
from cnnzoo.errors import UserError
from cnnzoo.training import load_state, train
from cnnzoo.training.distributed import Runtime
from cnnzoo.data import TensorSource
from cnnzoo.data.loaders import Loader, ResidentLoader
from cnnzoo.training import RECIPES

SRC = str(Path(cnnzoo.__file__).resolve().parents[1])

# A model without batch norm or dropout (DDP must then equal one process), with faults injected on request:
# TINY_FAULT="nan:R:K" / "sigterm:R:K": rank R's K-th training forward returns NaN / sends itself SIGTERM.
TINY = '''
import os
import signal

from torch import nn

from cnnzoo.registry import ModelInfo, list_models, register_model


class TinyNet(nn.Module):
    def __init__(self, *, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(16, num_classes)
        self.calls = 0

    def forward(self, x):
        out = self.fc(self.features(x))
        fault = os.environ.get("TINY_FAULT")
        if self.training and fault:
            self.calls += 1
            kind, rank, call = fault.split(":")
            if os.environ.get("RANK") == rank and self.calls == int(call):
                if kind == "nan":
                    out = out * float("nan")
                else:
                    os.kill(os.getpid(), signal.SIGTERM)
        return out


def register() -> None:
    if "tiny_ddp" not in list_models():
        register_model(TinyNet, ModelInfo(name="tiny_ddp", family="test", paper="(test model)", input_size=(3, 8, 8),
                                          num_classes=10, params=1562, min_size=4, recipe="quick"))
'''

# constant lr, no augmentation: the global batch's samples alone decide each step, on any number of processes
SETTINGS = ["pad_px=0", "schedule=constant", "warmup_epochs=0"]
KW = dict(data="synthetic:70", image_size=8, batch_size=16, recipe="quick", overrides=SETTINGS, progress=False,
          log=None, device="cpu")  # 70 training images (4 steps of 16), 17 validation images: odd on purpose


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``tiny_ddp`` registered here and in the torchrun scripts (tiny.py next to them); unregistered afterwards."""
    from cnnzoo import registry

    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny.py").write_text(TINY)
    spec = importlib.util.spec_from_file_location("tiny_for_ddp_tests", folder / "tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.register()
    yield folder
    registry._REGISTRY.pop("tiny_ddp", None)


def _torchrun(folder: Path, script: str, args: list[str], timeout: float = 240,
             procs: int = 2) -> subprocess.CompletedProcess:
    path = folder / f"script_{abs(hash(script))}.py"
    path.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(folder)!r})
        import tiny
        tiny.register()
    """) + textwrap.dedent(script))
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    env.pop("TINY_FAULT", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs), str(path), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s (a rank waiting for the other?)\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last.safetensors"))


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), (k, (a[k] - b[k]).abs().max().item())


def test_runtime_reads_torchrun_environment():
    assert Runtime.from_env({}) == Runtime(0, 1, 0) and not Runtime.from_env({}).distributed
    rt = Runtime.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (rt.rank, rt.world_size, rt.local_rank, rt.distributed, rt.main) == (3, 4, 1, True, False)
    assert rt.split_batch(256) == 64
    with pytest.raises(UserError, match="does not split over 4 processes"):
        rt.split_batch(130)
    with pytest.raises(UserError):
        Runtime.from_env({"RANK": "4", "WORLD_SIZE": "4"})


def _loader(n: int, *, train_split: bool, rank: int, world: int, batch: int = 4) -> Loader:
    geo = RECIPES["quick"].geometry(8)
    source = TensorSource(torch.zeros(n, 1, 8, 8, dtype=torch.uint8), torch.zeros(n, dtype=torch.int64))
    return ResidentLoader(source, train=train_split, batch_size=batch, geo=geo, mean=(0.5,), std=(0.5,),
                          device=torch.device("cpu"), seed=3, rank=rank, world_size=world)


def test_sharding_is_disjoint_covers_every_sample_and_keeps_global_batches():
    n = 35
    for epoch in (0, 1):
        shards = [_loader(n, train_split=True, rank=r, world=2).indices(epoch) for r in range(2)]
        assert len(shards[0]) == len(shards[1]) == 17 and not set(shards[0].tolist()) & set(shards[1].tolist())
        single = _loader(n, train_split=True, rank=0, world=1, batch=8).indices(epoch)
        for k in range(2):  # global batch k: the same 8 samples on one process or two
            assert set(single[8 * k : 8 * k + 8].tolist()) == set(shards[0][4 * k : 4 * k + 4].tolist()) | set(
                shards[1][4 * k : 4 * k + 4].tolist())
    assert not torch.equal(_loader(n, train_split=True, rank=0, world=2).indices(0),
                           _loader(n, train_split=True, rank=0, world=2).indices(1)), "set_epoch: a new order"
    val = [_loader(n, train_split=False, rank=r, world=2).indices(0).tolist() for r in range(2)]
    assert sorted(val[0] + val[1]) == list(range(n)), "validation: every sample once, no padding"


def test_sync_batchnorm_is_refused_on_cpu(tmp_path):
    with pytest.raises(UserError, match="--sync-bn needs CUDA"):
        train("resnet20", data="synthetic:8", image_size=8, epochs=1, sync_bn=True, out=tmp_path / "r",
              progress=False, log=None, device="cpu")
    assert not (tmp_path / "r").exists()


# Every data-parallel behaviour, in one torchrun launch of 2 processes (a launch costs two Python and torch start-ups
# and a rendezvous): each scenario writes its run folder, and per rank what it printed and what it returned. The runs
# share one process group; the CLI run, which leaves it at its end, comes last (joining a second group after leaving
# one hung under torchrun's agent store when two launches ran at once).
JOB = """
    import contextlib, json, os
    import torch
    from torch import nn
    from cnnzoo.cli import main
    from cnnzoo.layers.drop_path import StochasticDepth
    from cnnzoo.registry import ModelInfo, register_model
    from cnnzoo.training import NonFiniteLoss, TrainingInterrupted, train

    root, rank = sys.argv[1], os.environ["RANK"]
    settings = ["pad_px=0", "schedule=constant", "warmup_epochs=0"]
    kw = dict(data="synthetic:70", image_size=8, batch_size=16, recipe="quick", overrides=settings, progress=False,
              log=None, device="cpu")


    def scenario(name, run):
        with open(f"{root}/{name}.rank{rank}.txt", "w") as printed, contextlib.redirect_stdout(printed):
            result = run()
        with open(f"{root}/{name}.rank{rank}.json", "w") as f:
            json.dump(result, f)


    def stop(fault, out):  # TINY_FAULT: see tiny.py
        os.environ["TINY_FAULT"] = fault
        try:
            train("tiny_ddp", out=out, epochs=2, **kw)
            return "FINISHED"
        except NonFiniteLoss as exc:
            return f"NONFINITE {exc}"
        except TrainingInterrupted as exc:
            return f"INTERRUPTED {exc.signum}"
        finally:
            del os.environ["TINY_FAULT"]


    # dropout per element (masks recorded), a stochastic-depth gate per mini-batch (recorded): per rank, per step
    class DropNet(nn.Module):
        def __init__(self, *, num_classes=10, in_channels=3):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(in_channels, 8, 3, padding=1), nn.Linear(8, num_classes)
            self.drop, self.gate = nn.Dropout(0.5), StochasticDepth(0.5)
            self.masks, self.gates = [], []

        def forward(self, x):
            h = self.conv(x).mean((2, 3))
            mask = self.drop(torch.ones_like(h))
            gate = self.gate(torch.ones(1))
            if self.training:
                self.masks.append((mask != 0).int().flatten().tolist())
                self.gates.append(gate.item())
            return self.fc(h * mask * gate)


    def masks():
        register_model(DropNet, ModelInfo(name="drop_ddp", family="test", paper="(test model)", input_size=(3, 8, 8),
                                          num_classes=10, params=0, min_size=4, recipe="quick"))
        result = train("drop_ddp", out=root + "/masks", epochs=1, **kw)
        return {"masks": result.model.masks, "gates": result.model.gates}


    def resume_up():  # a run saved by 1 process, resumed by 2
        return len(train(resume=root + "/up", epochs=2, progress=False, log=None, device="cpu").history)


    cli = ["train", "tiny_ddp", "--data", "synthetic:70", "--image-size", "8", "--batch-size", "16", "--recipe",
           "quick", "--set", *settings, "--device", "cpu", "--epochs", "1", "--out", root + "/ddp"]
    scenario("nan", lambda: stop("nan:1:3", root + "/nan"))  # rank 1 alone: NaN in its 3rd step
    scenario("sigterm", lambda: stop("sigterm:1:3", root + "/sigterm"))  # SIGTERM to rank 1 alone, in its 3rd step
    scenario("masks", masks)
    scenario("up", resume_up)
    scenario("ddp", lambda: main(cli))  # last: the CLI leaves the process group (global batch 16, 8 per process)
"""


@pytest.fixture(scope="module")
def job(tiny, tmp_path_factory):
    """The torchrun launch (JOB) and its 1-process references (KW: the same global batch of 16)."""
    root = tmp_path_factory.mktemp("ddp")
    refs = {epochs: train("tiny_ddp", out=root / f"ref{epochs}", epochs=epochs, **KW) for epochs in (1, 2)}
    shutil.copytree(root / "ref1", root / "up")  # saved by 1 process, resumed by 2
    proc = _torchrun(tiny, JOB, [str(root)], timeout=480)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, refs


def _returned(root: Path, scenario: str) -> list:
    return [json.loads((root / f"{scenario}.rank{rank}.json").read_text()) for rank in (0, 1)]


def test_two_processes_equal_one_with_twice_the_batch(job):
    root, refs = job
    assert _returned(root, "ddp") == [0, 0]
    printed = [(root / f"ddp.rank{rank}.txt").read_text() for rank in (0, 1)]
    assert printed[0].count("epoch   1/1") == 1 and printed[0].count("tiny_ddp on synthetic:70") == 1
    assert printed[1] == "", "rank 0 alone prints"
    ddp, ref1 = root / "ddp", refs[1].out
    ddp_files = sorted(p.name for p in ddp.iterdir() if p.name != "report.html")  # the CLI draws the run's page
    assert ddp_files == sorted(p.name for p in ref1.iterdir())
    assert (ddp / "report.html").is_file()
    _assert_close(_weights(ddp), _weights(ref1))
    state = load_state(ddp / "last.pt")
    assert not any(k.startswith("module.") for k in [*state["model"], *_weights(ddp)])
    row = json.loads((ddp / "metrics.jsonl").read_text())
    assert row["val_count"] == 17 and row["train_images"] == 64  # every validation image exactly once
    assert row["val_top1"] == pytest.approx(refs[1].history[0]["val_top1"])
    assert row["train_loss"] == pytest.approx(refs[1].history[0]["train_loss"], rel=1e-5)
    confusion = [line.split(",")[1:] for line in (ddp / "confusion_matrix.csv").read_text().splitlines()[1:]]
    assert sum(int(v) for line in confusion for v in line) == 17
    summary = json.loads((ddp / "summary.json").read_text())
    assert summary["world_size"] == 2 and json.loads((ddp / "config.json").read_text())["world_size"] == 2


def test_checkpoints_resume_on_any_world_size(job, tmp_path):
    """Saved by 2 processes, resumed by 1; saved by 1, resumed by 2: both end where one process ends."""
    root, refs = job
    shutil.copytree(root / "ddp", tmp_path / "ddp")  # (the 2-process run folder is read by another test)
    resumed = train(resume=tmp_path / "ddp", epochs=2, progress=False, log=None, device="cpu", model=None)
    _assert_close({k: v.cpu() for k, v in resumed.model.state_dict().items()}, _weights(refs[2].out))
    assert _returned(root, "up") == [2, 2]
    _assert_close(_weights(root / "up"), _weights(refs[2].out))
    rows = [json.loads(line) for line in (root / "up" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["val_count"] == 17
    assert rows[1]["val_top1"] == pytest.approx(refs[2].history[1]["val_top1"])


ONE_PROCESS = """
    import atexit, json
    import torch.distributed as dist
    from cnnzoo.training import train, trainer

    seen = []
    prepare = trainer.prepare

    def spy(*args, **kwargs):  # what each run holds once prepared
        run = prepare(*args, **kwargs)
        seen.append(dict(group=dist.is_initialized(), backend=dist.get_backend(), world=dist.get_world_size(),
                         forward=type(run.forward).__name__))
        return run

    trainer.prepare = spy
    kw = dict(data="synthetic:70", image_size=8, batch_size=16, recipe="quick", epochs=1, progress=False, log=None,
              device="cpu", overrides=["pad_px=0", "schedule=constant", "warmup_epochs=0"])
    train("tiny_ddp", out=sys.argv[1] + "/one", **kw)
    train("tiny_ddp", out=sys.argv[1] + "/again", **kw)  # a second run of the process: the same group
    kept = dist.is_initialized()
    atexit._run_exitfuncs()  # what the interpreter runs at exit
    print("SEEN", json.dumps({"runs": seen, "kept": kept, "at_exit": dist.is_initialized()}), flush=True)
"""


def test_torchrun_with_one_process_runs_the_data_parallel_path(tiny, tmp_path):
    """Bug 2 (issue 20): ``torchrun --nproc_per_node 1`` made no process group and no DDP wrapper (distributed was
    ``world_size > 1``), so the one-GPU NCCL check exercised none of it. Now a torchrun launch is data-parallel at any
    world size, and the run equals the run without torchrun. The group serves the process's later runs and is
    destroyed at exit (bug 8: the Python API never destroyed it). One process cannot show ranks whose statistics
    differ: SyncBatchNorm across GPUs needs two."""
    proc = _torchrun(tiny, ONE_PROCESS, [str(tmp_path)], procs=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("SEEN"))[5:])
    run = {"group": True, "backend": "gloo", "world": 1, "forward": "DistributedDataParallel"}
    assert seen == {"runs": [run, run], "kept": True, "at_exit": False}
    plain = train("tiny_ddp", out=tmp_path / "plain", epochs=1, **KW)
    _assert_close(_weights(tmp_path / "one"), {k: v.cpu() for k, v in plain.model.state_dict().items()})


def test_nan_or_sigterm_on_one_rank_stops_every_rank_at_the_same_step(job, tmp_path):
    root, refs = job
    nonfinite = _returned(root, "nan")
    assert nonfinite[0] == nonfinite[1] and nonfinite[0].startswith("NONFINITE "), nonfinite
    assert "at epoch 1, step 3 of 4 (iteration 3)" in nonfinite[0] and "no checkpoint had been written" in nonfinite[0]
    assert not (root / "nan" / "last.pt").exists()
    assert _returned(root, "sigterm") == ["INTERRUPTED 15", "INTERRUPTED 15"]
    state = load_state(root / "sigterm" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (0, 3), "rank 0 saved the step at which rank 1 got SIGTERM"
    summary = json.loads((root / "sigterm" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["stop_reason"] == "SIGTERM"
    # the interrupted 2-process run, resumed mid-epoch by one process, ends where an uninterrupted run ends
    shutil.copytree(root / "sigterm", tmp_path / "sigterm")
    resumed = train(resume=tmp_path / "sigterm", progress=False, log=None, device="cpu", model=None)
    _assert_close({k: v.cpu() for k, v in resumed.model.state_dict().items()},
                  {k: v.cpu() for k, v in refs[2].model.state_dict().items()})
    assert [r["train_images"] for r in resumed.history] == [64, 64]


def test_ranks_draw_their_own_dropout_masks_and_share_per_batch_draws(job):
    """Bug 4: every rank drew the same dropout masks (one seed for all), so 2 processes x batch b was not
    1 process x batch 2b for a model with dropout; per-batch draws (stochastic-depth gates) must stay shared."""
    r0, r1 = _returned(job[0], "masks")
    assert len(r0["masks"]) == len(r1["masks"]) == 4  # 64 training images, 8 per rank and step
    assert all(a != b for a, b in zip(r0["masks"], r1["masks"])), "per-element masks must differ across ranks"
    assert r0["gates"] == r1["gates"], "per-batch draws must agree across ranks"
    assert set(r0["gates"]) <= {0.0, 1.0}
    kept = sum(map(sum, r0["masks"] + r1["masks"])) / sum(map(len, r0["masks"] + r1["masks"]))
    assert 0.3 < kept < 0.7  # dropout 0.5 draws


def test_ddp_searches_unused_parameters_only_for_models_that_skip_layers(tmp_path):
    """Bug 5: FractalNet forced ``find_unused_parameters=True`` though every parameter gets a (zero) gradient."""
    import torch.distributed as dist
    from torch import nn

    from cnnzoo.training.distributed import ddp_options, wrap

    with torch.device("meta"):
        fractal = cnnzoo.create_model("fractalnet20")
    assert ddp_options(fractal) == {"find_unused_parameters": bool(getattr(fractal, "skips_layers", False))}

    class Skipping(nn.Linear):
        skips_layers = True  # what a model that really skips dropped blocks declares

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        job = Runtime(rank=0, world_size=2)  # a data-parallel job, as far as ``wrap`` is concerned
        plain = nn.Sequential(nn.Linear(3, 3))
        plain.drop_path = True  # FractalNet's flag: no reason for the search by itself
        assert wrap(plain, torch.device("cpu"), job).find_unused_parameters is False
        assert wrap(Skipping(3, 3), torch.device("cpu"), job).find_unused_parameters is True
    finally:
        dist.destroy_process_group()

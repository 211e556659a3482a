"""The memory layout chosen by measurement (training/layout.py): the flags force it, config.json and the header say
it, a resumed run keeps it, the probe leaves the run untouched; evaluation uses the run's layout and precision. A CPU
run keeps the memory its steps free for the next step (device.keep_cpu_heap)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import cnnzoo
from cnnzoo.device import native_bf16_isa
from cnnzoo.evaluation import evaluate_checkpoint, load_trained
from cnnzoo.training import TrainingInterrupted, train
from cnnzoo.training import layout as layout_module
from cnnzoo.training.layout import Layout, Timing, probe_layouts, probe_plan
from cnnzoo.training.recipes import get_recipe
from cnnzoo.training.trainer import training_step

# nin_cifar has dropout: a probe that drew from the run's random streams would change the run's masks
TINY = dict(data="synthetic:48", image_size=8, batch_size=8, progress=False, device="cpu")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _rows(result):
    return [{k: r[k] for k in ("train_loss", "train_top1", "val_loss", "val_top1")} for r in result.history]


GLIBC = bool(getattr(os, "confstr", lambda name: None)("CS_GNU_LIBC_VERSION"))


@pytest.mark.skipif(not GLIBC, reason="the heap settings are glibc's (mallopt); elsewhere they are left alone")
def test_a_cpu_run_keeps_freed_memory_for_the_next_step():
    """glibc gives back freed memory above its trim threshold (at most 64 MiB by default), so a training step that
    allocates what the last one freed paid every page again (5,000-10,000 page faults per resnet20 step at batch
    128). After ``keep_cpu_heap`` a step's worth of blocks (8 x 8 MiB, written, all freed) taken three times costs
    (nearly) no new pages; measured in a fresh process, whose heap no other test has set. (glibc's defaults took
    18,000-49,000 faults here for the 49,152 pages.)"""
    code = textwrap.dedent("""
        import resource, torch
        from cnnzoo.device import keep_cpu_heap, release_cpu_heap
        def faults():
            def step():
                blocks = [torch.ones(2 << 20) for _ in range(8)]
                del blocks
            step()  # the first may take pages
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(3):
                step()
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        default = faults()
        record = keep_cpu_heap()
        print(default, faults(), record["kept"])
        release_cpu_heap()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    default, kept, recorded = out.stdout.split()
    pages = 3 * (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert recorded == "True"
    assert int(kept) < pages // 20, f"{kept} page faults for {pages} pages reused (glibc's defaults: {default})"


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_forced_layout_is_recorded_said_and_kept_on_resume(tmp_path, channels_last):
    name, flag = ("channels_last", "--channels-last") if channels_last else ("nchw", "--no-channels-last")
    title = "channels-last" if channels_last else "NCHW"
    full = train("nin_cifar", epochs=2, channels_last=channels_last, out=tmp_path / "full", log=None, **TINY)
    lines: list[str] = []

    def stop_after_epoch_1(line: str) -> None:
        lines.append(line)
        if line.startswith("epoch   1/"):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted):
        train("nin_cifar", epochs=2, channels_last=channels_last, out=tmp_path / "run", log=stop_after_epoch_1,
              **TINY)
    assert f"layout: {title} ({flag})" in lines
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    if GLIBC:
        assert config["backends"]["cpu_heap"]["kept"] is True
    assert (config["layout"], config["channels_last"], config["layout_probe"]) == (name, channels_last,
                                                                                   {"by": "flag", "note": flag})
    resumed_lines: list[str] = []
    resumed = train(resume=tmp_path / "run", log=resumed_lines.append, progress=False, device="cpu")
    assert f"layout: {title}, the run's own (config.json, chosen by flag; an exact resume needs it)" in resumed_lines
    assert json.loads((tmp_path / "run" / "config.json").read_text())["layout"] == name
    assert next(resumed.model.parameters()).is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert _rows(resumed) == _rows(full) and _same_weights(resumed.model, full.model), "resume is bit-exact"
    with pytest.warns(UserWarning, match="not bit-identical"):  # the other layout, forced on resume: allowed, said
        train(resume=tmp_path / "run", epochs=3, channels_last=not channels_last, log=None, progress=False,
              device="cpu")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["layout"] != name


def test_a_probed_run_equals_the_forced_run_of_its_choice(tmp_path, monkeypatch):
    monkeypatch.setattr(layout_module, "PAYBACK", 1)  # this 12-step run is long enough to probe
    lines: list[str] = []
    probed = train("nin_cifar", epochs=2, out=tmp_path / "probed", log=lines.append, **TINY)
    config = json.loads((tmp_path / "probed" / "config.json").read_text())
    probe = config["layout_probe"]
    assert probe["by"] == "probe" and set(probe["images_per_s"]) >= {"nchw", "channels_last"}
    assert probe["cpus"] >= 1 and probe["load_average"] >= 0
    rates = probe["images_per_s"]
    assert config["layout"] == max(("nchw", "channels_last"), key=rates.get)
    said = next(line for line in lines if line.startswith("layout: "))
    assert said.startswith(f"layout: {'channels-last' if config['layout'] == 'channels_last' else 'NCHW'}, measured")
    assert "img/s against" in said and f"a probe of {probe['steps']} steps" in said
    forced = train("nin_cifar", epochs=2, out=tmp_path / "forced", log=None,
                   channels_last=config["layout"] == "channels_last", **TINY)
    assert _rows(probed) == _rows(forced)
    assert _same_weights(probed.model, forced.model), "the probe changed the run (weights, optimizer or RNG)"


def test_the_probe_touches_neither_the_network_nor_the_random_streams():
    torch.manual_seed(3)
    random.seed(3)
    net = cnnzoo.create_model("nin_cifar", num_classes=10)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch_state, python_state = torch.get_rng_state(), random.getstate()
    device = torch.device("cpu")
    timing = probe_layouts(net, lambda copy, dtype: training_step(copy, dtype, recipe=get_recipe("quick"),
                                                                  device=device, head=False),
                           batch_shape=(4, 3, 8, 8), num_classes=10, device=device, amp_dtype=None, bf16=True)
    assert set(timing.images_per_s) == {"nchw", "channels_last", "bf16"} and timing.bf16_factor > 0
    assert timing.steps == layout_module.LAYOUT_STEPS + layout_module.BF16_STEPS
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert next(net.parameters()).grad is None
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == python_state


def test_the_rule_of_when_to_probe():
    cpu = torch.device("cpu")
    short = layout_module.PAYBACK * layout_module.LAYOUT_STEPS - 1
    assert probe_plan(cpu, short, bf16=True)[:2] == (False, False)
    assert "too short" in probe_plan(cpu, short, bf16=True)[2]
    assert probe_plan(cpu, short + 1, bf16=True)[:2] == (True, False)
    assert probe_plan(cpu, short + 1, bf16=False)[:2] == (True, False)
    with_bf16 = layout_module.PAYBACK * (layout_module.LAYOUT_STEPS + layout_module.BF16_STEPS)
    assert probe_plan(cpu, with_bf16, bf16=True)[:2] == (True, True)
    assert probe_plan(torch.device("mps"), 10**6, bf16=False)[0] is False


def test_the_header_suggests_bf16_with_the_measured_factor():
    def lines(factor):
        timing = Timing({"nchw": 500.0, "channels_last": 800.0, "bf16": 800.0 * factor}, factor, 15)
        return Layout(True, "probe", timing=timing, seconds=1.2, bf16_isa=("AVX512_BF16",)).lines()

    assert lines(1.29) == ["layout: channels-last, measured 800 img/s against NCHW 500 img/s (1.60x; a probe of 15 "
                           "steps, 1.2 s)"]
    assert lines(1.5)[1] == ("precision: fp32; bf16 trained 1.50x faster in the probe on this CPU (native "
                             "AVX512_BF16): try --amp bf16")
    timing = Timing({"nchw": 500.0, "channels_last": 800.0}, None, 8)
    record = Layout(True, "probe", timing=timing, load=(0.5, 2)).record()
    assert record == {"layout": "channels_last", "layout_probe": {
        "by": "probe", "images_per_s": {"nchw": 500.0, "channels_last": 800.0}, "seconds": 0.0, "steps": 8,
        "load_average": 0.5, "cpus": 2}}
    assert Layout(True, "probe", timing=timing, load=(1.2, 2)).lines()[0].endswith("8 steps, 0.0 s)")
    assert Layout(True, "probe", timing=timing, load=(1.3, 2)).lines()[0].endswith(
        "8 steps, 0.0 s, under a load average of 1.3 on 2 CPUs)"), "a probe on a busy machine is said to be"
    assert Layout.from_record({"channels_last": False}).channels_last is False  # a run from before the probe


def test_native_bf16_is_read_from_the_cpu_flags():
    sapphire = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\n"
    assert native_bf16_isa(sapphire) == ["AVX512_BF16", "AMX-BF16"]
    assert native_bf16_isa("flags\t\t: fpu avx2 fma avx512f\n") == []
    assert native_bf16_isa("") == []


def test_evaluation_uses_the_runs_layout_and_precision(tmp_path):
    run = train("nin_cifar", epochs=1, channels_last=True, amp="bf16", out=tmp_path, log=None, **TINY)
    trained = load_trained(tmp_path / "last.safetensors")
    assert trained.channels_last and trained.amp == "bf16" and trained.amp_dtype(None) is torch.bfloat16
    assert next(trained.net.parameters()).is_contiguous(memory_format=torch.channels_last)
    assert trained.amp_dtype("off") is None  # --amp given: it wins
    report = evaluate_checkpoint(tmp_path / "last.safetensors", device="cpu", batch_size=8)
    assert report["loss"] == run.history[-1]["val_loss"], "eval reproduces the run's validation exactly"
    fp32 = evaluate_checkpoint(tmp_path / "last.safetensors", device="cpu", batch_size=8, amp="off")
    assert fp32["loss"] != report["loss"], "the run's precision (bf16) made a difference"
    plain = load_trained(tmp_path / "last.safetensors", run_layout=False)
    assert not plain.channels_last and next(plain.net.parameters()).is_contiguous()

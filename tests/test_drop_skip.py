"""Dropped work is not done: stochastic depth (Huang et al. 2016 §3) skips dropped blocks, FractalNet drop-path
(Larsson et al. 2017 §3.1) runs only the kept paths; outputs and gradients equal the full network's with the same
masks, layers that do not run keep their batch-norm statistics, and DDP ranks stay identical while skipping."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.layers import StochasticDepth
from cnnzoo.layers.residual import BasicBlock, PreActBlock
from cnnzoo.models.fractalnet import FractalBlock, FractalConv, FractalNet, FractalNetSpec
from cnnzoo.models.stochastic_depth import SPECS as SD_SPECS
from cnnzoo.models.resnet import ResNet

SRC = str(Path(cnnzoo.__file__).resolve().parents[1])


@pytest.fixture(autouse=True)
def _no_onednn():
    """oneDNN builds a primitive per new shape and path: slow on these tiny, ever-changing sub-networks."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield


def _small_sd(depth_per_stage: int = 3, drop_path_rate: float = 0.5) -> ResNet:
    """resnet110_sd's layout (A_avg shortcuts, p_L = 0.5) with fewer blocks per stage."""
    spec = replace(SD_SPECS["resnet110_sd"], depths=(depth_per_stage,) * 3)
    return ResNet(spec, num_classes=10, drop_path_rate=drop_path_rate, drop_path_mode="batch")


class _Gate(nn.Module):
    """The former rule: the branch is computed, then multiplied by the drawn gate (0 or 1)."""

    def __init__(self, gate: float) -> None:
        super().__init__()
        self.gate = gate

    def forward(self, x):
        return x * self.gate


def _bn_state(module: nn.Module) -> list[torch.Tensor]:
    return [b.clone() for b in module.buffers()]


def test_only_the_two_drop_families_declare_skipped_layers():
    spec = FractalNetSpec(2, (4,), (0.0,))
    assert FractalNet(spec).skips_layers and not FractalNet(spec, drop_path=False).skips_layers
    assert _small_sd().skips_layers and not _small_sd(drop_path_rate=0.0).skips_layers
    assert not getattr(cnnzoo.create_model("resnet20"), "skips_layers", False)
    assert cnnzoo.create_model("resnet110_sd").skips_layers
    assert cnnzoo.create_model("resnet20", drop_path_mode="batch", drop_path_rate=0.5).skips_layers


def test_dropped_stochastic_depth_block_is_not_run_and_the_rest_is_unchanged():
    model = _small_sd().train()
    reference = copy.deepcopy(model)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    x = torch.randn(4, 3, 8, 8)
    torch.manual_seed(3)
    dropped = [m.drop_path.dropped() for m in blocks]  # the draws forward will make
    assert any(dropped) and not all(dropped)
    for block, gone in zip((m for m in reference.modules() if isinstance(m, BasicBlock)), dropped):
        block.drop_path = _Gate(0.0 if gone else 1.0)
    before = [_bn_state(b) for b in blocks]
    ran = []
    for i, b in enumerate(blocks):
        b.conv1.register_forward_hook(lambda *_, i=i: ran.append(i))
    torch.manual_seed(3)
    out = model(x)
    out.square().sum().backward()
    ref = reference(x)
    ref.square().sum().backward()
    assert ran == [i for i, gone in enumerate(dropped) if not gone]
    assert torch.equal(out, ref)
    for block, gone, stats in zip(blocks, dropped, before):
        changed = [not torch.equal(a, b) for a, b in zip(stats, _bn_state(block))]
        assert not any(changed) if gone else all(changed)
    for (name, p), (_, r) in zip(model.named_parameters(), reference.named_parameters()):
        if p.grad is None:  # a dropped block: no gradient at all; the former rule gave exact zeros
            assert torch.count_nonzero(r.grad) == 0, name
        else:
            torch.testing.assert_close(p.grad, r.grad, rtol=1e-5, atol=1e-7, msg=name)
    assert sum(p.grad is None for p in model.parameters()) == 6 * sum(dropped)  # 2 conv weights, 2 BN weight+bias


@pytest.mark.parametrize("preact", ["residual", "shared"])
def test_dropped_preact_unit_is_its_shortcut(preact):
    """Pre-activation units (He et al. 2016b) under stochastic depth: a dropped unit returns its shortcut; only a
    shared pre-activation (it feeds the shortcut too) still runs its BN."""
    unit = PreActBlock(4, 8, stride=2, preact=preact, drop_path=StochasticDepth(0.5)).train()
    x = torch.randn(2, 4, 6, 6)
    outcomes = set()
    for seed in range(8):
        torch.manual_seed(seed)
        dropped = unit.drop_path.dropped()
        before = unit.bn2.num_batches_tracked.item(), unit.bn1.num_batches_tracked.item()
        torch.manual_seed(seed)
        out = unit(x)
        outcomes.add(dropped)
        if dropped:
            with torch.no_grad():
                shortcut_input = torch.relu(unit.bn1(x)) if preact == "shared" else x
                torch.testing.assert_close(out, unit.shortcut(shortcut_input))
            assert unit.bn2.num_batches_tracked.item() == before[0]
            assert unit.bn1.num_batches_tracked.item() == before[1] + (2 if preact == "shared" else 0)
    assert outcomes == {True, False}


def test_stochastic_depth_eval_runs_every_block_scaled():
    block = BasicBlock(4, 4, drop_path=StochasticDepth(0.25)).eval()
    x = torch.randn(2, 4, 5, 5).relu()
    with torch.no_grad():
        branch = block.bn2(block.conv2(block.relu1(block.bn1(block.conv1(x)))))
        torch.testing.assert_close(block(x), torch.relu(x + 0.25 * branch))


# ---------------------------------------------------------------------------------------------------- FractalNet
def _tiny_fractal(columns=3, blocks=5, **options) -> FractalNet:
    """Tiny widths; ``blocks`` 2x2 pools take a 2^blocks input to the 1x1 map the FC reads."""
    return FractalNet(FractalNetSpec(columns, (4,) * blocks, (0.0,) * blocks), num_classes=3, **options)


def _old_block(block: FractalBlock, x: torch.Tensor, active: dict[int, tuple[int, ...]]) -> torch.Tensor:
    """The former forward: every column computed, a join multiplies its dropped inputs by 0."""
    outs = [x] * len(block.columns)
    convs = [iter(col) for col in block.columns]
    for t, ending in enumerate(block.schedule, start=1):
        for j in ending:
            outs[j] = next(convs[j])(outs[j])
        if t == len(block.schedule):
            outs = [pool(out) for pool, out in zip(block.pools, outs)]
        if len(ending) > 1:
            keep = active[t]
            scale = 1.0 / len(keep) if keep else 0.0
            joined = sum(x * (scale if c in keep else 0.0) for c, x in zip(ending, (outs[j] for j in ending)))
            outs = [joined if j in ending else o for j, o in enumerate(outs)]
    return outs[-1]


def _old_net(model: FractalNet, x: torch.Tensor, actives: list[dict[int, tuple[int, ...]]]) -> torch.Tensor:
    for block, active in zip(model.stages, actives):
        x = _old_block(block, x, active)
    return model.head(x)


def _actives(model: FractalNet) -> list[dict[int, tuple[int, ...]]]:
    return [{int(n[4:]): j.active for n, j in block.joins.items()} for block in model.stages]


def test_plan_skips_a_dropped_input_and_what_feeds_only_it():
    block = _tiny_fractal().stages.block1  # C=3: joins at step 2 (columns 1, 2) and step 4 (0, 1, 2)
    assert block.plan({2: (1, 2), 4: (0, 1, 2)}) == [(2,), (1, 2), (2,), (0, 1, 2)]
    # join 2 drops column 2: its convs at steps 1 and 2 feed nothing that is kept
    assert block.plan({2: (1,), 4: (0, 1, 2)}) == [(), (1,), (2,), (0, 1, 2)]
    # join 4 keeps column 0 alone: nothing but column 0's conv runs
    assert block.plan({2: (1, 2), 4: (0,)}) == [(), (), (), (0,)]
    assert block.plan({2: (2,), 4: (1, 2)}) == [(2,), (2,), (2,), (1, 2)]


@pytest.mark.parametrize("columns", [3, 4])
def test_local_drop_path_equals_the_full_network_with_the_same_masks(columns):
    model = _tiny_fractal(columns, blocks=2, global_drop_ratio=0.0).train()
    x = torch.randn(2, 3, 4, 4)
    full_convs = 2 * (2**columns - 1)
    units = lambda m: [u for u in m.modules() if isinstance(u, FractalConv)]  # noqa: E731
    skipped = 0
    for seed in range(4):
        reference = copy.deepcopy(model)
        calls = []
        hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in model.modules()
                 if isinstance(m, nn.Conv2d)]
        torch.manual_seed(seed)
        model.zero_grad(set_to_none=True)
        out = model(x)
        out.square().sum().backward()
        for h in hooks:
            h.remove()
        ref = _old_net(reference, x, _actives(model))
        ref.square().sum().backward()
        assert torch.equal(out, ref)
        skipped += full_convs - len(calls)
        for (name, p), (_, r) in zip(model.named_parameters(), reference.named_parameters()):
            if p.grad is None:
                assert torch.count_nonzero(r.grad) == 0, name
            else:
                torch.testing.assert_close(p.grad, r.grad, rtol=1e-5, atol=1e-7, msg=name)
        # a unit that did not run (no gradient) keeps its BN statistics; one that ran updated them once
        for unit, ref_unit in zip(units(model), units(reference)):
            ran = unit.conv.weight.grad is not None
            assert unit.norm.num_batches_tracked == ref_unit.norm.num_batches_tracked - (0 if ran else 1)
            assert torch.equal(unit.norm.running_var, ref_unit.norm.running_var) == ran
    assert skipped > 0


def _seed_drawing_global_column(column: int, columns: int) -> int:
    for seed in range(100):
        torch.manual_seed(seed)
        torch.rand(())
        if int(torch.randint(columns, ()).item()) == column:
            return seed
    raise AssertionError("no seed")


def test_global_drop_path_runs_one_column_and_leaves_other_batch_norms_untouched():
    """fractalnet20 with column 0 drawn: the former code ran the 30 other units, 15 of them on constant input."""
    model = cnnzoo.create_model("fractalnet20", dropout=0.0, global_drop_ratio=1.0).train()
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(_seed_drawing_global_column(0, 3))
    out = model(x)
    assert model.global_column == 0
    for block in model.stages:
        for j, column in enumerate(block.columns):
            for unit in column:
                tracked = unit.norm.num_batches_tracked.item()
                assert tracked == (1 if j == 0 else 0)
                if j:
                    assert torch.equal(unit.norm.running_var, torch.ones_like(unit.norm.running_var))
    with torch.no_grad():
        model.eval_column = 0
        chain = nn.Sequential(*(nn.Sequential(*b.columns[0], b.pools[0]) for b in model.stages), model.head)
        torch.testing.assert_close(out.detach(), chain.train()(x))


def test_fractalnet_dropout_is_a_rate():
    rates = lambda m: [d.p for d in m.modules() if isinstance(d, nn.Dropout)]  # noqa: E731
    spec = FractalNetSpec(3, (4,) * 5, (0.0, 0.1, 0.2, 0.3, 0.4))
    assert rates(FractalNet(spec, dropout=0.3)) == [0.3] * 35  # not the per-block schedule
    assert rates(FractalNet(spec)) == [r for r in (0.1, 0.2, 0.3, 0.4) for _ in range(7)]  # None: §4's schedule
    assert rates(FractalNet(spec, dropout=0)) == []
    assert rates(FractalNet(spec, dropout=(0.5, 0, 0, 0, 0.1))) == [0.5] * 7 + [0.1] * 7
    for bad in (True, 1.0, (0.1, 0.2)):
        with pytest.raises(ValueError, match="dropout"):
            FractalNet(spec, dropout=bad)


# ----------------------------------------------------------------------------------------------------------- DDP
DDP_SCRIPT = """
import os
import sys
from dataclasses import replace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from cnnzoo.models.fractalnet import FractalNet, FractalNetSpec
from cnnzoo.models.resnet import ResNet
from cnnzoo.models.stochastic_depth import SPECS

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)  # same initial weights and, through the shared stream, the same drops on every rank
models = {
    "sd": ResNet(replace(SPECS["resnet110_sd"], depths=(2, 2, 2)), num_classes=10,
                 drop_path_rate=0.5, drop_path_mode="batch"),
    "fractal": FractalNet(FractalNetSpec(2, (4,) * 5, (0.0,) * 5), num_classes=10),
}
data = torch.Generator().manual_seed(100 + rank)  # each rank its own shard, off the shared stream
for name, model in models.items():
    ddp = DistributedDataParallel(model, find_unused_parameters=bool(getattr(model, "skips_layers", False)))
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    unused = 0
    for step in range(4):
        x = torch.randn(2, 3, 32, 32, generator=data)
        y = torch.randint(10, (2,), generator=data)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(ddp(x), y).backward()
        unused += sum(p.grad is None for p in model.parameters())
        opt.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(2)]
    dist.all_gather(gathered, flat)
    # one write per line: both ranks share the pipe, and print() writes the text and its newline separately
    sys.stdout.write(f"{name} rank={rank} unused={unused} equal={torch.equal(gathered[0], gathered[1])}\\n")
    sys.stdout.flush()
    del ddp, opt  # the reducer and its hooks go before the process group they use
dist.barrier()  # neither rank tears gloo down while the other still talks to it
dist.destroy_process_group()
# Leave without running C++ static destructors: in about one launch in three on a loaded 2-core machine a gloo
# thread still joinable at interpreter exit aborted rank 0 ("terminate called without an active exception", SIGABRT)
# after every line above was written. Everything this script checks is printed and flushed by now.
os._exit(0)
"""


def test_ddp_ranks_skip_the_same_layers_and_stay_identical(tmp_path):
    script = tmp_path / "ddp_skip.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    causes = [line for line in err.splitlines() if "rror" in line or "terminate" in line or "Signal" in line]
    assert proc.returncode == 0, f"stdout: {out!r}\n" + "\n".join(causes[:20]) + "\n...\n" + err[-2000:]
    lines = sorted(line for line in out.splitlines() if "rank=" in line)
    assert len(lines) == 4, out
    for line in lines:
        fields = dict(f.split("=") for f in line.split()[1:])
        assert fields["equal"] == "True", line
        assert int(fields["unused"]) > 0, line  # layers really were skipped
    for name in ("sd", "fractal"):  # both ranks skipped the same number of parameter tensors
        assert len({line.split()[2] for line in lines if line.startswith(name)}) == 1, lines


def test_trainer_keeps_momentum_and_weight_decay_for_dropped_blocks(tmp_path):
    """A dropped block gets a zero gradient, not None, so SGD's momentum and weight decay still reach it (as when
    the dropped branch was computed and multiplied by 0, and as in the authors' flat-gradient Torch code)."""
    model = _small_sd(depth_per_stage=2, drop_path_rate=0.9)
    cnnzoo.train(model, data="synthetic:32", recipe="quick", epochs=1, batch_size=8, image_size=8,
                 out=tmp_path / "run", progress=False, log=None)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["optimizer"]["state"]
    with_momentum = [k for k, v in state.items() if "momentum_buffer" in v and v["momentum_buffer"] is not None]
    assert len(with_momentum) == sum(1 for p in model.parameters() if p.requires_grad)

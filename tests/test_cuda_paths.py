"""The CUDA paths of training, checked on the CPU where their logic allows (issue 20): ``torch.cuda`` functions are
replaced by stand-ins (monkeypatch) where a decision depends on the machine; what needs a real GPU is in
``benchmarks/gpu_check.py``."""

from __future__ import annotations

import inspect
import json
import os
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.cli import build_parser
from cnnzoo.data.loaders import MAX_WORKERS, loader_workers
from cnnzoo.device import amp_dtype_for, set_backends
from cnnzoo.errors import UserError
from cnnzoo.evaluation import ensemble, evaluate_checkpoint, predict
from cnnzoo.layers.norm import LocalResponseNorm, paper_lrn
from cnnzoo.training import train
from cnnzoo.training.commands import config_from_args
from cnnzoo.training.distributed import Runtime, rng_state, set_rng_state
from cnnzoo.training.recipes import RECIPES
from cnnzoo.training.schedules import make_sgd
from cnnzoo.training.trainer import check_memory


def _nonfinite(net: nn.Module) -> int:
    return sum(int((~torch.isfinite(p)).sum()) for p in net.parameters())


def test_sgd_of_a_scaled_run_survives_a_skipped_first_step():
    """Bug 1: fused SGD under a GradScaler gets ``found_inf`` instead of being skipped; its kernel returns early
    without writing the momentum buffers it created with ``empty_like``, and the next step uses that garbage
    (--amp fp16 runs ended non-finite). A first-step overflow at the initial scale 2^16 is common."""
    torch.manual_seed(0)
    net, reference = nn.Linear(100, 1000), nn.Linear(100, 1000)
    reference.load_state_dict(net.state_dict())
    x = torch.randn(4, 100)
    optimizer = make_sgd(net, RECIPES["quick"], torch.device("cpu"), scaled=True)
    assert not optimizer.defaults.get("fused")
    scaler = torch.amp.GradScaler("cpu")
    for overflow in (True, False):  # the first step overflows and is skipped, the second is a real one
        optimizer.zero_grad()
        scaler.scale(net(x).sum()).backward()
        if overflow:
            net.weight.grad[0, 0] = float("inf")
        scaler.step(optimizer)
        scaler.update()
    assert _nonfinite(net) == 0
    # the skipped step left no trace: one plain SGD step from the same weights
    plain = torch.optim.SGD(reference.parameters(), lr=RECIPES["quick"].lr, momentum=RECIPES["quick"].momentum,
                            weight_decay=RECIPES["quick"].weight_decay, nesterov=RECIPES["quick"].nesterov)
    reference(x).sum().backward()
    plain.step()
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)


# --- precision and numerics (bugs 4 and 5) ---------------------------------------------------------------------------

@pytest.fixture
def restore_numerics():
    """The process-wide switches a run sets, restored after the test."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cudnn.allow_tf32, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.set_float32_matmul_precision(saved[2])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32 = saved[3:6]
    if saved[6] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[6]


def _gpu(monkeypatch, capability: tuple[int, int], count: int = 1) -> None:
    """A machine with ``count`` CUDA devices of this compute capability, as far as cnnzoo's decisions can tell."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


@pytest.mark.parametrize("capability, expected", [((7, 0), torch.float16), ((7, 5), torch.float16),
                                                  ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_default_amp_is_bf16_only_where_the_gpu_has_bf16_tensor_cores(monkeypatch, capability, expected):
    """Bug 5: bf16 was the default on every CUDA GPU; below compute capability 8.0 (V100, T4) there are no bf16
    tensor cores: fp16 with the grad scaler is the default there."""
    _gpu(monkeypatch, capability)
    assert amp_dtype_for(None, torch.device("cuda", 0)) is expected
    assert amp_dtype_for("off", torch.device("cuda", 0)) is None
    assert amp_dtype_for(None, torch.device("cpu")) is None


def test_cuda_numerics_tf32_matmuls_and_benchmark_recorded(restore_numerics):
    """Bug 5: matmul TF32 was never enabled (PyTorch leaves it off; the fully connected layers of AlexNet, VGG and
    ZFNet ran in full fp32). Bug 4: cuDNN benchmark was always on, with no deterministic mode."""
    torch.set_float32_matmul_precision("highest")
    record = set_backends(torch.device("cuda", 0), deterministic=False)
    assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.benchmark
    assert record == {"deterministic": False, "float32_matmul_precision": "high", "cudnn_benchmark": True,
                      "cudnn_tf32": True}
    record = set_backends(torch.device("cuda", 0), deterministic=False, tf32=False)
    assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cudnn.allow_tf32
    assert record["float32_matmul_precision"] == "highest" and record["cudnn_tf32"] is False
    torch.set_float32_matmul_precision("highest")
    assert set_backends(torch.device("cpu"), deterministic=False)["float32_matmul_precision"] == "highest"


def test_deterministic_mode_sets_cublas_workspace_and_turns_benchmark_off(restore_numerics, monkeypatch):
    """Bug 4: ``--deterministic``: cuDNN benchmark off, PyTorch's deterministic algorithms, the cuBLAS workspace
    setting (:4096:8) in the environment before cuBLAS starts."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    record = set_backends(torch.device("cuda", 0), deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    assert torch.backends.cudnn.deterministic and record["deterministic"] and not record["cudnn_benchmark"]
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    with pytest.raises(UserError, match="CUBLAS_WORKSPACE_CONFIG"):
        set_backends(torch.device("cuda", 0), deterministic=True)


def test_deterministic_is_a_train_option_recorded_in_config_json(restore_numerics, tmp_path):
    result = train("resnet20", data="synthetic:16", image_size=8, batch_size=8, epochs=1, deterministic=True,
                   device="cpu", out=tmp_path / "run", progress=False, log=None, checkpoints=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["deterministic"] is True and config["backends"]["deterministic"] is True
    assert torch.are_deterministic_algorithms_enabled()
    args = build_parser().parse_args(["train", "resnet20", "--deterministic", "--no-tf32"])
    assert config_from_args(args).deterministic is True and config_from_args(args).tf32 is False


# --- the random state of a resume (bug 3) ----------------------------------------------------------------------------

class FakeCudaGenerators:
    """``count`` CUDA devices whose generator states are told apart by their first byte (the device index + 1,
    times ``era``); ``restored`` lists (state's first byte, device index) for every state set."""

    def __init__(self, monkeypatch, count: int) -> None:
        self.count, self.era, self.restored = count, 1, []
        for module in (torch.cuda, torch.cuda.random):
            monkeypatch.setattr(module, "get_rng_state", self.get)
            monkeypatch.setattr(module, "set_rng_state", self.set)
            monkeypatch.setattr(module, "get_rng_state_all", lambda: [self.get(i) for i in range(self.count)])
            monkeypatch.setattr(module, "set_rng_state_all",
                                lambda states: [self.set(s, i) for i, s in enumerate(states)])

    def _index(self, device) -> int:
        device = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
        index = 0 if device.index is None else device.index
        if index >= self.count:
            raise IndexError(f"cuda:{index}: this machine has {self.count} device(s)")
        return index

    def get(self, device="cuda") -> torch.Tensor:
        return torch.full((8,), (self._index(device) + 1) * self.era, dtype=torch.uint8)

    def set(self, state: torch.Tensor, device="cuda") -> None:
        self.restored.append((int(state[0]), self._index(device)))


def test_resume_restores_the_runs_own_cuda_stream_on_a_machine_with_fewer_gpus(monkeypatch):
    """Bug 3: checkpoints held the state of every visible CUDA device and restored them all: resuming on a
    machine with fewer GPUs raised IndexError. Only the run's own device is saved and restored."""
    gpus = FakeCudaGenerators(monkeypatch, count=4)
    state = rng_state(torch.device("cuda", 0))  # written on a 4-GPU machine
    gpus.count, gpus.era = 1, 10  # resumed on a 1-GPU machine
    set_rng_state(state, torch.device("cuda", 0))
    assert gpus.restored == [(1, 0)]


def test_every_rank_restores_the_shared_stream_into_its_own_device(monkeypatch):
    """Bug 3: under torchrun, rank 0's file put rank 0's view of every device on every rank (cuda:2 got the
    state cuda:2 had in rank 0's process, which never drew on it). The file holds rank 0's own device's stream:
    the stream every rank shares (per-element draws come from private streams, ``RankStreams``); rank 2 restores it
    into cuda:2, and nothing else."""
    gpus = FakeCudaGenerators(monkeypatch, count=4)
    state = rng_state(torch.device("cuda", 0))  # rank 0 writes the file
    set_rng_state(state, torch.device("cuda", 2))  # rank 2 resumes
    assert gpus.restored == [(1, 2)]
    cpu_only = rng_state(torch.device("cpu"))
    set_rng_state(cpu_only, torch.device("cuda", 1))  # a CPU run resumed on a GPU: its CUDA stream is left alone
    assert gpus.restored == [(1, 2)]


# --- devices, processes and workers (bugs 2 and 8) -------------------------------------------------------------------

TORCHRUN_1 = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
              "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "none"}


def test_a_torchrun_launch_is_distributed_even_with_one_process():
    """Bug 2: ``distributed`` was ``world_size > 1``, so ``torchrun --nproc_per_node 1`` made no process group and no
    DDP wrapper: a one-GPU "NCCL" check exercised none of it."""
    assert Runtime.from_env(TORCHRUN_1).distributed
    assert not Runtime.from_env({}).distributed and not Runtime.from_env({"WORLD_SIZE": "1", "RANK": "0"}).distributed


def _set_device_calls(monkeypatch, count: int = 4) -> list:
    _gpu(monkeypatch, (9, 0), count)
    calls: list = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(torch.device(device)))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    return calls


def test_the_chosen_gpu_is_made_current(monkeypatch):
    """Bug 8: ``--device cuda:N`` never called ``set_device``: the pinned-memory thread and every call without a
    device opened a context on GPU 0."""
    calls = _set_device_calls(monkeypatch)
    assert Runtime().device(torch.device("cuda", 2)) == torch.device("cuda", 2)
    assert Runtime().device(torch.device("cuda")) == torch.device("cuda", 0)
    assert calls == [torch.device("cuda", 2), torch.device("cuda", 0)]
    assert Runtime().device(torch.device("cpu")) == torch.device("cpu") and len(calls) == 2


def test_under_torchrun_each_rank_drives_its_local_gpu_and_cuda_n_is_refused(monkeypatch):
    """Bug 8: under torchrun ``--device cuda:N`` put every rank on GPU N."""
    calls = _set_device_calls(monkeypatch)
    env = {**TORCHRUN_1, "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "4"}
    runtime = Runtime.from_env(env)
    assert runtime.device(torch.device("cuda")) == torch.device("cuda", 3) and calls == [torch.device("cuda", 3)]
    with pytest.raises(UserError, match="CUDA_VISIBLE_DEVICES"):
        runtime.device(torch.device("cuda", 0))
    # one process per machine: the GPU it names is the one it drives
    alone = Runtime.from_env({**env, "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"})
    assert alone.device(torch.device("cuda", 2)) == torch.device("cuda", 2)


def test_loader_workers_use_this_processs_share_of_the_cores(monkeypatch):
    """Loader: workers were ``min(8, cores - 1) // world_size``: one per GPU on an 8-GPU node of 128 cores, and
    the global world size, not the processes of this machine, divided them."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(128)), raising=False)
    assert Runtime.from_env({**TORCHRUN_1, "WORLD_SIZE": "16", "LOCAL_WORLD_SIZE": "8"}).cpu_share() == 16
    assert loader_workers(None, cores=16) == 15  # the rest of the share: one core decodes for the trainer's process
    assert loader_workers(None, cores=128) == MAX_WORKERS
    assert loader_workers(None, cores=1) == 0 and loader_workers(3, cores=16) == 3
    assert loader_workers(None, cores=16, batches=1) == 0  # one batch (a few images to predict): no processes


def test_eval_and_predict_decode_folders_with_workers_by_default():
    """Bug 8: ``eval`` and ``predict`` defaulted to 0 loader workers (every image decoded by the main process)."""
    parser = build_parser()
    assert parser.parse_args(["eval", "resnet20", "--weights", "w.safetensors"]).workers is None
    assert parser.parse_args(["predict", "a.jpg", "--weights", "w.safetensors"]).workers is None
    assert inspect.signature(evaluate_checkpoint).parameters["workers"].default is None
    assert inspect.signature(ensemble).parameters["workers"].default is None
    assert inspect.signature(predict).parameters["workers"].default is None


# --- LRN in half precision (bug 6) -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_lrn_of_large_half_precision_activations_is_the_fp32_result(dtype):
    """Bug 6: LRN squared its input in the input's precision: in fp16 a ReLU output above 256 squares past 65,504,
    the sum is inf and the output silently 0. It computes in fp32 and returns the input's dtype."""
    lrn = paper_lrn()
    x = torch.rand(2, 16, 5, 5, generator=torch.Generator().manual_seed(0)) * 600.0  # AlexNet conv1 reaches this
    out = lrn(x.to(dtype))
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    torch.testing.assert_close(out.float(), lrn(x.to(dtype).float()), rtol=1e-2, atol=1e-2)
    assert float(out.float().abs().min()) > 0 or float(x.min()) == 0
    conv = nn.Conv2d(3, 16, 1, bias=False)
    nn.init.constant_(conv.weight, 100.0)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):  # under autocast: a convolution's half output goes in
        out = lrn(conv(torch.ones(1, 3, 4, 4)))
    assert bool(torch.isfinite(out).all()) and float(out.float().min()) > 0


@pytest.mark.parametrize("name", ["alexnet", "zfnet", "googlenet", "vgg11_lrn"])
def test_every_lrn_network_uses_the_fp32_lrn(name):
    with torch.device("meta"):
        net = cnnzoo.create_model(name)
    norms = [m for m in net.modules() if isinstance(m, nn.LocalResponseNorm)]
    assert norms and all(isinstance(m, LocalResponseNorm) for m in norms)


# --- the memory check (bug 7) ----------------------------------------------------------------------------------------

def _fp32_estimate(model: str, size: int, batch: int) -> int:
    """The analyzer's training memory at ``size`` in fp32 (what the check used to compare with total memory)."""
    native = cnnzoo.model_info(model).input_size[1]
    t = cnnzoo.analyze(model, batch_size=1).totals
    fixed = t.param_bytes + t.buffer_bytes + t.grad_bytes + t.optimizer_bytes
    return int(fixed + (t.saved_activation_bytes + t.input_bytes) * batch * (size / native) ** 2)


def _gpu_memory(monkeypatch, total: int, context: int = 600 << 20) -> None:
    _gpu(monkeypatch, (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(total_memory=total))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (total - context, total))


def test_memory_check_leaves_room_for_the_cuda_context_and_workspaces(monkeypatch):
    """Bug 7: the estimate was compared with the GPU's total memory, ignoring the CUDA context (hundreds of MiB,
    taken before any tensor) and cuDNN/cuBLAS workspaces: a run that fits on paper ran out of memory."""
    need = _fp32_estimate("resnet20", 96, 64)
    _gpu_memory(monkeypatch, total=need + (256 << 20))
    with pytest.raises(UserError, match="free on cuda:0"):
        check_memory("resnet20", 96, 64, torch.device("cuda", 0))
    _gpu_memory(monkeypatch, total=need + (3 << 30))
    check_memory("resnet20", 96, 64, torch.device("cuda", 0))


def test_memory_check_estimates_in_the_autocast_dtype_and_counts_the_held_data(monkeypatch):
    """Bug 7: under --amp bf16 the saved activations take half the bytes the fp32 estimate counted: a run that
    fits was refused. The data set held on the device takes its share too."""
    need = _fp32_estimate("resnet20", 256, 64)
    _gpu_memory(monkeypatch, total=int(need * 0.75) + (2 << 30))
    with pytest.raises(UserError, match="fp32"):
        check_memory("resnet20", 256, 64, torch.device("cuda", 0))
    check_memory("resnet20", 256, 64, torch.device("cuda", 0), amp_dtype=torch.bfloat16)
    with pytest.raises(UserError, match="held on the device"):
        check_memory("resnet20", 256, 64, torch.device("cuda", 0), amp_dtype=torch.bfloat16, held_bytes=need)


# --- torch.compile and layer-skipping models (bug 9) -----------------------------------------------------------------

def test_compile_is_refused_for_a_model_that_skips_layers(monkeypatch, tmp_path):
    """Bug 9: stochastic depth's per-block ``bool(tensor)`` and FractalNet's ``.item()`` plans break the compiled
    graph in every block and recompile for each drop pattern. Such a model is refused with the reason, before the
    run writes anything; any other model is compiled."""
    compiled: list[str] = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: compiled.append(type(module).__name__) or module)
    common = dict(data="synthetic:16", image_size=8, batch_size=8, epochs=1, device="cpu", progress=False, log=None,
                  checkpoints=False, compile=True)
    with pytest.raises(UserError, match="recompiling for each drop pattern"):
        train("resnet20", model_kwargs={"drop_path_rate": 0.5, "drop_path_mode": "batch"}, out=tmp_path / "sd",
              **common)
    assert not (tmp_path / "sd").exists() and compiled == []
    train("resnet20", out=tmp_path / "plain", **common)
    assert compiled == ["ResNet"]
    with torch.device("meta"):
        assert cnnzoo.create_model("fractalnet20").skips_layers  # refused alike

"""How a run executes over processes: torchrun/DDP, collectives, the random streams of each rank and of a resume.

(The device and precision are chosen by :mod:`cnnzoo.device`; signals and stop decisions are in ``stopping``.)

Data-parallel training across processes (``torchrun --nproc_per_node N -m cnnzoo train ...``): torchrun exports
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and the rendezvous address; :class:`Runtime` reads them
(without them: one process, nothing here does anything). A torchrun launch is data-parallel at any world size, one
process included: it has a process group and a DDP wrapper, so ``torchrun --nproc_per_node 1`` runs every collective
of the job (what one process cannot show: statistics and gradients actually differing between ranks, e.g.
``SyncBatchNorm`` across GPUs). One code path serves 1 CPU, 1 GPU and N processes:

- the process group uses NCCL on CUDA and gloo on the CPU; each process drives ``cuda:LOCAL_RANK`` (made the
  current device); an explicit ``--device cuda:N`` is refused when a machine runs several processes;
- the recipe's ``batch_size`` is the *global* batch (the paper's), split evenly over the processes, so a recipe means
  the same run on any number of GPUs and a run resumes on any world size;
- the loaders shard each epoch's seeded permutation per rank (``DistributedSampler``'s scheme); validation shards
  without padding, so sums reduced over ranks count every sample exactly once;
- gradients are averaged by ``DistributedDataParallel``; the state dict is taken from the unwrapped module, so
  checkpoints carry no ``module.`` prefixes; rank 0 alone writes files and shows progress;
- random draws come in two kinds (:class:`RankStreams`): per-mini-batch draws (FractalNet's global column, Stochastic
  Depth's gates) come from the seeded default stream, the same on every rank, so they are taken once per global
  batch as in one process; per-element masks (dropout, per-sample drop path) come from a stream private to the rank
  and the step, so each shard gets its own masks: 2 processes x batch b = 1 process x batch 2b, in distribution;
- ``sync_bn`` converts batch norm to ``SyncBatchNorm`` (CUDA only: PyTorch's implementation needs GPU tensors).
"""

from __future__ import annotations

import atexit
import datetime
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data.augment import rng
from ..data.loaders import available_cores
from ..errors import UserError
from ..layers.drop_path import DropPath

# modules whose random draws are per element (or per sample): private to each data-parallel rank
PER_ELEMENT_RANDOM = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
                      DropPath)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The default streams, for an exact resume: torch's CPU stream, Python's, and the run's own CUDA device's.

    Never every visible device's: a process draws on one GPU (``cuda:LOCAL_RANK`` under torchrun). Rank 0 writes
    the file, so it holds rank 0's streams, which are the ones every rank shares (per-element draws come from
    streams private to each rank and step, :class:`RankStreams`, stateless): each rank restores them into its own
    device, on any number of GPUs."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if device.type == "cuda":
        state["cuda_device"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore :func:`rng_state` into this process: the CUDA stream into ``device`` (a CPU run resumed on a GPU
    leaves the GPU's seeded stream as it is)."""
    torch.set_rng_state(state["torch"])
    if "python" in state:
        random.setstate((3, tuple(state["python"]), None))
    if device.type != "cuda":
        return
    own = state.get("cuda_device")
    if own is None and state.get("cuda"):  # written before: every visible device's, the run's own (cuda:0) first
        own = state["cuda"][0]
    if own is not None:
        torch.cuda.set_rng_state(own, device)


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over data-parallel ranks, in place (a no-op in a single process)."""
    if initialized():
        dist.all_reduce(t)
    return t


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    if initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


# what torchrun (torch.distributed.run) exports to each process it starts
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Runtime:
    """This process's place in the job: rank, world size, local rank and the processes of this machine (from
    torchrun's environment); ``launched``: started by torchrun (data-parallel even as its only process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False
    local_world_size: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Runtime:
        env = os.environ if env is None else env
        launched = "TORCHELASTIC_RUN_ID" in env or all(name in env for name in LAUNCH_VARIABLES)
        try:
            world_size = int(env.get("WORLD_SIZE", "1"))
            rank, local_rank = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
            local_world_size = int(env.get("LOCAL_WORLD_SIZE", "1" if not launched else str(world_size)))
        except ValueError:
            raise UserError("RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers (set by torchrun)"
                            ) from None
        if world_size < 1 or not 0 <= rank < world_size:
            raise UserError(f"RANK {rank} and WORLD_SIZE {world_size} do not describe a process of the job")
        return cls(rank, world_size, local_rank, launched, max(1, local_world_size))

    @property
    def distributed(self) -> bool:
        """Data-parallel: a process group, DDP, sharded loaders (any torchrun launch, one process included)."""
        return self.launched or self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def cpu_share(self) -> int:
        """The cores of this process: the available ones divided among this machine's training processes."""
        return max(1, available_cores() // self.local_world_size)

    def device(self, device: torch.device) -> torch.device:
        """The GPU this process drives, made the current device (pinned-memory copies, NCCL and every call without
        a device then use it, and open no context on GPU 0). ``cuda``: ``cuda:LOCAL_RANK`` under torchrun, the
        current device otherwise. Under torchrun with several processes on a machine, ``cuda:N`` would put them
        all on one GPU: refused (``CUDA_VISIBLE_DEVICES`` chooses the GPUs)."""
        if device.type != "cuda":
            return device
        if self.distributed and device.index is not None and self.local_world_size > 1:
            raise UserError(f"--device {device} under torchrun: each of the {self.local_world_size} processes of this "
                            "machine drives its own GPU (cuda:LOCAL_RANK); pass --device cuda, and choose the GPUs "
                            "with CUDA_VISIBLE_DEVICES")
        if device.index is None:
            device = torch.device("cuda", self.local_rank if self.distributed else torch.cuda.current_device())
        torch.cuda.set_device(device)
        return device

    def start(self, device: torch.device) -> None:
        """Join the process group (NCCL on CUDA, gloo on the CPU) unless this process already has one. A group made
        here serves every later run of the process (``cnnzoo.train`` called again under the same torchrun) and is
        destroyed when the process exits (``leave_process_group``): making a second one in the same process is not
        reliable, its rendezvous may read the first one's addresses."""
        if not self.distributed or initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        # a stuck peer (crashed, out of memory) fails the job after 30 min instead of hanging it for ever
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30),
                                device_id=device if device.type == "cuda" else None)
        atexit.register(leave_process_group)

    def split_batch(self, batch_size: int) -> int:
        """This process's share of the global batch."""
        if batch_size % self.world_size:
            raise UserError(f"batch_size {batch_size} (the global batch) does not split over {self.world_size} "
                            f"processes; use a multiple of {self.world_size}")
        return batch_size // self.world_size

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (e.g. a run directory named after rank 0's clock)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def union(self, items: list[str]) -> list[str]:
        """Every rank's ``items``, merged in rank order without duplicates (collective: all ranks must call)."""
        if not self.distributed:
            return list(dict.fromkeys(items))
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, list(items))
        return list(dict.fromkeys(item for part in gathered for item in part))


def leave_process_group() -> None:
    """Destroy this process's process group, if it has one (at exit: NCCL's communicators are freed, not leaked)."""
    if initialized():
        dist.destroy_process_group()


def ddp_options(net: nn.Module) -> dict[str, Any]:
    """``find_unused_parameters`` only for a model that really skips layers in a forward pass (``skips_layers``:
    e.g. drop-path that does not compute a dropped branch); the search costs a graph traversal every step."""
    return {"find_unused_parameters": bool(getattr(net, "skips_layers", False))}


def wrap(net: nn.Module, device: torch.device, runtime: Runtime) -> nn.Module:
    """``net`` in ``DistributedDataParallel`` (one process: ``net`` itself). The optimizer and every checkpoint use
    ``net``, never the wrapper, so state dicts have no ``module.`` prefix."""
    if not runtime.distributed:
        return net
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None,
                                   **ddp_options(net))


class RankStreams:
    """Per-element randomness private to each rank; per-mini-batch randomness shared by all (see the module doc).

    Under torchrun, every module of ``PER_ELEMENT_RANDOM`` in ``net`` draws from a stream seeded by
    (seed, epoch, step, rank) (:meth:`begin_step`): around its forward pass the device's default generator is
    swapped for that stream and back, so the shared stream (which per-batch draws use) advances identically on every
    rank. Stateless per step, so a resumed run on the same world size draws the same masks. One process (torchrun's
    only one included): nothing is installed, the single default stream serves both kinds, so such a run draws what
    a run without torchrun draws.
    """

    def __init__(self, net: nn.Module, device: torch.device, runtime: Runtime, seed: int) -> None:
        self.device, self.rank, self.seed = device, runtime.rank, seed
        self.key: tuple[int, ...] = (seed, 0, 0)
        self.private: torch.Tensor | None = None
        self.shared: torch.Tensor | None = None
        if runtime.world_size > 1:
            # the hooks run eagerly under torch.compile (a graph break around each such module, never a recompile):
            # they swap the device's generator state, which a compiled graph cannot hold. Wrapped here, not with a
            # decorator, so that importing cnnzoo does not import torch._dynamo (about a second).
            enter, leave = torch.compiler.disable(self._enter), torch.compiler.disable(self._leave)
            for module in net.modules():
                if isinstance(module, PER_ELEMENT_RANDOM):
                    module.register_forward_pre_hook(enter)
                    module.register_forward_hook(leave)

    def begin_step(self, epoch: int, step: int) -> None:
        self.key, self.private = (self.seed, epoch, step, self.rank), None

    def _get(self) -> torch.Tensor:
        return torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else torch.get_rng_state()

    def _set(self, state: torch.Tensor) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state, self.device)
        else:
            torch.set_rng_state(state)

    def _enter(self, module: nn.Module, args: Any) -> None:
        self.shared = self._get()
        if self.private is None:
            self.private = rng(*self.key, device=self.device).get_state()
        self._set(self.private)

    def _leave(self, module: nn.Module, args: Any, output: Any) -> None:
        self.private = self._get()
        self._set(self.shared)


def convert_sync_batchnorm(net: nn.Module, device: torch.device) -> nn.Module:
    if device.type != "cuda":
        raise UserError("--sync-bn needs CUDA devices: PyTorch's SyncBatchNorm synchronises statistics between GPUs "
                        "only (on the CPU each process keeps its own batch norm; drop --sync-bn)")
    return nn.SyncBatchNorm.convert_sync_batchnorm(net)


def broadcast_buffers(net: nn.Module) -> None:
    """Rank 0's buffers (batch-norm running statistics) on every rank, so every rank validates the same network."""
    if initialized():
        for buffer in net.buffers():
            dist.broadcast(buffer, src=0)


__all__ = ["PER_ELEMENT_RANDOM", "RankStreams", "Runtime", "all_reduce_max", "all_reduce_sum", "broadcast_buffers",
           "convert_sync_batchnorm", "ddp_options", "initialized", "leave_process_group", "rng_state", "set_rng_state",
           "wrap"]

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
from report_fixtures import run_dir, zoo_cache  # noqa: F401  (session fixtures of test_report*.py)

# What a registered network costs the suite on a CPU, estimated from what makes it slow there rather than from its
# parameter count alone: its depth (layer calls: per-op overhead, on the CPU and more so on the meta device) and its
# multiply-adds at the test input, with its parameters (weight initialisation, optimizer steps). Counted on the meta
# device by the analyzer (nothing allocated), so a newly registered network is classified without a hand-set flag.
# Calibrated with `pytest --durations=0` on the 2-core CI machine, one thread: per network, the build, training step,
# shape checks and analysis of tests/test_models.py and tests/test_analysis.py took (s) ~ these terms (resnet1202:
# 4.5 s measured / 5.1 s estimated, vgg16 1.4 / 1.6, densenet_bc250_k24 1.2 / 1.2, resnet20 0.02 / 0.1).
SECONDS_PER_PARAM = 1.0e-8  # weight init + SGD step: VGG-16's 138 M parameters, 1.4 s
SECONDS_PER_MAC = 0.15e-9  # forward + backward arithmetic at the test input, batch 2
SECONDS_PER_LAYER = 0.9e-3  # a layer call in the CPU step, the meta-device shape pass and the analysis
SLOW_SECONDS = 1.0  # a network whose estimate is above this has its per-network tests marked slow
# Shape-only checks run where they are cheaper: building and running on the CPU costs the weights' initialisation
# and the arithmetic; on the meta device nothing is allocated but every op costs more (measured, build + forward).
CPU_FORWARD_SECONDS = (0.67e-8, 0.033e-9, 0.09e-3)  # per parameter, per MAC, per layer call
META_SECONDS_PER_LAYER = 0.35e-3  # preact_resnet1001 at 8x8: 1.5 s on meta, 0.5 s on the CPU; vgg16: 0.01 / 0.95


def pytest_configure(config):
    # The tests run tiny inputs (batch 2, 4-64 px): intra-op parallelism there buys nothing and, on a shared 2-core
    # machine, threads waiting for each other made a densenet121 step 20x slower (13-20 s vs 0.6 s, one thread).
    # One thread per process: under `pytest -n 2` each worker is one core. CNNZOO_TEST_THREADS overrides. The same in
    # the processes the tests start (the CLI, torchrun, scripts): a `cnnzoo train` child with torch's default threads
    # took 7.5 s for an epoch that takes 0.4 s with one, next to a busy worker.
    threads = os.environ.get("CNNZOO_TEST_THREADS", "1")
    torch.set_num_threads(int(threads))
    os.environ["OMP_NUM_THREADS"] = threads
    # what runs cache (decoded image folders, the report's zoo rows) stays out of the user's ~/.cache/cnnzoo; one
    # folder per process (each xdist worker runs this hook)
    os.environ["CNNZOO_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnzoo-test-cache-")
    if getattr(config, "cache", None) is not None:  # absent under -p no:cacheprovider
        PROFILE_CACHE.append(Path(config.cache.mkdir("cnnzoo-profiles")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@dataclass(frozen=True)
class Profile:
    """A registered network at its test input (batch 2), counted on the meta device."""

    name: str
    family: str
    params: int
    macs: int
    layers: int  # rows of the analyzer's layer table: module calls and functional ops
    kinds: frozenset[str]  # the layer kinds (Conv2d, LocalResponseNorm, ...) and aten ops its eval forward runs
    skips_layers: bool  # drops whole blocks or paths in training (stochastic depth, FractalNet's drop-path)
    conv_head: bool  # no fully connected layer: the classifier is a convolution and a global pool (NiN, SqueezeNet)

    @property
    def seconds(self) -> float:
        """Estimated CPU seconds of the suite's per-network checks (see SECONDS_PER_*)."""
        return self.params * SECONDS_PER_PARAM + self.macs * SECONDS_PER_MAC + self.layers * SECONDS_PER_LAYER


PROFILE_CACHE: list[Path] = []  # pytest's cache folder for the profiles, when the cache plugin runs


def profile(name: str) -> Profile:
    return profiles().get(name) or _profile(name)  # (a network registered by a test is profiled on its own)


@functools.cache
def profiles() -> dict[str, Profile]:
    """Every registered network's profile: ~8 s of meta-device builds, so kept in pytest's cache folder between
    sessions, keyed by cnnzoo's source and the torch version (a changed network is profiled again)."""
    key = hashlib.sha256(torch.__version__.encode())
    for path in sorted(Path(cnnzoo.__file__).parent.rglob("*.py")):
        key.update(path.read_bytes())
    file = PROFILE_CACHE[0] / f"{key.hexdigest()[:20]}.json" if PROFILE_CACHE else None
    if file is not None and file.is_file():
        try:
            saved = json.loads(file.read_text())
            return {n: Profile(**{**p, "kinds": frozenset(p["kinds"])}) for n, p in saved.items()}
        except (ValueError, TypeError):
            pass  # damaged or from an older Profile: profile again
    table = {name: _profile(name) for name in cnnzoo.list_models()}
    if file is not None:
        tmp = file.with_suffix(f".{os.getpid()}.tmp")  # xdist workers may write it at the same time
        tmp.write_text(json.dumps({n: {**asdict(p), "kinds": sorted(p.kinds)} for n, p in table.items()}))
        os.replace(tmp, file)
    return table


def _profile(name: str) -> Profile:
    info = cnnzoo.model_info(name)
    try:
        with torch.device("meta"):
            net = cnnzoo.create_model(name)
    except Exception:  # a builder that cannot run on meta: as the analyzer, build it for real (same counts)
        net = cnnzoo.create_model(name)
    size = info.test_size
    report = cnnzoo.analyze(net, (info.input_size[0], size, size), batch_size=2, training=False)
    kinds = frozenset(k for layer in report.layers for k in (layer.kind, *layer.ops))
    return Profile(name, info.family, info.params, report.totals.macs, len(report.layers), kinds,
                   bool(getattr(net, "skips_layers", False)), not any(isinstance(m, nn.Linear) for m in net.modules()))


def is_slow(name: str) -> bool:
    return profile(name).seconds > SLOW_SECONDS


def model_params(names):
    """pytest params over registered names, with the slow ones (`is_slow`) marked slow."""
    return [pytest.param(name, marks=pytest.mark.slow) if is_slow(name) else name for name in names]


def shape_device(name: str) -> str:
    """Where a shape-only check builds and runs a network: the meta device when that is cheaper than initialising
    the weights and doing the arithmetic on the CPU (VGG: 133 M parameters), else the CPU (deep nets on tiny inputs:
    the meta kernels' per-op cost exceeds the arithmetic)."""
    p = profile(name)
    per_param, per_mac, per_layer = CPU_FORWARD_SECONDS
    cpu = p.params * per_param + p.macs * per_mac + p.layers * per_layer
    return "meta" if p.layers * META_SECONDS_PER_LAYER < cpu else "cpu"


def no_onednn():
    """oneDNN creates a primitive per new conv shape; on the tests' tiny inputs that setup dominates (densenet121 at
    32x32: ~10x slower than the plain CPU kernels, same results within float tolerance)."""
    return torch.backends.mkldnn.flags(enabled=False)

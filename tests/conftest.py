import os
import tempfile

import pytest
import torch

import cnnzoo
from report_fixtures import run_dir, zoo_cache  # noqa: F401  (session fixtures of test_report*.py)

# A registered network's tests are marked slow when building it is: above this many parameters, initialising the
# weights and their gradients (and the fc layers' multiply-adds) dominate a CPU test run. Derived from the
# registry, so a newly registered network is classified without a hand-set flag.
SLOW_PARAMS = 40_000_000


def pytest_configure(config):
    # The tests run tiny inputs (batch 2, 4-64 px): intra-op parallelism there buys nothing and, on a shared 2-core
    # machine, threads waiting for each other made a densenet121 step 20x slower (13-20 s vs 0.6 s, one thread).
    # CNNZOO_TEST_THREADS overrides (e.g. to time the suite with every core).
    torch.set_num_threads(int(os.environ.get("CNNZOO_TEST_THREADS", "1")))
    # what runs cache (decoded image folders, the report's zoo rows) stays out of the user's ~/.cache/cnnzoo
    os.environ["CNNZOO_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnzoo-test-cache-")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def is_slow(name: str) -> bool:
    return cnnzoo.model_info(name).params > SLOW_PARAMS


def model_params(names):
    """pytest params over registered names, with the slow ones (`is_slow`) marked slow."""
    return [pytest.param(name, marks=pytest.mark.slow) if is_slow(name) else name for name in names]


def shape_device(name: str) -> str:
    """Where a shape-only check builds and runs a network: on the meta device when the weights are large (nothing
    is allocated or initialised), else on the CPU, since on tiny inputs the meta kernels' per-op cost exceeds the
    arithmetic (preact_resnet1001 at 8x8: 19 s on meta vs 3.8 s on the CPU, one thread)."""
    return "meta" if is_slow(name) else "cpu"


def no_onednn():
    """oneDNN creates a primitive per new conv shape; on the tests' tiny inputs that setup dominates (densenet121 at
    32x32: ~10x slower than the plain CPU kernels, same results within float tolerance)."""
    return torch.backends.mkldnn.flags(enabled=False)

import pytest
import torch

import cnnzoo

# A registered network's tests are marked slow when building it is: above this many parameters, initialising the
# weights and their gradients (and the fc layers' multiply-adds) dominate a CPU test run. Derived from the
# registry, so a newly registered network is classified without a hand-set flag.
SLOW_PARAMS = 40_000_000


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def is_slow(name: str) -> bool:
    return cnnzoo.model_info(name).params > SLOW_PARAMS


def model_params(names):
    """pytest params over registered names, with the slow ones (`is_slow`) marked slow."""
    return [pytest.param(name, marks=pytest.mark.slow) if is_slow(name) else name for name in names]


def no_onednn():
    """oneDNN creates a primitive per new conv shape; on the tests' tiny inputs that setup dominates (densenet121 at
    32x32: ~10x slower than the plain CPU kernels, same results within float tolerance)."""
    return torch.backends.mkldnn.flags(enabled=False)

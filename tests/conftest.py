import pytest
import torch

import cnnzoo
from report_fixtures import run_dir, zoo_cache  # noqa: F401  (session fixtures of test_report*.py)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def model_params(names):
    """pytest params over registered names, with the slow ones marked slow."""
    return [
        pytest.param(name, marks=pytest.mark.slow) if cnnzoo.model_info(name).slow else name for name in names
    ]

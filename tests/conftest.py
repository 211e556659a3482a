import pytest
import torch

import cnnzoo


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def model_params(names):
    """pytest params over registered names, with the slow ones marked slow."""
    return [
        pytest.param(name, marks=pytest.mark.slow) if cnnzoo.model_info(name).slow else name for name in names
    ]

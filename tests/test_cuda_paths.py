"""The CUDA paths of training, checked on the CPU where their logic allows (issue 20): ``torch.cuda`` functions are
replaced by stand-ins (monkeypatch) where a decision depends on the machine; what needs a real GPU is in
``benchmarks/gpu_check.py``."""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.training.recipes import RECIPES
from cnnzoo.training.schedules import make_sgd


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

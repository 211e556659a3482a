"""Generated from the registry: registering a model is enough to get it tested here."""

import pytest
import torch

import cnnzoo
from conftest import model_params, no_onednn, shape_device

ALL = cnnzoo.list_models()
TORCHVISION_COMPATIBLE = [n for n in ALL if cnnzoo.model_info(n).torchvision]


def _outputs(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("name", model_params(ALL))
def test_forward_backward_params(name):
    """One build and one training step per network, for every check that needs them: exact parameter count at the
    paper's classes; forward/backward at the smallest valid input; every parameter receives a gradient; eval mode is
    deterministic and returns one tensor."""
    info = cnnzoo.model_info(name)
    model = cnnzoo.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == info.params

    size = info.test_size
    x = torch.randn(2, info.input_size[0], size, size)
    with no_onednn():
        model.train()
        outs = _outputs(model(x))
        assert len(outs) == 1 + info.aux_outputs
        for out in outs:
            assert out.shape == (2, info.num_classes)
            assert torch.isfinite(out).all()
        sum(out.float().pow(2).mean() for out in outs).backward()
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        if getattr(model, "skips_layers", False):  # dropped blocks / paths do not run (tests/test_drop_skip.py)
            assert len(no_grad) < len(list(model.parameters())), "no parameter received a gradient"
        else:
            assert not no_grad, f"parameters without gradient: {no_grad[:5]}"

        model.eval()
        with torch.no_grad():
            a, b = model(x), model(x)
    assert isinstance(a, torch.Tensor), "eval mode returns the logits alone"
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_num_classes_and_in_channels_overrides(name):
    """Shapes only: large networks are built and run on the meta device (no weights, no arithmetic)."""
    info = cnnzoo.model_info(name)
    with torch.device(shape_device(name)), torch.no_grad(), no_onednn():
        model = cnnzoo.create_model(name, num_classes=7, in_channels=1).eval()
        out = model(torch.empty(1, 1, info.test_size, info.test_size).normal_())
    assert out.shape == (1, 7)


@pytest.mark.parametrize("name", model_params(TORCHVISION_COMPATIBLE))
def test_loads_torchvision_state_dict(name, tmp_path):
    """A randomly initialised torchvision model's weights, saved to a file and passed as weights=, give
    torchvision's outputs (eval mode, same input)."""
    import torchvision

    info = cnnzoo.model_info(name)
    reference = torchvision.models.get_model(info.torchvision, weights=None).eval()
    path = tmp_path / "tv.pth"
    torch.save(reference.state_dict(), path)
    model = cnnzoo.create_model(name, weights=path).eval()
    size = max(info.test_size, 64)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad(), no_onednn():
        expected, got = reference(x), model(x)
    assert (expected - got).abs().max().item() <= 1e-5


def test_every_family_module_registers_a_family():
    """cnnzoo.models imports each family module explicitly: a module left out of that list registers nothing."""
    import pkgutil

    import cnnzoo.models

    modules = {m.name for m in pkgutil.iter_modules(cnnzoo.models.__path__)}
    assert set(cnnzoo.list_families()) == modules


def test_registry_imports_no_family():
    """The registry is a leaf: the families import it, never the reverse."""
    import ast
    import inspect

    import cnnzoo.registry

    tree = ast.parse(inspect.getsource(cnnzoo.registry))
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [m for m in imported if "models" in m], imported

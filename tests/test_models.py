"""Generated from the registry: registering a model is enough to get it tested here."""

import pytest
import torch

import cnnzoo
from conftest import model_params, no_onednn, shape_device

ALL = cnnzoo.list_models()
TORCHVISION_COMPATIBLE = [n for n in ALL if cnnzoo.model_info(n).torchvision]
EPS = torch.finfo(torch.float32).eps


def _outputs(out):
    return out if isinstance(out, tuple) else (out,)


def _modules_that_run(model, x):
    """The outputs of ``model(x)`` and the names of the parameters whose modules ran in that pass."""
    ran = set()

    def record(prefix):
        return lambda module, inputs, output: ran.update(prefix + k for k, _ in module.named_parameters(recurse=False))

    hooks = [m.register_forward_hook(record(f"{name}." if name else "")) for name, m in model.named_modules()]
    try:
        outs = _outputs(model(x))
    finally:
        for hook in hooks:
            hook.remove()
    return outs, ran


@pytest.mark.parametrize("name", model_params(ALL))
def test_build_forward_backward_step(name):
    """One build per network for every check that needs it: the exact parameter count at the paper's classes; a
    training-mode forward at the smallest valid input (one output per head, finite); backward, where a parameter
    gets a gradient exactly when its layer ran (a layer-skipping model's dropped blocks and paths get none, not
    zeros, and something is dropped), never identically zero; eval mode returns the logits alone, deterministically;
    one SGD step moves every parameter with a gradient (where float32 resolves the update) and no other."""
    info = cnnzoo.model_info(name)
    model = cnnzoo.create_model(name)
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == info.params

    size = info.test_size
    x = torch.randn(2, info.input_size[0], size, size)
    with no_onednn():
        model.train()
        outs, ran = _modules_that_run(model, x)
        assert len(outs) == 1 + info.aux_outputs
        for out in outs:
            assert out.shape == (2, info.num_classes)
            assert torch.isfinite(out).all()
        sum(out.float().pow(2).mean() for out in outs).backward()
        with_grad = {n for n, p in params.items() if p.grad is not None}
        assert with_grad <= ran, f"gradient without running: {sorted(with_grad - ran)[:5]}"
        assert ran <= with_grad, f"ran without a gradient: {sorted(ran - with_grad)[:5]}"
        if getattr(model, "skips_layers", False):  # stochastic depth, drop-path: dropped layers are not run
            assert ran < set(params), "a layer-skipping model skipped nothing (seeded draw)"
        else:
            assert ran == set(params), f"parameters without gradient: {sorted(set(params) - ran)[:5]}"
        assert all(torch.isfinite(params[n].grad).all() for n in with_grad)
        zero = [n for n in with_grad if not params[n].grad.any()]
        assert not zero, f"identically zero gradients: {zero[:5]}"

        model.eval()
        with torch.no_grad():
            a, b = model(x), model(x)
        assert isinstance(a, torch.Tensor), "eval mode returns the logits alone"
        assert torch.equal(a, b)

        # one SGD step moves every parameter whose update float32 can resolve, and nothing without a gradient
        lr = 0.1
        before = {n: p.detach().clone() for n, p in params.items()}
        resolvable = {n for n in with_grad if (lr * params[n].grad.abs() > EPS * params[n].abs()).any()}
        torch.optim.SGD(model.parameters(), lr=lr).step()
        changed = {n for n, p in params.items() if not torch.equal(p, before[n])}
        assert resolvable and resolvable <= changed <= with_grad, f"not moved: {sorted(resolvable - changed)[:5]}"


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

"""DenseNet (stems, compression, memory-efficient path, dropout placement) and FractalNet (join, drop-path, columns)."""

import copy

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.models.densenet import DenseLayer
from cnnzoo.models.fractalnet import FractalNet, FractalNetSpec, Join


# ----------------------------------------------------------------------------------------------------------- DenseNet
@pytest.mark.parametrize(
    ("name", "stem", "bottleneck_width", "transition1_out"),
    [
        # Huang et al. §4.2: 16 stem channels, or 2k for DenseNet-BC; BC: 1x1 to 4k, compression 0.5
        ("densenet40_k12", 16, None, 16 + 12 * 12),
        ("densenet100_k24", 16, None, 16 + 32 * 24),
        ("densenet_bc100_k12", 24, 48, (24 + 16 * 12) // 2),
        ("densenet_bc250_k24", 48, 96, (48 + 41 * 24) // 2),
        ("densenet_bc190_k40", 80, 160, (80 + 31 * 40) // 2),
    ],
)
def test_cifar_densenet_stem_bottleneck_compression(name, stem, bottleneck_width, transition1_out):
    model = cnnzoo.create_model(name)
    assert model.stem.conv.out_channels == stem
    assert model.stem.conv.kernel_size == (3, 3)
    first = model.stages.denseblock1.denselayer1
    assert first.norm1.num_features == stem
    if bottleneck_width is None:
        assert first.conv1.kernel_size == (3, 3) and not hasattr(first, "conv2")
    else:
        assert first.conv1.kernel_size == (1, 1) and first.conv1.out_channels == bottleneck_width
        assert first.conv2.kernel_size == (3, 3)
    assert model.stages.transition1.conv.out_channels == transition1_out


def test_densenet_dropout_follows_every_conv_but_the_first():
    model = cnnzoo.create_model("densenet_bc100_k12", dropout=0.2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(convs) == 1 + 3 * 16 * 2 + 2  # stem, 2 convs per bottleneck layer, 2 transitions
    assert len(drops) == len(convs) - 1 and all(d.p == 0.2 for d in drops)
    assert not any(isinstance(m, nn.Dropout) for m in cnnzoo.create_model("densenet_bc100_k12").modules())


def _norm1_calls(model):
    calls = []
    for m in model.modules():
        if isinstance(m, DenseLayer):
            m.norm1.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize(("name", "dropout"), [("densenet_bc100_k12", 0.0), ("densenet40_k12", 0.2)])
def test_memory_efficient_path_equals_plain_path(name, dropout):
    plain = cnnzoo.create_model(name, dropout=dropout).train()
    efficient = cnnzoo.create_model(name, dropout=dropout, memory_efficient=True).train()
    efficient.load_state_dict(plain.state_dict())
    plain_calls, efficient_calls = _norm1_calls(plain), _norm1_calls(efficient)
    x = torch.randn(4, 3, 8, 8)
    results = []
    for model in (plain, efficient):
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(123)  # same dropout masks
        out = model(xi)
        out.pow(2).sum().backward()
        results.append((out.detach(), xi.grad))
    layers = sum(isinstance(m, DenseLayer) for m in plain.modules())
    assert len(plain_calls) == layers
    assert len(efficient_calls) == 2 * layers  # the checkpointed unit really is recomputed in backward
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-4, atol=1e-6)
    for (name_p, p), (name_e, e) in zip(plain.named_parameters(), efficient.named_parameters()):
        assert name_p == name_e
        torch.testing.assert_close(e.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name_p)
    # the recomputation leaves the BN running statistics exactly as one plain forward does
    for (name_p, b), (_, e) in zip(plain.named_buffers(), efficient.named_buffers()):
        torch.testing.assert_close(e, b, rtol=1e-6, atol=1e-7, msg=name_p)


def test_memory_efficient_eval_matches():
    plain = cnnzoo.create_model("densenet121").eval()
    efficient = cnnzoo.create_model("densenet121", memory_efficient=True).eval()
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(efficient(x), plain(x))


def test_densenet_loads_torchvisions_legacy_keys():
    """torchvision's published DenseNet files say denselayerN.norm.1 / conv.1 / ... (torchvision's loader renames
    them): both that layout and the current one load and give torchvision's outputs."""
    import re

    import torchvision

    reference = torchvision.models.densenet121(weights=None).eval()
    current = reference.state_dict()
    legacy = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v for k, v in current.items()}
    assert sum(k.endswith(".norm.1.weight") for k in legacy) == 6 + 12 + 24 + 16  # one per dense layer
    assert not any(".norm1." in k for k in legacy)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        expected = reference(x)
        for state in (current, legacy):
            got = cnnzoo.create_model("densenet121", weights=state).eval()(x)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------------------- FractalNet
def _tiny(columns=3, blocks=5, width=4, dropout_rate=0.0, **options):
    """FractalNet with the paper's topology and tiny widths (blocks=5 needs 32x32 inputs: five 2x2 pools)."""
    spec = FractalNetSpec(columns, (width,) * blocks, (dropout_rate,) * blocks)
    return FractalNet(spec, num_classes=3, **options)


def _count_fractal_params(columns, widths, in_channels=3, classes=10):
    """By hand: per block C first convs read the block input, 2^C-1-C read the width; conv bias; BN not affine."""
    params, c_in = 0, in_channels
    for w in widths:
        convs = 2**columns - 1
        params += columns * 9 * c_in * w + (convs - columns) * 9 * w * w + convs * w
        c_in = w
    return params + widths[-1] * classes + classes


@pytest.mark.parametrize(("name", "columns", "depth"), [("fractalnet20", 3, 20), ("fractalnet40", 4, 40)])
def test_fractalnet_registered_counts(name, columns, depth):
    info = cnnzoo.model_info(name)
    assert info.params == _count_fractal_params(columns, (64, 128, 256, 512, 512))
    assert 5 * 2 ** (columns - 1) == depth
    if name == "fractalnet20":
        assert info.paper_params == "38.6M" and info.deviations  # the unresolved figure stays documented
        assert abs(info.params - 33.7e6) < 0.05e6


def test_join_is_the_mean_of_active_inputs():
    a, b, c = (torch.randn(2, 3, 4, 4) for _ in range(3))
    join = Join((0, 1, 2), local_drop_prob=0.15)
    torch.testing.assert_close(join(a, b, c), (a + b + c) / 3)
    assert join.draw(column=1) == (1,) and join.draw(column=3) == () and join.draw() == (0, 1, 2)
    torch.manual_seed(0)
    for _ in range(50):
        active = join.draw(local=True)
        kept = [x for col, x in zip((0, 1, 2), (a, b, c)) if col in active]
        torch.testing.assert_close(join(*kept), sum(kept) / len(kept))


def test_block_join_is_mean_of_pooled_columns():
    """C=2: column 0 is one conv, column 1 two; each is max-pooled, then averaged (the generator's order)."""
    block = _tiny(columns=2).stages.block1.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        shallow = block.pools[0](block.columns[0](x))
        deep = block.pools[1](block.columns[1](x))
        torch.testing.assert_close(block(x), (shallow + deep) / 2)


def test_local_drop_path_never_drops_every_input():
    torch.manual_seed(0)
    nearly_all = Join((0, 1, 2), local_drop_prob=0.99)
    for _ in range(2000):
        assert len(nearly_all.draw(local=True)) >= 1
    # p = 0.15 on a 2-input join: kept with 0.85 + 0.15^2 / 2 (the redrawn survivor)
    pair = Join((1, 2), local_drop_prob=0.15)
    kept = torch.zeros(2)
    draws = 20000
    for _ in range(draws):
        assert pair.draw(local=True)
        kept += torch.tensor([1 in pair.active, 2 in pair.active], dtype=torch.float)
    torch.testing.assert_close(kept / draws, torch.full((2,), 0.85 + 0.15**2 / 2), atol=0.01, rtol=0)


def test_local_drop_path_in_the_whole_net():
    model = _tiny(global_drop_ratio=0.0).train()
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(0)
    partial = 0
    for _ in range(5):
        model(x)
        assert model.global_column is None
        joins = [m for m in model.modules() if isinstance(m, Join)]
        assert len(joins) == 5 * 2  # C=3: joins after step 2 (2 columns) and step 4 (3 columns)
        assert all(len(j.active) >= 1 for j in joins)
        partial += sum(len(j.active) < len(j.columns) for j in joins)
    assert partial > 0  # local drop-path actually drops something


def test_global_drop_path_keeps_exactly_one_column():
    model = _tiny(global_drop_ratio=1.0).train()
    x = torch.randn(2, 3, 32, 32)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        model.zero_grad(set_to_none=True)
        out = model(x)
        out.pow(2).sum().backward()
        column = model.global_column
        seen.add(column)
        for block in model.stages:
            for j, col in enumerate(block.columns):
                for unit in col:
                    used = unit.conv.weight.grad is not None  # layers off the column do not run
                    assert used == (j == column), f"seed {seed}: column {j} used={used}, global column {column}"
            for join in block.joins.values():
                assert join.active == ((column,) if column in join.columns else ())
        # the network's output is that of the plain chain of the chosen column
        with torch.no_grad():
            y = x
            for block in model.stages:
                y = block(y, column=column)
            torch.testing.assert_close(out.detach(), model.head(y))
    assert seen == {0, 1, 2}


def test_drop_path_mixes_global_and_local_half_and_half():
    model = _tiny(columns=2, blocks=1, width=2).train()  # 2x2 inputs: one block, one pool
    x = torch.randn(2, 3, 2, 2)
    torch.manual_seed(0)
    draws = []
    for _ in range(400):
        model(x)
        draws.append(model.global_column)
    columns = [d for d in draws if d is not None]
    assert abs(len(columns) / len(draws) - 0.5) < 0.075  # 3 standard errors
    assert abs(columns.count(0) / len(columns) - 0.5) < 0.11


def test_training_is_seed_reproducible():
    model = _tiny(dropout_rate=0.3).train()  # drop-path and dropout both draw
    x = torch.randn(2, 3, 32, 32)
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        outs.append(torch.stack([model(x) for _ in range(4)]))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert not torch.equal(outs[0], outs[2])


def _convs_run(model, x):
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return out, len(calls)


def test_single_column_evaluation_is_a_plain_network_of_that_depth():
    model = cnnzoo.create_model("fractalnet20").eval()
    x = torch.randn(1, 3, 32, 32)
    whole, convs = _convs_run(model, x)
    assert convs == 5 * 7  # every conv of every column
    for column, depth in [(0, 5), (1, 10), (2, 20), (-1, 20)]:
        model.eval_column = column
        assert model.column_depth(column) == depth
        out, convs = _convs_run(model, x)
        assert convs == depth
        assert out.shape == (1, 10) and torch.isfinite(out).all()
        # it is a plain chain: conv units and pools of that column, then the FC
        chain = nn.Sequential(
            *(nn.Sequential(*block.columns[column], block.pools[column]) for block in model.stages), model.head
        )
        with torch.no_grad():
            torch.testing.assert_close(out, chain(x))
    assert not torch.allclose(out, whole)
    with pytest.raises(ValueError):
        model.eval_column = 3


def test_eval_uses_every_column_deterministically():
    model = _tiny().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)
    for join in (m for m in model.modules() if isinstance(m, Join)):
        assert join.active == join.columns
    # the same as training mode without drop-path when BN uses the same statistics
    frozen = copy.deepcopy(model)
    frozen.drop_path = False
    frozen.train()
    for m in frozen.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), a)

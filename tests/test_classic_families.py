"""Family-specific facts of AlexNet, ZFNet, NiN and SqueezeNet, checked against their papers and the lecture."""

from functools import cache

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.layers import LocalResponseNorm
from cnnzoo.models.squeezenet import FireModule


@cache
def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return cnnzoo.create_model(name).eval()


def _shapes(model: nn.Module, size: int, kinds: tuple[type[nn.Module], ...]) -> list[tuple[int, ...]]:
    """(C, H, W) after each module of ``kinds``, in forward order, for one input of side ``size``."""
    shapes: list[tuple[int, ...]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for m in model.modules()
        if isinstance(m, kinds)
    ]
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def _built_params(name: str) -> int:
    """Parameters of the network as built (on the meta device: no weights allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in cnnzoo.create_model(name).parameters())


def _conv_params(in_channels: int, out_channels: int, kernel: int, groups: int = 1) -> int:
    return in_channels // groups * out_channels * kernel * kernel + out_channels


def _linear_params(in_features: int, out_features: int) -> int:
    return in_features * out_features + out_features


# ----------------------------------------------------------------------------------------------------- AlexNet


def test_alexnet_conv1_is_the_lectures():
    """CS231n: 227x227x3 input, CONV1 96 11x11 filters at stride 4 -> 55x55x96, (11*11*3)*96 = 34,848 weights."""
    model = _model("alexnet")
    conv1 = model.features[0]
    assert isinstance(conv1, nn.Conv2d)
    assert conv1.weight.numel() == 34_848
    assert conv1.weight.numel() + conv1.bias.numel() == 34_944
    assert _shapes(model, 227, (nn.Conv2d,))[0] == (96, 55, 55)


def test_alexnet_feature_map_sizes_at_227():
    """55 -> 27 -> 27 -> 13 -> 13 -> 13 -> 13 -> 6 (the lecture's table); 224 cannot give them."""
    shapes = _shapes(_model("alexnet"), 227, (nn.Conv2d, nn.MaxPool2d))
    assert [s[1] for s in shapes] == [55, 27, 27, 13, 13, 13, 13, 6]
    assert [s[0] for s in shapes] == [96, 96, 256, 256, 384, 384, 256, 256]
    with pytest.raises(ValueError, match="6x6"):
        with torch.no_grad():
            _model("alexnet")(torch.randn(1, 3, 224, 224))


@pytest.mark.parametrize(
    "name, groups",
    [
        ("alexnet", [1, 2, 1, 2, 2]),  # §3.2: conv2, conv4, conv5 see only their own GPU's maps
        ("alexnet_1tower", [1, 1, 1, 1, 1]),
        ("alexnet_tv", [1, 1, 1, 1, 1]),
        ("zfnet", [1, 1, 1, 1, 1]),  # Zeiler & Fergus: dense layers 3-5 on one GPU
    ],
)
def test_groups_where_the_paper_has_them(name, groups):
    assert [m.groups for m in _model(name).modules() if isinstance(m, nn.Conv2d)] == groups


def test_two_tower_split_saves_exactly_the_grouped_weights():
    """Grouping halves the weights of conv2 (96->256 5x5), conv4 (384->384 3x3) and conv5 (384->256 3x3)."""
    saved = (96 * 256 * 25 + 384 * 384 * 9 + 384 * 256 * 9) // 2
    assert _built_params("alexnet_1tower") - _built_params("alexnet") == saved


def test_alexnet_param_count_from_the_layer_table():
    expected = (
        _conv_params(3, 96, 11)
        + _conv_params(96, 256, 5, groups=2)
        + _conv_params(256, 384, 3)
        + _conv_params(384, 384, 3, groups=2)
        + _conv_params(384, 256, 3, groups=2)
        + _linear_params(256 * 6 * 6, 4096)
        + _linear_params(4096, 4096)
        + _linear_params(4096, 1000)
    )
    assert expected == _built_params("alexnet") == 60_965_224


@pytest.mark.parametrize("name", ["alexnet", "alexnet_1tower", "zfnet", "zfnet_512_1024_512"])
def test_lrn_constants_are_the_papers_in_pytorch_convention(name):
    """Krizhevsky §3.3: k=2, n=5, alpha=1e-4, beta=0.75 with alpha on the plain sum; PyTorch divides alpha by n."""
    norms = [m for m in _model(name).modules() if isinstance(m, nn.LocalResponseNorm)]
    assert len(norms) == 2
    for norm in norms:
        assert (norm.size, norm.alpha, norm.beta, norm.k) == (5, pytest.approx(5e-4), 0.75, 2.0)


def test_lrn_matches_the_papers_formula():
    """b_i = a_i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta, computed by hand."""
    norm = next(m for m in _model("alexnet").modules() if isinstance(m, nn.LocalResponseNorm))
    a = torch.rand(2, 12, 3, 3, dtype=torch.float64) * 20
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    expected = torch.empty_like(a)
    for i in range(a.shape[1]):
        window = a[:, max(0, i - n // 2) : min(a.shape[1], i + n // 2 + 1)]
        expected[:, i] = a[:, i] / (k + alpha * window.pow(2).sum(1)) ** beta
    torch.testing.assert_close(norm(a), expected)


def test_alexnet_layer_order_relu_lrn_pool():
    """Paper §3.3/§3.5 (and bvlc_alexnet): conv -> ReLU -> LRN -> max-pool in layers 1 and 2."""
    kinds = [type(m) for m in _model("alexnet").features]
    block = [nn.Conv2d, nn.ReLU, LocalResponseNorm, nn.MaxPool2d]
    assert kinds[:4] == block and kinds[4:8] == block
    pools = [m for m in _model("alexnet").features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3 and all((p.kernel_size, p.stride) == (3, 2) for p in pools)  # overlapping (§3.4)


def test_alexnet_dropout_on_fc6_fc7():
    paper = [type(m) for m in _model("alexnet").classifier]
    assert paper == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    assert all(m.p == 0.5 for m in _model("alexnet").classifier if isinstance(m, nn.Dropout))
    torchvision_order = [type(m) for m in _model("alexnet_tv").classifier]
    assert torchvision_order == [nn.Dropout, nn.Linear, nn.ReLU] * 2 + [nn.Linear]


def test_alexnet_paper_init():
    """§5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and fc6, fc7; 0 in conv1, conv3, fc8."""
    model = cnnzoo.create_model("alexnet")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [m.bias.unique().tolist() for m in layers] == [[0.0], [1.0], [0.0], [1.0], [1.0], [1.0], [1.0], [0.0]]
    fc6 = layers[5].weight
    assert abs(fc6.std().item() - 0.01) < 1e-4 and abs(fc6.mean().item()) < 1e-4
    default = cnnzoo.create_model("alexnet", paper_init=False)
    assert default.features[4].bias.unique().numel() > 1


def test_alexnet_tv_has_torchvision_keys():
    import torchvision

    reference = torchvision.models.alexnet(weights=None).state_dict()
    ours = _model("alexnet_tv").state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}


# ------------------------------------------------------------------------------------------------------- ZFNet


@pytest.mark.parametrize("name", ["zfnet", "zfnet_512_1024_512"])
def test_zfnet_feature_map_sizes(name):
    """Zeiler & Fergus Fig. 3: 224 -> conv1 110 -> pool 55 -> conv2 26 -> pool 13 -> 13 -> 13 -> 13 -> pool 6."""
    shapes = _shapes(_model(name), 224, (nn.Conv2d, nn.MaxPool2d))
    assert [s[1] for s in shapes] == [110, 55, 26, 13, 13, 13, 13, 6]
    widths = [384, 384, 256] if name == "zfnet" else [512, 1024, 512]
    assert [s[0] for s in shapes] == [96, 96, 256, 256, *widths, widths[-1]]
    conv1 = _model(name).features[0]
    assert (conv1.kernel_size, conv1.stride) == ((7, 7), (2, 2))


@pytest.mark.parametrize("name, widths", [("zfnet", (384, 384, 256)), ("zfnet_512_1024_512", (512, 1024, 512))])
def test_zfnet_param_count_from_the_layer_table(name, widths):
    c3, c4, c5 = widths
    expected = (
        _conv_params(3, 96, 7)
        + _conv_params(96, 256, 5)
        + _conv_params(256, c3, 3)
        + _conv_params(c3, c4, 3)
        + _conv_params(c4, c5, 3)
        + _linear_params(c5 * 6 * 6, 4096)
        + _linear_params(4096, 4096)
        + _linear_params(4096, 1000)
    )
    assert expected == _built_params(name) == {"zfnet": 62_357_608}.get(name, 107_627_624)


def test_zfnet_pools_then_normalises_and_inits_biases_to_zero():
    kinds = [type(m) for m in _model("zfnet").features]
    assert kinds[:4] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d, LocalResponseNorm]
    biases = [m.bias for m in cnnzoo.create_model("zfnet").modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(torch.count_nonzero(b) == 0 for b in biases)


# --------------------------------------------------------------------------------------------------------- NiN


@pytest.mark.parametrize("name", ["nin_cifar", "nin_imagenet"])
def test_nin_ends_with_global_average_pooling_and_has_no_linear(name):
    model = _model(name)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    gap, flatten = model.head
    assert isinstance(gap, nn.AdaptiveAvgPool2d) and gap.output_size == 1 and isinstance(flatten, nn.Flatten)
    info = cnnzoo.model_info(name)
    x = torch.randn(2, 3, info.input_size[1], info.input_size[2])
    with torch.no_grad():
        maps = model.stages(x)
        assert maps.shape[1] == info.num_classes  # one map per class (§3.2)
        torch.testing.assert_close(model(x), maps.mean(dim=(2, 3)))


def test_nin_cifar_mlpconv_layout():
    """The public CIFAR-10 model: 5x5 192-160-96, 5x5 192-192-192, 3x3 192-192-10, maps 32 -> 16 -> 8."""
    from cnnzoo.models.nin import MlpConv

    model = _model("nin_cifar")
    blocks = [m for m in model.stages if isinstance(m, MlpConv)]
    convs = [[unit[0] for unit in block] for block in blocks]
    assert [[c.out_channels for c in block] for block in convs] == [[192, 160, 96], [192, 192, 192], [192, 192, 10]]
    assert [[c.kernel_size[0] for c in block] for block in convs] == [[5, 1, 1], [5, 1, 1], [3, 1, 1]]
    assert [m.p for m in model.stages if isinstance(m, nn.Dropout)] == [0.5, 0.5]  # between mlpconv layers
    assert [s[1] for s in _shapes(model, 32, (MlpConv,))] == [32, 16, 8]


# -------------------------------------------------------------------------------------------------- SqueezeNet


def _fires(name: str) -> list[FireModule]:
    return [m for m in _model(name).features if isinstance(m, FireModule)]


def test_squeezenet_bypass_is_on_fire3_5_7_9():
    """Iandola et al. §6: simple bypass around Fire modules 3, 5, 7 and 9 (fire2 is the first)."""
    bypassed = [number for number, fire in enumerate(_fires("squeezenet1_0_bypass"), start=2) if fire.bypass]
    assert bypassed == [3, 5, 7, 9]
    assert not any(fire.bypass for fire in _fires("squeezenet1_0"))
    info, plain = cnnzoo.model_info("squeezenet1_0_bypass"), cnnzoo.model_info("squeezenet1_0")
    assert info.params == plain.params == 1_248_424  # the bypass adds no parameters


def test_squeezenet_bypass_is_an_identity_add():
    fire = _fires("squeezenet1_0_bypass")[1]  # fire3: 128 -> 128
    x = torch.randn(2, 128, 9, 9)
    with torch.no_grad():
        with_bypass = fire(x)
        fire.bypass = False
        try:
            without = fire(x)
        finally:
            fire.bypass = True
    torch.testing.assert_close(with_bypass, without + x)
    with pytest.raises(ValueError, match="equal in/out"):
        FireModule(96, 16, 64, 64, bypass=True)  # fire2: 96 -> 128 cannot have a simple bypass


def test_squeezenet_bypass_changes_the_function_not_the_weights():
    plain, bypass = _model("squeezenet1_0"), _model("squeezenet1_0_bypass")
    bypass.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(plain(x), bypass(x))


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_squeezenet_has_torchvision_keys_and_no_linear(name):
    import torchvision

    reference = torchvision.models.get_model(name, weights=None).state_dict()
    model = _model(name)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in reference.items()}
    assert not any(isinstance(m, nn.Linear) for m in model.modules())


def test_squeezenet_fire_table():
    """Table 1 (s1x1, e1x1, e3x3) for fire2-9; conv1 96@7x7/2 in v1.0, 64@3x3/2 in v1.1."""
    fires = _fires("squeezenet1_0")
    table = [(f.squeeze.out_channels, f.expand1x1.out_channels, f.expand3x3.out_channels) for f in fires]
    assert table == [(16, 64, 64)] * 2 + [(32, 128, 128)] * 2 + [(48, 192, 192)] * 2 + [(64, 256, 256)] * 2
    assert _model("squeezenet1_0").features[0].kernel_size == (7, 7)
    assert _model("squeezenet1_1").features[0].kernel_size == (3, 3)
    kinds = [type(m).__name__ for m in _model("squeezenet1_1").features]
    assert [i for i, k in enumerate(kinds) if k == "MaxPool2d"] == [2, 5, 8]  # after conv1, fire3, fire5


# --------------------------------------------------------------------------------------------------- ModelInfo

CLASSIC = [n for n in cnnzoo.list_models() if cnnzoo.model_info(n).family in {"alexnet", "zfnet", "nin", "squeezenet"}]


def test_classic_names_are_registered():
    assert CLASSIC == sorted(
        ["alexnet", "alexnet_1tower", "alexnet_tv", "zfnet", "zfnet_512_1024_512", "nin_cifar", "nin_imagenet",
         "squeezenet1_0", "squeezenet1_1", "squeezenet1_0_bypass"]
    )


@pytest.mark.parametrize("name", CLASSIC)
def test_model_info_is_complete(name):
    info = cnnzoo.model_info(name)
    assert info.paper and info.description and info.recipe == info.family
    assert info.deviations, "every variant documents where it departs from the paper"
    assert info.min_size is not None and info.min_size <= info.input_size[1]

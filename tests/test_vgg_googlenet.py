"""VGG and GoogLeNet against the lecture's tables and the papers' layouts.

Shape-only checks build the models on PyTorch's ``meta`` device (no memory, no arithmetic), so the 224x224 layouts
are checked exactly without running 15 GMACs on the CPU.
"""

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.layers import LocalResponseNorm
from cnnzoo.models.googlenet import InceptionModule


def _meta_model(name, **overrides):
    with torch.device("meta"):
        return cnnzoo.create_model(name, **overrides).eval()


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _conv_macs(model, x):
    """Conv MACs of one forward pass: out_h * out_w * out_c * k_h * k_w * in_c / groups, per conv."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.shape[2] * output.shape[3] * module.out_channels * kh * kw * module.in_channels // module.groups

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


def _stages(features):
    """Conv kernel sizes of a VGG ``features`` stack, grouped by the max pools that end each stage."""
    stages, current = [], []
    for m in features:
        if isinstance(m, nn.Conv2d):
            current.append(m.kernel_size[0])
        elif isinstance(m, nn.MaxPool2d):
            stages.append(current)
            current = []
    return stages


# --------------------------------------------------------------------------------------------------------- VGG

# Lecture 9, VGG16 table ("not counting biases"): conv1_1 ... conv5_3, fc6, fc7, fc8
LECTURE_VGG16_WEIGHTS = [
    1_728, 36_864,
    73_728, 147_456,
    294_912, 589_824, 589_824,
    1_179_648, 2_359_296, 2_359_296,
    2_359_296, 2_359_296, 2_359_296,
    102_760_448, 16_777_216, 4_096_000,
]
# Lecture 9, VGG16 table: output of each conv (H = W, C), the pools halve H
LECTURE_VGG16_SHAPES = [(224, 64)] * 2 + [(112, 128)] * 2 + [(56, 256)] * 3 + [(28, 512)] * 3 + [(14, 512)] * 3


def test_vgg16_per_layer_weights_equal_the_lecture_table():
    model = _meta_model("vgg16")
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert [m.weight.numel() for m in layers] == LECTURE_VGG16_WEIGHTS
    assert [m.bias.numel() for m in layers] == [m.out_channels for m in layers[:13]] + [4096, 4096, 1000]
    assert _params(model) == 138_357_544


def test_vgg16_activation_shapes_equal_the_lecture_table():
    model = _meta_model("vgg16")
    shapes = []
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(lambda mod, i, o: shapes.append((o.shape[2], o.shape[1])))
    pooled = []
    model.avgpool.register_forward_hook(lambda mod, i, o: pooled.append((tuple(i[0].shape), tuple(o.shape))))
    model(torch.empty(1, 3, 224, 224, device="meta"))
    assert shapes == LECTURE_VGG16_SHAPES
    # the adaptive pool is the identity at the paper's input: POOL2 already gives 7x7x512
    assert pooled == [((1, 512, 7, 7), (1, 512, 7, 7))]


@pytest.mark.parametrize(
    "name, stages, weight_layers",
    [
        # Simonyan & Zisserman Table 1, columns A, A-LRN, B, C, D, E
        ("vgg11", [[3], [3], [3, 3], [3, 3], [3, 3]], 11),
        ("vgg11_lrn", [[3], [3], [3, 3], [3, 3], [3, 3]], 11),
        ("vgg13", [[3, 3], [3, 3], [3, 3], [3, 3], [3, 3]], 13),
        ("vgg16_c", [[3, 3], [3, 3], [3, 3, 1], [3, 3, 1], [3, 3, 1]], 16),
        ("vgg16", [[3, 3], [3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]], 16),
        ("vgg19", [[3, 3], [3, 3], [3, 3, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3]], 19),
    ],
)
def test_vgg_configs_follow_table_1(name, stages, weight_layers):
    model = _meta_model(name)
    assert _stages(model.features) == stages
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert sum(len(s) for s in stages) + len(linears) == weight_layers == model.config.weight_layers
    widths = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    assert widths[0] == 64 and widths[-1] == 512 and [m.out_features for m in linears] == [4096, 4096, 1000]


def test_vgg16_c_one_by_one_convs_and_count():
    model = _meta_model("vgg16_c")
    ones = [m for m in model.features if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    # Table 1, column C: conv1-256 ends stage 3, conv1-512 ends stages 4 and 5
    assert [(m.in_channels, m.out_channels, m.padding) for m in ones] == [
        (256, 256, (0, 0)),
        (512, 512, (0, 0)),
        (512, 512, (0, 0)),
    ]
    assert _stages(model.features)[2:] == [[3, 3, 1]] * 3
    # C = D with the last conv of stages 3-5 at 1x1: 8 * C_in * C_out fewer weights there
    assert _params(_meta_model("vgg16")) - _params(model) == 8 * (256 * 256 + 2 * 512 * 512)
    assert _params(model) == 133_638_952


def test_vgg11_lrn_places_krizhevsky_lrn_after_the_first_conv():
    model = _meta_model("vgg11_lrn")
    kinds = [type(m) for m in model.features[:4]]
    assert kinds == [nn.Conv2d, nn.ReLU, LocalResponseNorm, nn.MaxPool2d]
    lrn = model.features[2]
    # Krizhevsky et al. §3.3: k=2, n=5, alpha=1e-4 (on the sum), beta=0.75 -> PyTorch averages: alpha * n
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, pytest.approx(5e-4), 0.75, 2.0)
    assert _params(model) == _params(_meta_model("vgg11")) == 132_863_336  # LRN adds no parameters


def test_vgg_bn_adds_two_params_per_conv_channel():
    for plain in ("vgg11", "vgg13", "vgg16", "vgg19"):
        model = _meta_model(plain)
        widths = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
        assert _params(_meta_model(f"{plain}_bn")) == _params(model) + 2 * sum(widths)


# ---------------------------------------------------------------------------------------------- Inception module


def test_naive_inception_module_lecture_example():
    """Lecture 9: input 28x28x256, branches 1x1-128, 3x3-192, 5x5-96 and 3x3 max pool."""
    module = InceptionModule(256, 128, None, 192, None, 96, None, naive=True).eval()
    x = torch.randn(1, 256, 28, 28)
    with torch.no_grad():
        out = module(x)
    assert out.shape == (1, 672, 28, 28) and module.out_channels == 672
    assert _conv_macs(module, x) == 854_196_224  # "Total: 854M ops"
    # with biases: 1x1 (256*128 + 128) + 3x3 (9*256*192 + 192) + 5x5 (25*256*96 + 96)
    assert sum(p.numel() for p in module.parameters()) == 1_089_952
    # the same branches on the paper's inception (3a) input, 28x28x192
    assert sum(p.numel() for p in InceptionModule(192, 128, None, 192, None, 96, None, naive=True).parameters()) == (
        817_568
    )


def test_bottleneck_inception_module_lecture_example():
    """The same module with 1x1-64 reductions before the 3x3 and 5x5 and a 64-channel pool projection."""
    module = InceptionModule(256, 128, 64, 192, 64, 96, 64).eval()
    x = torch.randn(1, 256, 28, 28)
    with torch.no_grad():
        assert module(x).shape == (1, 480, 28, 28)
    assert _conv_macs(module, x) == 271_351_808


def test_inception_module_rejects_mixed_forms():
    with pytest.raises(ValueError):
        InceptionModule(256, 128, 64, 192, None, 96, None, naive=True)
    with pytest.raises(ValueError):
        InceptionModule(256, 128, None, 192, 16, 96, 32)


# ---------------------------------------------------------------------------------------------------- GoogLeNet


def test_googlenet_table_1_layout_at_224():
    model = _meta_model("googlenet")
    outs = {}
    for name, child in model.named_children():
        child.register_forward_hook(lambda mod, i, o, name=name: outs.__setitem__(name, tuple(o.shape[1:])))
    model(torch.empty(1, 3, 224, 224, device="meta"))
    # Szegedy et al. Table 1, "output size" column
    assert outs["conv1"] == (64, 112, 112) and outs["maxpool1"] == (64, 56, 56)
    assert outs["conv3"] == (192, 56, 56) and outs["maxpool2"] == (192, 28, 28)
    assert [outs[f"inception{n}"] for n in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")] == [
        (256, 28, 28), (480, 28, 28),
        (512, 14, 14), (512, 14, 14), (512, 14, 14), (528, 14, 14), (832, 14, 14),
        (832, 7, 7), (1024, 7, 7),
    ]
    assert outs["maxpool4"] == (832, 7, 7) and outs["avgpool"] == (1024, 1, 1)


def test_googlenet_is_the_papers_network():
    model = _meta_model("googlenet")
    modules = [model.get_submodule(f"inception{n}") for n in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]
    assert all(m.branch3[1][0].kernel_size == (5, 5) for m in modules), "the 5x5 branches are 5x5"
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()) == 2
    assert model.dropout.p == 0.4 and model.aux1.dropout.p == 0.7 and model.aux2.dropout.p == 0.7


def test_googlenet_tv_keeps_torchvisions_3x3_branch():
    model = _meta_model("googlenet_tv")
    assert model.inception3a.branch3[1].conv.kernel_size == (3, 3)
    assert model.aux1 is None and model.dropout.p == 0.2


def test_googlenet_main_head_and_aux_head_counts():
    with torch.device("meta"):
        full = cnnzoo.create_model("googlenet")
        main = cnnzoo.create_model("googlenet", aux_logits=False)
    info = cnnzoo.model_info("googlenet")
    # the paper's Table 1 counts the network without the auxiliary heads: that is the comparable number
    assert _params(main) == 6_998_552 == info.comparable_params
    assert "auxiliary" in info.comparable_params_note
    assert _params(full) == 13_378_280
    # aux: conv 1x1 128 (+bias) -> FC 2048x1024 -> FC 1024x1000, on 512 (4a) and 528 (4d) channels
    assert sum(p.numel() for p in full.aux1.parameters()) == 512 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    assert sum(p.numel() for p in full.aux2.parameters()) == 528 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000


def test_googlenet_aux_heads_run_only_in_training():
    info = cnnzoo.model_info("googlenet")
    model = cnnzoo.create_model("googlenet")
    calls = []
    model.aux1.register_forward_hook(lambda mod, i, o: calls.append(("aux1", o)))
    model.aux2.register_forward_hook(lambda mod, i, o: calls.append(("aux2", o)))
    x = torch.randn(2, 3, info.test_size, info.test_size)

    out = model.train()(x)
    assert isinstance(out, tuple) and out._fields == ("logits", "aux_logits2", "aux_logits1")
    # documented order: (logits, head on 4d, head on 4a)
    assert [name for name, _ in calls] == ["aux1", "aux2"]
    assert out.aux_logits1 is calls[0][1] and out.aux_logits2 is calls[1][1]

    calls.clear()
    with torch.no_grad():
        out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1000) and not calls

    plain = cnnzoo.create_model("googlenet", aux_logits=False).train()
    assert isinstance(plain(x), torch.Tensor)


def test_googlenet_tv_matches_torchvision_in_training_with_aux_heads():
    """torchvision's googlenet with its aux heads: same weights, same dropout draws, same three outputs in order."""
    import torchvision

    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    model = cnnzoo.create_model("googlenet_tv", aux_logits=True, weights=reference.state_dict())
    assert set(model.state_dict()) == set(reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    expected = reference.train()(x)
    torch.manual_seed(1)
    got = model.train()(x)
    assert len(got) == len(expected) == 3
    for a, b in zip(got, expected, strict=True):  # (logits, aux_logits2, aux_logits1)
        assert (a - b).abs().max().item() <= 1e-5


def test_googlenet_tv_transform_input_matches_torchvision():
    import torchvision

    reference = torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=True)
    model = cnnzoo.create_model("googlenet_tv", transform_input=True, weights=reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model.eval()(x) - reference.eval()(x)).abs().max().item() <= 1e-5


def test_googlenet_tv_default_build_drops_torchvisions_aux_keys():
    """torchvision builds aux heads by default; the aux-free googlenet_tv loads the rest of its state dict."""
    import torchvision

    state = torchvision.models.googlenet(weights=None, init_weights=True).state_dict()
    assert any(k.startswith("aux1.") for k in state)
    model = cnnzoo.create_model("googlenet_tv", weights=state)
    assert set(model.state_dict()) == {k for k in state if not k.startswith(("aux1.", "aux2."))}

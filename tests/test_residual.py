"""The residual families' shared blocks: shortcuts, v1 vs v1.5 strides, stochastic depth and drop path, He init."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.layers import (
    BasicBlock,
    DropPath,
    PreActBlock,
    StochasticDepth,
    ZeroPadShortcut,
    drop_path_schedule,
)
from cnnzoo.layers.drop_path import drop_path


def _macs(name: str, size: int) -> int:
    """Conv + linear multiply-accumulates of one image (hooks, counted by hand), on the meta device."""
    with torch.device("meta"):
        model = cnnzoo.create_model(name)
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k_h, k_w = module.kernel_size
            total += output[0].numel() * (module.in_channels // module.groups) * k_h * k_w
        else:
            total += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.empty(1, 3, size, size, device="meta"))
    for hook in hooks:
        hook.remove()
    return total


# --- shortcuts ------------------------------------------------------------------------------------------------------


def test_option_a_subsamples_and_appends_zero_channels():
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])  # He et al. §4.2: identity on the input channels
    assert torch.count_nonzero(out[:, 16:]) == 0  # the extra channels are zeros
    assert not list(ZeroPadShortcut(16, 32, stride=2).parameters())


def test_option_a_avg_averages_2x2_windows():
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, stride=2, avg_pool=True)(x)
    assert torch.allclose(out[:, :16], F.avg_pool2d(x, 2))
    assert torch.count_nonzero(out[:, 16:]) == 0


@pytest.mark.parametrize("shortcut", ["A", "A_avg", "B"])
@pytest.mark.parametrize("side", [7, 8])
def test_downsampling_block_shortcut_matches_the_strided_branch(shortcut, side):
    block = BasicBlock(16, 32, stride=2, shortcut=shortcut)
    out = block(torch.randn(2, 16, side, side))
    assert out.shape == (2, 32, (side + 1) // 2, (side + 1) // 2)


def test_cifar_resnets_use_parameter_free_option_a():
    model = cnnzoo.create_model("resnet20")
    zero_pad = [m for m in model.modules() if isinstance(m, ZeroPadShortcut)]
    assert len(zero_pad) == 2  # the first block of stages 2 and 3
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())


# --- plain networks (He et al. §3.3, §4.2) ----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_plain_nets_are_the_resnets_without_shortcuts(depth):
    """Option A shortcuts carry no parameters: plain-n has ResNet-n's exact parameters and state-dict keys, and no
    shortcut module at all."""
    plain, resnet = cnnzoo.create_model(f"plain{depth}"), cnnzoo.create_model(f"resnet{depth}")
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in resnet.parameters())
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in resnet.state_dict().items()}
    assert not any(isinstance(m, ZeroPadShortcut) for m in plain.modules())
    assert all(block.shortcut is None for stage in plain.stages for block in stage)


def _hand_count_imagenet_plain(depths):
    """Table 1 by hand: conv1 7x7/2 (64) + BN, basic blocks of two 3x3 convs + BNs at widths 64..512, fc 1000."""
    count = 3 * 64 * 49 + 2 * 64
    channels = 64
    for depth, width in zip(depths, (64, 128, 256, 512)):
        for _ in range(depth):
            count += channels * width * 9 + width * width * 9 + 4 * width
            channels = width
    return count + 512 * 1000 + 1000


@pytest.mark.parametrize("name, depths", [("plain18", (2, 2, 2, 2)), ("plain34", (3, 4, 6, 3))])
def test_imagenet_plain_counts(name, depths):
    """Exact counts from Table 1 by hand; and the residual net of this build less its three projections (1x1 conv
    + BN from 64->128, 128->256, 256->512)."""
    model = cnnzoo.create_model(name)
    count = sum(p.numel() for p in model.parameters())
    assert count == _hand_count_imagenet_plain(depths) == cnnzoo.model_info(name).params
    projections = sum(c * 2 * c + 2 * 2 * c for c in (64, 128, 256))
    assert count == cnnzoo.model_info(name.replace("plain", "resnet")).params - projections


def test_plain_block_outputs_relu_of_its_branch_and_resnet_adds_the_shortcut():
    """Same weights: the plain block returns ReLU(F(x)), the residual one ReLU(F(x) + x) (He et al. eq. 1)."""
    plain, resnet = cnnzoo.create_model("plain20").eval(), cnnzoo.create_model("resnet20").eval()
    plain.load_state_dict(resnet.state_dict())
    x = torch.randn(2, 16, 8, 8)
    block_p, block_r = plain.stages.stage1[1], resnet.stages.stage1[1]
    with torch.no_grad():
        branch = block_p.bn2(block_p.conv2(torch.relu(block_p.bn1(block_p.conv1(x)))))
        assert torch.equal(block_p(x), torch.relu(branch))
        assert torch.allclose(block_r(x), torch.relu(branch + x))


def test_plain_nets_refuse_drop_path():
    with pytest.raises(ValueError, match="plain block"):
        cnnzoo.create_model("plain20", drop_path_rate=0.5)


# --- v1 vs v1.5 -----------------------------------------------------------------------------------------------------


def _stride2_kernels(name):
    model = cnnzoo.create_model(name)
    return sorted(
        {
            m.kernel_size[0]
            for block_name, m in model.stages.named_modules()
            if isinstance(m, nn.Conv2d) and m.stride == (2, 2) and ".shortcut" not in f".{block_name}"
        }
    )


def test_v1_strides_the_first_1x1_and_v1_5_the_3x3():
    v1, v15 = cnnzoo.create_model("resnet50"), cnnzoo.create_model("resnet50_tv")
    first = v1.stages.stage2[0]
    assert first.conv1.kernel_size == (1, 1) and first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)
    first = v15.stages.stage2[0]
    assert first.conv1.stride == (1, 1) and first.conv2.kernel_size == (3, 3) and first.conv2.stride == (2, 2)
    assert _stride2_kernels("resnet50") == [1]
    assert _stride2_kernels("resnet50_tv") == [3]
    assert _stride2_kernels("resnext50_32x4d") == [3]  # Xie et al. §4: stride in the 3x3


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet18", 1_814_073_344),
        ("resnet34", 3_663_761_408),
        ("resnet50", 3_857_973_248),
        ("resnet101", 7_570_194_432),
        ("resnet152", 11_282_415_616),
        ("plain18", 1_794_805_760),  # the residual nets less their projections' multiply-adds
        ("plain34", 3_644_493_824),
    ],
)
def test_v1_macs_at_224_match_table_1(name, expected):
    """He et al. Table 1 gives 1.8 / 3.6 / 3.8 / 7.6 / 11.3 x 10^9 "FLOPs", which they count as multiply-adds: the
    registry holds those figures, and the build is within their rounding (2%)."""
    macs = _macs(name, 224)
    assert macs == expected
    assert macs == pytest.approx(cnnzoo.model_info(name).paper_macs, rel=0.02)


def test_v1_5_macs_at_224_match_torchvision():
    """torchvision's _ops for ResNet-50: 4.089e9 (v1.5: the stride in the 3x3 costs more than in the 1x1)."""
    macs = _macs("resnet50_tv", 224)
    assert macs == 4_089_184_256
    assert macs == pytest.approx(cnnzoo.model_info("resnet50_tv").paper_macs, rel=1e-3)


# --- drop path (per sample, timm) -----------------------------------------------------------------------------------


def test_drop_path_is_identity_in_eval():
    x = torch.randn(8, 4, 3, 3)
    module = DropPath(0.5).eval()
    assert torch.equal(module(x), x)
    assert torch.equal(drop_path(x, 0.5, training=False), x)


def test_drop_path_drops_whole_samples_and_preserves_the_mean():
    torch.manual_seed(0)
    n, drop_prob = 100_000, 0.3
    out = DropPath(drop_prob).train()(torch.ones(n, 2, 2, 2))
    per_sample = out.flatten(1)
    kept = per_sample[:, 0] != 0
    assert torch.equal(per_sample, per_sample[:, :1].expand_as(per_sample))  # one draw per sample
    assert torch.allclose(per_sample[kept], torch.full_like(per_sample[kept], 1 / (1 - drop_prob)))
    # mean of a variable that is 1/keep with probability keep, else 0: expectation 1, std sqrt(drop/keep)
    tolerance = 4 * math.sqrt(drop_prob / (1 - drop_prob) / n)
    assert abs(out.mean().item() - 1.0) < tolerance
    assert abs((~kept).float().mean().item() - drop_prob) < 4 * math.sqrt(drop_prob * (1 - drop_prob) / n)


def test_drop_path_rate_schedules_end_at_the_rate():
    row = drop_path_schedule(0.2, 5, mode="row")  # timm: linear from 0
    assert row == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    batch = drop_path_schedule(0.5, 4, mode="batch")  # Huang et al. eq. 4: 1 - p_l = l/L (1 - p_L)
    assert batch == pytest.approx([0.125, 0.25, 0.375, 0.5])
    model = cnnzoo.create_model("resnet50", drop_path_rate=0.1)
    drops = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert len(drops) == 15 and drops[-1] == pytest.approx(0.1)  # the first of 16 blocks has rate 0: Identity


@pytest.mark.parametrize("name, num_blocks", [("resnet20", 9), ("wrn16_8", 6), ("preact_resnet18", 8)])
@pytest.mark.parametrize("mode", ["row", "batch"])
def test_every_family_takes_drop_path_rate(name, num_blocks, mode):
    """drop_path_rate is the last block's drop probability (1 - p_L) in both modes."""
    model = cnnzoo.create_model(name, drop_path_rate=0.2, drop_path_mode=mode)
    if mode == "row":
        drops = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
        assert len(drops) == num_blocks - 1  # timm's ramp starts at 0
    else:
        drops = [1 - m.survival_prob for m in model.modules() if isinstance(m, StochasticDepth)]
        assert len(drops) == num_blocks
    assert drops[-1] == pytest.approx(0.2)
    size = cnnzoo.model_info(name).test_size
    x = torch.randn(2, 3, size, size)
    model.train()(x).sum().backward()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


# --- stochastic depth (Huang et al. 2016) ---------------------------------------------------------------------------


def _survival_probs(model):
    return [m.survival_prob for m in model.modules() if isinstance(m, StochasticDepth)]


@pytest.mark.parametrize("name, num_blocks", [("resnet110_sd", 54), ("resnet152_sd", 50)])
def test_survival_probabilities_decay_linearly_to_one_half(name, num_blocks):
    probs = _survival_probs(cnnzoo.create_model(name))
    assert probs == pytest.approx([1 - block / num_blocks * 0.5 for block in range(1, num_blocks + 1)])
    assert probs[-1] == 0.5


def test_fraction_of_batches_keeping_block_l_converges_to_p_l():
    """Each forward is one mini-batch: the block is kept (branch intact for the whole batch) with probability p_l."""
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet110_sd").train()
    batches = 2_000
    batch = torch.ones(4, 1, 1, 1)
    for block, module in enumerate(m for m in model.modules() if isinstance(m, StochasticDepth)):
        assert torch.equal(module(batch), batch), "a kept branch passes unscaled in training"
        kept = sum(not module.dropped() for _ in range(batches)) / batches  # one draw per batch
        p = module.survival_prob
        assert abs(kept - p) <= 4 * math.sqrt(p * (1 - p) / batches) + 1e-12, f"block {block + 1}: {kept} vs {p}"


class _LinearResidual(nn.Module):
    """x + StochasticDepth(W x): a block whose branch is a fixed linear map."""

    def __init__(self, survival_prob):
        super().__init__()
        self.branch = nn.Conv2d(3, 3, 1, bias=False)
        self.drop = StochasticDepth(survival_prob)

    def forward(self, x):
        return x if self.drop.dropped() else x + self.drop(self.branch(x))


def test_eval_output_is_the_expected_training_output():
    torch.manual_seed(0)
    p = 0.7
    block = _LinearResidual(p)
    x = torch.randn(5, 3, 4, 4)
    with torch.no_grad():
        kept, dropped = x + block.branch(x), x
        block.train()
        outs = [block(x) for _ in range(200)]
        assert all(torch.equal(o, kept) or torch.equal(o, dropped) for o in outs)
        n_kept = sum(torch.equal(o, kept) for o in outs)
        assert 0 < n_kept < len(outs)
        block.eval()
        evaluated = block(x)
    assert torch.equal(evaluated, block(x)), "deterministic"
    assert torch.allclose(evaluated, p * kept + (1 - p) * dropped, atol=1e-6)  # E[training output], exactly
    assert abs(n_kept / len(outs) - p) <= 4 * math.sqrt(p * (1 - p) / len(outs))


def test_dropped_block_passes_its_shortcut():
    torch.manual_seed(0)
    block = BasicBlock(8, 16, stride=2, shortcut="A", drop_path=StochasticDepth(0.5)).train()
    x = torch.randn(2, 8, 6, 6).relu()
    shortcut_only = F.relu(block.shortcut(x))
    outcomes = {torch.equal(block(x), shortcut_only) for _ in range(50)}
    assert outcomes == {True, False}


# --- pre-activation and Wide ResNet ---------------------------------------------------------------------------------


def test_wrn_dropout_sits_between_the_convs():
    model = cnnzoo.create_model("wrn16_8", dropout=0.3)
    units = [m for m in model.modules() if isinstance(m, PreActBlock)]
    assert len(units) == 6
    names = [name for name, _ in units[0].named_children()]
    assert names.index("conv1") < names.index("bn2") < names.index("dropout") < names.index("conv2")
    assert all(u.dropout.p == 0.3 for u in units)
    assert not any(isinstance(m, nn.Dropout) for m in cnnzoo.create_model("wrn16_8").modules())


def test_preact_first_unit_of_each_stage_shares_its_activation():
    model = cnnzoo.create_model("preact_resnet164")
    firsts = [stage[0] for stage in model.stages]
    assert all(unit.shared_preact for unit in firsts)
    assert not any(unit.shared_preact for stage in model.stages for unit in list(stage)[1:])
    assert isinstance(model.head.bn, nn.BatchNorm2d)  # the extra BN-ReLU after the last unit


def test_preact_resnet1001_comparable_count_is_conv_and_fc_layers():
    """He et al. 2016b Table 3's 10.2M for ResNet-1001 counts conv and fc layers, not the batch norms."""
    model = cnnzoo.create_model("preact_resnet1001")  # on the CPU: 1,000 layers cost more on meta
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    counted = sum(p.numel() for m in layers for p in m.parameters())
    info = cnnzoo.model_info("preact_resnet1001")
    assert counted == 10_178_490 == info.comparable_params
    assert counted == pytest.approx(info.paper_params, rel=0.005)
    assert info.params - counted == sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
                                        for p in m.parameters())


def test_dropout_is_refused_for_bottleneck_units():
    with pytest.raises(ValueError, match="basic"):
        cnnzoo.create_model("preact_resnet164", dropout=0.3)


# --- He init --------------------------------------------------------------------------------------------------------


def test_he_fan_out_init():
    conv = cnnzoo.create_model("resnet50").stages.stage4[1].conv2  # 3x3, 512 -> 512
    expected = math.sqrt(2 / (3 * 3 * 512))
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.01)

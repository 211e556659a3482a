"""The analyzer: the lecture's tables, published numbers, cross-checks against FlopCounterMode and real measurements."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import model_params
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnzoo
from cnnzoo.analysis import AnalysisError, analyze, counts
from cnnzoo.analysis.meta import FAST
from cnnzoo.analysis.receptive_field import stacked
from cnnzoo.cli import main

aten = torch.ops.aten
ALL_MODELS = model_params(cnnzoo.list_models())
TORCHVISION_MODELS = model_params([n for n in cnnzoo.list_models() if cnnzoo.model_info(n).torchvision])


def meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return cnnzoo.create_model(name)


# ---- the lecture's hand-checked cases ---------------------------------------------------------------------------

# CS231n lecture 9, VGGNet: INPUT, then per layer [HxWxC], memory (values), params (not counting biases).
LECTURE_VGG16 = [
    ("INPUT", (224, 224, 3), 150_528, 0),
    ("CONV3-64", (224, 224, 64), 3_211_264, 1_728),
    ("CONV3-64", (224, 224, 64), 3_211_264, 36_864),
    ("POOL2", (112, 112, 64), 802_816, 0),
    ("CONV3-128", (112, 112, 128), 1_605_632, 73_728),
    ("CONV3-128", (112, 112, 128), 1_605_632, 147_456),
    ("POOL2", (56, 56, 128), 401_408, 0),
    ("CONV3-256", (56, 56, 256), 802_816, 294_912),
    ("CONV3-256", (56, 56, 256), 802_816, 589_824),
    ("CONV3-256", (56, 56, 256), 802_816, 589_824),
    ("POOL2", (28, 28, 256), 200_704, 0),
    ("CONV3-512", (28, 28, 512), 401_408, 1_179_648),
    ("CONV3-512", (28, 28, 512), 401_408, 2_359_296),
    ("CONV3-512", (28, 28, 512), 401_408, 2_359_296),
    ("POOL2", (14, 14, 512), 100_352, 0),
    ("CONV3-512", (14, 14, 512), 100_352, 2_359_296),
    ("CONV3-512", (14, 14, 512), 100_352, 2_359_296),
    ("CONV3-512", (14, 14, 512), 100_352, 2_359_296),
    ("POOL2", (7, 7, 512), 25_088, 0),
    ("FC", (1, 1, 4096), 4_096, 102_760_448),
    ("FC", (1, 1, 4096), 4_096, 16_777_216),
    ("FC", (1, 1, 1000), 1_000, 4_096_000),
]


def test_vgg16_every_layer_matches_the_lecture_table():
    report = analyze("vgg16")
    rows = [(r.label, r.shape_hwc, r.memory, r.weights) for r in report.lecture_rows()]
    assert rows == LECTURE_VGG16
    assert sum(r.memory for r in report.lecture_rows()) == 15_237_608  # the lines' exact sum, not the slide's "24M"
    assert report.totals.weights == 138_344_128
    assert report.totals.params == 138_357_544
    text = report.to_lecture()
    assert "CONV3-64: [224x224x64]  memory: 224*224*64=3.2M  params: (3*3*3)*64 = 1,728" in text
    assert "POOL2: [112x112x64]  memory: 112*112*64=800K  params: 0" in text
    assert "FC: [1x1x4096]  memory: 4096  params: 7*7*512*4096 = 102,760,448" in text
    assert "TOTAL memory: 15,237,608 values" in text and "24M" in text
    assert "TOTAL params: 138,344,128 weights" in text and "= 138,357,544" in text


def test_alexnet_conv1_and_pool1_at_227():
    report = analyze("alexnet")  # the paper's network; the lecture's input is 227x227x3
    assert report.input_size == (3, 227, 227)
    conv1 = next(s for s in report.layers if s.kind == "Conv2d")
    assert conv1.out_shape == (96, 55, 55)
    assert conv1.weights == 11 * 11 * 3 * 96 == 34_848  # the lecture's "35K", not counting biases
    assert conv1.biases == 96
    assert conv1.macs == 55 * 55 * 96 * 11 * 11 * 3
    pool1 = next(s for s in report.layers if s.kind == "MaxPool2d")
    assert pool1.out_shape == (96, 27, 27)
    assert pool1.params == 0
    lines = [(r.label, r.shape_hwc, r.weights) for r in report.lecture_rows()]
    assert lines[1] == ("CONV11-96", (55, 55, 96), 34_848)
    assert ("POOL3", (27, 27, 96), 0) in lines


def test_naive_inception_module_854m_macs_and_depth_672():
    block = cnnzoo.models.googlenet.InceptionModule(256, 128, None, 192, None, 96, None, naive=True)
    report = analyze(block, (256, 28, 28))
    # lecture: [1x1 conv, 128] 28x28x128x1x1x256 + [3x3 conv, 192] 28x28x192x3x3x256 + [5x5 conv, 96] 28x28x96x5x5x256
    assert report.totals.macs == 28 * 28 * 256 * (128 + 192 * 9 + 96 * 25) == 854_196_224
    assert report.layers[-1].kind == "cat"
    assert report.layers[-1].out_shape == (672, 28, 28)


# ---- receptive fields -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size", "jump"),
    [("alexnet", 195, 32), ("vgg16", 212, 32), ("googlenet", 715, 32), ("resnet50_tv", 427, 32)],
)
def test_receptive_fields_match_published_values(name, size, jump):
    # Araujo et al. 2019 (google-research/receptive_field): AlexNet 195, VGG16 212; analyzer.md §5.2/§5.5 for the
    # paper GoogLeNet (true 5x5 branches) 715 and torchvision's ResNet-50 (v1.5) 427
    field = analyze(name, training=False).receptive_field
    assert field.size == (size, size) and field.jump == (jump, jump)


def test_vgg16_receptive_field_per_layer():
    report = analyze("vgg16", training=False)
    convs = [s for s in report.layers if s.kind == "Conv2d"]
    assert [c.receptive_field.size[0] for c in convs[:3]] == [3, 5, 10]
    assert convs[-1].receptive_field.size == (196, 196)  # conv5_3; pool5 = 212 (analyzer.md §5.5)


def test_three_stacked_3x3_convs_see_7x7_with_27c2_weights():
    c = 16
    three = nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)])
    one = nn.Conv2d(c, c, 7, padding=3, bias=False)
    r3, r1 = analyze(three, (c, 32, 32)), analyze(one, (c, 32, 32))
    assert [s.receptive_field.size for s in r3.layers] == [(3, 3), (5, 5), (7, 7)]
    assert r1.receptive_field.size == (7, 7) == stacked([3, 3, 3]).size
    assert r3.totals.params == 27 * c * c and r1.totals.params == 49 * c * c


def test_receptive_field_is_the_max_over_branches():
    class TwoPaths(nn.Module):
        def __init__(self):
            super().__init__()
            self.small = nn.Conv2d(3, 8, 1)
            self.large = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 5, padding=2))

        def forward(self, x):
            return torch.cat([self.small(x), self.large(x)], 1) + self.small(x).repeat(1, 2, 1, 1)

    report = analyze(TwoPaths(), (3, 16, 16))
    assert report.receptive_field.size == (7, 7)
    assert report.layers[-1].receptive_field.size == (7, 7)


# ---- every registered model -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_params_and_macs_match_flop_counter(name):
    info = cnnzoo.model_info(name)
    model = meta_model(name).eval()
    report = analyze(model, info.input_size, training=False)
    assert report.totals.params == sum(p.numel() for p in model.parameters()) == info.params
    assert report.uncounted == {}, f"ops without a formula: {report.uncounted}"
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty((1, *info.input_size), device="meta"))
    conv_linear = {"convolution", "_convolution", "mm", "addmm", "bmm", "baddbmm"}
    by_module = {key: sum(n for op, n in ops.items() if op.__name__ in conv_linear) // 2
                 for key, ops in counter.get_flop_counts().items()}  # "Global", "ResNet", "ResNet.stem.conv", ...
    assert report.totals.macs == by_module["Global"]
    ours: dict[str, int] = {}  # per module path, every call
    for s in report.layers:
        if s.macs:
            ours[s.name] = ours.get(s.name, 0) + s.macs
    root = type(model).__name__
    assert ours == {path: by_module[f"{root}.{path}"] for path in ours}  # each layer's MACs, FlopCounterMode's way
    assert report.receptive_field is not None
    assert not any(s.macs and s.uncounted for s in report.layers)


@pytest.mark.parametrize("name", TORCHVISION_MODELS)
def test_torchvision_variants_match_published_ops(name):
    tv_name = cnnzoo.model_info(name).torchvision
    published = torchvision.models.get_model_weights(tv_name).IMAGENET1K_V1.meta["_ops"]  # GMACs at 224
    macs = analyze(meta_model(name), (3, 224, 224), training=False).totals.macs
    assert float(f"{macs / 1e9:.3g}") == float(f"{published:.3g}")


def test_published_ops_spot_values():
    assert round(analyze("resnet50_tv", training=False).totals.macs / 1e9, 3) == 4.089
    assert round(analyze("vgg16", training=False).totals.macs / 1e9, 2) == 15.47


def test_resnet50_paper_v1_is_3_858_gmacs():
    # He et al. 2016 Table 1: 3.8 x 10^9 FLOPs (multiply-adds) with the stride in the first 1x1 (v1)
    assert round(analyze("resnet50", training=False).totals.macs / 1e9, 3) == 3.858


# ---- memory ---------------------------------------------------------------------------------------------------


def _real_training_memory(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(total, saved) bytes of a real CPU training step: params + buffers + grads + Adam state + input + saved."""
    exclude = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers(), x)}
    seen: set[int] = set()
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        ptr = t.untyped_storage().data_ptr()
        if ptr not in exclude and ptr not in seen:
            seen.add(ptr)
            saved += t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    outputs = out if isinstance(out, tuple) else (out,)
    sum(o.sum() for o in outputs).backward()
    optimizer = torch.optim.Adam(model.parameters())
    optimizer.step()
    nbytes = lambda t: t.numel() * t.element_size()  # noqa: E731
    state = sum(nbytes(v) for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor))
    total = (sum(nbytes(p) for p in model.parameters()) + sum(nbytes(b) for b in model.buffers())
             + sum(nbytes(p.grad) for p in model.parameters()) + state + nbytes(x) + saved)  # fmt: skip
    return total, saved


@pytest.mark.parametrize(
    ("name", "side", "batch"),
    [("resnet20", 32, 4), ("densenet40_k12", 32, 2), ("squeezenet1_1", 64, 2), ("googlenet", 64, 2)],
)
def test_training_memory_estimate_matches_a_real_cpu_step(name, side, batch):
    torch.manual_seed(0)
    model = cnnzoo.create_model(name)
    x = torch.randn(batch, 3, side, side)
    real_total, real_saved = _real_training_memory(model, x)
    totals = analyze(name, (3, side, side), batch_size=batch, optimizer="adam").totals
    assert abs(totals.saved_activation_bytes - real_saved) <= 0.05 * real_saved
    assert abs(totals.train_memory_bytes - real_total) <= 0.05 * real_total


def test_activation_memory_counts_new_tensors_once():
    report = analyze(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(inplace=True), nn.ReLU(), nn.Flatten()), (3, 10, 10))
    conv, relu_inplace, relu, flat = report.layers
    assert conv.new_memory and not relu_inplace.new_memory and relu.new_memory and not flat.new_memory
    assert report.totals.activations == 3 * 10 * 10 + 2 * 8 * 8 * 8
    assert report.totals.activation_bytes == 4 * report.totals.activations


def test_dtype_and_batch_size_scale_the_counts():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    base = analyze(net, (3, 16, 16))
    bf16 = analyze(net, (3, 16, 16), dtype="bf16")
    batch = analyze(net, (3, 16, 16), batch_size=4)
    assert bf16.totals.activation_bytes * 2 == base.totals.activation_bytes
    assert bf16.totals.param_bytes * 2 == base.totals.param_bytes
    assert batch.totals.macs == 4 * base.totals.macs
    assert batch.totals.saved_activation_bytes == 4 * base.totals.saved_activation_bytes
    assert batch.layers[0].out_shape == (8, 14, 14)


_PEAK_RSS_GROWTH = """
import resource, cnnzoo
cnnzoo.analyze("vgg16")  # warm-up at 224: imports and first-call costs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cnnzoo.analyze("vgg16", (3, 4096, 4096))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_vgg16_at_4096_allocates_nothing_input_sized():
    # its speed is measured by benchmarks/bench_analyzer.py [3] (a timing goal, not a pass/fail unit test)
    report = analyze("vgg16", (3, 4096, 4096))
    assert report.layers[0].out_shape == (64, 4096, 4096)
    assert report.totals.activation_bytes > 4 * 2**30  # the numbers are input-sized, the memory is not:
    # a fresh process, so that its peak resident memory is this analysis's (a real forward holds two 4.3 GB maps)
    child = subprocess.run([sys.executable, "-c", _PEAK_RSS_GROWTH], capture_output=True, text=True, check=True)
    assert float(child.stdout.strip().splitlines()[-1]) < 190  # MiB (200 MB)
    model = meta_model("vgg16").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 4096, 4096, device="meta"))
    assert 2 * report.totals.macs == counter.get_total_flops()


_IMPORTS_AFTER_ANALYSIS = """
import sys, cnnzoo
for name in ("alexnet", "googlenet", "resnet50", "densenet121"):  # conv, max/avg/adaptive pools, LRN, batch norm
    cnnzoo.analyze(name)
print(sorted(m for m in ("torch._dynamo", "torch.fx.experimental.symbolic_shapes", "sympy") if m in sys.modules))
"""


def test_analysis_imports_neither_dynamo_nor_sympy():
    # torch._dynamo (0.7 s) and sympy (0.3 s) would double `cnnzoo summary`'s time beyond `import torch`: the
    # interceptor opts out of TorchDispatchMode's dynamo wrapper, meta.py's shape functions avoid torch._check
    child = subprocess.run([sys.executable, "-c", _IMPORTS_AFTER_ANALYSIS], capture_output=True, text=True, check=True)
    assert child.stdout.strip().splitlines()[-1] == "[]"


# ---- any nn.Module --------------------------------------------------------------------------------------------


class Functional(nn.Module):
    """Everything functional: hook-based tools (torchinfo, thop) count 0 MACs here."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 3, 3, 3))
        self.fc = nn.Parameter(torch.randn(8 * 6 * 6, 10))

    def forward(self, x):
        y = F.conv2d(x, self.weight)
        y = torch.cat([y, y], 1)[:, :8] + y
        return torch.flatten(y, 1) @ self.fc


def test_functional_ops_are_counted_and_attributed_to_their_module():
    report = analyze(Functional(), (3, 8, 8))
    assert report.totals.macs == 8 * 6 * 6 * 27 + 8 * 6 * 6 * 10
    assert report.totals.params == 8 * 27 + 288 * 10
    assert report.uncounted == {}
    assert all(s.name == "Functional" for s in report.layers)
    assert "conv" in report.layers[0].ops[0] and report.layers[0].weights == 8 * 27 + 288 * 10


class UnknownOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.cumsum(self.conv(x), dim=-1)


def test_ops_without_a_formula_are_listed_not_silently_zero():
    report = analyze(UnknownOp(), (3, 8, 8))
    assert report.uncounted == {"cumsum": 1}
    assert report.layers[-1].uncounted == ("cumsum",)
    assert report.totals.macs == 4 * 6 * 6 * 27  # the conv is still counted
    assert report.to_dict()["uncounted"] == {"cumsum": 1}
    assert "cumsum" in report.to_table()
    assert not counts.is_known("cumsum") and counts.is_known("convolution")


def test_shared_modules_count_params_once_and_macs_per_call():
    shared = nn.Linear(16, 16)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    report = analyze(net, (16,))
    assert report.totals.params == 16 * 16 + 16
    assert report.totals.macs == 2 * 16 * 16
    calls = [s for s in report.layers if s.kind == "Linear"]
    assert [s.call for s in calls] == [1, 2] and [s.params for s in calls] == [272, 0]


def test_frozen_parameters_have_no_gradient_or_optimizer_state():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3))
    net[0].requires_grad_(False)
    totals = analyze(net, (3, 16, 16), optimizer="sgd").totals
    assert totals.frozen_params == 8 * 27 + 8 and totals.trainable_params == 8 * 72 + 8
    assert totals.grad_bytes == totals.optimizer_bytes == 4 * totals.trainable_params


def test_the_model_passed_in_is_not_modified():
    model = torchvision.models.resnet18()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    attrs = {n: sorted(m.__dict__) for n, m in model.named_modules()}
    hooks = {n: len(m._forward_hooks) + len(m._forward_pre_hooks) for n, m in model.named_modules()}
    rng = torch.get_rng_state()
    analyze(model, (3, 64, 64), batch_size=2)
    assert model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert {n: sorted(m.__dict__) for n, m in model.named_modules()} == attrs
    assert {n: len(m._forward_hooks) + len(m._forward_pre_hooks) for n, m in model.named_modules()} == hooks
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_wrapped_models_are_analysed_as_the_module_inside():
    net = torchvision.models.resnet18()
    for wrapped in (nn.DataParallel(net), torch.compile(net)):
        report = analyze(wrapped, (3, 32, 32), training=False)
        assert report.model == "ResNet" and report.totals.params == 11_689_512


def test_a_model_that_cannot_run_at_that_size_raises_analysis_error():
    with pytest.raises(AnalysisError, match="cannot run on input 3x16x16"):
        analyze("alexnet", (3, 16, 16))
    with pytest.raises(ValueError, match="positive"):
        analyze("alexnet", "3x0x5")


def test_modules_not_run_are_reported():
    report = analyze("googlenet", training=False)  # the auxiliary heads run in training mode only
    assert report.modules_not_run == ("aux1", "aux2")
    assert report.totals.params_not_run == report.totals.params - 6_998_552  # analyzer.md §5.2: main head


@pytest.mark.parametrize("op", sorted(FAST, key=str))
def test_fast_meta_kernels_match_the_stock_ones(op):
    cases = {
        aten.native_batch_norm.default: lambda x: (x, x.new_empty(8), None, x.new_empty(8), x.new_empty(8), True,
                                                   0.1, 1e-5),  # fmt: skip
        aten.convolution.default: lambda x: (x, x.new_empty(4, 8, 3, 3), None, [2, 1], [1, 0], [1, 2], False, [0, 0],
                                             1),  # fmt: skip
        aten.max_pool2d_with_indices.default: lambda x: (x, [3, 3], [2, 2], [1, 1], [1, 1], True),
        aten.avg_pool2d.default: lambda x: (x, [3, 3], [2, 2], [1, 1], True),
        aten.avg_pool3d.default: lambda x: (x.unsqueeze(1), [3, 1, 1], [1, 1, 1], [1, 0, 0]),  # LocalResponseNorm's
        aten._adaptive_avg_pool2d.default: lambda x: (x, [1, 1]),
        aten.native_layer_norm.default: lambda x: (x, [x.shape[-1]], None, None, 1e-5),
        aten.mean.dim: lambda x: (x, [-1, -2], True),
        aten.cat.default: lambda x: ([x, x], 1),
        aten.addmm.default: lambda x: (x.new_empty(5), x.new_empty(3, 4), x.new_empty(4, 5)),
        aten.native_dropout.default: lambda x: (x, 0.5, True),
        aten.pow.Tensor_Scalar: lambda x: (x, 2),
        aten.clamp.default: lambda x: (x, 0.0, 6.0),
        aten.add.Scalar: lambda x: (x, 1.0),
        aten.mul.Scalar: lambda x: (x, 2.0),
        aten.div_.Scalar: lambda x: (x, 2.0),
        aten.add_.Scalar: lambda x: (x, 1.0),
        aten.mul_.Scalar: lambda x: (x, 2.0),
        aten.clamp_.default: lambda x: (x, 0.0, 6.0),
        aten.clamp_min.default: lambda x: (x, 0.0),
        aten.clamp_min_.default: lambda x: (x, 0.0),
        aten.leaky_relu.default: lambda x: (x, 0.1),
        aten.leaky_relu_.default: lambda x: (x, 0.1),
        aten.hardtanh.default: lambda x: (x, 0.0, 6.0),
        aten.hardtanh_.default: lambda x: (x, 0.0, 6.0),
    }
    if op == aten.empty.memory_format:
        for kwargs in ({"dtype": torch.bfloat16, "device": "meta"}, {"device": torch.device("meta")}):
            ours, stock = FAST[op](([2, 3],), kwargs), op([2, 3], **kwargs)
            assert (ours.shape, ours.stride(), ours.dtype) == (stock.shape, stock.stride(), stock.dtype)
        assert FAST[op](([2, 3],), {"device": "cpu"}) is None
        return
    if op == aten.add_.Tensor:  # an integer buffer += 1, as batch norm's num_batches_tracked
        n = torch.zeros((), dtype=torch.long, device="meta")
        assert FAST[op]((n, 1), {}) is n and FAST[op]((n, 0.5), {}) is None
    two = {aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor,
           aten.add_.Tensor, aten.sub_.Tensor, aten.mul_.Tensor, aten.div_.Tensor}  # fmt: skip
    compared = 0
    for dtype in (torch.float32, torch.bfloat16):
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.empty(2, 8, 5, 6, device="meta", dtype=dtype).to(memory_format=layout)
            args = cases[op](x) if op in cases else (x, x) if op in two else (x,)
            ours = FAST[op](args, {})
            if ours is None:
                continue  # declined: the stock kernel runs
            stock = op(*args)
            if op.name() == "aten::native_batch_norm" and not args[5]:
                stock = stock[:1]
            ours_t = ours if isinstance(ours, tuple) else (ours,)
            stock_t = stock if isinstance(stock, tuple) else (stock,)
            for a, b in zip(ours_t, stock_t):
                assert (a.shape, a.stride(), a.dtype) == (b.shape, b.stride(), b.dtype), (op, dtype, layout)
            if op._schema.is_mutable:
                assert ours is args[0]
            compared += 1
    assert compared, "every case declined: the fast kernel was not checked"


@pytest.mark.parametrize("op", [aten.convolution.default, aten.max_pool2d_with_indices.default,
                                aten.avg_pool2d.default])  # fmt: skip
def test_fast_window_shapes_match_the_stock_kernels_and_refuse_what_they_refuse(op):
    """Every input size 1-9 with kernels 1-4, strides 1-3, paddings 0-2, dilations 1-2 and both ceil modes: the same
    output size as the stock kernel, and no answer (the stock kernel then raises) where the stock kernel raises."""
    compared = refused = 0
    for size in range(1, 10):
        x = torch.empty(1, 2, size, size + 1, device="meta")
        grid = itertools.product(range(1, 5), range(1, 4), range(3), (1, 2), (False, True))
        for k, stride, pad, dilation, ceil in grid:
            if op == aten.convolution.default:
                if ceil:
                    continue
                args = (x, x.new_empty(3, 2, k, k), None, [stride] * 2, [pad] * 2, [dilation] * 2, False, [0, 0], 1)
            elif op == aten.max_pool2d_with_indices.default:
                args = (x, [k, k], [stride, stride], [pad, pad], [dilation, dilation], ceil)
            else:
                if dilation > 1:
                    continue
                args = (x, [k, k], [stride, stride], [pad, pad], ceil)
            ours = FAST[op](args, {})
            try:
                stock = op(*args)
            except RuntimeError:
                assert ours is None, args
                refused += 1
                continue
            stock = stock[0] if isinstance(stock, tuple) else stock
            assert ours is not None, args
            ours = ours[0] if isinstance(ours, tuple) else ours
            assert (ours.shape, ours.stride()) == (stock.shape, stock.stride()), args
            compared += 1
    assert compared > 200 and refused > 50  # both sides of the rule were exercised


# ---- formats and the command line -----------------------------------------------------------------------------


def test_json_schema():
    report = analyze("resnet20")
    data = json.loads(report.to_json())
    assert {"model", "input_size", "layers", "totals"} <= set(data)
    assert data["model"] == "resnet20" and data["input_size"] == [3, 32, 32]
    layer_keys = {"name", "kind", "out_shape", "activations", "activation_bytes", "params", "macs", "receptive_field"}
    assert all(layer_keys <= set(layer) for layer in data["layers"])
    assert data["layers"][0]["out_shape"] == [16, 32, 32]
    assert data["layers"][0]["receptive_field"] == {"size": [3, 3], "jump": [1, 1], "start": [0, 0]}
    totals_keys = {"params", "macs", "flops", "activations", "activation_bytes", "train_memory_bytes"}
    assert totals_keys <= set(data["totals"])
    assert data["totals"]["params"] == 269_722
    assert data["totals"]["train_memory_bytes"] == report.totals.train_memory_bytes > 0


def test_csv_and_markdown():
    report = analyze("resnet20", training=False)
    lines = report.to_csv().splitlines()
    assert lines[0].startswith("name,kind,call,out_shape,activations")
    assert len(lines) == 1 + len(report.layers)
    assert ",Conv2d,1,16x32x32,16384,65536,432,432,0,442368,884736,0,3x3,1x1,0x0," in lines[1]
    md = report.to_markdown()
    assert md.splitlines()[0].startswith("| # | layer | kind | output |")
    assert "- params: 269,722" in md


def test_cli_summary_formats(capsys):
    assert main(["summary", "vgg16", "--format", "lecture"]) == 0
    out = capsys.readouterr().out
    assert "CONV3-64: [224x224x64]  memory: 224*224*64=3.2M  params: (3*3*3)*64 = 1,728" in out
    assert main(["summary", "resnet20", "--format", "json", "--batch-size", "2", "--dtype", "bf16"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["batch_size"] == 2 and data["dtype"] == "bfloat16"
    assert main(["summary", "resnet20", "--input", "3x64x64", "--optimizer", "adam"]) == 0
    out = capsys.readouterr().out
    assert "input: 3x64x64" in out and "training memory (batch 1, adam)" in out
    for fmt in ("csv", "markdown", "table"):
        assert main(["summary", "nin_cifar", "--format", fmt]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "vgg16", "--input", "3x0x5"], "--input"),
        (["summary", "vgg16", "--input", "3xbig"], "--input"),
        (["summary", "vgg16", "--dtype", "int3"], "--dtype"),
        (["summary", "vgg16", "--batch-size", "0"], "--batch-size"),
        (["summary", "vgg61"], "unknown model"),
        (["summary", "alexnet", "--input", "3x16x16"], "cannot run on input"),
    ],
)
def test_cli_user_errors_are_one_line_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_rf(capsys):
    assert main(["rf"]) == 0
    out = capsys.readouterr().out
    assert "3 x CONV3: receptive field 3 -> 5 -> 7 px" in out and "27C^2" in out and "49C^2" in out
    assert main(["rf", "vgg16", "alexnet", "--layers"]) == 0
    out = capsys.readouterr().out
    assert "vgg16 at 3x224x224: receptive field 212 px, jump 32 px" in out
    assert "alexnet at 3x227x227: receptive field 195 px" in out

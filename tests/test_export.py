"""cnnzoo export: ONNX and torch.export files that run outside cnnzoo and agree with PyTorch.

At the test input size, a set of networks chosen from the registry (a greedy cover, cheapest first) that together
have every family and every layer kind and aten op of the zoo's eval forwards (the analyzer's per-layer lists:
`profile` in tests/conftest.py) is exported through the dynamo exporter (the default), the TorchScript-based
exporter and as a torch.export program, and verified by onnxruntime / torch.export.load. LRN layers must become ONNX
``LRN`` nodes with the module's constants. The full sweep of the earlier suite (every network at its paper input
through the TorchScript exporter: the VGG files are half a gigabyte each; the dynamo exporter on the smallest network
of each family and every network with LRN) is marked ``exhaustive``: run by ``make test-all``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.exporting import OnnxNet, VerificationError, read_metadata
from cnnzoo.training import train

from conftest import profile

onnx = pytest.importorskip("onnx", reason="pip install 'cnnzoo[export]'")
pytest.importorskip("onnxruntime", reason="pip install 'cnnzoo[export]'")
pytest.importorskip("onnxscript", reason="pip install 'cnnzoo[export]'")


def _lrn_nodes(graph) -> list[tuple[int, float, float, float]]:
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in graph.node
             if n.op_type == "LRN"]
    return [(a["size"], a["alpha"], a["beta"], a.get("bias", 1.0)) for a in attrs]


def _assert_lrn_nodes(name: str, graph) -> None:
    """Every LRN layer of ``name`` is one ONNX LRN node with the module's constants."""
    with torch.device("meta"):  # the constants only: no weights
        net = cnnzoo.create_model(name)
    modules = [(m.size, m.alpha, m.beta, m.k) for m in net.modules() if isinstance(m, nn.LocalResponseNorm)]
    if name in ("alexnet", "googlenet"):
        assert modules, f"{name} is expected to use LRN"
    nodes = _lrn_nodes(graph)
    assert len(nodes) == len(modules), "every LRN layer is one ONNX LRN node"
    for (size, alpha, beta, bias), (m_size, m_alpha, m_beta, m_k) in zip(nodes, modules):
        assert size == m_size and bias == pytest.approx(m_k)
        assert alpha == pytest.approx(m_alpha, rel=1e-6) and beta == pytest.approx(m_beta)


def covering_set(names: list[str], *, families: bool) -> list[str]:
    """Networks that together have every layer kind and aten op of ``names`` (and every family, with ``families``):
    a greedy weighted set cover, each time the network with the lowest estimated cost (`Profile.seconds`) per element
    it adds."""
    elements = {n: {*profile(n).kinds, *([f"family {profile(n).family}"] if families else [])} for n in names}
    missing, chosen = set().union(*elements.values()), []
    while missing:
        best = min((n for n in names if elements[n] & missing),
                   key=lambda n: (profile(n).seconds / len(elements[n] & missing), n))
        chosen.append(best)
        missing -= elements[best]
    return sorted(chosen)


# every family once through the dynamo exporter and once as pt2; the TorchScript exporter (the fallback) on what
# covers the layer kinds and ops alone, less the networks whose test-size graph it cannot write: an adaptive average
# pool that upsamples, as AlexNet (torchvision's) and VGG do at their smallest inputs (a 1x1 map to 6x6 / 7x7); the
# exhaustive sweep exports those at the paper input
COVER = covering_set(cnnzoo.list_models(), families=True)
UPSAMPLING_POOL = "_adaptive_avg_pool2d"
TORCHSCRIPT_COVER = covering_set([n for n in cnnzoo.list_models() if UPSAMPLING_POOL not in profile(n).kinds],
                                 families=False)


def torch_export_seconds(name: str) -> float:
    """Estimated seconds of a dynamo or pt2 export and its verification at the test input, one CPU thread: graph
    capture per layer, weights per parameter (measured: nin_cifar 0.9 s, resnet20 1.8, googlenet 3.3,
    resnet110_sd 8.1 with 494 layers, vgg11 8.3 with 133 M parameters). The TorchScript exporter takes 0.1-2 s."""
    return 1.0 + 0.014 * profile(name).layers + 5e-8 * profile(name).params


def _torch_export_param(name: str, *args: str):
    slow = torch_export_seconds(name) > 3.0  # `make test-fast` keeps the cheaper half of the families
    return pytest.param(name, *args, marks=[pytest.mark.slow] if slow else [], id="-".join((name, *args)))


COVER_CASES = [_torch_export_param(n, "dynamo") for n in COVER] + \
    [pytest.param(n, "torchscript", id=f"{n}-torchscript") for n in TORCHSCRIPT_COVER]


def _kinds(names: list[str]) -> set[str]:
    return set().union(*(profile(n).kinds for n in names))


def test_the_covering_sets_have_every_family_layer_kind_and_op_of_the_zoo():
    zoo = cnnzoo.list_models()
    used = _kinds(zoo)
    assert _kinds(COVER) == used and _kinds(TORCHSCRIPT_COVER) | {UPSAMPLING_POOL} == used
    assert {profile(n).family for n in COVER} == {cnnzoo.model_info(n).family for n in zoo}
    # the analyzer's lists name what these tests rely on: LRN layers, AlexNet's and VGG's pool, the aten ops
    assert {"LocalResponseNorm", UPSAMPLING_POOL, "convolution", "cat", "Conv2d"} <= used
    assert len(COVER) <= len({cnnzoo.model_info(n).family for n in zoo}) + 3, f"a cover, not the zoo: {COVER}"


@pytest.mark.parametrize("name, exporter", COVER_CASES)
def test_covering_set_exports_to_onnx_and_onnxruntime_matches_pytorch(name, exporter, tmp_path):
    size = cnnzoo.model_info(name).test_size
    out = tmp_path / f"{name}.onnx"
    r = cnnzoo.export(name, out=out, exporter=exporter, image_size=size)
    try:
        assert r.path == out and out.is_file() and r.format == "onnx"
        assert r.exporter == exporter, f"{name}: {r.note}"
        assert r.batch_sizes == (1, 3) and r.max_rel_diff <= 1e-4, (r.max_abs_diff, r.max_rel_diff)
        assert r.metadata["input_size"] == [cnnzoo.model_info(name).input_size[0], size, size]
        graph = onnx.load(str(out)).graph
        dim = graph.input[0].type.tensor_type.shape.dim[0]
        assert dim.dim_param and not dim.dim_value and OnnxNet(out).batch is None, "the batch dimension is symbolic"
        _assert_lrn_nodes(name, graph)
    finally:
        out.unlink(missing_ok=True)  # VGG's is half a gigabyte at any input size (its fc6 sees a 7x7 map)


@pytest.mark.parametrize("name", [_torch_export_param(n) for n in COVER])
def test_covering_set_exports_as_pt2_that_runs_without_cnnzoo(name, tmp_path):
    info = cnnzoo.model_info(name)
    size = info.test_size
    out = tmp_path / f"{name}.pt2"
    r = cnnzoo.export(name, format="pt2", out=out, image_size=size)
    try:
        assert r.exporter == "torch.export" and r.max_rel_diff <= 1e-4 and r.batch_sizes == (1, 3)
        program = torch.export.load(r.path)  # runs without cnnzoo's classes: no custom operator inside
        x = torch.randn(2, info.input_size[0], size, size)
        assert program.module()(x).shape == (2, info.num_classes)
        assert read_metadata(r.path)["input_size"] == [info.input_size[0], size, size]
    finally:
        out.unlink(missing_ok=True)


FAMILY_SMALLEST = sorted({cnnzoo.model_info(n).family: n for n in sorted(cnnzoo.list_models(),
                                                                         key=lambda n: -cnnzoo.model_info(n).params)
                          }.values())  # the smallest network of each family
WITH_LRN = ["alexnet", "googlenet", "vgg11_lrn", "zfnet"]
SWEEP = [*((name, "torchscript") for name in cnnzoo.list_models()),
         *((name, "dynamo") for name in sorted(set(FAMILY_SMALLEST) | set(WITH_LRN)))]


@pytest.mark.slow
@pytest.mark.exhaustive
@pytest.mark.parametrize("name, exporter", [pytest.param(n, e, id=f"{n}-{e}") for n, e in SWEEP])
def test_every_model_exports_to_onnx_and_onnxruntime_matches_pytorch(name, exporter, tmp_path):
    out = tmp_path / f"{name}.onnx"
    r = cnnzoo.export(name, out=out, exporter=exporter)  # its native input, dynamic batch, verified at batch 1 and 3
    try:
        assert r.path == out and out.is_file() and r.format == "onnx"
        assert r.exporter == exporter, f"{name}: {r.note}"
        assert r.batch_sizes == (1, 3) and r.max_rel_diff <= 1e-4, (r.max_abs_diff, r.max_rel_diff)
        assert r.metadata["input_size"] == list(cnnzoo.model_info(name).input_size)
        _assert_lrn_nodes(name, onnx.load(str(out)).graph)
    finally:
        out.unlink(missing_ok=True)  # the VGGs are half a gigabyte each


def test_fixed_batch_is_fixed_and_chunked(tmp_path):
    r = cnnzoo.export("resnet20", out=tmp_path / "b2.onnx", batch=2)
    assert r.batch_sizes == (2, 2)
    ort = OnnxNet(r.path)
    assert ort.batch == 2
    x = torch.randn(3, 3, 32, 32)  # 3 images through a batch-2 graph: two runs, the last one padded
    torch.testing.assert_close(ort(x)[2:], ort(x[2:]), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    torch.manual_seed(0)
    return train("resnet20", data="digits", epochs=1, image_size=8, batch_size=128, out=root / "run", progress=False,
                 log=None, device="cpu").out


def test_run_folder_metadata_round_trips_in_onnx_and_pt2(digits_run, tmp_path):
    config = json.loads((Path(digits_run) / "config.json").read_text())  # what the trainer recorded
    for fmt in ("onnx", "pt2"):
        r = cnnzoo.export(digits_run, format=fmt, out=tmp_path / f"digits.{fmt}")
        meta = read_metadata(r.path)
        assert meta == r.metadata
        assert meta["model"] == config["model"] == "resnet20"
        assert meta["classes"] == config["classes"] == [str(i) for i in range(10)]
        assert meta["input_size"] == [config["in_channels"], 8, 8] and config["image_size"] == 8
        assert meta["eval_resize"] == config["eval_resize"]
        assert meta["mean"] == pytest.approx(config["mean"]) and meta["std"] == pytest.approx(config["std"])
        assert meta["mean"] != pytest.approx([0.485, 0.456, 0.406]), "the run's statistics, not ImageNet's"
        assert meta["cnnzoo_version"] == cnnzoo.__version__ and "He" in meta["paper"]
        assert meta["weights"].endswith("best.safetensors"), "a run exports its best weights"


def _pngs(folder: Path, n: int = 8) -> list[Path]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    paths = []
    for i in range(n):
        img = (digits.images[i * 37] * 255 / 16).astype(np.uint8)
        paths.append(folder / f"digit{i}.png")
        Image.fromarray(np.stack([img] * 3, axis=-1)).resize((24, 24)).save(paths[-1])
    return paths


def test_run_folder_exports_and_predict_onnx_agrees_with_predict(digits_run, tmp_path, capsys):
    assert main(["export", str(digits_run)]) == 0
    out = capsys.readouterr().out
    exported = Path(digits_run) / "resnet20.onnx"
    assert exported.is_file() and "top-1 agreement 100.0%" in out and "dynamo exporter" in out
    pngs = [str(p) for p in _pngs(tmp_path)]
    assert main(["predict", "--weights", str(digits_run), *pngs, "--json", str(tmp_path / "torch.json")]) == 0
    assert main(["predict", "--onnx", str(exported), *pngs, "--json", str(tmp_path / "onnx.json")]) == 0
    want = json.loads((tmp_path / "torch.json").read_text())["predictions"]
    got = json.loads((tmp_path / "onnx.json").read_text())["predictions"]
    assert [r["top"][0]["class"] for r in got] == [r["top"][0]["class"] for r in want]
    for g, w in zip(got, want):
        assert [t["probability"] for t in g["top"]] == pytest.approx([t["probability"] for t in w["top"]], abs=1e-4)


def test_a_mismatch_exits_1_and_keeps_the_file_as_unverified(tmp_path, monkeypatch, capsys):
    from cnnzoo.exporting import exporter

    real = exporter._loaded
    monkeypatch.setattr(exporter, "_loaded", lambda path, fmt: (lambda x: real(path, fmt)(x) * 1.01))
    out = tmp_path / "r20.onnx"
    assert main(["export", "resnet20", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cnnzoo: error: ") and err.count("\n") == 1 and "relative" in err
    assert not out.exists() and (tmp_path / "r20.onnx.unverified").is_file()
    with pytest.raises(VerificationError) as info:
        cnnzoo.export("resnet20", out=out)
    assert info.value.result.max_rel_diff > 1e-4 and info.value.result.path.name == "r20.onnx.unverified"


def test_an_opset_the_dynamo_exporter_cannot_write_falls_back_to_torchscript_and_says_so(tmp_path, capsys):
    out = tmp_path / "r20_9.onnx"
    assert main(["export", "resnet20", "--opset", "9", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "torchscript exporter" in printed and "could not convert it to 9" in printed
    assert onnx.load(str(out)).opset_import[0].version == 9


def test_torchscript_exporter_maps_lrn_too(tmp_path):
    r = cnnzoo.export("googlenet", exporter="torchscript", opset=11, image_size=32, out=tmp_path / "g.onnx")
    assert r.exporter == "torchscript" and r.max_rel_diff <= 1e-4
    lrn = [(m.size, m.alpha, m.beta, m.k) for m in cnnzoo.create_model("googlenet").modules()
           if isinstance(m, nn.LocalResponseNorm)]
    nodes = _lrn_nodes(onnx.load(str(r.path)).graph)
    assert len(nodes) == len(lrn) == 2
    assert [n[0] for n in nodes] == [m[0] for m in lrn] and nodes[0][1:] == pytest.approx(lrn[0][1:], rel=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["export", "resnet2O"], "unknown model"),
    (["export", "googlenet", "--mode", "train"], "auxiliary classifier outputs exist in train mode only"),
    (["export", "resnet20", "--mode", "train"], "exported networks are for inference"),
    (["export", "resnet20", "--batch", "0"], "--batch must be 'dynamic' or a positive integer"),
    (["export", "resnet20", "--opset", "5"], "--opset 5: too old"),
    (["export", "resnet20", "--image-size", "4"], "needs inputs of at least 8 px"),
    (["export", "resnet20", "--format", "pt2", "--opset", "17"], "--opset applies to --format onnx only"),
    (["export", "resnet20", "--out", "/nonexistent/dir/x.onnx"], "does not exist"),
    (["predict", "--onnx", "/nonexistent.onnx", "x.png"], "no such file"),
    (["predict", "--onnx", "m.onnx", "--tta", "flip", "x.png"], "--onnx runs the exported file alone"),
    (["predict", "x.png"], "predict needs --weights CKPT (or --onnx FILE)"),
])
def test_unsupported_cases_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnzoo: error: ") and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime", "onnxscript"])
def test_missing_optional_dependency_names_the_extra(missing, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises ModuleNotFoundError
    assert main(["export", "resnet20", "--out", "/tmp/never-written.onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'cnnzoo[export]'" in err and missing in err

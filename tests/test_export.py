"""cnnzoo export: ONNX and torch.export files that run outside cnnzoo and agree with PyTorch.

Every registered network is exported (random init, its native input) and verified by onnxruntime, through the
TorchScript-based exporter (about 1-2 s a network here); the default dynamo exporter, whose graph optimiser alone
takes 10-20 s a network on the 2-core CI machine, exports the smallest network of each family and every network
with LRN. LRN layers must become ONNX ``LRN`` nodes with the module's constants. The deep/large nets are marked slow
(still run by ``make test``).
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

from conftest import is_slow

onnx = pytest.importorskip("onnx", reason="pip install 'cnnzoo[export]'")
pytest.importorskip("onnxruntime", reason="pip install 'cnnzoo[export]'")
pytest.importorskip("onnxscript", reason="pip install 'cnnzoo[export]'")


def _lrn_nodes(path: Path) -> list[tuple[int, float, float, float]]:
    graph = onnx.load(str(path)).graph
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in graph.node
             if n.op_type == "LRN"]
    return [(a["size"], a["alpha"], a["beta"], a.get("bias", 1.0)) for a in attrs]


FAMILY_SMALLEST = sorted({cnnzoo.model_info(n).family: n for n in sorted(cnnzoo.list_models(),
                                                                         key=lambda n: -cnnzoo.model_info(n).params)
                          }.values())  # the smallest network of each family
WITH_LRN = ["alexnet", "googlenet", "vgg11_lrn", "zfnet"]
CASES = [*((name, "torchscript") for name in cnnzoo.list_models()),
         *((name, "dynamo") for name in sorted(set(FAMILY_SMALLEST) | set(WITH_LRN)))]


@pytest.mark.parametrize("name, exporter", [
    pytest.param(n, e, marks=[pytest.mark.slow] if is_slow(n) else [], id=f"{n}-{e}") for n, e in CASES
])
def test_every_model_exports_to_onnx_and_onnxruntime_matches_pytorch(name, exporter, tmp_path):
    out = tmp_path / f"{name}.onnx"
    r = cnnzoo.export(name, out=out, exporter=exporter)  # its native input, dynamic batch, verified at batch 1 and 3
    try:
        assert r.path == out and out.is_file() and r.format == "onnx"
        assert r.exporter == exporter, f"{name}: {r.note}"
        assert r.batch_sizes == (1, 3) and r.max_rel_diff <= 1e-4, (r.max_abs_diff, r.max_rel_diff)
        assert r.metadata["input_size"] == list(cnnzoo.model_info(name).input_size)
        net = cnnzoo.create_model(name)
        modules = [(m.size, m.alpha, m.beta, m.k) for m in net.modules() if isinstance(m, nn.LocalResponseNorm)]
        if name in ("alexnet", "googlenet"):
            assert modules, f"{name} is expected to use LRN"
        nodes = _lrn_nodes(out)
        assert len(nodes) == len(modules), "every LRN layer is one ONNX LRN node"
        for (size, alpha, beta, bias), (m_size, m_alpha, m_beta, m_k) in zip(nodes, modules):
            assert size == m_size and bias == pytest.approx(m_k)
            assert alpha == pytest.approx(m_alpha, rel=1e-6) and beta == pytest.approx(m_beta)
    finally:
        out.unlink(missing_ok=True)  # the VGGs are half a gigabyte each


def test_dynamic_batch_runs_at_1_and_3(tmp_path):
    r = cnnzoo.export("resnet20", out=tmp_path / "r20.onnx")
    dim = onnx.load(str(r.path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param and not dim.dim_value, "the batch dimension is symbolic"
    ort = OnnxNet(r.path)
    x = torch.randn(3, 3, 32, 32)
    single = torch.cat([ort(x[i:i + 1]) for i in range(3)])  # batch 1, three times
    assert single.shape == ort(x).shape == (3, 10)
    torch.testing.assert_close(ort(x), single, rtol=1e-4, atol=1e-5)


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


@pytest.mark.parametrize("name", FAMILY_SMALLEST)
def test_pt2_one_per_family(name, tmp_path):
    size = max(cnnzoo.model_info(name).test_size, 32)
    r = cnnzoo.export(name, format="pt2", out=tmp_path / f"{name}.pt2", image_size=size)
    assert r.exporter == "torch.export" and r.max_rel_diff <= 1e-4 and r.batch_sizes == (1, 3)
    program = torch.export.load(r.path)  # runs without cnnzoo's classes: no custom operator inside
    assert program.module()(torch.randn(2, 3, size, size)).shape == (2, cnnzoo.model_info(name).num_classes)
    assert read_metadata(r.path)["input_size"] == [3, size, size]


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
    nodes = _lrn_nodes(r.path)
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

"""cnnzoo eval / ensemble / predict: metrics that agree with the trainer's, test-time augmentation, ensembles."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.evaluation import TestTimeAugmentation, eval_data, load_trained
from cnnzoo.training import train
from cnnzoo.checkpoint import read_weights_metadata, save_weights
from cnnzoo.data import make_loader
from cnnzoo.weights import WeightsError

QUIET = dict(progress=False, log=None, device="cpu", image_size=8, epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two architectures on the same classes (synthetic, 64 train / 16 val images at 8x8), and one whose recipe
    evaluates through a larger view (AlexNet's 256 -> 224 at 8 px: eval resize 9), for 10-crop."""
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    out = {}
    for key, model, recipe in (("resnet", "resnet20", None), ("nin", "nin_cifar", "quick"),
                               ("alex", "resnet20", "alexnet")):
        out[key] = train(model, data="synthetic:64", recipe=recipe, out=root / key, **QUIET)
    return out


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_eval_reproduces_the_runs_validation_and_writes_json_and_csv(runs, tmp_path, capsys):
    run = runs["resnet"]
    assert main(["eval", "resnet20", "--weights", str(run.out), "--json", str(tmp_path / "e.json"),
                 "--confusion", str(tmp_path / "c.csv")]) == 0
    printed = capsys.readouterr().out
    assert "top-1:" in printed and "top-5:" in printed and "per-class accuracy" in printed
    report = _json(tmp_path / "e.json")
    s = run.summary
    assert report["count"] == run.history[-1]["val_count"] == 16
    assert report["top1"] == pytest.approx(s["final_val_top1"], abs=1e-9)
    assert report["top5"] == pytest.approx(s["final_val_top5"], abs=1e-9)
    assert report["top1_error"] == pytest.approx(100 - report["top1"])
    assert report["loss"] == pytest.approx(run.history[-1]["val_loss"], rel=1e-6)
    assert report["weights"].endswith("best.safetensors") and report["tta"] == "none"
    confusion = np.array(report["confusion"])
    per_class = report["per_class"]
    assert sum(c["count"] for c in per_class.values()) == 16 == confusion.sum()
    for i, name in enumerate(report["classes"]):
        expected = 100 * confusion[i, i] / confusion[i].sum() if confusion[i].sum() else None
        assert per_class[name]["accuracy"] == (pytest.approx(expected) if expected is not None else None)
    assert report["top1"] == pytest.approx(100 * np.trace(confusion) / 16)
    rows = list(csv.reader((tmp_path / "c.csv").open()))
    assert rows[0][1:] == report["classes"] and np.array([r[1:] for r in rows[1:]], dtype=int).tolist() == \
        report["confusion"]
    # the training state and the last weights are the same network (one epoch: best == last)
    for name in ("last.pt", "last.safetensors"):
        assert main(["eval", "--weights", str(run.out / name), "--json", str(tmp_path / "x.json")]) == 0
        assert _json(tmp_path / "x.json")["top1"] == report["top1"]


def _recorder():
    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.seen = []

        def forward(self, x):
            self.seen.append(x.clone())
            return x.flatten(1)[:, :3] * torch.tensor([1.0, -2.0, 0.5])

    return Recorder()


def test_ten_crop_is_four_corners_centre_and_their_mirrors():
    x = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    net = _recorder()
    out = TestTimeAugmentation(net, "10crop", size=2)(x)
    crops = [x[..., t : t + 2, l : l + 2] for t, l in ((0, 0), (0, 2), (2, 0), (2, 2), (1, 1))]
    expected = crops + [c.flip(3) for c in crops]
    assert len(net.seen) == 10 and all(torch.equal(a, b) for a, b in zip(net.seen, expected))
    probs = torch.stack([torch.softmax(net.forward(v), 1) for v in expected]).mean(0)
    assert torch.allclose(out, probs.log(), atol=1e-6)
    net.seen.clear()
    flip = TestTimeAugmentation(net, "flip")(x)
    assert torch.equal(net.seen[1], x.flip(3))
    assert torch.allclose(flip.exp(), (torch.softmax(net.forward(x), 1) + torch.softmax(net.forward(x.flip(3)), 1)) / 2)


def test_eval_with_test_time_augmentation(runs, tmp_path, capsys):
    alex = runs["alex"]
    assert json.loads((alex.out / "config.json").read_text())["eval_resize"] == 9
    for tta in ("flip", "10crop"):
        assert main(["eval", "--weights", str(alex.out), "--tta", tta, "--json", str(tmp_path / f"{tta}.json")]) == 0
        report = _json(tmp_path / f"{tta}.json")
        assert report["tta"] == tta and report["count"] == 16 and 0 <= report["top1"] <= report["top5"] <= 100
    # 10-crop by hand: the 9x9 evaluation view, its corners and centre at 8x8, and their mirrors
    trained = load_trained(alex.out)
    data = eval_data(trained, None)
    loader = make_loader(data, "val", geo=trained.geometry(9), batch_size=16, device=torch.device("cpu"), seed=0)
    (x, y), = list(loader.epoch(0))
    with torch.no_grad():
        views = [x[..., t : t + 8, l : l + 8] for t, l in ((0, 0), (0, 1), (1, 0), (1, 1), (0, 0))]
        probs = torch.stack([torch.softmax(trained.net(v), 1) for v in views + [v.flip(3) for v in views]]).mean(0)
    assert _json(tmp_path / "10crop.json")["top1"] == pytest.approx(100 * (probs.argmax(1) == y).float().mean().item())
    # a network evaluated at its full view has nothing to crop from
    assert main(["eval", "--weights", str(runs["resnet"].out), "--tta", "10crop"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "use --tta flip" in err


def _member_probs(run) -> tuple[torch.Tensor, torch.Tensor]:
    trained = load_trained(run.out)
    data = eval_data(trained, None)
    loader = make_loader(data, "val", geo=trained.geometry(), batch_size=64, device=torch.device("cpu"), seed=0)
    (x, y), = list(loader.epoch(0))
    with torch.no_grad():
        return torch.softmax(trained.net(x), 1), y


def test_ensemble_averages_the_members_softmax(runs, tmp_path, capsys):
    members = [str(runs["resnet"].out), str(runs["nin"].out)]
    assert main(["ensemble", *members, "--json", str(tmp_path / "ens.json")]) == 0
    printed = capsys.readouterr().out
    assert "ensemble of 2 (mean softmax)" in printed and "resnet20" in printed and "nin_cifar" in printed
    report = _json(tmp_path / "ens.json")
    for row, run in zip(report["members"], (runs["resnet"], runs["nin"])):
        assert row["top1"] == pytest.approx(run.summary["final_val_top1"], abs=1e-9)
        assert row["top5"] == pytest.approx(run.summary["final_val_top5"], abs=1e-9)
    (p1, y), (p2, _) = _member_probs(runs["resnet"]), _member_probs(runs["nin"])
    mean = (p1 + p2) / 2
    e = report["ensemble"]
    assert e["count"] == 16
    assert e["top1"] == pytest.approx(100 * (mean.argmax(1) == y).float().mean().item())
    assert e["top5"] == pytest.approx(100 * (mean.topk(5, 1).indices == y[:, None]).any(1).float().mean().item())
    assert e["loss"] == pytest.approx(torch.nn.functional.nll_loss(mean.log(), y).item(), rel=1e-5)
    # an ensemble of one network and its copy is that network (the same file twice is refused: test_runs_and_lengths)
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes((runs["resnet"].out / "best.safetensors").read_bytes())
    assert main(["ensemble", members[0], str(copy), "--json", str(tmp_path / "same.json")]) == 0
    same = _json(tmp_path / "same.json")["ensemble"]
    assert same["top1"] == report["members"][0]["top1"] and same["loss"] == pytest.approx(
        report["members"][0]["loss"], rel=1e-5)


def test_ensemble_refuses_members_trained_on_other_classes(runs, tmp_path, capsys):
    from safetensors.torch import load_file

    source = runs["resnet"].out / "best.safetensors"
    meta = {k: v for k, v in read_weights_metadata(source).items() if k != "format"}
    renamed = tmp_path / "renamed.safetensors"
    save_weights(renamed, load_file(str(source)), {**meta, "classes": [f"c{i}" for i in range(10)]})
    assert main(["ensemble", str(source), str(renamed), "--json", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other classes" in err and "'c0' vs '0'" in err
    assert not (tmp_path / "x.json").exists()


def test_predict_top_k_with_the_checkpoints_class_names(runs, tmp_path, capsys):
    run = runs["resnet"]
    trained = load_trained(run.out)
    data = eval_data(trained, None)
    images = data.val.images[:3]
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(paths[-1])
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(40))
    folder = tmp_path / "more"
    folder.mkdir()
    Image.fromarray(images[0].permute(1, 2, 0).numpy()).save(folder / "again.png")
    argv = ["predict", "--weights", str(run.out), *map(str, paths), str(tmp_path / "broken.png"), str(folder),
            "--top-k", "3", "--json", str(tmp_path / "p.json")]
    assert main(argv) == 1, "an unreadable image makes the exit status 1; the others are still predicted"
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if not line.startswith("cnnzoo: warning: ")]
    assert "broken.png" in captured.err and len(errors) == 1 and "UserWarning" not in captured.err
    assert captured.out.count("\n") == 4 and "img0.png: " in captured.out
    results = _json(tmp_path / "p.json")["predictions"]
    assert [Path(r["image"]).name for r in results] == ["img0.png", "img1.png", "img2.png", "broken.png", "again.png"]
    loader = make_loader(data, "val", geo=trained.geometry(), batch_size=3, device=torch.device("cpu"), seed=0)
    x, _ = next(iter(loader.epoch(0)))
    with torch.no_grad():
        expected = torch.softmax(trained.net(x), 1)
    for r, p in zip(results[:3], expected):
        top = p.topk(3)
        assert [t["class"] for t in r["top"]] == [data.classes[i] for i in top.indices.tolist()]
        assert [t["probability"] for t in r["top"]] == pytest.approx(top.values.tolist(), abs=1e-6)
    assert results[4]["top"] == results[0]["top"] and "error" in results[3]


def test_eval_on_a_folder_with_some_of_the_classes(runs, tmp_path, capsys):
    rs = np.random.RandomState(0)
    for cls in ("3", "7"):
        for i in range(3):
            (tmp_path / "f" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rs.randint(0, 255, (10, 12, 3), dtype=np.uint8)).save(tmp_path / "f" / cls / f"{i}.png")
    assert main(["eval", "--weights", str(runs["resnet"].out), "--data", str(tmp_path / "f"), "--split", "all",
                 "--json", str(tmp_path / "f.json")]) == 0
    report = _json(tmp_path / "f.json")
    assert report["count"] == 6 and report["classes"] == [str(i) for i in range(10)]
    assert {k: v["count"] for k, v in report["per_class"].items() if v["count"]} == {"3": 3, "7": 3}
    (tmp_path / "f" / "cat").mkdir()
    Image.fromarray(rs.randint(0, 255, (10, 12, 3), dtype=np.uint8)).save(tmp_path / "f" / "cat" / "0.png")
    assert main(["eval", "--weights", str(runs["resnet"].out), "--data", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "classes cat are not among the 10 classes" in err


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_eval_refuses_wrong_or_unsafe_checkpoints(runs, tmp_path, capsys):
    run = runs["resnet"].out
    cases = {  # argv -> text the one-line message must contain
        ("eval", "resnet32", "--weights", str(run)): "a checkpoint of resnet20, not resnet32",
        ("eval", "resnet21", "--weights", str(run)): "did you mean",
        ("eval", "--weights", str(tmp_path / "nothing")): "no such checkpoint",
        ("predict", "--weights", str(run), str(tmp_path / "none.png")): "no such image file",
    }
    payload = _Payload()
    payload.sentinel = tmp_path / "PWNED"
    torch.save({"fc.weight": payload}, tmp_path / "evil.pt")
    cases[("eval", "resnet20", "--weights", str(tmp_path / "evil.pt"))] = "refused"
    cut = tmp_path / "cut.safetensors"
    data = (run / "best.safetensors").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    cases[("eval", "--weights", str(cut))] = "cut.safetensors"
    for argv, text in cases.items():
        assert main(list(argv)) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and text in err, (argv, err)
    assert not payload.sentinel.exists()
    # a plain state dict (no metadata): the model is named, the data's classes are taken in output order
    torch.save(cnnzoo.create_model("resnet20", weights=run / "best.safetensors").state_dict(), tmp_path / "plain.pt")
    assert main(["eval", "--weights", str(tmp_path / "plain.pt"), "--data", "synthetic:64"]) == 2
    assert "name it" in capsys.readouterr().err
    assert main(["eval", "resnet20", "--weights", str(tmp_path / "plain.pt"), "--data", "synthetic:64",
                 "--json", str(tmp_path / "plain.json")]) == 0
    # resnet20 defaults to 32 px and ImageNet statistics without metadata: a different view, but every image counted
    assert _json(tmp_path / "plain.json")["count"] == 16
    for cls in ("a", "b"):
        (tmp_path / "two" / cls).mkdir(parents=True)
        for i in range(5):  # enough for a validation split of each class
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "two" / cls / f"{i}.png")
    assert main(["eval", "resnet20", "--weights", str(tmp_path / "plain.pt"), "--data", str(tmp_path / "two")]) == 2
    assert "2 classes, but" in capsys.readouterr().err
    with pytest.raises(WeightsError, match=r"shape mismatch at head\.fc\.weight: \(10, 64\) vs \(7, 64\)"):
        cnnzoo.create_model("resnet20", num_classes=7, weights=run / "best.safetensors")
    assert math.isfinite(_json(tmp_path / "plain.json")["loss"])

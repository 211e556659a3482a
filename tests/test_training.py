"""Training: recipes, schedules, data (digits, image folders, CIFAR format), the loop, checkpoints and resume."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.errors import UserError
from cnnzoo.training import RECIPES, Recipe, load_data, load_state, parse_overrides, read_weights_metadata, train
from cnnzoo.training import trainer as trainer_module
from cnnzoo.data.augment import augment_batch, pad_crop_batch, resample_batch, rng
from cnnzoo.data.cifar import CifarFormatError
from cnnzoo.data import make_loader
from cnnzoo.training.schedules import Plateau, lr_at
from conftest import profile
from children import next_line

ALL = cnnzoo.list_models()
SRC = str(Path(cnnzoo.__file__).resolve().parents[1])


def _quiet(**kwargs):
    return dict(progress=False, log=None, device="cpu", **kwargs)


# --- recipes ------------------------------------------------------------------------------------------------------


def test_every_model_has_a_recipe():
    missing = {n: cnnzoo.model_info(n).recipe for n in ALL if cnnzoo.model_info(n).recipe not in RECIPES}
    assert not missing


def test_recipes_cite_their_source_and_match_the_papers():
    for recipe in RECIPES.values():
        assert len(recipe.source) > 40, recipe.name
    r = RECIPES["resnet_cifar"]  # He et al. 2016 §4.2
    assert (r.lr, r.batch_size, r.weight_decay, r.momentum) == (0.1, 128, 1e-4, 0.9)
    assert (r.milestones_iterations, r.iterations, r.gamma) == ((32_000, 48_000), 64_000, 0.1)
    w = RECIPES["wrn_cifar"]  # Zagoruyko & Komodakis 2016
    assert (w.nesterov, w.gamma, w.milestones_epochs, w.epochs) == (True, 0.2, (60, 120, 160), 200)
    assert (w.weight_decay, w.batch_size) == (5e-4, 128)
    a = RECIPES["alexnet"]  # Krizhevsky et al. 2012 / the lecture
    assert (a.lr, a.momentum, a.weight_decay, a.batch_size, a.schedule, a.pca_lighting) == (
        0.01, 0.9, 5e-4, 128, "plateau", 0.1)
    assert RECIPES["googlenet"].aux_loss_weight == 0.3


def test_set_overrides_are_typed_and_validated():
    got = parse_overrides(["lr=0.05", "milestones_epochs=30,60", "nesterov=yes", "epochs=90", "iterations=none"])
    assert got == {"lr": 0.05, "milestones_epochs": (30.0, 60.0), "nesterov": True, "epochs": 90, "iterations": None}
    assert isinstance(got["epochs"], int)
    with pytest.raises(UserError, match="did you mean lr"):
        parse_overrides(["lrr=0.1"])
    with pytest.raises(UserError, match="weight_decay"):
        parse_overrides(["weight_decy=0.1"])
    for bad in ("lr=fast", "nesterov=maybe", "epochs=1.5", "short_side_range_px=256", "batch_size"):
        with pytest.raises(UserError):
            parse_overrides([bad])
    with pytest.raises(UserError, match="schedule must be"):
        RECIPES["quick"].replace(**parse_overrides(["schedule=linear"]))


def test_cli_set_errors_are_one_line_exit_2(capsys, tmp_path):
    assert main(["train", "resnet20", "--set", "lrr=0.1", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean lr" in err
    assert main(["train", "resnet20", "--recipe", "resnet_cifr", "--out", str(tmp_path / "b")]) == 2
    assert "resnet_cifar" in capsys.readouterr().err
    assert main(["train", "resnet20", "--set", "lr=abc", "--out", str(tmp_path / "c")]) == 2
    assert main(["train", "resnet20", "--image-size", "4", "--out", str(tmp_path / "d")]) == 2
    assert not any((tmp_path / d).exists() for d in "abcd"), "a rejected command must not create its run folder"
    assert main(["recipes"]) == 0 and "wrn_cifar" in capsys.readouterr().out
    assert main(["recipes", "wrn_cifar"]) == 0 and "Zagoruyko" in capsys.readouterr().out


# --- schedules ----------------------------------------------------------------------------------------------------


def test_resnet_cifar_schedule_divides_by_10_at_32k_and_48k():
    r = RECIPES["resnet_cifar"]
    lrs = [lr_at(s, r, steps_per_epoch=391, total_steps=64_000) for s in (0, 31_999, 32_000, 47_999, 48_000, 63_999)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_wrn_schedule_and_fraction_milestones():
    r = RECIPES["wrn_cifar"]
    spe = 100
    got = [lr_at(e * spe, r, steps_per_epoch=spe, total_steps=200 * spe) for e in (0, 59, 60, 120, 160, 199)]
    assert got == pytest.approx([0.1, 0.1, 0.02, 0.004, 0.0008, 0.0008])
    d = RECIPES["densenet_cifar"]  # /10 at 50% and 75% of the run, whatever its length
    got = [lr_at(s, d, steps_per_epoch=10, total_steps=1000) for s in (499, 500, 749, 750)]
    assert got == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_cosine_poly_step_and_warmup():
    q = RECIPES["quick"]  # 1-epoch linear warm-up, then cosine to 0
    assert lr_at(0, q, steps_per_epoch=10, total_steps=100) == pytest.approx(0.01)
    assert lr_at(9, q, steps_per_epoch=10, total_steps=100) == pytest.approx(0.1)
    assert lr_at(10, q, steps_per_epoch=10, total_steps=100) == pytest.approx(0.1)
    assert lr_at(55, q, steps_per_epoch=10, total_steps=100) == pytest.approx(0.05)
    assert lr_at(100, q, steps_per_epoch=10, total_steps=100) == pytest.approx(0.0, abs=1e-12)
    s = RECIPES["squeezenet"]  # Caffe "poly", power 1: linear to zero
    assert lr_at(85_000, s, steps_per_epoch=10, total_steps=170_000) == pytest.approx(0.02)
    g = RECIPES["googlenet"]  # x0.96 every 8 epochs
    assert lr_at(16 * 50, g, steps_per_epoch=50, total_steps=10**6) == pytest.approx(0.01 * 0.96**2)
    he = RECIPES["resnet_cifar"].replace(warmup_iterations=400, warmup="constant", warmup_start_lr=0.01)
    assert lr_at(399, he, steps_per_epoch=391, total_steps=64_000) == 0.01
    assert lr_at(400, he, steps_per_epoch=391, total_steps=64_000) == 0.1


def test_plateau_divides_by_10_at_most_max_reductions_times():
    p = Plateau(factor=0.1, patience=2, threshold=0.1, max_reductions=2)
    reduced = [p.step(v) for v in (50, 60, 60.05, 59, 61, 61, 61, 61, 61, 61, 61)]
    assert reduced == [False, False, False, True, False, False, True, False, False, False, False]
    assert p.lr_factor == pytest.approx(0.01)
    clone = Plateau()
    clone.load_state_dict(p.state_dict())
    assert clone == p


# --- augmentation -------------------------------------------------------------------------------------------------


def test_pad_crop_is_an_exact_shift_and_boxes_resample_exactly():
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    geo = RECIPES["resnet_cifar"].geometry(8)  # pad 4 at 32 px -> 1 at 8 px
    assert geo.pad == 1
    y = pad_crop_batch(x, geo, rng(1))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(6):  # every output is some 8x8 window of the zero-padded input
        windows = [padded[i, :, a : a + 8, b : b + 8] for a in range(3) for b in range(3)]
        assert any(torch.equal(y[i], w) for w in windows)
    full = torch.tensor([[0.0, 0.0, 8.0, 8.0]]).expand(6, 4)
    same = resample_batch(x, full, torch.zeros(6, dtype=torch.bool), 8)
    assert torch.allclose(same, x.float(), atol=1e-3)
    flipped = resample_batch(x, full, torch.ones(6, dtype=torch.bool), 8)
    assert torch.allclose(flipped, x.flip(3).float(), atol=1e-3)


@pytest.mark.parametrize("recipe", ["alexnet", "vgg", "googlenet", "resnet_cifar", "wrn_cifar", "quick"])
def test_batched_augmentation_shapes_and_replay(recipe):
    x = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    geo = RECIPES[recipe].geometry(24)
    a, b = augment_batch(x, geo, rng(0, 3, 7)), augment_batch(x, geo, rng(0, 3, 7))
    assert a.shape == (4, 3, 24, 24) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b), "same (seed, epoch, step), same augmentation"


def test_pad_crop_trains_on_the_validation_geometry_of_a_non_square_image(tmp_path):
    """Bug 2: under pad_crop, training squashed a non-square image to a square (the batched path and the image
    folder path) while validation resized the short side and centre-cropped. Both now crop; training shifts."""
    from cnnzoo.data import FileSource
    from cnnzoo.data.augment import resize_center_crop
    from cnnzoo.data.folder import FolderDataset

    recipe = RECIPES["resnet_cifar"].replace(flip=False)
    rs = np.random.RandomState(0)
    img = torch.from_numpy(rs.randint(0, 256, (3, 6, 10), dtype=np.uint8))  # 6 rows, 10 columns
    still = recipe.replace(pad_px=0).geometry(12)  # no shift: training must see exactly the validation view
    val_view = resize_center_crop(img, recipe.eval_geometry(12))
    assert val_view.shape == (3, 12, 12)
    assert torch.allclose(augment_batch(img[None], still, rng(0))[0], val_view, atol=1e-3)  # resident data
    path = tmp_path / "wide.png"
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
    source = FileSource([str(path)], [0])
    val_img, _ = FolderDataset(source, recipe.eval_geometry(12), channels=3, train=False, seed=0)[0]
    train_img, _ = FolderDataset(source, still, channels=3, train=True, seed=0)[0]
    assert torch.equal(train_img, val_img)  # image folders
    # with the recipe's padding (4 px at 32 -> 2 px at 12) every training view is the validation view shifted
    shifted = recipe.geometry(12)
    assert shifted.pad == 2
    for seed in range(4):
        out = augment_batch(img[None], shifted, rng(seed))[0]
        matches = [torch.allclose(out[:, max(0, -a) : 12 - max(0, a), max(0, -b) : 12 - max(0, b)],
                                  val_view[:, max(0, a) : 12 + min(0, a), max(0, b) : 12 + min(0, b)], atol=1e-3)
                   for a in range(-2, 3) for b in range(-2, 3)]
        assert any(matches)


# --- data ---------------------------------------------------------------------------------------------------------


def test_digits_split_is_deterministic_and_stratified():
    d = load_data("digits", image_size=16)
    assert len(d.train) + len(d.val) == 1797 and d.classes == tuple("0123456789")
    assert d.train.images.shape[1:] == (3, 16, 16) and d.train.images.dtype == torch.uint8
    counts = torch.bincount(d.val.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    again = load_data("digits", image_size=16)
    assert torch.equal(again.val.labels, d.val.labels) and torch.equal(again.val.images, d.val.images)
    gray = load_data("digits", image_size=8, in_channels=1)
    assert gray.train.images.shape[1:] == (1, 8, 8)


def _save(img: Image.Image, path: Path, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)


def _image_tree(root: Path) -> None:
    rs = np.random.RandomState(0)
    for split, n in (("train", 3), ("val", 1)):
        for cls in ("cat", "dog"):
            for i in range(n):
                rgb = Image.fromarray(rs.randint(0, 255, (20 + i, 30, 3), dtype=np.uint8))
                d = root / split / cls
                _save(rgb, d / f"rgb{i}.jpg")
                _save(rgb.convert("L"), d / f"gray{i}.png")
                _save(rgb.convert("RGBA"), d / f"rgba{i}.png")
                _save(rgb.convert("CMYK"), d / f"cmyk{i}.jpg")
                _save(rgb.convert("P"), d / f"palette{i}.png")
                _save(rgb.convert("LA"), d / f"la{i}.png")
                _save(rgb, d / f"bitmap{i}.bmp")  # decoded through PIL
                _save(Image.fromarray(rs.randint(0, 65535, (12, 12)).astype(np.uint16)), d / f"deep{i}.png")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0" * 10)
    (root / "train" / "cat" / "._rgb0.jpg").write_bytes(b"AppleDouble")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "dog" / "broken.png").write_bytes(b"not a png at all")
    (root / "train" / ".git").mkdir()


def test_image_folder_every_mode_decodes_to_the_model_channels(tmp_path):
    _image_tree(tmp_path)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        data = load_data(str(tmp_path), image_size=16, in_channels=3)
    assert data.classes == ("cat", "dog")
    assert len(data.train) == 2 * 3 * 8 and len(data.val) == 2 * 8
    assert data.skipped_files == [str(tmp_path / "train" / "dog" / "broken.png")]
    for channels in (3, 1):
        with pytest.warns(UserWarning, match="broken.png"):
            data = load_data(str(tmp_path), image_size=16, in_channels=channels)
        for split, recipe in (("train", "alexnet"), ("train", "quick"), ("val", "alexnet")):
            geo = RECIPES[recipe].geometry(16)
            loader = make_loader(data, split, geo=geo, batch_size=8, device=torch.device("cpu"), seed=0)
            batches = list(loader.epoch(0))
            assert sum(len(y) for _, y in batches) == (48 if split == "train" else 16)
            for x, _ in batches:
                assert x.shape[1:] == (channels, 16, 16) and torch.isfinite(x).all()


def test_image_folder_single_tree_split_and_training(tmp_path):
    rs = np.random.RandomState(1)
    for cls in ("a", "b", "c"):
        for i in range(10):
            _save(Image.fromarray(rs.randint(0, 255, (12, 12, 3), dtype=np.uint8)), tmp_path / cls / f"{i}.png")
    one = load_data(str(tmp_path), image_size=8, val_fraction=0.3)
    two = load_data(str(tmp_path), image_size=8, val_fraction=0.3)
    assert one.val.paths == two.val.paths and len(one.val) == 9 and len(one.train) == 21
    assert not set(one.val.paths) & set(one.train.paths)
    result = train("resnet20", data=str(tmp_path), image_size=8, epochs=1, batch_size=8, workers=0,
                   out=tmp_path / "run", val_fraction=0.3, **_quiet())
    assert result.summary["final_val_top1"] is not None and result.history[0]["val_count"] == 9


def _cifar_folder(root: Path, *, protocol: int, hundred: bool = False, per_batch: int = 6) -> Path:
    rs = np.random.RandomState(2)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    label_key = "fine_labels" if hundred else "labels"

    def batch(name: str, n: int) -> dict:
        return {b"batch_label": name.encode(), label_key.encode(): [int(v) for v in rs.randint(0, 10, n)],
                b"data": rs.randint(0, 256, (n, 3072)).astype(np.uint8),
                b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}

    names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    for name in names:
        (folder / name).write_bytes(pickle.dumps(batch(name, per_batch * (5 if hundred else 1)), protocol=protocol))
    (folder / ("test" if hundred else "test_batch")).write_bytes(pickle.dumps(batch("test", 4), protocol=protocol))
    meta_key = b"fine_label_names" if hundred else b"label_names"
    meta = {meta_key: [f"class{i}".encode() for i in range(100 if hundred else 10)], b"num_vis": 3072}
    (folder / ("meta" if hundred else "batches.meta")).write_bytes(pickle.dumps(meta, protocol=protocol))
    return folder


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_format_loads_the_real_layout(tmp_path, protocol):
    folder = _cifar_folder(tmp_path, protocol=protocol)
    data = load_data(f"cifar10:{tmp_path}", image_size=32)
    assert len(data.train) == 30 and len(data.val) == 4 and data.classes[3] == "class3"
    raw = pickle.loads((folder / "data_batch_1").read_bytes())  # our own file: safe to unpickle here
    first = torch.from_numpy(raw[b"data"][0]).view(3, 32, 32)  # 1024 R, 1024 G, 1024 B
    assert torch.equal(data.train.images[0], first)
    assert data.train.labels[:6].tolist() == raw[b"labels"]
    hundred = _cifar_folder(tmp_path / "c100", protocol=protocol, hundred=True)
    data = load_data(f"cifar100:{hundred}", image_size=32)  # the folder itself is accepted too
    assert len(data.classes) == 100 and len(data.train) == 30


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_cifar_malicious_pickle_is_refused_and_nothing_runs(tmp_path, capsys):
    folder = _cifar_folder(tmp_path, protocol=2)
    sentinel = tmp_path / "PWNED"
    payload = _Payload()
    payload.sentinel = sentinel
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": payload, b"labels": [1]}))
    with pytest.raises(CifarFormatError, match=r"data_batch_3: not a CIFAR-format batch, refused .*(posix|nt)\.system"):
        load_data(f"cifar10:{tmp_path}", image_size=32)
    assert not sentinel.exists()
    # numpy globals that a real batch never uses are refused as well
    evil = pickle.dumps(np.load)
    (folder / "data_batch_3").write_bytes(evil)
    with pytest.raises(CifarFormatError, match="refused global numpy"):
        load_data(f"cifar10:{tmp_path}", image_size=32)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.float64), b"labels": [0, 1]}))
    with pytest.raises(CifarFormatError, match="uint8 array"):
        load_data(f"cifar10:{tmp_path}", image_size=32)
    payload_cli = pickle.dumps({b"data": payload, b"labels": [1]})
    (folder / "data_batch_3").write_bytes(payload_cli)
    assert main(["train", "resnet20", "--data", f"cifar10:{tmp_path}", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "data_batch_3" in err and "\n" not in err and not sentinel.exists()


# --- the loop -----------------------------------------------------------------------------------------------------


def _behaviour(name: str) -> str:
    """What the trainer must handle differently for this network."""
    if cnnzoo.model_info(name).aux_outputs:
        return "auxiliary heads"  # a tuple of logits in training mode, their losses weighted by the recipe
    if profile(name).skips_layers:
        return "layer-skipping"  # parameters of dropped blocks get no gradient in a step
    if profile(name).conv_head:
        return "all-conv head"  # no fully connected layer (NiN, SqueezeNet)
    return "plain classifier"


BEHAVIOURS = ("plain classifier", "auxiliary heads", "layer-skipping", "all-conv head")
CHEAPEST = {}  # behaviour -> the registered network with it that costs least (conftest's estimate)
for _name in sorted(ALL, key=lambda n: (profile(n).seconds, n)):
    CHEAPEST.setdefault(_behaviour(_name), _name)


@pytest.mark.parametrize("behaviour", [pytest.param(b, id=f"{b}: {CHEAPEST.get(b)}") for b in BEHAVIOURS])
def test_each_kind_of_network_trains_two_steps_with_its_recipe(behaviour, tmp_path):
    """Two SGD steps on synthetic data at the smallest input, batch 2, with the network's default recipe: one run per
    behaviour the trainer handles (fine-tuning: tests/test_finetune.py); every network's forward and backward is
    tests/test_models.py's."""
    assert set(CHEAPEST) == set(BEHAVIOURS), CHEAPEST
    name = CHEAPEST[behaviour]
    info = cnnzoo.model_info(name)
    size = info.test_size
    data = load_data("synthetic:4", image_size=size, num_classes=info.num_classes)
    model = cnnzoo.create_model(name)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    result = train(model, model_name=name, data=data, recipe=info.recipe, image_size=size, batch_size=2, epochs=1,
                   out=tmp_path, checkpoints=False, **_quiet())
    row = result.history[0]
    # the loss of the two training steps; validation after two batch-2 steps is not asserted (batch-norm running
    # statistics from 4 random images can send a 1000-layer net's eval logits to inf)
    assert row["train_images"] == 4 and math.isfinite(row["train_loss"])
    after = dict(model.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    changed = sum(not torch.equal(before[k], after[k]) for k in before)
    assert changed >= len(before) / 2, f"{name}: only {changed} of {len(before)} parameter tensors changed"


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_trains_two_steps(recipe, tmp_path):
    """Each recipe's augmentation, schedule and optimizer through the trainer, on ResNet-20 at 8 px (the recipes'
    networks themselves: the runs above and tests/test_models.py)."""
    data = load_data("synthetic:4", image_size=8, num_classes=10)
    result = train("resnet20", data=data, recipe=recipe, image_size=8, batch_size=2, epochs=1, out=tmp_path,
                   checkpoints=False, **_quiet())
    row = result.history[0]
    assert row["train_images"] == 4 and math.isfinite(row["train_loss"]) and row["lr"] > 0
    assert json.loads((tmp_path / "config.json").read_text())["recipe"]["name"] == recipe


METRIC_FIELDS = {"epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "images_per_s",
                 "seconds"}
SUMMARY_FIELDS = {"model", "recipe", "data", "epochs", "best_val_top1", "best_val_top5", "final_val_top1",
                  "final_val_top5", "train_seconds", "images_per_s", "skipped_files", "seed", "cnnzoo_version",
                  "torch_version", "git_commit"}


def test_cli_train_digits_writes_every_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "resnet20", "--data", "digits", "--epochs", "3", "--image-size", "8", "--out", str(out)]) == 0
    assert "val top-1" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"metrics.jsonl", "summary.json", "config.json", "confusion_matrix.csv", "last.safetensors",
            "best.safetensors", "last.pt", "previous.pt"} <= names
    assert not [n for n in names if ".tmp" in n]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and all(METRIC_FIELDS <= set(r) for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_FIELDS <= set(summary) and summary["epochs"] == 3 and summary["model"] == "resnet20"
    assert summary["final_val_top1"] == rows[-1]["val_top1"] and summary["recipe"] == "quick"  # digits' default
    assert summary["best_val_top1"] == max(r["val_top1"] for r in rows) and summary["skipped_files"] == []
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"] == {**RECIPES["quick"].to_dict()} and config["image_size"] == 8
    assert Recipe.from_dict(config["recipe"]) == RECIPES["quick"]
    lines = (out / "confusion_matrix.csv").read_text().splitlines()
    assert lines[0].split(",")[1:] == list("0123456789") and len(lines) == 11
    assert sum(int(v) for line in lines[1:] for v in line.split(",")[1:]) == rows[-1]["val_count"] == 359
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 3 and set(state) >= {"model", "optimizer", "plateau", "rng", "history", "config"}
    meta = read_weights_metadata(out / "best.safetensors")
    assert meta["model"] == "resnet20" and meta["classes"] == list("0123456789") and meta["image_size"] == 8
    model = cnnzoo.create_model("resnet20", weights=out / "last.safetensors")
    assert all(torch.equal(v, state["model"][k]) for k, v in model.state_dict().items())


def _deterministic(rows):
    keys = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5")
    return [{k: r[k] for k in keys} for r in rows]


def test_resume_is_bit_identical_on_cpu(tmp_path, monkeypatch):
    """4 epochs in one go == 1 epoch, SIGTERM, resume; and == a run stopped mid-epoch 3 and resumed."""
    kwargs = dict(data="synthetic:96", image_size=8, epochs=4, batch_size=16,
                  overrides=["plateau_patience_epochs=1", "lr=0.02"], **_quiet())  # nin: dropout + plateau lr
    ref = train("nin_cifar", out=tmp_path / "ref", **kwargs)

    def stop_after_first_epoch(line):
        if line.startswith("epoch   1/"):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(trainer_module.TrainingInterrupted) as info:
        train("nin_cifar", out=tmp_path / "a", **{**kwargs, "log": stop_after_first_epoch})
    assert info.value.exit_code == 143 and load_state(tmp_path / "a" / "last.pt")["epoch"] == 1
    resumed = train("nin_cifar", resume=tmp_path / "a", **_quiet())

    calls = {"n": 0}
    real_lr_at = trainer_module.lr_at

    def signal_at_step_15(*args, **kw):  # 6 steps per epoch: step 15 is in epoch 3
        calls["n"] += 1
        if calls["n"] == 15:
            os.kill(os.getpid(), signal.SIGINT)
        return real_lr_at(*args, **kw)

    monkeypatch.setattr(trainer_module, "lr_at", signal_at_step_15)
    with pytest.raises(trainer_module.TrainingInterrupted) as info:
        train("nin_cifar", out=tmp_path / "b", **kwargs)
    assert info.value.exit_code == 130
    state = load_state(tmp_path / "b" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (2, 3)
    monkeypatch.setattr(trainer_module, "lr_at", real_lr_at)
    resumed_mid = train("nin_cifar", resume=tmp_path / "b", **_quiet())

    ref_state = ref.model.state_dict()
    for run in (resumed, resumed_mid):
        assert _deterministic(run.history) == _deterministic(ref.history)
        assert ref_state.keys() == run.model.state_dict().keys()
        assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in ref_state.items())
    final = [load_state(tmp_path / d / "last.pt") for d in ("ref", "a", "b")]
    assert final[0]["plateau"] == final[1]["plateau"] == final[2]["plateau"]
    assert final[0]["plateau"]["reductions"] >= 1, "the test should cover a plateau reduction"
    for s in final[1:]:
        for k, v in final[0]["optimizer"]["state"].items():
            assert torch.equal(v["momentum_buffer"], s["optimizer"]["state"][k]["momentum_buffer"])
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def _expect_line(proc: subprocess.Popen, start: str) -> None:
    """The next line starting with ``start`` (a run's header lines come first)."""
    line = next_line(proc)
    for _ in range(20):
        if line.startswith(start) or not line:
            break
        line = next_line(proc)
    if not line.startswith(start):
        proc.kill()
        pytest.fail(f"expected {start!r}, got {line!r}; stderr: {proc.stderr.read()[-2000:]}")


def _python(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_killed_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    proc = _python(f"""
        import io, sys, time, torch
        from cnnzoo.training import train
        real_save, calls = torch.save, []
        def slow_save(obj, f, *args, **kwargs):  # the 2nd training-state write stalls halfway
            calls.append(1)
            if len(calls) == 2:
                buf = io.BytesIO(); real_save(obj, buf, *args, **kwargs)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2]); f.flush()
                print("WRITING", flush=True); time.sleep(600)
            return real_save(obj, f, *args, **kwargs)
        torch.save = slow_save
        train("resnet20", data="synthetic:32", image_size=8, epochs=3, batch_size=16, out=r"{tmp_path}",
              progress=False, log=None, device="cpu")
    """)
    try:
        _expect_line(proc, "WRITING")
        proc.kill()
    finally:
        proc.wait(timeout=60)
    partial = [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert partial, "the kill should have hit the write of the temporary file"
    state = load_state(tmp_path / "last.pt")
    assert state["epoch"] == 1
    resumed = train("resnet20", resume=tmp_path, **_quiet())
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "cnnzoo", "train", "resnet20", "--data", "synthetic:64",
                             "--image-size", "8", "--epochs", "1000", "--batch-size", "16", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _expect_line(proc, "epoch   1/1000")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert "SIGTERM" in err and "--resume" in err and "Traceback" not in err
    state = load_state(tmp_path / "last.pt")
    assert state["epoch"] >= 1
    assert json.loads((tmp_path / "summary.json").read_text())["interrupted"] is True
    # `cnnzoo train --resume DIR` needs no model name; it finishes the run with one metrics line per epoch
    assert main(["train", "--resume", str(tmp_path), "--epochs", str(state["epoch"] + 1)]) == 0
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, state["epoch"] + 2))
    assert main(["train", "resnet56", "--resume", str(tmp_path)]) == 2, "another model cannot resume this run"


def test_same_seed_same_weights_and_googlenet_aux_losses(tmp_path):
    kwargs = dict(data="synthetic:8", epochs=1, batch_size=4, checkpoints=False, **_quiet())
    a = train("nin_cifar", out=tmp_path / "a", image_size=8, **kwargs)  # with dropout: random draws in every step
    b = train("nin_cifar", out=tmp_path / "b", image_size=8, **kwargs)
    c = train("nin_cifar", out=tmp_path / "c", image_size=8, seed=1, **kwargs)
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert not all(torch.equal(v, c.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    aux = train("googlenet", out=tmp_path / "d", image_size=31, **kwargs)
    no_aux = train("googlenet", out=tmp_path / "e", image_size=31, overrides=["aux_loss_weight=0"], **kwargs)
    assert aux.history[0]["train_loss"] > no_aux.history[0]["train_loss"], "aux heads add 0.3 x their losses"


def test_bf16_autocast_and_channels_last_on_cpu(tmp_path):
    result = train("resnet20", data="synthetic:8", image_size=8, epochs=1, batch_size=4, amp="bf16",
                   channels_last=True, out=tmp_path, **_quiet())
    assert math.isfinite(result.history[0]["train_loss"])
    assert json.loads((tmp_path / "config.json").read_text())["amp"] == "bf16"
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        train("resnet20", data="synthetic:8", image_size=8, epochs=1, amp="fp16", out=tmp_path / "x", **_quiet())
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            train("resnet20", data="synthetic:8", image_size=8, epochs=1, out=tmp_path / "y",
                  **{**_quiet(), "device": "cuda"})


def test_evaluate_topk_and_confusion_against_a_hand_computed_case():
    from cnnzoo.training import Data, evaluate
    from cnnzoo.data import TensorSource

    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0], [0, 5, 4, 3, 2, 1], [0, 1, 2, 3, 4, 5], [1, 0, 5, 4, 3, 2]])
    labels = torch.tensor([0, 2, 0, 5])  # top-1 hits: 1; top-5 hits: 0 (yes), 2 (yes), 0 (no, it is last), 5 (yes)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits[x[:, 0, 0, 0].round().long()]

    images = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
    data = Data("fixed", tuple("abcdef"), TensorSource(images, labels), TensorSource(images, labels), 1, (0.0,),
                (1 / 255,))
    loader = make_loader(data, "val", geo=RECIPES["quick"].replace(augment="none").geometry(2),
                         batch_size=3, device=torch.device("cpu"), seed=0)
    got = evaluate(Fixed(), loader, num_classes=6)
    assert got["val_top1"] == pytest.approx(25.0) and got["val_top5"] == pytest.approx(75.0)
    expected = torch.zeros(6, 6, dtype=torch.int64)
    for t, p in zip(labels.tolist(), logits.argmax(1).tolist()):
        expected[t, p] += 1
    assert torch.equal(got["confusion"], expected)
    assert got["val_loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())

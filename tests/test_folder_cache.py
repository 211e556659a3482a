"""Image folders: layouts recognised or refused (one-line errors), decoded once (memory / disk cache), and the
cached run equal to what the streaming path would train on."""

from __future__ import annotations

import io
import json
import os
import re
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.data import load_data
from cnnzoo.data import cache
from cnnzoo.data.cache import hold_folder, stored_side
from cnnzoo.errors import UserError
from cnnzoo.training import TrainingInterrupted, train
from cnnzoo.training.recipes import RECIPES

QUIET = dict(progress=False, log=None, device="cpu", image_size=8, batch_size=8, workers=0)


def _png(rs, path, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rs.randint(0, 255, (*size, 3), dtype=np.uint8)).save(path)


def _folder(root, splits=("train", "val"), classes=("a", "b"), n=6):
    rs = np.random.RandomState(0)
    for split in splits:
        for c in classes:
            for i in range(n):
                _png(rs, root / split / c / f"{i}.png" if split else root / c / f"{i}.png")
    return root


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNZOO_CACHE_DIR", str(tmp_path / "cache"))


# --- layouts --------------------------------------------------------------------------------------------------------


def test_recognised_layouts(tmp_path):
    both = load_data(str(_folder(tmp_path / "tv")), image_size=8)
    assert both.classes == ("a", "b") and (len(both.train), len(both.val)) == (12, 12)
    assert both.layout == "train/ + val/"
    test = load_data(str(_folder(tmp_path / "tt", splits=("train", "test"))), image_size=8)
    assert test.classes == ("a", "b"), "train/ and test/ are splits, not classes"
    assert "test/ used as validation" in test.layout and len(test.val) == 12
    alone = load_data(str(_folder(tmp_path / "t", splits=("train",), n=10)), image_size=8, val_fraction=0.2)
    assert alone.classes == ("a", "b") and (len(alone.train), len(alone.val)) == (16, 4)
    assert "split by --val-fraction" in alone.layout
    flat = load_data(str(_folder(tmp_path / "c", splits=("",), n=10)), image_size=8, val_fraction=0.2)
    assert flat.classes == ("a", "b") and (len(flat.train), len(flat.val)) == (16, 4)


@pytest.mark.parametrize("case, expected", [
    ("empty", "an empty folder (no class folders)"),
    ("flat", "3 images but no class folders"),
    ("one_class", "found one class folder (a)"),
    ("one_class_train", "found one class folder (a)"),
    ("empty_val", "the validation split is empty"),
    ("single_images", "the validation split is empty"),
    ("val_only", "found val/ but no train/ folder"),
])
def test_misread_layouts_are_one_line_errors(tmp_path, capsys, case, expected):
    rs, root = np.random.RandomState(1), tmp_path / "d"
    root.mkdir()
    if case == "flat":
        for i in range(3):
            _png(rs, root / f"{i}.png")
    elif case == "one_class":
        _folder(root, splits=("",), classes=("a",))
    elif case == "one_class_train":
        _folder(root, splits=("train", "val"), classes=("a",))
    elif case == "empty_val":
        _folder(root, splits=("train",))
        (root / "val" / "a").mkdir(parents=True)
        (root / "val" / "b").mkdir()
    elif case == "single_images":
        _folder(root, splits=("",), n=1)
    elif case == "val_only":
        _folder(root, splits=("val",))
    with pytest.raises(UserError, match=re.escape(expected)):
        load_data(str(root), image_size=8)
    assert main(["train", "resnet20", "--data", str(root), "--image-size", "8", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnzoo: error: ") and expected in err, err
    assert not (tmp_path / "r").exists()


# --- decoded once -------------------------------------------------------------------------------------------------


def _truncated_jpeg(path):
    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(3).randint(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # header fine, data cut: fails when decoded


@pytest.mark.parametrize("chunk, batch_pixels", [(64, 2**18), (5, 300)])
def test_cached_folder_equals_the_streaming_views(tmp_path, monkeypatch, chunk, batch_pixels):
    """Decoded in chunks, resized in batches of one size (several per call, or a few): every stored view is the
    streaming path's view of that file, in order, whatever the sizes around it."""
    monkeypatch.setattr(cache, "DECODE_CHUNK", chunk)
    monkeypatch.setattr(cache, "VIEW_BATCH_PIXELS", batch_pixels)
    root = _folder(tmp_path / "d")
    rs = np.random.RandomState(1)
    for i, size in enumerate([(14, 9), (12, 10), (20, 16), (14, 9)]):  # mixed sizes, interleaved with 12x10
        _png(rs, root / "val" / ("a", "b")[i % 2] / f"{i}x.png", size)
    data = load_data(str(root), image_size=8)
    recipe = RECIPES["resnet_cifar"]
    held, train_geo, eval_geo = hold_folder(data, recipe.geometry(8), recipe.eval_geometry(8), mode="memory")
    assert held.held == "resident" and held.train.images.shape == (12, 3, 8, 8) and len(held.val.images) == 16
    from cnnzoo.data.folder import FolderDataset
    streamed = FolderDataset(data.val, recipe.eval_geometry(8), channels=3, train=False, seed=0)
    for i in range(len(streamed)):
        assert torch.equal(held.val.images[i], streamed[i][0]), f"val {i}: the stored view is the streaming view"
        assert held.val.labels[i] == streamed[i][1]
    assert train_geo.resize == 8 and eval_geo.resize == 8
    rrc = RECIPES["googlenet"].geometry(32)
    assert stored_side(rrc) == max(rrc.resize, round(32 * 1.14)), "random-resized crops keep a larger image"


def test_disk_cache_built_once_reused_and_invalidated(tmp_path, monkeypatch):
    root = _folder(tmp_path / "d")
    data = load_data(str(root), image_size=8)
    geo = RECIPES["resnet_cifar"].geometry(8), RECIPES["resnet_cifar"].eval_geometry(8)
    calls = []
    import cnnzoo.data.cache as cache

    real = cache._decode_all
    monkeypatch.setattr(cache, "_decode_all", lambda *a, **k: calls.append(1) or real(*a, **k))
    first, _, _ = hold_folder(data, *geo, mode="disk")
    second, _, _ = hold_folder(data, *geo, mode="disk")
    assert len(calls) == 1 and (first.held, second.held) == ("resident", "cache")
    assert torch.equal(first.train.images, second.train.images) and torch.equal(first.val.labels, second.val.labels)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    touched = root / "train" / "a" / "0.png"
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(touched)  # same name, new content and mtime
    os.utime(touched, ns=(os.stat(touched).st_atime_ns, os.stat(touched).st_mtime_ns + 10**9))
    third, _, _ = hold_folder(load_data(str(root), image_size=8), *geo, mode="disk")
    assert len(calls) == 2 and third.held == "resident"
    assert not torch.equal(third.train.images, first.train.images)


def test_corrupt_file_in_a_cached_folder_is_skipped_and_reported(tmp_path):
    root = _folder(tmp_path / "d")
    _truncated_jpeg(root / "train" / "b" / "cut.jpg")
    for out in ("r1", "r2"):  # decoded, then read back from the cache: reported both times
        with pytest.warns(UserWarning, match="cut.jpg: cannot decode"):
            result = train("resnet20", data=str(root), epochs=1, out=tmp_path / out, cache="disk", **QUIET)
        summary = json.loads((tmp_path / out / "summary.json").read_text())
        assert summary["skipped_files"] == [str(root / "train" / "b" / "cut.jpg")] and summary["skipped_count"] == 1
        assert result.history[0]["train_images"] == 8  # 12 good images, batches of 8, last partial batch dropped
    config = json.loads((tmp_path / "r2" / "config.json").read_text())
    assert config["data_held"] == "cache" and config["cache"] == "disk"


def test_resumed_run_on_a_cached_folder_is_bit_identical(tmp_path):
    root = _folder(tmp_path / "d", n=10)
    kw = dict(data=str(root), epochs=3, cache="disk", **QUIET)
    whole = train("resnet20", out=tmp_path / "whole", **kw)

    def stop_after_first_epoch(line):
        if line.startswith("epoch   1/3"):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted):
        train("resnet20", out=tmp_path / "cut", **{**kw, "log": stop_after_first_epoch})
    resumed = train(resume=tmp_path / "cut", progress=False, log=None, device="cpu")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["train_loss"] for r in whole.history] == [r["train_loss"] for r in resumed.history]


def test_streamed_folder_with_persistent_workers_replays_the_same_epochs(tmp_path):
    """--cache off: files decoded by loader workers that persist over epochs; the epoch travels with each index."""
    root = _folder(tmp_path / "d")
    kw = dict(data=str(root), epochs=2, cache="off", checkpoints=False, **{**QUIET, "workers": 0})
    inline = train("resnet20", out=tmp_path / "a", **kw)
    workers = train("resnet20", out=tmp_path / "b", **{**kw, "workers": 2})
    assert [r["train_loss"] for r in inline.history] == [r["train_loss"] for r in workers.history]
    assert inline.history[0]["train_loss"] != inline.history[1]["train_loss"]
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["data_held"] == "streamed" and config["cache"] == "off"

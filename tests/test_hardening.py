"""Bad input and faults (reliability_and_ecosystem.md §1-§3): messy image folders, damaged or malicious checkpoints,
non-finite losses, and user mistakes on the command line. SIGTERM/SIGINT checkpoint-and-resume is tested in
test_training.py (test_sigterm_saves_a_checkpoint_and_exits_143, test_resume_is_bit_identical_on_cpu) and under
torchrun in test_distributed.py."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.errors import UserError
from cnnzoo.training import CheckpointError, NonFiniteLoss, load_data, load_state, train
from cnnzoo.checkpoint import find_resume_state

SRC = str(Path(cnnzoo.__file__).resolve().parents[1])
QUIET = dict(progress=False, log=None, device="cpu")


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring ``width`` x ``height``, with a tiny IDAT: a decompression bomb's
    calling card (Pillow reads the size before any pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _image(rs: np.random.RandomState, path: Path, fmt: str | None = None, size: tuple[int, int] = (10, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rs.randint(0, 255, (*size, 3), dtype=np.uint8)).save(path, fmt)


def _messy_folder(root: Path) -> dict[str, list[str]]:
    """train/val with 2 classes of good images, plus every kind of bad file a real folder collects."""
    rs = np.random.RandomState(0)
    for split, n in (("train", 4), ("val", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                _image(rs, root / split / cls / f"{i}.png")
    a = root / "train" / "a"
    _image(rs, a / "really_png.jpg", "PNG")  # wrong extension, but a good image of an allowed format: kept
    jpeg = io.BytesIO()
    Image.fromarray(rs.randint(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG", quality=95)
    (a / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) * 7 // 10])  # header fine, data cut
    (a / "zero.jpg").write_bytes(b"")
    (a / "random.png").write_bytes(rs.bytes(300))
    (a / "text.jpg").write_text("not an image, whatever its name says")
    _image(rs, a / "targa.jpg", "TGA")  # a real image in a format outside the allowlist
    (a / "bomb.png").write_bytes(_png_header(20_000, 20_000))  # 400 MP: Pillow's own DecompressionBombError
    (a / "bomb_warn.png").write_bytes(_png_header(10_000, 10_000))  # 100 MP: Pillow would only warn
    # ignored altogether: hidden files and folders, other extensions
    (a / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 20)
    (a / "._0.png").write_bytes(b"\0\5\26\7AppleDouble")
    _image(rs, a / ".git" / "objects" / "x.png")
    _image(rs, root / "train" / ".ipynb_checkpoints" / "y.png")
    (a / "notes.txt").write_text("hello")
    scan_skipped = ["bomb.png", "bomb_warn.png", "random.png", "targa.jpg", "text.jpg", "zero.jpg"]
    return {"scan": [str(a / n) for n in scan_skipped], "decode": [str(a / "truncated.jpg")]}


def test_messy_image_folder_trains_and_reports_every_skipped_file(tmp_path):
    bad = _messy_folder(tmp_path / "data")
    with pytest.warns(UserWarning, match="skipped 6 unreadable files"):
        data = load_data(str(tmp_path / "data"), image_size=8)
    assert data.classes == ("a", "b"), "hidden folders are not classes"
    assert sorted(data.skipped_files) == sorted(bad["scan"])
    assert len(data.train) == 8 + 2 and len(data.val) == 4  # good images + really_png.jpg + truncated.jpg
    assert not any(".git" in p or "/._" in p or ".DS_Store" in p for p in data.train.paths)
    with pytest.warns(UserWarning) as caught:  # one step holds every training file, the truncated one included
        result = train("resnet20", data=str(tmp_path / "data"), image_size=8, epochs=1, batch_size=10, workers=0,
                       out=tmp_path / "run", **QUIET)
    assert any("truncated.jpg: cannot decode" in str(w.message) for w in caught)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert sorted(s["skipped_files"]) == sorted(bad["scan"] + bad["decode"]) and s["skipped_count"] == 7
    assert s["skipped_files"] == result.summary["skipped_files"]
    assert result.history[0]["train_images"] == 9 and result.history[0]["val_count"] == 4
    # batches of one: the truncated file's batch has no readable image, and that step is skipped
    with pytest.warns(UserWarning) as caught:
        alone = train("resnet20", data=str(tmp_path / "data"), image_size=8, epochs=1, batch_size=1, workers=0,
                      out=tmp_path / "run1", checkpoints=False, **QUIET)
    assert any("truncated.jpg: cannot decode" in str(w.message) for w in caught)
    assert alone.history[0]["train_images"] == 9 and bad["decode"][0] in alone.summary["skipped_files"]


def test_folder_mistakes_are_one_line_errors(tmp_path, capsys):
    rs = np.random.RandomState(1)
    for cls in ("a", "b"):
        _image(rs, tmp_path / "d" / "train" / cls / "0.png")
        _image(rs, tmp_path / "d" / "val" / cls / "0.png")
    (tmp_path / "d" / "train" / "empty").mkdir()
    (tmp_path / "d" / "train" / "empty" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "d" / "train" / "junk").mkdir()
    (tmp_path / "d" / "train" / "junk" / "x.jpg").write_bytes(b"")
    for data, text in ((tmp_path / "d", "class folders empty, junk"), (tmp_path / "missing", "not 'digits'")):
        assert main(["train", "resnet20", "--data", str(data), "--image-size", "8", "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and text in err, err
    assert not (tmp_path / "r").exists()
    proc = subprocess.run([sys.executable, "-m", "cnnzoo", "train", "resnet20", "--data", str(tmp_path / "missing")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


# --- checkpoints --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """A finished 2-epoch run: last.pt (epoch 2) and previous.pt (epoch 1)."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train("resnet20", data="synthetic:32", image_size=8, epochs=2, batch_size=16, out=out, **QUIET)
    return out


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.parametrize("damage", ["half", "empty", "garbage"])
def test_damaged_checkpoint_is_named_and_resume_falls_back(two_epochs, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(two_epochs, run)
    last = run / "last.pt"
    blob = last.read_bytes()
    last.write_bytes({"half": blob[: len(blob) // 2], "empty": b"", "garbage": os.urandom(4096)}[damage])
    with pytest.raises(CheckpointError, match=str(last)):
        load_state(last)
    with pytest.warns(UserWarning, match="resuming from .*previous.pt"):
        path, state = find_resume_state(run)
    assert path.name == "previous.pt" and state["epoch"] == 1
    if damage == "half":  # resuming from the previous checkpoint finishes the run
        with pytest.warns(UserWarning, match="previous.pt"):
            resumed = train("resnet20", resume=run, **QUIET)
        assert [r["epoch"] for r in resumed.history] == [1, 2]
        assert load_state(last)["epoch"] == 2


def test_pickle_carrying_code_is_refused_never_run(two_epochs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(two_epochs, run)
    payload = _Payload()
    payload.sentinel = tmp_path / "PWNED"
    torch.save({"format": "cnnzoo-train-state", "model": payload}, run / "last.pt")
    with pytest.raises(CheckpointError, match=r"refused: .*names (posix|os|nt)\.system"):
        load_state(run / "last.pt")
    (run / "previous.pt").unlink()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused" in err and "last.pt" in err
    assert not payload.sentinel.exists()


def test_checkpoint_of_another_architecture_or_class_list_is_refused(two_epochs, tmp_path, capsys):
    assert main(["train", "resnet32", "--resume", str(two_epochs)]) == 2
    assert "the run used model 'resnet20', not 'resnet32'" in capsys.readouterr().err
    rs = np.random.RandomState(2)
    for cls in ("a", "b"):
        for i in range(4):
            _image(rs, tmp_path / "d" / cls / f"{i}.png")
    train("resnet20", data=str(tmp_path / "d"), image_size=8, epochs=1, batch_size=4, workers=0, out=tmp_path / "r",
          **QUIET)
    for i in range(4):
        _image(rs, tmp_path / "d" / "c" / f"{i}.png")
    assert main(["train", "--resume", str(tmp_path / "r"), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "classes changed" in err and "3 now, 2 then" in err
    with pytest.raises(UserError, match=r"head\.fc\.weight: \(2, 64\) vs \(3, 64\)"):
        cnnzoo.create_model("resnet20", num_classes=3, weights=tmp_path / "r" / "best.safetensors")


# --- non-finite loss ----------------------------------------------------------------------------------------------


class NaNAt(nn.Module):
    """A small conv net whose training forward number ``at`` (1-based), and with ``every`` all later ones, give NaN.
    ``snapshots[i]``: the parameters as forward ``i`` saw them (for ``at`` and ``at + 1``)."""

    def __init__(self, at: int, *, every: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(4, 10))
        self.at, self.every, self.calls, self.snapshots = at, every, 0, {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.training:
            self.calls += 1
            if self.calls in (self.at, self.at + 1):
                self.snapshots[self.calls] = [p.detach().clone() for p in self.parameters()]
            if self.calls == self.at or (self.every and self.calls > self.at):
                out = out * float("nan")
        return out


def _nan_run(tmp_path: Path, net: nn.Module, **kwargs):
    return train(net, model_name="nan_net", image_size=8, data="synthetic:32", out=tmp_path / "run", **QUIET, **kwargs)


def test_nonfinite_loss_stops_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLoss) as info:  # 4 steps per epoch: forward 7 is epoch 2, step 3
        _nan_run(tmp_path, NaNAt(7), batch_size=8, epochs=3)
    message = str(info.value)
    assert "non-finite loss (nan) at epoch 2, step 3 of 4 (iteration 7)" in message
    assert f"the last good checkpoint is {tmp_path / 'run' / 'last.pt'} (after epoch 1)" in message
    state = load_state(tmp_path / "run" / "last.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["stop_reason"] == message and summary["epochs"] == 1


def test_nonfinite_loss_cli_exit_1_one_line(tmp_path, capsys):
    argv = ["train", "resnet20", "--data", "synthetic:32", "--image-size", "8", "--epochs", "2", "--batch-size", "16",
            "--set", "lr=1e30", "--out", str(tmp_path / "run")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "non-finite loss" in err and "epoch 1, step 2 of 2" in err


def test_nonfinite_skip_policy_drops_the_step_and_stops_after_many(tmp_path):
    net = NaNAt(3)
    result = _nan_run(tmp_path, net, batch_size=8, epochs=2, on_nonfinite="skip")
    assert [r["skipped_steps"] for r in result.history] == [1, 0]
    assert result.history[0]["train_images"] == 24 and result.history[1]["train_images"] == 32
    before, after = net.snapshots[3], net.snapshots[4]  # around the skipped step: no update at all
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["skipped_steps"] for line in lines] == [1, 0]
    with pytest.raises(NonFiniteLoss, match=r"20 non-finite losses in a row, the last \(nan\) at epoch 2, step 6 "):
        _nan_run(tmp_path / "b", NaNAt(3, every=True), batch_size=2, epochs=2, on_nonfinite="skip")


# --- the command line ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, text", [
    (["train", "resnet21"], "unknown model 'resnet21'; did you mean resnet32, resnet20"),
    (["train", "resnet20", "--recipe", "resnet_cifr"], "did you mean resnet_cifar"),
    (["train", "resnet20", "--set", "lrr=0.1"], "unknown recipe field 'lrr'; did you mean lr"),
    (["train", "resnet20", "--set", "schedule=cosin"], "did you mean cosine"),
    (["train", "resnet20", "--set", "nesterov=maybe"], "bad value 'maybe' for recipe field nesterov"),
    (["train", "resnet20", "--set", "lr=fast"], "bad value 'fast' for recipe field lr (float)"),
    (["train", "resnet20", "--image-size", "4"], "smallest side it accepts is 8"),
    (["train", "resnet20", "--batch-size", "0"], "batch_size must be in [1, 1,000,000], got 0"),
    (["train", "resnet20", "--sync-bn", "--device", "cpu"], "--sync-bn needs CUDA"),
    (["eval", "vgg61", "--weights", "x"], "unknown model 'vgg61'; did you mean vgg19, vgg16"),
    (["predict", "--weights", "nowhere", "a.png"], "no such checkpoint"),
])
def test_cli_mistakes_are_one_line_with_the_closest_choices_exit_2(argv, text, tmp_path, capsys):
    assert main([*argv, *(["--out", str(tmp_path / "r")] if argv[0] == "train" else [])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnzoo: error: ") and text in err, err
    assert not (tmp_path / "r").exists()


def test_a_rejected_run_leaves_no_run_folder(tmp_path, capsys):
    """Bug 6: a run refused after its settings were read (one class, a bad length) left an empty folder."""
    _image(np.random.RandomState(3), tmp_path / "one" / "a" / "0.png")  # one image: one for training, none to spare
    out = tmp_path / "run"
    base = ["train", "resnet20", "--image-size", "8", "--device", "cpu", "--out", str(out)]
    assert main([*base, "--data", str(tmp_path / "one")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "found one class folder (a)" in err
    assert not out.exists()
    assert main([*base, "--data", "synthetic:8", "--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert not out.exists()

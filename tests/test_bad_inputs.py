"""Bad inputs and faults outside training (issue 21, items 8, 9, 11 and 12's data side): writes that respect their
target, atomic exports, one line for every error (never a traceback), and inputs that are never misread.

Devices are made with ``mknod`` inside the test's folder (``/dev/full`` is 1,7; ``/dev/null`` 1,3) so that a writer
that replaces its target, as the code before these fixes did, replaces only the test's own node.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo import files
from cnnzoo.checkpoint import CheckpointError, read_checkpoint, save_weights
from cnnzoo.cli import main
from cnnzoo.data import Geometry, load_data, make_loader
from cnnzoo.data.cache import hold_folder
from cnnzoo.data.cifar import CifarFormatError
from cnnzoo.data.folder import decode_image_file
from cnnzoo.errors import UserError

SIDE = 8
META = {"model": "resnet20", "model_kwargs": {}, "num_classes": 10, "classes": [str(i) for i in range(10)],
        "in_channels": 3, "image_size": SIDE, "eval_resize": SIDE, "mean": [0.5, 0.5, 0.5],
        "std": [0.289, 0.289, 0.289], "data": "synthetic:16", "val_fraction": 0.2}


def _device(folder: Path, name: str, minor: int) -> Path:
    """A character device node of the memory driver (major 1): 7 is ``/dev/full``, 3 is ``/dev/null``."""
    path = folder / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except OSError as exc:
        pytest.skip(f"cannot make a device node here ({exc.strerror})")
    return path


def _is_device(path: Path) -> bool:
    return stat.S_ISCHR(os.lstat(path).st_mode)


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith("cnnzoo: warning:")]
    assert len(lines) == 1 and lines[0].startswith("cnnzoo: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A resnet20 checkpoint at 8 px for synthetic data, as the trainer writes it (random weights)."""
    path = tmp_path_factory.mktemp("weights") / "best.safetensors"
    torch.manual_seed(0)
    save_weights(path, cnnzoo.create_model("resnet20", num_classes=10).state_dict(), META)
    return path


def _with_meta(tmp_path: Path, weights: Path, **changes) -> Path:
    state, _ = read_checkpoint(weights)
    path = tmp_path / "changed.safetensors"
    save_weights(path, state, {**META, **changes})
    return path


# --- 8. writes that respect the target --------------------------------------------------------------------------


def test_a_device_is_written_through_and_a_write_error_is_one_line(tmp_path):
    full, null = _device(tmp_path, "full", 7), _device(tmp_path, "null", 3)
    with pytest.raises(files.DiskFull, match="no space left on device"):
        files.write_json(full, {"a": 1})
    files.write_text(null, "into nothing\n")
    assert _is_device(full) and _is_device(null), "a device must never be replaced by a regular file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "null"], "no temporary file left"


def test_eval_json_to_a_full_device_exits_2_in_one_line(tmp_path, weights, capsys):
    full = _device(tmp_path, "full", 7)
    code = main(["eval", "--weights", str(weights), "--device", "cpu", "--json", str(full)])
    assert code == 2 and "no space left on device" in _one_error(capsys.readouterr().err)
    assert _is_device(full)


def test_a_symlink_stays_a_link_and_its_file_gets_the_content(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.json"
    link.symlink_to("real.json")
    files.write_json(link, {"a": 1})
    assert link.is_symlink() and json.loads(real.read_text()) == {"a": 1}
    assert stat.S_IMODE(real.stat().st_mode) == 0o640, "a replaced file keeps its permissions"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to("created.json")
    files.write_json(dangling, {"b": 2})
    assert dangling.is_symlink() and json.loads((tmp_path / "created.json").read_text()) == {"b": 2}


def test_a_link_to_this_process_stdout_writes_after_what_was_printed(tmp_path, capfd):
    link = tmp_path / "out.json"
    link.symlink_to("/proc/self/fd/1")
    print("printed first", flush=True)
    files.write_json(link, {"a": 1})
    out = capfd.readouterr().out
    assert out.startswith("printed first\n") and json.loads(out.split("\n", 1)[1]) == {"a": 1}
    assert link.is_symlink()


def test_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    files.write_json(fifo, {"a": 1})
    reader.join(timeout=30)
    assert got and json.loads(got[0]) == {"a": 1} and stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("case, expected", [
    ("folder", "is a folder"),
    ("missing_folder", "does not exist"),
    ("long_name", "file name too long"),
    ("link_loop", "symbolic links"),
    ("link_into_nothing", "does not exist"),
])
def test_paths_that_cannot_be_written_are_one_line(tmp_path, weights, capsys, case, expected):
    target = {"folder": tmp_path, "missing_folder": tmp_path / "no" / "x.json",
              "long_name": tmp_path / ("x" * 300), "link_loop": tmp_path / "loop",
              "link_into_nothing": tmp_path / "into"}[case]
    if case == "link_loop":
        target.symlink_to("loop")
    if case == "link_into_nothing":
        target.symlink_to("no/such/folder/x.json")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(files.WriteError, match=expected):
        files.write_json(target, {"a": 1})
    code = main(["eval", "--weights", str(weights), "--device", "cpu", "--json", str(target)])
    assert code == 2 and expected in _one_error(capsys.readouterr().err)
    assert sorted(os.listdir(tmp_path)) == before


def test_a_read_only_file_is_not_replaced(tmp_path):
    if os.geteuid() == 0:
        target = tmp_path / "ro.json"
        target.write_text("keep")
        with pytest.MonkeyPatch.context() as mp:  # root writes anywhere: stand in for a user's permission check
            mp.setattr(os, "access", lambda path, mode, **kw: False)
            with pytest.raises(files.WriteError, match="read-only"):
                files.write_json(target, {"a": 1})
    else:
        target = tmp_path / "ro.json"
        target.write_text("keep")
        os.chmod(target, 0o444)
        with pytest.raises(files.WriteError, match="read-only"):
            files.write_json(target, {"a": 1})
    assert target.read_text() == "keep"


# --- 9. export is atomic ----------------------------------------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def test_an_export_that_fails_after_writing_leaves_the_previous_file(tmp_path, monkeypatch, capsys):
    from cnnzoo.exporting import exporter

    out = tmp_path / "r20.pt2"
    out.write_bytes(b"the previous, good export")

    def fail(*args, **kwargs):
        raise RuntimeError("the verification run crashed")

    monkeypatch.setattr(exporter, "verify", fail)
    assert main(["export", "resnet20", "--format", "pt2", "--image-size", "32", "--out", str(out)]) == 1
    assert "the verification run crashed" in _one_error(capsys.readouterr().err)
    assert out.read_bytes() == b"the previous, good export" and not _leftovers(tmp_path)


def test_an_export_killed_mid_write_leaves_the_previous_file_or_nothing(tmp_path, monkeypatch):
    from cnnzoo.exporting import exporter

    def half_then_killed(source, example, fixed, path):
        Path(path).write_bytes(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt  # the kill arrives mid-write

    monkeypatch.setattr(exporter, "_export_pt2", half_then_killed)
    old = tmp_path / "old.pt2"
    old.write_bytes(b"previous")
    new = tmp_path / "new.pt2"
    for out in (old, new):
        with pytest.raises(KeyboardInterrupt):
            cnnzoo.export("resnet20", format="pt2", image_size=32, out=out)
    assert old.read_bytes() == b"previous" and not new.exists() and not _leftovers(tmp_path)


def test_a_verification_mismatch_keeps_the_previous_file_and_the_new_one_as_unverified(tmp_path, monkeypatch):
    from cnnzoo.exporting import exporter

    real = exporter._loaded
    monkeypatch.setattr(exporter, "_loaded", lambda path, fmt: (lambda x: real(path, fmt)(x) * 1.01))
    out = tmp_path / "r20.pt2"
    out.write_bytes(b"previous")
    with pytest.raises(exporter.VerificationError) as info:
        cnnzoo.export("resnet20", format="pt2", image_size=32, out=out)
    stale = tmp_path / "r20.pt2.unverified"
    assert out.read_bytes() == b"previous" and stale.stat().st_size > 1000 and info.value.result.path == stale
    assert not _leftovers(tmp_path)


def test_export_to_a_symlink_replaces_its_file_and_keeps_the_link(tmp_path):
    real = tmp_path / "models" / "r20.pt2"
    real.parent.mkdir()
    real.write_bytes(b"previous")
    link = tmp_path / "latest.pt2"
    link.symlink_to(real)
    r = cnnzoo.export("resnet20", format="pt2", image_size=32, out=link)
    assert r.verified and link.is_symlink() and real.stat().st_size > 1000
    assert torch.export.load(link).module()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_export_onto_a_full_disk_is_one_line_and_keeps_the_previous_file(tmp_path, capsys, fmt):
    if fmt == "onnx":
        for module in ("onnx", "onnxruntime", "onnxscript"):
            pytest.importorskip(module, reason="pip install 'cnnzoo[export]'")
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or mounted.returncode})")
    try:
        out = folder / f"r20.{fmt}"
        out.write_bytes(b"previous")
        assert main(["export", "resnet20", "--format", fmt, "--image-size", "32", "--out", str(out)]) == 2
        assert "no space left on device" in _one_error(capsys.readouterr().err)
        assert out.read_bytes() == b"previous" and not _leftovers(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


# --- 11. one line, never a traceback ------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), ValueError("bad\nvalue"),
                                   RuntimeError("CUDA error: device-side assert"), OverflowError("too big")])
def test_an_unexpected_error_is_one_line_exit_1(monkeypatch, capsys, error):
    import cnnzoo.cli as cli

    def fails(name):
        raise error

    monkeypatch.setattr(cli, "describe", fails)
    monkeypatch.delenv("CNNZOO_TRACEBACK", raising=False)
    assert main(["info", "resnet20"]) == 1
    line = _one_error(capsys.readouterr().err)
    assert type(error).__name__ in line and "CNNZOO_TRACEBACK=1" in line
    monkeypatch.setenv("CNNZOO_TRACEBACK", "1")
    with pytest.raises(type(error)):
        main(["info", "resnet20"])


def _cifar(root: Path, names: list[bytes]) -> Path:
    rs = np.random.RandomState(0)
    root.mkdir(parents=True)

    def batch(n: int) -> dict:
        return {b"labels": [int(v) for v in rs.randint(0, 10, n)], b"data": rs.randint(0, 256, (n, 3072)).astype(np.uint8)}

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps(batch(4), protocol=2))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return root


@pytest.mark.parametrize("names, expected", [
    ([f"c{i}".encode() for i in range(9)], "lists 9 class names; the labels are 0..9"),
    ([f"c{i}".encode() for i in range(12)], "lists 12 class names; the labels are 0..9"),
    ([b"line\nbreak"] + [f"c{i}".encode() for i in range(9)], "line break"),
    ([b"same"] * 2 + [f"c{i}".encode() for i in range(8)], "more than once"),
])
def test_a_cifar_class_list_that_disagrees_with_the_labels_is_refused(tmp_path, capsys, names, expected):
    root = _cifar(tmp_path / "c10", names)
    with pytest.raises(CifarFormatError, match=expected):
        load_data(f"cifar10:{root}", image_size=32)
    assert load_data(f"cifar10:{_cifar(tmp_path / 'ok', [f'c{i}'.encode() for i in range(10)])}",
                     image_size=32).classes[9] == "c9"


def _pngs(root: Path, classes=("a", "b"), n=4) -> Path:
    rs = np.random.RandomState(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rs.randint(0, 255, (10, 12, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _geometry():
    return Geometry.eval_view(SIDE, SIDE), Geometry.eval_view(SIDE, SIDE)


@pytest.mark.parametrize("meta", ["{}", "[]", '{"version": 1}', '{"version": 1, "skipped_files": 3}'])
def test_a_cache_entry_without_its_keys_is_rebuilt(tmp_path, monkeypatch, meta):
    monkeypatch.setenv("CNNZOO_CACHE_DIR", str(tmp_path / "cache"))
    data = load_data(str(_pngs(tmp_path / "d")), image_size=SIDE)
    first, _, _ = hold_folder(data, *_geometry(), mode="disk")
    (entry,) = (tmp_path / "cache").iterdir()
    (entry / "meta.json").write_text(meta)
    again, _, _ = hold_folder(data, *_geometry(), mode="disk")
    assert again.held == "resident" and torch.equal(again.train.images, first.train.images)
    assert json.loads((entry / "meta.json").read_text())["skipped_files"] == [], "the stale entry is replaced"
    third, _, _ = hold_folder(data, *_geometry(), mode="disk")
    assert third.held == "cache"


@pytest.mark.parametrize("where", ["file", "under_a_file", "proc"])
def test_a_cache_dir_that_cannot_be_written_is_one_warning_and_no_cache(tmp_path, monkeypatch, where):
    target = {"file": tmp_path / "a_file", "under_a_file": tmp_path / "a_file" / "sub",
              "proc": Path("/proc/cnnzoo-cache")}[where]
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("CNNZOO_CACHE_DIR", str(target))
    data = load_data(str(_pngs(tmp_path / "d")), image_size=SIDE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        held, _, _ = hold_folder(data, *_geometry(), mode="disk")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "$CNNZOO_CACHE_DIR" in messages[0] and "without the cache" in messages[0]
    assert held.held == "resident" and (tmp_path / "a_file").read_text() == "not a folder"


@pytest.mark.parametrize("changes, expected", [
    ({"image_size": 10**12}, "image_size"),
    ({"image_size": 0}, "image_size"),
    ({"eval_resize": float("inf")}, "eval_resize"),
    ({"eval_resize": 4}, "smaller than the image_size"),
    ({"std": [0.0, 0.0, 0.0]}, "standard deviation of 0"),
    ({"mean": [float("nan"), 0.5, 0.5]}, "finite"),
    ({"std": [0.2, 0.2]}, "2 values for 3 input channels"),
    ({"classes": ["a\nb"] + [str(i) for i in range(9)]}, "line break"),
    ({"classes": ["a", "b"]}, "2 names for num_classes 10"),
    ({"num_classes": 0}, "num_classes"),
    ({"in_channels": True}, "in_channels"),
])
def test_checkpoint_metadata_that_cannot_be_used_is_refused_in_one_line(tmp_path, weights, capsys, changes,
                                                                        expected):
    path = _with_meta(tmp_path, weights, **changes)
    with pytest.raises(CheckpointError, match=expected):
        read_checkpoint(path)
    assert main(["eval", "--weights", str(path), "--device", "cpu"]) == 2
    assert expected in _one_error(capsys.readouterr().err)


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"in_channels": 0}, {"num_classes": -3},
                                    {"in_channels": 2.5}, {"num_classes": 10**30}])
def test_create_model_refuses_counts_out_of_range(kwargs):
    (arg,) = kwargs
    with pytest.raises(ValueError, match=f"{arg} must be a whole number between 1 and") as info:
        cnnzoo.create_model("resnet20", **kwargs)
    assert "\n" not in str(info.value) and isinstance(info.value, UserError)


def test_create_model_arguments_on_the_command_line_are_one_line(monkeypatch, capsys):
    import cnnzoo.cli as cli

    monkeypatch.setattr(cli, "describe", lambda name: str(cnnzoo.create_model(name, num_classes=0)))
    assert main(["info", "resnet20"]) == 2
    assert "num_classes must be a whole number" in _one_error(capsys.readouterr().err)


# --- 12. inputs never misread -------------------------------------------------------------------------------------


def test_wide_grayscale_images_are_scaled_never_black(tmp_path):
    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    cases = {"f01.tif": (Image.fromarray(ramp, mode="F"), 255),
             "f255.tif": (Image.fromarray(ramp * 200, mode="F"), 200),
             "i32.tif": (Image.fromarray((ramp * 250).astype(np.int32), mode="I"), 250),
             "i32_wide.tif": (Image.fromarray((ramp * 65535).astype(np.int32), mode="I"), 255),
             "i16.png": (Image.fromarray((ramp * 65535).astype(np.uint16)), 255)}
    for name, (image, brightest) in cases.items():
        image.save(tmp_path / name)
        for channels in (1, 3):
            img = decode_image_file(str(tmp_path / name), channels)
            assert img.shape == (channels, 8, 8) and img.dtype == torch.uint8
            assert int(img.max()) == brightest and int(img.min()) == 0, name
            assert len(torch.unique(img[0])) > 30, f"{name}: a ramp, not a few levels"


@pytest.mark.parametrize("values, expected", [
    (np.full((8, 8), np.nan, np.float32), "NaN"),
    (np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8), "no known white level"),
    (np.linspace(0, 1000, 64, dtype=np.float32).reshape(8, 8), "no known white level"),
])
def test_float_images_without_a_white_level_are_refused_in_one_line(tmp_path, values, expected):
    path = tmp_path / "x.tif"
    Image.fromarray(values, mode="F").save(path)
    with pytest.raises(UserError, match=expected) as info:
        decode_image_file(str(path), 3)
    assert "\n" not in str(info.value)


def test_a_broken_symlink_is_listed_in_skipped_files(tmp_path):
    root = _pngs(tmp_path / "d")
    (root / "a" / "gone.png").symlink_to(tmp_path / "deleted.png")
    (root / "b" / "loop.jpg").symlink_to("loop.jpg")
    (root / "b" / "notes.txt").symlink_to(tmp_path / "nothing.txt")  # not an image name: ignored, as before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_data(str(root), image_size=SIDE)
    assert sorted(data.skipped_files) == [str(root / "a" / "gone.png"), str(root / "b" / "loop.jpg")]
    assert len(caught) == 1 and "gone.png" in str(caught[0].message)


def test_an_undecodable_file_is_reported_once_when_the_caller_reports_it(tmp_path):
    root = _pngs(tmp_path / "d")
    bad = root / "a" / "cut.png"
    bad.write_bytes((root / "a" / "0.png").read_bytes()[:60])  # a good header, data cut short
    data = load_data(str(root), image_size=SIDE, val_fraction=0.5)
    data.val.paths.append(str(bad)), data.val.labels.append(0)
    for announce, expected in ((True, 1), (False, 0)):
        loader = make_loader(data, "val", geo=Geometry.eval_view(SIDE, SIDE), batch_size=4,
                             device=torch.device("cpu"), seed=0, announce_skipped=announce)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            list(loader.epoch(0))
        assert loader.skipped == [str(bad)] and len(caught) == expected


@pytest.mark.parametrize("spec, expected", [("", "empty"), ("  ", "empty"), ("synthetic:", "nothing after"),
                                            ("cifar10:", "nothing after"), ("a\0b", "NUL")])
def test_an_empty_data_spec_is_an_error_not_a_default(tmp_path, monkeypatch, spec, expected):
    _pngs(tmp_path)  # the current folder holds class folders: an empty spec must not read it
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=expected):
        load_data(spec, image_size=SIDE)


@pytest.mark.parametrize("name", ["line\nbreak", "tab\there", "bell\a"])
def test_a_class_folder_with_a_control_character_is_refused(tmp_path, name):
    root = _pngs(tmp_path / "d", classes=("a", name))
    with pytest.raises(UserError, match="line break, another control character") as info:
        load_data(str(root), image_size=SIDE)
    assert "\n" not in str(info.value)


# --- entry points that turned a mistake into a default, or said what they did not do --------------------------------


@pytest.mark.parametrize("argv", [["train", "resnet20", "--data", "", "--epochs", "1"],
                                  ["eval", "--weights", "WEIGHTS", "--data", ""]])
def test_an_empty_data_flag_is_one_line_on_every_command(tmp_path, weights, monkeypatch, capsys, argv):
    _pngs(tmp_path)  # the current folder holds class folders: an empty --data must not read it, nor the digits
    monkeypatch.chdir(tmp_path)
    argv = [str(weights) if a == "WEIGHTS" else a for a in argv] + ["--device", "cpu"]
    assert main(argv) == 2
    assert "empty" in _one_error(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()


def test_a_device_this_torch_lacks_is_one_line(weights, capsys):
    if torch.backends.mps.is_available():
        pytest.skip("this machine has an MPS device")
    assert main(["eval", "--weights", str(weights), "--device", "mps"]) == 2
    assert "no MPS device" in _one_error(capsys.readouterr().err)


def test_predict_reports_an_unreadable_image_once(tmp_path, weights, capsys):
    good, noise, bad = tmp_path / "good.png", tmp_path / "noise.png", tmp_path / "bad.png"
    Image.fromarray(np.zeros((SIDE, SIDE, 3), np.uint8)).save(good)
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)).save(noise)
    bad.write_bytes(noise.read_bytes()[: noise.stat().st_size // 2])  # a good header, pixel data cut in half
    with warnings.catch_warnings(record=True) as caught:  # the loader's "skipped" warning was the second report
        warnings.simplefilter("always")
        assert main(["predict", "--weights", str(weights), str(good), str(bad), "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    said = out + err + "".join(str(w.message) for w in caught)
    assert said.count("bad.png") == 1 and "good.png" in out, said


def test_a_report_without_a_usable_cache_never_says_it_cached(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    monkeypatch.setenv("CNNZOO_CACHE_DIR", str(blocker))
    out = tmp_path / "zoo.html"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cnnzoo.report(models="resnet20", out=out)
    err = capsys.readouterr().err
    assert "cached afterwards" not in err and "not cached" in err
    assert any("running without the cache" in str(w.message) for w in caught)
    assert out.stat().st_size > 0 and blocker.read_text() == "a file"


def test_a_run_file_that_is_not_a_json_object_is_a_problem_not_a_traceback(tmp_path):
    from cnnzoo.html_report.runs import read_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "summary.json").write_text("[1, 2]")
    data = read_run(run)
    assert data.summary is None and any("summary.json is not a JSON object" in p for p in data.problems)

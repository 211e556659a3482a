"""Nothing lost, nothing misread (issue 14): run folders, stops and files a user can trust.

An --out holding a run is refused (and left byte-identical), default run folders never collide, output that goes
away never stops the work, non-finite weights are never saved or evaluated, a dead loader worker and SIGHUP stop
like SIGTERM, a full disk is one line, and every user mistake of the list is a one-line error (exit 2)."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo import checkpoint as ckpt
from cnnzoo.cli import main
from cnnzoo.files import DiskFull
from cnnzoo.training import load_state, train
from cnnzoo.training import trainer as trainer_module
from cnnzoo.training.run_files import RunFiles, default_run_dir

SRC = str(Path(cnnzoo.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
QUIET = dict(progress=False, log=None, device="cpu")
TINY = ["resnet20", "--data", "synthetic:32", "--image-size", "8", "--batch-size", "16", "--device", "cpu"]


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnzoo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, **kw)


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "run"
    train("resnet20", data="synthetic:32", image_size=8, epochs=2, batch_size=16, out=out, **QUIET)
    return out


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip() or result.returncode})")


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def mount(name: str, options: str) -> Path:
        path = tmp_path / name
        _mount_tmpfs(path, options)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# --- run folders ----------------------------------------------------------------------------------------------------


def test_out_onto_an_existing_run_is_refused_and_left_byte_identical(one_run, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name, blob in _snapshot(one_run).items():
        (run / name).write_bytes(blob)
    before = _snapshot(run)
    assert main(["train", *TINY, "--epochs", "1", "--seed", "3", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--resume {run}" in err and "--overwrite" in err
    assert _snapshot(run) == before, "the earlier run must be left byte-identical"
    # --overwrite: the old run's files go first, so previous.pt never holds the other run's state
    assert main(["train", *TINY, "--epochs", "1", "--seed", "3", "--out", str(run), "--overwrite"]) == 0
    assert not (run / "previous.pt").exists() and load_state(run / "last.pt")["config"]["seed"] == 3
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_default_run_folders_never_collide(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101-000000")  # fast restarts: the same second
    made = [default_run_dir("resnet20", root=tmp_path) for _ in range(3)]
    assert len(set(made)) == 3 and all(p.is_dir() for p in made)
    assert [p.name for p in made] == ["resnet20-20260101-000000", "resnet20-20260101-000000-2",
                                      "resnet20-20260101-000000-3"]


def test_stale_temp_files_are_removed_at_start_and_on_resume(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".last.pt.tmp-{int(dead.stdout)}"
    live = tmp_path / ".last.pt.tmp-1"  # pid 1 is alive: a write in progress is left alone
    for path in (stale, live):
        path.write_bytes(b"\0" * 1000)
    RunFiles.create(tmp_path)
    assert not stale.exists() and live.exists()


# --- output going away ------------------------------------------------------------------------------------------------


def test_closed_stdout_never_stops_training_nor_fakes_success(tmp_path):
    """`cnnzoo train ... | head -1`: the run completes (every file, exit 0) or exits non-zero; never 0 and partial."""
    out = tmp_path / "run"
    proc = _cli("train", *TINY, "--epochs", "3", "--out", str(out))
    proc.stdout.readline()
    proc.stdout.close()  # the reader leaves after one line
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert proc.returncode == 0 and summary["interrupted"] is False and summary["epochs"] == 3
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_eval_json_is_written_when_stdout_goes_away(one_run, tmp_path):
    report = tmp_path / "ev.json"
    proc = _cli("eval", "--weights", str(one_run), "--device", "cpu", "--json", str(report))
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err
    assert _strict_json(report.read_text())["count"] > 0


# --- non-finite weights -----------------------------------------------------------------------------------------------


def _unusable(state_dict) -> list[str]:
    """``checkpoint.unusable_tensors``'s rule on a saved state dict: no inf/NaN weight, no NaN buffer (an infinite
    batch-norm running variance only zeroes its channel)."""
    bad = ckpt.nonfinite_tensors(state_dict)
    return [k for k in bad if not k.endswith("running_var") or bool(state_dict[k].isnan().any())]


def test_nonfinite_weights_are_never_saved_as_good(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", *TINY, "--epochs", "2", "--set", "lr=1e12", "--on-nonfinite", "skip", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("cnnzoo: error:") == 1 and "non-finite" in err
    for path in out.glob("*.safetensors"):
        assert not _unusable(ckpt.read_state_dict(path)), path
    if (out / "last.pt").exists():
        assert not _unusable(load_state(out / "last.pt")["model"])
    for line in (out / "metrics.jsonl").read_text().splitlines() if (out / "metrics.jsonl").exists() else ():
        _strict_json(line)
    _strict_json((out / "summary.json").read_text())


def test_metrics_jsonl_stays_json_with_nonfinite_values(tmp_path):
    files = RunFiles.create(tmp_path)
    files.write_metrics([{"epoch": 1, "lr": 0.1, "train_loss": float("nan"), "val_loss": float("inf"),
                          "val_top1": 10.0}])
    row = _strict_json((tmp_path / "metrics.jsonl").read_text())
    assert row["train_loss"] is None and row["val_loss"] is None and row["nonfinite"] == ["train_loss", "val_loss"]
    assert row["val_top1"] == 10.0


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_eval_and_predict_refuse_nonfinite_weights(one_run, tmp_path, capsys, command):
    state = ckpt.read_state_dict(one_run / "best.safetensors")
    meta = {k: v for k, v in ckpt.read_weights_metadata(one_run / "best.safetensors").items() if k != "format"}
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    bad = tmp_path / "nan.safetensors"
    ckpt.save_weights(bad, state, meta)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(image)
    argv = ["eval", "--weights", str(bad), "--device", "cpu"] if command == "eval" else \
        ["predict", "--weights", str(bad), str(image)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inf/NaN" in err and key in err


# --- stops ------------------------------------------------------------------------------------------------------------


def _folder(root: Path, n: int = 24) -> None:
    rs = np.random.RandomState(0)
    for split, count in (("train", n), ("val", 4)):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(rs.randint(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _expect_line(proc: subprocess.Popen, prefix: str) -> None:
    for line in proc.stdout:
        if line.startswith(prefix):
            return
    raise AssertionError(f"no line starting with {prefix!r}; stderr: {proc.stderr.read()}")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find the loader's workers")
def test_a_killed_loader_worker_stops_like_sigterm_and_leaves_a_resumable_checkpoint(tmp_path):
    _folder(tmp_path / "data")
    out = tmp_path / "run"
    proc = _cli("train", "resnet20", "--data", str(tmp_path / "data"), "--image-size", "8", "--batch-size", "2",
                "--epochs", "50", "--workers", "1", "--cache", "off", "--device", "cpu", "--out", str(out))
    try:  # --cache off: the folder is streamed through a DataLoader worker (else decoded once and held resident)
        _expect_line(proc, "epoch   1/50")
        deadline = time.monotonic() + 60
        while not (kids := _children(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kids, "no loader worker found"
        # the training loader's worker (the first started); it is noticed at its next batch, never in the middle of
        # validation, whose own persistent worker stays alive
        os.kill(min(kids), signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "data-loading worker died" in lines[-1] and f"--resume {out}" in lines[-1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and "data-loading worker died" in summary["stop_reason"]
    state = load_state(out / "last.pt")
    assert state["epoch"] >= 1
    resumed = train(resume=out, epochs=state["epoch"] + 1, workers=0, **QUIET)
    assert [r["epoch"] for r in resumed.history] == list(range(1, state["epoch"] + 2))


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_checkpoints_and_exits_129(tmp_path):
    out = tmp_path / "run"
    proc = _cli("train", *TINY, "--epochs", "1000", "--out", str(out))
    try:
        _expect_line(proc, "epoch   1/1000")
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 129 and "SIGHUP" in err and f"--resume {out}" in err and "Traceback" not in err
    assert load_state(out / "last.pt")["epoch"] >= 1
    assert json.loads((out / "summary.json").read_text())["stop_reason"] == "SIGHUP"


def test_lr_logged_after_a_resume_at_an_epoch_boundary_is_the_lr_used(tmp_path, monkeypatch):
    """A stop on an epoch's last step: the resumed epoch runs no step, and its row must still log that step's lr."""
    kwargs = dict(data="synthetic:64", image_size=8, epochs=3, batch_size=16, recipe="quick", **QUIET)
    ref = train("resnet20", out=tmp_path / "ref", **kwargs)
    steps = json.loads((tmp_path / "ref" / "config.json").read_text())["steps_per_epoch"]
    calls, real_lr_at = {"n": 0}, trainer_module.lr_at

    def signal_on_the_last_step(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2 * steps:  # the last step of epoch 2 (after the warm-up: the lr is not the base lr)
            os.kill(os.getpid(), signal.SIGTERM)
        return real_lr_at(*args, **kw)

    monkeypatch.setattr(trainer_module, "lr_at", signal_on_the_last_step)
    with pytest.raises(trainer_module.TrainingInterrupted):
        train("resnet20", out=tmp_path / "b", **kwargs)
    monkeypatch.setattr(trainer_module, "lr_at", real_lr_at)
    state = load_state(tmp_path / "b" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (1, steps)
    resumed = train("resnet20", resume=tmp_path / "b", **QUIET)
    assert ref.history[1]["lr"] != cnnzoo.training.RECIPES["quick"].lr
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in ref.history]


def test_resume_with_another_length_prints_the_new_schedule(tmp_path):
    kwargs = dict(data="synthetic:32", image_size=8, batch_size=16, recipe="quick", progress=False, device="cpu")
    train("resnet20", out=tmp_path / "run", epochs=2, log=None, **kwargs)
    lines: list[str] = []
    train(resume=tmp_path / "run", epochs=4, log=lines.append, progress=False, device="cpu")
    replan = [line for line in lines if "re-planned" in line]
    assert len(replan) == 1 and "from 2 to 4 epochs" in replan[0] and " -> " in replan[0]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 4
    quiet: list[str] = []
    train(resume=tmp_path / "run", log=quiet.append, progress=False, device="cpu")  # same length: nothing to say
    assert not any("re-planned" in line for line in quiet)


# --- files ------------------------------------------------------------------------------------------------------------


def test_disk_full_is_one_line_and_keeps_the_previous_checkpoint(tmpfs):
    folder = tmpfs("small", "size=256k")
    path = folder / "last.pt"
    small = {"format": ckpt.FORMAT, "format_version": 1, "x": torch.zeros(1000)}
    ckpt.save_state(path, small)
    with pytest.raises(DiskFull, match="no space left on device"):
        ckpt.save_state(path, {**small, "x": torch.zeros(200_000)}, keep_previous=False)
    assert torch.equal(load_state(path)["x"], small["x"])
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]


def _errors(err: str) -> list[str]:
    """stderr less the run's one-line warnings (a 1-epoch run warns that its schedule's lr drops cannot happen)."""
    return [line for line in err.splitlines() if not line.startswith("cnnzoo: warning:")]


def test_disk_full_while_training_is_one_line_exit_2(tmpfs, capsys):
    folder = tmpfs("tiny", "size=64k")
    assert main(["train", *TINY, "--epochs", "1", "--out", str(folder / "run")]) == 2
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and "no space left on device" in err[0]


def test_read_only_out_is_one_line(tmpfs, capsys):
    folder = tmpfs("ro", "ro,size=64k")
    assert main(["train", *TINY, "--epochs", "1", "--out", str(folder / "run")]) == 2
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and "cannot write" in err[0]


def test_random_bytes_and_code_checkpoints_are_named_without_torch_advice(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.RandomState(0).bytes(4096))
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.torch_load(garbage)
    assert "not a checkpoint (unreadable" in str(info.value) and "weights_only" not in str(info.value)

    class Code:
        def __reduce__(self):
            return (os.getpid, ())

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"w": Code()}))
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.torch_load(evil)
    assert "refused: contains code" in str(info.value) and "weights_only" not in str(info.value)


def test_eval_of_a_run_with_a_corrupt_best_falls_back_to_last_and_says_so(one_run, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name, blob in _snapshot(one_run).items():
        (run / name).write_bytes(blob)
    (run / "best.safetensors").write_bytes(b"\0" * 100)
    assert main(["eval", "--weights", str(run), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("cnnzoo: warning: ")]
    assert len(warnings) == 1 and "best.safetensors" in warnings[0] and "last.safetensors instead" in warnings[0]
    assert "UserWarning" not in err


def test_ensemble_help_prints_plain_percent_signs(capsys):
    with pytest.raises(SystemExit):
        main(["ensemble", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "18.2% -> 15.4%" in out and "%%" not in out


# --- one-line errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, text", [
    (["--device", "gpu0"], "--device gpu0"),
    (["--image-size", "100000"], "GiB"),
    (["--set", "epochs=0"], "epochs"),
    (["--image-size", "0"], "--image-size"),
    (["--set", "lr=inf"], "lr must be a positive finite number"),
    (["--workers", "-1"], "--workers"),
    (["--set", "crop_px=64", "resize_px=32"], "crop_px 64 is larger"),
])
def test_mistakes_are_one_line_errors_and_leave_nothing(args, text, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "resnet20", "--data", "synthetic:32", "--device", "cpu", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnzoo: error: ") and text in err
    assert not out.exists()


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    assert main(["train", *TINY, "--out", str(target)]) == 2
    assert "is an existing file" in capsys.readouterr().err and target.read_text() == "keep me"


def test_batch_larger_than_the_training_set_is_clamped_and_recorded(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "resnet20", "--data", "synthetic:32", "--image-size", "8", "--epochs", "1",
                 "--batch-size", "100000", "--device", "cpu", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    err = capsys.readouterr().err
    assert config["recipe"]["batch_size"] == config["train_images"] and config["steps_per_epoch"] == 1
    assert err.count("cnnzoo: warning: batch_size 100,000 is larger than the training split") == 1
    assert math.isfinite(json.loads((out / "summary.json").read_text())["final_val_top1"])

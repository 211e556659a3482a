"""What the user asked for is what runs, one run per folder (issue 21): a length never changes the recipe, one length
or milestone field replaces its group, every recipe field has a declared range that every entry point checks, a
resumed run keeps its thread count and refuses changed data or an unusable state, a run folder is held by one process
at a time, ensemble reports never replace a file, and out-of-range numbers and unusable paths are one-line errors."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.checkpoint import load_state
from cnnzoo.cli import main
from cnnzoo.errors import UserError
from cnnzoo.training import RECIPES, Recipe, configure, prepare, resolve_recipe, train
from cnnzoo.training.run_files import epoch_line
from cnnzoo.training.schedules import fit_schedule, lr_at
from children import next_line

SRC = str(Path(cnnzoo.__file__).resolve().parents[1])
QUIET = dict(progress=False, log=None, device="cpu")
TINY = dict(data="synthetic:32", image_size=8, batch_size=8, **QUIET)


def _one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI in this process (a traceback fails the test); exit 2 and one line on stderr."""
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnzoo: error:") and "\n" not in err and "Traceback" not in err, err
    return err


# --- 1. a length never changes the recipe, the input size or the augmentation -----------------------------------------


def test_a_length_keeps_the_default_recipe_on_digits():
    plain = configure("resnet20")
    for kwargs in ({"epochs": 3}, {"overrides": ["epochs=3"]}, {"overrides": ["iterations=50"]}):
        config = configure("resnet20", **kwargs)
        assert (config.recipe.name, config.image_size) == ("quick", 16), kwargs
        assert config.recipe.geometry(16) == plain.recipe.geometry(16), "the same augmentation"
    # a model whose smallest side is above 16 px: the quick recipe at that side, not a refusal
    assert (configure("alexnet").recipe.name, configure("alexnet", epochs=2).image_size) == ("quick", 227)
    assert configure("resnet20", data="synthetic:32").recipe.name == "resnet_cifar", "other data: the model's own"


# --- 2. one length replaces the other ----------------------------------------------------------------------------------


def test_setting_one_length_replaces_the_other():
    assert (resolve_recipe("resnet_cifar", ["epochs=2"]).epochs, resolve_recipe("resnet_cifar", ["epochs=2"])
            .iterations) == (2, None)
    assert (resolve_recipe("wrn_cifar", ["iterations=500"]).epochs, resolve_recipe("wrn_cifar", ["iterations=500"])
            .iterations) == (None, 500)
    with pytest.raises(UserError, match="one length"):
        resolve_recipe("quick", ["epochs=2", "iterations=100"])

def test_a_length_set_plans_the_run(tmp_path):
    config = configure("resnet20", overrides=["epochs=2"], out=tmp_path / "r",
                       **{k: v for k, v in TINY.items() if k != "log"})
    run = prepare(config, log=None)
    assert (run.num_epochs, run.total_steps) == (2, 8), "2 epochs of 4 steps, not 64,000 steps"
    # the recipe's milestones follow the length set, as with --epochs: at 50% and 75% of the run
    assert run.record["schedule"]["scaled"] == {"milestones_iterations": [4, 6]}


# --- 3. milestone fields replace the recipe's; the schedule line and the epoch line say what they show ----------------


def test_setting_a_milestone_field_replaces_the_recipes_milestones():
    recipe = resolve_recipe("resnet_cifar", ["lr=0.05", "milestones_epochs=30,60"])
    assert recipe.milestones_iterations == () and recipe.milestones_epochs == (30.0, 60.0)
    s = fit_schedule(recipe, total_steps=90 * 11, steps_per_epoch=11, explicit=["lr", "milestones_epochs"])
    assert s.line == "schedule: lr 0.05, x0.1 at epochs 30 and 60 of 90"
    lrs = [lr_at(e * 11, s.recipe, steps_per_epoch=11, total_steps=990) for e in (29, 30, 45, 59, 60, 89)]
    assert lrs == pytest.approx([0.05, 0.005, 0.005, 0.005, 0.0005, 0.0005]), "two drops, not four"
    assert resolve_recipe("quick", ["warmup_iterations=40"]).warmup_epochs == 0, "a warm-up field replaces the other"


def test_the_schedule_line_gives_whole_epochs_or_names_the_steps():
    # 30 epochs of 391 steps: He et al.'s drops at 50% and 75% land on whole epochs (15, and 22.5 -> 23)
    long = fit_schedule(RECIPES["resnet_cifar"], total_steps=30 * 391, steps_per_epoch=391)
    assert "x0.1 at epochs 15 and 23 of 30 (" in long.line
    # 3 epochs of 11 steps: whole epochs would move the drops by a sixth of the run; the line names the steps
    short = fit_schedule(RECIPES["resnet_cifar"], total_steps=33, steps_per_epoch=11)
    assert "x0.1 at steps 16 and 25 of 33 (epochs 1.45 and 2.27 of 3)" in short.line
    scaled_warmup = fit_schedule(RECIPES["quick"], total_steps=30 * 10, steps_per_epoch=10)
    assert "after a linear warm-up of 2 epoch(s) (" in scaled_warmup.line, "2.5 epochs: a whole number"


def test_an_epoch_line_shows_the_lr_range_it_trained_with(tmp_path):
    lines: list[str] = []
    result = train("resnet20", recipe="quick", epochs=2, out=tmp_path / "r", checkpoints=False,
                   **{**TINY, "log": lines.append})
    first, last = (r for r in result.history)
    assert first["lr_first"] < first["lr"], "warm-up: the epoch went up from its first lr to its last"
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert f"lr {first['lr_first']:.4g}->{first['lr']:.4g} " in epoch_lines[0]
    assert f"lr {last['lr_first']:.4g}->{last['lr']:.4g} " in epoch_lines[1]
    row = {"epoch": 1, "lr": 0.1, "lr_first": 0.1, "train_loss": 1.0, "train_top1": 1.0, "val_loss": 1.0,
           "val_top1": 1.0, "val_top5": 1.0, "images_per_s": 1.0, "seconds": 1.0}
    assert "lr 0.1  train" in epoch_line(row, 1), "a constant lr: one number"


# --- 4. every field's valid range, declared once and checked at every entry point --------------------------------------


BAD_FIELDS = ["milestones_epochs=-3", "milestones_iterations=-5", "milestones_fraction=1.5", "warmup_epochs=-1",
              "warmup_iterations=-400", "plateau_patience_epochs=-1", "plateau_patience_epochs=0",
              "warmup_start_lr=-0.1", "power=-1", "aux_loss_weight=nan", "pad_px=1000", "crop_px=1",
              "gamma=0", "step_epochs=-8", "pca_lighting=-0.1", "plateau_threshold=-1", "epochs=100000000000",
              "batch_size=100000000000000000000", "dampening=2", "resize_px=100000"]


def test_every_recipe_field_declares_its_range():
    from cnnzoo.training.recipes import FIELD_RANGES

    fields = {f.name for f in dataclasses.fields(Recipe)} - {"name", "source"}
    assert fields == set(FIELD_RANGES), "a new field needs its valid values in FIELD_RANGES"
    for recipe in RECIPES.values():  # the papers' rows are valid
        assert Recipe.from_dict(recipe.to_dict()) == recipe


@pytest.mark.parametrize("bad", BAD_FIELDS)
def test_out_of_range_fields_are_refused_at_every_entry_point(bad, capsys, tmp_path):
    recipe = "quick" if bad.split("=")[0] in ("pad_px", "crop_px") else "resnet_imagenet"
    with pytest.raises(UserError):
        resolve_recipe(recipe, [bad])  # --set and cnnzoo.train(overrides=...)
    key, value = bad.split("=")
    with pytest.raises(UserError):
        Recipe.from_dict({**RECIPES[recipe].to_dict(), key: value})  # a run's config.json on resume
    err = _one_line_error(capsys, ["train", "resnet20", "--recipe", recipe, "--set", bad, "--out", str(tmp_path / "r")])
    assert key in err
    assert not (tmp_path / "r").exists()


def test_a_resumed_config_is_checked_too_and_model_args_have_ranges(tmp_path, capsys):
    train("resnet20", recipe="quick", epochs=1, out=tmp_path / "r", **TINY)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    config["recipe"]["warmup_start_lr"] = -0.1
    (tmp_path / "r" / "config.json").write_text(json.dumps(config))
    err = _one_line_error(capsys, ["train", "--resume", str(tmp_path / "r"), "--epochs", "2"])
    assert "warmup_start_lr" in err
    for arg in ("dropout=-0.1", "dropout=1.5", "drop_path_rate=nan"):
        err = _one_line_error(capsys, ["train", "resnet20", "--model-arg", arg, "--out", str(tmp_path / "m")])
        assert arg.split("=")[0] in err
    with pytest.raises(UserError, match="dropout"):
        train("resnet20", model_kwargs={"dropout": -0.1}, **TINY)


# --- 5. resume keeps the thread count; its header names the run's recipe ---------------------------------------------


def test_resume_reuses_the_recorded_thread_count(tmp_path):
    before = torch.get_num_threads()
    lines: list[str] = []
    try:
        train("resnet20", recipe="quick", epochs=1, threads=2, out=tmp_path / "r", **TINY)
        torch.set_num_threads(1)
        train(resume=tmp_path / "r", epochs=2, progress=False, log=lines.append)
        assert json.loads((tmp_path / "r" / "config.json").read_text())["threads"] == 2
        assert torch.get_num_threads() == 2, "the resumed run ran with the run's own thread count"
        assert any(line.startswith("recipe: quick, as the run started (") for line in lines), lines[:4]
        with pytest.warns(UserWarning, match="not bit-identical"):
            train(resume=tmp_path / "r", epochs=3, threads=1, progress=False, log=None)
    finally:
        torch.set_num_threads(before)


# --- 6. resume refuses changed data and unusable states; a run killed before its first checkpoint starts over ---------


def _folder(root: Path, per_class: int) -> Path:
    rs = np.random.RandomState(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rs.randint(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_resume_refuses_data_that_changed(tmp_path, capsys):
    data = _folder(tmp_path / "data", 10)
    train("resnet20", data=str(data), image_size=8, batch_size=4, epochs=1, out=tmp_path / "r", cache="off",
          workers=0, **QUIET)
    _folder(tmp_path / "data", 14)  # 8 more images
    err = _one_line_error(capsys, ["train", "--resume", str(tmp_path / "r"), "--epochs", "2", "--workers", "0"])
    assert "the data changed since the run started" in err and "then" in err


@pytest.mark.parametrize("damage", ["epoch=-1", "step past the epoch", "garbled history", "no rng"])
def test_resume_refuses_an_unusable_state_in_one_line(damage, tmp_path, capsys):
    train("resnet20", recipe="quick", epochs=1, out=tmp_path / "r", **TINY)
    path = tmp_path / "r" / "last.pt"
    state = load_state(path)
    if damage == "epoch=-1":
        state["epoch"] = -1
    elif damage == "step past the epoch":
        state["step_in_epoch"] = state["config"]["steps_per_epoch"] + 3
    elif damage == "garbled history":
        state["history"] = [{"epoch": "one"}]
    else:
        del state["rng"]
    torch.save(state, path)
    err = _one_line_error(capsys, ["train", "--resume", str(tmp_path / "r"), "--epochs", "2"])
    assert "not a usable training state" in err


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed(tmp_path, capsys):
    config = configure("resnet20", recipe="quick", epochs=1, out=tmp_path / "r",
                       **{k: v for k, v in TINY.items() if k != "log"})
    run = prepare(config, log=None)  # config.json written, no checkpoint yet: as a SIGKILL during epoch 1 leaves it
    del run  # (its lock goes with it)
    gc.collect()
    assert not (tmp_path / "r" / "last.pt").exists() and (tmp_path / "r" / "config.json").exists()
    err = _one_line_error(capsys, ["train", "resnet20", "--data", "synthetic:32", "--out", str(tmp_path / "r")])
    assert f"--resume {tmp_path / 'r'}" in err, "the rule: it is continued with --resume"
    assert main(["train", "--resume", str(tmp_path / "r")]) == 0
    assert "starting it over" in capsys.readouterr().out
    assert load_state(tmp_path / "r" / "last.pt")["epoch"] == 1


# --- 7. one run per folder ---------------------------------------------------------------------------------------------


def test_a_run_folder_is_held_by_one_process(tmp_path, capsys):
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "cnnzoo", "train", "resnet20", "--data", "synthetic:64",
                             "--image-size", "8", "--epochs", "1000", "--batch-size", "16", "--out", str(out),
                             "--device", "cpu", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(20):
            if next_line(proc).startswith("epoch "):
                break
        for argv in (["train", "resnet20", "--data", "synthetic:64", "--image-size", "8", "--out", str(out)],
                     ["train", "resnet20", "--data", "synthetic:64", "--image-size", "8", "--out", str(out),
                      "--overwrite"],
                     ["train", "--resume", str(out)]):
            err = _one_line_error(capsys, argv)
            assert f"in use by process {proc.pid}" in err, err
        assert proc.poll() is None, "the running run goes on"
    finally:
        proc.kill()  # SIGKILL: no clean-up at all; the OS releases the lock
        proc.wait()
    assert main(["train", "--resume", str(out), "--epochs", str(load_state(out / "last.pt")["epoch"] + 1)]) == 0


def test_a_refused_run_leaves_no_folder_and_a_finished_one_frees_its_folder(tmp_path):
    with pytest.raises(UserError):
        train("resnet20", data=str(tmp_path / "missing"), out=tmp_path / "new" / "r", **QUIET)
    assert not (tmp_path / "new").exists(), "the folders it created for the lock are gone"
    train("resnet20", recipe="quick", epochs=1, out=tmp_path / "r", **TINY)
    train("resnet20", recipe="quick", epochs=1, out=tmp_path / "r", overwrite=True, **TINY)


# --- 10. ensemble: its report beside the runs, never replacing a file; a member once ------------------------------------


def test_ensemble_report_goes_beside_the_runs_and_never_replaces_a_file(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        train("resnet20", recipe="quick", epochs=1, out=runs / name, seed=len(name), **TINY)
    a, b = str(runs / "a"), str(runs / "b")
    err = _one_line_error(capsys, ["ensemble", a, a])
    assert "same checkpoint" in err
    _one_line_error(capsys, ["ensemble", a, f"{a}/best.safetensors"])
    monkeypatch.chdir(tmp_path)
    assert main(["ensemble", a, b]) == 0
    assert f"report -> {runs / 'ensemble.json'}" in capsys.readouterr().out
    first = (runs / "ensemble.json").read_bytes()
    assert main(["ensemble", a, b]) == 0
    assert f"report -> {runs / 'ensemble-2.json'}" in capsys.readouterr().out
    assert (runs / "ensemble.json").read_bytes() == first, "the earlier report is kept"
    err = _one_line_error(capsys, ["ensemble", a, b, "--json", str(runs / "ensemble.json")])
    assert "--overwrite" in err
    assert main(["ensemble", a, b, "--json", str(runs / "ensemble.json"), "--overwrite"]) == 0


# --- 11. numbers out of range, paths that cannot be written: one line from the entry point ------------------------------


@pytest.mark.parametrize("argv", [
    ["train", "resnet20", "--seed", str(2**70)],
    ["train", "resnet20", "--seed", "-1"],
    ["train", "resnet20", "--threads", str(10**20)],
    ["train", "resnet20", "--workers", str(10**20)],
    ["train", "resnet20", "--batch-size", str(10**20)],
    ["train", "resnet20", "--epochs", str(10**20)],
    ["train", "resnet20", "--image-size", str(10**20)],
    ["train", "resnet20", "--out", ""],
    ["train", "--resume", ""],
    ["rf", "--channels", str(10**23)],
    ["summary", "resnet20", "--batch-size", str(10**20)],
    ["summary", "resnet20", "--input", str(10**17)],
])
def test_numbers_out_of_range_are_one_line_errors(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, argv)
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_unusable_output_paths_are_one_line_errors(tmp_path, capsys):
    err = _one_line_error(capsys, ["train", "resnet20", "--out", str(tmp_path / ("x" * 300))])
    assert "--out" in err
    (tmp_path / "file").write_text("")
    _one_line_error(capsys, ["train", "resnet20", "--out", str(tmp_path / "file" / "r")])
    # a missing parent is created
    train("resnet20", recipe="quick", epochs=1, out=tmp_path / "new" / "parent" / "r", checkpoints=False, **TINY)
    assert (tmp_path / "new" / "parent" / "r" / "summary.json").exists()


def test_a_read_only_run_folder_on_resume_is_one_line(tmp_path, capsys):
    folder = tmp_path / "fs"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        train("resnet20", recipe="quick", epochs=1, out=folder / "r", **TINY)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        err = _one_line_error(capsys, ["train", "--resume", str(folder / "r"), "--epochs", "2"])
        assert "cannot write" in err and "Read-only" in err
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.parametrize("key, value", [("image_size", 10**20), ("image_size", 0), ("image_size", 4),
                                        ("eval_resize", 10**20), ("eval_resize", 8)])
def test_image_sizes_in_a_checkpoints_metadata_are_checked(key, value, tmp_path, capsys):
    from safetensors.torch import load_file

    from cnnzoo.checkpoint import read_weights_metadata, save_weights

    run = train("resnet20", recipe="quick", epochs=1, out=tmp_path / "r", **{**TINY, "image_size": 16})
    source = run.out / "best.safetensors"
    meta = {k: v for k, v in read_weights_metadata(source).items() if k != "format"}
    save_weights(tmp_path / "bad.safetensors", load_file(str(source)), {**meta, key: value})
    err = _one_line_error(capsys, ["eval", "--weights", str(tmp_path / "bad.safetensors"), "--data", "synthetic:32"])
    assert key in err

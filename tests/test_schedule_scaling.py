"""Schedules fitted to the run's length: every recipe's milestones at the same fractions of any run, the user's own
numbers taken as written, the schedule line, and the defaults of a run on digits."""

from __future__ import annotations

import json

import pytest

from cnnzoo.training import train
from cnnzoo.training.config import configure
from cnnzoo.training.recipes import RECIPES, resolve_recipe
from cnnzoo.training.schedules import WHOLE_EPOCH_SHIFT, fit_schedule, lr_at, milestone_steps, warmup_steps


def _recipe_steps(recipe, spe):
    return recipe.iterations or recipe.epochs * spe


@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("epochs", [3, 8, 40])
def test_every_recipe_keeps_its_shape_at_any_length(name, epochs):
    recipe, spe = RECIPES[name], 50
    total = epochs * spe
    fitted = fit_schedule(recipe, total_steps=total, steps_per_epoch=spe).recipe
    own = _recipe_steps(recipe, spe)
    if recipe.schedule == "multistep":
        want = [m / own for m in milestone_steps(recipe, spe, own)]
        got = [m / total for m in milestone_steps(fitted, spe, total)]
        assert len(got) == len(want)
        floor = 1 / epochs if recipe.milestones_epochs else 0.0  # a milestone in epochs is never before epoch 1
        for g, w in zip(got, want):  # a milestone lands where it lands in the paper's run (to 2% of the run: it
            # moves to a whole epoch when that moves it no further)
            assert g == pytest.approx(max(w, floor), abs=WHOLE_EPOCH_SHIFT), (name, epochs, got, want)
        assert all(m < total for m in milestone_steps(fitted, spe, total)) or name == "fractalnet"
    if recipe.schedule == "step":
        period = round(fitted.step_epochs * spe) / total
        assert period == pytest.approx(max(recipe.step_epochs * spe / own, 1 / epochs), abs=WHOLE_EPOCH_SHIFT)
    if recipe.schedule == "plateau":
        assert fitted.plateau_patience_epochs == max(1, round(recipe.plateau_patience_epochs * total / own))
    if warmup_steps(recipe, spe):
        assert warmup_steps(fitted, spe) >= spe or warmup_steps(fitted, spe) == warmup_steps(recipe, spe)
    # the learning rate actually used: at the same fraction of the run, the paper's run and this one agree
    same_warmup = abs(warmup_steps(fitted, spe) / total - warmup_steps(recipe, spe) / own) < 0.01
    if recipe.schedule in ("multistep", "cosine", "poly") and same_warmup:  # (a warm-up is never under 1 epoch)
        for frac in (0.1, 0.4, 0.6, 0.9):
            paper = lr_at(round(frac * own), recipe, steps_per_epoch=spe, total_steps=own)
            ours = lr_at(round(frac * total), fitted, steps_per_epoch=spe, total_steps=total)
            if round(frac * total) >= warmup_steps(fitted, spe):
                assert ours == pytest.approx(paper, rel=0.2, abs=1e-6), (name, epochs, frac)


def test_the_schedule_line_and_the_paper_lengths():
    s = fit_schedule(RECIPES["resnet_cifar"], total_steps=496, steps_per_epoch=62)
    assert s.line == ("schedule: lr 0.1, x0.1 at epochs 4 and 6 of 8 (He et al.'s 32k/48k of 64k iterations, "
                      "scaled x0.0077)")
    assert s.scaled == {"milestones_iterations": [248, 372]} and s.warnings == ()
    same = fit_schedule(RECIPES["resnet_cifar"], total_steps=64_000, steps_per_epoch=100)
    assert same.recipe == RECIPES["resnet_cifar"] and same.scaled == {} and "scaled" not in same.line


def test_an_explicit_user_milestone_is_not_rescaled():
    recipe = resolve_recipe("wrn_cifar", ["milestones_epochs=3,30"])
    s = fit_schedule(recipe, total_steps=10 * 20, steps_per_epoch=20, explicit=["milestones_epochs"])
    assert s.recipe.milestones_epochs == (3.0, 30.0)
    assert any("step 600 cannot happen" in w for w in s.warnings), "a milestone past the end is said"
    scaled = fit_schedule(RECIPES["wrn_cifar"], total_steps=10 * 20, steps_per_epoch=20)
    assert scaled.recipe.milestones_epochs == (3.0, 6.0, 8.0)
    # `--set epochs=` changes the length: the recipe's milestones follow it
    longer = configure("resnet20", data="synthetic:32", overrides=["epochs=10", "iterations=none"])
    assert longer.recipe_set == ("epochs", "iterations")
    s = fit_schedule(longer.recipe, total_steps=100, steps_per_epoch=10, explicit=longer.recipe_set)
    assert [m / 100 for m in milestone_steps(s.recipe, 10, 100)] == [0.5, 0.75]


def test_run_prints_and_saves_the_fitted_schedule(tmp_path):
    lines = []
    train("resnet20", data="synthetic:32", image_size=8, epochs=4, batch_size=8, out=tmp_path / "r", threads=1,
          progress=False, log=lines.append, device="cpu", checkpoints=False)
    assert lines[3] == ("schedule: lr 0.1, x0.1 at epochs 2 and 3 of 4 (He et al.'s 32k/48k of 64k iterations, "
                        "scaled x0.00025)")
    assert lines[0].startswith("data: synthetic:32, 10 classes, 32 training / 8 validation images")
    assert lines[1] == "model: resnet20, 269,722 parameters" and lines[2].startswith("recipe: resnet_cifar (He")
    assert lines[4] == "augmentation at 8 px: pad 1 (zeros) + random 8x8 crop, flip on"
    assert lines[5] == "plan: 4 epochs x 4 steps = 16 steps, batch 8"
    assert lines[6].startswith("layout: NCHW, the device's default (16 steps: too short to pay back a probe")
    assert "ETA" in lines[7] and "ETA" not in lines[-1]
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["recipe"]["milestones_iterations"] == [32000, 48000], "the recipe's own numbers, unscaled"
    assert config["schedule"]["scaled"] == {"milestones_iterations": [8, 12]} and config["threads"] == 1
    metrics = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [round(m["lr"], 6) for m in metrics] == [0.1, 0.1, 0.01, 0.001]


def test_digits_without_recipe_use_the_quick_recipe_at_16px():
    config = configure("resnet20")
    assert (config.data, config.recipe.name, config.image_size) == ("digits", "quick", 16)
    assert configure("resnet20", recipe="resnet_cifar").image_size == 32

"""``cnnzoo reproduce MODEL --data cifar10:PATH``: a model's paper recipe at the paper's full length, once per seed,
against the number its paper reports.

What is compared is the **final** test error (the last epoch's), as mean +- sample standard deviation over the
seeds. The best epoch's test error is printed too, labelled as an extra: choosing the best of many epochs on the
test set itself flatters the result, and that choice is behind many "cannot reproduce" reports. The paper number
is chosen from ``model_info(MODEL).results`` for the data set (see :func:`paper_number`); where the paper has none
for it, ``reproduce`` refuses in one line naming the data sets it has. ``digits`` and ``synthetic[:N]`` run the
same pipeline without a paper number (a check of the machinery with ``--epochs``, not a reproduction).

Each run is an ordinary run folder ``OUT/<model>-<data set>-seed<N>`` (an unfinished one is resumed, a finished
one reloaded); each result is appended to ``OUT/reproductions.csv`` (columns ``CSV_FIELDS``), which
``cnnzoo report OUT/reproductions.csv`` draws beside the papers' numbers.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..registry import PaperResult, model_info
from ..training import train
from ..version import __version__

CSV_NAME = "reproductions.csv"
CSV_FIELDS = ("time", "model", "data", "dataset", "paper_value", "paper_dataset", "paper_source", "recipe",
              "epochs", "steps", "images", "seeds", "final_error_mean", "final_error_std", "final_errors",
              "best_error_mean", "best_error_std", "train_seconds", "device", "runs", "cnnzoo_version")
# How a paper row is chosen for the set-up the recipes train (augmented, single model, default options, one crop):
# rows of another set-up rank lower, rows that are another network's number (a baseline) are never chosen.
_AUGMENTED = ("(+)", "(+aug", "(+ ", "translation", "flip", "mirroring")
_OTHER_SETUP = ("no augmentation", "deepest column", "plain", "dropout 0.3", "best-validation", "batch 64",
                "median of 5", "(++)", "torchvision", "10-crop", "multi", "dense")
_NOT_THIS_NETWORK = ("baseline",)
_SINGLE_CROP = ("1 crop", "single crop", "224", "1 cnn", "1 convnet", "(ilsvrc-2012)")


@dataclass(frozen=True)
class DataSet:
    """A ``--data`` spec read for ``reproduce``: the data set's name, what ``cnnzoo.train`` loads, and whether a
    paper could report it."""

    name: str  # "CIFAR-10", "CIFAR-100", "ImageNet", "digits", "synthetic"
    train_spec: str
    paper: bool


def read_data(spec: str) -> DataSet:
    kind, _, path = spec.partition(":")
    if kind == "cifar10" and path:
        return DataSet("CIFAR-10", spec, True)
    if kind == "cifar100" and path:
        return DataSet("CIFAR-100", spec, True)
    if kind == "imagenet" and path:
        return DataSet("ImageNet", path, True)
    if spec == "digits" or kind == "synthetic":
        return DataSet(kind, spec, False)
    raise UserError(f"reproduce --data {spec!r}: pass cifar10:PATH, cifar100:PATH or imagenet:PATH (an ImageNet "
                    "folder with train/ and val/), or digits / synthetic[:N] to check the pipeline")


def _matches(result: PaperResult, dataset: str) -> bool:
    text = result.dataset
    if dataset == "ImageNet":
        return ("ImageNet" in text or "ILSVRC-2012" in text) and "val" in text
    return text == dataset or text.startswith(dataset + " ")


def paper_number(model: str, dataset: str) -> PaperResult:
    """The paper's top-1 error on ``dataset`` for the set-up the recipe trains: augmented, single model, single
    crop, its default options; refused in one line (naming what the paper has) where there is none."""
    info = model_info(model)
    candidates = [r for r in info.results if r.metric == "top1_error_pct" and _matches(r, dataset)
                  and not any(s in r.dataset.lower() for s in _NOT_THIS_NETWORK)]
    if not candidates:
        has = sorted({r.dataset for r in info.results})
        listed = "; ".join(has) if has else "no paper number at all"
        raise UserError(f"{model}: its paper has no top-1 error on {dataset} to reproduce (it has: {listed})")

    def score(r: PaperResult) -> tuple[int, int]:
        text = r.dataset.lower()
        kind = _SINGLE_CROP if dataset == "ImageNet" else _AUGMENTED
        return sum(s in text for s in _OTHER_SETUP) == 0, any(s in text for s in kind)

    return max(candidates, key=score)  # the first of the best-scoring rows, in the registry's order


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1); no deviation from one value."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def _pm(m: float, s: float | None) -> str:
    return f"{m:.2f}%" + ("" if s is None else f" +- {s:.2f}")


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.partition(":")[2] or 0)
        return f"{device} ({torch.cuda.get_device_name(index)})"
    return device


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 else \
        f"{seconds:.1f} s"


def reproduce(model: str, data: str, *, seeds: int = 3, epochs: int | None = None, out: str | Path = "runs/repro",
              device: str = "auto", threads: int | None = None, log: Callable[[str], None] | None = print
              ) -> dict[str, Any]:
    """Train ``model`` with its paper recipe once per seed (0..seeds-1); returns the CSV row written."""
    say = log or (lambda line: None)
    info = model_info(model)
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    dataset = read_data(data)
    paper = paper_number(model, dataset.name) if dataset.paper else None
    out = Path(out)
    finals, bests, seconds, runs, summaries = [], [], 0.0, [], []
    for seed in range(seeds):
        path = out / f"{model}-{dataset.name.lower()}-seed{seed}" if epochs is None else \
            out / f"{model}-{dataset.name.lower()}-e{epochs}-seed{seed}"
        if (path / "last.pt").exists():
            result = train(model, resume=path, epochs=epochs, device=device, threads=threads, log=None)
        else:
            result = train(model, data=dataset.train_spec, epochs=epochs, seed=seed, out=path, device=device,
                           threads=threads, log=None, overwrite=path.exists())
        s = result.summary
        finals.append(100.0 - s["final_val_top1"])
        bests.append(100.0 - s["best_val_top1"])
        seconds += s["train_seconds"]
        runs.append(str(path))
        summaries.append(s)
        say(f"  seed {seed}: final error {finals[-1]:.2f}% (best epoch {s['best_epoch']}: {bests[-1]:.2f}%), "
            f"{s['epochs']} epochs in {_hours(s['train_seconds'])}, {path}")
    config = json.loads((Path(runs[0]) / "config.json").read_text())
    final_m, final_s = mean_std(finals)
    best_m, best_s = mean_std(bests)
    row = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model": model, "data": data, "dataset": dataset.name,
        "paper_value": "" if paper is None else paper.value, "paper_dataset": "" if paper is None else paper.dataset,
        "paper_source": "" if paper is None else paper.source, "recipe": config["recipe"]["name"],
        "epochs": summaries[0]["epochs"], "steps": config["total_steps"],
        "images": config["total_steps"] * config["recipe"]["batch_size"], "seeds": seeds,
        "final_error_mean": round(final_m, 4), "final_error_std": "" if final_s is None else round(final_s, 4),
        "final_errors": " ".join(f"{v:.4f}" for v in finals), "best_error_mean": round(best_m, 4),
        "best_error_std": "" if best_s is None else round(best_s, 4), "train_seconds": round(seconds, 1),
        "device": _device_name(summaries[0]["device"]), "runs": " ".join(runs), "cnnzoo_version": __version__,
    }
    table = append_row(out / CSV_NAME, row)
    split = "test set" if dataset.paper else "validation split"
    error = "test error" if dataset.paper else "validation error"
    say(f"{model} on {dataset.name} ({split}), recipe {row['recipe']}: {row['epochs']} epochs = {row['steps']:,} "
        f"steps = {row['images']:,} images per run, {seeds} seed{'s' if seeds > 1 else ''}")
    say(f"  paper:    {'-' if paper is None else f'{paper.value:g}% top-1 error  [{paper.source}; {paper.dataset}]'}"
        + ("" if paper is not None else f"  (no paper reports {dataset.name}: a pipeline check)"))
    say(f"  measured: {_pm(final_m, final_s)} final {error} (" + ", ".join(f"{v:.2f}" for v in finals) + ")")
    say(f"  extra:    {_pm(best_m, best_s)} best-epoch {error} (the best epoch picked on the evaluation set itself: "
        "flattering, not comparable)")
    say(f"  time:     {_hours(seconds)} of training in all ({_hours(seconds / seeds)} per run) on {row['device']}")
    say(f"  table:    {table}")
    if info.recipe is None:
        say(f"  note: {model} has no paper recipe of its own; trained with '{row['recipe']}'")
    return row


def append_row(path: Path, row: dict[str, Any]) -> Path:
    """One line appended to the reproductions table (the header first when the file is new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    return path


TRAIN_IMAGES = {"CIFAR-10": 50_000, "CIFAR-100": 50_000, "ImageNet": 1_281_167}  # training split sizes


def full_length(model: str, dataset: str) -> dict[str, Any]:
    """What one ``reproduce`` run of ``model`` on ``dataset`` trains at the recipe's full length: epochs, SGD
    steps and images (steps x batch), as the trainer plans it (a last partial batch of an epoch is dropped)."""
    from ..training import get_recipe

    info = model_info(model)
    recipe = get_recipe(info.recipe or "quick")
    steps_per_epoch = TRAIN_IMAGES[dataset] // recipe.batch_size
    steps = recipe.iterations or recipe.epochs * steps_per_epoch
    return {"model": model, "dataset": dataset, "recipe": recipe.name, "batch": recipe.batch_size,
            "epochs": -(-steps // steps_per_epoch), "steps": steps, "images": steps * recipe.batch_size}

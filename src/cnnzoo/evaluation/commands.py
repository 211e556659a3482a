"""``cnnzoo eval``, ``cnnzoo ensemble`` and ``cnnzoo predict``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from ..errors import UserError
from ..files import write_text
from ..metrics import confusion_csv
from .evaluator import ensemble, evaluate_checkpoint, predict
from .output import print_predictions, write_json_output
from .tta import TTA_MODES

_SPLITS = ("val", "train", "all")
_PER_CLASS_LINES = 30  # more classes than this: the worst five are printed, all of them go to --json


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="digits | cluttered-digits | synthetic[:N] | cifar10:PATH | cifar100:PATH | an "
                   "image folder (default: the data the checkpoint was trained on)")
    p.add_argument("--split", choices=_SPLITS, default="val",
                   help="val (default: the run's validation split, CIFAR's test batch, PATH/val), train, or all "
                   "(every image, e.g. a separate test folder)")
    p.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="test-time augmentation: flip (image + mirror) or 10crop (AlexNet/VGG: 4 corners + centre "
                   "of the eval-resize view, and their mirrors); softmax outputs are averaged")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), help="autocast dtype (default: the run's own on the kind "
                   "of device it trained on, else bf16 on CUDA, off on CPU)")
    p.add_argument("--workers", type=int, help="image-folder decoding processes (default: the cores less one)")
    p.add_argument("--val-fraction", type=float, help="validation share of a single-tree folder (default: the run's)")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}%"


def _cmd_eval(args: argparse.Namespace) -> int:
    r = evaluate_checkpoint(args.weights, model=args.model, data=args.data, split=args.split, tta=args.tta,
                            batch_size=args.batch_size, device=args.device, amp=args.amp, workers=args.workers,
                            val_fraction=args.val_fraction)
    out = sys.stdout if args.json != "-" else sys.stderr  # `--json -` keeps stdout for the JSON alone
    print(f"{r['model']} on {r['data']} ({r['split']} split, {r['count']:,} images, tta {r['tta']}; "
          f"weights {r['weights']})", file=out)
    print(f"  top-1: {_pct(r['top1'])} accuracy, {_pct(r['top1_error'])} error", file=out)
    print(f"  top-5: {_pct(r['top5'])} accuracy, {_pct(r['top5_error'])} error", file=out)
    print(f"  loss:  {r['loss']:.4f}", file=out)
    rows = [(name, c["accuracy"], c["count"]) for name, c in r["per_class"].items()]
    if len(rows) > _PER_CLASS_LINES:
        rows = sorted((row for row in rows if row[2]), key=lambda row: row[1])[:5]
        print(f"per-class accuracy, the 5 lowest of {len(r['per_class'])} (all of them with --json):", file=out)
    else:
        print("per-class accuracy:", file=out)
    width = max(len(str(name)) for name, *_ in rows)
    for name, acc, count in rows:
        print(f"  {name:<{width}}  {_pct(acc):>8}  of {count}", file=out)
    if r["skipped_files"]:
        print(f"skipped {len(r['skipped_files'])} unreadable image files", file=out)
    if args.confusion:
        write_text(Path(args.confusion), confusion_csv(torch.tensor(r["confusion"]), r["classes"]))
        print(f"confusion matrix (rows true, columns predicted) -> {args.confusion}", file=out)
    if args.json:
        write_json_output(args.json, r)
    return 0


def _cmd_ensemble(args: argparse.Namespace) -> int:
    if args.json not in (None, "-"):
        check_new_file(Path(args.json), overwrite=args.overwrite, flag="--json")  # before the long evaluation
    r = ensemble(args.members, data=args.data, split=args.split, tta=args.tta, batch_size=args.batch_size,
                 device=args.device, amp=args.amp, workers=args.workers, val_fraction=args.val_fraction)
    if args.json is None:  # beside the runs, under a name no file has
        args.json = str(claim_new_file(default_report_folder(args.members), "ensemble", ".json"))
    out = sys.stdout if args.json != "-" else sys.stderr
    e = r["ensemble"]
    label = f"ensemble of {len(r['members'])} (mean softmax)"
    rows = [(m["weights"], m["model"], m["top1"], m["top5"]) for m in r["members"]]
    rows.append((label, "", e["top1"], e["top5"]))
    width, model_width = max(len(row[0]) for row in rows), max(len(row[1]) for row in rows)
    print(f"{r['data']} ({r['split']} split, {e['count']:,} images, tta {r['tta']})", file=out)
    print(f"{'member':<{width}}  {'model':<{model_width}}  {'top-1':>8}  {'top-5':>8}", file=out)
    for path, model, top1, top5 in rows:
        print(f"{path:<{width}}  {model:<{model_width}}  {_pct(top1):>8}  {_pct(top5):>8}", file=out)
    print(f"ensemble error: top-1 {_pct(e['top1_error'])}, top-5 {_pct(e['top5_error'])}", file=out)
    write_json_output(args.json, r)
    if args.json != "-":
        print(f"report -> {args.json}", file=out)
    return 0


def check_new_file(path: Path, *, overwrite: bool, flag: str) -> None:
    """Refuse to replace an existing file without ``--overwrite`` (a device, a FIFO... is written through)."""
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; name a file")
    if path.is_file() and not overwrite:
        raise UserError(f"{flag} {path}: exists; pass --overwrite to replace it, or name another file")


def default_report_folder(members: list[str]) -> Path:
    """Where ``ensemble`` writes its report by default: the folder that holds the members' run folders (``runs/``
    for ``runs/a runs/b/best.safetensors``) when they share one, else the current directory."""
    parents = {(Path(m).expanduser() if Path(m).expanduser().is_dir() else Path(m).expanduser().parent).parent
               for m in members}
    return parents.pop() if len(parents) == 1 else Path(".")


def claim_new_file(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem-2.suffix``, ``-3``...: the first name no file has, created empty here so that
    no other process takes it (the report is then written over this process's own empty file)."""
    for n in range(1, 10_000):
        path = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"cannot write the report in {folder} ({exc.strerror}); pass --json PATH") from None
    raise UserError(f"{folder}: {stem}{suffix} to {stem}-9999{suffix} all exist; pass --json PATH")


def predict_command(args: argparse.Namespace) -> int:
    """``cnnzoo predict --weights CKPT IMAGE...`` (``--onnx FILE`` is run by :mod:`cnnzoo.exporting`, which imports
    this package: the CLI dispatches it)."""
    if not args.weights:
        raise UserError("predict needs --weights CKPT (or --onnx FILE)")
    results = predict(args.weights, args.images, model=args.model, top_k=args.top_k, tta=args.tta,
                      batch_size=args.batch_size, device=args.device, amp=args.amp, workers=args.workers)
    return print_predictions(results, args.json, {"weights": args.weights})


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="top-1/top-5, per-class accuracy and confusion matrix of a checkpoint",
        description="Evaluate a checkpoint (a run directory, its .safetensors or last.pt, or a plain state dict with "
        "MODEL): top-1/top-5 accuracy and error, micro-averaged over every image, per-class accuracy, confusion "
        "matrix; optional test-time augmentation. Images are prepared as in the run's validation.",
        epilog="examples:\n  cnnzoo eval resnet20 --weights runs/resnet20-20260101-120000\n"
        "  cnnzoo eval alexnet --weights runs/a/best.safetensors --data ~/photos --split all --tta 10crop "
        "--json eval.json --confusion confusion.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="the network (default: the one the checkpoint names)")
    p.add_argument("--weights", required=True, metavar="CKPT", help="a run directory or a checkpoint file")
    _common(p)
    p.add_argument("--json", metavar="PATH", help="write the report as JSON (- for stdout)")
    p.add_argument("--confusion", metavar="PATH", help="write the confusion matrix as CSV")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser(
        "ensemble", help="average the softmax of several checkpoints",
        description="Evaluate several checkpoints and their ensemble, the average of their softmax outputs "
        "(Krizhevsky et al. 2012: 7 CNNs, 18.2% -> 15.4% top-5 error). Members may be different architectures "
        "trained on the same classes; each sees the images as its own run's validation did.",
    )
    p.add_argument("members", nargs="+", metavar="CKPT_OR_RUN", help="run directories or checkpoint files")
    _common(p)
    p.add_argument("--json", metavar="PATH",
                   help="where to write the report (- for stdout; default: ensemble.json beside the runs, i.e. in "
                   "the folder holding the members' run folders when they share one, else here; -2, -3... when it "
                   "exists)")
    p.add_argument("--overwrite", action="store_true", help="replace the file --json names if it exists")
    p.set_defaults(func=_cmd_ensemble)

    p = sub.add_parser(
        "predict", help="top-k classes of image files",
        description="The top-k classes, with their probabilities, of your images (files or folders), with the class "
        "names of the checkpoint.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders of them")
    p.add_argument("--weights", metavar="CKPT", help="a run directory or a checkpoint file")
    p.add_argument("--onnx", metavar="FILE", help="instead of --weights: a file from `cnnzoo export`, run by "
                   "onnxruntime with its embedded classes and preprocessing")
    p.add_argument("--model", help="the network, for a plain state dict without cnnzoo metadata")
    p.add_argument("--top-k", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation (as for eval)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, ...")
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), help="autocast dtype (default: the run's own on the kind "
                   "of device it trained on, else bf16 on CUDA, off on CPU)")
    p.add_argument("--workers", type=int, help="decoding processes (default: the cores less one; none for one batch)")
    p.add_argument("--json", metavar="PATH", help="write the predictions as JSON (- for stdout)")
    p.set_defaults(func=predict_command)

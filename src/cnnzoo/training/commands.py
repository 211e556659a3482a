"""``cnnzoo train MODEL ...`` and ``cnnzoo recipes [NAME]``."""

from __future__ import annotations

import argparse
import sys

import torch.distributed

from ..data.loaders import MAX_WORKERS
from ..errors import UserError
from .config import RunConfig, configure
from .distributed import Runtime, initialized
from .layout import LAYOUT_STEPS, PAYBACK
from .recipes import RECIPES, get_recipe, list_recipes
from .run_files import print_line
from .stopping import NonFiniteLoss, TrainingInterrupted
from .trainer import run_training

_EPILOG = """\
data:
  digits              scikit-learn's 8x8 digits (1,797 images, offline; the default)
  synthetic[:N]       N random images of the model's input size (smoke tests, benchmarks)
  cifar10:PATH        CIFAR-10 python batches in PATH (or PATH/cifar-10-batches-py); --download when online
  cifar100:PATH       CIFAR-100 python batches (PATH or PATH/cifar-100-python)
  PATH                an image folder: PATH/train/<class>/* with PATH/val/<class>/* (or PATH/test/, used as
                      validation), or PATH/train/ alone or PATH/<class>/* split by --val-fraction (fixed seed);
                      decoded once and held in memory when it fits (--cache)

Most papers' recipes flip images: digits, text and other non-mirror-symmetric data need --set flip=false.
--epochs N keeps the recipe's shape: its milestones, warm-up and patience scale to the run (the schedule: line).

examples:
  cnnzoo train resnet20 --data digits --recipe quick --image-size 16
  cnnzoo train resnet56 --data cifar10:~/data --out runs/r56
  cnnzoo train resnet20 --data ~/photos --set lr=0.05 milestones_epochs=30,60 --epochs 90
  cnnzoo train resnet50_tv --weights resnet50-11ad3fa6.pth --data ~/photos --freeze backbone
  cnnzoo train --resume runs/r56
  torchrun --nproc_per_node 4 -m cnnzoo train resnet50 --data ~/imagenet --sync-bn   # 4 GPUs, global batch 256

bad input:
  Unreadable image files (zero bytes, truncated, not an image, hidden files, decompression bombs) are skipped and
  listed in a warning and in summary.json. A non-finite loss stops training with the epoch and step named (exit 1);
  --on-nonfinite skip drops such steps instead; weights that became non-finite are never saved. SIGINT/SIGTERM/SIGHUP
  and a data-loading worker that dies save a checkpoint at the last finished step (exit 130/143/129, 1).
"""


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a network with its paper's recipe",
        description="Train a registered network with the recipe its paper used (see `cnnzoo recipes`). Writes "
        "metrics.jsonl, summary.json, config.json, confusion_matrix.csv and checkpoints (last/best .safetensors, "
        "last.pt) to --out.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="a registered model name (see `cnnzoo list`); optional with --resume")
    p.add_argument("--data", help="digits (default) | cluttered-digits | synthetic[:N] | cifar10:PATH | "
                   "cifar100:PATH | PATH")
    p.add_argument("--recipe", help="a recipe name (default: the model's own; see `cnnzoo recipes`)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="override recipe fields, e.g. --set lr=0.05 milestones_epochs=30,60 nesterov=true")
    p.add_argument("--epochs", type=int, help="train this many epochs (default: the recipe's length); a length never "
                   "changes the recipe, the input size or the augmentation")
    p.add_argument("--batch-size", type=int, help="same as --set batch_size=N (under torchrun: the global batch, "
                   "split over the processes)")
    p.add_argument("--image-size", type=int, help="input side in pixels (default: the model's)")
    p.add_argument("--out", help="run directory (default: runs/<model>-<time>, never an existing one); an earlier "
                   "run there is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the earlier run in --out (its files are "
                   "removed first)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--device", default="auto", help="auto (default: cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, help="random seed (default 0); same seed and layout (config.json), same "
                   "result on CPU")
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), help="mixed precision (default: bf16 on CUDA, off on CPU)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format (default: the faster of the two, timed at the start of a run of "
                   f"{PAYBACK * LAYOUT_STEPS} steps or more; else on for CUDA only; a resumed run keeps its own)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--val-fraction", type=float, default=0.2, help="validation share of a single-tree folder or "
                   "digits (default 0.2)")
    p.add_argument("--download", action="store_true", help="download CIFAR with torchvision when it is missing")
    p.add_argument("--workers", type=int, help="image-folder decoding processes (default: this process's share of the "
                   f"cores less one, at most {MAX_WORKERS})")
    p.add_argument("--no-checkpoints", dest="checkpoints", action="store_false", help="write no checkpoints")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only on a terminal)")
    p.add_argument("--sync-bn", action="store_true", help="under torchrun on CUDA: batch norm over the global batch "
                   "(SyncBatchNorm)")
    p.add_argument("--on-nonfinite", choices=("stop", "skip"), default="stop",
                   help="a step whose loss is inf/NaN: stop training, naming the epoch and step (default), or skip "
                   "the step (20 in a row still stop)")
    p.add_argument("--model-arg", dest="model_args", action="append", default=[], metavar="NAME=VALUE",
                   help="an option of the model's class, e.g. --model-arg dropout=0.3 --model-arg drop_path_rate=0.2")
    p.add_argument("--cache", choices=("auto", "memory", "disk", "off"), default="auto",
                   help="image folders: decode once and hold in memory when they fit a quarter of the free memory "
                   "(auto, default; also kept on disk for the next run), always in memory, through a disk cache, or "
                   "decode every epoch (off)")
    p.add_argument("--weights", metavar="FILE", help="fine-tune: start from these weights (a torchvision .pth for "
                   "the _tv/torchvision-named models, or a cnnzoo run's weights); a classifier of another class count "
                   "is replaced; default recipe: finetune")
    p.add_argument("--freeze", choices=("backbone",), help="with --weights: train the classifier only")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's; --resume: the run's own); recorded in "
                   "config.json")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (cuDNN benchmark off, "
                   "CUBLAS_WORKSPACE_CONFIG=:4096:8): a resume on a GPU is then bit-exact, at some speed")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                   help="CUDA: TF32 tensor cores for fp32 matmuls and convolutions (default on; --no-tf32: full fp32)")
    p.add_argument("--decode", choices=("cpu", "gpu"), default="cpu",
                   help="a streamed image folder's JPEGs: decoded by PIL in the loader workers (default), or by nvJPEG "
                   "on the GPU, a batch at a time (CUDA; other formats still by PIL)")
    p.set_defaults(func=_cmd_train)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """``cnnzoo train``'s flags as a :class:`RunConfig` (with ``--resume``: the run's own, reloaded)."""
    if args.model is None and args.resume is None:
        raise UserError("train: name a model (see `cnnzoo list`) or --resume a run directory")
    return configure(
        args.model, data=args.data, recipe=args.recipe, overrides=args.overrides, batch_size=args.batch_size,
        image_size=args.image_size, seed=args.seed, val_fraction=args.val_fraction, out=args.out, resume=args.resume,
        epochs=args.epochs, device=args.device, amp=args.amp, channels_last=args.channels_last, compile=args.compile,
        download=args.download, workers=args.workers, checkpoints=args.checkpoints, progress=args.progress,
        sync_bn=args.sync_bn, on_nonfinite=args.on_nonfinite, overwrite=args.overwrite, threads=args.threads,
        deterministic=args.deterministic, tf32=args.tf32, decode=args.decode,
        **({"model_kwargs": args.model_args, "cache": args.cache, "weights": args.weights, "freeze": args.freeze}
           if args.resume is None else {}),
    )


def _cmd_train(args: argparse.Namespace) -> int:
    main = Runtime.from_env().main
    try:
        result = run_training(config_from_args(args), log=print_line)
    except TrainingInterrupted as exc:
        if main:
            print(f"cnnzoo: {exc}", file=sys.stderr)
        return exc.exit_code
    except NonFiniteLoss as exc:
        if main:
            print(f"cnnzoo: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if initialized():
            torch.distributed.destroy_process_group()
    if not main:
        return 0
    s = result.summary
    print(f"{s['model']} on {s['data']}: val top-1 {s['final_val_top1']:.2f}% (best {s['best_val_top1']:.2f}% at "
          f"epoch {s['best_epoch']}), top-5 {s['final_val_top5']:.2f}%, {s['train_seconds']:.1f} s training, "
          f"{s['images_per_s']:,.0f} img/s -> {result.out}")
    if s["skipped_count"]:
        print(f"skipped {s['skipped_count']} unreadable image files (listed in {result.out / 'summary.json'})")
    args.run_dir = result.out  # the CLI draws the run's report.html
    return 0


def recipe_table() -> str:
    rows = [("name", "length", "batch", "lr", "schedule", "wd", "augment")]
    for name in list_recipes():
        r = RECIPES[name]
        length = f"{r.iterations:,} it" if r.iterations else f"{r.epochs} ep"
        schedule = r.schedule + (" nesterov" if r.nesterov else "")
        rows.append((name, length, str(r.batch_size), f"{r.lr:g}", schedule, f"{r.weight_decay:g}", r.augment))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cmd_recipes(args: argparse.Namespace) -> int:
    if args.name is None:
        print(recipe_table())
        return 0
    recipe = get_recipe(args.name)
    for key, value in recipe.to_dict().items():
        if key != "source":
            print(f"  {key:<24}{value}")
    print(f"  source: {recipe.source}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    _add_train(sub)
    p = sub.add_parser("recipes", help="list the training recipes (or show one)",
                       description="The papers' training recipes; every field can be overridden with --set.")
    p.add_argument("name", nargs="?", help="show every field of this recipe and its source")
    p.set_defaults(func=_cmd_recipes)

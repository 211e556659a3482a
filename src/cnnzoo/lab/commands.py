"""``cnnzoo lab [NAME ... | all]`` and ``cnnzoo reproduce MODEL --data SPEC``."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from ..training import NonFiniteLoss, TrainingInterrupted
from .experiments import EXPERIMENTS, select
from .reproduce import reproduce
from .runner import LabSettings
from .session import LAB_HTML, LAB_JSON, run_lab


def _list() -> int:
    width = max(len(e.name) for e in EXPERIMENTS)
    print("The lecture's claims as experiments (`cnnzoo lab NAME`, or `cnnzoo lab all`):\n")
    for e in EXPERIMENTS:
        kind = "trained " if e.trained else "analytic"
        print(f"{e.name.ljust(width)}  {kind}  {e.title}")
        for line in textwrap.wrap(f"[{e.source}]", 100):
            print(f"{'':{width}}            {line}")
    print(f"\n{len(EXPERIMENTS)} experiments; --scale smoke (default: CPU, minutes) or --scale paper "
          "(--data cifar10:PATH, a GPU, hours)")
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    if not args.names:
        return _list()
    experiments = select(args.names)
    out = Path(args.out or f"runs/lab-{args.scale}")
    settings = LabSettings(scale=args.scale, data=args.data, device=args.device, seeds=args.seeds, out=out,
                           resume=args.resume, epochs=args.epochs, threads=args.threads,
                           run_reports=args.run_reports, verbose=args.verbose)
    again = f"the same command with --resume (the runs are in {out})"
    try:
        lab = run_lab(experiments, settings)
    except TrainingInterrupted as exc:
        print(f"cnnzoo: {exc.args[0].split(';')[0]}; continue the lab with: {again}", file=sys.stderr)
        return exc.exit_code
    except NonFiniteLoss as exc:
        print(f"cnnzoo: error: {exc} (the lab stopped; after a change, continue with: {again})", file=sys.stderr)
        return 1
    ran = [lab["experiments"][e.name] for e in experiments]
    print(f"\n{len(ran)} verdict{'s' if len(ran) > 1 else ''} ({args.scale} scale, "
          f"{sum(e['seconds'] for e in ran):.0f} s):")
    for entry in ran:
        print(f"  {entry['verdict']}")
    print(f"lab: {out / LAB_JSON}, {out / LAB_HTML}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    reproduce(args.model, args.data, seeds=args.seeds, epochs=args.epochs, out=args.out, device=args.device,
              threads=args.threads)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lab",
        help="the lecture's claims as experiments with verdicts",
        description="Each claim of CS231n lecture 9 as an experiment: its source, a verdict rule declared up "
        "front, a protocol, and a verdict line with the measured numbers. Without NAME: the list. Trained runs "
        "are ordinary run folders under OUT/<experiment>/; OUT/lab.json and OUT/lab.html hold the results.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="experiments to run, or 'all' (none: list them)")
    p.add_argument("--scale", choices=("smoke", "paper"), default="smoke",
                   help="smoke (default): small data and networks on the CPU in minutes; paper: the papers' "
                   "networks and recipes on --data cifar10:PATH (meant for a GPU: hours)")
    p.add_argument("--data", help="replace each trained experiment's data set (digits, cluttered-digits, "
                   "synthetic[:N], cifar10:PATH, a folder; --scale paper needs cifar10:PATH)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--seeds", type=int, default=1, help="train every configuration with seeds 0..N-1 (numbers "
                   "are means; the ensemble uses at least 4 members at smoke scale, 7 at paper scale)")
    p.add_argument("--out", help="output folder (default: runs/lab-<scale>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted lab in --out: unfinished runs "
                   "resume from their checkpoint, finished ones are reloaded")
    p.add_argument("--epochs", type=int, help="train every run this many epochs (short looks; the verdicts are "
                   "then not the protocol's)")
    p.add_argument("--threads", type=int, help="CPU threads for training (default: torch's)")
    p.add_argument("--no-run-reports", dest="run_reports", action="store_false",
                   help="do not write report.html in each run folder")
    p.add_argument("--verbose", action="store_true", help="print the trainer's epoch lines")
    p.set_defaults(func=_cmd_lab)

    p = subparsers.add_parser(
        "reproduce",
        help="a model's paper recipe at full length against its paper's number",
        description="Train MODEL with its paper's recipe at the paper's full length, once per seed, and print the "
        "paper's number beside the measured final test error (mean +- std over the seeds; the best epoch's error "
        "only as a labelled extra), with the time and device. Appends a line to OUT/reproductions.csv (`cnnzoo "
        "report OUT/reproductions.csv` draws it). Refused where the paper has no number for the data set.",
    )
    p.add_argument("model", help="a registered model name (see `cnnzoo list`)")
    p.add_argument("--data", required=True, help="cifar10:PATH | cifar100:PATH | imagenet:PATH (a folder with "
                   "train/ and val/) | digits | synthetic[:N] (the last two: a pipeline check, no paper number)")
    p.add_argument("--seeds", type=int, default=3, help="runs, seeds 0..N-1 (default 3)")
    p.add_argument("--epochs", type=int, help="shorten every run to this many epochs (a test, not a reproduction)")
    p.add_argument("--out", default="runs/repro", help="folder of the runs and reproductions.csv "
                   "(default: runs/repro)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.set_defaults(func=_cmd_reproduce)

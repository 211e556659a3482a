"""The ``cnnzoo`` command line: ``list``, ``info``, ``demo`` here; each subsystem adds its own subcommands.

Each subsystem's ``commands`` module exposes ``register(subparsers)``, which adds its subparsers and sets
``func=callable(args) -> int`` on each. User mistakes raise :class:`cnnzoo.errors.UserError`; ``main`` prints them as
one line on stderr and returns 2, never a traceback. Anything else that escapes a command (an ``OSError``,
``ValueError``, ``RuntimeError``, arithmetic or memory error no entry point foresaw) is one line too, exit 1; the full
traceback is printed instead when the environment sets ``CNNZOO_TRACEBACK=1`` (:data:`TRACEBACK_ENV`).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import warnings
from typing import Any

from .analysis import analyze
from .analysis import commands as analysis_commands
from .errors import UserError
from .evaluation import commands as evaluation_commands
from .exporting import commands as exporting_commands
from .html_report import commands as html_report_commands
from .html_report import write_run_report
from .lab import commands as lab_commands
from .registry import list_families, list_models, model_info
from .training import commands as training_commands
from .training import train
from .version import __version__

TRACEBACK_ENV = "CNNZOO_TRACEBACK"  # set to 1: an unexpected error shows its traceback instead of one line
# what the last-resort handler turns into one line: the failures of the outside world and of numbers (files,
# devices, memory, values torch refuses), never a KeyboardInterrupt or SystemExit
UNEXPECTED = (OSError, ValueError, RuntimeError, ArithmeticError, MemoryError)

COMMAND_MODULES = (analysis_commands, training_commands, evaluation_commands, html_report_commands,
                   exporting_commands, lab_commands)


def _cmd_list(args: argparse.Namespace) -> int:
    if args.family and args.family not in list_families():
        close = difflib.get_close_matches(args.family, list_families(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; families: {', '.join(list_families())}"
        raise UserError(f"unknown family {args.family!r}{hint}")
    names = list_models(args.pattern, family=args.family)
    if not names:
        raise UserError(f"no model matches {args.pattern!r}" + (f" in family {args.family!r}" if args.family else ""))
    if args.format == "markdown":
        print(markdown_table(names))
        return 0
    rows = [("name", "family", "input", "classes", "params", "torchvision-compatible")]
    for name in names:
        info = model_info(name)
        c, h, w = info.input_size
        rows.append((name, info.family, f"{c}x{h}x{w}", str(info.num_classes), f"{info.params:,}", info.torchvision or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * width for width in widths))
    print(f"\n{len(names)} models")
    return 0


def markdown_table(names: list[str]) -> str:
    """The README's table of networks: exact counts and every documented deviation."""
    lines = [
        "| name | family | input (CxHxW) | classes | exact params | loads torchvision | deviations from the paper |",
        "|---|---|---|---|---:|---|---|",
    ]
    for name in names:
        info = model_info(name)
        c, h, w = info.input_size
        deviations = "; ".join(d.replace("|", "/") for d in info.deviations) or "none"
        tv = f"`{info.torchvision}`" if info.torchvision else ""
        lines.append(
            f"| `{name}` | {info.family} | {c}x{h}x{w} | {info.num_classes} | {info.params:,} | {tv} | {deviations} |"
        )
    return "\n".join(lines)


def describe(name: str) -> str:
    """A readable, multi-line description of a registered model (what ``cnnzoo info`` prints)."""
    return "\n".join(model_info(name).describe_lines())


def _cmd_info(args: argparse.Namespace) -> int:
    print(describe(args.name))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """The main job: ResNet-20 described as the lecture tabulates it, trained on the bundled digits (offline).

    The digits are 8x8; they are upsampled to 16x16, not ResNet-20's 32x32: 4x less compute for the same accuracy
    (BENCHMARKS.md). Recipe ``quick``: 12 epochs of Nesterov SGD with warm-up + cosine, label smoothing 0.1.
    """
    name, size, target_top1, target_seconds = "resnet20", 16, 99.0, 60.0
    print(describe(name))
    print()
    print(analyze(name, (3, size, size)).to_lecture())

    print(f"\ntraining {name} on digits (1,797 8x8 images from scikit-learn, 20% held out), {size}x{size} input, "
          "recipe 'quick'")
    result = train(name, data="digits", recipe="quick", image_size=size)
    s = result.summary
    met = s["final_val_top1"] >= target_top1 and s["train_seconds"] <= target_seconds
    print(f"\n{name} on digits: validation top-1 {s['final_val_top1']:.2f}% (top-5 {s['final_val_top5']:.2f}%) on "
          f"{result.history[-1]['val_count']} held-out images after {s['train_seconds']:.1f} s of training "
          f"({s['images_per_s']:,.0f} img/s); target >= {target_top1:g}% within {target_seconds:g} s: "
          f"{'met' if met else 'NOT met'}")
    print(f"run files: {result.out}")
    args.run_dir = result.out
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    """``cnnzoo predict``: a checkpoint through :mod:`cnnzoo.evaluation`, or ``--onnx FILE`` through
    :mod:`cnnzoo.exporting` (which builds on evaluation: the choice is made here, above both)."""
    if args.onnx:
        return exporting_commands.predict_onnx_command(args)
    return evaluation_commands.predict_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnzoo",
        description="The classic CNN architectures of CS231n lecture 9: paper-exact models, "
        "layer-by-layer analysis, and training with the papers' recipes.",
    )
    parser.add_argument("--version", action="version", version=f"cnnzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="list the registered networks", description="List the registered networks.")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet*' (default: all)")
    p.add_argument("--family", help="only this family, e.g. resnet, vgg, densenet")
    p.add_argument("--format", choices=("table", "markdown"), default="table",
                   help="table (default) or the README's markdown table with every deviation")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="describe one network", description="Describe one registered network: "
                       "paper, input size, exact parameter count, paper results and deviations.")
    p.add_argument("name", help="a registered model name (see `cnnzoo list`)")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="the main job (what `make demo` runs)", description="The main job: "
                       "what `make demo` runs on a fresh clone. Prints ResNet-20's lecture-style summary, trains it "
                       "on scikit-learn's bundled digits (no network) and reports validation top-1; the run's files "
                       "go to runs/resnet20-<time>.")
    p.set_defaults(func=_cmd_demo)

    for module in COMMAND_MODULES:
        module.register(sub)
    sub.choices["predict"].set_defaults(func=_cmd_predict)  # evaluation defines its flags, --onnx included
    return parser


class _ReaderMayLeave:
    """stdout for a command whose reader may go away (``cnnzoo train ... | head -1``): once it has, output is
    dropped and the work goes on (training finishes, every file is written, the exit status is the run's own)."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.gone = stream, False

    def _left(self) -> None:
        self.gone = True
        try:  # what is still buffered goes nowhere, also at interpreter exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._left()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._left()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _warning_printer() -> Any:
    """``warnings.showwarning`` for the CLI: one ``cnnzoo: warning: ...`` line (no source echo), each message once."""
    shown: set[str] = set()

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            try:
                print(f"cnnzoo: warning: {text}", file=sys.stderr if file is None else file)
            except OSError:
                pass

    return show


def _print_run_report(run_dir) -> None:
    """``RUN_DIR/report.html`` (curves, confusion matrix, the model per layer) and its path; a failure to draw is a
    warning only: the run's own files are written."""
    try:
        print(f"report: {write_run_report(run_dir)}")
    except (UserError, OSError, ValueError) as exc:
        print(f"cnnzoo: warning: no report.html ({exc})", file=sys.stderr)


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception as one line: its type and its message with line breaks folded, at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    stdout, sys.stdout = sys.stdout, _ReaderMayLeave(sys.stdout)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer()
            code = int(args.func(args) or 0)
            if code == 0 and getattr(args, "run_dir", None) is not None:  # `train`, `demo`: the run's page too
                _print_run_report(args.run_dir)
            return code
    except UserError as exc:
        print(f"cnnzoo: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)  # one line, whatever it names
        return 2
    except KeyboardInterrupt:
        print("cnnzoo: interrupted", file=sys.stderr)
        return 130
    except UNEXPECTED as exc:
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        print(f"cnnzoo: error: {one_line(exc)} (set {TRACEBACK_ENV}=1 for the traceback)", file=sys.stderr)
        return 1
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())

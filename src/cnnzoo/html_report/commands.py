"""``cnnzoo report``: the zoo, one model and your runs on one self-contained HTML page."""

from __future__ import annotations

import argparse

from .page import report


def _cmd_report(args: argparse.Namespace) -> int:
    path = report(args.runs, models=args.models, model=args.model, out=args.out)
    print(f"report: {path.resolve()}")
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="one offline HTML page: the zoo's pictures, a model per layer, your runs",
        description="Write one self-contained HTML page (figures inline as SVG, nothing fetched, printable): the "
        "ILSVRC winners by year and depth, error against MACs with bubble area = parameters, a sortable table of "
        "every model; with --model one network per layer (memory, params, MACs, receptive field); with RUN_DIRs "
        "the runs' learning curves overlaid, throughput, confusion matrices, each run's model per layer, and "
        "ensemble.json files against their members. The zoo's analyzer numbers are cached in ~/.cache/cnnzoo "
        "($CNNZOO_CACHE_DIR): the first report analyses every model once.",
    )
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run folders of `cnnzoo train`, ensemble.json files, "
                   "reproductions.csv files of `cnnzoo reproduce`")
    p.add_argument("--models", default="*", metavar="PATTERN", help="fnmatch pattern for the zoo (default: all)")
    p.add_argument("--model", metavar="NAME", help="also draw this model per layer at its native input")
    p.add_argument("--out", default="report.html", help="the page to write (default: report.html)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=_cmd_report)

"""Pictures: the lecture's comparisons and your own runs on one self-contained, offline HTML page.

    cnnzoo.report(["runs/a", "runs/b"], models="resnet*", model="vgg16", out="report.html")
    write_run_report("runs/a")     # runs/a/report.html: curves + the model per layer, no zoo

Figures are matplotlib, inlined as SVG (text as paths: no font, script or image is fetched).
"""

from .ilsvrc import HUMAN_TOP5_ERROR_PCT, ILSVRC_WINNERS, Winner
from .page import report, write_run_report

__all__ = ["HUMAN_TOP5_ERROR_PCT", "ILSVRC_WINNERS", "Winner", "report", "write_run_report"]

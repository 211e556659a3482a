"""The HTML report: the lecture's comparisons and your own runs on one self-contained, offline page.

    cnnzoo.report(["runs/a", "runs/b"], models="resnet*", model="vgg16", out="report.html")
    write_run_report("runs/a")     # runs/a/report.html: curves + the model per layer, no zoo

One file per section of the page (:mod:`.runs`, :mod:`.model`, :mod:`.zoo`: its data, its pictures, its HTML),
:mod:`.page` assembles them, :mod:`.html` holds the HTML skeleton and turns matplotlib figures into inline SVG (text
as paths: no font, script or image is fetched).
"""

from .page import report, write_run_report
from .zoo import HUMAN_TOP5_ERROR_PCT, ILSVRC_WINNERS, Winner

__all__ = ["HUMAN_TOP5_ERROR_PCT", "ILSVRC_WINNERS", "Winner", "report", "write_run_report"]

"""The ILSVRC classification winners by year, as CS231n lecture 9 charts them: top-5 error and depth.

Data only (the chart is drawn by :mod:`.figures`). Each number carries its source: the paper that reports it, or
the ILSVRC results of that year (image-net.org/challenges/LSVRC/<year>/results). Error rates are the test-set
top-5 errors of the winning (ensemble) entries.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Winner:
    """One ILSVRC classification entry: ``depth_layers`` is ``None`` for the shallow (non-CNN) winners."""

    year: int
    name: str
    top5_error_pct: float
    depth_layers: int | None
    source: str
    arxiv: str | None = None


ILSVRC_WINNERS: tuple[Winner, ...] = (
    Winner(2010, "NEC-UIUC", 28.2, None, "ILSVRC 2010 results (image-net.org/challenges/LSVRC/2010), Lin et al."),
    Winner(2011, "XRCE", 25.8, None, "ILSVRC 2011 results (image-net.org/challenges/LSVRC/2011), Perronnin et al."),
    Winner(2012, "AlexNet", 16.4, 8, "Krizhevsky et al. 2012, Table 2 (5 CNNs, test)"),
    Winner(2013, "ZFNet", 11.7, 8, "Zeiler & Fergus 2014, Table 2 (ensemble, test; the ILSVRC 2013 entry)",
           "1311.2901"),
    Winner(2014, "VGG", 7.3, 19, "Simonyan & Zisserman 2015, Table 7 (ILSVRC 2014 submission, test)", "1409.1556"),
    Winner(2014, "GoogLeNet", 6.7, 22, "Szegedy et al. 2015, Table 2 (7 models, 144 crops, test)", "1409.4842"),
    Winner(2015, "ResNet", 3.57, 152, "He et al. 2016, Table 5 (ensemble, test)", "1512.03385"),
)

# Russakovsky et al. 2015 (IJCV, arXiv:1409.0575), §6.4: a trained human annotator, top-5 error on 1,500 test images.
HUMAN_TOP5_ERROR_PCT = 5.1
HUMAN_SOURCE = "Russakovsky et al. 2015, §6.4 (human annotator, 1,500 test images)"

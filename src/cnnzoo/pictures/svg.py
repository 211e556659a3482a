"""matplotlib, loaded lazily (figures without pyplot, rendered by the SVG backend), and figures turned into
inline SVG for one self-contained page.

Text is drawn as paths (``svg.fonttype = 'path'``): the page needs no font. The XML prolog, the DOCTYPE and the
metadata block are dropped (they name http URLs that an inline SVG does not need), and each figure's element ids
get a prefix of their own, so that the figures of one page cannot collide.
"""

from __future__ import annotations

import io
import itertools
import re
from typing import Any

STYLE = {
    "svg.fonttype": "path",
    "svg.hashsalt": "cnnzoo",  # deterministic ids: the same figure gives the same bytes
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
}
_counter = itertools.count(1)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(\bid="|#)([A-Za-z_][\w.-]*)')  # an element id, or a reference to one (#id, url(#id))


def figure(**kwargs: Any) -> Any:
    """A ``matplotlib.figure.Figure`` in the report's style. pyplot is never imported: no backend, no GUI, no
    global figure list, and an import that costs a fraction of pyplot's."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        from ..errors import UserError

        raise UserError("the report's figures need matplotlib: pip install 'matplotlib>=3.7'") from None
    matplotlib.rcParams.update(STYLE)
    return Figure(**kwargs)


def to_svg(fig: Any, *, title: str, tight: bool = False) -> str:
    """The figure as an ``<svg>`` element for inline use. ``title`` becomes its tooltip and accessible name.

    ``tight`` crops to the drawn artists, which draws the figure twice: the run report (which has a time budget)
    lays its figures out with fixed margins instead."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight" if tight else None, metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    prefix = f"f{next(_counter)}-"
    ids = set(_ID.findall(text))
    text = _REF.sub(lambda m: m.group(1) + (prefix if m.group(2) in ids else "") + m.group(2), text)
    text = re.sub(r'<svg ', '<svg class="figure" role="img" ', text, count=1)
    escaped = title.replace("&", "&amp;").replace("<", "&lt;")
    return text.replace(">", f"><title>{escaped}</title>", 1)

"""The page's HTML and its figures. Nothing is fetched: no external script, stylesheet, font or image.

HTML: a skeleton with inline CSS and a few lines of inline script (click a header to sort a table), escaping, and the
tables. Figures: matplotlib, loaded lazily (no pyplot: the SVG backend renders them), inlined as ``<svg>``. Text is
drawn as paths (``svg.fonttype = 'path'``): the page needs no font. The XML prolog, the DOCTYPE and the metadata block
are dropped (they name http URLs that an inline SVG does not need), and each figure's element ids get a prefix of
their own, so that the figures of one page cannot collide.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from html import escape
from typing import Any

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1250px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.5em; }
svg.figure { display: block; max-width: 100%; height: auto; margin: 0.5em 0; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.sortable th { cursor: pointer; } table.sortable th::after { content: " \\2195"; color: #999; }
.note { color: #555; font-size: 12px; } .problem { color: #a40000; }
.side { display: flex; gap: 1.5em; align-items: flex-start; flex-wrap: wrap; }
.side > div { flex: 1 1 300px; } .side > div.wide { flex: 3 1 700px; }
nav a { margin-right: 1em; }
@media print { body { max-width: none; } nav { display: none; } h2 { break-before: page; }
  table.sortable th::after { content: ""; } svg.figure { break-inside: avoid; } }
"""

# Sorting: each sortable cell carries its raw value in data-v; with scripts off the table is in registry order.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var dir = th.dataset.dir === "asc" ? -1 : 1; th.dataset.dir = dir === 1 ? "asc" : "desc";
      function key(row) { var c = row.cells[col], v = c.dataset.v !== undefined ? c.dataset.v : c.textContent;
        var n = parseFloat(v); return isNaN(n) ? v.toLowerCase() : n; }
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
        return (x < y ? -1 : x > y ? 1 : 0) * dir; });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def page(title: str, body: Sequence[str], *, nav: Sequence[tuple[str, str]] = ()) -> str:
    links = "".join(f'<a href="#{escape(anchor)}">{escape(label)}</a>' for anchor, label in nav)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style>", "</head>", "<body>", f"<h1>{escape(title)}</h1>",
        f"<nav>{links}</nav>" if links else "", *body, f"<script>{SCRIPT}</script>", "</body>", "</html>", "",
    ])  # fmt: skip


def section(anchor: str, title: str, parts: Sequence[str]) -> str:
    return f'<section id="{escape(anchor)}">\n<h2>{escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def p(text: str, cls: str = "") -> str:
    return f'<p class="{cls}">{escape(text)}</p>' if cls else f"<p>{escape(text)}</p>"


def cell(text: str, sort_value: float | int | str | None = None, *, numeric: bool = False, title: str = "") -> str:
    attrs = ' class="num"' if numeric else ""
    if sort_value is not None:
        attrs += f' data-v="{escape(str(sort_value))}"'
    if title:
        attrs += f' title="{escape(title)}"'
    return f"<td{attrs}>{escape(text)}</td>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, sortable: bool = False, caption: str = "") -> str:
    """``rows`` are lists of ``<td>`` strings (see :func:`cell`)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    cls = ' class="sortable"' if sortable else ""
    return f"<table{cls}>{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"


def key_values(pairs: Sequence[tuple[str, str]]) -> str:
    """A two-column table: one escaped key and value a row."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)
    return f"<table>{rows}</table>"


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.1f} MiB"


def si(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:g}"


# ---- figures -----------------------------------------------------------------------------------------------------

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

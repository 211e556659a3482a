"""The report in a real browser: headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it) renders every
figure at a non-zero size, logs no error, and the sortable table sorts. The screenshot is kept; its path printed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import cnnzoo

# Injected into a copy of the page: record script errors, then measure every figure and click the params header.
_CATCH = ("<script>window.__errors = []; "
          "window.addEventListener('error', function (e) { __errors.push(String(e.message)); });</script>")
_MEASURE = """<script>
(function () {
  var figures = Array.from(document.querySelectorAll("svg.figure")).map(function (svg) {
    var r = svg.getBoundingClientRect(), t = svg.querySelector("title");
    return {title: t ? t.textContent : "", width: r.width, height: r.height};
  });
  var table = document.querySelector("#zoo table.sortable"), sorted = null;
  if (table) {
    var col = Array.from(table.tHead.rows[0].cells).findIndex(function (th) { return th.textContent === "params"; });
    table.tHead.rows[0].cells[col].click();
    sorted = Array.from(table.tBodies[0].rows).map(function (row) { return Number(row.cells[col].dataset.v); });
  }
  var out = document.createElement("pre"); out.id = "measured";
  out.textContent = JSON.stringify({figures: figures, sorted: sorted, errors: window.__errors});
  document.body.appendChild(out);
})();
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium found (Debian: apt-get install chromium; .ci/run installs it when it can)")


def _run(browser: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
             "--no-first-run", "--disable-extensions"]  # fmt: skip
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=180)


def _console_errors(stderr: str) -> list[str]:
    """Chromium logs page console messages as ``...:INFO:CONSOLE(...)] "message", source: ...``."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line and ("rror" in line or "ERROR" in line)]


def test_report_in_headless_chromium(run_dir, zoo_cache, tmp_path, request, capsys):
    browser = _chromium()
    page = cnnzoo.report([run_dir], model="vgg16", out=tmp_path / "report.html", cache_dir=zoo_cache)
    html = page.read_text()
    expected = re.findall(r'<svg class="figure"[^>]*><title>([^<]*)</title>', html)
    assert len(expected) == 10  # curves, throughput, confusion, ensemble; 2 per layer for resnet20 and vgg16; zoo 2
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + _CATCH, 1).replace("</body>", _MEASURE + "</body>", 1))

    dom = _run(browser, "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.DOTALL)
    assert match, "the measuring script did not run"
    measured = json.loads(match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                          .replace("&amp;", "&"))  # fmt: skip
    assert measured["errors"] == []
    assert [f["title"] for f in measured["figures"]] == expected
    for figure in measured["figures"]:
        assert figure["width"] > 100 and figure["height"] > 100, figure
    assert measured["sorted"] == sorted(measured["sorted"]) and len(measured["sorted"]) == len(cnnzoo.list_models())
    assert _console_errors(dom.stderr) == []

    cache = getattr(request.config, "cache", None)
    shots = Path(cache.mkdir("cnnzoo-browser")) if cache is not None else tmp_path
    shot = shots / "report.png"
    taken = _run(browser, f"--screenshot={shot}", "--window-size=1400,4000", page.as_uri())
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    assert _console_errors(taken.stderr) == []
    with capsys.disabled():
        print(f"\nscreenshot of the report in headless Chromium: {shot}")

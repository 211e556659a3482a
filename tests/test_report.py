"""``cnnzoo report``: every section renders for the whole zoo and for real run folders; crashed runs; errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.html_report import HUMAN_TOP5_ERROR_PCT, ILSVRC_WINNERS, write_run_report
from cnnzoo.html_report.runs import confusion_figure, read_run
from cnnzoo.html_report.zoo import panel_of, reported_errors, zoo_rows



def _svgs(text: str) -> list[str]:
    return re.findall(r'<svg class="figure"[^>]*><title>([^<]*)</title>', text)


def _assert_offline(text: str) -> None:
    """Nothing is loaded from anywhere: no src, no stylesheet link, url() only to the figures' own clip paths;
    images inline (data: URIs); links are arXiv pages only."""
    assert not re.search(r"\ssrc\s*=", text)
    assert "<link" not in text and "@import" not in text
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]*)\)", text))  # clip paths of the figures
    for url in re.findall(r"https?://[^\s\"'<>)]+", text):
        assert url.startswith("https://arxiv.org/abs/"), url
    hrefs = re.findall(r'href="([^"]*)"', text)  # inside the page, a paper, or a heat map's pixels inline
    assert all(h.startswith(("#", "https://arxiv.org/abs/", "data:image/png;base64,")) for h in hrefs)
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))  # the figures' ids do not collide
    refs = set(re.findall(r'(?:href="#|url\(#)([^")]+)', text))
    assert refs <= set(ids), sorted(refs - set(ids))[:5]  # and every reference resolves within the page


def test_ilsvrc_table_is_the_lectures():
    assert [(w.year, w.top5_error_pct, w.depth_layers) for w in ILSVRC_WINNERS] == [
        (2010, 28.2, None), (2011, 25.8, None), (2012, 16.4, 8), (2013, 11.7, 8), (2014, 7.3, 19), (2014, 6.7, 22),
        (2015, 3.57, 152)]  # fmt: skip
    assert HUMAN_TOP5_ERROR_PCT == 5.1
    assert all(w.source for w in ILSVRC_WINNERS)


def test_panels_and_reported_errors():
    assert panel_of("CIFAR-10 test (+aug)", "top1_error_pct") == "cifar10"
    assert panel_of("CIFAR-100 test (+aug)", "top1_error_pct") == "cifar100"
    assert panel_of("ILSVRC-2012 val, 10-crop", "top5_error_pct") == "imagenet_top5"
    assert panel_of("SVHN test", "top1_error_pct") is None
    # GoogLeNet lists 6.67 (7 models x 144 crops, an ensemble) and 10.07 (1 model): the point is the network's
    assert reported_errors("googlenet")["imagenet_top5"].value_pct == 10.07
    assert reported_errors("alexnet")["imagenet_top5"].value_pct == 17.0  # 16.4 and 15.3 are ensembles
    assert reported_errors("vgg11") == {}


def test_zoo_rows_are_the_analyzers(zoo_cache):
    (row,) = zoo_rows(["resnet20"], cache_dir=zoo_cache, progress=False)
    one = cnnzoo.analyze("resnet20")
    batch = cnnzoo.analyze("resnet20", batch_size=row.batch_size)
    assert row.batch_size == 128  # the resnet_cifar recipe (He et al. 2016, §4.2)
    assert (row.params, row.macs, row.activation_bytes) == (one.totals.params, one.totals.macs,
                                                            one.totals.activation_bytes)  # fmt: skip
    assert row.train_memory_bytes == batch.totals.train_memory_bytes
    assert row.reported["cifar10"].value_pct == 8.75


def test_zoo_page_renders_every_model(zoo_cache, tmp_path):
    out = cnnzoo.report(out=tmp_path / "zoo.html", cache_dir=zoo_cache)
    text = out.read_text()
    names = cnnzoo.list_models()
    table = text[text.index('<table class="sortable">'):]
    rows = re.findall(r"<tr><td>([^<]+)</td>", table)
    assert rows == names
    titles = _svgs(text)
    assert titles == ["ILSVRC winners: top-5 error by year, with depth",
                      "reported error against MACs, bubble area = parameters"]  # fmt: skip
    assert "NEC-UIUC" in text and "Russakovsky et al. 2015, §6.4" in text
    _assert_offline(text)


def test_models_pattern_restricts_the_zoo(zoo_cache, tmp_path):
    text = cnnzoo.report(models="vgg1*", out=tmp_path / "vgg.html", cache_dir=zoo_cache).read_text()
    table = text[text.index('<table class="sortable">'):]
    assert re.findall(r"<tr><td>([^<]+)</td>", table) == cnnzoo.list_models("vgg1*")


def test_one_model_page(zoo_cache, tmp_path):
    text = cnnzoo.report(models="vgg16", model="vgg16", out=tmp_path / "m.html", cache_dir=zoo_cache).read_text()
    assert 'id="model-vgg16"' in text
    titles = _svgs(text)
    assert "vgg16 at 3x224x224: per-layer activation memory, parameters and MACs" in titles
    assert "vgg16: receptive field against depth" in titles[titles.index("vgg16 at 3x224x224: per-layer "
                                                                         "activation memory, parameters and MACs"):]
    assert "138,357,544 params" in text and "receptive field 212 px" in text  # Araujo et al. 2019: VGG16 212


def test_run_report_of_a_real_run(run_dir):
    path = write_run_report(run_dir)
    assert path == run_dir / "report.html"
    text = path.read_text()
    titles = _svgs(text)
    assert titles == [f"learning curves of {run_dir.name}", "training throughput per epoch",
                      f"confusion matrix of {run_dir.name}",
                      "resnet20 at 3x16x16 (as in run resnet20-digits): per-layer activation memory, parameters and "
                      "MACs", "resnet20: receptive field against depth"]  # fmt: skip
    assert 'id="zoo"' not in text
    config = text[text.index("<th>run</th>"):]
    for value in ("resnet20", "quick", "digits", "<td>0</td>", "2/2"):
        assert value in config
    assert 'class="problem"' not in text
    _assert_offline(text)


def test_confusion_heat_map_names_the_classes(run_dir):
    fig = confusion_figure(read_run(run_dir))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(d) for d in range(10)]
    counts = json.loads(json.dumps(read_run(run_dir).confusion.counts))
    assert sum(map(sum, counts)) == 359  # digits: 1,797 images, 20% held out
    assert ax.images[0].get_array().sum() == 359


def test_runs_overlaid_with_ensemble_and_zoo(run_dir, zoo_cache, tmp_path):
    second = tmp_path / "second"
    shutil.copytree(run_dir, second)
    out = cnnzoo.report([run_dir, second, run_dir / "ensemble.json"], models="resnet2*", out=tmp_path / "r.html",
                        cache_dir=zoo_cache)  # fmt: skip
    text = out.read_text()
    titles = _svgs(text)
    assert titles[0] == f"learning curves of {run_dir.name}, second"
    assert titles.count(f"confusion matrix of {run_dir.name}") == 1 and "confusion matrix of second" in titles
    assert "ensemble ensemble.json against its members" in titles
    assert titles.count("resnet20: receptive field against depth") == 1  # one model page per model, not per run
    assert 'id="zoo"' in text and 'id="runs"' in text
    _assert_offline(text)


def test_crashed_run_renders_what_it_has(run_dir, tmp_path):
    crashed = tmp_path / "crashed"
    shutil.copytree(run_dir, crashed)
    (crashed / "summary.json").unlink()
    lines = (crashed / "metrics.jsonl").read_text().splitlines()
    (crashed / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed mid-write
    text = write_run_report(crashed).read_text()
    assert "metrics.jsonl: 1 unreadable line skipped" in text
    assert "summary.json is missing: the run did not finish" in text
    assert "learning curves of crashed" in _svgs(text)
    assert "1/2" in text  # one epoch of two

    (crashed / "metrics.jsonl").unlink()
    (crashed / "confusion_matrix.csv").write_text("true \\ predicted,0,1\n0,3\n")
    text = write_run_report(crashed).read_text()
    assert "metrics.jsonl is missing: no epoch finished, no curves" in text
    assert "confusion_matrix.csv is unreadable" in text
    assert _svgs(text) == ["resnet20 at 3x16x16 (as in run crashed): per-layer activation memory, parameters and "
                           "MACs", "resnet20: receptive field against depth"]  # fmt: skip


@pytest.mark.parametrize("argv, message", [
    (["report", "--model", "resnet21"], "cnnzoo: error: unknown model 'resnet21'; did you mean"),
    (["report", "--models", "nope*"], "cnnzoo: error: --models 'nope*' matches no registered model"),
    (["report", "{empty}"], "not a run folder"),
    (["report", "{missing}"], "no such run folder"),
])  # fmt: skip
def test_user_errors_are_one_line(argv, message, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = [a.format(empty=tmp_path / "empty", missing=tmp_path / "missing") for a in argv]
    assert main([*argv, "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.html").exists()


def test_cli_writes_the_page_and_prints_its_path(run_dir, zoo_cache, tmp_path):
    out = tmp_path / "cli.html"
    result = subprocess.run([sys.executable, "-m", "cnnzoo", "report", str(run_dir), "--models", "resnet20",
                             "--out", str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"report: {out.resolve()}"
    assert len(_svgs(out.read_text())) == 8  # curves, throughput, confusion, ensemble, 2 per layer, 2 zoo
    bad = subprocess.run([sys.executable, "-m", "cnnzoo", "report", str(tmp_path)], capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [f"cnnzoo: error: {tmp_path}: not a run folder (none of config.json, "
                                               "metrics.jsonl, summary.json, confusion_matrix.csv in it)"]  # fmt: skip


def test_import_cnnzoo_does_not_load_matplotlib():
    code = "import sys, cnnzoo; cnnzoo.report; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr

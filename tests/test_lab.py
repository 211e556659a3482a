"""`cnnzoo lab` and `cnnzoo reproduce`: every experiment runs (trained ones at a tiny size), the robust verdicts hold
at smoke scale with the lecture's numbers, a verdict line always carries its numbers, lab.html renders in headless
Chromium with every figure, and reproduce's mean/std and table line are exact."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import pytest
import torch

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.errors import UserError
from cnnzoo.evaluation import load_trained
from cnnzoo.exporting.exporter import resolve
from cnnzoo.lab import EXPERIMENTS, LabSettings, get_experiment, paper_number, run_lab
from cnnzoo.registry import smallest_side
from cnnzoo.data import load_data
from cnnzoo.data.cluttered import cluttered_digits
from cnnzoo.lab.verdict import Check, has_numbers, verdict_line

TRAINED = [e.name for e in EXPERIMENTS if e.trained]
ANALYTIC = [e.name for e in EXPERIMENTS if not e.trained]
# squeeze writes AlexNet's 244 MB file and compresses it (7 s on one core): with the trained ones in the slow set
FAST = [n for n in ANALYTIC if n != "squeeze"]


def _numbers_in_line(entry: dict) -> None:
    """The verdict line states every check's measured numbers, and has digits after its status."""
    assert has_numbers(entry["verdict"]), entry["verdict"]
    for check in entry["checks"]:
        assert re.search(r"\d", check["numbers"]), check
        assert check["numbers"] in entry["verdict"], (check["numbers"], entry["verdict"])


@pytest.fixture(scope="module")
def tiny_lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Every experiment once: the trained ones for 1 epoch on 64 synthetic images (about 20 s on one core, so the
    tests that need it are marked slow), the analytic ones as they are."""
    out = tmp_path_factory.mktemp("lab")
    settings = LabSettings(out=out, data="synthetic:64", epochs=1, device="cpu", run_reports=False)
    lines: list[str] = []
    lab = run_lab(list(EXPERIMENTS), settings, log=lines.append)
    return out, lab


@pytest.fixture(scope="module")
def analytic_lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The cheap analytic experiments alone (under a second): what `make test-fast` asserts of the lab's verdicts."""
    out = tmp_path_factory.mktemp("analytic-lab")
    settings = LabSettings(out=out, data="synthetic:64", epochs=1, device="cpu", run_reports=False)
    return out, run_lab([get_experiment(name) for name in FAST], settings, log=None)


def test_list_names_every_experiment(capsys):
    assert main(["lab"]) == 0
    text = capsys.readouterr().out
    assert len(EXPERIMENTS) == 11
    for e in EXPERIMENTS:
        assert e.name in text and e.source.split(",")[0] in text


def test_unknown_experiment_is_one_line(capsys):
    assert main(["lab", "degradaton"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "did you mean degradation" in err


def test_paper_scale_needs_the_papers_data(capsys):
    assert main(["lab", "degradation", "--scale", "paper"]) == 2
    captured = capsys.readouterr()
    assert "--data cifar10:PATH" in captured.err and "\n" not in captured.err.strip() and "==" not in captured.out


def test_verdict_line_refuses_a_check_without_numbers():
    with pytest.raises(ValueError):
        Check("typed", "a rule", True, "it holds")
    line = verdict_line("x", [Check("a", "r", True, "3 vs 4"), Check("b", "r", False, "5% vs 6%")])
    assert line == "x: partly holds: 3 vs 4; [not: b] 5% vs 6%" and has_numbers(line)
    assert not has_numbers("x: holds: as expected")
    assert verdict_line("x", [Check("a", "r", False, "1 vs 2")]) == "x: does not hold at this scale: 1 vs 2"


@pytest.mark.parametrize("name", [pytest.param(e.name, marks=[] if e.name in FAST else [pytest.mark.slow])
                                  for e in EXPERIMENTS])
def test_every_experiment_runs_and_records(request, name):
    out, lab = request.getfixturevalue("analytic_lab" if name in FAST else "tiny_lab")
    entry = lab["experiments"][name]
    assert entry["status"] in ("holds", "partly holds", "does not hold at this scale")
    assert entry["claim"] and entry["source"] and entry["rule"] and entry["protocol"] and entry["seconds"] >= 0
    _numbers_in_line(entry)
    assert json.loads((out / "lab.json").read_text())["experiments"][name]["verdict"] == entry["verdict"]
    if name in TRAINED:
        assert entry["runs"], name
        for run in entry["runs"]:
            folder = Path(run["path"])
            assert folder.parent == out / name
            summary = json.loads((folder / "summary.json").read_text())  # an ordinary run folder of the trainer
            assert summary["epochs"] == run["epochs"] == 1 and (folder / "last.pt").is_file()
            assert run["final_val_error"] == pytest.approx(100 - summary["final_val_top1"])
    else:
        assert entry["runs"] == []


@pytest.mark.slow  # builds tiny_lab
@pytest.mark.parametrize("name", [n for n in TRAINED if n != "small-filters"])  # its FilterNets are lab modules
def test_a_lab_run_evaluates_on_its_own(tiny_lab, name, capsys):
    """A lab-sized variant is its registered network with a changed spec, recorded in config.json: `cnnzoo eval`
    rebuilds it from the run folder alone and gives the trainer's final validation top-1."""
    out, lab = tiny_lab
    run = lab["experiments"][name]["runs"][-1]
    config = json.loads((Path(run["path"]) / "config.json").read_text())
    assert config["model"] in cnnzoo.list_models()
    assert main(["eval", "--weights", str(Path(run["path"]) / "last.safetensors"), "--device", "cpu",
                 "--json", str(Path(run["path"]) / "eval.json")]) == 0
    evaluated = json.loads((Path(run["path"]) / "eval.json").read_text())
    assert 100 - evaluated["top1"] == pytest.approx(run["final_val_error"], abs=1e-6)


def test_a_spec_change_is_the_registered_code_at_another_size(capsys):
    net = cnnzoo.create_model("resnet20", num_classes=10, spec={"depths": [1, 1, 1]})
    assert net.spec.depths == (1, 1, 1) and sum(p.numel() for p in net.parameters()) < 269_722
    assert main(["train", "resnet20", "--data", "synthetic:8", "--model-arg", "spec={\"depth\": [1, 1, 1]}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no field depth" in err and "depths" in err
    assert main(["train", "resnet20", "--data", "synthetic:8", "--model-arg", "spec=[1]"]) == 2
    assert "JSON object" in capsys.readouterr().err
    bad = [({"depths": [0, 1, 1]}, "depths: expected a whole number >= 1"), ({"depths": "abc"}, "expected a list"),
           ({"widths": [1.5, 2, 3]}, "whole number"), ({"block": "x"}, "cannot be changed from JSON"),
           ({"stem": 3}, "expected a word"), ({"depths": [1, 1]}, "do not build: zip")]
    for changes, text in bad:  # each one line, never a traceback from deep in the builder
        with pytest.raises(UserError, match=text) as info:
            cnnzoo.create_model("resnet20", num_classes=10, spec=changes)
        assert "\n" not in str(info.value)


def test_a_changed_spec_has_no_registered_smallest_side_in_training_evaluation_and_export(tmp_path):
    """resnet20's registered smallest side is 8; with one block per stage it is trained, evaluated and exported at 4
    px by one rule (``registry.smallest_side``). Export used the registered side and refused the run's own."""
    assert smallest_side("resnet20") == 8 and smallest_side("resnet20", {"spec": {"depths": [1, 1, 1]}}) is None
    with pytest.raises(UserError, match="too small for resnet20"):
        cnnzoo.train("resnet20", data="synthetic:16", image_size=4, epochs=1, device="cpu", progress=False, log=None,
                     out=tmp_path / "refused")
    cnnzoo.train("resnet20", data="synthetic:16", image_size=4, epochs=1, device="cpu", progress=False, log=None,
                 out=tmp_path / "run", model_kwargs={"spec": {"depths": [1, 1, 1]}})
    trained = load_trained(tmp_path / "run")
    assert trained.image_size == 4 and trained.model_kwargs == {"spec": {"depths": [1, 1, 1]}}
    assert resolve(tmp_path / "run", image_size=4).input_size == (3, 4, 4)


@pytest.mark.slow  # builds tiny_lab
def test_an_existing_run_is_refused_then_resumed_without_training(tiny_lab, tmp_path):
    out, lab = tiny_lab
    copy = tmp_path / "lab"
    shutil.copytree(out / "preact", copy / "preact")
    settings = LabSettings(out=copy, data="synthetic:64", epochs=1, device="cpu", run_reports=False)
    with pytest.raises(UserError, match="--resume"):
        run_lab([get_experiment("preact")], settings, log=None)
    resumed = run_lab([get_experiment("preact")], dataclasses.replace(settings, resume=True), log=None)
    before, after = lab["experiments"]["preact"], resumed["experiments"]["preact"]
    assert after["verdict"] == before["verdict"]
    assert [r["curve"] for r in after["runs"]] == [r["curve"] for r in before["runs"]]  # reloaded, not retrained


def test_an_interrupted_lab_continues_with_resume(tmp_path):
    """SIGINT in the middle of a lab: the run checkpoints, the command exits 130 naming --resume; the same command
    with --resume finishes every run with each epoch trained once."""
    out = tmp_path / "lab"
    cmd = [sys.executable, "-m", "cnnzoo", "lab", "preact", "--data", "synthetic:128", "--epochs", "2", "--out",
           str(out), "--device", "cpu", "--no-run-reports", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(cnnzoo.__file__).parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = out / "preact" / "original-56-seed0" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    entry = json.loads((out / "lab.json").read_text())["experiments"]["preact"]
    for run in entry["runs"]:
        epochs = [json.loads(line)["epoch"] for line in (Path(run["path"]) / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [1, 2]


# --- the robust verdicts, asserted at smoke scale ------------------------------------------------------------------


def test_inception_cost_holds_with_the_lecture_numbers(analytic_lab):
    entry = analytic_lab[1]["experiments"]["inception-cost"]
    naive, bottleneck = entry["measurements"]["modules"]
    assert entry["status"] == "holds"
    assert naive["macs"] == 854_196_224 and naive["depth"] == 672
    assert bottleneck["macs"] == 271_351_808 and bottleneck["depth"] == 480  # 784 x 346,112: the six convolutions
    assert "854,196,224" in entry["verdict"] and "672" in entry["verdict"]


@pytest.mark.slow  # builds tiny_lab
def test_small_filters_analytic_half_holds(tiny_lab):
    entry = tiny_lab[1]["experiments"]["small-filters"]
    c = entry["measurements"]["channels"]
    analytic = {ch["name"]: ch for ch in entry["checks"]}
    for name in ("same receptive field", "fewer parameters", "fewer multiply-adds", "more non-linearities"):
        assert analytic[name]["holds"], analytic[name]
    stack, single = entry["measurements"]["stack"], entry["measurements"]["single"]
    assert (stack["params"], single["params"]) == (27 * c * c, 49 * c * c)
    assert (stack["receptive_field"], single["receptive_field"], stack["relus"], single["relus"]) == (7, 7, 3, 1)
    assert f"{27 * c * c:,}" in entry["verdict"] and f"{49 * c * c:,}" in entry["verdict"]


def test_vgg_memory_holds(analytic_lab):
    entry = analytic_lab[1]["experiments"]["vgg-memory"]
    m = entry["measurements"]
    assert entry["status"] == "holds"
    assert [r["params"] for r in m["rows"]][-3:] == [102_760_448, 16_777_216, 4_096_000]
    assert sum(r["memory"] for r in m["rows"]) == 15_237_608
    assert 0.70 < m["early_memory_share"] < 0.75 and 0.88 < m["fc_params_share"] < 0.90
    assert "22 of 22" in entry["verdict"]


@pytest.mark.slow  # builds tiny_lab
def test_squeeze_holds(tiny_lab):
    entry = tiny_lab[1]["experiments"]["squeeze"]
    m = entry["measurements"]
    assert entry["status"] == "holds"
    assert (m["alexnet"]["params"], m["squeezenet"]["params"]) == (60_965_224, 1_248_424)
    assert m["params_ratio"] == pytest.approx(48.833, abs=1e-3)
    assert m["squeezenet"]["file_bytes"] > 4 * 1_248_424  # fp32 tensors and the safetensors header
    assert "48.8x" in entry["verdict"]


@pytest.mark.slow
def test_degradation_holds_at_smoke_scale(tmp_path):
    """The whole smoke protocol (4 networks x 15 epochs on the digits at 8x8): about a minute of CPU."""
    settings = LabSettings(out=tmp_path, device="cpu", run_reports=False)
    entry = run_lab([get_experiment("degradation")], settings, log=None)["experiments"]["degradation"]
    # the robust half: the deep plain net is stuck far above the shallow one and far above the residual net of its
    # depth. Whether ResNet-56 also ends within 2 points of ResNet-20 is the experiment's second check; at this scale
    # it moves with the schedule's last details (1.0 vs 1.25 warm-up epochs: 4.3% vs 0.8%), so it is reported in the
    # verdict ("holds" or "partly holds"), not asserted here.
    assert entry["status"] in ("holds", "partly holds"), entry["verdict"]
    err = entry["measurements"]["final_train_error"]
    assert err["plain-56"] - err["plain-20"] >= 20.0, entry["verdict"]
    assert err["plain-56"] - err["ResNet-56"] >= 20.0, entry["verdict"]
    _numbers_in_line(entry)


def test_cluttered_digits_is_deterministic_and_separate():
    a, b = cluttered_digits(), load_data("cluttered-digits", image_size=12)  # --data cluttered-digits: the same set
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.images, b.val.images)
    assert a.train.images.shape == (1438, 3, 12, 12) and a.val.images.shape == (1077, 3, 12, 12)
    assert a.train.images.dtype == torch.uint8 and a.num_classes == 10
    assert torch.bincount(a.val.labels, minlength=10).min() > 0


# --- lab.html in a browser -----------------------------------------------------------------------------------------

_MEASURE = """<script>
(function () {
  var figures = Array.from(document.querySelectorAll("svg.figure")).map(function (svg) {
    var r = svg.getBoundingClientRect(), t = svg.querySelector("title");
    return {title: t ? t.textContent : "", width: r.width, height: r.height};
  });
  var out = document.createElement("pre"); out.id = "measured";
  out.textContent = JSON.stringify({figures: figures, errors: window.__errors || []});
  document.body.appendChild(out);
})();
</script>"""
_CATCH = ("<script>window.__errors = []; "
          "window.addEventListener('error', function (e) { __errors.push(String(e.message)); });</script>")


@pytest.mark.slow  # builds tiny_lab
def test_lab_html_renders_every_figure_in_headless_chromium(tiny_lab, tmp_path):
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)
    if browser is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium)")
    html = (tiny_lab[0] / "lab.html").read_text()
    expected = [unescape(t) for t in re.findall(r'<svg class="figure"[^>]*><title>([^<]*)</title>', html)]
    assert len(expected) == 12  # small-filters draws two, every other experiment one
    assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org", "")
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + _CATCH, 1).replace("</body>", _MEASURE + "</body>", 1))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"]
    dom = subprocess.run([browser, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.DOTALL)
    assert match, "the measuring script did not run"
    measured = json.loads(match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                          .replace("&amp;", "&"))
    assert measured["errors"] == []
    assert [f["title"] for f in measured["figures"]] == expected
    for figure in measured["figures"]:
        assert figure["width"] > 100 and figure["height"] > 100, figure


# --- reproduce -----------------------------------------------------------------------------------------------------


def test_paper_number_is_the_recipes_setup():
    assert paper_number("resnet20", "CIFAR-10").value == 8.75
    assert paper_number("fractalnet20", "CIFAR-10").dataset == "CIFAR-10 test (+), drop-path + dropout"
    assert paper_number("resnet110_sd", "CIFAR-10").value == 5.25  # never the constant-depth baseline's 6.41
    assert paper_number("preact_resnet1001", "CIFAR-10").value == 4.92  # batch 128, the recipe's


def test_reproduce_refuses_a_data_set_without_a_paper_number(capsys):
    assert main(["reproduce", "resnet20", "--data", "cifar100:/nonexistent"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no top-1 error on CIFAR-100" in err and "CIFAR-10 test (+aug)" in err
    assert main(["reproduce", "squeezenet1_0", "--data", "cifar10:/nonexistent"]) == 2
    assert "ImageNet val (ILSVRC-2012)" in capsys.readouterr().err


def test_reproduce_writes_mean_std_and_the_table_line(tmp_path, zoo_cache, capsys):
    out = tmp_path / "repro"
    args = ["reproduce", "resnet20", "--data", "synthetic:64", "--epochs", "2", "--seeds", "2", "--out", str(out),
            "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    rows = list(csv.DictReader((out / "reproductions.csv").read_text().splitlines()))
    assert len(rows) == 1
    row = rows[0]
    summaries = [json.loads((Path(p) / "summary.json").read_text()) for p in row["runs"].split()]
    finals = [100 - s["final_val_top1"] for s in summaries]
    bests = [100 - s["best_val_top1"] for s in summaries]
    assert [s["seed"] for s in summaries] == [0, 1] and all(s["epochs"] == 2 for s in summaries)
    assert float(row["final_error_mean"]) == pytest.approx(statistics.mean(finals), abs=1e-4)
    assert float(row["final_error_std"]) == pytest.approx(statistics.stdev(finals), abs=1e-4)
    assert float(row["best_error_mean"]) == pytest.approx(statistics.mean(bests), abs=1e-4)
    assert (row["model"], row["dataset"], row["paper_value"], row["seeds"], row["epochs"]) == (
        "resnet20", "synthetic", "", "2", "2")
    assert f"{statistics.mean(finals):.2f}%" in printed and "best-epoch" in printed and "cpu" in printed
    # a second call appends one line under the same header; the runs are reloaded, not retrained
    assert main(args) == 0
    rows = list(csv.DictReader((out / "reproductions.csv").read_text().splitlines()))
    assert len(rows) == 2 and rows[1]["final_errors"] == rows[0]["final_errors"]
    page = cnnzoo.report([out / "reproductions.csv"], models="resnet20", out=tmp_path / "r.html", cache_dir=zoo_cache)
    html = page.read_text()
    assert 'id="reproductions"' in html and "<title>reproductions against the papers' numbers</title>" in html

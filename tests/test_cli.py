import subprocess
import sys

import cnnzoo
from cnnzoo.cli import main


def test_list_and_info(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in cnnzoo.list_models():
        assert name in out
    family = cnnzoo.list_families()[0]
    assert main(["list", "--family", family]) == 0
    out = capsys.readouterr().out
    assert f"{len(cnnzoo.list_models(family=family))} models" in out
    name = cnnzoo.list_models()[0]
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    assert f"{cnnzoo.model_info(name).params:,}" in out and "deviations" in out


def test_user_mistakes_are_one_line_and_exit_2(capsys):
    name = cnnzoo.list_models()[0]
    assert main(["info", name + "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean" in err and name in err
    assert main(["list", "--family", "nosuchfamily"]) == 2
    assert "unknown family" in capsys.readouterr().err


def test_console_entry_point_runs_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "cnnzoo", "info", "nope_model"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown model" in proc.stderr


def test_readme_table_matches_the_registry():
    """README's network table is `cnnzoo list --format markdown`: every network, exact count, deviations."""
    from pathlib import Path

    from cnnzoo.cli import markdown_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    begin, end = "<!-- models:begin -->\n", "<!-- models:end -->"
    table = readme[readme.index(begin) + len(begin) : readme.index(end)].strip()
    assert table == markdown_table(cnnzoo.list_models()), "regenerate with `cnnzoo list --format markdown`"

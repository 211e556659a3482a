"""Shared by test_report.py and test_report_browser.py: one real run folder per session, a persistent zoo cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cnnzoo


@pytest.fixture(scope="session")
def zoo_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zoo's analyzer numbers, cached across test sessions (keyed by a hash of the counting code) in pytest's
    cache folder; for this session only under ``-p no:cacheprovider``."""
    cache = getattr(request.config, "cache", None)
    path = Path(cache.mkdir("cnnzoo-zoo")) if cache is not None else tmp_path_factory.mktemp("cnnzoo-zoo")
    os.environ["CNNZOO_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the trainer: ResNet-20, 2 epochs on digits at 16 px, and an ensemble of its two checkpoints."""
    from cnnzoo.cli import main

    out = tmp_path_factory.mktemp("runs") / "resnet20-digits"
    cnnzoo.train("resnet20", data="digits", recipe="quick", epochs=2, image_size=16, out=out, device="cpu",
                 progress=False)  # fmt: skip
    assert main(["ensemble", str(out / "best.safetensors"), str(out / "last.safetensors"), "--device", "cpu",
                 "--json", str(out / "ensemble.json")]) == 0  # fmt: skip
    return out

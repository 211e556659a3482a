# cnnzoo: every target bootstraps .venv from scratch when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch/torchvision: the versions cached on the team machines; pyproject.toml keeps honest lower bounds.
TORCH  ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-fast test-all bench bench-tables readme pictures lab clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m cnnzoo demo

# One pytest worker per core (each runs torch with one thread); a test file runs on one worker, so its module
# fixtures (trainer runs, the torchrun launch) are built once. (--dist loadgroup would be finer, but with pytest 9.2
# it silently stops grouping: pytest-xdist issue #1386.)
WORKERS ?= 2
PYTEST  := $(PY) -m pytest -q -n $(WORKERS) --dist loadfile

# everything but the exhaustive sweeps (<= 10 min on 2 cores)
test: $(STAMP)
	$(PYTEST)

# without the networks costly on a CPU (<= 2 min on 2 cores)
test-fast: $(STAMP)
	$(PYTEST) -m 'not slow'

# with the exhaustive sweeps (every network exported at its paper input)
test-all: $(STAMP)
	$(PYTEST) -m ''

# Run alone on an idle machine: each benchmark records its figures into benchmarks/results.json only when the load
# average at its start is at most nproc x 0.6 (benchmarks/machine.py); BENCHMARKS.md's tables are then regenerated
# from that file (tools/bench_tables.py). The GPU check's smoke mode only proves its CUDA-less path runs.
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench,export]'
	$(PY) benchmarks/bench_analyzer.py
	$(PY) benchmarks/bench_trainer.py
	$(PY) benchmarks/bench_drop.py
	$(PY) benchmarks/bench_cpu_train.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_folder.py
	$(PY) benchmarks/bench_train_folder.py
	$(PY) benchmarks/bench_report.py
	$(PY) benchmarks/gpu_check.py --smoke --out build/gpu_check
	$(PY) tools/bench_tables.py

# BENCHMARKS.md's tables from benchmarks/results.json as it stands (no benchmark runs)
bench-tables: $(STAMP)
	$(PY) tools/bench_tables.py

readme: $(STAMP)
	$(PY) tools/update_readme.py

# The README's screenshots of `cnnzoo report` (docs/report_zoo.png, docs/report_run.png); needs chromium.
pictures: $(STAMP)
	$(PY) tools/pictures.py

# The lecture's claims as experiments (`cnnzoo lab all --scale smoke`, from scratch: <= 15 min on 2 CPU cores), then
# README.md's verdict table and lab figure (tools/update_lab.py). LAB_OUT keeps the run folders and lab.html.
LAB_OUT ?= runs/lab-smoke
lab: $(STAMP)
	rm -rf $(LAB_OUT)
	$(PY) -m cnnzoo lab all --scale smoke --out $(LAB_OUT)
	$(PY) tools/update_lab.py $(LAB_OUT)/lab.json

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache

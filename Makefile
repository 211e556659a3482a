# cnnzoo: every target bootstraps .venv from scratch when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch/torchvision: the versions cached on the team machines; pyproject.toml keeps honest lower bounds.
TORCH  ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-fast bench readme pictures lab clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m cnnzoo demo

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'not slow'

# Each benchmark prints ratios against a baseline run in the same process; results go to BENCHMARKS.md by hand.
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench,export]'
	$(PY) benchmarks/bench_analyzer.py
	$(PY) benchmarks/bench_trainer.py
	$(PY) benchmarks/bench_drop.py
	$(PY) benchmarks/bench_cpu_train.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_report.py
	$(PY) benchmarks/gpu_check.py --smoke

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

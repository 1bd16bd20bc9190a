# hpa-ens: every command runs from .venv/ in the repo root.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MPLBACKEND := Agg

.PHONY: install test demo base-models bench bench-full clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The pair that imports together (see README): pinned here and in pyproject's [train] extra.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[train,parquet,dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) build *.egg-info

# Base models on the embedded synthetic set, or flags through ARGS: ARGS="--data DIR --names a b --fold 0 1".
base-models: install
	$(PY) -m base_models.run_all $(ARGS)

demo: install
	$(PY) -m hpa_ens.demo

bench: install
	$(PY) benchmarks/run_all.py && $(PY) scripts/update_figures.py

# Every benchmark and report at full size (hours on 2 CPUs; see benchmarks/run_all.py for which figures need it).
bench-full: install
	$(PY) benchmarks/run_all.py --full --with-reports --timeout 7200 && $(PY) scripts/update_figures.py

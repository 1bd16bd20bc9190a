# hpa-ens: every command runs from .venv/ in the repo root.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MPLBACKEND := Agg

.PHONY: install install-post test test-floors demo base-models bench bench-full clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The pair that imports together (docs/install.md): pinned here and in pyproject's [train] extra.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[train,parquet,dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -n 2 --dist loadgroup

# The torch-free install (`pip install .`: every post-processing command, no torch), with the parquet and dev
# extras, into .venv-post/; base-model commands that need torch refuse there with a one-line error.
POST_VENV := .venv-post
install-post: $(POST_VENV)/.installed

$(POST_VENV)/.installed: pyproject.toml
	test -x $(POST_VENV)/bin/python || $(PYTHON) -m venv $(POST_VENV)
	$(POST_VENV)/bin/python -m pip install -q --upgrade pip
	$(POST_VENV)/bin/python -m pip install -q -e '.[parquet,dev]'
	touch $@

# The torch-free suite on the floors: every core and [parquet] dependency at the lowest version pyproject.toml
# allows (its ">=" read as "=="), in a fresh .venv-floors/ (docs/install.md; tests needing torch skip).
FLOORS_VENV := .venv-floors
test-floors:
	rm -rf $(FLOORS_VENV)
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	    print("\n".join(r.replace(">=", "==") for r in p["dependencies"] + p["optional-dependencies"]["parquet"]))' \
	    > $(FLOORS_VENV)/floors.txt
	$(FLOORS_VENV)/bin/python -m pip install -q --upgrade pip
	$(FLOORS_VENV)/bin/python -m pip install -q -c $(FLOORS_VENV)/floors.txt -e '.[parquet,dev]'
	$(FLOORS_VENV)/bin/python -m pip list
	$(FLOORS_VENV)/bin/python -m pytest -q -n 2 --dist loadgroup -rs

clean:
	rm -rf $(VENV) $(POST_VENV) $(FLOORS_VENV) build *.egg-info

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

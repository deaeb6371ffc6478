# Two commands do everything on a fresh machine: `make demo` (whole benchmark, demo profile) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster
export IRBENCH_HOME ?= $(CURDIR)/artifacts
export IRBENCH_PROFILE ?= demo

.PHONY: install demo test test-slurm lint ui validate bench clean

install: $(VENV)/.installed

# torch==2.13.0 is the CPU wheel (cached on our machines); elsewhere pip falls back to PyPI's build.
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q "torch>=2.4"
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/irbench demo --timing $(IRBENCH_HOME)/demo_timing.json

test: install
	$(BIN)/pytest -q -m "not slurm and not benchmark"

# Stages 1-2 on a real single-node SLURM cluster on this machine (root; installs slurm-wlm via apt once).
test-slurm: install
	bash scripts/slurm-up
	. /tmp/irbench-slurm/env && $(BIN)/pytest -q -m slurm -p no:cacheprovider irbench_assets_tests/slurm; \
	rc=$$?; bash scripts/slurm-down; exit $$rc

lint: install
	$(BIN)/ruff check .

validate: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster definitions validate -w workspace.yaml

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

bench: install
	$(BIN)/python benchmarks/bench_stage_minus1.py

clean:
	rm -rf artifacts .dagster paper/generated

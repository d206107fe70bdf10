# The two commands the README opens with:
#   make reproduce   - the main job (sets up .venv, then runs the pipeline on BR35H)
#   make test        - the test suite (sets up .venv, then pytest)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: setup test reproduce data-report splits clean

$(STAMP): pyproject.toml edge_runtime/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all]" -e ./edge_runtime   # the runtime (and br35h-edge) is its own package
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

reproduce: $(STAMP)
	$(PY) -m reproduce $(ARGS)

data-report: $(STAMP)
	$(PY) -m train.data report $(ARGS)

splits: $(STAMP)
	$(PY) -m train.data split $(ARGS)

clean:
	rm -rf .cache runs .pytest_cache

# The scoreboard: latency + accuracy of every artifact -> reports/benchmarks/ (python -m benchmarks).
#   make benchmark ARTIFACTS=runs/cpu-paper/convert KERAS=runs/cpu-paper/model.keras ARGS="--threads 1,4"
ARTIFACTS ?= runs/cpu-paper/convert
KERAS     ?= $(wildcard runs/cpu-paper/model.keras)
.PHONY: benchmark
benchmark: $(STAMP)
	$(PY) -m benchmarks --artifacts $(ARTIFACTS) $(if $(KERAS),--keras $(KERAS)) $(ARGS)

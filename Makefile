# sspo-verl developer entry points. The two commands a newcomer needs:
#   make demo   set up, then run the real verl trainer on CPU (GRPO, GSPO, SSPO on a tiny model)
#   make test   set up, then run the test suite (what CI runs: .ci/run)
# Everything installs into ./.venv with the CPU torch wheel pinned in the same pip command
# (a bare `pip install verl` would pull a multi-GB CUDA torch).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sspo-verl-installed
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo bench lint clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check "torch==2.13.0" "virtualenv==21.14.5" -e ".[test]"
	touch $@

setup: $(STAMP)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(PY) -m sspo_verl.demo

bench: setup
	$(PY) benchmarks/bench_loss.py

lint: setup
	$(VENV)/bin/shellcheck recipes/slurm/*.sh recipes/slurm/*.sbatch recipes/*/*.sh
	$(VENV)/bin/hadolint docker/Dockerfile

clean:
	rm -rf $(VENV) build dist *.egg-info

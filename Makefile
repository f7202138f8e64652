# Two commands on a fresh machine (see README):
#   make demo   installs into .venv and runs the end-to-end demo
#   make test   installs into .venv and runs the test suite
# Both install exactly the versions pinned in $(LOCK); `make lock` regenerates them
# and `make test-latest` tries the newest versions in .venv-latest.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The versions the suite passed with: pip constraints, written by `make lock`.
LOCK   := requirements/constraints.txt
# MediaPipe, installed without its declared dependencies (the file says why).
MEDIAPIPE := requirements/mediapipe.txt
# torch: the CPU build from PyTorch's CPU index (PyPI's Linux wheel is the CUDA build).
# On a GPU machine: TORCH_SPEC=torch==2.13.0 TORCH_INDEX=https://download.pytorch.org/whl/cu130
# torch alone comes from that index (--no-deps); its dependencies come from PyPI with
# the rest, in the next step.
TORCH_SPEC  ?= torch==2.13.0+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
EXTRAS ?= detect,video,dev
# What `make lock` and `make test-latest` install: every extra.
LATEST_VENV   ?= .venv-latest
LATEST_EXTRAS ?= detect,video,gpu,dev

comma := ,
torch_index = $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
wants_detect = $(filter detect,$(subst $(comma), ,$(1)))

.PHONY: install demo test test-latest lock bench clean docs slurm-test

# A fresh venv each time, so nothing from an older install lingers.
$(BIN)/handtools: pyproject.toml $(LOCK) $(MEDIAPIPE)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c $(LOCK) --upgrade pip
	$(BIN)/pip install -c $(LOCK) --no-deps $(torch_index) "$(TORCH_SPEC)"
	$(BIN)/pip install -c $(LOCK) -e ".[$(EXTRAS)]"
	$(if $(call wants_detect,$(EXTRAS)),$(BIN)/pip install -c $(LOCK) --no-deps -r $(MEDIAPIPE))
	touch $@

install: $(BIN)/handtools

demo: install
	$(BIN)/handtools demo --out demo-out --overwrite

test: install
	$(BIN)/python -m pytest -q

# The newest release of everything (torch stays TORCH_SPEC) in $(LATEST_VENV), then the
# suite. Informational: it may fail; the diff shows what moved since $(LOCK).
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install --upgrade pip
	$(LATEST_VENV)/bin/pip install --no-deps $(torch_index) "$(TORCH_SPEC)"
	$(LATEST_VENV)/bin/pip install -e ".[$(LATEST_EXTRAS)]"
	$(if $(call wants_detect,$(LATEST_EXTRAS)),$(LATEST_VENV)/bin/pip install --no-deps -r $(MEDIAPIPE))
	$(LATEST_VENV)/bin/pip freeze --all --exclude handtools | sed -E 's/^([^=]+==[^+]+)\+.*/\1/' > $(LATEST_VENV)/freeze.txt
	@echo "--- versions that differ from $(LOCK) (- pinned, + newest):"
	@grep -v '^#' $(LOCK) | diff -u - $(LATEST_VENV)/freeze.txt | grep -E '^[-+][^-+]' || echo "(none)"
	$(LATEST_VENV)/bin/python -m pytest -q

# Pin what test-latest installed, once the suite passed there. The local part of a
# version (torch's +cpu) is dropped: TORCH_SPEC and TORCH_INDEX choose the build.
lock: test-latest
	{ echo "# pip constraints: the versions the test suite passed with. Written by \`make lock\`;"; \
	  echo "# do not edit. torch's build (+cpu, CUDA) comes from TORCH_SPEC and TORCH_INDEX."; \
	  echo "# Resolved on $$($(LATEST_VENV)/bin/python -c 'import platform as p; print("CPython", p.python_version(), p.system(), p.machine())')."; \
	  cat $(LATEST_VENV)/freeze.txt; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)

# examples/slurm/ against a real one-node Slurm started and stopped by the script (root,
# apt-get install -y slurm-wlm munge; about 5 minutes on 2 cores). Not part of `make test`.
slurm-test: install
	VENV=$(VENV) tests/slurm/run_slurm_test.sh

bench: install
	$(BIN)/python bench/run_all.py

docs: install
	$(BIN)/python docs/scripts/gen_cli_docs.py

clean:
	rm -rf $(VENV) $(LATEST_VENV) demo-out .pytest_cache

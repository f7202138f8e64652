# Two commands on a fresh machine (see README):
#   make demo   installs into .venv and runs the end-to-end demo
#   make test   installs into .venv and runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch; set TORCH_SPEC to your CUDA build on a GPU machine.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= detect,video,dev

.PHONY: install demo test bench clean docs

$(BIN)/handtools: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/handtools

demo: install
	$(BIN)/handtools demo --out demo-out --overwrite

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/run_all.py

docs: install
	$(BIN)/python docs/scripts/gen_cli_docs.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache

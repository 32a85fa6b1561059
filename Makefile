# wm_hub: `make demo` and `make test` create .venv on first use.
# Users with a GPU build of torch: `make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_ARGS ?=

.PHONY: demo test bench lint clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)

# One stamp per set of extras, redone when pyproject.toml changes.
$(VENV)/.installed-base: pyproject.toml | $(PY)
	$(BIN)/pip install -q -e ".[envs,web]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(BIN)/pip install -q -e ".[envs,web,dev]"
	touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(BIN)/wm-hub demo

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.installed-base
	$(PY) -m benchmarks

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)

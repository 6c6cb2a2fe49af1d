# Two commands on a fresh machine: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install lint test test-fast demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests $(wildcard bench)
	$(BIN)/ruff format --check reconciler tests $(wildcard bench)
	$(BIN)/mypy reconciler
	$(BIN)/lint-imports

# the whole suite on every core (pytest-xdist): 2 min 35 s instead of 4 min 25 s on 2 cores
test: lint
	$(BIN)/pytest -n auto

# the inner loop: everything but the tests marked slow (real processes, installs, fuzzing)
test-fast: $(STAMP)
	$(BIN)/pytest -n auto -m "not slow"

demo: $(STAMP)
	bash scripts/demo.sh

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

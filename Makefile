# The two commands of the README: `make demo` (run the platform) and `make test`.
# Both create the virtual environment in .venv on first use, from pyproject.toml with
# the versions pinned in constraints.txt.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo serve test test-fast lint typecheck install clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install  ## run vsense with a simulated fleet on the embedded database
	$(BIN)/vsense demo

serve: install
	$(BIN)/vsense serve

lint: install  ## style, formatting and the import contracts of pyproject.toml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

test: lint typecheck  ## lint, type-check, then the whole test suite (what CI runs)
	$(BIN)/pytest

# The development loop: no live servers or processes, no broker, no fault suite, nothing
# slow; a single folder runs with `make test-fast TESTS=tests/devices`.
TESTS ?=
test-fast: install  ## the fast part of the suite, without lint and type-check
	$(BIN)/pytest -m "not slow and not live and not mqtt and not faults" $(TESTS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The two commands of the README: `make demo` (run the platform) and `make test`.
# Both create the virtual environment in .venv on first use, from pyproject.toml with
# the versions pinned in constraints.txt.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo serve test lint typecheck install clean

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

test: lint typecheck  ## lint, type-check, then the whole test suite
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

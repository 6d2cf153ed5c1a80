# The two commands of the README: `make demo` (run the platform) and `make test`.
# Both create the virtual environment in .venv on first use, from pyproject.toml with
# the versions pinned in constraints.txt.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo serve test test-fast lint typecheck install clean assets

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

# The console's third-party front-end files, pinned here and committed with their licenses
# (src/vsense/console/static/vendor/): the console works with no internet. `make assets`
# fetches the pinned versions from the npm registry again; change a version, run it,
# commit the result.
HTMX_VERSION := 2.0.11
UPLOT_VERSION := 1.6.32
VENDOR := src/vsense/console/static/vendor
assets:  ## refresh the console's vendored htmx and uPlot from the npm registry
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	(cd "$$tmp" && npm pack --silent htmx.org@$(HTMX_VERSION) uplot@$(UPLOT_VERSION) >/dev/null \
	  && mkdir htmx uplot && tar xzf htmx.org-$(HTMX_VERSION).tgz -C htmx \
	  && tar xzf uplot-$(UPLOT_VERSION).tgz -C uplot); \
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/htmx $(VENDOR)/uplot; \
	cp "$$tmp"/htmx/package/dist/htmx.min.js "$$tmp"/htmx/package/LICENSE $(VENDOR)/htmx/; \
	cp "$$tmp"/uplot/package/dist/uPlot.iife.min.js "$$tmp"/uplot/package/dist/uPlot.min.css \
	  "$$tmp"/uplot/package/LICENSE $(VENDOR)/uplot/; \
	printf 'htmx.org %s\nuplot %s\n' $(HTMX_VERSION) $(UPLOT_VERSION) > $(VENDOR)/VERSIONS; \
	echo "vendored htmx.org $(HTMX_VERSION) and uplot $(UPLOT_VERSION) into $(VENDOR)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

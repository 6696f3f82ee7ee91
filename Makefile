# The two commands of the README: `make demo` (main job) and `make test` (test suite).
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint docs
setup:
	bash scripts/setup.sh

demo: setup
	$(BIN)/python -m noisevision.demo

test: setup
	$(BIN)/python -m pytest -q

# Lint and formatting (ruff), over the package, the tests, the scripts and the docs' hook.
LINTED := noisevision tests scripts/*.py scripts/gpu-check scripts/make-gallery docs/hooks
lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

# The docs site (mkdocs.yml, docs/) into site/; --strict fails on broken links and references.
docs: setup
	@[ $(VENV)/.noisevision-docs -nt pyproject.toml ] || { $(BIN)/python -m pip install -q -e '.[docs]' 2>&1 \
		| { grep -v '^WARNING: Location' || true; }; [ $${PIPESTATUS[0]} -eq 0 ] && touch $(VENV)/.noisevision-docs; }
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

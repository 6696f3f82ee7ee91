# The two commands of the README: `make demo` (main job) and `make test` (test suite).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint
setup:
	bash scripts/setup.sh

demo: setup
	$(BIN)/python -m noisevision.demo

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check noisevision tests

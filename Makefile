# Everything a fresh machine needs is created here: a venv with the package and its test
# extras, and the pinned JavaScript reference (interop/node_modules) for interop tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NPM_STAMP := interop/node_modules/.installed

.PHONY: all venv npm test lint typecheck pytest demo bench vectors clean

all: test

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

$(NPM_STAMP): interop/package.json interop/package-lock.json
	cd interop && npm ci --no-audit --no-fund
	touch $(NPM_STAMP)

venv: $(STAMP)
npm: $(NPM_STAMP)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

pytest: venv npm
	$(BIN)/pytest

test: lint typecheck pytest

demo: venv npm
	$(BIN)/python -m hyperlobby.demo

bench: venv npm
	$(BIN)/python -m bench

vectors: venv npm
	cd interop && node vectors/generate.js > vectors/golden.json

clean:
	rm -rf $(VENV) interop/node_modules

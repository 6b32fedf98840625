# The two quick-start commands (`make serve`, `make test`) and the usual chores.
# Each target creates the virtual environment and installs what it needs, so it works alone
# on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint train evaluate bench contract

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-train: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[train]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	touch $@ $(VENV)/.installed-train $(VENV)/.installed

serve: $(VENV)/.installed  ## start the service on the shipped weights
	$(BIN)/capsnet-serve

lint: $(VENV)/.installed-test  ## ruff
	$(BIN)/ruff check .

test: $(VENV)/.installed-test  ## the whole test suite (installs Debian's chromium and fonts if missing)
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-fonts.sh
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2

train: $(VENV)/.installed-train  ## the paper's recipe; see `capsnet-train --help`
	$(BIN)/capsnet-train --out-dir runs/capsnet --resume

evaluate: $(VENV)/.installed-train  ## test-set report for the shipped weights, PNGs into runs/evaluate
	$(BIN)/capsnet-evaluate --weights weights/capsnet-mnist.safetensors --split test --out-dir runs/evaluate

bench: $(VENV)/.installed  ## model throughput on this machine
	$(BIN)/python bench/model_speed.py

$(VENV)/.installed-contract: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[contract]'
	touch $@ $(VENV)/.installed

contract: $(VENV)/.installed-contract  ## schemathesis against a live server, 2 minutes, every check
	bash scripts/contract-test.sh 120

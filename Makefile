# One entry point for everything: make run, make test, make lint, make bench.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
DB ?= llmtap.db
HOST ?= 127.0.0.1
PORT ?= 7420

.PHONY: setup run test lint format bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Start the server on a SQLite file and print a fresh API key to send events with.
run: setup
	@KEY=$$($(BIN)/llmtap keys create --project default --env dev --db $(DB)) && \
	echo "" && \
	echo "  llmtap API key (project 'default', env 'dev'): $$KEY" && \
	echo "  use it:  export LLMTAP_API_KEY=$$KEY LLMTAP_URL=http://$(HOST):$(PORT)" && \
	echo "" && \
	exec $(BIN)/llmtap serve --db $(DB) --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

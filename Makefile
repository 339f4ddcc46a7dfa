# One entry point for everything: make run, make test, make lint, make bench.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
DB ?= llmtap.db
HOST ?= 127.0.0.1
PORT ?= 7420

VENDOR = src/llmtap/server/dashboard/static/vendor

.PHONY: setup system-deps run test lint format bench mutation mutation-sample screenshots clean

setup: $(VENV)/.installed $(VENDOR)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The dashboard's third-party JavaScript comes from the npm registry, pinned by the lock file,
# never pasted into the repository.
$(VENDOR)/.installed: web/package.json web/package-lock.json
	npm ci --silent --prefix web
	mkdir -p $(VENDOR)
	cp web/node_modules/uplot/dist/uPlot.iife.min.js web/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	touch $@

# Debian packages the tests need (Chromium for the dashboard tests); installs them when root.
system-deps:
	./scripts/system-deps.sh

# Start the server on a SQLite file and print a fresh API key to send events with.
run: setup
	@KEY=$$($(BIN)/llmtap keys create --project default --env dev --scope ingest --scope read --db $(DB)) && \
	echo "" && \
	echo "  llmtap API key (project 'default', env 'dev', may send and read): $$KEY" && \
	echo "  use it:  export LLMTAP_API_KEY=$$KEY LLMTAP_URL=http://$(HOST):$(PORT)" && \
	echo "  sample traffic for the dashboard, from another shell:" && \
	echo "           $(BIN)/llmtap demo --api-key $$KEY --url http://$(HOST):$(PORT)" && \
	echo "" && \
	exec $(BIN)/llmtap serve --db $(DB) --host $(HOST) --port $(PORT)

test: setup system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# The peers the benchmarks compare against (the `bench` extra, pinned), installed on first use.
# A peer that cannot be installed is said so here, and its rows in the figures say "skipped".
$(VENV)/.bench-installed: $(VENV)/.installed
	@if $(BIN)/python -m pip install --quiet -e '.[dev,bench]'; then touch $@; else \
	  echo "make bench: the peers (pip install 'llmtap[bench]') could not be installed;" \
	       "the benchmarks run without them and say which were skipped" >&2; fi

bench: setup $(VENV)/.bench-installed
	$(BIN)/python -m bench

# Mutation testing, not part of CI: mutmut (the `mutation` extra) over sdk/, server/ and store/
# against the fast tests that [tool.mutmut] in pyproject.toml names, with one worker (a shared
# machine). MUTANTS bounds a run with mutmut's name patterns (module.function*); results stay
# in mutants/ and the report prints the score per file and package, and the survivors.
# PYTHONPATH=src, read from mutants/ where mutmut runs pytest, makes the `llmtap serve`
# processes the tests start import the mutated code too.
MUTANTS ?= llmtap.sdk._stats.* llmtap.server.auth.x_confine* llmtap.server.auth.xǁKeyCacheǁ* \
	llmtap.server.query.x__time* llmtap.server.query.x__rating* llmtap.server.query.x_event_filter*
$(VENV)/.mutation-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,mutation]'
	touch $@

mutation: setup $(VENV)/.mutation-installed
	PYTHONPATH=src $(BIN)/mutmut run --max-children 1 $(foreach m,$(MUTANTS),'$(m)')
	$(BIN)/python scripts/mutation_report.py $(foreach m,$(MUTANTS),'$(m)')

# A score over whole packages: SAMPLE mutants of each of sdk/, server/ and store/, drawn at
# random (SEED) from the ~20,000 there are (all of them take days on one worker). mutmut has no
# "generate only" command: the first run, with a name no mutant has, generates the mutants and
# maps the tests to the functions they reach, then stops on that name.
SAMPLE ?= 100
SEED ?= 0
mutation-sample: setup $(VENV)/.mutation-installed
	-PYTHONPATH=src $(BIN)/mutmut run --max-children 1 'llmtap.no.such.mutant' >/dev/null 2>&1
	$(BIN)/python scripts/mutation_report.py --sample $(SAMPLE) --seed $(SEED) > mutants/sample.txt
	PYTHONPATH=src $(BIN)/mutmut run --max-children 1 $$(cat mutants/sample.txt)
	$(BIN)/python scripts/mutation_report.py --sampled $$(cat mutants/sample.txt)

# Screenshots of every dashboard page, with demo traffic, into docs/ (for the README).
screenshots: setup system-deps
	$(BIN)/python scripts/screenshots.py docs

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache web/node_modules $(VENDOR)

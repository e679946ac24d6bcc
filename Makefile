# falcon-ws-template: `make demo` renders the defaults and serves them, `make test` checks it all.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= build/demo
# Answers for the demo, e.g. `make demo ANSWERS="server=wsgi-gevent"`.
ANSWERS ?=
JOBS ?= auto
BENCH_VENV ?= .venv-bench
# Options of bench/harness.py and the projects' bench.run, e.g. BENCH_ARGS=--tiny (a smoke run).
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install demo test test-all lint fmt bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create .venv with cookiecutter, pytest and uv

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

demo: install ## Render the template (defaults, or ANSWERS=...) into build/demo and run it
	$(BIN)/python scripts/demo.py $(DEMO_DIR) $(ANSWERS)

test: install ## Run every template test: hooks, bad answers, every option combination baked and checked
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n $(JOBS) --maxschedchunk 1

test-all: install ## The same, with the slow live suites and the benchmark in every combination
	FULL_MATRIX=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n $(JOBS) --maxschedchunk 1

bench: install $(BENCH_VENV)/.installed ## Both variants beside raw websockets, Starlette, aiohttp, node ws, picows: docs/benchmarks.md
	$(BENCH_VENV)/bin/python bench/harness.py --cookiecutter $(BIN)/cookiecutter $(BENCH_ARGS)

# Its own venv: the peers, the load client and matplotlib stay out of the test environment.
$(BENCH_VENV)/.installed: requirements-bench.txt
	$(BIN)/uv venv --quiet --allow-existing --python "$$($(BIN)/python bench/render.py)" $(BENCH_VENV)
	$(BIN)/uv pip install --quiet --python $(BENCH_VENV)/bin/python -r requirements-bench.txt
	@touch $@

lint: install ## Lint the hooks and tests
	$(BIN)/ruff check hooks scripts tests bench
	$(BIN)/ruff format --check hooks scripts tests bench

fmt: install ## Format the hooks and tests
	$(BIN)/ruff check --fix hooks scripts tests bench
	$(BIN)/ruff format hooks scripts tests bench

clean: ## Remove the virtualenv, demo and caches
	rm -rf $(VENV) $(BENCH_VENV) build .pytest_cache .ruff_cache

# falcon-ws-template: `make demo` renders the defaults and serves them, `make test` checks it all.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= build/demo
# Answers for the demo, e.g. `make demo ANSWERS="server=wsgi-gevent"`.
ANSWERS ?=
JOBS ?= auto

.DEFAULT_GOAL := help
.PHONY: help install demo test lint fmt clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create .venv with cookiecutter, pytest and uv

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

demo: install ## Render the template (defaults, or ANSWERS=...) into build/demo and run it
	$(BIN)/python scripts/demo.py $(DEMO_DIR) $(ANSWERS)

test: install ## Run every template test: hooks, bad answers, every option combination baked and checked
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n $(JOBS)

lint: install ## Lint the hooks and tests
	$(BIN)/ruff check hooks scripts tests
	$(BIN)/ruff format --check hooks scripts tests

fmt: install ## Format the hooks and tests
	$(BIN)/ruff check --fix hooks scripts tests
	$(BIN)/ruff format hooks scripts tests

clean: ## Remove the virtualenv, demo and caches
	rm -rf $(VENV) build .pytest_cache .ruff_cache

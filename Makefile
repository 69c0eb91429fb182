# The two commands: `make run` serves, `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest test-db openapi bench demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/python -m service serve

test: $(VENV)/.installed-dev lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check service tests bench migrations
	$(BIN)/ruff format --check service tests bench migrations

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy service bench

# The portal's browser tests need a Chromium (Debian's `chromium`); without one they skip.
CHROMIUM_NOTE = command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	|| echo "== no Chromium found: the portal's browser tests are skipped (apt-get install chromium)"

pytest: $(VENV)/.installed-dev
	@$(CHROMIUM_NOTE)
	$(BIN)/pytest -q -rs

# The database tests again, against the server named by TEST_DATABASE_URL.
test-db: $(VENV)/.installed-dev
	@$(CHROMIUM_NOTE)
	$(BIN)/pytest -q -rs

openapi: $(VENV)/.installed-run
	$(BIN)/python -m service openapi > openapi/openapi.json

demo: $(VENV)/.installed-run
	$(BIN)/python -m service demo

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/redirect.py
	$(BIN)/python bench/conversions.py
	$(BIN)/python bench/payouts.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/flood.py
	$(BIN)/python bench/bounties.py
	$(BIN)/python bench/sessions.py

clean:
	rm -rf $(VENV) .affiliate-data .pytest_cache .mypy_cache .ruff_cache

# `make run` sets everything up and runs the example pipeline; `make test` runs the checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE ?= connectors/sources/dummy/config/dummy.example.yml

.PHONY: setup run test test-dagster-lowest lint format bench chaos dagster postgres clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

run: setup
	$(BIN)/bizon run $(EXAMPLE)

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The PostgreSQL tests start their own throw-away server from the installed binaries.
postgres:
	bash scripts/ensure_postgres.sh

# pytest exits 5 when it collects no test: not a failure of the suite.
test: lint postgres
	DAGSTER_HOME= $(BIN)/dagster definitions validate -w workspace.yaml
	$(BIN)/python -m pytest -q || [ $$? -eq 5 ]
	$(MAKE) test-dagster-lowest

# The Dagster tests again at the lowest Dagster release pyproject.toml admits.
DAGSTER_LOWEST ?= 1.12.0
DAGSTER_POSTGRES_LOWEST ?= 0.28.0
LOWEST := .venv-dagster-lowest
test-dagster-lowest: $(LOWEST)/.installed
	$(LOWEST)/bin/python -m pytest -q tests/dagster || [ $$? -eq 5 ]

$(LOWEST)/.installed: pyproject.toml
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/pip install --quiet --upgrade pip
	$(LOWEST)/bin/pip install --quiet -e ".[dev]" "dagster==$(DAGSTER_LOWEST)" \
		"dagster-webserver==$(DAGSTER_LOWEST)" "dagster-dg-cli==$(DAGSTER_LOWEST)" \
		"create-dagster==$(DAGSTER_LOWEST)" "dagster-postgres==$(DAGSTER_POSTGRES_LOWEST)"
	touch $@

# kill -9 trials (20 per destination and path: 10 per mode) and overlapping runs; a table.
CHAOS_RECORDS ?= 100000
chaos: setup postgres
	$(BIN)/python -m bizon_core.testing.chaos --trials 10 --records $(CHAOS_RECORDS) \
		--destinations file,duckdb,postgres --paths cli,dagster --modes full_refresh,incremental

dagster: setup
	$(BIN)/dagster dev -w workspace.yaml

bench: setup
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) $(LOWEST) .bizon .pytest_cache .ruff_cache

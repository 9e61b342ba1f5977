# Two commands on a fresh Debian machine with Python 3.11 and Java 17:
#   make demo   - install, bring the embedded stack up, run the whole pipeline, print a summary
#   make test   - install, run the full test suite (unit + integration + slow end-to-end)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# e.g. make demo DEMO_ARGS='--days 5 --events-per-day 50000'
DEMO_ARGS ?=

.PHONY: help setup system-deps demo test test-fast lint stack-up stack-down stack-status \
        dbt-parse dbt-docs docs bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

system-deps:  ## install PostgreSQL server binaries and Java if missing (Debian, as root)
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing PostgreSQL server (apt)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; fi; \
	fi
	@if ! command -v java >/dev/null; then \
	  echo "installing Java 17 (apt)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; fi; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the project (idempotent)
	@$(BIN)/ecom ingest class-archive 2>/dev/null || \
	  echo "JVM class archive not recorded (run $(BIN)/ecom ingest class-archive to see why): Spark sessions start without it, ~2 s slower"

dbt-parse: setup  ## write dbt_project/target/manifest.json (Cosmos renders the DAG from it)
	@if [ -f dbt_project/dbt_project.yml ]; then \
	  $(BIN)/dbt parse --project-dir dbt_project --profiles-dir dbt_project --quiet; fi

dbt-docs: setup  ## generate the dbt docs site (lineage sources -> marts -> exposures) and serve it (DOCS_PORT, default 8081)
	eval "$$($(BIN)/ecom env)" && \
	  $(BIN)/dbt docs generate --project-dir dbt_project --profiles-dir dbt_project && \
	  $(BIN)/dbt docs serve --project-dir dbt_project --profiles-dir dbt_project --no-browser --port $${DOCS_PORT:-8081}

stack-up: setup  ## start embedded PostgreSQL + broker, migrate, create topics
	$(BIN)/ecom stack up

stack-down: setup  ## stop the embedded stack
	$(BIN)/ecom stack down

stack-status: setup  ## show services and topics
	$(BIN)/ecom stack status

demo: setup dbt-parse  ## the main job end to end on the embedded stack, with a summary
	$(BIN)/ecom demo $(DEMO_ARGS)

test: setup dbt-parse  ## full test suite (fails if no test ran)
	@set +e; $(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; \
	exit $$rc

test-fast: setup  ## unit tests only
	$(BIN)/pytest tests/unit -q

lint: setup  ## ruff + sqlfluff
	$(BIN)/ruff check .
	@if [ -f dbt_project/.sqlfluff ]; then cd dbt_project && ../$(BIN)/sqlfluff lint models; fi

clean: stack-down  ## stop the stack and delete local state (.local)
	rm -rf .local

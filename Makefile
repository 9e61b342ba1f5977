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

# Debian packages the project runs (each checked by a file it installs; installed together
# when any is missing): PostgreSQL 15 server + pgaudit (audit log) + pgBackRest (backups),
# Java 17 (Spark), Chromium (the dashboards' browser tests), Prometheus' promtool (rules).
APT_NEEDS := \
	/usr/lib/postgresql/15/bin/initdb=postgresql-15 \
	/usr/lib/postgresql/15/lib/pgaudit.so=postgresql-15-pgaudit \
	/usr/bin/pgbackrest=pgbackrest \
	/usr/bin/java=openjdk-17-jre-headless \
	/usr/bin/chromium=chromium \
	/usr/bin/promtool=prometheus

system-deps:  ## install the Debian packages above that are missing (as root, or with sudo)
	@missing=""; for pair in $(APT_NEEDS); do \
	  [ -e "$${pair%%=*}" ] || missing="$$missing $${pair#*=}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
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
	eval "$$($(BIN)/ecom env --show-secrets)" && \
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

test: setup dbt-parse lint  ## lint, then the full test suite (fails if no test ran)
	@set +e; $(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; \
	exit $$rc

test-fast: setup  ## unit tests only
	$(BIN)/pytest tests/unit -q

lint: setup  ## ruff, import-linter (the layers) and sqlfluff (dbt SQL, on a throwaway warehouse)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m ecom_app.sql_lint

clean: stack-down  ## stop the stack and the dashboards, delete local state (.local)
	-$(BIN)/ecom dashboard down
	rm -rf .local

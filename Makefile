PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install lint test demo bench schema clean system-packages

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,chart,dask,postgres]'  # every extra
	touch $(STAMP)

install: $(STAMP) system-packages

# Debian packages the tests need, installed (as root, apt-get update first) only when missing:
# chromium + chromium-driver for the status page's browser test, promtool (package prometheus)
# to check deploy/prometheus-alerts.yaml, postgresql for the PostgreSQL store's tests (tests/pg_harness.py).
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages:$$missing (as root: apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check rules_engine bench
	$(BIN)/mypy

test: lint system-packages
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/rules-engine demo

bench: $(STAMP)
	$(BIN)/python -m bench

schema: $(STAMP)
	$(BIN)/python -c 'from rules_engine.rules.rule_schema import main; main()' schemas/rules.schema.json

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

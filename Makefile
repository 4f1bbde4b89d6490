# Two commands on a fresh machine: `make run` (the app on the embedded database) and
# `make test` (the whole suite). Each installs what it needs first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test setup system-deps lint format seed clean

run: setup ## set up and run the app on the embedded database (http://127.0.0.1:8000)
	$(PY) manage.py runserver

test: setup system-deps ## set up and run lint and the whole test suite on real servers
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

system-deps: ## install redis-server and chromium from Debian where missing
	bash scripts/system-deps.sh

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

seed: setup ## load demo data into the embedded database
	$(PY) manage.py seed --threads 200

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

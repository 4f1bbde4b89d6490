# Two commands on a fresh machine: `make run` (the app on the embedded database) and
# `make test` (the whole suite). Each installs what it needs first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
PIP_VERSION := $(shell sed -n 's/^pip==//p' requirements.lock)

.PHONY: run test setup system-deps lint format lock seed clean

run: setup ## set up and run the app on the embedded database (http://127.0.0.1:8000)
	$(PY) manage.py runserver

test: setup system-deps ## set up, lint, and run the whole suite on nx-27017 and on SecantusDB
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	bash scripts/test.sh

setup: $(STAMP)

# Exact versions from requirements.lock (refresh it with `make lock`); pyproject.toml keeps
# the ranges for people who install the package.
$(STAMP): pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet "pip==$(PIP_VERSION)"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

lock: ## resolve pyproject.toml's ranges again and write requirements.lock
	bash scripts/lock.sh

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

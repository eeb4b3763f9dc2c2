VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-test lint bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(VENV)/bin/plx server --host $(HOST) --port $(PORT)

test: install-test
	$(VENV)/bin/ruff check app tests bench
	$(VENV)/bin/pytest -q -n 2 $(PYTEST_ARGS)

lint: install-test
	$(VENV)/bin/ruff check app tests bench

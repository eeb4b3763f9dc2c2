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

# The Python client (clients/python) with its integrations' libraries; the constraints file pins
# torch to the CPU build on local disk, so nothing pulls another torch.
CLIENT := clients/python
$(VENV)/.installed-client: $(CLIENT)/pyproject.toml $(CLIENT)/constraints-test.txt $(VENV)/.installed-test
	$(PIP) install -q -c $(CLIENT)/constraints-test.txt -e '$(CLIENT)[test,lightning,transformers]'
	touch $@

install-test: $(VENV)/.installed-test $(VENV)/.installed-client

run: install
	$(VENV)/bin/plx server --host $(HOST) --port $(PORT)

test: install-test
	$(VENV)/bin/ruff check app tests bench $(CLIENT)
	$(VENV)/bin/pytest -q -n 2 $(PYTEST_ARGS)
	$(VENV)/bin/pytest -q -n 2 $(CLIENT)/tests $(PYTEST_ARGS)

lint: install-test
	$(VENV)/bin/ruff check app tests bench

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
UI_INDEX := app/ui_dist/index.html
UI_SOURCES := $(shell find ui/src -type f 2>/dev/null) ui/index.html ui/vite.config.ts ui/package-lock.json

.PHONY: run test install install-test lint bench guards ui ui-optional ui-test ui-types ui-types-check browser

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
# torch to the CPU build on local disk, so nothing pulls another torch. `CLIENT_EXTRAS=test`
# leaves out torch, Lightning and transformers (their tests then skip).
CLIENT := clients/python
CLIENT_EXTRAS ?= test,lightning,transformers
$(VENV)/.installed-client: $(CLIENT)/pyproject.toml $(CLIENT)/constraints-test.txt $(VENV)/.installed-test
	$(PIP) install -q -c $(CLIENT)/constraints-test.txt -e '$(CLIENT)[$(CLIENT_EXTRAS)]'
	touch $@

install-test: $(VENV)/.installed-test $(VENV)/.installed-client

# The dashboard (ui/, TypeScript + React + Vite) is built into app/ui_dist, package data.
ui/node_modules/.installed: ui/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: building the dashboard needs Node.js (20+) and npm on the PATH" >&2; exit 1; }
	cd ui && npm ci --no-audit --no-fund
	touch $@

$(UI_INDEX): ui/node_modules/.installed $(UI_SOURCES)
	cd ui && npm run build

ui: $(UI_INDEX)

# `make run` builds the dashboard when it can; without npm the API still runs, and `/` says
# what is missing.
ui-optional:
	@if [ -f $(UI_INDEX) ] || command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory ui; \
	else echo "warning: npm is not installed: the dashboard at / is not built (the API works)" >&2; fi

# The generated API types must match the OpenAPI the server serves.
ui-types: install ui/node_modules/.installed
	$(PY) ui/scripts/openapi.py > ui/openapi.json
	cd ui && npx openapi-typescript ./openapi.json -o src/api/schema.d.ts

ui-types-check: install ui/node_modules/.installed
	$(PY) ui/scripts/openapi.py > ui/openapi.json
	cd ui && npx openapi-typescript ./openapi.json -o openapi.check.d.ts >/dev/null
	@cmp -s ui/openapi.check.d.ts ui/src/api/schema.d.ts || { \
		echo "error: ui/src/api/schema.d.ts does not match the server's OpenAPI: run make ui-types" >&2; \
		rm -f ui/openapi.check.d.ts; exit 1; }
	@rm -f ui/openapi.check.d.ts

ui-test: ui/node_modules/.installed
	cd ui && npx tsc --noEmit && npx vitest run

# Debian's Chromium for the dashboard's browser tests (Playwright drives it; its own browser
# download cannot work on these machines).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
		else echo "error: the browser tests need Debian's chromium (apt-get install chromium)" >&2; exit 1; fi; }

run: install ui-optional
	$(VENV)/bin/plx server --host $(HOST) --port $(PORT)

# The layering and the types hold, and no dead code stays (pyproject.toml: [tool.importlinter],
# [tool.mypy], [tool.vulture] with its whitelist of framework-called names).
guards: install-test
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/vulture

test: install-test ui ui-types-check ui-test browser guards
	$(VENV)/bin/ruff check app tests bench $(CLIENT)
	$(VENV)/bin/pytest -q -n 2 $(PYTEST_ARGS)
	$(VENV)/bin/pytest -q -n 2 $(CLIENT)/tests $(PYTEST_ARGS)

lint: install-test
	$(VENV)/bin/ruff check app tests bench

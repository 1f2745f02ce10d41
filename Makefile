# make run   — the whole stack in the foreground (creates .venv and installs on first use)
# make test  — lint and the whole test suite
# make bench — benchmarks, printing a table
# make demo  — the whole stack against a local Bot API stand-in, with a chat page (no token, no internet)
# make chaos — random faults against the whole stack for about 10 minutes, accounting for every
#              acknowledged update (CHAOS_ARGS="--duration 600 --seed 7"; --help for the rest)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run demo screenshot test bench chaos lint compile install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

# bin/start execs supervisord in the foreground (see it for why it may relay stdout/stderr).
run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" exec sh bin/start

# Chat with the bot at http://127.0.0.1:8081/, the status page at http://127.0.0.1:10000/ (sandbox/demo.py).
demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m sandbox.demo $(DEMO_ARGS)

# docs/status-page.png and docs/chat.png, made by a real headless Chromium (tests/screenshot.py).
screenshot: install-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tests.screenshot

compile: install
	$(BIN)/python -m compileall -q -j 0 bot conf watchdog sandbox tests >/dev/null

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collected nothing: a suite that tests nothing fails, with a reason.
# The code is compiled first: the tests start hundreds of watchdogs and bots, and with
# PYTHONDONTWRITEBYTECODE set (as on some CI machines) each would compile every module again.
test: lint compile
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

# Compiled as Render's build compiles it: a benchmark times what a deployed machine runs.
bench: install-dev compile
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tests.bench $(BENCH_ARGS)

chaos: install-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tests.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Two commands on a fresh machine with Python 3.11+ and make: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every package `make install` installs, pinned with the hashes of its files (see the README's Dependencies).
LOCK := requirements.lock
UV := uv==0.13.9

.PHONY: install lock browser run test lint typecheck unit bench clean

install: $(STAMP)

# Only what the lock names, each file checked against its hash; then the project itself, built by the
# locked setuptools (no build isolation: that would fetch an unpinned one). `pip check` fails when
# pyproject.toml asks for something the lock lacks: run `make lock`.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# Resolve pyproject.toml's ranges (runtime, dev extra and build backend) into $(LOCK) for every platform
# and Python >= 3.11. Pins already in the lock are kept while they satisfy the ranges;
# `make lock ARGS=--upgrade` moves everything to the newest, `ARGS="--upgrade-package rich"` one package.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet '$(UV)'
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(BIN)/uv pip compile pyproject.toml - --extra dev --universal --python-version 3.11 \
			--generate-hashes --custom-compile-command "make lock" --quiet --output-file $(LOCK) $(ARGS)

run: install
	$(BIN)/incidents dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy .

# The web UI test drives Debian's chromium (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)

test: install browser lint typecheck
	$(BIN)/pytest

# Raw Temporal beside the incident system on this machine (own servers and workers on free ports).
# `make bench` runs the full one (under 10 minutes: (7) resolves 2,000 incidents and signals 2,000 bare workflows,
# (8) restarts the workers with a small cache); `make bench ARGS=--quick` a smoke run (about a minute).
bench: install
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data

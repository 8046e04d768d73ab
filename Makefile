# Raceday: one command to install and run, one to install and test.
#   make run    install everything (venv, Python deps, the Rust extension) and run the system
#   make test   install everything (Chromium too, when missing and root) and run cargo test + pytest

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test browser test-rust test-python lint proto bench clean help

help:
	@echo "make run | test | lint | proto | bench | install | clean"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install when the project metadata, any Rust source or a .proto changed (the Rust core
# generates its message types from proto/): maturin compiles the extension during the install,
# and cargo's incremental cache in rust_ext/target keeps that quick.
$(STAMP): $(BIN)/python pyproject.toml $(shell find rust_ext -name '*.rs' -o -name Cargo.toml -not -path '*/target/*') $(wildcard proto/raceday/v1/*.proto)
	@echo "==> installing raceday and its dependencies (builds the Rust extension)"
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/raceday up

test: install browser test-rust test-python

# The dashboard's browser tests drive Debian's Chromium. Installed here when missing and this user
# can (root with apt-get); otherwise those tests report a skip with the reason (a failure in CI).
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -n "$${RACEDAY_CHROMIUM:-}" ]; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing Chromium for the dashboard's browser tests (apt-get)"; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null; \
	else echo "==> no Chromium and no root to install it: the browser tests will be skipped"; fi

test-rust:
	@echo "==> cargo test"
	cd rust_ext && cargo test --workspace --quiet

test-python:
	@echo "==> pytest"
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check services raceday_core tests tools
	$(BIN)/ruff format --check services raceday_core tests tools
	$(BIN)/mypy
	cd rust_ext && cargo clippy --workspace --all-targets -- -D warnings
	cd rust_ext && cargo fmt --all -- --check

bench: install
	$(BIN)/raceday bench transform
	$(BIN)/raceday bench write
	$(BIN)/raceday bench pipeline
	$(BIN)/raceday bench api

proto: install
	$(BIN)/python tools/gen_protos.py

clean:
	rm -rf $(VENV) rust_ext/target .pytest_cache .mypy_cache .ruff_cache

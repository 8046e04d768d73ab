# Raceday: one command to install and run, one to install and test.
#   make run    install everything (venv, Python deps, the Rust extension) and run the system
#   make test   install everything (Chromium too, when missing and root) and run cargo test + pytest

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

IMAGE  ?= localhost/raceday:0.1.0

.PHONY: install run test browser promtool test-rust test-python lint proto bench image image-tools image-test soak clean help

help:
	@echo "make run | test | lint | proto | bench | install | image | image-test | soak | clean"

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

test: install browser promtool test-rust test-python

# The dashboard's browser tests drive Debian's Chromium. Installed here when missing and this user
# can (root with apt-get); otherwise those tests report a skip with the reason (a failure in CI).
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -n "$${RACEDAY_CHROMIUM:-}" ]; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing Chromium for the dashboard's browser tests (apt-get)"; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null; \
	else echo "==> no Chromium and no root to install it: the browser tests will be skipped"; fi

# The alert rules are checked and unit-tested with promtool (Debian's prometheus package), installed
# the same way; without it those tests are skipped with the reason (a failure in CI).
promtool:
	@if command -v promtool >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing promtool for the alert rule tests (apt-get install prometheus)"; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus >/dev/null; \
	else echo "==> no promtool and no root to install it: the alert rule tests will be skipped"; fi

# The container image, built with buildah (daemonless). Base images that cannot be pulled are
# replaced by local stand-ins built from Debian packages (tools/image/make-bases.sh); the build
# secret is this machine's CA bundle, for the builder's downloads behind a TLS-intercepting proxy.
image-tools:
	@if command -v buildah >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing buildah and mmdebstrap (apt-get)"; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq buildah mmdebstrap uidmap >/dev/null; \
	else echo "buildah and mmdebstrap are needed (apt-get install buildah mmdebstrap, as root)"; exit 1; fi

image: image-tools
	bases=$$(tools/image/make-bases.sh) && buildah build --layers --isolation chroot -f Dockerfile \
	  -t $(IMAGE) $$bases --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt .
	@buildah images $(IMAGE)

# Each service of the image run as a container (read-only root, user 10001): health, /metrics, size.
image-test: install image
	$(BIN)/python tools/image/image_test.py --image $(IMAGE)

# A 10-minute race day under faults (not part of `make test`).
soak: install
	$(BIN)/raceday soak --minutes 10

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
	$(BIN)/raceday bench write --moves
	$(BIN)/raceday bench pipeline
	$(BIN)/raceday bench api

proto: install
	$(BIN)/python tools/gen_protos.py

clean:
	rm -rf $(VENV) rust_ext/target .pytest_cache .mypy_cache .ruff_cache

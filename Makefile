# The README's two commands: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Rust (for ingest's native hot path, native/): rustup puts cargo in ~/.cargo/bin, often not on PATH.
CARGO_PATH := $(HOME)/.cargo/bin:$(PATH)
PYTEST_ARGS ?=

.PHONY: demo test lint install jars prometheus schemas bench clean

$(STAMP): pyproject.toml native/Cargo.toml native/pyproject.toml native/src/lib.rs
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@if PATH="$(CARGO_PATH)" command -v cargo >/dev/null 2>&1; then \
	  echo "building ingest's native hot path (native/, Rust)"; \
	  PATH="$(CARGO_PATH)" $(BIN)/pip install --quiet ./native; \
	else echo "warning: no cargo (Rust): ingest runs every event on the Python path"; fi
	touch $(STAMP)

install: $(STAMP)

jars: $(STAMP)
	$(BIN)/python -m driftline.local.fetch

prometheus:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing prometheus (Debian package) for the scrape and rules tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) \
	  || echo "warning: could not install prometheus; its tests will be skipped"; }

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) jars prometheus lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP) jars
	$(BIN)/driftline demo

schemas: $(STAMP)
	$(BIN)/python -m driftline.schemas.generate

bench: $(STAMP) jars
	$(BIN)/python bench/core_bench.py

clean:
	rm -rf $(VENV) var build *.egg-info native/target
